// SPDX-License-Identifier: MIT
// moelab/layers/context.hpp — what every layer function receives besides its
// weights and activations: the backend tag, the thread pool, and how
// activations meet quantized weights.
//
// Depends on: moelab/thread_pool.hpp, moelab/tensor.hpp, moelab/ops/linear.hpp
//             (ActivationPrecision).
#pragma once

#include <cstddef>
#include <initializer_list>

#include "moelab/ops/linear.hpp"
#include "moelab/tensor.hpp"
#include "moelab/thread_pool.hpp"

namespace moelab {

template <class Backend>
struct Context {
    Backend backend;   // the tag: selects the kernel overloads (and carries their run-time settings)
    ThreadPool& pool;  // rows of every matrix product are split over it
    // f32: exact (the default); int8 / bf16: quantized / bf16 weights meet
    // activations rounded to 8 bits / bf16 (ops/linear.hpp)
    ops::ActivationPrecision activations = ops::ActivationPrecision::f32;
    // Where linear() rounds its input in those modes; nullptr: fresh buffers
    // per product. Whoever builds the Context owns it (Transformer keeps one), and
    // products through one Context run one after another, so one buffer serves all.
    ops::RoundedActivations* rounded_scratch = nullptr;
};

// y = x W^T with the context's backend, threads and activation precision
// (ops::linear; x: (n_tokens, W.cols), y: (n_tokens, W.rows)).
template <class Backend>
void linear(const Context<Backend>& ctx, const WeightMatrix& w, const float* x, std::size_t n_tokens, float* y) {
    ops::linear(ctx.backend, ctx.pool, w, x, n_tokens, y, ctx.activations, ctx.rounded_scratch);
}

// Several products of one input x in one fork-join (ops::linear of Products):
// linear(ctx, {{&w.wk, k}, {&w.wv, v}}, x, n_tokens).
template <class Backend>
void linear(const Context<Backend>& ctx, std::initializer_list<ops::Product> products, const float* x,
            std::size_t n_tokens) {
    ops::linear(ctx.backend, ctx.pool, products, x, n_tokens, ctx.activations, ctx.rounded_scratch);
}

// Grows a scratch buffer to at least n floats and returns its data. Buffers
// only grow, so steady-state decoding allocates nothing.
inline float* scratch(FloatBuffer& buffer, std::size_t n) {
    if (buffer.size() < n) buffer.resize(n);
    return buffer.data();
}

}  // namespace moelab
