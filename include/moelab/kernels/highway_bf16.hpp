// SPDX-License-Identifier: MIT
// moelab/kernels/highway_bf16.hpp — the Highway backend's bf16-activation
// products for bf16 weights (the opt-in ActivationPrecision::bf16 mode;
// quant/bf16_activations.hpp is the specification, read it first).
//
// Depends on: moelab/quant/bf16_activations.hpp, moelab/kernels/backend.hpp,
//             Highway 1.0.x (target selection, SumOfLanes), <immintrin.h>,
//             the standard library. kernels/highway.hpp includes this header
//             at its end.
//
// Only where the compiler may emit AVX512_BF16 (e.g. -march=native on AMD
// Zen 4, Intel Sapphire Rapids). Highway 1.0.3 has no bf16 dot product
// (ReorderWidenMulAccumulate widens by shifts there), so the product calls
//     vdpbf16ps acc, w, x   lane i += w[2i+1] x[2i+1] + w[2i] x[2i]   (32 products)
// through <immintrin.h>, on the target Highway compiled for. Elsewhere this
// header declares nothing but bf16_instruction_set() == nullptr: ops::linear
// sees no bf16 product and runs the exact f32 path (has_bf16_product).
//
// The loop is kernels/highway.hpp's product tile with the widening and the
// f32 multiply-add replaced by that one instruction: one __m512 accumulator
// per (row, token), 32 columns a step, the last partial step through
// zero-padded copies, SumOfLanes at the end. matvec and matmul both run it,
// so every (row, token) sees the same operations in the same order: the
// contract's determinism rule holds by construction.
#pragma once

#if !defined(HWY_COMPILE_ONLY_STATIC) && !defined(HWY_COMPILE_ONLY_EMU128) && \
    !defined(HWY_COMPILE_ONLY_SCALAR)
#define HWY_COMPILE_ONLY_STATIC 1  // see highway.hpp
#endif

#include <hwy/highway.h>

#include <algorithm>
#include <cstddef>

#include "moelab/kernels/backend.hpp"
#include "moelab/quant/bf16_activations.hpp"

#if HWY_ARCH_X86 && HWY_TARGET <= HWY_AVX3 && defined(__AVX512BF16__)
#include <immintrin.h>

HWY_BEFORE_NAMESPACE();
namespace moelab::detail::HWY_NAMESPACE::bf16dot {
namespace hn = hwy::HWY_NAMESPACE;

inline constexpr std::size_t kStep = 32;  // bf16 values per 64-byte vector
// Blocking, as the f32 tile (kernels/highway.hpp) measured it: matvec reads
// one row at a time, unprefetched, or 8 prefetched rows in flight, as the
// tag's MatvecReads says (kernels::matvec_in_passes); 4 x 6 accumulators plus 6 + 1 loads of
// 32 registers for matmul; 16 weight rows copied once per sweep of all the tokens.
inline constexpr std::size_t kMatvecRows = 8, kTileRows = 4, kTileTokens = 6, kChunkRows = 16;
inline constexpr std::size_t kPrefetchBytes = 512;  // matvec: software prefetch distance per row

HWY_INLINE __m512bh load32(const bf16* p) { return (__m512bh)_mm512_loadu_si512(p); }

// y[t * y_stride + r] = sum_i w[r * w_stride + i] * x[t * x_stride + i], r < kRows, t < kTokens.
template <std::size_t kRows, std::size_t kTokens>
HWY_INLINE void product_tile(const bf16* HWY_RESTRICT w, std::size_t w_stride, const bf16* HWY_RESTRICT x,
                             std::size_t x_stride, std::size_t cols, float* HWY_RESTRICT y, std::size_t y_stride) {
    __m512 acc[kRows][kTokens];
    kernels::unrolled<kRows>([&](auto r) { kernels::unrolled<kTokens>([&](auto t) { acc[r][t] = _mm512_setzero_ps(); }); });
    std::size_t i = 0;
    for (; i + kStep <= cols; i += kStep) {
        // A multi-row decode pass: each row kPrefetchBytes ahead, and past
        // its end into the next pass (kernels::pass_prefetch_target). A
        // plain loop, not a lambda: GCC 12 deletes calls to a lambda that
        // only prefetches (highway_tile.hpp, prefetch_pass).
        if constexpr (kTokens == 1 && kRows > 1)
            for (std::size_t r = 0; r < kRows; ++r)
                _mm_prefetch(static_cast<const char*>(kernels::pass_prefetch_target(
                                 w, kRows, w_stride * sizeof(bf16), cols * sizeof(bf16), r, i * sizeof(bf16), kPrefetchBytes)),
                             _MM_HINT_T0);
        __m512bh xv[kTokens];
        kernels::unrolled<kTokens>([&](auto t) { xv[t] = load32(x + t * x_stride + i); });
        kernels::unrolled<kRows>([&](auto r) {  // constant indices: the accumulators stay in registers
            const __m512bh wv = load32(w + r * w_stride + i);
            kernels::unrolled<kTokens>([&](auto t) { acc[r][t] = _mm512_dpbf16_ps(acc[r][t], wv, xv[t]); });
        });
    }
    if (i < cols) {  // the last partial step: zero padding adds 0 * 0
        alignas(64) bf16 wpad[kStep] = {};
        alignas(64) bf16 xpad[kTokens][kStep] = {};
        for (std::size_t t = 0; t < kTokens; ++t) std::copy(x + t * x_stride + i, x + t * x_stride + cols, xpad[t]);
        for (std::size_t r = 0; r < kRows; ++r) {
            std::copy(w + r * w_stride + i, w + r * w_stride + cols, wpad);
            for (std::size_t t = 0; t < kTokens; ++t) acc[r][t] = _mm512_dpbf16_ps(acc[r][t], load32(wpad), load32(xpad[t]));
        }
    }
    const hn::ScalableTag<float> df;
    for (std::size_t r = 0; r < kRows; ++r)
        for (std::size_t t = 0; t < kTokens; ++t)
            y[t * y_stride + r] = hn::GetLane(hn::SumOfLanes(df, hn::Vec512<float>{acc[r][t]}));
}

inline void matvec(const bf16* HWY_RESTRICT w, std::size_t rows, std::size_t cols, const bf16* HWY_RESTRICT x,
                   float* HWY_RESTRICT y, kernels::MatvecReads reads) {
    std::size_t r = 0;
    if (kernels::matvec_in_passes(reads, rows, cols * sizeof(bf16)))  // else row by row, as the f32 matvec
        for (; r + kMatvecRows <= rows; r += kMatvecRows)
            product_tile<kMatvecRows, 1>(w + r * cols, cols, x, cols, cols, y + r, 1);
    for (; r < rows; ++r) product_tile<1, 1>(w + r * cols, cols, x, cols, cols, y + r, 1);
}

// Prefill. As the f32 matmul: x and each chunk of kChunkRows weight rows are
// copied once into 64-byte aligned rows zero-padded to whole steps (a
// 64-byte load that straddles two cache lines halves the tile's speed), then
// every tile of kTileTokens tokens sweeps the chunk. The padding does what
// the tile's tail does, so results equal matvec's. Rows that are already
// whole steps on 64-byte boundaries (kernels::whole_aligned_rows: cols a
// multiple of 32 and the data 64-byte aligned, as the GGUF files' tensors and
// the rounded activations usually are) are read where they are: the copies
// and their zeroing were about a tenth of a dense bf16 prefill's profile
// (docs/performance.md).

inline void matmul(const bf16* HWY_RESTRICT w, std::size_t rows, std::size_t cols, const bf16* HWY_RESTRICT x,
                   std::size_t n_tokens, float* HWY_RESTRICT y, std::size_t y_stride) {
    const std::size_t stride = (cols + kStep - 1) / kStep * kStep;
    const bool copy_x = !kernels::whole_aligned_rows(x, cols, kStep), copy_w = !kernels::whole_aligned_rows(w, cols, kStep);
    Bf16Buffer xs(copy_x ? n_tokens * stride : 0);  // value-initialised: the padding is +0
    for (std::size_t t = 0; copy_x && t < n_tokens; ++t)
        std::copy(x + t * cols, x + (t + 1) * cols, xs.data() + t * stride);
    const bf16* xp = copy_x ? xs.data() : x;  // (n_tokens, stride)
    Bf16Buffer panel(copy_w ? std::min(rows, kChunkRows) * stride : 0);
    for (std::size_t r0 = 0; r0 < rows; r0 += kChunkRows) {
        const std::size_t chunk = std::min(kChunkRows, rows - r0);
        for (std::size_t r = 0; copy_w && r < chunk; ++r)
            std::copy(w + (r0 + r) * cols, w + (r0 + r + 1) * cols, panel.data() + r * stride);
        const bf16* wp = copy_w ? panel.data() : w + r0 * stride;  // (chunk, stride)
        for (std::size_t t0 = 0; t0 < n_tokens; t0 += kTileTokens) {
            kernels::with_count<kTileTokens>(std::min(kTileTokens, n_tokens - t0), [&](auto tokens) {
                constexpr std::size_t kTokens = decltype(tokens)::value;
                const bf16* xt = xp + t0 * stride;
                float* yt = y + t0 * y_stride + r0;
                std::size_t r = 0;
                for (; r + kTileRows <= chunk; r += kTileRows)
                    product_tile<kTileRows, kTokens>(wp + r * stride, stride, xt, stride, stride, yt + r, y_stride);
                for (; r < chunk; ++r)
                    product_tile<1, kTokens>(wp + r * stride, stride, xt, stride, stride, yt + r, y_stride);
            });
        }
    }
}

}  // namespace moelab::detail::HWY_NAMESPACE::bf16dot
HWY_AFTER_NAMESPACE();

namespace moelab::kernels {

// What the bf16 products compiled to (nullptr: none, the mode falls back to f32).
inline const char* bf16_instruction_set(backend::highway) { return "AVX512_BF16 (vdpbf16ps)"; }

inline float dot(backend::highway, const bf16* w, const bf16* x, std::size_t n) {
    float y;
    detail::HWY_NAMESPACE::bf16dot::product_tile<1, 1>(w, n, x, n, n, &y, 1);
    return y;
}

// W (rows, cols), x: one token, y (rows).
inline void matvec(backend::highway b, const bf16* w, std::size_t rows, std::size_t cols, const bf16* x, float* y) {
    detail::HWY_NAMESPACE::bf16dot::matvec(w, rows, cols, x, y, b.matvec_reads);
}

// W (rows, cols), x: (n_tokens, cols), y[t * y_stride + r].
inline void matmul(backend::highway, const bf16* w, std::size_t rows, std::size_t cols, const bf16* x,
                   std::size_t n_tokens, float* y, std::size_t y_stride) {
    detail::HWY_NAMESPACE::bf16dot::matmul(w, rows, cols, x, n_tokens, y, y_stride);
}

}  // namespace moelab::kernels

#else  // no AVX512_BF16: no bf16 products; ops::linear keeps the f32 path

namespace moelab::kernels {
inline const char* bf16_instruction_set(backend::highway) { return nullptr; }
}  // namespace moelab::kernels

#endif
