// SPDX-License-Identifier: MIT
// moelab/quant/q4_k.hpp — GGUF Q4_K: a super-block of 256 weights in 8
// sub-blocks of 32, with 6-bit scales and mins, 4-bit quants (4.5 bits/weight).
//
// Depends on: moelab/quant/k_scales.hpp, moelab/quant/block.hpp,
//             moelab/dtype.hpp, the standard library.
//
// Byte layout (144 bytes, ggml type id 12):
//
//   offset  size  field
//        0     2  d           f16 super-block scale of the sub-block scales
//        2     2  dmin        f16 super-block scale of the sub-block mins
//        4    12  scales[12]  sc[0..7], m[0..7]: 6 bits each (k_scales.hpp)
//       16   128  qs[128]     4-bit quants, in four chunks of 32 bytes:
//                             chunk c = qs[32c .. 32c + 31] holds weights
//                             64c .. 64c + 63:
//                               low  nibble of qs[32c + l] is weight 64c + l       (sub-block 2c)
//                               high nibble of qs[32c + l] is weight 64c + 32 + l  (sub-block 2c + 1)
//
// Value of weight i, sub-block j = i / 32, quant q in 0 .. 15:
//
//     w[i] = (d * sc[j]) * q - (dmin * m[j])
//
// The two products are exact in f32 (k_scales.hpp counts the bits); the
// subtraction rounds once. The min is subtracted: m >= 0 lowers the grid, so
// a sub-block covers [-dmin m, 15 d sc - dmin m].
#pragma once

#include <cstddef>
#include <cstdint>

#include "moelab/dtype.hpp"
#include "moelab/quant/block.hpp"
#include "moelab/quant/k_scales.hpp"

namespace moelab {

struct block_q4_k {
    static constexpr std::size_t kWeights = 256;
    static constexpr DType kDType = DType::q4_k;
    f16 d;
    f16 dmin;
    std::uint8_t scales[12];
    std::uint8_t qs[128];
};
static_assert(sizeof(block_q4_k) == 144 && alignof(block_q4_k) == 2, "Q4_K block: 2 + 2 + 12 + 128 bytes");

// out[0, 256) = the block's weights.
inline void dequantize_block(const block_q4_k& b, float* out) {
    const float d = f16_to_f32(b.d), dmin = f16_to_f32(b.dmin);
    const KScales k = unpack_k_scales(b.scales);
    for (std::size_t j = 0; j < 8; ++j) {
        const float scale = d * static_cast<float>(k.scale[j]);  // exact
        const float offset = dmin * static_cast<float>(k.min[j]);  // exact
        const std::uint8_t* chunk = b.qs + 32 * (j / 2);
        const unsigned shift = 4 * (j % 2);  // even sub-blocks: low nibbles; odd: high
        for (std::size_t l = 0; l < 32; ++l)
            out[32 * j + l] = scale * static_cast<float>((chunk[l] >> shift) & 0x0F) - offset;
    }
}

// x[0, 256) -> b (detail::quantize_k_superblock: round to nearest on a grid
// that covers every sub-block, with a small search over each scale and min).
inline void quantize_block(const float* x, block_q4_k& b) {
    KScales k{};
    std::uint8_t q[256];
    detail::quantize_k_superblock<16>(x, b.d, b.dmin, k, q);
    pack_k_scales(k, b.scales);
    for (std::size_t c = 0; c < 4; ++c)
        for (std::size_t l = 0; l < 32; ++l)
            b.qs[32 * c + l] = static_cast<std::uint8_t>(q[64 * c + l] | (q[64 * c + 32 + l] << 4));
}

}  // namespace moelab
