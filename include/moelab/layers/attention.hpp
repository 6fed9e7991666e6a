// SPDX-License-Identifier: MIT
// moelab/layers/attention.hpp — causal softmax attention with grouped-query
// heads, RoPE and a KV cache (plus the small options the architectures add).
//
// Depends on: moelab/layers/context.hpp, moelab/layers/rope.hpp, moelab/model/cache.hpp,
//             moelab/model/config.hpp, moelab/model/weights.hpp, moelab/ops/linear.hpp.
//
// For tokens at positions pos0 .. pos0+n-1 (PyTorch-like, per head h):
//     q, k, v = x Wq^T (+bq), x Wk^T (+bk), x Wv^T (+bv)
//     q_h, k_g = rmsnorm(q_h), rmsnorm(k_g)                       if attn_qk_norm (Qwen3)
//     q_h, k_g = rope(q_h, p), rope(k_g, p)                        first rot_dims dims only
//     a_h = softmax(q_h K_g^T / sqrt(head_dim), causal) V_g       g = h / (n_head / n_head_kv)
//     a_h = a_h * sigmoid(gate_h)                                  if attn_output_gate (Qwen3.5)
//     out = a Wo^T
// K and V of each new position are appended to the cache, so decoding one
// token costs one row of projections plus a pass over the cached positions.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstddef>

#include "moelab/layers/context.hpp"
#include "moelab/layers/rope.hpp"
#include "moelab/model/cache.hpp"
#include "moelab/model/config.hpp"
#include "moelab/model/weights.hpp"
#include "moelab/ops/linear.hpp"

namespace moelab {

struct AttentionScratch {
    FloatBuffer q_proj;  // (n_tokens, n_head * head_dim * (1 + has_gate)): projection output
    FloatBuffer q;       // (n_tokens, n_head * head_dim)
    FloatBuffer gate;    // (n_tokens, n_head * head_dim), Qwen3.5 only
    FloatBuffer mixed;   // (n_tokens, n_head * head_dim): attention output before Wo
    FloatBuffer scores;  // (tasks, heads per KV group, positions): softmax weights, one row per query head
};

// x: (n_tokens, n_embd) -> out: (n_tokens, n_embd). The cache must have room
// for positions up to pos0 + n_tokens.
template <class Backend>
void attention(Context<Backend> ctx, const AttentionWeights& w, const ModelConfig& c, LayerCache& cache,
               const RopeTable& angles, const float* x, std::size_t n_tokens, std::size_t pos0, float* out,
               AttentionScratch& s) {
    const auto b = ctx.backend;
    const std::size_t hd = c.head_dim, q_dim = c.q_dim(), kv_dim = c.kv_dim();
    const std::size_t group = c.n_head / c.n_head_kv;

    // Projections. K and V go straight into the cache rows of their positions.
    float* q = scratch(s.q, n_tokens * q_dim);
    float* k = cache.k.data() + pos0 * kv_dim;
    float* v = cache.v.data() + pos0 * kv_dim;
    linear(ctx, w.wk, x, n_tokens, k);
    linear(ctx, w.wv, x, n_tokens, v);
    float* gate = nullptr;
    if (c.attn_output_gate) {
        // Qwen3.5: each head's projection is [q_h | gate_h]; split them apart.
        float* q_proj = scratch(s.q_proj, n_tokens * 2 * q_dim);
        gate = scratch(s.gate, n_tokens * q_dim);
        linear(ctx, w.wq, x, n_tokens, q_proj);
        for (std::size_t t = 0; t < n_tokens; ++t)
            for (std::size_t h = 0; h < c.n_head; ++h)
                for (std::size_t d = 0; d < hd; ++d) {
                    q[t * q_dim + h * hd + d] = q_proj[t * 2 * q_dim + h * 2 * hd + d];
                    gate[t * q_dim + h * hd + d] = q_proj[t * 2 * q_dim + h * 2 * hd + hd + d];
                }
    } else {
        linear(ctx, w.wq, x, n_tokens, q);
    }

    for (std::size_t t = 0; t < n_tokens; ++t) {
        float* q_t = q + t * q_dim;
        float* k_t = k + t * kv_dim;
        if (!w.bq.empty()) add(b, q_t, w.bq.data, q_t, q_dim);
        if (!w.bk.empty()) add(b, k_t, w.bk.data, k_t, kv_dim);
        if (!w.bv.empty()) add(b, v + t * kv_dim, w.bv.data, v + t * kv_dim, kv_dim);
        for (std::size_t h = 0; h < c.n_head; ++h) {
            if (c.attn_qk_norm) rmsnorm(b, q_t + h * hd, w.q_norm.data, c.rms_eps, hd, q_t + h * hd);
            rope(b, q_t + h * hd, c.rope.rot_dims, c.rope.style, angles.cos_at(t), angles.sin_at(t));
        }
        for (std::size_t g = 0; g < c.n_head_kv; ++g) {
            if (c.attn_qk_norm) rmsnorm(b, k_t + g * hd, w.k_norm.data, c.rms_eps, hd, k_t + g * hd);
            rope(b, k_t + g * hd, c.rope.rot_dims, c.rope.style, angles.cos_at(t), angles.sin_at(t));
        }
    }

    // Scores, softmax and the weighted sum of values, one KV group at a time:
    // the `group` query heads that share KV head g are handled together, so
    // each cached K and V row is read from memory once per group instead of
    // once per query head (at long context the cache, not the weights, is
    // what attention streams). Every head still gets exactly the same dot()
    // per position and the same axpy() sequence over positions as it would on
    // its own, so the result does not depend on the grouping or on how tasks
    // are split. Tasks are (KV group, slice of tokens) pairs, each writing only
    // its own slice of `mixed` and using its own rows of `scores`.
    const std::size_t n_ctx = pos0 + n_tokens;
    float* mixed = scratch(s.mixed, n_tokens * q_dim);
    const float scale = 1.0f / std::sqrt(static_cast<float>(hd));
    // Enough token slices to give every thread work even when n_head_kv is small.
    const std::size_t want = 2 * ctx.pool.size();
    const std::size_t n_slices = std::min(n_tokens, (want + c.n_head_kv - 1) / c.n_head_kv);
    const std::size_t slice = (n_tokens + n_slices - 1) / n_slices;
    const std::size_t n_tasks = c.n_head_kv * n_slices;
    float* scores_all = scratch(s.scores, n_tasks * group * n_ctx);  // (n_tasks, group, n_ctx)
    ctx.pool.parallel_for(n_tasks, [&](std::size_t task) {
        const std::size_t g = task / n_slices, t_begin = (task % n_slices) * slice;
        const std::size_t t_end = std::min(n_tokens, t_begin + slice);
        float* scores = scores_all + task * group * n_ctx;  // (group, n_ctx): row i is head g * group + i
        for (std::size_t t = t_begin; t < t_end; ++t) {
            const float* q_g = q + t * q_dim + g * group * hd;  // (group, hd): the group's query heads
            float* a_g = mixed + t * q_dim + g * group * hd;    // (group, hd)
            const std::size_t n_visible = pos0 + t + 1;          // causal: positions 0 .. pos0 + t
            for (std::size_t j = 0; j < n_visible; ++j) {
                const float* k_j = cache.k.data() + j * kv_dim + g * hd;
                for (std::size_t i = 0; i < group; ++i) scores[i * n_ctx + j] = dot(b, k_j, q_g + i * hd, hd) * scale;
            }
            for (std::size_t i = 0; i < group; ++i) softmax(b, scores + i * n_ctx, n_visible);
            for (std::size_t d = 0; d < group * hd; ++d) a_g[d] = 0.0f;
            for (std::size_t j = 0; j < n_visible; ++j) {
                const float* v_j = cache.v.data() + j * kv_dim + g * hd;
                for (std::size_t i = 0; i < group; ++i) axpy(b, scores[i * n_ctx + j], v_j, a_g + i * hd, hd);
            }
            if (gate)
                for (std::size_t d = 0; d < group * hd; ++d)
                    a_g[d] *= 1.0f / (1.0f + std::exp(-gate[t * q_dim + g * group * hd + d]));
        }
    });

    linear(ctx, w.wo, mixed, n_tokens, out);
}

}  // namespace moelab
