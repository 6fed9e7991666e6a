// SPDX-License-Identifier: MIT
// moelab/kernels/scalar.hpp — the reference backend: the specification of
// every kernel, written as plain loops.
//
// Depends on: moelab/kernels/backend.hpp, moelab/dtype.hpp, the standard library.
//
// Every SIMD backend must agree with these functions within tolerances derived
// from the length and dtype (tests/test_kernels.cpp); the scalar functions are
// themselves checked against double precision. Accumulation is f32, in index
// order. Nothing here is tuned: if a loop looks naive, that is the point.
#pragma once

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <limits>

#include "moelab/dtype.hpp"
#include "moelab/kernels/backend.hpp"

namespace moelab::kernels {

inline const char* instruction_set(backend::scalar) { return "scalar (1 x f32, no SIMD)"; }

// ---------------------------------------------------------------------------
// Products that read weights. T is a number type (float, f16, bf16: widened
// by to_f32) or a quantized block type (moelab/quant/: a block of
// T::kWeights weights, decoded by dequantize_block). n and cols count
// weights; a row of cols weights is cols / weights_per_element<T>() elements.
// ---------------------------------------------------------------------------

// 1 for a number type, T::kWeights for a block type.
template <class T>
constexpr std::size_t weights_per_element() {
    if constexpr (requires { T::kWeights; }) return T::kWeights;
    else return 1;
}

// sum_i w[i] * x[i]
template <class T>
float dot(backend::scalar, const T* w, const float* x, std::size_t n) {
    float sum = 0.0f;
    for (std::size_t i = 0; i < n; ++i) sum += to_f32(w[i]) * x[i];
    return sum;
}

// The same for quantized blocks, and the specification of every backend's
// fused kernel: dequantise each block exactly (quant/block.hpp), then
// accumulate in f32 in index order. n is a multiple of Block::kWeights.
template <class Block>
    requires requires(const Block& block, float* out) {
        Block::kWeights;
        dequantize_block(block, out);
    }
float dot(backend::scalar, const Block* w, const float* x, std::size_t n) {
    constexpr std::size_t K = Block::kWeights;
    float sum = 0.0f;
    float values[K];
    for (std::size_t b = 0; b < n / K; ++b) {
        dequantize_block(w[b], values);
        for (std::size_t i = 0; i < K; ++i) sum += values[i] * x[b * K + i];
    }
    return sum;
}

// y = W x with W of shape (rows, cols).        PyTorch: y = x @ W.T
template <class T>
void matvec(backend::scalar b, const T* w, std::size_t rows, std::size_t cols, const float* x,
            float* y) {
    const std::size_t row_elements = cols / weights_per_element<T>();
    for (std::size_t r = 0; r < rows; ++r) y[r] = dot(b, w + r * row_elements, x, cols);
}

// Y = X W^T for a batch of n_tokens activation rows X (n_tokens, cols);
// Y[t] lives at y + t * y_stride so that callers can fill a slice of columns.
template <class T>
void matmul(backend::scalar b, const T* w, std::size_t rows, std::size_t cols, const float* x,
            std::size_t n_tokens, float* y, std::size_t y_stride) {
    for (std::size_t t = 0; t < n_tokens; ++t)
        matvec(b, w, rows, cols, x + t * cols, y + t * y_stride);
}

// ---------------------------------------------------------------------------
// Normalisations.
// ---------------------------------------------------------------------------

// RMSNorm (Zhang & Sennrich 2019): out_i = x_i / sqrt(mean_j x_j^2 + eps) * w_i.
// PyTorch: x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps) * w
inline void rmsnorm(backend::scalar, const float* x, const float* w, float eps, std::size_t n,
                    float* out) {
    float sum_sq = 0.0f;
    for (std::size_t i = 0; i < n; ++i) sum_sq += x[i] * x[i];
    const float inv_rms = 1.0f / std::sqrt(sum_sq / static_cast<float>(n) + eps);
    for (std::size_t i = 0; i < n; ++i) out[i] = x[i] * inv_rms * w[i];
}

// L2 normalisation: out = x / max(||x||_2, eps).   PyTorch: F.normalize(x, dim=-1, eps=eps)
inline void l2norm(backend::scalar, const float* x, float eps, std::size_t n, float* out) {
    float sum_sq = 0.0f;
    for (std::size_t i = 0; i < n; ++i) sum_sq += x[i] * x[i];
    const float inv_norm = 1.0f / std::fmax(std::sqrt(sum_sq), eps);
    for (std::size_t i = 0; i < n; ++i) out[i] = x[i] * inv_norm;
}

// softmax in place, shifted by the maximum so exp never overflows:
// x_i <- exp(x_i - m) / sum_j exp(x_j - m),  m = max_j x_j.
inline void softmax(backend::scalar, float* x, std::size_t n) {
    if (n == 0) return;
    float max_value = x[0];
    for (std::size_t i = 1; i < n; ++i) max_value = std::fmax(max_value, x[i]);
    float sum = 0.0f;
    for (std::size_t i = 0; i < n; ++i) {
        x[i] = std::exp(x[i] - max_value);
        sum += x[i];
    }
    const float inv_sum = 1.0f / sum;
    for (std::size_t i = 0; i < n; ++i) x[i] *= inv_sum;
}

// ---------------------------------------------------------------------------
// Activations.
// ---------------------------------------------------------------------------

// SiLU (a.k.a. swish): silu(x) = x * sigmoid(x) = x / (1 + exp(-x)), in place.
inline void silu(backend::scalar, float* x, std::size_t n) {
    for (std::size_t i = 0; i < n; ++i) x[i] = x[i] / (1.0f + std::exp(-x[i]));
}

// SwiGLU gate (Shazeer 2020): out = silu(gate) * up.   PyTorch: F.silu(g) * u
inline void swiglu(backend::scalar, const float* gate, const float* up, float* out, std::size_t n) {
    for (std::size_t i = 0; i < n; ++i) out[i] = gate[i] / (1.0f + std::exp(-gate[i])) * up[i];
}

// ---------------------------------------------------------------------------
// Rotary position embedding (Su et al. 2021).
// Rotates the first rot_dims entries of one head vector x in rot_dims/2 planes;
// plane i turns by the angle whose cosine and sine are cos[i] and sin[i]
// (the caller computes them from the position and theta_i). Entries past
// rot_dims are left alone ("partial rotary", e.g. Qwen3.5 rotates 64 of 256).
//   interleaved: plane i = (x[2i], x[2i+1])
//   neox:        plane i = (x[i], x[i + rot_dims/2])
// ---------------------------------------------------------------------------
inline void rope(backend::scalar, float* x, std::size_t rot_dims, RopeStyle style, const float* cos,
                 const float* sin) {
    const std::size_t n_planes = rot_dims / 2;
    for (std::size_t i = 0; i < n_planes; ++i) {
        float* a = style == RopeStyle::interleaved ? &x[2 * i] : &x[i];
        float* b = style == RopeStyle::interleaved ? &x[2 * i + 1] : &x[i + n_planes];
        const float a0 = *a, b0 = *b;
        *a = a0 * cos[i] - b0 * sin[i];
        *b = a0 * sin[i] + b0 * cos[i];
    }
}

// ---------------------------------------------------------------------------
// Vector arithmetic.
// ---------------------------------------------------------------------------
inline void add(backend::scalar, const float* a, const float* b, float* out, std::size_t n) {
    for (std::size_t i = 0; i < n; ++i) out[i] = a[i] + b[i];
}

inline void scale(backend::scalar, float* x, float s, std::size_t n) {
    for (std::size_t i = 0; i < n; ++i) x[i] *= s;
}

// y += a * x
inline void axpy(backend::scalar, float a, const float* x, float* y, std::size_t n) {
    for (std::size_t i = 0; i < n; ++i) y[i] += a * x[i];
}

// ---------------------------------------------------------------------------
// Peak-FLOP probe (timed by moelab/roofline.hpp). kChains independent fused
// multiply-add chains, so FMA latency never stalls the loop; m < 1 keeps the
// values bounded. Returns the floating-point operations done, 2 per FMA. The
// volatile store keeps the compiler from discarding the loop. (The compiler
// may pack the chains into a vector register; the count stays right.)
// ---------------------------------------------------------------------------
inline double fma_peak_probe(backend::scalar, std::size_t iterations) {
    constexpr std::size_t kChains = 8;
    float acc[kChains];
    for (std::size_t j = 0; j < kChains; ++j) acc[j] = static_cast<float>(j);
    for (std::size_t it = 0; it < iterations; ++it)
        for (std::size_t j = 0; j < kChains; ++j) acc[j] = std::fma(acc[j], 0.999f, 1e-3f);
    float sum = 0.0f;
    for (float v : acc) sum += v;
    volatile float sink = sum;
    (void)sink;
    return 2.0 * kChains * static_cast<double>(iterations);
}

// ---------------------------------------------------------------------------
// Top-k selection, the heart of an MoE router.
// Writes to idx[0..k) the indices of the k largest values of x[0..n), largest
// first. Tie-break: among equal values the LOWEST index wins (and comes first),
// so routing is a pure function of the router logits. NaN ranks below every
// number (a NaN logit is never preferred). Requires k <= n.
// ---------------------------------------------------------------------------
inline void topk(backend::scalar, const float* x, std::size_t n, std::size_t k, std::uint32_t* idx) {
    auto key = [&](std::size_t i) {
        return std::isnan(x[i]) ? -std::numeric_limits<float>::infinity() : x[i];
    };
    // Insertion into a sorted list of the best `kept` indices seen so far. A
    // later index only displaces an earlier one if strictly greater, which is
    // exactly the lowest-index-wins rule.
    if (k == 0) return;
    std::size_t kept = 0;
    for (std::size_t i = 0; i < n; ++i) {
        if (kept == k && !(key(i) > key(idx[k - 1]))) continue;
        std::size_t pos = kept < k ? kept++ : k - 1;
        while (pos > 0 && key(i) > key(idx[pos - 1])) {
            idx[pos] = idx[pos - 1];
            --pos;
        }
        idx[pos] = static_cast<std::uint32_t>(i);
    }
}

}  // namespace moelab::kernels
