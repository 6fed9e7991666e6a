// SPDX-License-Identifier: MIT
// moelab/quant/block.hpp — what every quantized GGUF block type provides, and
// the rounding helpers its quantizer uses.
//
// Depends on: moelab/dtype.hpp, the standard library.
//
// A quantized weight row is a run of *blocks*; one block packs kWeights
// weights (32 or 256) with shared scales. Each format header (q8_0.hpp,
// q4_0.hpp, q4_k.hpp, q5_k.hpp, q6_k.hpp) defines
//
//   struct block_<fmt> {                  // the exact GGUF byte layout
//       static constexpr std::size_t kWeights;   // weights per block
//       static constexpr DType kDType;           // its moelab dtype
//       ...fields...
//   };
//   void dequantize_block(const block_<fmt>& b, float* out);   // out[0, kWeights)
//   void quantize_block(const float* x, block_<fmt>& b);       // x[0, kWeights)
//
// in namespace moelab, so that generic code (the scalar kernel, the row
// helpers in quant.hpp) finds them by argument-dependent lookup.
//
// Exactness. Every format's value is an f16 scale (times a small integer
// sub-scale) times a small integer, minus (for Q4_K/Q5_K) a second such
// product. Each product needs at most 24 significant bits (the f16 scale has
// 11, the integers the rest; the format headers count them), so it is exact
// in f32, and the one subtraction rounds once. Dequantised values are
// therefore the same bits in every correct implementation, with or without a
// fused multiply-add: the scalar decoders and the SIMD ones agree exactly.
#pragma once

#include <bit>
#include <cmath>
#include <concepts>
#include <cstddef>
#include <cstdint>

#include "moelab/dtype.hpp"

namespace moelab {

// A quantized block type (see above).
template <class T>
concept QuantBlock = requires(const T& block, float* out, const float* x, T& dst) {
    { T::kWeights } -> std::convertible_to<std::size_t>;
    { T::kDType } -> std::convertible_to<DType>;
    dequantize_block(block, out);
    quantize_block(x, dst);
};

namespace detail {

// The smallest f16 >= v, for v >= 0 (a scale rounded *up*, so that the
// quantization grid still covers every input). Values past the largest finite
// f16 (65504) give 65504: inputs that large are clipped by the quantizer.
inline f16 f16_at_least(float v) {
    if (!(v > 0.0f)) return f16{0};
    if (v >= 65504.0f) return f16{0x7BFF};
    f16 h = f32_to_f16(v);
    if (f16_to_f32(h) < v) ++h.bits;  // positive f16 bit patterns are ordered like their values
    return h;
}

// Round half to even, like the FPU's default mode (std::nearbyint), clamped to [lo, hi].
inline int round_clamped(float v, int lo, int hi) {
    const float r = std::nearbyint(v);
    return r < static_cast<float>(lo) ? lo : r > static_cast<float>(hi) ? hi : static_cast<int>(r);
}

}  // namespace detail
}  // namespace moelab
