// SPDX-License-Identifier: MIT
// moelab/model/weights.hpp — the model's weights as named, shaped views.
//
// Depends on: moelab/tensor.hpp, the standard library.
//
// Every matrix is a WeightMatrix pointing into the memory-mapped file at its
// stored dtype (no copies); shapes are (rows = out features, cols = in
// features). Small 1-D tensors (norm weights, biases) are FloatSpans over f32
// copies that the loader made once (a few KB), so that every norm sees f32 and
// format conventions (Qwen3.5's "1 + w" norms) are settled at load time.
// A field that an architecture does not use stays empty. touch_weight_pages()
// at the end faults every mapped page in before a benchmark times anything.
#pragma once

#include <cstddef>
#include <vector>

#include "moelab/tensor.hpp"

namespace moelab {

// SwiGLU FFN: out = down(silu(gate(x)) * up(x)).
struct DenseFFNWeights {
    WeightMatrix gate;  // (n_ff, n_embd)
    WeightMatrix up;    // (n_ff, n_embd)
    WeightMatrix down;  // (n_embd, n_ff)
};

// Top-k mixture of SwiGLU experts, optionally with an always-on shared expert.
struct MoEFFNWeights {
    WeightMatrix router;                  // (n_expert, n_embd): one logit per expert
    std::vector<DenseFFNWeights> experts;  // n_expert of them, each with n_ff = n_ff_exp
    DenseFFNWeights shared;               // n_ff = n_ff_shexp; empty if none
    WeightMatrix shared_gate;             // (1, n_embd): sigmoid(w . x) scales the shared expert
};

// Softmax attention with GQA.
struct AttentionWeights {
    WeightMatrix wq;  // (n_head * head_dim, n_embd); Qwen3.5: (n_head * 2 * head_dim) = per head [q_h | gate_h]
    WeightMatrix wk;  // (n_head_kv * head_dim, n_embd)
    WeightMatrix wv;  // (n_head_kv * head_dim, n_embd)
    WeightMatrix wo;  // (n_embd, n_head * head_dim)
    FloatSpan bq, bk, bv;        // optional biases (Qwen2): (n_head*head_dim), (n_head_kv*head_dim) x2
    FloatSpan q_norm, k_norm;    // optional per-head RMSNorm weights: (head_dim)
};

// Gated DeltaNet (Qwen3.5 linear attention). See layers/deltanet.hpp.
struct DeltaNetWeights {
    WeightMatrix in_qkv;   // (2 * n_key_heads * d_k + n_value_heads * d_v, n_embd): channels [q | k | v]
    WeightMatrix in_z;     // (n_value_heads * d_v, n_embd): output gate
    WeightMatrix in_beta;  // (n_value_heads, n_embd): write strength, through a sigmoid
    WeightMatrix in_alpha; // (n_value_heads, n_embd): decay input, through softplus
    std::vector<float> conv;  // (channels, conv_kernel) widened to f32: conv[c * kernel + j]
    FloatSpan dt_bias;     // (n_value_heads)
    FloatSpan a;           // (n_value_heads): -exp(A_log), the (negative) decay rate
    FloatSpan norm;        // (d_v): gated RMSNorm weight (plain w, no 1 +)
    WeightMatrix out;      // (n_embd, n_value_heads * d_v)
};

struct LayerWeights {
    FloatSpan attn_norm;  // (n_embd): RMSNorm before the mixer
    FloatSpan ffn_norm;   // (n_embd): RMSNorm before the FFN
    AttentionWeights attn;
    DeltaNetWeights deltanet;
    DenseFFNWeights ffn;  // dense layers
    MoEFFNWeights moe;    // MoE layers
};

struct ModelWeights {
    WeightMatrix token_embd;  // (n_vocab, n_embd): row t is token t's embedding
    FloatSpan output_norm;    // (n_embd)
    WeightMatrix output;      // (n_vocab, n_embd): the LM head (== token_embd when tied)
    std::vector<LayerWeights> layers;
};

// Calls f(m) for every weight matrix of the model, empty ones included
// (W: ModelWeights or const ModelWeights).
template <class W, class F>
void for_each_matrix(W& w, F&& f) {
    auto ffn = [&](auto& d) { f(d.gate), f(d.up), f(d.down); };
    f(w.token_embd), f(w.output);
    for (auto& L : w.layers) {
        f(L.attn.wq), f(L.attn.wk), f(L.attn.wv), f(L.attn.wo);
        auto& N = L.deltanet;
        f(N.in_qkv), f(N.in_z), f(N.in_beta), f(N.in_alpha), f(N.out);
        ffn(L.ffn), f(L.moe.router), ffn(L.moe.shared), f(L.moe.shared_gate);
        for (auto& e : L.moe.experts) ffn(e);
    }
}

// Reads one byte of every 4 KiB page of every weight matrix, so that a timed
// run never pays for first-touch page faults of a memory-mapped file (an MoE
// decode step touches experts that no warm-up token chose). llama.cpp maps its
// files with MAP_POPULATE for the same reason. Returns a checksum of the bytes
// read, so that callers can keep the reads from being optimised away.
inline unsigned touch_weight_pages(const ModelWeights& w) {
    unsigned sum = 0;
    for_each_matrix(w, [&](const WeightMatrix& m) {
        if (m.empty()) return;
        const auto* p = reinterpret_cast<const unsigned char*>(m.data);
        for (std::size_t i = 0; i < m.bytes(); i += 4096) sum += p[i];
    });
    return sum;
}

}  // namespace moelab
