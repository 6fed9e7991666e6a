// SPDX-License-Identifier: MIT
// moelab/dtype.hpp — the element types weights are stored in, and exact
// conversions between f32, f16 and bf16.
//
// Depends on: the standard library only (C++20 <bit>).
//
// A weight tensor is a sequence of *blocks*. For plain types a block is one
// element; for quantized GGUF types (issue "quantized weights") a block packs
// e.g. 32 or 256 weights with shared scales. A matrix row of `cols` weights is
// therefore cols / block_elems blocks of block_bytes each, and rows are
// contiguous. All sizes below are exact; loaders check cols % block_elems == 0.
#pragma once

#include <bit>
#include <cstddef>
#include <cstdint>
#include <string_view>

namespace moelab {

// IEEE-754 binary16 and bfloat16, stored as raw bits. Distinct types (not
// plain uint16_t) so that overloads can tell them apart.
struct f16 { std::uint16_t bits; };
struct bf16 { std::uint16_t bits; };

enum class DType : std::uint8_t {
    f32,
    f16,
    bf16,
    q8_0,  // 32 weights: f16 scale + 32 x int8                     (8.5 bits/weight)
    q4_0,  // 32 weights: f16 scale + 32 x 4-bit, offset 8            (4.5 bits/weight)
    q4_k,  // 256 weights: super-block with 8 sub-blocks, 6-bit scales/mins (4.5 bits/weight)
    q5_k,  // 256 weights: like q4_k plus one high bit per weight      (5.5 bits/weight)
    q6_k,  // 256 weights: 16 sub-blocks, 8-bit scales, 6-bit weights  (6.5625 bits/weight)
};

struct DTypeTraits {
    std::string_view name;
    std::size_t block_elems;  // weights per block
    std::size_t block_bytes;  // bytes per block
};

constexpr DTypeTraits dtype_traits(DType t) {
    switch (t) {
        case DType::f32:  return {"f32", 1, 4};
        case DType::f16:  return {"f16", 1, 2};
        case DType::bf16: return {"bf16", 1, 2};
        case DType::q8_0: return {"q8_0", 32, 34};
        case DType::q4_0: return {"q4_0", 32, 18};
        case DType::q4_k: return {"q4_k", 256, 144};
        case DType::q5_k: return {"q5_k", 256, 176};
        case DType::q6_k: return {"q6_k", 256, 210};
    }
    return {"?", 1, 1};
}

constexpr std::string_view dtype_name(DType t) { return dtype_traits(t).name; }

// Bits of storage per weight, e.g. 4.5 for q4_k. What `inspect` reports.
constexpr double dtype_bits_per_weight(DType t) {
    const DTypeTraits tr = dtype_traits(t);
    return 8.0 * static_cast<double>(tr.block_bytes) / static_cast<double>(tr.block_elems);
}

// Bytes of one row of `cols` weights (cols must be a multiple of block_elems).
constexpr std::size_t row_bytes(DType t, std::size_t cols) {
    const DTypeTraits tr = dtype_traits(t);
    return cols / tr.block_elems * tr.block_bytes;
}

// ---------------------------------------------------------------------------
// f16 <-> f32. binary16: 1 sign, 5 exponent (bias 15), 10 mantissa bits.
// Every f16 value is exactly representable in f32, so widening is exact.
// ---------------------------------------------------------------------------
constexpr float f16_to_f32(f16 h) {
    const std::uint32_t sign = static_cast<std::uint32_t>(h.bits & 0x8000u) << 16;
    const std::uint32_t exponent = (h.bits >> 10) & 0x1Fu;
    std::uint32_t mantissa = h.bits & 0x3FFu;
    if (exponent == 0x1F)  // inf or NaN: keep the payload
        return std::bit_cast<float>(sign | 0x7F800000u | (mantissa << 13));
    if (exponent != 0)  // normal: rebias 15 -> 127
        return std::bit_cast<float>(sign | ((exponent + 112u) << 23) | (mantissa << 13));
    if (mantissa == 0) return std::bit_cast<float>(sign);  // +-0
    // Subnormal: value = mantissa * 2^-24, exactly representable as a normal f32.
    int e = -1;
    do { mantissa <<= 1; ++e; } while ((mantissa & 0x400u) == 0);
    return std::bit_cast<float>(sign | static_cast<std::uint32_t>(112 - e) << 23 | ((mantissa & 0x3FFu) << 13));
}

// Round to nearest, ties to even; overflow goes to inf, NaN stays NaN.
constexpr f16 f32_to_f16(float f) {
    const std::uint32_t x = std::bit_cast<std::uint32_t>(f);
    const std::uint16_t sign = static_cast<std::uint16_t>((x >> 16) & 0x8000u);
    const std::uint32_t abs = x & 0x7FFFFFFFu;
    if (abs > 0x7F800000u) return {static_cast<std::uint16_t>(sign | 0x7E00u)};  // NaN
    if (abs >= 0x477FF000u) return {static_cast<std::uint16_t>(sign | 0x7C00u)};  // rounds to >= 65520: inf
    if (abs < 0x38800000u) {  // below the smallest normal f16 (2^-14): subnormal or zero
        if (abs < 0x33000000u) return {sign};  // < 2^-25 rounds to zero (2^-25 itself ties to even 0)
        const std::uint32_t e = abs >> 23;
        const std::uint32_t m = (abs & 0x7FFFFFu) | 0x800000u;
        const std::uint32_t shift = 126u - e;  // result = m >> (shift) in units of 2^-24
        std::uint32_t r = m >> shift;
        const std::uint32_t rem = m & ((1u << shift) - 1u);
        const std::uint32_t half = 1u << (shift - 1u);
        if (rem > half || (rem == half && (r & 1u))) ++r;
        return {static_cast<std::uint16_t>(sign | r)};
    }
    // Normal: rebias and round the 13 dropped mantissa bits.
    std::uint32_t r = ((abs >> 13) - (112u << 10));
    const std::uint32_t rem = abs & 0x1FFFu;
    if (rem > 0x1000u || (rem == 0x1000u && (r & 1u))) ++r;  // may carry into the exponent: correct
    return {static_cast<std::uint16_t>(sign | r)};
}

// ---------------------------------------------------------------------------
// bf16 <-> f32. bfloat16 is the upper 16 bits of an f32: widening is a shift.
// ---------------------------------------------------------------------------
constexpr float bf16_to_f32(bf16 b) {
    return std::bit_cast<float>(static_cast<std::uint32_t>(b.bits) << 16);
}

// Round to nearest, ties to even; NaN stays a (quiet) NaN.
constexpr bf16 f32_to_bf16(float f) {
    const std::uint32_t x = std::bit_cast<std::uint32_t>(f);
    if ((x & 0x7FFFFFFFu) > 0x7F800000u) return {static_cast<std::uint16_t>((x >> 16) | 0x40u)};
    const std::uint32_t rounding = 0x7FFFu + ((x >> 16) & 1u);
    return {static_cast<std::uint16_t>((x + rounding) >> 16)};
}

// Widening of any plain element type to f32; the scalar kernels are written
// against this one overload set.
constexpr float to_f32(float v) { return v; }
constexpr float to_f32(f16 v) { return f16_to_f32(v); }
constexpr float to_f32(bf16 v) { return bf16_to_f32(v); }

}  // namespace moelab
