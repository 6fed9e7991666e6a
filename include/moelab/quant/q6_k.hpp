// SPDX-License-Identifier: MIT
// moelab/quant/q6_k.hpp — GGUF Q6_K: a super-block of 256 weights in 16
// sub-blocks of 16, with signed 8-bit scales and 6-bit quants (6.5625
// bits per weight).
//
// Depends on: moelab/quant/block.hpp, moelab/dtype.hpp, the standard library.
//
// Byte layout (210 bytes, ggml type id 14):
//
//   offset  size  field
//        0   128  ql[128]     low 4 bits of each quant
//      128    64  qh[64]      high 2 bits of each quant
//      192    16  scales[16]  int8 scale of each sub-block of 16 weights
//      208     2  d           f16 super-block scale
//
// The block is two halves of 128 weights, h = 0, 1, each using
// ql[64h .. 64h + 63] and qh[32h .. 32h + 31]. Within a half, weight
// p = 32g + l (group g = 0 .. 3, l = 0 .. 31) takes
//     low 4 bits:  ql[64h + l + 32 (g % 2)], the low nibble if g < 2, else the high nibble
//     high 2 bits: bits 2g+1 .. 2g of qh[32h + l]
// so q = low | high << 4 is in 0 .. 63. Sub-block scales run in weight order:
// weight i uses scales[i / 16].
//
// Value of weight i:   w[i] = (d * scales[i / 16]) * (q - 32)
//
// d has 11 significant bits, |scale| <= 128 and |q - 32| <= 32: the product
// of the three is below 2^24 in units of d's last bit, so it is exact in f32.
// Quantizer (ours): per sub-block, the step that maps max x to at most 31 and
// min x to at least -32; d = the smallest f16 >= max step / 127, scales
// rounded up; then round to nearest: |w - x| <= d * scale / 2.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>

#include "moelab/dtype.hpp"
#include "moelab/quant/block.hpp"

namespace moelab {

struct block_q6_k {
    static constexpr std::size_t kWeights = 256;
    static constexpr DType kDType = DType::q6_k;
    std::uint8_t ql[128];
    std::uint8_t qh[64];
    std::int8_t scales[16];
    f16 d;
};
static_assert(sizeof(block_q6_k) == 210 && alignof(block_q6_k) == 2, "Q6_K block: 128 + 64 + 16 + 2 bytes");

// out[0, 256) = the block's weights.
inline void dequantize_block(const block_q6_k& b, float* out) {
    const float d = f16_to_f32(b.d);
    for (std::size_t h = 0; h < 2; ++h) {
        const std::uint8_t* ql = b.ql + 64 * h;
        const std::uint8_t* qh = b.qh + 32 * h;
        for (std::size_t g = 0; g < 4; ++g) {
            const unsigned shift = g < 2 ? 0 : 4;
            for (std::size_t l = 0; l < 32; ++l) {
                const std::size_t i = 128 * h + 32 * g + l;
                const int q = ((ql[l + 32 * (g % 2)] >> shift) & 0x0F) | (((qh[l] >> (2 * g)) & 3) << 4);
                out[i] = (d * static_cast<float>(b.scales[i / 16])) * static_cast<float>(q - 32);
            }
        }
    }
}

// x[0, 256) -> b, round to nearest on a grid that covers each sub-block.
inline void quantize_block(const float* x, block_q6_k& b) {
    float step[16], max_step = 0.0f;
    for (std::size_t s = 0; s < 16; ++s) {
        float hi = 0.0f, lo = 0.0f;
        for (std::size_t l = 0; l < 16; ++l) hi = std::max(hi, x[16 * s + l]), lo = std::min(lo, x[16 * s + l]);
        step[s] = std::max(hi / 31.0f, -lo / 32.0f);
        max_step = std::max(max_step, step[s]);
    }
    b.d = detail::f16_at_least(max_step / 127.0f);
    const float d = f16_to_f32(b.d);
    std::uint8_t q[256];
    for (std::size_t s = 0; s < 16; ++s) {
        const float r = d > 0.0f ? std::ceil(step[s] / d) : 0.0f;
        const int scale = r > 127.0f ? 127 : static_cast<int>(r);
        b.scales[s] = static_cast<std::int8_t>(scale);
        const float sub_step = d * static_cast<float>(scale);
        for (std::size_t l = 0; l < 16; ++l)
            q[16 * s + l] = static_cast<std::uint8_t>(
                sub_step > 0.0f ? detail::round_clamped(x[16 * s + l] / sub_step, -32, 31) + 32 : 32);
    }
    for (std::size_t h = 0; h < 2; ++h) {
        std::uint8_t* ql = b.ql + 64 * h;
        std::uint8_t* qh = b.qh + 32 * h;
        for (std::size_t l = 0; l < 64; ++l) ql[l] = 0;
        for (std::size_t l = 0; l < 32; ++l) qh[l] = 0;
        for (std::size_t g = 0; g < 4; ++g)
            for (std::size_t l = 0; l < 32; ++l) {
                const std::uint8_t v = q[128 * h + 32 * g + l];
                ql[l + 32 * (g % 2)] |= static_cast<std::uint8_t>((v & 0x0F) << (g < 2 ? 0 : 4));
                qh[l] |= static_cast<std::uint8_t>((v >> 4) << (2 * g));
            }
    }
}

}  // namespace moelab
