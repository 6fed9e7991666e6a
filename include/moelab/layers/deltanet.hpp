// SPDX-License-Identifier: MIT
// moelab/layers/deltanet.hpp — Gated DeltaNet, the linear-attention mixer of
// the Qwen3.5 hybrid (3 of every 4 layers).
//
// Depends on: moelab/layers/context.hpp, moelab/model/cache.hpp, moelab/model/config.hpp,
//             moelab/model/weights.hpp, moelab/ops/linear.hpp.
//
// Instead of attending over a growing KV cache, each value head keeps a fixed
// d_v x d_k state matrix S, a fast-weight memory that maps keys to values and
// is rewritten once per token by the gated delta rule (Yang et al. 2024,
// "Gated Delta Networks"):
//
//     m = W_qkv x ; z = W_z x                       channels of m: [q | k | v]
//     m = silu(causal_conv1d(m))                    depthwise, width conv_kernel
//     q, k = l2norm(q_i), l2norm(k_i) per key head  v split into value heads
//     beta = sigmoid(W_beta x)                      how strongly to write, in (0, 1)
//     g = a * softplus(W_alpha x + dt_bias)         a = -exp(A_log) < 0: log of the decay
//     for each value head h, with key head i(h):
//         S <- exp(g_h) S                          forget a little of everything
//         S <- S + beta_h (v_h - S k_i) k_i^T      replace what k_i currently reads by v_h
//         o_h = S q_i / sqrt(d_k)                  read with the query
//     y_h = rmsnorm(o_h) * w_norm * silu(z_h)       gated output norm (plain w, no 1 +)
//     out = W_out y
//
// The delta rule is one step of online gradient descent on ||S k - v||^2 with
// step size beta: S moves so that reading key k returns (closer to) v. The
// state is the whole memory: its size does not grow with the context, which
// is what changes the cost model next to attention (docs/qwen35.md).
#pragma once

#include <cmath>
#include <cstddef>

#include "moelab/layers/context.hpp"
#include "moelab/model/cache.hpp"
#include "moelab/model/config.hpp"
#include "moelab/model/weights.hpp"
#include "moelab/ops/linear.hpp"

namespace moelab {

struct DeltaNetScratch {
    FloatBuffer conv_out;  // (n_tokens, channels): silu(conv(W_qkv x))
    FloatBuffer conv_in;   // (conv_kernel - 1 + n_tokens, channels): cached inputs, then new ones
    FloatBuffer z;         // (n_tokens, n_value_heads * d_v)
    FloatBuffer beta;      // (n_tokens, n_value_heads)
    FloatBuffer alpha;     // (n_tokens, n_value_heads)
    FloatBuffer heads;     // (n_tokens, n_value_heads * d_v): o, then y
    FloatBuffer sk;        // (n_value_heads, d_v): S k per head
};

// x: (n_tokens, n_embd) -> out: (n_tokens, n_embd). Tokens are consumed in
// order; the conv and recurrent states in `cache` carry across calls.
template <class Backend>
void gated_deltanet(Context<Backend> ctx, const DeltaNetWeights& w, const ModelConfig& c, LayerCache& cache,
                    const float* x, std::size_t n_tokens, float* out, DeltaNetScratch& s) {
    const auto b = ctx.backend;
    const DeltaNetConfig& dn = c.deltanet;
    const std::size_t nk = dn.n_key_heads, nv = dn.n_value_heads, dk = dn.key_head_dim, dv = dn.value_head_dim;
    const std::size_t qk_dim = nk * dk, v_dim = nv * dv, channels = 2 * qk_dim + v_dim;
    const std::size_t K = dn.conv_kernel;

    // Input projections for all tokens at once.
    float* conv_in = scratch(s.conv_in, (K - 1 + n_tokens) * channels);
    float* mixed = conv_in + (K - 1) * channels;  // new inputs follow the cached ones
    float* z = scratch(s.z, n_tokens * v_dim);
    float* beta = scratch(s.beta, n_tokens * nv);
    float* alpha = scratch(s.alpha, n_tokens * nv);
    linear(ctx, w.in_qkv, x, n_tokens, mixed);
    linear(ctx, w.in_z, x, n_tokens, z);
    linear(ctx, w.in_beta, x, n_tokens, beta);
    linear(ctx, w.in_alpha, x, n_tokens, alpha);

    // Causal depthwise convolution over [cached K-1 inputs | new inputs], then
    // SiLU; the last K-1 inputs become the new conv state.
    for (std::size_t i = 0; i < (K - 1) * channels; ++i) conv_in[i] = cache.conv[i];
    float* conv_out = scratch(s.conv_out, n_tokens * channels);
    for (std::size_t t = 0; t < n_tokens; ++t) {
        for (std::size_t ch = 0; ch < channels; ++ch) {
            float acc = 0.0f;
            for (std::size_t j = 0; j < K; ++j) acc += w.conv[ch * K + j] * conv_in[(t + j) * channels + ch];
            conv_out[t * channels + ch] = acc;
        }
    }
    for (std::size_t i = 0; i < (K - 1) * channels; ++i) cache.conv[i] = conv_in[n_tokens * channels + i];
    silu(b, conv_out, n_tokens * channels);

    // The recurrence, token by token; value heads are independent, so they
    // run in parallel, each updating only its own state matrix.
    float* heads = scratch(s.heads, n_tokens * v_dim);
    float* sk_all = scratch(s.sk, nv * dv);
    const float q_scale = 1.0f / std::sqrt(static_cast<float>(dk));
    const std::size_t heads_per_key = nv / nk;
    for (std::size_t t = 0; t < n_tokens; ++t) {
        float* row = conv_out + t * channels;  // [q (nk, dk) | k (nk, dk) | v (nv, dv)]
        for (std::size_t i = 0; i < 2 * nk; ++i) l2norm(b, row + i * dk, c.rms_eps, dk, row + i * dk);
        ctx.pool.parallel_for(nv, [&](std::size_t h) {
            const std::size_t key_head = dn.value_heads_tiled ? h % nk : h / heads_per_key;
            const float* q = row + key_head * dk;
            const float* k = row + qk_dim + key_head * dk;
            const float* v = row + 2 * qk_dim + h * dv;
            float* S = cache.ssm.data() + h * dv * dk;  // (d_v, d_k), row i reads out value component i
            float* sk = sk_all + h * dv;
            const float a = alpha[t * nv + h] + w.dt_bias[h];
            const float softplus = a > 20.0f ? a : std::log1p(std::exp(a));
            const float decay = std::exp(w.a[h] * softplus);
            const float write = 1.0f / (1.0f + std::exp(-beta[t * nv + h]));
            scale(b, S, decay, dv * dk);
            for (std::size_t i = 0; i < dv; ++i) sk[i] = write * (v[i] - dot(b, S + i * dk, k, dk));
            for (std::size_t i = 0; i < dv; ++i) axpy(b, sk[i], k, S + i * dk, dk);  // S += delta k^T
            float* o = heads + t * v_dim + h * dv;
            for (std::size_t i = 0; i < dv; ++i) o[i] = dot(b, S + i * dk, q, dk) * q_scale;
            // Gated output norm: y = rmsnorm(o) * w_norm * silu(z).
            rmsnorm(b, o, w.norm.data, c.rms_eps, dv, o);
            const float* zh = z + t * v_dim + h * dv;
            for (std::size_t i = 0; i < dv; ++i) o[i] *= zh[i] / (1.0f + std::exp(-zh[i]));
        });
    }
    linear(ctx, w.out, heads, n_tokens, out);
}

}  // namespace moelab
