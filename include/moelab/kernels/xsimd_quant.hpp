// SPDX-License-Identifier: MIT
// moelab/kernels/xsimd_quant.hpp — the xsimd backend's products for
// quantized weights (Q8_0, Q4_0, Q4_K, Q5_K, Q6_K): fused dequantise-and-dot
// for decode, dequantise-once panels for prefill.
//
// Depends on: moelab/kernels/xsimd_tile.hpp (the f32 product tile, for the
//             prefill panels), moelab/kernels/backend.hpp,
//             moelab/quant/quant.hpp (block layouts), moelab/tensor.hpp
//             (FloatBuffer), xsimd 8.x (<xsimd/xsimd.hpp>; 8.1 API), the
//             standard library.
//             kernels/xsimd.hpp includes this header at its end.
//
// The structure is kernels/highway_quant.hpp's (read that first): one decoder
// per block type hands exact dequantised f32 vectors, in increasing weight
// order, to a sink; matvec fuses them into FMAs with x (8 rows at a time),
// matmul stores them in a 64-byte aligned panel and runs xsimd_tile.hpp's
// f32 register tile over it (this header's own copy of that tile ran at two
// thirds of the speed: dense Q4_K prefill 115-157 -> 213-231 tok/s). Each
// (row, token) is one vector accumulator fed in index order and summed by
// xsimd::hadd: matvec, matmul and dot agree bit for bit.
//
// The difference is how bytes become int32 lanes. xsimd 8.1 has no widening
// load from 8-bit data (its converting load goes through the stack, and it
// has no 8 -> 32 bit promote), so load_u8/load_i8 do it with three portable
// operations on a full vector of 4N bytes read as N uint32 words:
//     swizzle   lane j <- word j / 4              (a compile-time permutation)
//     multiply  lane j *= 2^(24 - 8 (j % 4))      (byte j % 4 to the top bits)
//     shift     lane j >>= 24, logical or arithmetic (zero- or sign-extend)
// so lane j ends up holding byte j, in natural order: 3 vector ops where
// Highway's PromoteTo is 1, plus the window load. A window reads 4N bytes
// from the first one needed, past the end of the block, which is fine inside
// a row and inside the matrix; for the blocks near the end of the caller's
// weights, a padded copy of the block is decoded instead (decode_block_at).
#pragma once

#include <xsimd/xsimd.hpp>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <type_traits>
#include <utility>

#include "moelab/kernels/backend.hpp"
#include "moelab/kernels/xsimd_tile.hpp"  // product_tile and the blocking constants
#include "moelab/quant/quant.hpp"
#include "moelab/tensor.hpp"

namespace moelab::detail::xsimd_quant {

// The vector types (batch: N f32 lanes), the blocking and the panels' tile:
// xsimd_tile.hpp's.
using xsimd_kernels::arch;
using xsimd_kernels::batch;
using xsimd_kernels::ibatch;
using xsimd_kernels::N;
using xsimd_kernels::ubatch;
using xsimd_kernels::kChunkRows;
using xsimd_kernels::kMatvecRows;
using xsimd_kernels::kPrefetchBytes;
using xsimd_kernels::kTileRows;
using xsimd_kernels::kTileTokens;
using xsimd_kernels::product_tile;
static_assert(N <= 16 && 16 % N == 0, "quantized kernels need vectors of at most 16 f32 lanes");
inline constexpr std::size_t kWindowBytes = 4 * N;  // one vector of uint32 words

// ---------------------------------------------------------------------------
// Bytes to lanes.
// ---------------------------------------------------------------------------
struct WordOfByte {  // lane j reads word j / 4
    static constexpr std::uint32_t get(std::size_t j, std::size_t) { return static_cast<std::uint32_t>(j / 4); }
};
struct LiftOfByte {  // 2^(24 - 8 (j % 4)): multiplying by it shifts byte j % 4 of a word to the top
    static constexpr std::uint32_t get(std::size_t j, std::size_t) { return std::uint32_t{1} << (24 - 8 * (j % 4)); }
};

// Lane j = word j / 4 of the window at p (reads p[0, kWindowBytes)).
inline ubatch spread_words(const std::uint8_t* p) {
    const ubatch words = ubatch::load_unaligned(reinterpret_cast<const std::uint32_t*>(p));
    return ::xsimd::swizzle(words, ::xsimd::make_batch_constant<ubatch, WordOfByte>());
}

// Lane j = byte j % 4 of its word, moved to bits 31..24. A per-lane left shift
// written as a multiply by a power of two (mod 2^32, the same bits): xsimd 8.1
// has per-lane shifts by a vector only for AVX2 and falls back to a loop over
// lanes on AVX-512 (measured 7-13x slower than Highway); mullo is one
// instruction everywhere from SSE4.1 on.
inline ubatch byte_at_top(const std::uint8_t* p) {
    return spread_words(p) * ::xsimd::make_batch_constant<ubatch, LiftOfByte>();
}

// Lane j = p[j] zero-extended, j < N.
inline ibatch load_u8(const std::uint8_t* p) { return ::xsimd::bitwise_cast<ibatch>(byte_at_top(p) >> 24); }

// Lane j = p[j] sign-extended, j < N (arithmetic shift of the signed lane).
inline ibatch load_i8(const std::int8_t* p) {
    return ::xsimd::bitwise_cast<ibatch>(byte_at_top(reinterpret_cast<const std::uint8_t*>(p))) >> 24;
}

inline ibatch low_nibble(ibatch v) { return v & ibatch(0x0F); }
inline ibatch high_nibble(ibatch v) { return v >> 4; }  // v is a zero-extended byte
inline batch to_f32(ibatch v) { return ::xsimd::batch_cast<float>(v); }

// ---------------------------------------------------------------------------
// Decoders: sink(i, w) receives weights i .. i+N-1 of the block, in order.
// They may read up to kWindowBytes past the end of the block.
// ---------------------------------------------------------------------------
template <class Sink>
inline void decode_block(const block_q8_0& b, Sink&& sink) {
    const batch d(f16_to_f32(b.d));
    for (std::size_t i = 0; i < 32; i += N) sink(i, to_f32(load_i8(b.qs + i)) * d);
}

template <class Sink>
inline void decode_block(const block_q4_0& b, Sink&& sink) {
    const batch d(f16_to_f32(b.d));
    ibatch bytes[16 / N];
    for (std::size_t l = 0; l < 16; l += N) bytes[l / N] = load_u8(b.qs + l);
    for (std::size_t l = 0; l < 16; l += N) sink(l, to_f32(low_nibble(bytes[l / N]) - ibatch(8)) * d);
    for (std::size_t l = 0; l < 16; l += N) sink(16 + l, to_f32(high_nibble(bytes[l / N]) - ibatch(8)) * d);
}

// Q4_K / Q5_K: w = fma(q, d sc[j], -dmin m[j]); see highway_quant.hpp.
template <class Block, class Sink>
inline void decode_k_block(const Block& b, Sink&& sink) {
    constexpr bool kFiveBits = std::is_same_v<Block, block_q5_k>;
    const float d = f16_to_f32(b.d), dmin = f16_to_f32(b.dmin);
    const KScales k = unpack_k_scales(b.scales);
    ibatch high_bits[32 / N];  // Q5_K: qh[l], shared by all eight sub-blocks
    if constexpr (kFiveBits)
        for (std::size_t l = 0; l < 32; l += N) high_bits[l / N] = load_u8(b.qh + l);
    for (std::size_t c = 0; c < 4; ++c) {
        ibatch bytes[32 / N];
        for (std::size_t l = 0; l < 32; l += N) bytes[l / N] = load_u8(b.qs + 32 * c + l);
        for (std::size_t half = 0; half < 2; ++half) {
            const std::size_t j = 2 * c + half;
            const batch scale(d * static_cast<float>(k.scale[j]));
            const batch neg_offset(-(dmin * static_cast<float>(k.min[j])));
            for (std::size_t l = 0; l < 32; l += N) {
                ibatch q = half == 0 ? low_nibble(bytes[l / N]) : high_nibble(bytes[l / N]);
                if constexpr (kFiveBits) q = q | (((high_bits[l / N] >> static_cast<int>(j)) & ibatch(1)) << 4);
                sink(32 * j + l, ::xsimd::fma(to_f32(q), scale, neg_offset));
            }
        }
    }
}
template <class Sink>
inline void decode_block(const block_q4_k& b, Sink&& sink) {
    decode_k_block(b, sink);
}
template <class Sink>
inline void decode_block(const block_q5_k& b, Sink&& sink) {
    decode_k_block(b, sink);
}

template <class Sink>
inline void decode_block(const block_q6_k& b, Sink&& sink) {
    const float d = f16_to_f32(b.d);
    for (std::size_t h = 0; h < 2; ++h) {
        ibatch low_bytes[64 / N], high_bytes[32 / N];
        for (std::size_t l = 0; l < 64; l += N) low_bytes[l / N] = load_u8(b.ql + 64 * h + l);
        for (std::size_t l = 0; l < 32; l += N) high_bytes[l / N] = load_u8(b.qh + 32 * h + l);
        for (std::size_t g = 0; g < 4; ++g) {
            for (std::size_t l = 0; l < 32; l += N) {
                const std::size_t i = 128 * h + 32 * g + l;
                const ibatch lb = low_bytes[(l + 32 * (g % 2)) / N];
                const ibatch low = g < 2 ? low_nibble(lb) : high_nibble(lb);
                const ibatch high = (high_bytes[l / N] >> static_cast<int>(2 * g)) & ibatch(3);
                const ibatch q = (low | (high << 4)) - ibatch(32);
                sink(i, to_f32(q) * batch(d * static_cast<float>(b.scales[i / 16])));
            }
        }
    }
}

// Decodes the block at `block`, which lies in a buffer readable up to `end`:
// in place when its windows stay inside, else from a zero-padded copy.
template <class Block, class Sink>
inline void decode_block_at(const Block* block, const std::uint8_t* end, Sink&& sink) {
    const auto* bytes = reinterpret_cast<const std::uint8_t*>(block);
    if (end - bytes >= static_cast<std::ptrdiff_t>(sizeof(Block) + kWindowBytes)) return decode_block(*block, sink);
    struct Padded {
        Block block;
        std::uint8_t slack[kWindowBytes];
    } copy{};
    std::memcpy(&copy.block, block, sizeof(Block));
    decode_block(copy.block, sink);
}

template <class Block>
inline void prefetch_ahead(const Block* block) {
    const auto* bytes = reinterpret_cast<const std::uint8_t*>(block) + kPrefetchBytes;
    for (std::size_t offset = 0; offset < sizeof(Block); offset += 64) __builtin_prefetch(bytes + offset);
}

// ---------------------------------------------------------------------------
// Products (as in highway_quant.hpp). `end`: the end of the caller's weights.
// ---------------------------------------------------------------------------
template <std::size_t kRows, class Block>
inline void fused_rows(const Block* w, std::size_t row_stride, std::size_t row_blocks, const std::uint8_t* end,
                       const float* x, float* y) {
    batch acc[kRows];
    for (std::size_t r = 0; r < kRows; ++r) acc[r] = batch(0.0f);
    for (std::size_t b = 0; b < row_blocks; ++b) {
        const float* xb = x + b * Block::kWeights;
        for (std::size_t r = 0; r < kRows; ++r) {
            const Block* block = w + r * row_stride + b;
            prefetch_ahead(block);
            batch a = acc[r];  // a local, so that it stays in a register through the block
            decode_block_at(block, end, [&](std::size_t i, batch wv) { a = ::xsimd::fma(wv, batch::load_unaligned(xb + i), a); });
            acc[r] = a;
        }
    }
    for (std::size_t r = 0; r < kRows; ++r) y[r] = ::xsimd::hadd(acc[r]);
}

template <class Block>
inline void dequantize_row(const Block* w, std::size_t row_blocks, const std::uint8_t* end, float* out) {
    for (std::size_t b = 0; b < row_blocks; ++b) {
        float* ob = out + b * Block::kWeights;
        decode_block_at(w + b, end, [&](std::size_t i, batch wv) { wv.store_unaligned(ob + i); });
    }
}

using kernels::with_count;  // kernels/backend.hpp: a run-time count as a template argument

template <class Block>
const std::uint8_t* end_of(const Block* w, std::size_t blocks) {
    return reinterpret_cast<const std::uint8_t*>(w + blocks);
}

template <class Block>
inline void matvec(const Block* w, std::size_t rows, std::size_t cols, const float* x, float* y) {
    const std::size_t row_blocks = cols / Block::kWeights;
    const std::uint8_t* end = end_of(w, rows * row_blocks);
    std::size_t r = 0;
    for (; r + kMatvecRows <= rows; r += kMatvecRows)
        fused_rows<kMatvecRows>(w + r * row_blocks, row_blocks, row_blocks, end, x, y + r);
    for (; r < rows; ++r) fused_rows<1>(w + r * row_blocks, row_blocks, row_blocks, end, x, y + r);
}

template <class Block>
inline void matmul(const Block* w, std::size_t rows, std::size_t cols, const float* x, std::size_t n_tokens, float* y,
                   std::size_t y_stride) {
    const std::size_t row_blocks = cols / Block::kWeights;
    const std::uint8_t* end = end_of(w, rows * row_blocks);
    const FloatBuffer xs(x, x + n_tokens * cols);
    FloatBuffer panel(std::min(rows, kChunkRows) * cols);
    for (std::size_t r0 = 0; r0 < rows; r0 += kChunkRows) {
        const std::size_t chunk = std::min(kChunkRows, rows - r0);
        for (std::size_t r = 0; r < chunk; ++r)
            dequantize_row(w + (r0 + r) * row_blocks, row_blocks, end, panel.data() + r * cols);
        for (std::size_t t0 = 0; t0 < n_tokens; t0 += kTileTokens) {
            with_count<kTileTokens>(std::min(kTileTokens, n_tokens - t0), [&](auto tokens) {
                constexpr std::size_t kTokens = decltype(tokens)::value;
                const float* xt = xs.data() + t0 * cols;
                float* yt = y + t0 * y_stride + r0;
                std::size_t r = 0;
                for (; r + kTileRows <= chunk; r += kTileRows)
                    product_tile<kTileRows, kTokens>(panel.data() + r * cols, cols, xt, cols, cols, yt + r, y_stride);
                for (; r < chunk; ++r) product_tile<1, kTokens>(panel.data() + r * cols, cols, xt, cols, cols, yt + r, y_stride);
            });
        }
    }
}

}  // namespace moelab::detail::xsimd_quant

// ---------------------------------------------------------------------------
// The contract's quantized products for backend::xsimd (see highway_quant.hpp).
// ---------------------------------------------------------------------------
namespace moelab::kernels {

template <QuantBlock Block>
float dot(backend::xsimd, const Block* w, const float* x, std::size_t n) {
    const std::size_t blocks = n / Block::kWeights;
    float y;
    detail::xsimd_quant::fused_rows<1>(w, 0, blocks, detail::xsimd_quant::end_of(w, blocks), x, &y);
    return y;
}

// W (rows, cols), x (cols), y (rows).
template <QuantBlock Block>
void matvec(backend::xsimd, const Block* w, std::size_t rows, std::size_t cols, const float* x, float* y) {
    detail::xsimd_quant::matvec(w, rows, cols, x, y);
}

// W (rows, cols), x (n_tokens, cols), y[t * y_stride + r].
template <QuantBlock Block>
void matmul(backend::xsimd, const Block* w, std::size_t rows, std::size_t cols, const float* x, std::size_t n_tokens,
            float* y, std::size_t y_stride) {
    detail::xsimd_quant::matmul(w, rows, cols, x, n_tokens, y, y_stride);
}

}  // namespace moelab::kernels
