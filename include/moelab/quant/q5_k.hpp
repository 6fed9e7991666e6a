// SPDX-License-Identifier: MIT
// moelab/quant/q5_k.hpp — GGUF Q5_K: Q4_K plus a fifth (high) bit per weight
// (5.5 bits per weight).
//
// Depends on: moelab/quant/k_scales.hpp, moelab/quant/block.hpp,
//             moelab/dtype.hpp, the standard library.
//
// Byte layout (176 bytes, ggml type id 13):
//
//   offset  size  field
//        0     2  d           f16 super-block scale of the sub-block scales
//        2     2  dmin        f16 super-block scale of the sub-block mins
//        4    12  scales[12]  sc[0..7], m[0..7]: 6 bits each (k_scales.hpp)
//       16    32  qh[32]      high bits: bit j of qh[l] belongs to the weight
//                             at position l of sub-block j (weight 32j + l)
//       48   128  qs[128]     low 4 bits, arranged exactly as in Q4_K:
//                               low  nibble of qs[32c + l] is weight 64c + l
//                               high nibble of qs[32c + l] is weight 64c + 32 + l
//
// Value of weight i = 32j + l, quant q = nibble + 16 * (bit j of qh[l]) in 0 .. 31:
//
//     w[i] = (d * sc[j]) * q - (dmin * m[j])
//
// Exact products as in Q4_K (17 + 5 = 22 significant bits at most); one rounding.
#pragma once

#include <cstddef>
#include <cstdint>

#include "moelab/dtype.hpp"
#include "moelab/quant/block.hpp"
#include "moelab/quant/k_scales.hpp"

namespace moelab {

struct block_q5_k {
    static constexpr std::size_t kWeights = 256;
    static constexpr DType kDType = DType::q5_k;
    f16 d;
    f16 dmin;
    std::uint8_t scales[12];
    std::uint8_t qh[32];
    std::uint8_t qs[128];
};
static_assert(sizeof(block_q5_k) == 176 && alignof(block_q5_k) == 2, "Q5_K block: 2 + 2 + 12 + 32 + 128 bytes");

// out[0, 256) = the block's weights.
inline void dequantize_block(const block_q5_k& b, float* out) {
    const float d = f16_to_f32(b.d), dmin = f16_to_f32(b.dmin);
    const KScales k = unpack_k_scales(b.scales);
    for (std::size_t j = 0; j < 8; ++j) {
        const float scale = d * static_cast<float>(k.scale[j]);
        const float offset = dmin * static_cast<float>(k.min[j]);
        const std::uint8_t* chunk = b.qs + 32 * (j / 2);
        const unsigned shift = 4 * (j % 2);
        for (std::size_t l = 0; l < 32; ++l) {
            const unsigned q = ((chunk[l] >> shift) & 0x0F) | (((b.qh[l] >> j) & 1u) << 4);
            out[32 * j + l] = scale * static_cast<float>(q) - offset;
        }
    }
}

// x[0, 256) -> b (the Q4_K quantizer with 32 levels).
inline void quantize_block(const float* x, block_q5_k& b) {
    KScales k{};
    std::uint8_t q[256];
    detail::quantize_k_superblock<32>(x, b.d, b.dmin, k, q);
    pack_k_scales(k, b.scales);
    for (std::size_t l = 0; l < 32; ++l) {
        unsigned high_bits = 0;
        for (std::size_t j = 0; j < 8; ++j) high_bits |= static_cast<unsigned>(q[32 * j + l] >> 4) << j;
        b.qh[l] = static_cast<std::uint8_t>(high_bits);
    }
    for (std::size_t c = 0; c < 4; ++c)
        for (std::size_t l = 0; l < 32; ++l)
            b.qs[32 * c + l] = static_cast<std::uint8_t>((q[64 * c + l] & 0x0F) | ((q[64 * c + 32 + l] & 0x0F) << 4));
}

}  // namespace moelab
