// SPDX-License-Identifier: MIT
// moelab/kernels/highway_tile.hpp — the Highway backend's one product loop,
// product_tile: a small tile of dot products between weight rows and
// activation rows, with the blocking constants and the per-type weight loads
// it is built from. kernels/highway.hpp (f32/f16/bf16 dot, matvec, matmul)
// and kernels/highway_quant.hpp (the quantized matmul's dequantised panels)
// both run it, so a (row, token) dot product is accumulated in the same
// order wherever it is computed.
//
// Depends on: moelab/kernels/backend.hpp (unrolled), moelab/dtype.hpp (f16,
//             bf16, to_f32), Highway 1.0.x (hwy/highway.h,
//             hwy/cache_control.h), the standard library.
#pragma once

#if !defined(HWY_COMPILE_ONLY_STATIC) && !defined(HWY_COMPILE_ONLY_EMU128) && \
    !defined(HWY_COMPILE_ONLY_SCALAR)
#define HWY_COMPILE_ONLY_STATIC 1  // see highway.hpp
#endif

#include <hwy/highway.h>
#include <hwy/cache_control.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <type_traits>

#include "moelab/dtype.hpp"
#include "moelab/kernels/backend.hpp"

// product_tile's loop bodies are lambdas walked by kernels::unrolled, and
// GCC 12 does not always inline them: in some callers the bf16 pass called
// its row lambda out of line, with its vectors through the stack, once per
// step. Always inlined, every caller gets the same loop (docs/kernels.md,
// "The prefetch that was not there"). #undef'd at the end of this header.
#if defined(__GNUC__) || defined(__clang__)
#define MOELAB_TILE_INLINE __attribute__((always_inline))
#else
#define MOELAB_TILE_INLINE
#endif

HWY_BEFORE_NAMESPACE();  // the static target's instruction set (highway.hpp)
namespace moelab::detail {
namespace HWY_NAMESPACE {
namespace hn = hwy::HWY_NAMESPACE;

using DF = hn::ScalableTag<float>;  // a full vector of f32 lanes
using VF = hn::Vec<DF>;
inline std::size_t f32_lanes() { return hn::Lanes(DF()); }

// Blocking. x86 before AVX-512 has 16 vector registers, AVX-512/NEON/SVE 32;
// a product tile needs kTileRows * kTileTokens accumulators plus its loads.
// (Arrays of vectors, as used below, rule out SVE/RVV's sizeless vectors;
// those targets would need the tile spelled out.)
inline constexpr bool kHas32Registers = !(HWY_ARCH_X86 && HWY_TARGET > HWY_AVX3);
inline constexpr std::size_t kMatvecRows = 8;
inline constexpr std::size_t kTileRows = kHas32Registers ? 4 : 3;
inline constexpr std::size_t kTileTokens = kHas32Registers ? 6 : 4;
inline constexpr std::size_t kChunkRows = 16;  // weight rows copied once, then all tokens stream past
// matmul's sweep of a chunk (sweep_chunk, below): columns in blocks of
// kBlockCols, so one tile of tokens (6 x 2 KB of f32) stays in L1 while every
// row tile of the chunk reads it; chunks of up to kChunkBytes of weight rows
// (L2), kChunkRows to kMaxChunkRows rows.
inline constexpr std::size_t kBlockCols = 512;
inline constexpr std::size_t kChunkBytes = std::size_t{1} << 20;
inline constexpr std::size_t kMaxChunkRows = 64;
inline constexpr std::size_t kPrefetchBytes = 512;  // matvec: software prefetch distance per row

// ---------------------------------------------------------------------------
// Activations: one vector, loaded once per step and kept in a register.
// A product tile multiplies each activation vector by kRows weight vectors.
// GCC folds the load into every one of those multiply-adds (vfmadd231ps
// mem, w, acc: kRows loads where one would do), and the loads, not the
// multiply-adds, then set the pace: one thread, a 4 x 6 f32 tile over 2048
// columns in L2 ran at 68 GFLOP/s folded and 111 in registers (the FMA peak
// is about 117), the whole f32 matmul 61-68 against 67-96 (docs/kernels.md,
// "Activations in registers"). The empty asm only tells the compiler the
// value is in a register; it emits no instruction and changes no bit.
// ---------------------------------------------------------------------------
HWY_INLINE VF load_activations(DF df, const float* HWY_RESTRICT x) {
    VF v = hn::LoadU(df, x);
#if (defined(__GNUC__) || defined(__clang__)) && HWY_ARCH_X86 && HWY_TARGET <= HWY_SSSE3
    asm("" : "+v"(v.raw));
#endif
    return v;
}

// ---------------------------------------------------------------------------
// Weights: one vector of Lanes(df) weights, widened exactly to f32.
// ---------------------------------------------------------------------------
HWY_INLINE VF load_weights(DF df, const float* HWY_RESTRICT w) { return hn::LoadU(df, w); }

// f16 -> f32 is vcvtph2ps on x86 from AVX2 on and fcvtl on Arm A64: exact,
// subnormals included. Highway 1.0.3 emulates it elsewhere (SSSE3, SSE4,
// scalar...) and the emulation turns inf/NaN (exponent 31) into finite
// values in [65536, 131072). No finite f16 is that large (max 65504), so
// there those lanes get the f32 exponent 255 back, keeping sign and payload.
#if (HWY_ARCH_X86 && HWY_TARGET <= HWY_AVX2 && !defined(HWY_DISABLE_F16C)) || HWY_ARCH_ARM_A64
inline constexpr bool kExactF16Promote = true;
#else
inline constexpr bool kExactF16Promote = false;
#endif

HWY_INLINE VF load_weights(DF df, const f16* HWY_RESTRICT w) {
    const hn::Rebind<hwy::float16_t, DF> dh;
    const VF v = hn::PromoteTo(df, hn::LoadU(dh, reinterpret_cast<const hwy::float16_t*>(w)));
    if constexpr (kExactF16Promote) return v;
    const hn::RebindToUnsigned<DF> du;
    const VF inf_or_nan = hn::BitCast(df, hn::Or(hn::BitCast(du, v), hn::Set(du, 0x7F800000u)));
    return hn::IfThenElse(hn::Ge(hn::Abs(v), hn::Set(df, 65536.0f)), inf_or_nan, v);
}

// bf16 -> f32 is a zero-extension and a 16-bit shift (bf16 is the top half of an f32).
HWY_INLINE VF load_weights(DF df, const bf16* HWY_RESTRICT w) {
    const hn::Rebind<hwy::bfloat16_t, DF> dh;
    return hn::PromoteTo(df, hn::LoadU(dh, reinterpret_cast<const hwy::bfloat16_t*>(w)));
}

// bf16 pair order. A 64-byte line of bf16 weights, read as 2N 32-bit
// lanes, holds columns (2j, 2j + 1) in lane j: the even column is the low
// half (shift it up 16 bits), the odd one the high half (mask it). So
// product_tile sums each whole block of 2N columns as the even columns
// (one vector) and then the odd ones (the next), not in natural order; any
// order is a valid sum, and every bf16 product (dot, matvec, matmul) uses
// this one, so they still agree bit for bit. matmul's f32 panel gets the
// same order from pair_order(), applied to weights and activations alike.
//
// out[0..n) = x[0..n) with each whole block of 2N values stored as its even
// entries, then its odd ones (the rest as it is). out must not alias x.
#if HWY_TARGET != HWY_SCALAR
inline constexpr bool kBf16PairOrder = true;

HWY_INLINE void pair_order(const float* HWY_RESTRICT x, std::size_t n, float* HWY_RESTRICT out) {
    const DF df;
    const std::size_t N = hn::Lanes(df);
    std::size_t i = 0;
    for (; i + 2 * N <= n; i += 2 * N) {
        const VF lo = hn::LoadU(df, x + i), hi = hn::LoadU(df, x + i + N);
        hn::StoreU(hn::ConcatEven(df, hi, lo), df, out + i);
        hn::StoreU(hn::ConcatOdd(df, hi, lo), df, out + i + N);
    }
    std::copy(x + i, x + n, out + i);
}
#else
// One lane (HWY_SCALAR, which has no ConcatEven): pair order is natural order.
inline constexpr bool kBf16PairOrder = false;

HWY_INLINE void pair_order(const float* HWY_RESTRICT x, std::size_t n, float* HWY_RESTRICT out) {
    std::copy(x, x + n, out);
}
#endif

// Whether products with weights of type T use pair order: bf16, with vectors.
template <class T>
inline constexpr bool kPairOrdered = kBf16PairOrder && std::is_same_v<T, bf16>;

// out[0..n) = w[0..n) widened to f32 (vector body, scalar tail); bf16 rows
// in pair order.
template <class T>
HWY_INLINE void widen_row(const T* HWY_RESTRICT w, std::size_t n, float* HWY_RESTRICT out) {
    const DF df;
    const std::size_t N = hn::Lanes(df);
    std::size_t i = 0;
    if constexpr (kPairOrdered<T>) {
        const hn::RebindToUnsigned<DF> du;
        for (; i + 2 * N <= n; i += 2 * N) {
            const auto pairs = hn::LoadU(du, reinterpret_cast<const std::uint32_t*>(w + i));
            hn::StoreU(hn::BitCast(df, hn::ShiftLeft<16>(pairs)), df, out + i);
            hn::StoreU(hn::BitCast(df, hn::And(pairs, hn::Set(du, 0xFFFF0000u))), df, out + i + N);
        }
    }
    for (; i + N <= n; i += N) hn::StoreU(load_weights(df, w + i), df, out + i);
    for (; i < n; ++i) out[i] = to_f32(w[i]);
}


// A multi-row matvec pass, streaming from DRAM: ask for each row's weights
// kPrefetchBytes ahead, once per 64-byte line (docs/kernels.md, "Software
// prefetch"). A single stream goes without (highway.hpp, matvec).
//
// Always inlined, and called directly, not from a lambda: a prefetch is an
// effect the optimiser need not keep, and GCC 12 (-O2 and -O3) can delete the
// calls to a lambda that does nothing else (docs/kernels.md shows one case in
// ten lines). From e06d843 (2026-12-01) to 2026-12-07 product_tile's prefetch
// lived in such a lambda, so the compiled f32/f16/bf16 passes had no prefetch
// instruction; every result was the same, only slower (docs/kernels.md). The
// ctest codegen_matvec_prefetch (tests/codegen) now looks for them in the
// assembly.
template <std::size_t kRows, std::size_t kTokens, class T>
HWY_INLINE void prefetch_pass(const T* HWY_RESTRICT w, std::size_t w_stride, std::size_t i, std::size_t cols) {
    if constexpr (kTokens != 1 || kRows == 1) return;  // prefill tiles and single rows: none
    if ((i * sizeof(T)) % 64 != 0) return;
    // Each row kPrefetchBytes ahead, and past its end into the next pass
    // (kernels::pass_prefetch_target). 2 threads, GB/s, 1 GB of copies:
    // bf16 2048 x 768 24.6 -> 26.1, 768 x 2048 26.1-26.7 -> 27.6-28.3, f32
    // level (docs/kernels.md, "Prefetch past the row's end").
    for (std::size_t r = 0; r < kRows; ++r)
        hwy::Prefetch(static_cast<const char*>(kernels::pass_prefetch_target(
            w, kRows, w_stride * sizeof(T), cols * sizeof(T), r, i * sizeof(T), kPrefetchBytes)));
}

// ---------------------------------------------------------------------------
// The one product loop: a tile of dot products
//     y[t * y_stride + r] = sum_i w[r * w_stride + i] * x[t * x_stride + i]
// for r < kRows weight rows, t < kTokens activation rows and i < cols. One
// vector accumulator per (r, t); vectors are added in index order (bf16: in
// pair order, with x already in pair order); the last partial vector goes
// through zero-padded copies (0 * 0 adds nothing); the lanes are summed by
// SumOfLanes at the end. The operations applied to one
// (r, t) do not depend on kRows, kTokens or the weight type, so every caller
// (dot, matvec, matmul, any tile shape) agrees bit for bit: the contract's
// determinism rule holds by construction.
// ---------------------------------------------------------------------------
template <std::size_t kRows, std::size_t kTokens, class T>
HWY_INLINE void product_tile(const T* HWY_RESTRICT w, std::size_t w_stride, const float* HWY_RESTRICT x,
                             std::size_t x_stride, std::size_t cols, float* HWY_RESTRICT y, std::size_t y_stride) {
    const DF df;
    const std::size_t N = hn::Lanes(df);
    // Every access to acc has constant indices (kernels::unrolled), the
    // zeroing, the tail and the sums included: one run-time index anywhere
    // and GCC keeps the array on the stack, storing all kRows * kTokens
    // accumulators after every step of the main loops (docs/kernels.md).
    VF acc[kRows][kTokens];
    kernels::unrolled<kRows>([&](auto r) MOELAB_TILE_INLINE {
        kernels::unrolled<kTokens>([&](auto t) MOELAB_TILE_INLINE { acc[r][t] = hn::Zero(df); });
    });

    std::size_t i = 0;
    if constexpr (kPairOrdered<T>) {
        // bf16 weights in whole 2N-column blocks, in pair order (above),
        // against activations the caller put in pair order (pair_order):
        // one load, one shift and one mask widen 2N weights, where natural
        // order takes two loads, two zero-extensions and two shifts.
        const hn::RebindToUnsigned<DF> du;
        const auto high_half = hn::Set(du, 0xFFFF0000u);
        for (; i + 2 * N <= cols; i += 2 * N) {
            prefetch_pass<kRows, kTokens>(w, w_stride, i, cols);
            VF x_even[kTokens], x_odd[kTokens];
            for (std::size_t t = 0; t < kTokens; ++t) {
                x_even[t] = load_activations(df, x + t * x_stride + i);
                x_odd[t] = load_activations(df, x + t * x_stride + i + N);
            }
            kernels::unrolled<kRows>([&](auto r) MOELAB_TILE_INLINE {
                const auto pairs = hn::LoadU(du, reinterpret_cast<const std::uint32_t*>(w + r * w_stride + i));
                const VF w_even = hn::BitCast(df, hn::ShiftLeft<16>(pairs));  // the low bf16 of each pair
                const VF w_odd = hn::BitCast(df, hn::And(pairs, high_half));  // the high one
                kernels::unrolled<kTokens>([&](auto t) MOELAB_TILE_INLINE {
                    acc[r][t] = hn::MulAdd(w_even, x_even[t], acc[r][t]);
                    acc[r][t] = hn::MulAdd(w_odd, x_odd[t], acc[r][t]);
                });
            });
        }
    }
    for (; i + N <= cols; i += N) {
        prefetch_pass<kRows, kTokens>(w, w_stride, i, cols);
        VF xv[kTokens];
        for (std::size_t t = 0; t < kTokens; ++t) xv[t] = load_activations(df, x + t * x_stride + i);
        kernels::unrolled<kRows>([&](auto r) MOELAB_TILE_INLINE {  // constant r: acc[r] stays in registers
            const VF wv = load_weights(df, w + r * w_stride + i);
            kernels::unrolled<kTokens>([&](auto t) MOELAB_TILE_INLINE {
                acc[r][t] = hn::MulAdd(wv, xv[t], acc[r][t]);
            });
        });
    }
    if (i < cols) {  // the last partial vector
        HWY_ALIGN float wpad[hn::MaxLanes(df)] = {};
        HWY_ALIGN float xpad[kTokens][hn::MaxLanes(df)] = {};
        // rest < N; the min only tells the compiler that wpad cannot overflow
        const std::size_t rest = std::min<std::size_t>(cols - i, hn::MaxLanes(df));
        for (std::size_t t = 0; t < kTokens; ++t) std::copy(x + t * x_stride + i, x + t * x_stride + i + rest, xpad[t]);
        kernels::unrolled<kRows>([&](auto r) MOELAB_TILE_INLINE {
            for (std::size_t j = 0; j < rest; ++j) wpad[j] = to_f32(w[r * w_stride + i + j]);
            const VF wv = hn::Load(df, wpad);
            kernels::unrolled<kTokens>([&](auto t) MOELAB_TILE_INLINE {
                acc[r][t] = hn::MulAdd(wv, hn::Load(df, xpad[t]), acc[r][t]);
            });
        });
    }
    kernels::unrolled<kRows>([&](auto r) MOELAB_TILE_INLINE {
        kernels::unrolled<kTokens>([&](auto t) MOELAB_TILE_INLINE {
            y[t * y_stride + r] = hn::GetLane(hn::SumOfLanes(df, acc[r][t]));
        });
    });
}

// ---------------------------------------------------------------------------
// matmul's sweep: product_tile's loop, with the columns cut into blocks.
// For each tile of kTileTokens tokens, the chunk's row tiles run block by
// block, so the tokens' block is read from L1 by every row tile before the
// next block is touched. Without the blocks a tile of tokens spans 6 x 8 KB
// (2048 f32 columns) to 6 x 24 KB, more than L1, and both operands of the 4 x 6
// register tile come from L2: 10 loads of 64 bytes per 24 multiply-adds.
// Between blocks a (row, token)'s accumulator is parked in memory, whole, and
// its vector additions stay in index order, so the result is product_tile's
// bit for bit. Measured in docs/kernels.md ("Columns in blocks").
// ---------------------------------------------------------------------------

// Blocks only where they pay: more than one tile of tokens (else each chunk
// is read once), and a tile of tokens larger than half of L1 (2 x kBlockCols
// f32 columns; narrower, the unblocked loop measured as fast or faster).
inline bool blocked_sweep(std::size_t stride, std::size_t n_tokens) {
    return n_tokens > kTileTokens && stride > 2 * kBlockCols;
}

// Rows per chunk for rows of `stride` f32 values against n_tokens tokens: as
// many as fit kChunkBytes, a whole number of row tiles, kChunkRows to
// kMaxChunkRows; kChunkRows for an unblocked sweep.
inline std::size_t chunk_rows(std::size_t stride, std::size_t n_tokens) {
    if (!blocked_sweep(stride, n_tokens)) return kChunkRows;
    const std::size_t fit = kChunkBytes / (stride * sizeof(float)) / kTileRows * kTileRows;
    return std::clamp(fit, kChunkRows, kMaxChunkRows);
}

// Floats of parking that sweep_chunk needs (64-byte aligned).
inline std::size_t park_floats() { return kMaxChunkRows * kTileTokens * hn::MaxLanes(DF()); }

// product_tile's main loop over columns [k0, k1) (whole vectors), starting
// from and returning to the accumulators parked at park[(r * kTokens + t) * N].
template <std::size_t kRows, std::size_t kTokens>
HWY_INLINE void product_block(const float* HWY_RESTRICT w, std::size_t w_stride, const float* HWY_RESTRICT x,
                              std::size_t x_stride, std::size_t k0, std::size_t k1, float* HWY_RESTRICT park) {
    const DF df;
    const std::size_t N = hn::Lanes(df);
    VF acc[kRows][kTokens];
    kernels::unrolled<kRows>([&](auto r) {
        kernels::unrolled<kTokens>([&](auto t) { acc[r][t] = hn::Load(df, park + (r * kTokens + t) * N); });
    });
    for (std::size_t i = k0; i < k1; i += N) {
        VF xv[kTokens];
        for (std::size_t t = 0; t < kTokens; ++t) xv[t] = load_activations(df, x + t * x_stride + i);
        kernels::unrolled<kRows>([&](auto r) {
            const VF wv = load_weights(df, w + r * w_stride + i);
            kernels::unrolled<kTokens>([&](auto t) { acc[r][t] = hn::MulAdd(wv, xv[t], acc[r][t]); });
        });
    }
    kernels::unrolled<kRows>([&](auto r) {
        kernels::unrolled<kTokens>([&](auto t) { hn::Store(acc[r][t], df, park + (r * kTokens + t) * N); });
    });
}

// The next chunk, asked for while this one is swept. The first tile of
// tokens reads a chunk from DRAM, the others from L2; at 64 tokens (11 tiles)
// that first read, a few rows at a time in blocks of columns, which the
// hardware prefetchers follow poorly, held f32 products of 6144 x 2048 at
// 197-201 GFLOP/s against 249-254 at 512 tokens. Spreading prefetches of the
// next chunk over this one's row tiles, 2 threads, 1 GB of copies:
// 197-201 -> 219-230 (docs/kernels.md, "The next chunk, prefetched"). Only
// where both chunks fit kChunkBytes (the L2 budget the chunks are sized to):
// with chunks of 960 KB (rows of 6144 f32) the prefetches pushed the current
// chunk out of L2, 196-200 -> 182-188.
struct NextChunk {
    const char* next = nullptr;
    std::size_t lines = 0, per_step = 0, done = 0;

    NextChunk(const void* bytes, std::size_t n_bytes, std::size_t steps)
        : next(static_cast<const char*>(bytes)), lines(bytes ? (n_bytes + 63) / 64 : 0),
          per_step((lines + steps - 1) / std::max<std::size_t>(steps, 1)) {}
    // Called after each row tile: the next per_step lines, into L2
    // (prefetcht1; the chunk is swept from L2, and L1 keeps the tokens'
    // block; T0 measured the same). Always inlined and called directly (see
    // prefetch_pass: GCC 12 drops some calls that only prefetch); the ctest
    // codegen_matvec_prefetch looks for the prefetcht1.
    HWY_INLINE void step() {
        const std::size_t end = std::min(lines, done + per_step);
        for (; done < end; ++done) __builtin_prefetch(next + done * 64, 0, 2);
    }
};

// y[t * y_stride + r] = sum_i w[r * stride + i] * x[t * stride + i] for the
// chunk's rows r < chunk (at most kMaxChunkRows) and every token t; stride
// is a whole number of vectors (rows zero-padded). park: park_floats()
// where blocked_sweep(stride, n_tokens), else unused. next, next_bytes: what
// the caller reads for its next chunk (nullptr at its last), prefetched
// during the sweep where both fit kChunkBytes (NextChunk).
inline void sweep_chunk(const float* HWY_RESTRICT w, std::size_t chunk, std::size_t stride, const float* HWY_RESTRICT x,
                        std::size_t n_tokens, float* HWY_RESTRICT y, std::size_t y_stride, float* HWY_RESTRICT park,
                        const void* next, std::size_t next_bytes) {
    const DF df;
    const std::size_t N = hn::Lanes(df);
    const bool both_fit = chunk * stride * sizeof(float) + next_bytes <= kChunkBytes;
    const std::size_t token_tiles = (n_tokens + kTileTokens - 1) / kTileTokens;
    const std::size_t row_tiles = (chunk + kTileRows - 1) / kTileRows;
    const std::size_t col_blocks = blocked_sweep(stride, n_tokens) ? (stride + kBlockCols - 1) / kBlockCols : 1;
    NextChunk ahead(both_fit ? next : nullptr, next_bytes, token_tiles * row_tiles * col_blocks);
    if (!blocked_sweep(stride, n_tokens)) {  // product_tile over whole rows
        for (std::size_t t0 = 0; t0 < n_tokens; t0 += kTileTokens) {
            kernels::with_count<kTileTokens>(std::min(kTileTokens, n_tokens - t0), [&](auto tokens) HWY_ATTR {
                constexpr std::size_t kTokens = decltype(tokens)::value;
                const float* xt = x + t0 * stride;
                float* yt = y + t0 * y_stride;
                std::size_t r = 0;
                for (; r + kTileRows <= chunk; r += kTileRows) {
                    product_tile<kTileRows, kTokens>(w + r * stride, stride, xt, stride, stride, yt + r, y_stride);
                    ahead.step();
                }
                for (; r < chunk; ++r) product_tile<1, kTokens>(w + r * stride, stride, xt, stride, stride, yt + r, y_stride);
            });
        }
        return;
    }
    for (std::size_t t0 = 0; t0 < n_tokens; t0 += kTileTokens) {
        kernels::with_count<kTileTokens>(std::min(kTileTokens, n_tokens - t0), [&](auto tokens) HWY_ATTR {
            constexpr std::size_t kTokens = decltype(tokens)::value;
            const float* xt = x + t0 * stride;
            std::fill(park, park + chunk * kTokens * N, 0.0f);
            for (std::size_t k0 = 0; k0 < stride; k0 += kBlockCols) {
                const std::size_t k1 = std::min(stride, k0 + kBlockCols);
                std::size_t r = 0;
                for (; r + kTileRows <= chunk; r += kTileRows) {
                    product_block<kTileRows, kTokens>(w + r * stride, stride, xt, stride, k0, k1, park + r * kTokens * N);
                    ahead.step();
                }
                for (; r < chunk; ++r) product_block<1, kTokens>(w + r * stride, stride, xt, stride, k0, k1, park + r * kTokens * N);
            }
            for (std::size_t r = 0; r < chunk; ++r)
                for (std::size_t t = 0; t < kTokens; ++t)
                    y[(t0 + t) * y_stride + r] = hn::GetLane(hn::SumOfLanes(df, hn::Load(df, park + (r * kTokens + t) * N)));
        });
    }
}

}  // namespace HWY_NAMESPACE
}  // namespace moelab::detail
HWY_AFTER_NAMESPACE();

#undef MOELAB_TILE_INLINE  // internal (above)
