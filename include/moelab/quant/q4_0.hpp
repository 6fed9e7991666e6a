// SPDX-License-Identifier: MIT
// moelab/quant/q4_0.hpp — GGUF Q4_0: 32 weights as one f16 scale and 32
// unsigned 4-bit quants with a fixed offset of 8 (4.5 bits per weight).
//
// Depends on: moelab/quant/block.hpp, moelab/dtype.hpp, the standard library.
//
// Byte layout (18 bytes, ggml type id 2):
//
//   offset  size  field
//        0     2  d       f16 scale, little-endian
//        2    16  qs[16]  two quants per byte:
//                         low nibble  of qs[l] is weight l        (l = 0 .. 15)
//                         high nibble of qs[l] is weight l + 16
//
// Value:   w[i] = d * (q[i] - 8),   q[i] in 0 .. 15, so q - 8 in -8 .. 7
//
// (The first half of the block sits in the low nibbles, the second half in
// the high ones, not neighbour pairs.) d has 11 significant bits and
// |q - 8| <= 8 has 4: the product is exact in f32.
// Quantizer (ours): d = the smallest f16 that maps the block's largest value
// to at most 7 and its smallest to at least -8, then q = round(x / d) + 8:
// |w - x| <= d / 2, nothing clipped.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>

#include "moelab/dtype.hpp"
#include "moelab/quant/block.hpp"

namespace moelab {

struct block_q4_0 {
    static constexpr std::size_t kWeights = 32;
    static constexpr DType kDType = DType::q4_0;
    f16 d;
    std::uint8_t qs[16];
};
static_assert(sizeof(block_q4_0) == 18 && alignof(block_q4_0) == 2, "Q4_0 block: 2 + 16 bytes");

// out[0, 32) = the block's weights.
inline void dequantize_block(const block_q4_0& b, float* out) {
    const float d = f16_to_f32(b.d);
    for (std::size_t l = 0; l < 16; ++l) {
        out[l] = d * static_cast<float>((b.qs[l] & 0x0F) - 8);
        out[l + 16] = d * static_cast<float>((b.qs[l] >> 4) - 8);
    }
}

// x[0, 32) -> b, round to nearest on the grid d * (-8 .. 7) that covers x.
inline void quantize_block(const float* x, block_q4_0& b) {
    float hi = 0.0f, lo = 0.0f;  // max(0, max x), min(0, min x)
    for (std::size_t i = 0; i < 32; ++i) hi = std::max(hi, x[i]), lo = std::min(lo, x[i]);
    b.d = detail::f16_at_least(std::max(hi / 7.0f, -lo / 8.0f));
    const float d = f16_to_f32(b.d);
    auto q = [&](float v) { return d > 0.0f ? detail::round_clamped(v / d, -8, 7) + 8 : 8; };
    for (std::size_t l = 0; l < 16; ++l)
        b.qs[l] = static_cast<std::uint8_t>(q(x[l]) | (q(x[l + 16]) << 4));
}

}  // namespace moelab
