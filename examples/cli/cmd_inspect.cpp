// SPDX-License-Identifier: MIT
// moelab inspect MODEL [--json]: what a checkpoint is and what it costs per token.
#include <algorithm>
#include <cinttypes>
#include <cstdio>
#include <string>

#include <nlohmann/json.hpp>

#include "cli/cli.hpp"
#include "moelab/model/cost.hpp"
#include "moelab/io/untrusted_json.hpp"
#include "moelab/model/config_hf.hpp"
#include "moelab/model/model.hpp"

namespace moelab::cli {

namespace {

std::string shape_string(const std::vector<std::uint64_t>& shape) {
    std::string s = "[";
    for (std::size_t i = 0; i < shape.size(); ++i) s += (i ? ", " : "") + std::to_string(shape[i]);
    return s + "]";
}

std::string human(double v, const char* unit) {
    const char* prefixes[] = {"", "K", "M", "G", "T"};
    int p = 0;
    while (v >= 1000 && p < 4) v /= 1000, ++p;
    char buf[64];
    std::snprintf(buf, sizeof buf, "%.2f %s%s", v, prefixes[p], unit);
    return buf;
}

nlohmann::json hyperparameters(const ModelConfig& c) {
    nlohmann::json j = {
        {"arch", std::string(arch_name(c.arch))},
        {"format", c.format == SourceFormat::gguf ? "gguf" : "huggingface"},
        {"name", c.name},
        {"n_vocab", c.n_vocab}, {"n_embd", c.n_embd}, {"n_layer", c.n_layer},
        {"n_head", c.n_head}, {"n_head_kv", c.n_head_kv}, {"head_dim", c.head_dim},
        {"n_ff", c.n_ff}, {"n_ctx_train", c.n_ctx_train}, {"rms_eps", c.rms_eps},
        {"attn_qk_norm", c.attn_qk_norm}, {"attn_output_gate", c.attn_output_gate},
        {"rope_theta", c.rope.theta}, {"rope_dims", c.rope.rot_dims},
        {"rope_style", c.rope.style == RopeStyle::neox ? "neox" : "interleaved"},
        {"rope_scaled", c.rope.llama3_scaling.has_value() || !c.rope.freq_divisors.empty()},
        {"tied_embeddings", c.tied_embeddings},
        {"bos_id", c.bos_id}, {"eos_id", c.eos_id},
    };
    // Llama 3.1 scaling: the parameters where the file states them (HF), and
    // the per-plane divisors they give (all GGUF stores, in rope_freqs.weight).
    if (c.rope.llama3_scaling) {
        const Llama3RopeScaling& s = *c.rope.llama3_scaling;
        j["rope_scaling"] = {{"type", "llama3"}, {"factor", s.factor}, {"low_freq_factor", s.low_freq_factor},
                             {"high_freq_factor", s.high_freq_factor}, {"original_context", s.original_context}};
    } else if (!c.rope.freq_divisors.empty()) {
        j["rope_scaling"] = {{"type", "per-plane divisors (rope_freqs.weight)"}};
    }
    if (!c.rope.freq_divisors.empty()) {
        const auto [lo, hi] = std::minmax_element(c.rope.freq_divisors.begin(), c.rope.freq_divisors.end());
        j["rope_scaling"]["divisors"] = {{"n", c.rope.freq_divisors.size()}, {"min", *lo}, {"max", *hi}};
    }
    if (c.is_moe()) {
        j["n_expert"] = c.moe.n_expert;
        j["n_expert_used"] = c.moe.n_expert_used;
        j["n_ff_exp"] = c.moe.n_ff_exp;
        j["n_ff_shexp"] = c.moe.n_ff_shexp;
        j["shared_expert_gate"] = c.moe.shared_expert_gate;
        j["norm_topk_prob"] = c.moe.norm_topk_prob;
    }
    // One letter per layer, in order: A = softmax attention, D = Gated DeltaNet.
    std::string kinds;
    std::size_t n_deltanet = 0;
    for (auto k : c.layer_kinds) {
        n_deltanet += k == LayerKind::gated_deltanet;
        kinds += k == LayerKind::gated_deltanet ? 'D' : 'A';
    }
    j["layer_kinds"] = kinds;
    if (n_deltanet) {
        j["layer_kinds_legend"] = "A attention, D gated DeltaNet";
        j["n_deltanet_layers"] = n_deltanet;
        j["ssm_conv_kernel"] = c.deltanet.conv_kernel;
        j["ssm_n_key_heads"] = c.deltanet.n_key_heads;
        j["ssm_n_value_heads"] = c.deltanet.n_value_heads;
        j["ssm_key_head_dim"] = c.deltanet.key_head_dim;
        j["ssm_value_head_dim"] = c.deltanet.value_head_dim;
        // Which key head value head h reads: h mod n_key_heads (tiled, GGUF) or h / (n_v / n_k) (HF).
        j["ssm_value_heads_tiled"] = c.deltanet.value_heads_tiled;
    }
    return j;
}

}  // namespace

// moelab inspect --config config.json [--bits-per-weight B]: the cost of a
// checkpoint from its hyperparameters alone (no weights needed).
int inspect_config(const Args& args) {
    const std::string path = args.get("config");
    const ModelConfig c = config_from_hf(io::read_json_file(path), path);
    const double bits = args.number("bits-per-weight", 16.0);
    if (!(bits > 0 && bits <= 32)) throw UsageError("--bits-per-weight must be in (0, 32]");
    const ModelCost cost = model_cost_from_config(c, bits / 8.0);
    const nlohmann::json hyper = hyperparameters(c);
    const nlohmann::json out = {{"config", path},
                                {"bits_per_weight", bits},
                                {"hyperparameters", hyper},
                                {"cost", {{"total_params", cost.total_params},
                                          {"active_params", cost.active_params},
                                          {"total_weight_bytes", cost.total_bytes},
                                          {"weight_bytes_per_token", cost.bytes_per_token},
                                          {"kv_cache_bytes_per_token", cost.kv_bytes_per_token},
                                          {"recurrent_state_bytes_per_sequence", cost.recurrent_bytes_per_sequence}}}};
    if (args.has("json")) {
        std::puts(out.dump(2).c_str());
        return 0;
    }
    std::printf("config: %s (weights assumed at %.2f bits each)\n\nhyperparameters:\n", path.c_str(), bits);
    for (const auto& [key, value] : hyper.items())
        std::printf("  %-22s %s\n", key.c_str(), value.is_string() ? value.get<std::string>().c_str() : value.dump().c_str());
    std::printf("\nper token:\n  total parameters          %s\n  active parameters         %s\n"
                "  weight bytes per token    %s\n  KV cache per token        %s (f32)\n  recurrent state           %s per sequence (f32)\n",
                human(static_cast<double>(cost.total_params), "").c_str(), human(static_cast<double>(cost.active_params), "").c_str(),
                human(static_cast<double>(cost.bytes_per_token), "B").c_str(), human(static_cast<double>(cost.kv_bytes_per_token), "B").c_str(),
                human(static_cast<double>(cost.recurrent_bytes_per_sequence), "B").c_str());
    return 0;
}

int cmd_inspect(int argc, char** argv) {
    const Args args(argc, argv, {"json"});
    args.allow_only({"json", "config", "bits-per-weight"});
    if (args.has("config")) {
        if (!args.positional().empty()) throw UsageError("give either MODEL or --config, not both");
        return inspect_config(args);
    }
    if (args.positional().size() != 1) throw UsageError("usage: moelab inspect MODEL [--json] | --config config.json [--bits-per-weight B]");
    const Model model = Model::load(args.positional()[0]);
    const ModelConfig& c = model.config();
    const ModelCost cost = model_cost(c, model.weights());

    nlohmann::json tensors = nlohmann::json::array();
    std::uint64_t all_bytes = 0, all_elements = 0;  // every tensor, for the overall bits per weight
    for (const auto& row : model.weight_map().rows()) {
        const auto& e = *row.entry;
        all_bytes += e.nbytes;
        all_elements += e.n_elements();
        const double bits = e.n_elements() ? 8.0 * static_cast<double>(e.nbytes) / static_cast<double>(e.n_elements()) : 0.0;
        tensors.push_back({{"name", e.name},
                           {"internal", row.key ? WeightMap::key_id(*row.key) : ""},
                           {"shape", e.shape},
                           {"dtype", e.type_name},
                           {"bytes", e.nbytes},
                           {"bits_per_weight", bits}});
    }
    nlohmann::json headline = {{"total_params", cost.total_params},
                               {"active_params", cost.active_params},
                               {"total_weight_bytes", cost.total_bytes},
                               {"weight_bytes_per_token", cost.bytes_per_token},
                               {"kv_cache_bytes_per_token", cost.kv_bytes_per_token},
                               {"recurrent_state_bytes_per_sequence", cost.recurrent_bytes_per_sequence}};
    if (c.is_moe())  // the dense model with the same active parameters stores only those
        headline["as_dense_with_same_active"] = {{"total_params", cost.active_params},
                                                 {"active_params", cost.active_params},
                                                 {"weight_bytes_per_token", cost.bytes_per_token},
                                                 {"total_weight_bytes", cost.bytes_per_token}};

    if (args.has("json")) {
        const nlohmann::json out = {{"model", model.path().string()},
                                    {"hyperparameters", hyperparameters(c)},
                                    {"tensors", tensors},
                                    {"weights", {{"bytes", all_bytes},
                                                 {"elements", all_elements},
                                                 {"bits_per_weight", all_elements ? 8.0 * static_cast<double>(all_bytes) /
                                                                                       static_cast<double>(all_elements)
                                                                                  : 0.0}}},
                                    {"cost", headline}};
        std::puts(out.dump(2).c_str());
        return 0;
    }

    std::printf("model: %s\n\n", model.path().string().c_str());
    std::printf("hyperparameters:\n");
    const nlohmann::json hyper = hyperparameters(c);
    for (const auto& [key, value] : hyper.items())
        std::printf("  %-22s %s\n", key.c_str(), value.is_string() ? value.get<std::string>().c_str() : value.dump().c_str());

    std::printf("\ntensors (%zu):\n  %-48s %-34s %-20s %-6s %12s %6s\n", tensors.size(), "name", "internal", "shape",
                "dtype", "bytes", "bits/w");
    for (const auto& row : model.weight_map().rows()) {
        const auto& e = *row.entry;
        std::printf("  %-48s %-34s %-20s %-6s %12" PRIu64 " %6.2f\n", e.name.c_str(),
                    row.key ? WeightMap::key_id(*row.key).c_str() : "(unused)", shape_string(e.shape).c_str(),
                    e.type_name.c_str(), e.nbytes,
                    e.n_elements() ? 8.0 * static_cast<double>(e.nbytes) / static_cast<double>(e.n_elements()) : 0.0);
    }
    std::printf("  overall: %s in %s weights, %.3f bits per weight\n", human(static_cast<double>(all_bytes), "B").c_str(),
                human(static_cast<double>(all_elements), "").c_str(),
                all_elements ? 8.0 * static_cast<double>(all_bytes) / static_cast<double>(all_elements) : 0.0);

    std::printf("\ndense vs MoE, per token:\n");
    std::printf("  total parameters          %s\n", human(static_cast<double>(cost.total_params), "").c_str());
    std::printf("  active parameters         %s (%.1f%% of total)\n", human(static_cast<double>(cost.active_params), "").c_str(),
                100.0 * static_cast<double>(cost.active_params) / static_cast<double>(cost.total_params));
    std::printf("  weight bytes per token    %s (decode reads these once per token)\n",
                human(static_cast<double>(cost.bytes_per_token), "B").c_str());
    std::printf("  KV cache per token        %s (f32)\n", human(static_cast<double>(cost.kv_bytes_per_token), "B").c_str());
    if (cost.recurrent_bytes_per_sequence)
        std::printf("  recurrent state           %s per sequence (f32, fixed)\n",
                    human(static_cast<double>(cost.recurrent_bytes_per_sequence), "B").c_str());
    if (c.is_moe())
        std::printf("  as a dense model with the same active parameters: %s total, %s per token — the MoE stores %.1fx more\n",
                    human(static_cast<double>(cost.active_params), "").c_str(),
                    human(static_cast<double>(cost.bytes_per_token), "B").c_str(),
                    static_cast<double>(cost.total_params) / static_cast<double>(cost.active_params));
    return 0;
}

}  // namespace moelab::cli
