// SPDX-License-Identifier: MIT
// moelab/quant/q8_0.hpp — GGUF Q8_0: 32 weights as one f16 scale and 32
// signed bytes (8.5 bits per weight).
//
// Depends on: moelab/quant/block.hpp, moelab/dtype.hpp, the standard library.
//
// Byte layout (34 bytes, ggml type id 8):
//
//   offset  size  field
//        0     2  d       f16 scale, little-endian
//        2    32  qs[32]  int8 quants, weight i in qs[i]
//
// Value:   w[i] = d * qs[i]                          i = 0 .. 31
//
// d has 11 significant bits and |qs| <= 128 has 8, so the product is exact in
// f32. Quantizer (ours): d = the smallest f16 >= max|x| / 127, then
// qs[i] = round(x[i] / d), so |w[i] - x[i]| <= d / 2 and nothing is clipped.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>

#include "moelab/dtype.hpp"
#include "moelab/quant/block.hpp"

namespace moelab {

struct block_q8_0 {
    static constexpr std::size_t kWeights = 32;
    static constexpr DType kDType = DType::q8_0;
    f16 d;
    std::int8_t qs[32];
};
static_assert(sizeof(block_q8_0) == 34 && alignof(block_q8_0) == 2, "Q8_0 block: 2 + 32 bytes");

// out[0, 32) = the block's weights.
inline void dequantize_block(const block_q8_0& b, float* out) {
    const float d = f16_to_f32(b.d);
    for (std::size_t i = 0; i < 32; ++i) out[i] = d * static_cast<float>(b.qs[i]);
}

// x[0, 32) -> b, round to nearest with the scale that just covers max|x|.
inline void quantize_block(const float* x, block_q8_0& b) {
    float amax = 0.0f;
    for (std::size_t i = 0; i < 32; ++i) amax = std::max(amax, std::abs(x[i]));
    b.d = detail::f16_at_least(amax / 127.0f);
    const float d = f16_to_f32(b.d);
    for (std::size_t i = 0; i < 32; ++i)
        b.qs[i] = static_cast<std::int8_t>(d > 0.0f ? detail::round_clamped(x[i] / d, -127, 127) : 0);
}

}  // namespace moelab
