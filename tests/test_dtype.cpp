// SPDX-License-Identifier: MIT
// f16 / bf16 <-> f32 conversions: exhaustive over all 65536 bit patterns.
#include <catch2/catch.hpp>

#include <bit>
#include <cmath>
#include <cstdint>

#include "moelab/dtype.hpp"

using namespace moelab;

TEST_CASE("f16 widening is exact and narrowing round-trips every value", "[dtype]") {
    for (std::uint32_t bits = 0; bits < 65536; ++bits) {
        const f16 h{static_cast<std::uint16_t>(bits)};
        const float f = f16_to_f32(h);
        const std::uint32_t exponent = (bits >> 10) & 0x1F, mantissa = bits & 0x3FF;
        if (exponent == 0x1F && mantissa != 0) {
            REQUIRE(std::isnan(f));
            continue;
        }
        // Reference value computed independently: (-1)^s * 2^(e-15) * (1 + m/1024), or subnormal.
        const double magnitude = exponent == 0 ? std::ldexp(static_cast<double>(mantissa), -24)
                                 : exponent == 0x1F ? INFINITY
                                                    : std::ldexp(1.0 + mantissa / 1024.0, static_cast<int>(exponent) - 15);
        const double expected = (bits & 0x8000) ? -magnitude : magnitude;
        REQUIRE(static_cast<double>(f) == expected);
        REQUIRE(f32_to_f16(f).bits == bits);
    }
}

TEST_CASE("f32 -> f16 rounds to nearest, ties to even", "[dtype]") {
    // 1 + 2^-11 is exactly halfway between 1 and the next f16 (1 + 2^-10): ties to even (1).
    CHECK(f32_to_f16(1.0f + std::ldexp(1.0f, -11)).bits == 0x3C00);
    // Just above halfway rounds up.
    CHECK(f32_to_f16(1.0f + std::ldexp(1.0f, -11) + std::ldexp(1.0f, -20)).bits == 0x3C01);
    // 1 + 3*2^-11 is halfway between 0x3C01 and 0x3C02: ties to even (0x3C02).
    CHECK(f32_to_f16(1.0f + 3 * std::ldexp(1.0f, -11)).bits == 0x3C02);
    CHECK(f32_to_f16(65504.0f).bits == 0x7BFF);      // largest finite
    CHECK(f32_to_f16(65520.0f).bits == 0x7C00);      // halfway to 2^16 rounds to inf
    CHECK(f32_to_f16(1e-8f).bits == 0x0000);         // underflow to zero
    CHECK(f32_to_f16(std::ldexp(1.0f, -24)).bits == 0x0001);  // smallest subnormal
    CHECK(f32_to_f16(std::ldexp(3.0f, -25)).bits == 0x0002);  // 1.5 ulp subnormal: ties to even
    CHECK(f32_to_f16(-0.0f).bits == 0x8000);
}

TEST_CASE("bf16 widening is a shift and narrowing rounds to nearest even", "[dtype]") {
    for (std::uint32_t bits = 0; bits < 65536; ++bits) {
        const bf16 b{static_cast<std::uint16_t>(bits)};
        const float f = bf16_to_f32(b);
        REQUIRE(std::bit_cast<std::uint32_t>(f) == bits << 16);
        if (!std::isnan(f)) REQUIRE(f32_to_bf16(f).bits == bits);
    }
    CHECK(f32_to_bf16(std::bit_cast<float>(0x3F808000u)).bits == 0x3F80);  // tie -> even
    CHECK(f32_to_bf16(std::bit_cast<float>(0x3F818000u)).bits == 0x3F82);  // tie -> even (up)
    CHECK(f32_to_bf16(std::bit_cast<float>(0x3F808001u)).bits == 0x3F81);  // above tie -> up
    CHECK(std::isnan(bf16_to_f32(f32_to_bf16(NAN))));
}

TEST_CASE("block sizes give bits per weight", "[dtype]") {
    CHECK(dtype_bits_per_weight(DType::f32) == 32.0);
    CHECK(dtype_bits_per_weight(DType::q8_0) == 8.5);
    CHECK(dtype_bits_per_weight(DType::q4_k) == 4.5);
    CHECK(dtype_bits_per_weight(DType::q6_k) == 6.5625);
    CHECK(row_bytes(DType::q4_k, 512) == 288);
}
