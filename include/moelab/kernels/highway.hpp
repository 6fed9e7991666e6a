// SPDX-License-Identifier: MIT
// moelab/kernels/highway.hpp — the Google Highway backend: every kernel of the
// contract (kernels/backend.hpp) for the tag moelab::backend::highway.
//
// Depends on: moelab/kernels/highway_tile.hpp (the product loop),
//             moelab/kernels/backend.hpp, moelab/dtype.hpp, moelab/tensor.hpp
//             (FloatBuffer: 64-byte aligned scratch), Highway 1.0.x
//             (hwy/highway.h, hwy/cache_control.h, hwy/contrib/math/math-inl.h),
//             the standard library.
//
// Static dispatch: the code is compiled once, for the best target the compiler
// flags allow (AVX3_DL = AVX-512 with VNNI/BF16 under -march=native on the
// development machine; AVX2, NEON, ... elsewhere). No run-time CPU detection,
// no library to link, nothing to initialise.
//
// How the products are organised (docs/kernels.md has the measurements):
//   * One product loop, product_tile<kRows, kTokens> (highway_tile.hpp, with
//     the blocking constants and the per-type weight loads), computes a small
//     tile of dot products: one vector accumulator per (row, token), the last
//     partial vector zero-padded, lanes summed by SumOfLanes at the end. dot,
//     matvec and matmul all run it (and so do highway_quant.hpp's panels), so
//     every (row, token) dot product is accumulated in exactly the same order
//     in every code path: the contract's determinism rule holds by
//     construction.
//   * matvec (decode, memory-bound) reads its rows as one sequential stream
//     or streams kMatvecRows rows at once, sharing each x load, prefetching
//     each row kPrefetchBytes ahead and past its end into the next pass (the rows
//     are the independent accumulator chains that hide FMA latency); which,
//     per call, is the tag's run-time setting (kernels::MatvecReads), because
//     the faster one depends on the machine.
//   * matmul (prefill, compute-bound) copies x and each chunk of weight rows,
//     widened to f32, into 64-byte aligned buffers once, and sweeps register
//     tiles of kTileRows x kTileTokens accumulators over them; rows wider
//     than 1,024 columns in blocks of kBlockCols (sweep_chunk).
//   * Weight types enter in two places, load_weights() and widen_row()
//     (both in highway_tile.hpp): a new storage type is one more overload of
//     each (a quantized block type may instead bring its own fused
//     dequantise-and-dot tile). bf16 is the exception that proves the rule:
//     it is widened two lines at a time in "pair order" (kBf16PairOrder),
//     which saves half the widening work and so needs the activations in the
//     same order (pair_order()).
//
// Order: products first, then the vector ops, so that the header reads
// against scalar.hpp kernel by kernel.
#pragma once

// Highway 1.0.3 refuses to compile under -march=native ("best baseline should
// be included in dynamic targets") unless told to generate only the static
// target, which is all this header uses. The moelab::highway CMake target
// defines this too; the define here makes the header usable on its own. (It
// only takes effect if Highway was not included before this header.)
#if !defined(HWY_COMPILE_ONLY_STATIC) && !defined(HWY_COMPILE_ONLY_EMU128) && \
    !defined(HWY_COMPILE_ONLY_SCALAR)
#define HWY_COMPILE_ONLY_STATIC 1
#endif

#include <hwy/highway.h>
#include <hwy/cache_control.h>
#include <hwy/contrib/math/math-inl.h>

#include <algorithm>
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
#include "moelab/kernels/highway_tile.hpp"
#include "moelab/tensor.hpp"

// The Highway skeleton. HWY_BEFORE_NAMESPACE() switches the compiler to the
// static target's instruction set (a `#pragma GCC target` region), and
// HWY_NAMESPACE names a namespace per target (here e.g. N_AVX3_DL), so code
// compiled for different targets never collides. `hn` is Highway's vector API
// for that target. The public overloads further down call into it.
HWY_BEFORE_NAMESPACE();
namespace moelab::detail {
namespace HWY_NAMESPACE {
namespace hn = hwy::HWY_NAMESPACE;

using kernels::with_count;  // kernels/backend.hpp: a run-time count as a template argument

// The activations as product_tile<T> reads them: bf16 weights take them in
// pair order (a copy), every other type as they are.
template <class T>
class ActivationsFor {
  public:
    ActivationsFor(const float* x, std::size_t n) : x_(x) {
        if constexpr (kPairOrdered<T>) {
            paired_.resize(n);
            pair_order(x, n, paired_.data());
            x_ = paired_.data();
        }
    }
    const float* data() const { return x_; }

  private:
    const float* x_;
    FloatBuffer paired_;
};

template <class T>
HWY_INLINE float dot(const T* HWY_RESTRICT w, const float* HWY_RESTRICT x, std::size_t n) {
    const ActivationsFor<T> xa(x, n);
    float y;
    product_tile<1, 1>(w, n, xa.data(), n, n, &y, 1);
    return y;
}

// Memory-bound. Rows are read either one after another, a single sequential
// stream with no software prefetch (the hardware prefetchers follow one
// stream best; a prefetch instruction per line only takes a load slot), or
// kMatvecRows at a time, each x vector loaded once for all of them, each row
// prefetched kPrefetchBytes ahead (and kMatvecRows independent chains of
// multiply-adds, where one row has one). `reads` says which, per call
// (kernels::matvec_in_passes): MatvecReads::stream_when_short keeps the single
// stream for short calls (an MoE expert task) and short x (in L1 next to the
// stream), and passes for the rest (a 6144-wide down projection: x is 24 KB,
// and re-reading it per row thrashed L1); on the AMD machines that measured
// dense f32 +45-60%, dense bf16 +13-37%, MoE f32 +10-14% in whole-model
// decode against passes everywhere. On the Intel machine passes everywhere
// (MatvecReads::row_passes) were faster, so a Transformer times both
// (model/decode_tuning.hpp; docs/kernels.md). product_tile gives a (row,
// token) the same operations for any kRows, so the choice changes no bit.
//
// The rows' loops are a function of their own, never inlined: compiled in one
// body with ActivationsFor's buffer (an object with a destructor), GCC 12
// kept a pass's 8 accumulators on the stack and stored them all after every
// step, 78 instructions per bf16 step against 57 here (docs/kernels.md).
template <class T>
HWY_NOINLINE void matvec_rows(const T* HWY_RESTRICT w, std::size_t rows, std::size_t cols,
                              const float* HWY_RESTRICT x, float* HWY_RESTRICT y, kernels::MatvecReads reads) {
    std::size_t r = 0;
    if (kernels::matvec_in_passes(reads, rows, cols * sizeof(float)))
        for (; r + kMatvecRows <= rows; r += kMatvecRows)
            product_tile<kMatvecRows, 1>(w + r * cols, cols, x, cols, cols, y + r, 1);
    for (; r < rows; ++r) product_tile<1, 1>(w + r * cols, cols, x, cols, cols, y + r, 1);
}

template <class T>
HWY_INLINE void matvec(const T* HWY_RESTRICT w, std::size_t rows, std::size_t cols,
                       const float* HWY_RESTRICT x, float* HWY_RESTRICT y, kernels::MatvecReads reads) {
    const ActivationsFor<T> xa(x, cols);
    matvec_rows(w, rows, cols, xa.data(), y, reads);
}

// Compute-bound. x is copied once, and each chunk of kChunkRows weight rows
// is copied (f32) or widened (f16/bf16) once, into 64-byte aligned buffers
// whose rows are zero-padded to whole vectors: unaligned 64-byte loads
// straddle two cache lines, and the register tile ran at half speed on them.
// (The zero padding does exactly what product_tile's tail does, so results
// are unchanged.) Then all tokens sweep past the chunk, kTileTokens at a
// time, in register tiles of kTileRows x kTileTokens accumulators: kTileRows +
// kTileTokens loads per kTileRows * kTileTokens FMAs. The chunk stays in L2
// (up to kChunkBytes of it). For rows over 2 x kBlockCols columns and more than
// one tile of tokens the sweep also cuts the columns into blocks, so that the
// tile of tokens is read from L1 (highway_tile.hpp, sweep_chunk; on the
// Intel machine of 2026-12-07 the f32 products of 512 tokens ran 1.2-1.45x as
// fast, docs/kernels.md "Columns in blocks"; an earlier blocking of the bf16
// tile measured no faster on a Zen 5).
// f32 rows that are already whole vectors on 64-byte boundaries
// (kernels::whole_aligned_rows: the GGUF files' tensors, the KV cache and the
// activations usually are) are read where they are instead, as the bf16
// products do (highway_bf16.hpp): the copy would hold the same values, so the
// results are the same. Weight rows only when more than one tile of tokens
// sweeps each chunk: with one tile (decode attention's scores, a group's 4
// query heads) every chunk is read once, and copying it first, one sequential
// stream, measured faster than the tile's four rows at a time from DRAM (MoE
// Q4_K at a depth of 1024: 135 / 141 tok/s copied, 122 / 129 in place); with
// 512 tokens in place measured faster (dense bf16 pp512 518 / 572 copied,
// 565 / 631 in place; docs/kernels.md).
template <class T>
inline void matmul(const T* HWY_RESTRICT w, std::size_t rows, std::size_t cols,
                   const float* HWY_RESTRICT x, std::size_t n_tokens, float* HWY_RESTRICT y,
                   std::size_t y_stride) {
    const std::size_t N = hn::Lanes(DF());
    const std::size_t stride = (cols + N - 1) / N * N;
    constexpr bool kF32 = std::is_same_v<T, float>;
    const bool x_in_place = !kPairOrdered<T> && kernels::whole_aligned_rows(x, cols, N);
    const bool w_in_place = kF32 && n_tokens > kTileTokens && kernels::whole_aligned_rows(w, cols, N);
    FloatBuffer xs(x_in_place ? 0 : n_tokens * stride);  // (n_tokens, stride), zero-padded; bf16: in pair order, as the panel
    for (std::size_t t = 0; !x_in_place && t < n_tokens; ++t) {
        if constexpr (kPairOrdered<T>)
            pair_order(x + t * cols, cols, xs.data() + t * stride);
        else
            std::copy(x + t * cols, x + (t + 1) * cols, xs.data() + t * stride);
    }
    const float* xp = x_in_place ? x : xs.data();  // (n_tokens, stride)
    const std::size_t chunk_max = std::min(rows, chunk_rows(stride, n_tokens));
    FloatBuffer panel(w_in_place ? 0 : chunk_max * stride);  // (chunk, stride), zero-padded
    FloatBuffer park(blocked_sweep(stride, n_tokens) ? park_floats() : 0);  // only a blocked sweep parks
    for (std::size_t r0 = 0; r0 < rows; r0 += chunk_max) {
        const std::size_t chunk = std::min(chunk_max, rows - r0);
        const float* wp = panel.data();  // (chunk, stride)
        if constexpr (kF32)
            if (w_in_place) wp = w + r0 * stride;
        for (std::size_t r = 0; !w_in_place && r < chunk; ++r) widen_row(w + (r0 + r) * cols, cols, panel.data() + r * stride);
        // What the next chunk reads: its rows in place, or the rows it widens.
        const std::size_t next_rows = std::min(chunk_max, rows - r0 - chunk);
        const std::size_t next_row_values = w_in_place ? stride : cols;
        sweep_chunk(wp, chunk, stride, xp, n_tokens, y + r0, y_stride, park.data(),
                    next_rows == 0 ? nullptr : w + (r0 + chunk) * next_row_values, next_rows * next_row_values * sizeof(T));
    }
}

// ---------------------------------------------------------------------------
// Elementwise kernels. Each walks whole vectors and sends the last partial
// vector through zero-padded buffers, so every element sees the same vector
// code (no scalar tail with different rounding). `out` may alias an input.
// ---------------------------------------------------------------------------
template <class F>
HWY_INLINE void map1(const float* x, std::size_t n, float* out, F f) {
    const DF df;
    const std::size_t N = hn::Lanes(df);
    std::size_t i = 0;
    for (; i + N <= n; i += N) hn::StoreU(f(hn::LoadU(df, x + i)), df, out + i);
    if (i == n) return;
    HWY_ALIGN float pad[hn::MaxLanes(df)] = {};
    std::copy(x + i, x + n, pad);
    hn::Store(f(hn::Load(df, pad)), df, pad);
    std::copy(pad, pad + (n - i), out + i);
}

template <class F>
HWY_INLINE void map2(const float* a, const float* b, std::size_t n, float* out, F f) {
    const DF df;
    const std::size_t N = hn::Lanes(df);
    std::size_t i = 0;
    for (; i + N <= n; i += N) hn::StoreU(f(hn::LoadU(df, a + i), hn::LoadU(df, b + i)), df, out + i);
    if (i == n) return;
    HWY_ALIGN float pad_a[hn::MaxLanes(df)] = {};
    HWY_ALIGN float pad_b[hn::MaxLanes(df)] = {};
    std::copy(a + i, a + n, pad_a);
    std::copy(b + i, b + n, pad_b);
    hn::Store(f(hn::Load(df, pad_a), hn::Load(df, pad_b)), df, pad_a);
    std::copy(pad_a, pad_a + (n - i), out + i);
}

// sum_i x[i]^2 in one vector accumulator (zero padding adds nothing).
HWY_INLINE float sum_of_squares(const float* x, std::size_t n) {
    const DF df;
    const std::size_t N = hn::Lanes(df);
    VF acc = hn::Zero(df);
    std::size_t i = 0;
    for (; i + N <= n; i += N) acc = hn::MulAdd(hn::LoadU(df, x + i), hn::LoadU(df, x + i), acc);
    if (i < n) {
        HWY_ALIGN float pad[hn::MaxLanes(df)] = {};
        std::copy(x + i, x + n, pad);
        acc = hn::MulAdd(hn::Load(df, pad), hn::Load(df, pad), acc);
    }
    return hn::GetLane(hn::SumOfLanes(df, acc));
}

// e^x for every x. Highway's Exp is within 1 ulp on [-FLT_MAX, 104], returns
// 0 below -104, but is undefined above 104 and for NaN. e^89 already
// overflows f32, so clamping at 89 gives +inf where it should; NaN passes through.
HWY_INLINE VF exp_f32(DF df, VF x) {
    const VF e = hn::Exp(df, hn::Min(x, hn::Set(df, 89.0f)));
    return hn::IfThenElse(hn::IsNaN(x), x, e);
}

// silu(g) = g / (1 + e^-g), the scalar backend's formula.
HWY_INLINE VF silu_f32(DF df, VF g) { return hn::Div(g, hn::Add(hn::Set(df, 1.0f), exp_f32(df, hn::Neg(g)))); }

inline void rmsnorm(const float* x, const float* w, float eps, std::size_t n, float* out) {
    const float inv_rms = 1.0f / std::sqrt(sum_of_squares(x, n) / static_cast<float>(n) + eps);
    const VF s = hn::Set(DF(), inv_rms);
    map2(x, w, n, out, [&](VF xv, VF wv) { return hn::Mul(hn::Mul(xv, s), wv); });
}

inline void l2norm(const float* x, float eps, std::size_t n, float* out) {
    const float inv_norm = 1.0f / std::fmax(std::sqrt(sum_of_squares(x, n)), eps);
    const VF s = hn::Set(DF(), inv_norm);
    map1(x, n, out, [&](VF v) { return hn::Mul(v, s); });
}

// Three passes: max, exp and sum, scale. Padding lanes hold -inf, so they
// neither win the max nor add to the sum (e^-inf = 0).
inline void softmax(float* x, std::size_t n) {
    if (n == 0) return;
    const DF df;
    const std::size_t N = hn::Lanes(df);
    const std::size_t full = n / N * N;
    HWY_ALIGN float pad[hn::MaxLanes(df)];
    std::fill(pad, pad + N, -std::numeric_limits<float>::infinity());
    std::copy(x + full, x + n, pad);

    VF vmax = hn::Load(df, pad);
    for (std::size_t i = 0; i < full; i += N) vmax = hn::Max(vmax, hn::LoadU(df, x + i));
    const VF m = hn::MaxOfLanes(df, vmax);

    VF sum = hn::Zero(df);
    for (std::size_t i = 0; i < full; i += N) {
        const VF e = exp_f32(df, hn::Sub(hn::LoadU(df, x + i), m));
        sum = hn::Add(sum, e);
        hn::StoreU(e, df, x + i);
    }
    if (full < n) {
        const VF e = exp_f32(df, hn::Sub(hn::Load(df, pad), m));
        sum = hn::Add(sum, e);
        hn::Store(e, df, pad);
        std::copy(pad, pad + (n - full), x + full);
    }
    const VF inv_sum = hn::Set(df, 1.0f / hn::GetLane(hn::SumOfLanes(df, sum)));
    map1(x, n, x, [&](VF v) { return hn::Mul(v, inv_sum); });
}

inline void silu(float* x, std::size_t n) {
    map1(x, n, x, [](VF v) { return silu_f32(DF(), v); });
}

inline void swiglu(const float* gate, const float* up, float* out, std::size_t n) {
    map2(gate, up, n, out, [](VF g, VF u) { return hn::Mul(silu_f32(DF(), g), u); });
}

inline void add(const float* a, const float* b, float* out, std::size_t n) {
    map2(a, b, n, out, [](VF u, VF v) { return hn::Add(u, v); });
}

inline void scale(float* x, float s, std::size_t n) {
    const VF sv = hn::Set(DF(), s);
    map1(x, n, x, [&](VF v) { return hn::Mul(v, sv); });
}

// Fused: one rounding per element, like std::fma.
inline void axpy(float a, const float* x, float* y, std::size_t n) {
    const VF av = hn::Set(DF(), a);
    map2(x, y, n, y, [&](VF xv, VF yv) { return hn::MulAdd(av, xv, yv); });
}

// ---------------------------------------------------------------------------
// Top-k by k rounds of "maximum, then its first index". Floats are mapped to
// int32 keys that order like the floats (negative values: flip the magnitude
// bits), after NaN -> -inf (NaN ranks last) and -0 -> +0 (so -0 and +0 tie).
// A chosen key is replaced by INT32_MIN, below every real key (-inf maps to
// -0x7F800001). Ties go to the first index, the lowest: the scalar rule.
// Cost: k passes over n keys; routers have n <= a few hundred.
// ---------------------------------------------------------------------------
inline void topk(const float* x, std::size_t n, std::size_t k, std::uint32_t* idx) {
    if (k == 0) return;
    const DF df;
    const hn::RebindToSigned<DF> di;
    const std::size_t N = hn::Lanes(df);
    const std::size_t padded = (n + N - 1) / N * N;
    std::vector<std::int32_t> keys(padded, std::numeric_limits<std::int32_t>::min());
    for (std::size_t i = 0; i < n; i += N) {
        HWY_ALIGN float v[hn::MaxLanes(df)];
        std::fill(v, v + N, 0.0f);
        std::copy(x + i, x + std::min(n, i + N), v);
        VF f = hn::Load(df, v);
        f = hn::Add(hn::IfThenElse(hn::IsNaN(f), hn::Set(df, -std::numeric_limits<float>::infinity()), f),
                    hn::Zero(df));  // -0 + 0 = +0
        const auto bits = hn::BitCast(di, f);
        const auto key = hn::Xor(bits, hn::And(hn::BroadcastSignBit(bits), hn::Set(di, 0x7FFFFFFF)));
        HWY_ALIGN std::int32_t k32[hn::MaxLanes(di)];
        hn::Store(key, di, k32);
        std::copy(k32, k32 + std::min(N, n - i), keys.begin() + static_cast<std::ptrdiff_t>(i));
    }
    for (std::size_t j = 0; j < k; ++j) {
        auto best = hn::Set(di, std::numeric_limits<std::int32_t>::min());
        for (std::size_t i = 0; i < padded; i += N) best = hn::Max(best, hn::LoadU(di, keys.data() + i));
        best = hn::MaxOfLanes(di, best);
        for (std::size_t i = 0; i < padded; i += N) {
            const intptr_t lane = hn::FindFirstTrue(di, hn::Eq(hn::LoadU(di, keys.data() + i), best));
            if (lane >= 0) {
                idx[j] = static_cast<std::uint32_t>(i + static_cast<std::size_t>(lane));
                keys[idx[j]] = std::numeric_limits<std::int32_t>::min();
                break;
            }
        }
    }
}

// ---------------------------------------------------------------------------
// RoPE. Both pairings compute a' = a c - b s, b' = b c + a s per plane.
// neox: a and b are two vectors rot_dims/2 apart. interleaved: a vector holds
// N/2 planes (a, b, a, b, ...); swapping neighbours gives (b, a, ...), and
// cos/sin are duplicated per pair ([c0, c0, c1, c1, ...]) by a table lookup.
// ---------------------------------------------------------------------------
inline void rope(float* x, std::size_t rot_dims, RopeStyle style, const float* cos, const float* sin) {
    const DF df;
    const std::size_t N = hn::Lanes(df);
    const std::size_t n_planes = rot_dims / 2;
    if (style == RopeStyle::neox) {
        float* hi = x + n_planes;
        std::size_t i = 0;
        auto rotate = [&](VF a, VF b, VF c, VF s, VF& a_out, VF& b_out) {
            a_out = hn::NegMulAdd(b, s, hn::Mul(a, c));
            b_out = hn::MulAdd(a, s, hn::Mul(b, c));
        };
        for (; i + N <= n_planes; i += N) {
            VF a, b;
            rotate(hn::LoadU(df, x + i), hn::LoadU(df, hi + i), hn::LoadU(df, cos + i), hn::LoadU(df, sin + i), a, b);
            hn::StoreU(a, df, x + i);
            hn::StoreU(b, df, hi + i);
        }
        if (i == n_planes) return;
        HWY_ALIGN float pa[hn::MaxLanes(df)] = {}, pb[hn::MaxLanes(df)] = {};
        HWY_ALIGN float pc[hn::MaxLanes(df)] = {}, ps[hn::MaxLanes(df)] = {};
        const std::size_t rest = n_planes - i;
        std::copy(x + i, x + n_planes, pa);
        std::copy(hi + i, hi + n_planes, pb);
        std::copy(cos + i, cos + n_planes, pc);
        std::copy(sin + i, sin + n_planes, ps);
        VF a, b;
        rotate(hn::Load(df, pa), hn::Load(df, pb), hn::Load(df, pc), hn::Load(df, ps), a, b);
        hn::Store(a, df, pa);
        hn::Store(b, df, pb);
        std::copy(pa, pa + rest, x + i);
        std::copy(pb, pb + rest, hi + i);
        return;
    }
#if HWY_TARGET == HWY_SCALAR
    // One-lane vectors cannot hold a plane: plain loops, the same arithmetic.
    for (std::size_t i = 0; i < n_planes; ++i) {
        const float a = x[2 * i], b = x[2 * i + 1];
        x[2 * i] = std::fma(-b, sin[i], a * cos[i]);
        x[2 * i + 1] = std::fma(a, sin[i], b * cos[i]);
    }
#else
    // interleaved: vectors of N floats = N/2 planes.
    const hn::RebindToSigned<DF> di;
    HWY_ALIGN std::int32_t dup[hn::MaxLanes(di)];
    for (std::size_t j = 0; j < N; ++j) dup[j] = static_cast<std::int32_t>(j / 2);
    const auto dup_pairs = hn::SetTableIndices(df, dup);
    const std::size_t used = 2 * n_planes;
    for (std::size_t i = 0; i < used; i += N) {
        const std::size_t count = std::min(N, used - i);  // floats in this step (even)
        HWY_ALIGN float v[hn::MaxLanes(df)] = {}, c[hn::MaxLanes(df)] = {}, s[hn::MaxLanes(df)] = {};
        std::copy(x + i, x + i + count, v);
        std::copy(cos + i / 2, cos + (i + count) / 2, c);
        std::copy(sin + i / 2, sin + (i + count) / 2, s);
        const VF ab = hn::Load(df, v);
        const VF ba = hn::Shuffle2301(ab);
        const VF cc = hn::TableLookupLanes(hn::Load(df, c), dup_pairs);
        const VF ss = hn::TableLookupLanes(hn::Load(df, s), dup_pairs);
        // even lanes: a c - b s;  odd lanes: b c + a s
        const VF signed_s = hn::OddEven(ss, hn::Neg(ss));
        hn::Store(hn::MulAdd(ba, signed_s, hn::Mul(ab, cc)), df, v);
        std::copy(v, v + count, x + i);
    }
#endif
}

// A register-only loop of kChains independent FMA chains; returns the
// floating-point operations done (2 per lane per FMA). 12 chains cover an FMA
// latency of 4-6 cycles on two FMA pipes, and with the two constants still fit
// in 16 registers. m < 1 keeps every value bounded (no inf, no subnormals).
inline double fma_peak_probe(std::size_t iterations) {
    constexpr std::size_t kChains = 12;
    const DF df;
    const VF m = hn::Set(df, 0.999f), a = hn::Set(df, 1e-3f);
    VF acc[kChains];
    for (std::size_t j = 0; j < kChains; ++j) acc[j] = hn::Set(df, static_cast<float>(j));
    for (std::size_t it = 0; it < iterations; ++it)
        for (std::size_t j = 0; j < kChains; ++j) acc[j] = hn::MulAdd(acc[j], m, a);
    VF sum = acc[0];
    for (std::size_t j = 1; j < kChains; ++j) sum = hn::Add(sum, acc[j]);
    volatile float sink = hn::GetLane(hn::SumOfLanes(df, sum));  // keeps the loop alive
    (void)sink;
    return 2.0 * kChains * static_cast<double>(hn::Lanes(df)) * static_cast<double>(iterations);
}

}  // namespace HWY_NAMESPACE
}  // namespace moelab::detail
HWY_AFTER_NAMESPACE();

// ---------------------------------------------------------------------------
// The contract's overload set for backend::highway.
// ---------------------------------------------------------------------------
namespace moelab::kernels {

// e.g. "highway AVX3_DL (16 x f32)"
inline const char* instruction_set(backend::highway) {
    static const std::string name = std::string("highway ") + hwy::TargetName(HWY_TARGET) + " (" +
                                    std::to_string(detail::HWY_NAMESPACE::f32_lanes()) + " x f32)";
    return name.c_str();
}

inline float dot(backend::highway, const float* w, const float* x, std::size_t n) {
    return detail::HWY_NAMESPACE::dot(w, x, n);
}
inline float dot(backend::highway, const f16* w, const float* x, std::size_t n) {
    return detail::HWY_NAMESPACE::dot(w, x, n);
}
inline float dot(backend::highway, const bf16* w, const float* x, std::size_t n) {
    return detail::HWY_NAMESPACE::dot(w, x, n);
}

// W (rows, cols) row-major, x (cols), y (rows).
inline void matvec(backend::highway b, const float* w, std::size_t rows, std::size_t cols, const float* x,
                   float* y) {
    detail::HWY_NAMESPACE::matvec(w, rows, cols, x, y, b.matvec_reads);
}
inline void matvec(backend::highway b, const f16* w, std::size_t rows, std::size_t cols, const float* x,
                   float* y) {
    detail::HWY_NAMESPACE::matvec(w, rows, cols, x, y, b.matvec_reads);
}
inline void matvec(backend::highway b, const bf16* w, std::size_t rows, std::size_t cols, const float* x,
                   float* y) {
    detail::HWY_NAMESPACE::matvec(w, rows, cols, x, y, b.matvec_reads);
}

// W (rows, cols), x (n_tokens, cols), y[t * y_stride + r].
inline void matmul(backend::highway, const float* w, std::size_t rows, std::size_t cols, const float* x,
                   std::size_t n_tokens, float* y, std::size_t y_stride) {
    detail::HWY_NAMESPACE::matmul(w, rows, cols, x, n_tokens, y, y_stride);
}
inline void matmul(backend::highway, const f16* w, std::size_t rows, std::size_t cols, const float* x,
                   std::size_t n_tokens, float* y, std::size_t y_stride) {
    detail::HWY_NAMESPACE::matmul(w, rows, cols, x, n_tokens, y, y_stride);
}
inline void matmul(backend::highway, const bf16* w, std::size_t rows, std::size_t cols, const float* x,
                   std::size_t n_tokens, float* y, std::size_t y_stride) {
    detail::HWY_NAMESPACE::matmul(w, rows, cols, x, n_tokens, y, y_stride);
}

// out = x / sqrt(mean(x^2) + eps) * w   (x, w, out: n)
inline void rmsnorm(backend::highway, const float* x, const float* w, float eps, std::size_t n, float* out) {
    detail::HWY_NAMESPACE::rmsnorm(x, w, eps, n, out);
}

// out = x / max(||x||_2, eps)   (x, out: n)
inline void l2norm(backend::highway, const float* x, float eps, std::size_t n, float* out) {
    detail::HWY_NAMESPACE::l2norm(x, eps, n, out);
}

// x <- exp(x - max x) / sum exp(x - max x), in place (x: n)
inline void softmax(backend::highway, float* x, std::size_t n) { detail::HWY_NAMESPACE::softmax(x, n); }

// x <- x / (1 + e^-x), in place (x: n)
inline void silu(backend::highway, float* x, std::size_t n) { detail::HWY_NAMESPACE::silu(x, n); }

// out = silu(gate) * up   (gate, up, out: n)
inline void swiglu(backend::highway, const float* gate, const float* up, float* out, std::size_t n) {
    detail::HWY_NAMESPACE::swiglu(gate, up, out, n);
}

// Rotates x[0..rot_dims) in place; cos, sin: rot_dims / 2.
inline void rope(backend::highway, float* x, std::size_t rot_dims, RopeStyle style, const float* cos,
                 const float* sin) {
    detail::HWY_NAMESPACE::rope(x, rot_dims, style, cos, sin);
}

// out = a + b   (a, b, out: n)
inline void add(backend::highway, const float* a, const float* b, float* out, std::size_t n) {
    detail::HWY_NAMESPACE::add(a, b, out, n);
}

// x <- s * x, in place (x: n)
inline void scale(backend::highway, float* x, float s, std::size_t n) { detail::HWY_NAMESPACE::scale(x, s, n); }

// y <- y + a * x, fused   (x, y: n)
inline void axpy(backend::highway, float a, const float* x, float* y, std::size_t n) {
    detail::HWY_NAMESPACE::axpy(a, x, y, n);
}

// idx[0..k) = indices of the k largest x, largest first; ties: lowest index; NaN last. k <= n.
inline void topk(backend::highway, const float* x, std::size_t n, std::size_t k, std::uint32_t* idx) {
    detail::HWY_NAMESPACE::topk(x, n, k, idx);
}

// Floating-point operations performed by a register-only FMA loop (time it to get peak FLOP/s).
inline double fma_peak_probe(backend::highway, std::size_t iterations) {
    return detail::HWY_NAMESPACE::fma_peak_probe(iterations);
}

}  // namespace moelab::kernels

// Products for quantized weight blocks (Q8_0, Q4_0, Q4_K, Q5_K, Q6_K), and
// the opt-in int8-activation and bf16-activation versions.
#include "moelab/kernels/highway_quant.hpp"
#include "moelab/kernels/highway_int8.hpp"
#include "moelab/kernels/highway_interleaved.hpp"
#include "moelab/kernels/highway_bf16.hpp"
