// SPDX-License-Identifier: MIT
// moelab/layers/ffn_moe.hpp — the Mixture-of-Experts FFN: a router picks k of
// n_expert SwiGLU FFNs per token and mixes their outputs.
//
// Depends on: moelab/layers/ffn_dense.hpp, moelab/layers/router.hpp, moelab/model/config.hpp,
//             moelab/ops/linear.hpp.
//
//     out(x) = sum_{e in topk(x)} w_e(x) * FFN_e(x)  [+ sigmoid(g . x) * FFN_shared(x)]
//     PyTorch (per token): sum(w[j] * experts[S[j]](x) for j in range(k)) + torch.sigmoid(g(x)) * shared(x)
//
// Same signature as ffn_dense plus the options, and each expert *is* a dense
// FFN call: the only new machinery is routing and bookkeeping. The batch is
// grouped by expert (a counting sort over the (token, expert) pairs), so each
// selected expert's weights are read once per batch, however many tokens chose
// it. That is the whole cost story of MoE:
//   - one token (decode) reads k experts: n_expert_used / n_expert of the FFN weights;
//   - a batch of B tokens reads every expert that at least one token chose,
//     which tends to all of them as B grows (docs/dense-vs-moe.md).
#pragma once

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <vector>

#include "moelab/layers/ffn_dense.hpp"
#include "moelab/layers/router.hpp"
#include "moelab/model/config.hpp"
#include "moelab/ops/linear.hpp"

namespace moelab {

struct MoEScratch {
    FloatBuffer router_probs;               // (n_tokens, n_expert)
    std::vector<std::uint32_t> expert_ids;  // (n_tokens, n_expert_used): the routing, read it after the call
    FloatBuffer expert_weights;             // (n_tokens, n_expert_used)
    std::vector<std::uint32_t> slot_begin;  // (n_expert + 1): counting-sort offsets
    std::vector<std::uint32_t> slot_pair;   // (n_tokens * n_expert_used): pair index t * k + j, grouped by expert
    FloatBuffer expert_in, expert_out;      // (tokens routed to one expert, n_embd)
    FloatBuffer shared_out;                 // (n_tokens, n_embd)
    FloatBuffer shared_gate_logits;         // (n_tokens)
    DenseFFNScratch dense;
};

// x: (n_tokens, n_embd) -> out: (n_tokens, n_embd). out must not alias x.
template <class Backend>
void ffn_moe(Context<Backend> ctx, const MoEFFNWeights& w, const MoEConfig& moe, const float* x, std::size_t n_tokens,
             float* out, MoEScratch& s) {
    const std::size_t E = moe.n_expert, k = moe.n_expert_used, D = w.router.cols;

    // 1. Route every token.
    float* probs = scratch(s.router_probs, n_tokens * E);
    ops::linear(ctx.backend, ctx.pool, w.router, x, n_tokens, probs);
    s.expert_ids.resize(n_tokens * k);
    float* weights = scratch(s.expert_weights, n_tokens * k);
    route(ctx.backend, probs, n_tokens, moe, s.expert_ids.data(), weights);

    // 2. Group the (token, expert) pairs by expert.
    s.slot_begin.assign(E + 1, 0);
    for (std::uint32_t e : s.expert_ids) ++s.slot_begin[e + 1];
    for (std::size_t e = 0; e < E; ++e) s.slot_begin[e + 1] += s.slot_begin[e];
    s.slot_pair.resize(n_tokens * k);
    {
        std::vector<std::uint32_t> fill(s.slot_begin.begin(), s.slot_begin.end() - 1);
        for (std::size_t pair = 0; pair < n_tokens * k; ++pair)
            s.slot_pair[fill[s.expert_ids[pair]]++] = static_cast<std::uint32_t>(pair);
    }

    // 3. Each chosen expert runs once on all of its tokens; outputs are mixed in.
    for (std::size_t i = 0; i < n_tokens * D; ++i) out[i] = 0.0f;
    for (std::size_t e = 0; e < E; ++e) {
        const std::size_t first = s.slot_begin[e], count = s.slot_begin[e + 1] - first;
        if (count == 0) continue;
        float* xin = scratch(s.expert_in, count * D);
        float* yout = scratch(s.expert_out, count * D);
        for (std::size_t i = 0; i < count; ++i) {
            const float* src = x + (s.slot_pair[first + i] / k) * D;
            for (std::size_t d = 0; d < D; ++d) xin[i * D + d] = src[d];
        }
        ffn_dense(ctx, w.experts[e], xin, count, yout, s.dense);
        for (std::size_t i = 0; i < count; ++i) {
            const std::size_t pair = s.slot_pair[first + i];
            axpy(ctx.backend, weights[pair], yout + i * D, out + (pair / k) * D, D);
        }
    }

    // 4. The shared expert sees every token, scaled by its own sigmoid gate.
    if (!w.shared.gate.empty()) {
        float* shared = scratch(s.shared_out, n_tokens * D);
        ffn_dense(ctx, w.shared, x, n_tokens, shared, s.dense);
        float* gate_logits = scratch(s.shared_gate_logits, n_tokens);
        if (!w.shared_gate.empty()) ops::linear(ctx.backend, ctx.pool, w.shared_gate, x, n_tokens, gate_logits);
        for (std::size_t t = 0; t < n_tokens; ++t) {
            const float scale = w.shared_gate.empty() ? 1.0f : 1.0f / (1.0f + std::exp(-gate_logits[t]));
            axpy(ctx.backend, scale, shared + t * D, out + t * D, D);
        }
    }
}

}  // namespace moelab
