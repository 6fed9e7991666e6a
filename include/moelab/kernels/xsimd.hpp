// SPDX-License-Identifier: MIT
// moelab/kernels/xsimd.hpp — the xsimd backend: every kernel of the contract
// (kernels/backend.hpp) for the tag moelab::backend::xsimd.
//
// Depends on: moelab/kernels/xsimd_tile.hpp (the product loop, the blocking
//             constants and the widening), moelab/kernels/backend.hpp,
//             moelab/dtype.hpp, moelab/tensor.hpp
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
//   already is one; f16: see f16_top_to_f32 in xsimd_tile.hpp). The two
//   vectors hold the even and the odd weights of the step, so they multiply
//   an x that was de-interleaved the same way, once per call (x is shared by
//   all rows):
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
// Order: products first, then the vector ops, so that the header reads
// against scalar.hpp kernel by kernel.
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
#include "moelab/kernels/xsimd_tile.hpp"
#include "moelab/tensor.hpp"

namespace moelab::detail::xsimd_kernels {

using kernels::with_count;  // kernels/backend.hpp: a run-time count as a template argument

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
// reasons: rows one after another, one sequential stream without software
// prefetch, or kMatvecRows prefetched weight streams that share each x load,
// per call as `reads` says (kernels::matvec_in_passes: the tag's setting,
// which a Transformer picks by timing). Same bits either way (the
// determinism rule, xsimd_tile.hpp).
template <class T>
void matvec(const T* w, std::size_t rows, std::size_t cols, const float* x, float* y, kernels::MatvecReads reads) {
    FloatBuffer split;
    if constexpr (!std::is_same_v<T, float>) split = prepare_x<T>(x, 1, cols);
    const float* xp = std::is_same_v<T, float> ? x : split.data();
    const std::size_t xp_len = std::is_same_v<T, float> ? cols : split.size();
    std::size_t r = 0;
    if (kernels::matvec_in_passes(reads, rows, cols * sizeof(float)))
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
inline void matvec(backend::xsimd b, const float* w, std::size_t rows, std::size_t cols, const float* x, float* y) {
    detail::xsimd_kernels::matvec(w, rows, cols, x, y, b.matvec_reads);
}
inline void matvec(backend::xsimd b, const f16* w, std::size_t rows, std::size_t cols, const float* x, float* y) {
    detail::xsimd_kernels::matvec(w, rows, cols, x, y, b.matvec_reads);
}
inline void matvec(backend::xsimd b, const bf16* w, std::size_t rows, std::size_t cols, const float* x, float* y) {
    detail::xsimd_kernels::matvec(w, rows, cols, x, y, b.matvec_reads);
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
