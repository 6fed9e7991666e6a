// SPDX-License-Identifier: MIT
// moelab/model/cost.hpp — the dense-vs-MoE headline numbers of a model:
// parameters stored, parameters used per token, bytes read per decoded token.
//
// Depends on: moelab/model/config.hpp, moelab/model/weights.hpp.
//
// Counted from the weights the forward pass actually reads (ModelWeights), at
// their stored dtype:
//   total params   every weight of the forward pass, embeddings included
//   active params  what one token uses: everything except the experts it was
//                  not routed to, i.e. total - n_layer * (n_expert - k) * expert params
//   bytes/token    weight bytes one decode step reads: every active matrix
//                  once, the token embedding as a single row, the LM head whole.
//                  Decode is bound by memory bandwidth / this number.
//   FLOPs          of a forward pass over n tokens (forward_flops), for
//                  rates against the machine's peak (moelab bench --model, bench_model).
#pragma once

#include <cstddef>
#include <cstdint>

#include "moelab/model/config.hpp"
#include "moelab/model/weights.hpp"

namespace moelab {

struct ModelCost {
    std::uint64_t total_params = 0;
    std::uint64_t active_params = 0;
    std::uint64_t total_bytes = 0;      // weight bytes of everything the forward pass can read
    std::uint64_t bytes_per_token = 0;  // weight bytes read by one decode step
    std::uint64_t kv_bytes_per_token = 0;         // f32 KV cache growth per token (all attention layers)
    std::uint64_t recurrent_bytes_per_sequence = 0;  // f32 DeltaNet state, fixed per sequence
};

namespace detail {

struct CostCounter {
    std::uint64_t params = 0, bytes = 0;
    void add(const WeightMatrix& w) {
        if (w.empty()) return;
        params += static_cast<std::uint64_t>(w.rows) * w.cols;
        bytes += w.bytes();
    }
    void add(const FloatSpan& v, std::uint64_t stored_bytes_per_value = 4) {
        params += v.size;
        bytes += v.size * stored_bytes_per_value;
    }
    void add(const DenseFFNWeights& f) { add(f.gate), add(f.up), add(f.down); }
};

}  // namespace detail

inline ModelCost model_cost(const ModelConfig& c, const ModelWeights& w) {
    detail::CostCounter total, inactive;
    total.add(w.token_embd);
    if (!c.tied_embeddings) total.add(w.output);
    total.add(w.output_norm);
    for (std::size_t il = 0; il < w.layers.size(); ++il) {
        const LayerWeights& L = w.layers[il];
        total.add(L.attn_norm), total.add(L.ffn_norm);
        total.add(L.attn.wq), total.add(L.attn.wk), total.add(L.attn.wv), total.add(L.attn.wo);
        total.add(L.attn.bq), total.add(L.attn.bk), total.add(L.attn.bv), total.add(L.attn.q_norm), total.add(L.attn.k_norm);
        const DeltaNetWeights& N = L.deltanet;
        total.add(N.in_qkv), total.add(N.in_z), total.add(N.in_beta), total.add(N.in_alpha), total.add(N.out);
        total.add(FloatSpan{N.conv.data(), N.conv.size()});
        total.add(N.dt_bias), total.add(N.a), total.add(N.norm);
        total.add(L.ffn);
        total.add(L.moe.router), total.add(L.moe.shared), total.add(L.moe.shared_gate);
        for (const auto& e : L.moe.experts) total.add(e);
        // A token skips all but k experts of this layer (experts of one layer share a shape).
        if (!L.moe.experts.empty())
            for (std::size_t e = c.moe.n_expert_used; e < L.moe.experts.size(); ++e) inactive.add(L.moe.experts[e]);
    }
    ModelCost cost;
    cost.total_params = total.params;
    cost.total_bytes = total.bytes;
    cost.active_params = total.params - inactive.params;
    // One decode step: all active bytes, but of the embedding table only one row
    // (unless it doubles as the LM head, which is read whole).
    const std::uint64_t embd_bytes = w.token_embd.bytes();
    cost.bytes_per_token = total.bytes - inactive.bytes - (c.tied_embeddings ? 0 : embd_bytes - w.token_embd.row_bytes());
    for (std::size_t il = 0; il < c.n_layer; ++il) {
        if (c.layer_kinds[il] == LayerKind::attention) {
            cost.kv_bytes_per_token += 2 * c.kv_dim() * sizeof(float);
        } else {
            const DeltaNetConfig& dn = c.deltanet;
            const std::size_t channels = 2 * dn.n_key_heads * dn.key_head_dim + dn.n_value_heads * dn.value_head_dim;
            cost.recurrent_bytes_per_sequence +=
                (dn.n_value_heads * dn.value_head_dim * dn.key_head_dim + (dn.conv_kernel - 1) * channels) * sizeof(float);
        }
    }
    return cost;
}

// FLOPs of one forward() of n new tokens after n_past cached ones, with logits
// of the last position only (a prefill from an empty cache: n_past = 0; one
// decode step: n = 1). 2 FLOPs per multiply-add:
//   matrices:  2 x (active parameters - embedding table - LM head) per token
//              (norm vectors are counted too; they are < 0.1 % of a layer;
//              the embedding lookup is a copy, no FLOPs);
//   LM head:   once (the last position's logits);
//   attention: per attention layer and query head, q.k and p.v over p + 1
//              positions for the token at position p: 4 x head_dim x (p + 1),
//              summed over p = n_past .. n_past + n - 1, i.e.
//              2 x q_dim x n x (2 n_past + n + 1).
// DeltaNet's state update (O(n_v d_v d_k) per token) is not counted: next to
// its projections it is a few percent.
inline double forward_flops(const ModelConfig& c, const ModelWeights& w, const ModelCost& cost, std::size_t n,
                            std::size_t n_past = 0) {
    const double embd = static_cast<double>(w.token_embd.rows) * static_cast<double>(w.token_embd.cols);
    const double head = c.tied_embeddings ? embd : static_cast<double>(w.output.rows) * static_cast<double>(w.output.cols);
    const double per_token = 2.0 * (static_cast<double>(cost.active_params) - embd - (c.tied_embeddings ? 0.0 : head));
    const double N = static_cast<double>(n), past = static_cast<double>(n_past);
    double attention = 0;
    for (std::size_t il = 0; il < c.n_layer; ++il)
        if (c.layer_kinds[il] == LayerKind::attention)
            attention += 2.0 * static_cast<double>(c.q_dim()) * N * (2 * past + N + 1);
    return per_token * N + 2.0 * head + attention;
}

// The same figures from the hyperparameters alone, for checkpoints one has
// not downloaded (moelab inspect --config): every matrix the architecture
// defines, stored at `bytes_per_weight` (e.g. 2 for bf16, ~0.56 for Q4_K),
// with 1-D tensors (norms, biases) counted at 4 bytes. For a loaded model
// it agrees exactly with model_cost() in parameters (tests/test_model_load.cpp).
inline ModelCost model_cost_from_config(const ModelConfig& c, double bytes_per_weight) {
    const double D = static_cast<double>(c.n_embd);
    double matrices = 0, vectors = 0, inactive = 0, per_token_matrices = 0;
    auto matrix = [&](double rows, double cols) { matrices += rows * cols; };
    matrix(static_cast<double>(c.n_vocab), D);                                 // token_embd
    if (!c.tied_embeddings) matrix(static_cast<double>(c.n_vocab), D);         // output
    vectors += D;                                                              // output_norm
    const DeltaNetConfig& dn = c.deltanet;
    const double qk = static_cast<double>(dn.n_key_heads * dn.key_head_dim), vd = static_cast<double>(dn.n_value_heads * dn.value_head_dim);
    for (std::size_t il = 0; il < c.n_layer; ++il) {
        vectors += 2 * D;
        if (c.layer_kinds[il] == LayerKind::attention) {
            const double q = static_cast<double>(c.q_dim()), kv = static_cast<double>(c.kv_dim());
            matrix(q * (c.attn_output_gate ? 2 : 1), D), matrix(kv, D), matrix(kv, D), matrix(D, q);
            if (c.arch == Arch::qwen2 || c.arch == Arch::qwen2moe) vectors += q + 2 * kv;
            if (c.attn_qk_norm) vectors += 2 * static_cast<double>(c.head_dim);
        } else {
            const double nv = static_cast<double>(dn.n_value_heads), channels = 2 * qk + vd;
            matrix(channels, D), matrix(vd, D), matrix(nv, D), matrix(nv, D), matrix(D, vd);
            vectors += channels * static_cast<double>(dn.conv_kernel) + 2 * nv + static_cast<double>(dn.value_head_dim);
        }
        if (!c.is_moe()) {
            matrix(3 * static_cast<double>(c.n_ff), D);
            continue;
        }
        const double expert = 3 * static_cast<double>(c.moe.n_ff_exp) * D;
        matrix(static_cast<double>(c.moe.n_expert), D);  // router
        matrices += static_cast<double>(c.moe.n_expert) * expert;
        inactive += static_cast<double>(c.moe.n_expert - c.moe.n_expert_used) * expert;
        if (c.moe.n_ff_shexp) {
            matrix(3 * static_cast<double>(c.moe.n_ff_shexp), D);
            if (c.moe.shared_expert_gate) matrix(1, D);
        }
    }
    // One decode step reads one embedding row unless the table is also the LM head.
    per_token_matrices = matrices - inactive - (c.tied_embeddings ? 0 : static_cast<double>(c.n_vocab - 1) * D);
    ModelCost cost;
    cost.total_params = static_cast<std::uint64_t>(matrices + vectors);
    cost.active_params = static_cast<std::uint64_t>(matrices + vectors - inactive);
    cost.total_bytes = static_cast<std::uint64_t>(matrices * bytes_per_weight + vectors * 4);
    cost.bytes_per_token = static_cast<std::uint64_t>(per_token_matrices * bytes_per_weight + vectors * 4);
    for (std::size_t il = 0; il < c.n_layer; ++il) {
        if (c.layer_kinds[il] == LayerKind::attention) {
            cost.kv_bytes_per_token += 2 * c.kv_dim() * sizeof(float);
        } else {
            const std::size_t channels = 2 * dn.n_key_heads * dn.key_head_dim + dn.n_value_heads * dn.value_head_dim;
            cost.recurrent_bytes_per_sequence +=
                (dn.n_value_heads * dn.value_head_dim * dn.key_head_dim + (dn.conv_kernel - 1) * channels) * sizeof(float);
        }
    }
    return cost;
}

}  // namespace moelab
