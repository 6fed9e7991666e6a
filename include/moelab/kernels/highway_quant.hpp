// SPDX-License-Identifier: MIT
// moelab/kernels/highway_quant.hpp — the Highway backend's products for
// quantized weights (Q8_0, Q4_0, Q4_K, Q5_K, Q6_K): fused dequantise-and-dot
// for decode, dequantise-once panels for prefill.
//
// Depends on: moelab/kernels/highway_tile.hpp (the f32 product tile, for the
//             prefill panels, and the blocking constants),
//             moelab/kernels/backend.hpp, moelab/quant/quant.hpp (block
//             layouts), moelab/tensor.hpp (FloatBuffer), Highway 1.0.x
//             (hwy/highway.h, hwy/cache_control.h), the standard library.
//             kernels/highway.hpp includes this header at its end, so that
//             including highway.hpp gives the whole contract.
//
// The weights stay in their blocks (memory-mapped, never widened in memory
// for decode). For each block type there is one *decoder*,
// decode_block(block, sink), that turns the block into f32 vectors of N lanes
// and hands them, in increasing weight order, to sink(first_weight, vector).
// The values are the exact dequantised weights (quant/block.hpp: every
// product is exact in f32, so a fused multiply-add gives the scalar
// decoder's bits). From the packed bytes to f32 lanes: PromoteTo widens N
// bytes to N int32 lanes (vpmovzxbd / vpmovsxbd on x86), And/ShiftRight pick
// the nibble or bit field, ConvertTo makes floats, and one Mul or MulAdd
// applies the sub-block scale (and min).
//
//   * matvec (decode, memory-bound): fused_rows<8> runs 8 weight rows block
//     by block; each decoded vector goes straight into an FMA with x, into
//     one accumulator per row. Each byte of weights is read once, from
//     DRAM, with a software prefetch kPrefetchBytes ahead.
//   * matmul (prefill, compute-bound): each chunk of 16 rows is decoded once
//     into a 64-byte aligned f32 panel, then all tokens sweep past it in
//     highway_tile.hpp's f32 product tile (kTileRows x kTileTokens
//     registers). This header once had its own copy of that tile; GCC kept
//     that copy's 24 accumulators in memory, a store after every multiply-add
//     (perf annotate), and dense Q4_K prefill ran at 73-100 tok/s instead of
//     210-220 (docs/kernels.md).
//
// Determinism rule (kernels/backend.hpp): both paths compute each (row,
// token) dot product as one vector accumulator, acc = MulAdd(w[i..i+N),
// x[i..i+N), acc) for i = 0, N, 2N, ... in order, then SumOfLanes. The fused
// path gets w[i..i+N) from the decoder, the panel path (product_tile, which
// accumulates exactly so) from the decoder's stored output: the same values
// in the same order, so the bits agree, for any tile shape, thread split or
// batch. (That is also exactly what the f32 product of the dequantised row
// computes.)
//
// Targets: vectors of at most 16 f32 lanes (512 bits), so that a vector never
// straddles two scale groups (16 weights for Q6_K). SVE/RVV are excluded, as
// in highway.hpp.
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
#include <cstring>
#include <type_traits>
#include <utility>

#include "moelab/kernels/backend.hpp"
#include "moelab/kernels/highway_tile.hpp"  // product_tile and the blocking constants
#include "moelab/quant/quant.hpp"
#include "moelab/tensor.hpp"

HWY_BEFORE_NAMESPACE();
namespace moelab::detail {
namespace HWY_NAMESPACE {
namespace quant {
// hn, DF (N f32 lanes) and VF: highway_tile.hpp's.
using DI = hn::RebindToSigned<DF>;  // N int32 lanes
using VI = hn::Vec<DI>;
static_assert(hn::MaxLanes(DF()) <= 16, "quantized kernels need vectors of at most 16 f32 lanes");

// Blocking: highway_tile.hpp's (kMatvecRows rows per fused pass, chunk_rows()
// rows per dequantised panel, swept by sweep_chunk: kTileRows x kTileTokens
// tiles, columns in blocks of kBlockCols for wide rows; kPrefetchBytes ahead).

// Lanes per vector, as a compile-time constant (fixed-width targets only).
inline constexpr std::size_t N = hn::MaxLanes(DF());

using kernels::unrolled;  // kernels/backend.hpp: a loop with a constant index

// N bytes at p as N int32 lanes, zero- or sign-extended.
HWY_INLINE VI load_u8(const std::uint8_t* HWY_RESTRICT p) {
    return hn::PromoteTo(DI(), hn::LoadU(hn::Rebind<std::uint8_t, DI>(), p));
}
HWY_INLINE VI load_i8(const std::int8_t* HWY_RESTRICT p) {
    return hn::PromoteTo(DI(), hn::LoadU(hn::Rebind<std::int8_t, DI>(), p));
}
HWY_INLINE VI low_nibble(VI v) { return hn::And(v, hn::Set(DI(), 0x0F)); }
HWY_INLINE VI high_nibble(VI v) { return hn::ShiftRight<4>(v); }  // v is a zero-extended byte

// Bits kBit+1 .. kBit of each byte-valued lane (kWidth = 2) or bit kBit
// (kWidth = 1), moved to bit 4 and up: the high part of a 5- or 6-bit quant.
template <int kBit, int kWidth>
HWY_INLINE VI high_bits_at_4(VI v) {
    const VI mask = hn::Set(DI(), ((1 << kWidth) - 1) << 4);
    if constexpr (kBit <= 4) return hn::And(hn::ShiftLeft<4 - kBit>(v), mask);
    else return hn::And(hn::ShiftRight<kBit - 4>(v), mask);
}

// out[0, 16) = 16 small unsigned integers, converted and multiplied lane by
// lane by factor_low (lanes 0..7) and factor_high (lanes 8..15). Each product
// here is exact (quant/block.hpp).
HWY_INLINE void scaled_16(const std::uint8_t* HWY_RESTRICT values, float factor_low, float factor_high,
                          float* HWY_RESTRICT out) {
    const DF df;
    unrolled<16 / N>([&](auto v) {
        constexpr std::size_t i = decltype(v)::value * N;
        const VF factor = hn::IfThenElse(hn::FirstN(df, i < 8 ? 8 - i : 0), hn::Set(df, factor_low), hn::Set(df, factor_high));
        hn::Store(hn::Mul(hn::ConvertTo(df, load_u8(values + i)), factor), df, out + i);
    });
}

// out[0, 16) = {sc[0..7], m[0..7]} of a Q4_K/Q5_K block, unpacked in one
// 128-bit vector: the 12 scale bytes are the words w0 w1 w2, and (k_scales.hpp)
//   sc[0..3] = bytes of w0 & 0x3F3F3F3F
//   sc[4..7] = bytes of (w2 & 0x0F0F0F0F)        | ((w0 >> 2) & 0x30303030)
//   m[0..3]  = bytes of w1 & 0x3F3F3F3F
//   m[4..7]  = bytes of ((w2 >> 4) & 0x0F0F0F0F) | ((w1 >> 2) & 0x30303030)
// (unpack_k_scales with scalar byte stores measured 30% slower: the vector
// load of 16 bytes written one at a time cannot be store-forwarded.)
HWY_INLINE void unpack_k_scales_simd(const std::uint8_t* HWY_RESTRICT scales, std::uint8_t* HWY_RESTRICT out) {
#if HWY_TARGET == HWY_SCALAR
    const KScales k = unpack_k_scales(*reinterpret_cast<const std::uint8_t(*)[12]>(scales));
    std::memcpy(out, &k, 16);
#else
    const hn::Full128<std::uint8_t> d8;
    const hn::Full128<std::uint32_t> d32;
    // w0 w1 w2 (and 4 bytes of the quants that follow, unused)
    const auto words = hn::BitCast(d32, hn::LoadU(d8, scales));
    const auto low_src = hn::InterleaveLower(d32, words, hn::Broadcast<2>(words));  // w0 w2 w1 w2
    const auto high_src = hn::InterleaveLower(d32, words, words);                 // w0 w0 w1 w1
    const auto low_shifted = hn::IfThenElse(hn::FirstN(d32, 3), low_src, hn::ShiftRight<4>(low_src));
    const auto low = hn::And(low_shifted, hn::OddEven(hn::Set(d32, 0x0F0F0F0Fu), hn::Set(d32, 0x3F3F3F3Fu)));
    const auto high = hn::And(hn::ShiftRight<2>(high_src), hn::OddEven(hn::Set(d32, 0x30303030u), hn::Zero(d32)));
    hn::StoreU(hn::BitCast(d8, hn::Or(low, high)), d8, out);
#endif
}

// ---------------------------------------------------------------------------
// Decoders: sink(i, w) receives weights i .. i+N-1 of the block, i = 0, N, 2N, ...
// ---------------------------------------------------------------------------

// Q8_0: w = d * qs[i].
template <class Sink>
HWY_INLINE void decode_block(const block_q8_0& b, Sink&& sink) {
    const DF df;
    const VF d = hn::Set(df, f16_to_f32(b.d));
    unrolled<32 / N>([&](auto v) {
        constexpr std::size_t i = decltype(v)::value * N;
        sink(i, hn::Mul(hn::ConvertTo(df, load_i8(b.qs + i)), d));
    });
}

// Q4_0: w = d (q - 8) = MulAdd(q, d, -8 d), exact (d q and 8 d are exact,
// and so is their difference, (q - 8) d). Weights 0..15 in the low nibbles,
// 16..31 in the high ones.
template <class Sink>
HWY_INLINE void decode_block(const block_q4_0& b, Sink&& sink) {
    const DF df;
    const float d = f16_to_f32(b.d);
    const VF scale = hn::Set(df, d), neg_offset = hn::Set(df, -8.0f * d);
    unrolled<16 / N>([&](auto v) {
        constexpr std::size_t l = decltype(v)::value * N;
        sink(l, hn::MulAdd(hn::ConvertTo(df, low_nibble(load_u8(b.qs + l))), scale, neg_offset));
    });
    unrolled<16 / N>([&](auto v) {
        constexpr std::size_t l = decltype(v)::value * N;
        sink(16 + l, hn::MulAdd(hn::ConvertTo(df, high_nibble(load_u8(b.qs + l))), scale, neg_offset));
    });
}

// Q4_K and Q5_K: w = (d sc[j]) q - dmin m[j] = MulAdd(q, scale, -offset), one
// rounding like the scalar decoder's subtraction (the product is exact).
// Sub-block j = 2c (low nibbles of chunk c) and 2c + 1 (high nibbles).
// Q5_K adds bit j of qh[l] as the quant's bit 4.
template <class Block, class Sink>
HWY_INLINE void decode_k_block(const Block& b, Sink&& sink) {
    const DF df;
    HWY_ALIGN std::uint8_t k[16];  // sc[0..7], m[0..7]
    unpack_k_scales_simd(b.scales, k);
    HWY_ALIGN float factors[16];  // d sc[j], then -dmin m[j]
    scaled_16(k, f16_to_f32(b.d), -f16_to_f32(b.dmin), factors);
    unrolled<8>([&](auto sub_block) {
        constexpr std::size_t j = decltype(sub_block)::value;
        const VF scale = hn::Set(df, factors[j]), neg_offset = hn::Set(df, factors[8 + j]);
        unrolled<32 / N>([&](auto v) {
            constexpr std::size_t l = decltype(v)::value * N;
            const VI bytes = load_u8(b.qs + 32 * (j / 2) + l);
            VI q = j % 2 == 0 ? low_nibble(bytes) : high_nibble(bytes);
            if constexpr (std::is_same_v<Block, block_q5_k>) q = hn::Or(q, high_bits_at_4<int{j}, 1>(load_u8(b.qh + l)));
            sink(32 * j + l, hn::MulAdd(hn::ConvertTo(df, q), scale, neg_offset));
        });
    });
}
template <class Sink>
HWY_INLINE void decode_block(const block_q4_k& b, Sink&& sink) {
    decode_k_block(b, sink);
}
template <class Sink>
HWY_INLINE void decode_block(const block_q5_k& b, Sink&& sink) {
    decode_k_block(b, sink);
}

// Q6_K: w = (d scales[i / 16]) (q - 32) = MulAdd(q, s, -32 s), exact (the
// result (q - 32) s is representable; see q6_k.hpp); q = low 4 bits from ql
// | high 2 bits from qh.
template <class Sink>
HWY_INLINE void decode_block(const block_q6_k& b, Sink&& sink) {
    const DF df;
    const float d = f16_to_f32(b.d);
    HWY_ALIGN float scale[16], neg_offset[16];
    unrolled<16 / N>([&](auto v) {
        constexpr std::size_t i = decltype(v)::value * N;
        const VF s = hn::Mul(hn::ConvertTo(df, load_i8(b.scales + i)), hn::Set(df, d));
        hn::Store(s, df, scale + i);
        hn::Store(hn::Mul(s, hn::Set(df, -32.0f)), df, neg_offset + i);
    });
    unrolled<2>([&](auto half) {
        constexpr std::size_t h = decltype(half)::value;
        unrolled<4>([&](auto group) {
            constexpr std::size_t g = decltype(group)::value;
            unrolled<32 / N>([&](auto v) {
                constexpr std::size_t l = decltype(v)::value * N, i = 128 * h + 32 * g + l;
                const VI low_bytes = load_u8(b.ql + 64 * h + 32 * (g % 2) + l);
                const VI low = g < 2 ? low_nibble(low_bytes) : high_nibble(low_bytes);
                const VI q = hn::Or(low, high_bits_at_4<int{2 * g}, 2>(load_u8(b.qh + 32 * h + l)));
                sink(i, hn::MulAdd(hn::ConvertTo(df, q), hn::Set(df, scale[i / 16]), hn::Set(df, neg_offset[i / 16])));
            });
        });
    });
}

// Asks for the cache lines kPrefetchBytes past this block (decode streams rows from DRAM).
template <class Block>
HWY_INLINE void prefetch_ahead(const Block* block) {
    const auto* bytes = reinterpret_cast<const std::uint8_t*>(block) + kPrefetchBytes;
    for (std::size_t offset = 0; offset < sizeof(Block); offset += 64) hwy::Prefetch(bytes + offset);
}

// ---------------------------------------------------------------------------
// Fused dequantise-and-dot: y[r] = dot(row r, x) for kRows rows of
// row_blocks blocks each (rows row_stride blocks apart). x: row_blocks * kWeights.
// ---------------------------------------------------------------------------
template <std::size_t kRows, class Block>
HWY_INLINE void fused_rows(const Block* HWY_RESTRICT w, std::size_t row_stride, std::size_t row_blocks,
                           const float* HWY_RESTRICT x, float* HWY_RESTRICT y) {
    const DF df;
    VF acc[kRows];
    for (std::size_t r = 0; r < kRows; ++r) acc[r] = hn::Zero(df);
    for (std::size_t b = 0; b < row_blocks; ++b) {
        const float* xb = x + b * Block::kWeights;
        for (std::size_t r = 0; r < kRows; ++r) {
            const Block* block = w + r * row_stride + b;
            prefetch_ahead(block);
            VF a = acc[r];  // a local, so that it stays in a register through the block
            decode_block(*block, [&](std::size_t i, VF wv) HWY_ATTR { a = hn::MulAdd(wv, hn::LoadU(df, xb + i), a); });
            acc[r] = a;
        }
    }
    for (std::size_t r = 0; r < kRows; ++r) y[r] = hn::GetLane(hn::SumOfLanes(df, acc[r]));
}

// out[0, row_blocks * kWeights) = the row, dequantised (the decoder's vectors, stored).
template <class Block>
HWY_INLINE void dequantize_row(const Block* HWY_RESTRICT w, std::size_t row_blocks, float* HWY_RESTRICT out) {
    const DF df;
    for (std::size_t b = 0; b < row_blocks; ++b) {
        float* ob = out + b * Block::kWeights;
        decode_block(w[b], [&](std::size_t i, VF wv) HWY_ATTR { hn::StoreU(wv, df, ob + i); });
    }
}

using kernels::with_count;  // kernels/backend.hpp: a run-time count as a template argument

template <class Block>
inline void matvec(const Block* HWY_RESTRICT w, std::size_t rows, std::size_t cols, const float* HWY_RESTRICT x,
                   float* HWY_RESTRICT y) {
    const std::size_t row_blocks = cols / Block::kWeights;
    std::size_t r = 0;
    for (; r + kMatvecRows <= rows; r += kMatvecRows)
        fused_rows<kMatvecRows>(w + r * row_blocks, row_blocks, row_blocks, x, y + r);
    for (; r < rows; ++r) fused_rows<1>(w + r * row_blocks, row_blocks, row_blocks, x, y + r);
}

template <class Block>
inline void matmul(const Block* HWY_RESTRICT w, std::size_t rows, std::size_t cols, const float* HWY_RESTRICT x,
                   std::size_t n_tokens, float* HWY_RESTRICT y, std::size_t y_stride) {
    const std::size_t row_blocks = cols / Block::kWeights;
    const FloatBuffer xs(x, x + n_tokens * cols);      // (n_tokens, cols), 64-byte aligned
    const std::size_t chunk_max = std::min(rows, chunk_rows(cols, n_tokens));
    FloatBuffer panel(chunk_max * cols);  // (chunk, cols), dequantised
    FloatBuffer park(blocked_sweep(cols, n_tokens) ? park_floats() : 0);  // only a blocked sweep parks
    for (std::size_t r0 = 0; r0 < rows; r0 += chunk_max) {
        const std::size_t chunk = std::min(chunk_max, rows - r0);
        for (std::size_t r = 0; r < chunk; ++r) dequantize_row(w + (r0 + r) * row_blocks, row_blocks, panel.data() + r * cols);
        const std::size_t next_rows = std::min(chunk_max, rows - r0 - chunk);  // the blocks the next chunk decodes
        sweep_chunk(panel.data(), chunk, cols, xs.data(), n_tokens, y + r0, y_stride, park.data(),
                    next_rows == 0 ? nullptr : w + (r0 + chunk) * row_blocks, next_rows * row_blocks * sizeof(Block));
    }
}

}  // namespace quant
}  // namespace HWY_NAMESPACE
}  // namespace moelab::detail
HWY_AFTER_NAMESPACE();

// ---------------------------------------------------------------------------
// The contract's quantized products for backend::highway. w: rows of
// cols / Block::kWeights blocks; n and cols count weights (multiples of kWeights).
// ---------------------------------------------------------------------------
namespace moelab::kernels {

template <QuantBlock Block>
float dot(backend::highway, const Block* w, const float* x, std::size_t n) {
    float y;
    detail::HWY_NAMESPACE::quant::fused_rows<1>(w, 0, n / Block::kWeights, x, &y);
    return y;
}

// W (rows, cols), x (cols), y (rows).
template <QuantBlock Block>
void matvec(backend::highway, const Block* w, std::size_t rows, std::size_t cols, const float* x, float* y) {
    detail::HWY_NAMESPACE::quant::matvec(w, rows, cols, x, y);
}

// W (rows, cols), x (n_tokens, cols), y[t * y_stride + r].
template <QuantBlock Block>
void matmul(backend::highway, const Block* w, std::size_t rows, std::size_t cols, const float* x,
            std::size_t n_tokens, float* y, std::size_t y_stride) {
    detail::HWY_NAMESPACE::quant::matmul(w, rows, cols, x, n_tokens, y, y_stride);
}

}  // namespace moelab::kernels
