// SPDX-License-Identifier: MIT
// moelab/model/config_hf.hpp — ModelConfig from a Hugging Face config.json.
//
// Depends on: moelab/model/config.hpp, moelab/error.hpp, nlohmann/json.
//
// Handles the shapes config.json comes in: flat (Llama, Qwen2/3), nested under
// "text_config" (multimodal wrappers such as Qwen3.5), RoPE settings either as
// top-level rope_theta/rope_scaling/partial_rotary_factor or inside
// "rope_parameters" (transformers v5). Defaults are those of the transformers
// config classes; a missing required key is an Error naming file and key.
#pragma once

#include <cmath>
#include <numbers>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "moelab/error.hpp"
#include "moelab/model/config.hpp"

namespace moelab {

namespace detail {

class JsonConfig {
public:
    JsonConfig(const nlohmann::json& j, std::string file) : j_(j), file_(std::move(file)) {}

    bool has(const char* key) const { return j_.contains(key) && !j_[key].is_null(); }
    const nlohmann::json& at(const char* key) const {
        if (!has(key)) throw Error(file_, "missing required key '" + std::string(key) + "'");
        return j_[key];
    }
    std::size_t size(const char* key) const {
        const auto& v = at(key);
        if (!v.is_number_integer() || v.get<std::int64_t>() < 0 || v.get<std::int64_t>() > (std::int64_t{1} << 32))
            throw Error(file_, "key '" + std::string(key) + "' must be an integer in [0, 2^32], found " + v.dump());
        return v.get<std::size_t>();
    }
    std::size_t size_or(const char* key, std::size_t fallback) const { return has(key) ? size(key) : fallback; }
    double number(const char* key) const {
        const auto& v = at(key);
        if (!v.is_number()) throw Error(file_, "key '" + std::string(key) + "' must be a number, found " + v.dump());
        return v.get<double>();
    }
    double number_or(const char* key, double fallback) const { return has(key) ? number(key) : fallback; }
    bool boolean_or(const char* key, bool fallback) const {
        if (!has(key)) return fallback;
        if (!j_[key].is_boolean()) throw Error(file_, "key '" + std::string(key) + "' must be true or false");
        return j_[key].get<bool>();
    }
    std::string string(const char* key) const {
        const auto& v = at(key);
        if (!v.is_string()) throw Error(file_, "key '" + std::string(key) + "' must be a string, found " + v.dump());
        return v.get<std::string>();
    }
    // Sub-object or an empty object.
    JsonConfig object_or_empty(const char* key) const {
        static const nlohmann::json empty = nlohmann::json::object();
        if (has(key) && !j_[key].is_object()) throw Error(file_, "key '" + std::string(key) + "' must be an object");
        return {has(key) ? j_[key] : empty, file_};
    }
    const std::string& file() const { return file_; }

private:
    const nlohmann::json& j_;
    std::string file_;
};

// rope_scaling of type "llama3": its four parameters, checked.
inline Llama3RopeScaling llama3_scaling_from(const JsonConfig& scaling) {
    const Llama3RopeScaling s{scaling.number("factor"), scaling.number("low_freq_factor"),
                              scaling.number("high_freq_factor"), scaling.number("original_max_position_embeddings")};
    if (!(s.factor > 0) || !(s.high_freq_factor > s.low_freq_factor) || !(s.low_freq_factor > 0) ||
        !(s.original_context > 0) || !std::isfinite(s.factor) || !std::isfinite(s.high_freq_factor) ||
        !std::isfinite(s.original_context))
        throw Error(scaling.file(), "rope_scaling: need finite factor > 0, high_freq_factor > low_freq_factor > 0, "
                                    "original_max_position_embeddings > 0");
    return s;
}

}  // namespace detail

// Llama 3.1 ("llama3") RoPE scaling: long wavelengths are slowed by `factor`,
// short ones kept, and the band in between interpolated. Returns the divisor
// of each plane's frequency (the same numbers GGUF stores in rope_freqs.weight);
// rot_dims / 2 of them, so the caller bounds rot_dims first.
inline std::vector<float> llama3_freq_divisors(const Llama3RopeScaling& s, float theta, std::size_t rot_dims) {
    const double low_freq_wavelen = s.original_context / s.low_freq_factor;
    const double high_freq_wavelen = s.original_context / s.high_freq_factor;
    std::vector<float> divisors(rot_dims / 2);
    for (std::size_t i = 0; i < divisors.size(); ++i) {
        const double freq = std::pow(static_cast<double>(theta), -2.0 * static_cast<double>(i) / static_cast<double>(rot_dims));
        const double wavelen = 2 * std::numbers::pi / freq;
        if (wavelen < high_freq_wavelen) divisors[i] = 1.0f;
        else if (wavelen > low_freq_wavelen) divisors[i] = static_cast<float>(s.factor);
        else {
            const double smooth = (s.original_context / wavelen - s.low_freq_factor) / (s.high_freq_factor - s.low_freq_factor);
            divisors[i] = static_cast<float>(1.0 / ((1 - smooth) / s.factor + smooth));
        }
    }
    return divisors;
}

namespace detail {

inline Arch arch_from_hf_model_type(const std::string& model_type, const std::string& file) {
    if (model_type == "llama" || model_type == "mixtral") return Arch::llama;
    if (model_type == "qwen2") return Arch::qwen2;
    if (model_type == "qwen3") return Arch::qwen3;
    if (model_type == "qwen2_moe") return Arch::qwen2moe;
    if (model_type == "qwen3_moe") return Arch::qwen3moe;
    if (model_type == "qwen3_5" || model_type == "qwen3_5_text") return Arch::qwen35;
    if (model_type == "qwen3_5_moe" || model_type == "qwen3_5_moe_text") return Arch::qwen35moe;
    throw Error(file, "model_type '" + model_type +
                          "' is not supported (supported: llama, mixtral, qwen2, qwen3, qwen2_moe, qwen3_moe, "
                          "qwen3_5[_text], qwen3_5_moe[_text])");
}

inline std::int64_t first_token_id(const nlohmann::json& v) {
    if (v.is_number_integer()) return v.get<std::int64_t>();
    if (v.is_array() && !v.empty() && v[0].is_number_integer()) return v[0].get<std::int64_t>();
    return -1;
}

}  // namespace detail

// `root` is the parsed config.json; `file` names it in errors.
inline ModelConfig config_from_hf(const nlohmann::json& root, const std::string& file) {
    if (!root.is_object()) throw Error(file, "config.json is not a JSON object");
    const detail::JsonConfig top(root, file);
    // Multimodal wrappers keep the language model's settings in text_config.
    const detail::JsonConfig cfg = top.has("text_config") ? top.object_or_empty("text_config") : top;
    const std::string model_type = cfg.has("model_type") ? cfg.string("model_type") : top.string("model_type");

    ModelConfig c;
    c.format = SourceFormat::huggingface;
    c.arch = detail::arch_from_hf_model_type(model_type, file);
    c.n_embd = cfg.size("hidden_size");
    c.n_layer = cfg.size("num_hidden_layers");
    if (c.n_layer > 65536) throw Error(file, "num_hidden_layers " + std::to_string(c.n_layer) + " is out of range [1, 65536]");
    c.n_head = cfg.size("num_attention_heads");
    if (c.n_head == 0 || c.n_embd == 0 || c.n_layer == 0)
        throw Error(file, "hidden_size, num_hidden_layers and num_attention_heads must be positive");
    c.n_head_kv = cfg.size_or("num_key_value_heads", c.n_head);
    c.head_dim = cfg.size_or("head_dim", c.n_embd / c.n_head);
    c.n_vocab = cfg.size("vocab_size");
    c.n_ctx_train = cfg.size_or("max_position_embeddings", 0);
    c.rms_eps = static_cast<float>(cfg.number_or("rms_norm_eps", 1e-6));
    c.tied_embeddings = cfg.boolean_or("tie_word_embeddings", top.boolean_or("tie_word_embeddings", false));

    // RoPE: HF always uses rotate-half (NeoX) pairing on unpermuted weights.
    const detail::JsonConfig rope_params = cfg.object_or_empty("rope_parameters");
    c.rope.style = RopeStyle::neox;
    c.rope.theta = static_cast<float>(rope_params.number_or("rope_theta", cfg.number_or("rope_theta", 10000.0)));
    const double partial = rope_params.number_or("partial_rotary_factor", cfg.number_or("partial_rotary_factor", 1.0));
    if (!(partial > 0.0 && partial <= 1.0)) throw Error(file, "partial_rotary_factor must be in (0, 1]");
    c.rope.rot_dims = static_cast<std::size_t>(static_cast<double>(c.head_dim) * partial);
    const detail::JsonConfig scaling = cfg.has("rope_scaling") ? cfg.object_or_empty("rope_scaling") : rope_params;
    const std::string rope_type = scaling.has("rope_type") ? scaling.string("rope_type")
                                  : scaling.has("type")    ? scaling.string("type")
                                                           : "default";
    // The divisors themselves wait for Model::load: head_dim (up to 2^32 here) is
    // not confirmed until the attention tensors are seen.
    if (rope_type == "llama3") c.rope.llama3_scaling = detail::llama3_scaling_from(scaling);
    else if (rope_type != "default")
        throw Error(file, "rope scaling type '" + rope_type + "' is not supported (supported: default, llama3)");

    const bool mixtral = model_type == "mixtral";
    if (mixtral) {
        c.moe.n_expert = cfg.size("num_local_experts");
        c.moe.n_expert_used = cfg.size("num_experts_per_tok");
        c.moe.n_ff_exp = cfg.size("intermediate_size");
        c.n_ff = c.moe.n_ff_exp;  // as GGUF's feed_forward_length: informational, every FFN is MoE
        c.moe.norm_topk_prob = true;  // Mixtral always renormalises its top-k
    } else if (c.arch == Arch::qwen2moe || c.arch == Arch::qwen3moe || c.arch == Arch::qwen35moe) {
        c.moe.n_expert = cfg.size("num_experts");
        c.moe.n_expert_used = cfg.size("num_experts_per_tok");
        c.moe.n_ff_exp = cfg.size("moe_intermediate_size");
        c.moe.n_ff_shexp = cfg.size_or("shared_expert_intermediate_size", 0);
        c.moe.shared_expert_gate = c.moe.n_ff_shexp > 0;
        c.moe.norm_topk_prob = c.arch == Arch::qwen35moe ? true : cfg.boolean_or("norm_topk_prob", false);
        c.n_ff = cfg.size_or("intermediate_size", 0);
        if (cfg.size_or("decoder_sparse_step", 1) != 1 ||
            (cfg.has("mlp_only_layers") && !cfg.at("mlp_only_layers").empty()))
            throw Error(file, "models that mix dense and MoE layers (decoder_sparse_step != 1 or "
                              "mlp_only_layers) are not supported");
    } else {
        c.n_ff = cfg.size("intermediate_size");
    }

    c.attn_qk_norm = c.arch == Arch::qwen3 || c.arch == Arch::qwen3moe || c.arch == Arch::qwen35 ||
                     c.arch == Arch::qwen35moe;
    c.layer_kinds.assign(c.n_layer, LayerKind::attention);
    if (c.arch == Arch::qwen35 || c.arch == Arch::qwen35moe) {
        c.attn_output_gate = cfg.boolean_or("attn_output_gate", true);
        if (cfg.has("layer_types")) {
            const auto& types = cfg.at("layer_types");
            if (!types.is_array() || types.size() != c.n_layer)
                throw Error(file, "layer_types must be an array of num_hidden_layers entries");
            for (std::size_t i = 0; i < c.n_layer; ++i) {
                const std::string t = types[i].is_string() ? types[i].get<std::string>() : "";
                if (t == "linear_attention") c.layer_kinds[i] = LayerKind::gated_deltanet;
                else if (t != "full_attention")
                    throw Error(file, "layer_types[" + std::to_string(i) + "]: unknown layer type " + types[i].dump());
            }
        } else {
            const std::size_t interval = cfg.size_or("full_attention_interval", 4);
            if (interval == 0) throw Error(file, "full_attention_interval must be positive");
            for (std::size_t i = 0; i < c.n_layer; ++i)
                if ((i + 1) % interval != 0) c.layer_kinds[i] = LayerKind::gated_deltanet;
        }
        c.deltanet.conv_kernel = cfg.size("linear_conv_kernel_dim");
        c.deltanet.key_head_dim = cfg.size("linear_key_head_dim");
        c.deltanet.value_head_dim = cfg.size("linear_value_head_dim");
        c.deltanet.n_key_heads = cfg.size("linear_num_key_heads");
        c.deltanet.n_value_heads = cfg.size("linear_num_value_heads");
        c.deltanet.value_heads_tiled = false;
    }

    c.bos_id = cfg.has("bos_token_id") ? detail::first_token_id(cfg.at("bos_token_id"))
               : top.has("bos_token_id") ? detail::first_token_id(top.at("bos_token_id")) : -1;
    c.eos_id = cfg.has("eos_token_id") ? detail::first_token_id(cfg.at("eos_token_id"))
               : top.has("eos_token_id") ? detail::first_token_id(top.at("eos_token_id")) : -1;
    return c;
}

}  // namespace moelab
