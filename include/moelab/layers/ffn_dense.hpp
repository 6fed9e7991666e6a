// SPDX-License-Identifier: MIT
// moelab/layers/ffn_dense.hpp — the dense SwiGLU feed-forward network.
//
// Depends on: moelab/layers/context.hpp, moelab/model/weights.hpp, moelab/ops/linear.hpp.
//
//     out = W_down (silu(W_gate x) * (W_up x))          (Shazeer 2020, "GLU variants")
//     PyTorch: down(F.silu(gate(x)) * up(x))
//
// Cost per token: 3 * n_ff * n_embd multiply-adds (2 FLOPs each), and in
// decode every one of those weights is read from memory once — which is why
// a dense FFN's decode speed is its weight bytes divided by memory bandwidth.
// ffn_moe.hpp builds the Mixture-of-Experts FFN out of calls to this function.
#pragma once

#include <cstddef>

#include "moelab/layers/context.hpp"
#include "moelab/model/weights.hpp"
#include "moelab/ops/linear.hpp"

namespace moelab {

struct DenseFFNScratch {
    FloatBuffer gate;                    // (n_tokens, n_ff)
    FloatBuffer up;                      // (n_tokens, n_ff)
    ops::RoundedActivations x_rounded;   // x rounded for gate and up (int8, bf16 modes)
};

// x: (n_tokens, n_embd) -> out: (n_tokens, n_embd). out must not alias x.
template <class Backend>
void ffn_dense(Context<Backend> ctx, const DenseFFNWeights& w, const float* x, std::size_t n_tokens, float* out,
               DenseFFNScratch& s) {
    const std::size_t n_ff = w.gate.rows;
    float* gate = scratch(s.gate, n_tokens * n_ff);
    float* up = scratch(s.up, n_tokens * n_ff);
    // Gate, up and silu(gate) * up in one fork-join over ranges of hidden
    // units: each range is finished where it was computed, by the thread that
    // computed it. silu * up is elementwise and a row's product does not
    // depend on the split, so the bits are those of three separate passes.
    // (A separate swiglu ran on one thread while the other waited: 3.1 M
    // values per layer in a prefill of 512 tokens.)
    const ops::ProductInput in = ops::round_for(ctx.backend, ctx.activations, {&w.gate, &w.up}, x, n_tokens,
                                                w.gate.cols, s.x_rounded, &ctx.pool);
    ctx.pool.parallel_ranges(n_ff, ops::kRowGrain, [&](std::size_t r0, std::size_t r1) {
        ops::linear_rows(ctx.backend, w.gate, r0, r1, in, n_tokens, gate, n_ff);
        ops::linear_rows(ctx.backend, w.up, r0, r1, in, n_tokens, up, n_ff);
        for (std::size_t t = 0; t < n_tokens; ++t)  // in place: gate <- silu(gate) * up
            swiglu(ctx.backend, gate + t * n_ff + r0, up + t * n_ff + r0, gate + t * n_ff + r0, r1 - r0);
    });
    linear(ctx, w.down, gate, n_tokens, out);
}

}  // namespace moelab
