// SPDX-License-Identifier: MIT
// moelab/kernels/xsimd_tile.hpp — the xsimd backend's one product loop,
// product_tile: a small tile of dot products between weight rows and
// activation rows, with the blocking constants, the pair-split widening of
// f16/bf16 weights (kernels/xsimd.hpp explains it) and the activation order
// it needs. kernels/xsimd.hpp (f32/f16/bf16 dot, matvec, matmul) and
// kernels/xsimd_quant.hpp (the quantized matmul's dequantised panels) both
// run it, so a (row, token) dot product is accumulated in the same order
// wherever it is computed.
//
// Depends on: moelab/kernels/backend.hpp, moelab/dtype.hpp, moelab/tensor.hpp
//             (FloatBuffer), xsimd 8.x (<xsimd/xsimd.hpp>; 8.1 API), the
//             standard library.
#pragma once

#include <xsimd/xsimd.hpp>

#include <algorithm>
#include <array>
#include <cstddef>
#include <cstdint>
#include <type_traits>

#include "moelab/dtype.hpp"
#include "moelab/kernels/backend.hpp"
#include "moelab/tensor.hpp"

namespace moelab::detail::xsimd_kernels {

using arch = ::xsimd::default_arch;
using batch = ::xsimd::batch<float, arch>;           // N f32 lanes
using ubatch = ::xsimd::batch<std::uint32_t, arch>;  // the same register as N uint32
using ibatch = ::xsimd::batch<std::int32_t, arch>;
inline constexpr std::size_t N = batch::size;

// Blocking (see highway.hpp for the reasoning; the same measurements apply).
inline constexpr std::size_t kMatvecRows = 8;
inline constexpr std::size_t kTileRows = N >= 16 ? 4 : 3;    // AVX-512: 32 registers;
inline constexpr std::size_t kTileTokens = N >= 16 ? 6 : 4;  // AVX2/SSE: 16
inline constexpr std::size_t kChunkRows = 16;
inline constexpr std::size_t kPrefetchBytes = 512;

// ---------------------------------------------------------------------------
// Weights. A *step* is the number of weights one iteration consumes: N for
// f32 (one vector, natural order), 2N for f16/bf16 (two vectors, pair-split).
// ---------------------------------------------------------------------------
template <class T>
inline constexpr std::size_t kStep = std::is_same_v<T, float> ? N : 2 * N;

// An f16 in the top 16 bits of each lane (low 16 bits zero) -> f32, exactly.
// An arithmetic shift right by 3 lines the f16 exponent and mantissa up with
// the f32 fields (the sign, copied into bits 31..28, is masked back to bit 31
// alone). That reads the f16 exponent with bias 127 instead of 15; the
// multiplication by 2^112 fixes the bias exactly (f16 subnormals are f32
// subnormals at that point and become normal numbers: no bit is lost).
// Exponent 31 (inf/NaN) comes out as a finite |value| in [65536, 131072),
// which no finite f16 reaches (max 65504): there the f32 exponent is set to
// 255 instead, keeping sign and mantissa (the NaN payload). 7 vector ops;
// this, not memory, bounds f16 matvec (docs/kernels.md). (The select is on
// float batches: xsimd 8.1's integer select does not compile at -O0.)
inline batch f16_top_to_f32(ubatch h) {
    const ibatch bits = (::xsimd::bitwise_cast<ibatch>(h) >> 3) & ibatch(static_cast<std::int32_t>(0x8FFFE000u));
    const batch scaled = ::xsimd::bitwise_cast<batch>(bits) * batch(0x1p112f);
    const batch special = ::xsimd::bitwise_cast<batch>(bits | ibatch(0x7F800000));
    return ::xsimd::select(::xsimd::abs(scaled) >= batch(65536.0f), special, scaled);
}

// One step of weights as f32 vectors, in the order x' expects.
inline void widen_step(const float* w, batch (&out)[1]) { out[0] = batch::load_unaligned(w); }

inline void widen_step(const bf16* w, batch (&out)[2]) {
    const ubatch v = ubatch::load_unaligned(reinterpret_cast<const std::uint32_t*>(w));
    out[0] = ::xsimd::bitwise_cast<batch>(v << 16);
    out[1] = ::xsimd::bitwise_cast<batch>(v & ubatch(0xFFFF0000u));
}

inline void widen_step(const f16* w, batch (&out)[2]) {
    const ubatch v = ubatch::load_unaligned(reinterpret_cast<const std::uint32_t*>(w));
    out[0] = f16_top_to_f32(v << 16);
    out[1] = f16_top_to_f32(v & ubatch(0xFFFF0000u));
}

// Length of a row in steps' worth of floats: cols rounded up to a whole step.
template <class T>
std::size_t padded_cols(std::size_t cols) {
    return (cols + kStep<T> - 1) / kStep<T> * kStep<T>;
}

// x in the order weights of type T pair with, each row zero-padded to
// padded_cols<T>(cols), in 64-byte aligned storage.   (n_rows, padded_cols)
// f32: a plain copy. f16/bf16: x' = each step of 2N de-interleaved.
template <class T>
FloatBuffer prepare_x(const float* x, std::size_t n_rows, std::size_t cols) {
    const std::size_t padded = padded_cols<T>(cols);
    FloatBuffer out(n_rows * padded, 0.0f);
    for (std::size_t t = 0; t < n_rows; ++t) {
        const float* row = x + t * cols;
        float* dst = out.data() + t * padded;
        if constexpr (std::is_same_v<T, float>) {
            std::copy(row, row + cols, dst);
        } else {
            for (std::size_t c = 0; c < cols; ++c) {
                const std::size_t step = c / (2 * N), j = c % (2 * N);
                dst[step * 2 * N + (j % 2) * N + j / 2] = row[c];
            }
        }
    }
    return out;
}

// One weight row widened to f32 in x' order, zero-padded.   out: padded_cols<T>(cols)
template <class T>
void widen_row(const T* w, std::size_t cols, float* out) {
    constexpr std::size_t kVecs = kStep<T> / N;
    std::size_t i = 0;
    for (; i + kStep<T> <= cols; i += kStep<T>) {
        batch v[kVecs];
        widen_step(w + i, v);
        for (std::size_t k = 0; k < kVecs; ++k) v[k].store_unaligned(out + i + k * N);
    }
    if (i == cols) return;
    std::array<T, kStep<T>> pad{};  // all-zero bits: +0 in every format
    std::copy(w + i, w + cols, pad.begin());
    batch v[kVecs];
    widen_step(pad.data(), v);
    for (std::size_t k = 0; k < kVecs; ++k) v[k].store_unaligned(out + i + k * N);
}


// ---------------------------------------------------------------------------
// The one product loop: a tile of dot products
//     y[t * y_stride + r] = sum_i w[r * w_stride + i] * x[t * x_stride + i]
// for r < kRows, t < kTokens, i < cols, with x already in the order T needs
// (f32: x itself; f16/bf16: x' from prepare_x, whose rows are zero-padded).
// One vector accumulator per (r, t), steps in index order, the last partial
// step zero-padded, lanes summed by xsimd::hadd at the end. What happens to one
// (r, t) does not depend on kRows or kTokens: the determinism rule.
// ---------------------------------------------------------------------------
template <std::size_t kRows, std::size_t kTokens, class T>
inline void product_tile(const T* w, std::size_t w_stride, const float* x, std::size_t x_stride,
                         std::size_t cols, float* y, std::size_t y_stride) {
    constexpr std::size_t kVecs = kStep<T> / N;
    batch acc[kRows][kTokens];
    for (std::size_t r = 0; r < kRows; ++r)
        for (std::size_t t = 0; t < kTokens; ++t) acc[r][t] = batch(0.0f);

    auto step = [&](const T* const (&w_rows)[kRows], const float* const (&x_rows)[kTokens]) {
        batch xv[kTokens][kVecs];
        for (std::size_t t = 0; t < kTokens; ++t)
            for (std::size_t k = 0; k < kVecs; ++k) {
                xv[t][k] = batch::load_unaligned(x_rows[t] + k * N);
                // Kept in a register for the kRows multiply-adds that use it
                // (GCC folds the load into each of them otherwise; highway.hpp,
                // load_activations), while the tile's registers allow it.
#if (defined(__GNUC__) || defined(__clang__)) && (defined(__x86_64__) || defined(__i386__))
                if constexpr (kTokens * kVecs <= kTileTokens) asm("" : "+v"(xv[t][k].data));
#endif
            }
        for (std::size_t r = 0; r < kRows; ++r) {
            batch wv[kVecs];
            widen_step(w_rows[r], wv);
            for (std::size_t k = 0; k < kVecs; ++k)
                for (std::size_t t = 0; t < kTokens; ++t) acc[r][t] = ::xsimd::fma(wv[k], xv[t][k], acc[r][t]);
        }
    };

    std::size_t i = 0;
    for (; i + kStep<T> <= cols; i += kStep<T>) {
        const T* w_rows[kRows];
        const float* x_rows[kTokens];
        for (std::size_t r = 0; r < kRows; ++r) w_rows[r] = w + r * w_stride + i;
        // A multi-row matvec pass, streaming from DRAM: ask for the weights
        // kPrefetchBytes ahead, and past each row's end into the next pass
        // (kernels::pass_prefetch_target, as in highway.hpp; GCC/Clang
        // builtin). A single stream goes without (xsimd.hpp, matvec).
        if constexpr (kTokens == 1 && kRows > 1)
            for (std::size_t r = 0; r < kRows; ++r)
                __builtin_prefetch(kernels::pass_prefetch_target(w, kRows, w_stride * sizeof(T), cols * sizeof(T), r,
                                                                 i * sizeof(T), kPrefetchBytes));
        for (std::size_t t = 0; t < kTokens; ++t) x_rows[t] = x + t * x_stride + i;
        step(w_rows, x_rows);
    }
    if (i < cols) {  // the last partial step, through zero-padded copies
        std::array<std::array<T, kStep<T>>, kRows> wpad{};
        std::array<std::array<float, kStep<T>>, kTokens> xpad{};
        const T* w_rows[kRows];
        const float* x_rows[kTokens];
        for (std::size_t r = 0; r < kRows; ++r) {
            std::copy(w + r * w_stride + i, w + r * w_stride + cols, wpad[r].begin());
            w_rows[r] = wpad[r].data();
        }
        for (std::size_t t = 0; t < kTokens; ++t) {
            // f32: copy the tail; f16/bf16: x' rows are padded, read the whole step.
            const std::size_t x_end = std::is_same_v<T, float> ? cols : i + kStep<T>;
            std::copy(x + t * x_stride + i, x + t * x_stride + x_end, xpad[t].begin());
            x_rows[t] = xpad[t].data();
        }
        step(w_rows, x_rows);
    }
    for (std::size_t r = 0; r < kRows; ++r)
        for (std::size_t t = 0; t < kTokens; ++t) y[t * y_stride + r] = ::xsimd::hadd(acc[r][t]);
}

}  // namespace moelab::detail::xsimd_kernels
