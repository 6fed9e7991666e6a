// SPDX-License-Identifier: MIT
// moelab/model/config.hpp — every hyperparameter of a model, as one plain struct.
//
// Depends on: moelab/kernels/backend.hpp (RopeStyle), the standard library.
//
// The architectures moelab runs differ by a handful of named options, not by
// code: whether attention has q/k/v biases or per-head QK-norm, which RoPE
// pairing applies, whether the FFN is dense or a router over experts (and
// whether the selected weights are renormalised, whether a shared expert
// runs beside them), and, for the Qwen3.5 hybrid, which layers use Gated
// DeltaNet instead of softmax attention. config_gguf.hpp and config_hf.hpp fill
// this struct from the two file formats; everything after loading reads only
// this struct.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "moelab/kernels/backend.hpp"

namespace moelab {

enum class Arch : std::uint8_t {
    llama,      // Llama 2/3/3.1 (dense) and Mixtral (experts): GGUF "llama"
    qwen2,      // Qwen2 / Qwen2.5: q/k/v biases
    qwen3,      // Qwen3: per-head QK RMSNorm
    qwen2moe,   // Qwen1.5-MoE / Qwen2-MoE: experts + shared expert with a sigmoid gate
    qwen3moe,   // Qwen3-30B-A3B style: experts, renormalised top-k
    qwen35,     // Qwen3.5 / Qwen3.6 dense hybrid (Gated DeltaNet + gated attention)
    qwen35moe,  // Qwen3.5 MoE hybrid (e.g. 397B-A17B)
};

constexpr std::string_view arch_name(Arch a) {
    switch (a) {
        case Arch::llama: return "llama";
        case Arch::qwen2: return "qwen2";
        case Arch::qwen3: return "qwen3";
        case Arch::qwen2moe: return "qwen2moe";
        case Arch::qwen3moe: return "qwen3moe";
        case Arch::qwen35: return "qwen35";
        case Arch::qwen35moe: return "qwen35moe";
    }
    return "?";
}

enum class SourceFormat : std::uint8_t { gguf, huggingface };

// Which mixer a layer uses before its FFN.
enum class LayerKind : std::uint8_t {
    attention,       // softmax attention over a KV cache
    gated_deltanet,  // linear attention with a recurrent state (Qwen3.5 hybrid)
};

// Llama 3.1 "llama3" RoPE scaling as config.json's rope_scaling states it:
// wavelengths longer than original_context / low_freq_factor turn `factor`
// times slower, those shorter than original_context / high_freq_factor keep
// their speed, and the band between is interpolated (config_hf.hpp).
struct Llama3RopeScaling {
    double factor = 0;            // slow-down of the long wavelengths (8 for Llama 3.1)
    double low_freq_factor = 0;   // 1 for Llama 3.1
    double high_freq_factor = 0;  // 4 for Llama 3.1
    double original_context = 0;  // original_max_position_embeddings (8192 for Llama 3.1)
};

struct RopeConfig {
    float theta = 10000.0f;             // base of the rotation frequencies theta_i = theta^(-2i/rot_dims)
    std::size_t rot_dims = 0;           // leading dims of each head that rotate (<= head_dim)
    RopeStyle style = RopeStyle::neox;  // pairing; GGUF llama permuted Q/K rows to use interleaved
    // Per-plane divisors of the frequency (Llama 3.1 "llama3" scaling), length
    // rot_dims/2; empty means no scaling. GGUF stores them (rope_freqs.weight);
    // for HF, Model::load computes them from llama3_scaling once the attention
    // tensors have confirmed head_dim.
    std::vector<float> freq_divisors;
    // The parameters behind freq_divisors, when the file states them (HF
    // config.json). GGUF keeps only the divisors, so there this stays empty.
    std::optional<Llama3RopeScaling> llama3_scaling;
};

struct MoEConfig {
    std::size_t n_expert = 0;       // experts per layer (0: dense FFN)
    std::size_t n_expert_used = 0;  // top-k
    std::size_t n_ff_exp = 0;       // hidden width of one expert
    std::size_t n_ff_shexp = 0;     // hidden width of the shared expert (0: none)
    bool norm_topk_prob = false;    // renormalise the k selected weights to sum to 1
    bool shared_expert_gate = false;  // scale the shared expert by sigmoid(w . x)
};

// Gated DeltaNet (Qwen3.5 linear-attention layers).
struct DeltaNetConfig {
    std::size_t conv_kernel = 0;   // width of the causal depthwise convolution (4)
    std::size_t n_key_heads = 0;   // heads of q and k
    std::size_t n_value_heads = 0; // heads of v (a multiple of n_key_heads)
    std::size_t key_head_dim = 0;  // d_k
    std::size_t value_head_dim = 0;  // d_v
    // Value head h reads key head (h mod n_key_heads) in GGUF, whose converter
    // re-tiled the heads, but (h / (n_value_heads / n_key_heads)) with HF weights.
    bool value_heads_tiled = false;
};

struct ModelConfig {
    Arch arch = Arch::llama;
    SourceFormat format = SourceFormat::gguf;
    std::string name;  // general.name or the folder name

    std::size_t n_vocab = 0;
    std::size_t n_embd = 0;     // d_model
    std::size_t n_layer = 0;
    std::size_t n_head = 0;     // query heads
    std::size_t n_head_kv = 0;  // key/value heads (GQA: n_head is a multiple)
    std::size_t head_dim = 0;   // may differ from n_embd / n_head (Qwen3)
    std::size_t n_ff = 0;       // dense FFN hidden width (MoE models: as the file says, unused)
    std::size_t n_ctx_train = 0;
    float rms_eps = 1e-6f;

    bool attn_qk_norm = false;      // per-head RMSNorm on q and k before RoPE
    bool attn_output_gate = false;  // Qwen3.5: q_proj also yields a gate; out *= sigmoid(gate)
    RopeConfig rope;
    MoEConfig moe;
    DeltaNetConfig deltanet;
    std::vector<LayerKind> layer_kinds;  // size n_layer

    bool tied_embeddings = false;  // LM head reuses token_embd

    std::int64_t bos_id = -1, eos_id = -1;

    bool is_moe() const { return moe.n_expert > 0; }
    std::size_t q_dim() const { return n_head * head_dim; }
    std::size_t kv_dim() const { return n_head_kv * head_dim; }
};

}  // namespace moelab
