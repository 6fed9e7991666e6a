// SPDX-License-Identifier: MIT
// moelab/quant/k_scales.hpp — the packed 6-bit sub-block scales and mins of
// the K-quants Q4_K and Q5_K, and the quantizer step they share.
//
// Depends on: moelab/quant/block.hpp, moelab/dtype.hpp, the standard library.
//
// A Q4_K / Q5_K super-block holds 256 weights in 8 sub-blocks of 32. Sub-block
// j has a 6-bit scale sc[j] and a 6-bit min m[j] (both 0 .. 63); the 16 values
// take 96 bits, packed into 12 bytes s[0..11] like this (j = 0 .. 3):
//
//   byte      bits 7..6            bits 5..0
//   s[j]      sc[j + 4] bits 5..4  sc[j]
//   s[j + 4]  m[j + 4]  bits 5..4  m[j]
//
//   byte      bits 7..4            bits 3..0
//   s[j + 8]  m[j + 4]  bits 3..0  sc[j + 4] bits 3..0
//
// So the first four scales and mins lie whole in the low six bits of bytes
// 0-7, and the last four are split: their low four bits fill bytes 8-11 and
// their top two bits the spare top bits of bytes 0-7.
//
// The super-block value of weight i in sub-block j is
//     w = (d * sc[j]) * q - (dmin * m[j])
// with f16 d, dmin and an unsigned q (4 bits for Q4_K, 5 for Q5_K).
// Exactness: d * sc needs 11 + 6 = 17 significant bits, times q (<= 5 bits)
// at most 22, dmin * m at most 17: both products are exact in f32, and the
// subtraction rounds once. Every correct decoder gets the same bits.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>

#include "moelab/dtype.hpp"
#include "moelab/quant/block.hpp"

namespace moelab {

struct KScales {
    std::uint8_t scale[8];  // sc[j], 0 .. 63
    std::uint8_t min[8];    // m[j], 0 .. 63
};

constexpr KScales unpack_k_scales(const std::uint8_t (&s)[12]) {
    KScales k{};
    for (std::size_t j = 0; j < 4; ++j) {
        k.scale[j] = s[j] & 0x3F;
        k.min[j] = s[j + 4] & 0x3F;
        k.scale[j + 4] = static_cast<std::uint8_t>((s[j + 8] & 0x0F) | ((s[j] >> 6) << 4));
        k.min[j + 4] = static_cast<std::uint8_t>((s[j + 8] >> 4) | ((s[j + 4] >> 6) << 4));
    }
    return k;
}

// The inverse of unpack_k_scales (values must be < 64).
constexpr void pack_k_scales(const KScales& k, std::uint8_t (&s)[12]) {
    for (std::size_t j = 0; j < 4; ++j) {
        s[j] = static_cast<std::uint8_t>(k.scale[j] | ((k.scale[j + 4] >> 4) << 6));
        s[j + 4] = static_cast<std::uint8_t>(k.min[j] | ((k.min[j + 4] >> 4) << 6));
        s[j + 8] = static_cast<std::uint8_t>((k.scale[j + 4] & 0x0F) | ((k.min[j + 4] & 0x0F) << 4));
    }
}

namespace detail {

// The quantizer of Q4_K and Q5_K (ours), for kLevels = 16 or 32 quant values.
// x: 256 weights. Writes d, dmin, the scales and q[0, 256) (0 .. kLevels-1).
//
// 1. Per sub-block, the range to cover: lo = min(0, min x), hi = max x. The
//    grid s * q - m (q = 0 .. kLevels-1, m >= 0) covers it when m >= -lo and
//    s * (kLevels - 1) >= hi + m.
// 2. dmin = the smallest f16 >= max_j(-lo_j) / 63; each sub-block's min is
//    rounded up to m_j = ceil(-lo_j / dmin), so dmin * m_j >= -lo_j.
// 3. d = the smallest f16 >= max_j step_j / 63, step_j = (hi_j + dmin m_j) /
//    (kLevels - 1); each scale is rounded up, sc_j = ceil(step_j / d).
// 4. Search, per sub-block: the grid may move down by one or two more min
//    steps (m_j + 1, m_j + 2) and its scale may grow by one (sc_j + 1), as
//    long as it still covers [lo, hi]; keep the pair with the smallest squared
//    error after rounding every weight to its nearest grid point.
// Every candidate covers the sub-block's range, so |w - x| <= d * sc_j / 2
// for every weight: nothing is clipped (tests/test_quant.cpp checks this).
template <int kLevels>
void quantize_k_superblock(const float* x, f16& d_out, f16& dmin_out, KScales& k, std::uint8_t* q) {
    constexpr float kTop = static_cast<float>(kLevels - 1);
    float lo[8], hi[8];
    float max_neg = 0.0f;
    for (std::size_t j = 0; j < 8; ++j) {
        lo[j] = 0.0f, hi[j] = x[32 * j];
        for (std::size_t l = 0; l < 32; ++l) lo[j] = std::min(lo[j], x[32 * j + l]), hi[j] = std::max(hi[j], x[32 * j + l]);
        max_neg = std::max(max_neg, -lo[j]);
    }
    dmin_out = f16_at_least(max_neg / 63.0f);
    const float dmin = f16_to_f32(dmin_out);
    auto ceil_div = [](float a, float b) {  // ceil(a / b) for a >= 0, 0 when b == 0, capped far above 63
        if (!(b > 0.0f)) return 0;
        const float r = std::ceil(a / b);
        return r > 1024.0f ? 1024 : static_cast<int>(r);
    };
    int m[8];
    float max_step = 0.0f;
    for (std::size_t j = 0; j < 8; ++j) {
        m[j] = std::clamp(ceil_div(-lo[j], dmin), 0, 63);
        max_step = std::max(max_step, (hi[j] + dmin * static_cast<float>(m[j])) / kTop);
    }
    d_out = f16_at_least(max_step / 63.0f);
    const float d = f16_to_f32(d_out);

    for (std::size_t j = 0; j < 8; ++j) {
        const float* xs = x + 32 * j;
        float best_error = INFINITY;
        int best_sc = 0, best_m = m[j];
        for (int mm = m[j]; mm <= std::min(m[j] + 2, 63); ++mm) {
            const float offset = dmin * static_cast<float>(mm);
            int sc_min = ceil_div(hi[j] + offset, kTop * d);
            if (sc_min > 63) {
                if (mm > m[j]) continue;  // this larger min cannot be covered: not a candidate
                sc_min = 63;              // (m[j] always can, by the choice of d; this guards rounding)
            }
            for (int sc = sc_min; sc <= std::min(sc_min + 1, 63); ++sc) {
                const float step = d * static_cast<float>(sc);
                float error = 0.0f;
                for (std::size_t l = 0; l < 32; ++l) {
                    const int v = step > 0.0f ? round_clamped((xs[l] + offset) / step, 0, kLevels - 1) : 0;
                    const float e = step * static_cast<float>(v) - offset - xs[l];
                    error += e * e;
                }
                if (error < best_error) best_error = error, best_sc = sc, best_m = mm;
            }
        }
        k.scale[j] = static_cast<std::uint8_t>(best_sc);
        k.min[j] = static_cast<std::uint8_t>(best_m);
        const float step = d * static_cast<float>(best_sc), offset = dmin * static_cast<float>(best_m);
        for (std::size_t l = 0; l < 32; ++l)
            q[32 * j + l] = static_cast<std::uint8_t>(step > 0.0f ? round_clamped((xs[l] + offset) / step, 0, kLevels - 1) : 0);
    }
}

}  // namespace detail
}  // namespace moelab
