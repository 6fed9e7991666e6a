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
    FloatBuffer gate;  // (n_tokens, n_ff)
    FloatBuffer up;    // (n_tokens, n_ff)
};

// x: (n_tokens, n_embd) -> out: (n_tokens, n_embd). out must not alias x.
template <class Backend>
void ffn_dense(Context<Backend> ctx, const DenseFFNWeights& w, const float* x, std::size_t n_tokens, float* out,
               DenseFFNScratch& s) {
    const std::size_t n_ff = w.gate.rows;
    float* gate = scratch(s.gate, n_tokens * n_ff);
    float* up = scratch(s.up, n_tokens * n_ff);
    linear(ctx, w.gate, x, n_tokens, gate);
    linear(ctx, w.up, x, n_tokens, up);
    swiglu(ctx.backend, gate, up, gate, n_tokens * n_ff);  // in place: gate <- silu(gate) * up
    linear(ctx, w.down, gate, n_tokens, out);
}

}  // namespace moelab
