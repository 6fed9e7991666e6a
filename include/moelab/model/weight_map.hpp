// SPDX-License-Identifier: MIT
// moelab/model/weight_map.hpp — one internal name for every tensor, whichever
// file format it came from.
//
// Depends on: moelab/io/tensor_entry.hpp, moelab/model/config.hpp, moelab/error.hpp.
//
// Internal names are GGUF's names ("blk.3.attn_q.weight"), because they are
// short and uniform across architectures. Hugging Face names are translated by
// the table below; per-expert HF tensors ("...mlp.experts.5.up_proj.weight")
// map to the fused internal name plus an expert index (ffn_up_exps.weight,
// expert 5). Names the table does not know (vision towers, MTP heads) are kept
// and reported as unused, never an error.
//
// This is the one place where the two formats' *names* differ. Their *layout*
// differences are settled in model.hpp's bind step:
//   - GGUF experts are fused 3-D tensors (n_expert, n_ff_exp, n_embd); HF has one
//     2-D tensor per expert, or (Qwen3.5) fused gate_up_proj (n_expert, 2 n_ff_exp, n_embd).
//   - GGUF llama Q/K rows are permuted for interleaved-pair RoPE (config_gguf.hpp
//     picks the pairing instead of un-permuting, so weights stay zero-copy).
//   - Qwen3.5: GGUF norms hold 1 + w and ssm_a holds -exp(A_log); HF holds w and A_log.
//   - Tied embeddings: no output tensor; the LM head is token_embd.
#pragma once

#include <charconv>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include "moelab/error.hpp"
#include "moelab/io/tensor_entry.hpp"
#include "moelab/model/config.hpp"

namespace moelab {

struct TensorKey {
    std::string name;     // internal (GGUF-style) name
    int expert = -1;      // >= 0 for one expert's slice of a fused name
    bool operator==(const TensorKey&) const = default;
};

namespace detail {

// HF name after "model.layers.N." -> internal name after "blk.N.".
inline constexpr std::pair<std::string_view, std::string_view> kHfLayerNames[] = {
    {"input_layernorm.weight", "attn_norm.weight"},
    {"post_attention_layernorm.weight", "ffn_norm.weight"},
    {"self_attn.q_proj.weight", "attn_q.weight"},
    {"self_attn.k_proj.weight", "attn_k.weight"},
    {"self_attn.v_proj.weight", "attn_v.weight"},
    {"self_attn.o_proj.weight", "attn_output.weight"},
    {"self_attn.q_proj.bias", "attn_q.bias"},
    {"self_attn.k_proj.bias", "attn_k.bias"},
    {"self_attn.v_proj.bias", "attn_v.bias"},
    {"self_attn.q_norm.weight", "attn_q_norm.weight"},
    {"self_attn.k_norm.weight", "attn_k_norm.weight"},
    {"mlp.gate_proj.weight", "ffn_gate.weight"},
    {"mlp.up_proj.weight", "ffn_up.weight"},
    {"mlp.down_proj.weight", "ffn_down.weight"},
    {"mlp.gate.weight", "ffn_gate_inp.weight"},
    {"block_sparse_moe.gate.weight", "ffn_gate_inp.weight"},
    {"mlp.experts.gate_up_proj", "ffn_gate_up_exps.weight"},  // fused (E, 2F, D), split at bind time
    {"mlp.experts.down_proj", "ffn_down_exps.weight"},        // fused (E, D, F)
    {"mlp.shared_expert.gate_proj.weight", "ffn_gate_shexp.weight"},
    {"mlp.shared_expert.up_proj.weight", "ffn_up_shexp.weight"},
    {"mlp.shared_expert.down_proj.weight", "ffn_down_shexp.weight"},
    {"mlp.shared_expert_gate.weight", "ffn_gate_inp_shexp.weight"},
    {"linear_attn.in_proj_qkv.weight", "attn_qkv.weight"},
    {"linear_attn.in_proj_z.weight", "attn_gate.weight"},
    {"linear_attn.in_proj_b.weight", "ssm_beta.weight"},
    {"linear_attn.in_proj_a.weight", "ssm_alpha.weight"},
    {"linear_attn.conv1d.weight", "ssm_conv1d.weight"},
    {"linear_attn.dt_bias", "ssm_dt.bias"},
    {"linear_attn.A_log", "ssm_a"},
    {"linear_attn.norm.weight", "ssm_norm.weight"},
    {"linear_attn.out_proj.weight", "ssm_out.weight"},
};

// Per-expert HF names "<prefix>.<e>.<suffix>" -> fused internal name.
struct HfExpertName {
    std::string_view prefix, suffix, internal;
};
inline constexpr HfExpertName kHfExpertNames[] = {
    {"mlp.experts.", ".gate_proj.weight", "ffn_gate_exps.weight"},
    {"mlp.experts.", ".up_proj.weight", "ffn_up_exps.weight"},
    {"mlp.experts.", ".down_proj.weight", "ffn_down_exps.weight"},
    {"block_sparse_moe.experts.", ".w1.weight", "ffn_gate_exps.weight"},  // Mixtral: w1 = gate
    {"block_sparse_moe.experts.", ".w3.weight", "ffn_up_exps.weight"},    //          w3 = up
    {"block_sparse_moe.experts.", ".w2.weight", "ffn_down_exps.weight"},  //          w2 = down
};

inline constexpr std::pair<std::string_view, std::string_view> kHfGlobalNames[] = {
    {"embed_tokens.weight", "token_embd.weight"},
    {"norm.weight", "output_norm.weight"},
};

// Parses a leading decimal integer and the dot after it: "12.rest" -> (12, "rest").
inline std::optional<std::pair<int, std::string_view>> split_index(std::string_view s) {
    int value = 0;
    const auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), value);
    if (ec != std::errc() || end == s.data() || value < 0 || end == s.data() + s.size() || *end != '.')
        return std::nullopt;
    return std::pair{value, s.substr(static_cast<std::size_t>(end - s.data()) + 1)};
}

}  // namespace detail

// Internal key of an HF tensor name, or nullopt for names moelab does not use.
inline std::optional<TensorKey> internal_key_from_hf(std::string_view name) {
    if (name == "lm_head.weight") return TensorKey{"output.weight"};
    // Language models inside multimodal wrappers live under model.language_model.
    for (std::string_view prefix : {"model.language_model.", "model."}) {
        if (!name.starts_with(prefix)) continue;
        const std::string_view rest = name.substr(prefix.size());
        for (const auto& [hf, internal] : detail::kHfGlobalNames)
            if (rest == hf) return TensorKey{std::string(internal)};
        if (!rest.starts_with("layers.")) return std::nullopt;
        const auto layer = detail::split_index(rest.substr(7));
        if (!layer) return std::nullopt;
        const auto [il, suffix] = *layer;
        const std::string blk = "blk." + std::to_string(il) + ".";
        for (const auto& [hf, internal] : detail::kHfLayerNames)
            if (suffix == hf) return TensorKey{blk + std::string(internal)};
        for (const auto& e : detail::kHfExpertNames) {
            if (!suffix.starts_with(e.prefix)) continue;
            const auto expert = detail::split_index(suffix.substr(e.prefix.size()));
            if (expert && "." + std::string(expert->second) == e.suffix)
                return TensorKey{blk + std::string(e.internal), expert->first};
        }
        return std::nullopt;
    }
    return std::nullopt;
}

// The usual HF name of an internal key, for error messages ("" if none).
inline std::string hf_name_of(const TensorKey& key) {
    if (key.name == "output.weight") return "lm_head.weight";
    for (const auto& [hf, internal] : detail::kHfGlobalNames)
        if (key.name == internal) return "model." + std::string(hf);
    if (!key.name.starts_with("blk.")) return "";
    const auto layer = detail::split_index(std::string_view(key.name).substr(4));
    if (!layer) return "";
    const std::string prefix = "model.layers." + std::to_string(layer->first) + ".";
    if (key.expert >= 0) {
        for (const auto& e : detail::kHfExpertNames)
            if (layer->second == e.internal)
                return prefix + std::string(e.prefix) + std::to_string(key.expert) + std::string(e.suffix);
        return "";
    }
    for (const auto& [hf, internal] : detail::kHfLayerNames)
        if (layer->second == internal) return prefix + std::string(hf);
    return "";
}

// Internal key of a GGUF tensor name: GGUF names are the internal names, but
// for a few per-architecture aliases.
inline TensorKey internal_key_from_gguf(std::string_view name) {
    std::string key(name);
    constexpr std::string_view alias = "post_attention_norm.weight";  // qwen35 calls ffn_norm this
    if (key.starts_with("blk.") && key.ends_with(alias)) key.replace(key.size() - alias.size(), alias.size(), "ffn_norm.weight");
    return TensorKey{key};
}

// Index of a file's tensors by internal key.
class WeightMap {
public:
    struct Row {
        const io::TensorEntry* entry;
        std::optional<TensorKey> key;  // nullopt: not used by moelab
    };

    WeightMap(const std::vector<io::TensorEntry>& entries, SourceFormat format, std::string file)
        : file_(std::move(file)), format_(format) {
        rows_.reserve(entries.size());
        for (const auto& e : entries) {
            std::optional<TensorKey> key = format == SourceFormat::gguf ? std::optional(internal_key_from_gguf(e.name))
                                                                        : internal_key_from_hf(e.name);
            if (key) {
                const std::string id = key_id(*key);
                if (!index_.emplace(id, &e).second)
                    throw Error(file_, "tensors '" + index_.at(id)->name + "' and '" + e.name +
                                           "' both map to '" + id + "'");
            }
            rows_.push_back({&e, std::move(key)});
        }
    }

    const io::TensorEntry* find(std::string_view name, int expert = -1) const {
        const auto it = index_.find(key_id({std::string(name), expert}));
        return it == index_.end() ? nullptr : it->second;
    }

    const io::TensorEntry& require(std::string_view name, int expert = -1) const {
        if (const auto* e = find(name, expert)) return *e;
        const TensorKey key{std::string(name), expert};
        const std::string hf = format_ == SourceFormat::huggingface ? hf_name_of(key) : "";
        throw Error(file_, "missing tensor '" + (hf.empty() ? key_id(key) : hf + "' ('" + key_id(key)) +
                               (hf.empty() ? "'" : "')"));
    }

    const std::vector<Row>& rows() const { return rows_; }
    const std::string& file() const { return file_; }

    static std::string key_id(const TensorKey& k) {
        return k.expert < 0 ? k.name : k.name + "[" + std::to_string(k.expert) + "]";
    }

private:
    std::string file_;
    SourceFormat format_;
    std::vector<Row> rows_;
    std::unordered_map<std::string, const io::TensorEntry*> index_;
};

}  // namespace moelab
