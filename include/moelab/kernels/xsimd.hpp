// SPDX-License-Identifier: MIT
// moelab/kernels/xsimd.hpp — the xsimd backend: every kernel of the contract
// (kernels/backend.hpp) for the tag moelab::backend::xsimd.
//
// Depends on: moelab/kernels/backend.hpp, moelab/dtype.hpp, moelab/tensor.hpp
//             (FloatBuffer: 64-byte aligned scratch), xsimd 8.x
//             (<xsimd/xsimd.hpp>; 8.1 API: xsimd::hadd, no reduce_add), the
//             standard library.
//
// Compiled for xsimd::default_arch, the best architecture the compiler flags
// allow (avx512bw under -march=native on the development machine, 16 f32
// lanes). The structure mirrors kernels/highway.hpp; the differences are in
// how f16/bf16 weights are widened, because xsimd 8.1 has no 16-bit float
// loads (docs/kernels.md has the measurements):
//
//   Pair-split widening. A step reads 2N 16-bit weights as N uint32 lanes;
//   lane j holds w[2j] in its low half and w[2j+1] in its high half. Then
//       v << 16          puts w[2j]   in the top half of lane j,
//       v & 0xFFFF0000   puts w[2j+1] in the top half of lane j,
//   and a top-half 16-bit float becomes an f32 with integer ops (bf16: it
//   already is one; f16: see f16_top_to_f32). The two vectors hold the even
//   and the odd weights of the step, so they multiply an x that was
//   de-interleaved the same way, once per call (x is shared by all rows):
//       x'[step][j] = x[2j],  x'[step][N + j] = x[2j + 1].
//   (Widening in natural order instead, through xsimd's converting load
//   batch<uint32_t>::load_unaligned(const uint16_t*), goes through the stack
//   and ran at 21 GB/s instead of 31 GB/s on a DRAM-bound bf16 matvec.)
//
// So for f16/bf16 this backend's canonical order of a dot product is: per
// step of 2N weights, the even products then the odd ones, into one vector
// accumulator. Every code path (dot, matvec, matmul, any tile shape) uses that
// order, so the determinism rule holds as in highway.hpp.
//
// Length (~600 lines, the house limit): the whole contract for one backend
// stays in one header so that it can be copied alone and read against
// scalar.hpp kernel by kernel; products first, then the vector ops.
#pragma once

#include <xsimd/xsimd.hpp>

#include <algorithm>
#include <array>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

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
inline constexpr std::size_t kSingleStreamRows = 192;      // matvec calls this short read row by row
inline constexpr std::size_t kSingleStreamXBytes = 16384;  // ... and so do calls whose x is this short
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

using kernels::with_count;  // kernels/backend.hpp: a run-time count as a template argument

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
        // kPrefetchBytes ahead (as in highway.hpp; GCC/Clang builtin). A
        // single stream goes without (matvec, below).
        if constexpr (kTokens == 1 && kRows > 1)
            if (i + kPrefetchBytes / sizeof(T) < cols)
                for (std::size_t r = 0; r < kRows; ++r) __builtin_prefetch(w_rows[r] + kPrefetchBytes / sizeof(T));
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

template <class T>
float dot(const T* w, const float* x, std::size_t n) {
    float y;
    if constexpr (std::is_same_v<T, float>) {
        product_tile<1, 1>(w, n, x, n, n, &y, 1);
    } else {
        const FloatBuffer xp = prepare_x<T>(x, 1, n);
        product_tile<1, 1>(w, n, xp.data(), xp.size(), n, &y, 1);
    }
    return y;
}

// Memory-bound. The rule of highway.hpp's matvec, for the same measured
// reasons: short calls (an MoE expert task) and calls with a short x read
// their rows one after another, one sequential stream without software
// prefetch; the others (x longer than L1 can share with the stream) run
// kMatvecRows prefetched weight streams that share each x load. Same bits
// either way (the determinism rule above).
template <class T>
void matvec(const T* w, std::size_t rows, std::size_t cols, const float* x, float* y) {
    FloatBuffer split;
    if constexpr (!std::is_same_v<T, float>) split = prepare_x<T>(x, 1, cols);
    const float* xp = std::is_same_v<T, float> ? x : split.data();
    const std::size_t xp_len = std::is_same_v<T, float> ? cols : split.size();
    std::size_t r = 0;
    if (rows > kSingleStreamRows && cols * sizeof(float) > kSingleStreamXBytes)
        for (; r + kMatvecRows <= rows; r += kMatvecRows)
            product_tile<kMatvecRows, 1>(w + r * cols, cols, xp, xp_len, cols, y + r, 1);
    for (; r < rows; ++r) product_tile<1, 1>(w + r * cols, cols, xp, xp_len, cols, y + r, 1);
}

// Compute-bound, as in highway.hpp: x (as x' for f16/bf16) and chunks of
// kChunkRows weight rows (widened, in x' order) are copied once into 64-byte
// aligned, zero-padded buffers; all tokens sweep past each chunk in register
// tiles of kTileRows x kTileTokens accumulators.
template <class T>
void matmul(const T* w, std::size_t rows, std::size_t cols, const float* x, std::size_t n_tokens, float* y,
            std::size_t y_stride) {
    const std::size_t stride = padded_cols<T>(cols);  // of the panel rows and x rows
    const FloatBuffer xs = prepare_x<T>(x, n_tokens, cols);
    FloatBuffer panel(std::min(rows, kChunkRows) * stride);
    for (std::size_t r0 = 0; r0 < rows; r0 += kChunkRows) {
        const std::size_t chunk = std::min(kChunkRows, rows - r0);
        for (std::size_t r = 0; r < chunk; ++r) widen_row(w + (r0 + r) * cols, cols, panel.data() + r * stride);
        for (std::size_t t0 = 0; t0 < n_tokens; t0 += kTileTokens) {
            with_count<kTileTokens>(std::min(kTileTokens, n_tokens - t0), [&](auto tokens) {
                constexpr std::size_t kTokens = decltype(tokens)::value;
                const float* xt = xs.data() + t0 * stride;
                float* yt = y + t0 * y_stride + r0;
                std::size_t r = 0;
                for (; r + kTileRows <= chunk; r += kTileRows)
                    product_tile<kTileRows, kTokens>(panel.data() + r * stride, stride, xt, stride, stride, yt + r, y_stride);
                for (; r < chunk; ++r)
                    product_tile<1, kTokens>(panel.data() + r * stride, stride, xt, stride, stride, yt + r, y_stride);
            });
        }
    }
}

// ---------------------------------------------------------------------------
// Elementwise kernels: whole vectors, then the last partial vector through
// zero-padded buffers (every element sees the same vector code). `out` may
// alias an input.
// ---------------------------------------------------------------------------
template <class F>
void map1(const float* x, std::size_t n, float* out, F f) {
    std::size_t i = 0;
    for (; i + N <= n; i += N) f(batch::load_unaligned(x + i)).store_unaligned(out + i);
    if (i == n) return;
    std::array<float, N> pad{};
    std::copy(x + i, x + n, pad.begin());
    f(batch::load_unaligned(pad.data())).store_unaligned(pad.data());
    std::copy(pad.begin(), pad.begin() + static_cast<std::ptrdiff_t>(n - i), out + i);
}

template <class F>
void map2(const float* a, const float* b, std::size_t n, float* out, F f) {
    std::size_t i = 0;
    for (; i + N <= n; i += N) f(batch::load_unaligned(a + i), batch::load_unaligned(b + i)).store_unaligned(out + i);
    if (i == n) return;
    std::array<float, N> pad_a{}, pad_b{};
    std::copy(a + i, a + n, pad_a.begin());
    std::copy(b + i, b + n, pad_b.begin());
    f(batch::load_unaligned(pad_a.data()), batch::load_unaligned(pad_b.data())).store_unaligned(pad_a.data());
    std::copy(pad_a.begin(), pad_a.begin() + static_cast<std::ptrdiff_t>(n - i), out + i);
}

inline float sum_of_squares(const float* x, std::size_t n) {
    batch acc(0.0f);
    std::size_t i = 0;
    for (; i + N <= n; i += N) {
        const batch v = batch::load_unaligned(x + i);
        acc = ::xsimd::fma(v, v, acc);
    }
    if (i < n) {
        std::array<float, N> pad{};
        std::copy(x + i, x + n, pad.begin());
        const batch v = batch::load_unaligned(pad.data());
        acc = ::xsimd::fma(v, v, acc);
    }
    return ::xsimd::hadd(acc);
}

// silu(g) = g / (1 + e^-g). xsimd::exp returns +inf above ~88.38 (a little
// before f32 overflows at 88.72) and 0 below ~-87.3 (no subnormal results).
inline batch silu_f32(batch g) { return g / (batch(1.0f) + ::xsimd::exp(-g)); }

inline void rmsnorm(const float* x, const float* w, float eps, std::size_t n, float* out) {
    const batch s(1.0f / std::sqrt(sum_of_squares(x, n) / static_cast<float>(n) + eps));
    map2(x, w, n, out, [&](batch xv, batch wv) { return xv * s * wv; });
}

inline void l2norm(const float* x, float eps, std::size_t n, float* out) {
    const batch s(1.0f / std::fmax(std::sqrt(sum_of_squares(x, n)), eps));
    map1(x, n, out, [&](batch v) { return v * s; });
}

// Three passes: max, exp and sum, scale. Padding lanes hold -inf, so they
// neither win the max nor add to the sum (e^-inf = 0).
inline void softmax(float* x, std::size_t n) {
    if (n == 0) return;
    const std::size_t full = n / N * N;
    std::array<float, N> pad;
    pad.fill(-std::numeric_limits<float>::infinity());
    std::copy(x + full, x + n, pad.begin());

    batch vmax = batch::load_unaligned(pad.data());
    for (std::size_t i = 0; i < full; i += N) vmax = ::xsimd::max(vmax, batch::load_unaligned(x + i));
    std::array<float, N> lanes;
    vmax.store_unaligned(lanes.data());
    float max_value = lanes[0];
    for (float v : lanes) max_value = std::fmax(max_value, v);
    const batch m(max_value);

    batch sum(0.0f);
    for (std::size_t i = 0; i < full; i += N) {
        const batch e = ::xsimd::exp(batch::load_unaligned(x + i) - m);
        sum += e;
        e.store_unaligned(x + i);
    }
    if (full < n) {
        const batch e = ::xsimd::exp(batch::load_unaligned(pad.data()) - m);
        sum += e;
        e.store_unaligned(pad.data());
        std::copy(pad.begin(), pad.begin() + static_cast<std::ptrdiff_t>(n - full), x + full);
    }
    const batch inv_sum(1.0f / ::xsimd::hadd(sum));
    map1(x, n, x, [&](batch v) { return v * inv_sum; });
}

inline void silu(float* x, std::size_t n) { map1(x, n, x, [](batch v) { return silu_f32(v); }); }

inline void swiglu(const float* gate, const float* up, float* out, std::size_t n) {
    map2(gate, up, n, out, [](batch g, batch u) { return silu_f32(g) * u; });
}

inline void add(const float* a, const float* b, float* out, std::size_t n) {
    map2(a, b, n, out, [](batch u, batch v) { return u + v; });
}

inline void scale(float* x, float s, std::size_t n) {
    const batch sv(s);
    map1(x, n, x, [&](batch v) { return v * sv; });
}

inline void axpy(float a, const float* x, float* y, std::size_t n) {
    const batch av(a);
    map2(x, y, n, y, [&](batch xv, batch yv) { return ::xsimd::fma(av, xv, yv); });
}

// ---------------------------------------------------------------------------
// Top-k: k rounds of "maximum, then its first index" over int32 keys that
// order like the floats (highway.hpp explains the mapping). xsimd 8.1 has no
// horizontal max, so the last N lanes are compared in a short scalar loop.
// ---------------------------------------------------------------------------
inline void topk(const float* x, std::size_t n, std::size_t k, std::uint32_t* idx) {
    if (k == 0) return;
    constexpr std::int32_t kRemoved = std::numeric_limits<std::int32_t>::min();
    const std::size_t padded = (n + N - 1) / N * N;
    std::vector<std::int32_t> keys(padded, kRemoved);
    for (std::size_t i = 0; i < n; i += N) {
        std::array<float, N> v{};
        std::copy(x + i, x + std::min(n, i + N), v.begin());
        batch f = batch::load_unaligned(v.data());
        f = ::xsimd::select(::xsimd::isnan(f), batch(-std::numeric_limits<float>::infinity()), f) + batch(0.0f);
        const ibatch bits = ::xsimd::bitwise_cast<ibatch>(f);
        const ibatch key = bits ^ ((bits >> 31) & ibatch(0x7FFFFFFF));  // arithmetic shift: all ones if negative
        std::array<std::int32_t, N> k32;
        key.store_unaligned(k32.data());
        std::copy(k32.begin(), k32.begin() + static_cast<std::ptrdiff_t>(std::min(N, n - i)),
                  keys.begin() + static_cast<std::ptrdiff_t>(i));
    }
    for (std::size_t j = 0; j < k; ++j) {
        ibatch best(kRemoved);
        for (std::size_t i = 0; i < padded; i += N) best = ::xsimd::max(best, ibatch::load_unaligned(keys.data() + i));
        std::array<std::int32_t, N> lanes;
        best.store_unaligned(lanes.data());
        const std::int32_t best_key = *std::max_element(lanes.begin(), lanes.end());
        for (std::size_t i = 0; i < padded; i += N) {
            if (!::xsimd::any(ibatch::load_unaligned(keys.data() + i) == ibatch(best_key))) continue;
            std::size_t lane = 0;
            while (keys[i + lane] != best_key) ++lane;
            idx[j] = static_cast<std::uint32_t>(i + lane);
            keys[i + lane] = kRemoved;
            break;
        }
    }
}

// ---------------------------------------------------------------------------
// RoPE, the same arithmetic as highway.hpp: a' = a c - b s, b' = b c + a s.
// interleaved: swap neighbours with a swizzle and duplicate cos/sin per pair.
// ---------------------------------------------------------------------------
struct SwapPairs {  // lane i <- lane i ^ 1
    static constexpr std::uint32_t get(std::uint32_t i, std::uint32_t) { return i ^ 1u; }
};
struct DuplicatePairs {  // lane i <- lane i / 2
    static constexpr std::uint32_t get(std::uint32_t i, std::uint32_t) { return i / 2; }
};
struct EvenLanes {  // true on lanes 0, 2, 4, ...
    static constexpr bool get(std::uint32_t i, std::uint32_t) { return i % 2 == 0; }
};

inline void rope(float* x, std::size_t rot_dims, RopeStyle style, const float* cos, const float* sin) {
    const std::size_t n_planes = rot_dims / 2;
    if (style == RopeStyle::neox) {
        float* hi = x + n_planes;
        for (std::size_t i = 0; i < n_planes; i += N) {
            const std::size_t count = std::min(N, n_planes - i);
            std::array<float, N> a{}, b{}, c{}, s{};
            std::copy(x + i, x + i + count, a.begin());
            std::copy(hi + i, hi + i + count, b.begin());
            std::copy(cos + i, cos + i + count, c.begin());
            std::copy(sin + i, sin + i + count, s.begin());
            const batch av = batch::load_unaligned(a.data()), bv = batch::load_unaligned(b.data());
            const batch cv = batch::load_unaligned(c.data()), sv = batch::load_unaligned(s.data());
            ::xsimd::fnma(bv, sv, av * cv).store_unaligned(a.data());  // a c - b s
            ::xsimd::fma(av, sv, bv * cv).store_unaligned(b.data());   // b c + a s
            std::copy(a.begin(), a.begin() + static_cast<std::ptrdiff_t>(count), x + i);
            std::copy(b.begin(), b.begin() + static_cast<std::ptrdiff_t>(count), hi + i);
        }
        return;
    }
    using ::xsimd::make_batch_bool_constant;
    using ::xsimd::make_batch_constant;
    const std::size_t used = 2 * n_planes;
    for (std::size_t i = 0; i < used; i += N) {
        const std::size_t count = std::min(N, used - i);  // floats in this step (even)
        std::array<float, N> v{}, c{}, s{};
        std::copy(x + i, x + i + count, v.begin());
        std::copy(cos + i / 2, cos + (i + count) / 2, c.begin());
        std::copy(sin + i / 2, sin + (i + count) / 2, s.begin());
        const batch ab = batch::load_unaligned(v.data());
        const batch ba = ::xsimd::swizzle(ab, make_batch_constant<ubatch, SwapPairs>());
        const batch cc = ::xsimd::swizzle(batch::load_unaligned(c.data()), make_batch_constant<ubatch, DuplicatePairs>());
        const batch ss = ::xsimd::swizzle(batch::load_unaligned(s.data()), make_batch_constant<ubatch, DuplicatePairs>());
        const batch signed_s = ::xsimd::select(make_batch_bool_constant<batch, EvenLanes>(), -ss, ss);
        ::xsimd::fma(ba, signed_s, ab * cc).store_unaligned(v.data());
        std::copy(v.begin(), v.begin() + static_cast<std::ptrdiff_t>(count), x + i);
    }
}

// Register-only FMA loop; see highway.hpp. Returns the FLOP performed.
inline double fma_peak_probe(std::size_t iterations) {
    constexpr std::size_t kChains = 12;
    const batch m(0.999f), a(1e-3f);
    batch acc[kChains];
    for (std::size_t j = 0; j < kChains; ++j) acc[j] = batch(static_cast<float>(j));
    for (std::size_t it = 0; it < iterations; ++it)
        for (std::size_t j = 0; j < kChains; ++j) acc[j] = ::xsimd::fma(acc[j], m, a);
    batch sum = acc[0];
    for (std::size_t j = 1; j < kChains; ++j) sum += acc[j];
    volatile float sink = ::xsimd::hadd(sum);  // keeps the loop alive
    (void)sink;
    return 2.0 * kChains * static_cast<double>(N) * static_cast<double>(iterations);
}

}  // namespace moelab::detail::xsimd_kernels

// ---------------------------------------------------------------------------
// The contract's overload set for backend::xsimd.
// ---------------------------------------------------------------------------
namespace moelab::kernels {

// e.g. "xsimd avx512bw (16 x f32)"
inline const char* instruction_set(backend::xsimd) {
    namespace xk = detail::xsimd_kernels;
    static const std::string name =
        std::string("xsimd ") + xk::arch::name() + " (" + std::to_string(xk::N) + " x f32)";
    return name.c_str();
}

inline float dot(backend::xsimd, const float* w, const float* x, std::size_t n) {
    return detail::xsimd_kernels::dot(w, x, n);
}
inline float dot(backend::xsimd, const f16* w, const float* x, std::size_t n) {
    return detail::xsimd_kernels::dot(w, x, n);
}
inline float dot(backend::xsimd, const bf16* w, const float* x, std::size_t n) {
    return detail::xsimd_kernels::dot(w, x, n);
}

// W (rows, cols) row-major, x (cols), y (rows).
inline void matvec(backend::xsimd, const float* w, std::size_t rows, std::size_t cols, const float* x, float* y) {
    detail::xsimd_kernels::matvec(w, rows, cols, x, y);
}
inline void matvec(backend::xsimd, const f16* w, std::size_t rows, std::size_t cols, const float* x, float* y) {
    detail::xsimd_kernels::matvec(w, rows, cols, x, y);
}
inline void matvec(backend::xsimd, const bf16* w, std::size_t rows, std::size_t cols, const float* x, float* y) {
    detail::xsimd_kernels::matvec(w, rows, cols, x, y);
}

// W (rows, cols), x (n_tokens, cols), y[t * y_stride + r].
inline void matmul(backend::xsimd, const float* w, std::size_t rows, std::size_t cols, const float* x,
                   std::size_t n_tokens, float* y, std::size_t y_stride) {
    detail::xsimd_kernels::matmul(w, rows, cols, x, n_tokens, y, y_stride);
}
inline void matmul(backend::xsimd, const f16* w, std::size_t rows, std::size_t cols, const float* x,
                   std::size_t n_tokens, float* y, std::size_t y_stride) {
    detail::xsimd_kernels::matmul(w, rows, cols, x, n_tokens, y, y_stride);
}
inline void matmul(backend::xsimd, const bf16* w, std::size_t rows, std::size_t cols, const float* x,
                   std::size_t n_tokens, float* y, std::size_t y_stride) {
    detail::xsimd_kernels::matmul(w, rows, cols, x, n_tokens, y, y_stride);
}

// out = x / sqrt(mean(x^2) + eps) * w   (x, w, out: n)
inline void rmsnorm(backend::xsimd, const float* x, const float* w, float eps, std::size_t n, float* out) {
    detail::xsimd_kernels::rmsnorm(x, w, eps, n, out);
}

// out = x / max(||x||_2, eps)   (x, out: n)
inline void l2norm(backend::xsimd, const float* x, float eps, std::size_t n, float* out) {
    detail::xsimd_kernels::l2norm(x, eps, n, out);
}

// x <- exp(x - max x) / sum exp(x - max x), in place (x: n)
inline void softmax(backend::xsimd, float* x, std::size_t n) { detail::xsimd_kernels::softmax(x, n); }

// x <- x / (1 + e^-x), in place (x: n)
inline void silu(backend::xsimd, float* x, std::size_t n) { detail::xsimd_kernels::silu(x, n); }

// out = silu(gate) * up   (gate, up, out: n)
inline void swiglu(backend::xsimd, const float* gate, const float* up, float* out, std::size_t n) {
    detail::xsimd_kernels::swiglu(gate, up, out, n);
}

// Rotates x[0..rot_dims) in place; cos, sin: rot_dims / 2.
inline void rope(backend::xsimd, float* x, std::size_t rot_dims, RopeStyle style, const float* cos,
                 const float* sin) {
    detail::xsimd_kernels::rope(x, rot_dims, style, cos, sin);
}

// out = a + b   (a, b, out: n)
inline void add(backend::xsimd, const float* a, const float* b, float* out, std::size_t n) {
    detail::xsimd_kernels::add(a, b, out, n);
}

// x <- s * x, in place (x: n)
inline void scale(backend::xsimd, float* x, float s, std::size_t n) { detail::xsimd_kernels::scale(x, s, n); }

// y <- y + a * x, fused   (x, y: n)
inline void axpy(backend::xsimd, float a, const float* x, float* y, std::size_t n) {
    detail::xsimd_kernels::axpy(a, x, y, n);
}

// idx[0..k) = indices of the k largest x, largest first; ties: lowest index; NaN last. k <= n.
inline void topk(backend::xsimd, const float* x, std::size_t n, std::size_t k, std::uint32_t* idx) {
    detail::xsimd_kernels::topk(x, n, k, idx);
}

// Floating-point operations performed by a register-only FMA loop (time it to get peak FLOP/s).
inline double fma_peak_probe(backend::xsimd, std::size_t iterations) {
    return detail::xsimd_kernels::fma_peak_probe(iterations);
}

}  // namespace moelab::kernels

// Products for quantized weight blocks (Q8_0, Q4_0, Q4_K, Q5_K, Q6_K).
#include "moelab/kernels/xsimd_quant.hpp"
