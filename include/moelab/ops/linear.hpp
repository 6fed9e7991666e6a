// SPDX-License-Identifier: MIT
// moelab/ops/linear.hpp — y = W x for a batch of tokens: the one front door
// through which the model reads weights.
//
// Depends on: moelab/tensor.hpp, moelab/thread_pool.hpp, moelab/error.hpp,
//             moelab/quant/quant.hpp (the quantized block types),
//             moelab/quant/q8_activations.hpp (the opt-in int8-activation products),
//             moelab/kernels/scalar.hpp (the reference backend is always there);
//             for a SIMD backend, include its header too (kernels/highway.hpp,
//             kernels/xsimd.hpp) anywhere in the translation unit.
//
// Two jobs the kernels do not do: pick the typed kernel for the weight's
// stored dtype (a switch, once per matrix, never per element), and split the
// output rows across the thread pool. One token is a matrix-vector product
// (decode); several are a matrix-matrix product (prefill, or the tokens an
// MoE expert received), which lets a backend reuse each weight row for all of
// them while it is in cache.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

#include "moelab/error.hpp"
#include "moelab/kernels/backend.hpp"
#include "moelab/kernels/scalar.hpp"
#include "moelab/quant/q8_activations.hpp"
#include "moelab/quant/quant.hpp"
#include "moelab/tensor.hpp"
#include "moelab/thread_pool.hpp"

namespace moelab::ops {

// Calls f(const T* typed_rows) with the element (or block) type that `dtype`
// stores. Extend here when a new storage type gains kernels.
template <class F>
void visit_weight_type(const WeightMatrix& w, F&& f) {
    switch (w.dtype) {
        case DType::f32: return f(reinterpret_cast<const float*>(w.data));
        case DType::f16: return f(reinterpret_cast<const moelab::f16*>(w.data));
        case DType::bf16: return f(reinterpret_cast<const moelab::bf16*>(w.data));
        case DType::q8_0: return f(reinterpret_cast<const block_q8_0*>(w.data));
        case DType::q4_0: return f(reinterpret_cast<const block_q4_0*>(w.data));
        case DType::q4_k: return f(reinterpret_cast<const block_q4_k*>(w.data));
        case DType::q5_k: return f(reinterpret_cast<const block_q5_k*>(w.data));
        case DType::q6_k: return f(reinterpret_cast<const block_q6_k*>(w.data));
        default:
            throw Error("linear", "weights of type " + std::string(dtype_name(w.dtype)) +
                                      " have no kernel in this build");
    }
}

// True when visit_weight_type() has a kernel for this storage type.
constexpr bool has_linear_kernel(DType t) {
    return t == DType::f32 || t == DType::f16 || t == DType::bf16 || is_quantized(t);
}

// Rows per thread chunk: a multiple of every backend's row blocking, so that
// chunks never split a block of rows a kernel processes together.
inline constexpr std::size_t kRowGrain = 16;

// Rows [row_begin, row_end) of y = x W^T, on the calling thread:
//     y[t * ldy + r] = sum_c W[r, c] * x[t, c]      x: (n_tokens, W.cols), y: (n_tokens, ldy)
// By the kernel contract every y[t, r] is the same whichever rows a call
// covers and whether it is a matvec or a matmul, so callers may split the
// rows of one matrix, or the matrices of several experts, across threads
// in any way without changing a bit of the result.
template <class Backend>
void linear_rows(Backend backend, const WeightMatrix& w, std::size_t row_begin, std::size_t row_end, const float* x,
                 std::size_t n_tokens, float* y, std::size_t ldy) {
    visit_weight_type(w, [&](auto* rows) {
        const std::size_t blocks_per_row = w.row_bytes() / sizeof(*rows);
        const auto* first = rows + row_begin * blocks_per_row;
        if (n_tokens == 1)
            matvec(backend, first, row_end - row_begin, w.cols, x, y + row_begin);
        else
            matmul(backend, first, row_end - row_begin, w.cols, x, n_tokens, y + row_begin, ldy);
    });
}

// ---------------------------------------------------------------------------
// The int8-activation mode (quant/q8_activations.hpp). It applies to a matrix
// when the caller asks for it, the weights are quantized, and the backend has
// the integer products for that block type; otherwise the exact f32 path runs.
// ---------------------------------------------------------------------------
enum class ActivationPrecision : std::uint8_t {
    f32,   // every weight dequantised exactly, f32 products (the specification; the default)
    int8,  // activations rounded to 8 bits per 32 values, integer products (opt-in)
};

template <class Backend, class Block>
constexpr bool has_int8_product = requires(Backend b, const Block* w, Q8Row x, Q8Rows xs, float* y) {
    matvec(b, w, std::size_t{}, std::size_t{}, x, y);
    matmul(b, w, std::size_t{}, std::size_t{}, xs, std::size_t{}, y, std::size_t{});
};

// True when products with w run on int8 activations under `precision`.
template <class Backend>
bool uses_int8(Backend, const WeightMatrix& w, ActivationPrecision precision) {
    bool available = false;
    if (precision == ActivationPrecision::int8)
        visit_quant_block(w.dtype, [&]<class Block>(Block) { available = has_int8_product<Backend, Block>; });
    return available;
}

// Rows [row_begin, row_end) of y = x W^T from quantized activations x
// (n_tokens rows); only for a matrix where uses_int8() is true.
template <class Backend>
void linear_rows(Backend backend, const WeightMatrix& w, std::size_t row_begin, std::size_t row_end, Q8Rows x,
                 std::size_t n_tokens, float* y, std::size_t ldy) {
    visit_quant_block(w.dtype, [&]<class Block>(Block) {
        if constexpr (has_int8_product<Backend, Block>) {
            const auto* first = reinterpret_cast<const Block*>(w.data) + row_begin * (w.cols / Block::kWeights);
            if (n_tokens == 1)
                matvec(backend, first, row_end - row_begin, w.cols, x[0], y + row_begin);
            else
                matmul(backend, first, row_end - row_begin, w.cols, x, n_tokens, y + row_begin, ldy);
        } else {
            throw Error("linear", std::string("backend ") + Backend::name + " has no int8 product for " +
                                      std::string(dtype_name(w.dtype)) + " weights");
        }
    });
}

// y[t, r] = sum_c W[r, c] * x[t, c]      x: (n_tokens, W.cols), y: (n_tokens, W.rows)
// PyTorch: y = x @ W.T
// With ActivationPrecision::int8 (and a backend and dtype that have it), x is
// rounded to 8 bits once, on the calling thread, into int8_scratch (its
// buffers only grow, so a caller that keeps one allocates nothing once warm;
// nullptr: a local one), and every thread reads it.
template <class Backend>
void linear(Backend backend, ThreadPool& pool, const WeightMatrix& w, const float* x, std::size_t n_tokens, float* y,
            ActivationPrecision precision = ActivationPrecision::f32, Q8Activations* int8_scratch = nullptr) {
    visit_weight_type(w, [](auto*) {});  // an unsupported dtype throws here, on the calling thread
    if (uses_int8(backend, w, precision)) {
        Q8Activations local;
        Q8Activations& xq = int8_scratch ? *int8_scratch : local;
        quantize_activations(x, n_tokens, w.cols, xq);
        pool.parallel_ranges(w.rows, kRowGrain, [&](std::size_t begin, std::size_t end) {
            linear_rows(backend, w, begin, end, xq.rows(), n_tokens, y, w.rows);
        });
        return;
    }
    pool.parallel_ranges(w.rows, kRowGrain, [&](std::size_t begin, std::size_t end) {
        linear_rows(backend, w, begin, end, x, n_tokens, y, w.rows);
    });
}

}  // namespace moelab::ops
