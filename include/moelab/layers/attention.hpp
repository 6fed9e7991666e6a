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
// The cache keeps each KV head's rows together (model/cache.hpp), so the
// keys of a head are a matrix that the backend's matmul reads where it is.
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
    FloatBuffer k, v;    // (n_tokens, n_head_kv * head_dim): projections, before they go to the cache
    FloatBuffer gate;    // (n_tokens, n_head * head_dim), Qwen3.5 only
    FloatBuffer mixed;   // (n_tokens, n_head * head_dim): attention output before Wo
    FloatBuffer work;    // per task: its KV group's values transposed, queries, scores, outputs
};

// Queries per block in the attention products (below): each block's query heads are the
// "tokens" of two matrix products. 16 queries x 4 heads per KV group make 64 rows, enough
// for the product tiles; the scores of a block take 64 x positions floats.
inline constexpr std::size_t kAttentionQueryBlock = 16;

// x: (n_tokens, n_embd) -> out: (n_tokens, n_embd). The cache must have room
// for positions up to pos0 + n_tokens.
template <class Backend>
void attention(Context<Backend> ctx, const AttentionWeights& w, const ModelConfig& c, LayerCache& cache,
               const RopeTable& angles, const float* x, std::size_t n_tokens, std::size_t pos0, float* out,
               AttentionScratch& s) {
    const auto b = ctx.backend;
    const std::size_t hd = c.head_dim, q_dim = c.q_dim(), kv_dim = c.kv_dim();
    const std::size_t group = c.n_head / c.n_head_kv;

    // Projections. K and V are copied into the cache, head by head, after
    // their norm and RoPE.
    float* q = scratch(s.q, n_tokens * q_dim);
    float* k = scratch(s.k, n_tokens * kv_dim);
    float* v = scratch(s.v, n_tokens * kv_dim);
    const std::size_t max_ctx = cache.k.size() / kv_dim;
    auto keys_of = [&](std::size_t g) { return cache.k.data() + g * max_ctx * hd; };    // (max_ctx, hd)
    auto values_of = [&](std::size_t g) { return cache.v.data() + g * max_ctx * hd; };  // (max_ctx, hd)
    // The three projections run as one fork-join (ops::linear of Products).
    float* gate = nullptr;
    if (c.attn_output_gate) {
        // Qwen3.5: each head's projection is [q_h | gate_h]; split them apart.
        float* q_proj = scratch(s.q_proj, n_tokens * 2 * q_dim);
        gate = scratch(s.gate, n_tokens * q_dim);
        linear(ctx, {{&w.wk, k}, {&w.wv, v}, {&w.wq, q_proj}}, x, n_tokens);
        for (std::size_t t = 0; t < n_tokens; ++t)
            for (std::size_t h = 0; h < c.n_head; ++h)
                for (std::size_t d = 0; d < hd; ++d) {
                    q[t * q_dim + h * hd + d] = q_proj[t * 2 * q_dim + h * 2 * hd + d];
                    gate[t * q_dim + h * hd + d] = q_proj[t * 2 * q_dim + h * 2 * hd + hd + d];
                }
    } else {
        linear(ctx, {{&w.wk, k}, {&w.wv, v}, {&w.wq, q}}, x, n_tokens);
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
            std::copy_n(k_t + g * hd, hd, keys_of(g) + (pos0 + t) * hd);
            std::copy_n(v + t * kv_dim + g * hd, hd, values_of(g) + (pos0 + t) * hd);
        }
    }

    // Scores, softmax and the weighted sum of values, one KV group at a time:
    // the `group` query heads that share KV head g are handled together, so
    // each cached K and V row is read once per group instead of once per
    // query head. Tasks are (KV group, slice of tokens) pairs, each writing
    // only its own slice of `mixed` and using its own part of `work`.
    //
    // The queries go in blocks of kAttentionQueryBlock, counted from the
    // call's first token, and each block runs as two matrix products with the
    // backend's matmul, the block's (query, head) rows as its tokens (one
    // dot() per (query, key, head) and one axpy() per (query, key, head) left
    // the tiles idle: 22% of a dense bf16 prefill of 512 tokens,
    // docs/performance.md):
    //     S = Q K^T          K: the group's keys 0 .. n_keys-1 (in the cache, contiguous), rows = keys
    //     P = softmax(S * scale), causal: query t sees keys 0 .. pos0 + t, the rest of its row 0
    //     A = P V = P (V^T)^T    V^T: the group's values transposed, rows = head dims
    // where n_keys = pos0 + (the block's last query) + 1. Every score is
    // dot(k_j, q) by the kernel contract. A task takes whole blocks, so each
    // block makes the same calls whatever the thread count: the results do
    // not depend on it, even in a backend whose compiled code treats a row
    // differently by its place in a call (the scalar one at -O3 fuses
    // multiply-adds in some places and not others). The zeros past a query's
    // last key add nothing (x + 0 = x; accumulators start at +0, which +-0
    // keeps).
    //
    // A block of one query (decoding) takes its scores from the same product
    // (the group's query heads are its tokens), and sums the values with one
    // axpy() per key, reading them in place: transposing them would be more
    // traffic than the sum itself. (One dot() per (key, head), as before,
    // took about 9 ns each with the cache in L2: MoE Q4_K decoded 88 tok/s at
    // a depth of 1024 that way, 130-137 this way; docs/kernels.md, "Decode
    // attention".) So a decoded position's output can
    // differ from a prefill's in the last bits (the value sums run in another
    // order); they agree within rounding (tests/test_forward_fixtures.cpp
    // compares them). The products' copies take, per task, the group's values
    // transposed: over all tasks about half of one layer's KV cache.
    const std::size_t n_ctx = pos0 + n_tokens;
    float* mixed = scratch(s.mixed, n_tokens * q_dim);
    const float scale = 1.0f / std::sqrt(static_cast<float>(hd));
    // Enough slices of blocks to give every thread work even when n_head_kv is small.
    const std::size_t n_blocks = (n_tokens + kAttentionQueryBlock - 1) / kAttentionQueryBlock;
    const std::size_t want = 2 * ctx.pool.size();
    const std::size_t n_slices = std::min(n_blocks, (want + c.n_head_kv - 1) / c.n_head_kv);
    const std::size_t slice = (n_blocks + n_slices - 1) / n_slices * kAttentionQueryBlock;  // tokens
    const std::size_t n_tasks = c.n_head_kv * n_slices;
    const std::size_t max_rows = std::min(n_tokens, kAttentionQueryBlock) * group;  // (query, head) rows per block
    const std::size_t kv_copies = n_tokens > 1 ? n_ctx * hd : 0;  // the values, transposed
    const std::size_t work_per_task = kv_copies + max_rows * (2 * hd + n_ctx);
    float* work_all = scratch(s.work, n_tasks * work_per_task);
    // Qwen3.5's output gate on query t's heads of group g.
    auto apply_gate = [&](std::size_t g, std::size_t t) {
        if (!gate) return;
        float* a_g = mixed + t * q_dim + g * group * hd;
        for (std::size_t d = 0; d < group * hd; ++d)
            a_g[d] *= 1.0f / (1.0f + std::exp(-gate[t * q_dim + g * group * hd + d]));
    };
    // One query t, the cache in place; scores: (group, >= pos0 + t + 1).
    auto attend_one = [&](std::size_t g, std::size_t t, float* scores) {
        const float* q_g = q + t * q_dim + g * group * hd;  // (group, hd): the group's query heads
        float* a_g = mixed + t * q_dim + g * group * hd;    // (group, hd)
        const std::size_t n_visible = pos0 + t + 1;
        matmul(b, keys_of(g), n_visible, hd, q_g, group, scores, n_visible);
        for (std::size_t i = 0; i < group; ++i) {
            float* row = scores + i * n_visible;
            for (std::size_t j = 0; j < n_visible; ++j) row[j] *= scale;
            softmax(b, row, n_visible);
        }
        std::fill(a_g, a_g + group * hd, 0.0f);
        const float* v_g = values_of(g);
        for (std::size_t j = 0; j < n_visible; ++j)
            for (std::size_t i = 0; i < group; ++i) axpy(b, scores[i * n_visible + j], v_g + j * hd, a_g + i * hd, hd);
        apply_gate(g, t);
    };
    ctx.pool.parallel_for(n_tasks, [&](std::size_t task) {
        const std::size_t g = task / n_slices, t_begin = (task % n_slices) * slice;
        const std::size_t t_end = std::min(n_tokens, t_begin + slice);
        if (t_begin >= t_end) return;
        float* values_t = work_all + task * work_per_task;  // (hd, n_keys)
        float* queries = values_t + kv_copies;              // (rows, hd): row (t - t0) * group + i is head g * group + i
        float* attended = queries + max_rows * hd;          // (rows, hd)
        float* scores = attended + max_rows * hd;           // (rows, n_keys)
        const float* keys = keys_of(g);                     // (n_keys, hd), in the cache
        const float* values = values_of(g);                 // (n_keys, hd), in the cache
        for (std::size_t t0 = t_begin; t0 < t_end; t0 += kAttentionQueryBlock) {
            const std::size_t t1 = std::min(t_end, t0 + kAttentionQueryBlock), rows = (t1 - t0) * group;
            const std::size_t n_keys = pos0 + t1;
            if (t1 - t0 == 1) {
                attend_one(g, t0, scores);
                continue;
            }
            for (std::size_t t = t0; t < t1; ++t)  // the group's query heads are adjacent in q
                std::copy_n(q + t * q_dim + g * group * hd, group * hd, queries + (t - t0) * group * hd);
            matmul(b, keys, n_keys, hd, queries, rows, scores, n_keys);
            for (std::size_t r = 0; r < rows; ++r) {
                float* row = scores + r * n_keys;
                const std::size_t n_visible = pos0 + t0 + r / group + 1;
                for (std::size_t j = 0; j < n_visible; ++j) row[j] *= scale;
                softmax(b, row, n_visible);
                std::fill(row + n_visible, row + n_keys, 0.0f);
            }
            for (std::size_t j = 0; j < n_keys; ++j)
                for (std::size_t d = 0; d < hd; ++d) values_t[d * n_keys + j] = values[j * hd + d];
            matmul(b, values_t, hd, n_keys, scores, rows, attended, hd);
            for (std::size_t t = t0; t < t1; ++t) {
                std::copy_n(attended + (t - t0) * group * hd, group * hd, mixed + t * q_dim + g * group * hd);
                apply_gate(g, t);
            }
        }
    });

    linear(ctx, w.wo, mixed, n_tokens, out);
}

}  // namespace moelab
