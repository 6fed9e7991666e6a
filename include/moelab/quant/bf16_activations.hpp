// SPDX-License-Identifier: MIT
// moelab/quant/bf16_activations.hpp — the bf16-activation product (opt-in):
// bf16 weights meet activations rounded to bf16, and the specification of
// their dot product.
//
// Depends on: moelab/dtype.hpp (bf16, f32_to_bf16), moelab/tensor.hpp
//             (AlignedAllocator), moelab/kernels/backend.hpp (the scalar
//             backend's overloads at the end), the standard library.
//
// Why. The exact product of a bf16 weight row widens every weight to f32 and
// runs one f32 multiply-add per weight, 16 per AVX-512 instruction. x86 CPUs
// with AVX512_BF16 (Intel Cooper Lake and Sapphire Rapids, AMD Zen 4 and 5)
// have vdpbf16ps: 32 bf16 x bf16 products summed in pairs into 16 f32 lanes,
// one instruction, twice the multiply-adds and no widening. It needs both
// operands in bf16, so the activations are rounded once per matrix product.
// That changes the numbers (8 significant bits per activation instead of
// 24), so it is a mode the caller chooses (ActivationPrecision::bf16 in
// ops/linear.hpp), never the default; llama.cpp does the same for every bf16
// weight matrix, so this mode is the like-for-like comparison with it
// (docs/performance.md; docs/quantization.md measures how far it moves the
// logits).
//
// The specification:
//     xb[i] = f32_to_bf16(x[i])                    round to nearest, ties to even
//     y     = sum_i f32(w[i]) * f32(xb[i])         in f32, in index order
// Every product is exact in f32 (two 8-bit significands make at most 16
// bits), so the only rounding besides the activations' is the summation,
// and a SIMD backend that sums in another order (lanes, pairs) stays within
// the usual gamma(n) bound of it (tests/test_bf16.cpp). One difference is
// the instruction's: vdpbf16ps treats subnormal inputs and results as zero,
// values below 2^-126 in magnitude; the model's activations and products are
// many orders of magnitude above that.
#pragma once

#include <cstddef>
#include <vector>

#include "moelab/dtype.hpp"
#include "moelab/kernels/backend.hpp"
#include "moelab/tensor.hpp"

namespace moelab {

// (n_tokens, cols) bf16 activations, 64-byte aligned; buffers only grow.
using Bf16Buffer = std::vector<bf16, AlignedAllocator<bf16>>;

// out[0..n) = x[0..n) rounded to bf16 (ties to even; NaN stays NaN, inf stays inf).
inline void round_activations_to_bf16(const float* x, std::size_t n, bf16* out) {
    for (std::size_t i = 0; i < n; ++i) out[i] = f32_to_bf16(x[i]);
}
inline void round_activations_to_bf16(const float* x, std::size_t n, Bf16Buffer& out) {
    if (out.size() < n) out.resize(n);
    round_activations_to_bf16(x, n, out.data());
}

}  // namespace moelab

// ---------------------------------------------------------------------------
// The scalar backend's bf16-activation products: the specification above,
// row by row and token by token. A SIMD backend provides the same overloads
// where it has the instruction (kernels/highway_bf16.hpp); ops/linear.hpp
// uses them when the caller asks for ActivationPrecision::bf16.
// ---------------------------------------------------------------------------
namespace moelab::kernels {

inline float dot(backend::scalar, const bf16* w, const bf16* x, std::size_t n) {
    float sum = 0.0f;
    for (std::size_t i = 0; i < n; ++i) sum += bf16_to_f32(w[i]) * bf16_to_f32(x[i]);
    return sum;
}

// W (rows, cols), x: one token, y (rows).
inline void matvec(backend::scalar b, const bf16* w, std::size_t rows, std::size_t cols, const bf16* x, float* y) {
    for (std::size_t r = 0; r < rows; ++r) y[r] = dot(b, w + r * cols, x, cols);
}

// W (rows, cols), x: (n_tokens, cols), y[t * y_stride + r].
inline void matmul(backend::scalar b, const bf16* w, std::size_t rows, std::size_t cols, const bf16* x,
                   std::size_t n_tokens, float* y, std::size_t y_stride) {
    for (std::size_t t = 0; t < n_tokens; ++t) matvec(b, w, rows, cols, x + t * cols, y + t * y_stride);
}

}  // namespace moelab::kernels
