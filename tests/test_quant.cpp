// SPDX-License-Identifier: MIT
// Quantized GGUF weights (moelab/quant/, kernels/*_quant.hpp):
//  1. each format's dequantisation against an independent decoder written
//     here from the byte layout, bit by bit (a bit reader and per-weight
//     index arithmetic, not the headers' loops), on random blocks;
//  2. every backend's fused kernels reproduce the exact dequantised weights
//     (dot with unit vectors: the fused path; matmul with the identity: the
//     panel path), and their dot products stay within the derived bound of
//     the exact one, over a sweep of lengths with misaligned x and weights;
//  3. determinism: dot, matvec rows and matmul columns agree bit for bit;
//  4. quantizers: round trips within their stated error bounds, and through
//     a GGUF file written and read back;
//  5. the fixtures: every model of the manifest with `logits_exact` (GGUF
//     quantized by llama.cpp), with every backend, within the manifest's
//     tolerance of llama.cpp's exact-dequantisation logits; the distance to
//     llama.cpp's own quantized path (`logits`) is printed (WARN).
//
// Tolerances (as tests/test_kernels.cpp): u = 2^-24, gamma(n) = n u / (1 - n u).
// The dequantised weights are exact f32 numbers (quant/block.hpp), so every
// dot product is a sum of n exact-input products, and any summation order,
// with or without FMA, is within gamma(n + 1) * sum |w x| of the exact sum
// (Higham, Thm 3.1). Scalar and each backend are each that close to the exact
// value computed in double here, hence within twice it of each other.
#include <catch2/catch.hpp>

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <limits>
#include <random>
#include <span>
#include <string>
#include <type_traits>
#include <vector>

#include "moelab/io/gguf.hpp"
#include "moelab/io/gguf_writer.hpp"
#include "moelab/quant/quant.hpp"
#include "support/backends.hpp"
#include "support/compare.hpp"
#include "support/error_bounds.hpp"
#include "support/fixtures.hpp"
#include "support/temp_dir.hpp"
#include "support/transformers.hpp"

using namespace moelab;

namespace {

using test::gamma_n;  // support/error_bounds.hpp
using test::u;

using test::AllBackends;

// ---------------------------------------------------------------------------
// The independent decoder: bits of the raw block bytes, weight by weight.
// ---------------------------------------------------------------------------
static_assert(std::numeric_limits<long double>::digits >= 64,
              "the reference decoder needs an exact difference of two 24-bit products (x86 long double)");

// `count` bits of the little-endian byte array `bytes`, starting at bit `first`.
unsigned read_bits(const std::uint8_t* bytes, std::size_t first, unsigned count) {
    unsigned v = 0;
    for (unsigned k = 0; k < count; ++k) {
        const std::size_t bit = first + k;
        v |= static_cast<unsigned>((bytes[bit / 8] >> (bit % 8)) & 1u) << k;
    }
    return v;
}

long double f16_value(const std::uint8_t* p) {  // independent of moelab::f16_to_f32
    const unsigned bits = read_bits(p, 0, 16);
    const int sign = bits >> 15 ? -1 : 1;
    const int exponent = static_cast<int>((bits >> 10) & 0x1F);
    const unsigned mantissa = bits & 0x3FF;
    REQUIRE(exponent != 31);  // the random blocks below hold finite scales
    if (exponent == 0) return sign * std::ldexp(static_cast<long double>(mantissa), -24);
    return sign * std::ldexp(static_cast<long double>(mantissa + 1024), exponent - 25);
}

// The 6-bit scale (which = 0) or min (which = 1) of sub-block j in a K-quant's 12 scale bytes.
unsigned k_scale_field(const std::uint8_t* s, unsigned j, unsigned which) {
    if (j < 4) return read_bits(s, 8 * (4 * which + j), 6);
    const unsigned low4 = read_bits(s, 8 * (8 + j - 4) + 4 * which, 4);
    const unsigned high2 = read_bits(s, 8 * (4 * which + j - 4) + 6, 2);
    return low4 | (high2 << 4);
}

// Weight i of a block, as the exact real number, then rounded once to f32.
float reference_weight(DType t, const std::uint8_t* b, std::size_t i) {
    long double value = 0;
    switch (t) {
        case DType::q8_0: {
            const int q = static_cast<int>(read_bits(b, 8 * (2 + i), 8));
            value = f16_value(b) * (q >= 128 ? q - 256 : q);
            break;
        }
        case DType::q4_0: {
            const unsigned q = read_bits(b, 8 * (2 + i % 16) + 4 * (i / 16), 4);
            value = f16_value(b) * (static_cast<int>(q) - 8);
            break;
        }
        case DType::q4_k:
        case DType::q5_k: {
            const unsigned j = static_cast<unsigned>(i / 32), l = static_cast<unsigned>(i % 32);
            const std::size_t qs = t == DType::q4_k ? 16 : 48;
            unsigned q = read_bits(b, 8 * (qs + 32 * (j / 2) + l) + 4 * (j % 2), 4);
            if (t == DType::q5_k) q |= read_bits(b, 8 * (16 + l) + j, 1) << 4;
            value = f16_value(b) * k_scale_field(b + 4, j, 0) * q - f16_value(b + 2) * k_scale_field(b + 4, j, 1);
            break;
        }
        case DType::q6_k: {
            const std::size_t h = i / 128, g = (i % 128) / 32, l = i % 32;
            const unsigned low = read_bits(b, 8 * (64 * h + 32 * (g % 2) + l) + 4 * (g / 2), 4);
            const unsigned high = read_bits(b, 8 * (128 + 32 * h + l) + 2 * g, 2);
            const int scale = static_cast<std::int8_t>(read_bits(b, 8 * (192 + i / 16), 8));
            value = f16_value(b + 208) * scale * (static_cast<int>(low | (high << 4)) - 32);
            break;
        }
        default: FAIL("not a quantized type");
    }
    return static_cast<float>(value);
}

// Random f16 bits of a finite number: any sign, exponents 0 (subnormal) to 30.
std::uint16_t random_finite_f16(std::mt19937& rng) {
    std::uint16_t bits;
    do bits = static_cast<std::uint16_t>(rng()); while (((bits >> 10) & 0x1F) == 0x1F);
    return bits;
}

// Offsets of a block type's f16 fields (all else is random bytes).
template <class Block>
std::vector<std::size_t> f16_offsets() {
    if constexpr (std::is_same_v<Block, block_q4_k> || std::is_same_v<Block, block_q5_k>) return {0, 2};
    else if constexpr (std::is_same_v<Block, block_q6_k>) return {208};
    else return {0};
}

// n_blocks random blocks: random bytes, finite f16 scales. `tame` keeps the
// scales in [2^-8, 2^-4) (positive for the K-quants' d and dmin, whose
// sign is never negative in real files) so that sums of products stay far
// from overflow and underflow; otherwise any finite f16, subnormals included.
template <class Block>
std::vector<Block> random_blocks(std::size_t n_blocks, std::mt19937& rng, bool tame) {
    std::vector<Block> blocks(n_blocks);
    auto* bytes = reinterpret_cast<std::uint8_t*>(blocks.data());
    for (std::size_t k = 0; k < n_blocks * sizeof(Block); ++k) bytes[k] = static_cast<std::uint8_t>(rng());
    for (std::size_t b = 0; b < n_blocks; ++b)
        for (const std::size_t offset : f16_offsets<Block>()) {
            std::uint16_t bits = random_finite_f16(rng);
            if (tame) bits = static_cast<std::uint16_t>((bits & 0x3FF) | ((7 + rng() % 4) << 10));  // 2^-8 .. 2^-5 * (1 + m)
            std::memcpy(bytes + b * sizeof(Block) + offset, &bits, 2);
        }
    return blocks;
}

template <class Block>
std::vector<float> dequantized(const std::vector<Block>& blocks) {
    std::vector<float> out(blocks.size() * Block::kWeights);
    dequantize_row(Block::kDType, reinterpret_cast<const std::byte*>(blocks.data()), out.size(), out.data());
    return out;
}

// Bitwise equality that also says where the first difference is.
void require_same_bits(const std::vector<float>& got, const std::vector<float>& ref, const std::string& what) {
    REQUIRE(got.size() == ref.size());
    for (std::size_t i = 0; i < got.size(); ++i)
        if (std::bit_cast<std::uint32_t>(got[i]) != std::bit_cast<std::uint32_t>(ref[i])) {
            INFO(what << ": first difference at " << i << ": got " << got[i] << ", expected " << ref[i]);
            REQUIRE(std::bit_cast<std::uint32_t>(got[i]) == std::bit_cast<std::uint32_t>(ref[i]));
        }
}

// Storage for blocks at a chosen byte offset from a 64-byte boundary (blocks
// are 2-byte aligned types, so offsets 0, 2, 4, ... are all legal).
template <class Block>
struct OffsetBlocks {
    FloatBuffer storage;
    Block* blocks;
    OffsetBlocks(const std::vector<Block>& src, std::size_t offset)
        : storage((src.size() * sizeof(Block) + offset) / sizeof(float) + 1) {
        blocks = reinterpret_cast<Block*>(reinterpret_cast<std::byte*>(storage.data()) + offset);
        std::memcpy(static_cast<void*>(blocks), src.data(), src.size() * sizeof(Block));
    }
};

}  // namespace

#define MOELAB_QUANT_TYPES block_q8_0, block_q4_0, block_q4_k, block_q5_k, block_q6_k

// ---------------------------------------------------------------------------
// 1. Dequantisation, bit for bit.
// ---------------------------------------------------------------------------
TEMPLATE_TEST_CASE("dequantize_block matches an independent bit-level decoder", "[quant]", MOELAB_QUANT_TYPES) {
    using Block = TestType;
    std::mt19937 rng(1234);
    for (const bool tame : {false, true}) {
        const auto blocks = random_blocks<Block>(400, rng, tame);
        const auto values = dequantized(blocks);
        std::vector<float> reference(values.size());
        for (std::size_t b = 0; b < blocks.size(); ++b)
            for (std::size_t i = 0; i < Block::kWeights; ++i)
                reference[b * Block::kWeights + i] =
                    reference_weight(Block::kDType, reinterpret_cast<const std::uint8_t*>(&blocks[b]), i);
        require_same_bits(values, reference, std::string(dtype_name(Block::kDType)) + (tame ? " (tame scales)" : ""));
    }
}

// Blocks written byte by byte, with values worked out by hand from the
// layouts in the format headers (the comments show the arithmetic).
namespace {
template <class Block>
Block block_from(const std::vector<std::pair<std::size_t, std::uint8_t>>& bytes) {
    std::uint8_t raw[sizeof(Block)] = {};
    for (const auto& [offset, value] : bytes) raw[offset] = value;
    Block b;
    std::memcpy(&b, raw, sizeof(Block));
    return b;
}
template <class Block>
std::vector<float> weights_of(const Block& b) {
    return dequantized(std::vector<Block>{b});
}
}  // namespace

TEST_CASE("dequantisation of hand-written blocks", "[quant]") {
    SECTION("f16 and bf16 (plain types through dequantize_row)") {
        const std::uint8_t f16_bytes[] = {0x00, 0x3C, 0x00, 0xC0, 0x01, 0x00};  // 1.0, -2.0, 2^-24 (smallest subnormal)
        const std::uint8_t bf16_bytes[] = {0x80, 0x3F, 0x49, 0x40};             // 1.0, 0x4049 = 3.140625
        float out[3];
        dequantize_row(DType::f16, reinterpret_cast<const std::byte*>(f16_bytes), 3, out);
        CHECK(out[0] == 1.0f);
        CHECK(out[1] == -2.0f);
        CHECK(out[2] == std::ldexp(1.0f, -24));
        dequantize_row(DType::bf16, reinterpret_cast<const std::byte*>(bf16_bytes), 2, out);
        CHECK(out[0] == 1.0f);
        CHECK(out[1] == 3.140625f);
    }
    SECTION("q8_0: w = d q") {
        // d = f16 0x3800 = 0.5; qs[0] = 3, qs[1] = 0x80 = -128, qs[31] = 127.
        const auto w = weights_of(block_from<block_q8_0>({{0, 0x00}, {1, 0x38}, {2, 3}, {3, 0x80}, {33, 127}}));
        CHECK(w[0] == 1.5f);     // 0.5 * 3
        CHECK(w[1] == -64.0f);   // 0.5 * -128
        CHECK(w[2] == 0.0f);
        CHECK(w[31] == 63.5f);   // 0.5 * 127
    }
    SECTION("q4_0: w = d (q - 8), weight l in the low nibble of qs[l], weight 16 + l in the high one") {
        // d = f16 0x4000 = 2; qs[0] = 0x1F; qs[15] = 0x80.
        const auto w = weights_of(block_from<block_q4_0>({{1, 0x40}, {2, 0x1F}, {17, 0x80}}));
        CHECK(w[0] == 14.0f);    // low nibble 15: 2 * (15 - 8)
        CHECK(w[16] == -14.0f);  // high nibble 1: 2 * (1 - 8)
        CHECK(w[15] == -16.0f);  // low nibble of qs[15] = 0: 2 * (0 - 8)
        CHECK(w[31] == 0.0f);    // high nibble 8: 2 * 0
        CHECK(w[1] == -16.0f);   // qs[1] = 0
    }
    // K-quant scales (offsets 4..15): scales[0] = 0x42 -> sc0 = 2, top bits 1;
    // scales[4] = 0x83 -> m0 = 3, top bits 2; scales[1] = 1 -> sc1 = 1; m1 = 0;
    // scales[8] = 0x21 -> sc4 = 1 | (1 << 4) = 17, m4 = 2 | (2 << 4) = 34.
    // d = 0x3C00 = 1, dmin = 0x3800 = 0.5.
    const std::vector<std::pair<std::size_t, std::uint8_t>> k_header = {
        {1, 0x3C}, {3, 0x38}, {4, 0x42}, {5, 0x01}, {8, 0x83}, {12, 0x21}};
    SECTION("q4_k: w = d sc_j q - dmin m_j") {
        auto bytes = k_header;
        bytes.push_back({16 + 0, 0x5A});   // qs[0]: weight 0 (sub-block 0) = 0xA, weight 32 (sub-block 1) = 0x5
        bytes.push_back({16 + 64, 0x07});  // qs[64]: chunk 2, weight 128 (sub-block 4) = 7, weight 160 = 0
        const auto w = weights_of(block_from<block_q4_k>(bytes));
        CHECK(w[0] == 18.5f);     // 1 * 2 * 10 - 0.5 * 3
        CHECK(w[1] == -1.5f);     // q = 0: - 0.5 * 3
        CHECK(w[32] == 5.0f);     // 1 * 1 * 5 - 0.5 * 0
        CHECK(w[128] == 102.0f);  // 1 * 17 * 7 - 0.5 * 34
        CHECK(w[160] == 0.0f);    // sub-block 5: sc5 = m5 = 0
    }
    SECTION("q5_k: q4_k's nibble plus 16 * bit j of qh[l]") {
        auto bytes = k_header;
        bytes.push_back({16 + 0, 0x11});       // qh[0]: bit 0 (weight 0) and bit 4 (weight 128)
        bytes.push_back({48 + 0, 0x5A});       // qs[0] as in q4_k
        bytes.push_back({48 + 64, 0x07});      // qs[64]
        const auto w = weights_of(block_from<block_q5_k>(bytes));
        CHECK(w[0] == 50.5f);     // 1 * 2 * (10 + 16) - 1.5
        CHECK(w[32] == 5.0f);     // qh bit 1 clear: 1 * 1 * 5
        CHECK(w[128] == 374.0f);  // 1 * 17 * (7 + 16) - 17
        CHECK(w[1] == -1.5f);
    }
    SECTION("q6_k: w = d sc_s (q - 32), q = ql nibble | qh 2 bits << 4") {
        // ql[0] = 0x3F, qh[0] = 0x02 (bits 0-1 = 2 for weight 0; bits 4-5 = 0 for weight 64),
        // scales[0] = 4, scales[4] = -2 (0xFE), scales[15] = 1, d = 0x3400 = 0.25.
        const auto w = weights_of(block_from<block_q6_k>(
            {{0, 0x3F}, {128, 0x02}, {192, 4}, {196, 0xFE}, {207, 1}, {209, 0x34}}));
        CHECK(w[0] == 15.0f);     // q = 15 | 2 << 4 = 47: 0.25 * 4 * 15
        CHECK(w[64] == 14.5f);    // q = ql[0] >> 4 = 3: 0.25 * -2 * (3 - 32)
        CHECK(w[255] == -8.0f);   // q = 0, scale 1: 0.25 * 1 * -32
        CHECK(w[16] == 0.0f);     // scales[1] = 0
    }
}

TEST_CASE("the K-quant scale packing round-trips every 6-bit value in every position", "[quant]") {
    for (unsigned value = 0; value < 64; ++value)
        for (unsigned j = 0; j < 8; ++j) {
            KScales k{};
            k.scale[j] = static_cast<std::uint8_t>(value);
            k.min[7 - j] = static_cast<std::uint8_t>(63 - value);
            std::uint8_t packed[12];
            pack_k_scales(k, packed);
            CHECK(k_scale_field(packed, j, 0) == value);      // independent reader
            CHECK(k_scale_field(packed, 7 - j, 1) == 63 - value);
            const KScales back = unpack_k_scales(packed);
            CHECK(std::equal(back.scale, back.scale + 8, k.scale));
            CHECK(std::equal(back.min, back.min + 8, k.min));
        }
}

// ---------------------------------------------------------------------------
// 2. Every backend's decoders are exact; its dot products are within bounds.
// ---------------------------------------------------------------------------
TEMPLATE_TEST_CASE("every backend reproduces the exact dequantised weights (fused and panel paths)", "[quant][kernels]",
                   MOELAB_QUANT_TYPES) {
    using Block = TestType;
    constexpr std::size_t K = Block::kWeights;
    std::mt19937 rng(99);
    const std::size_t rows = 5, n_blocks = 3, cols = n_blocks * K;
    const auto blocks = random_blocks<Block>(rows * n_blocks, rng, true);
    const auto expected = dequantized(blocks);  // (rows, cols)
    AllBackends::each([&]<class B>(B backend) {
        DYNAMIC_SECTION(B::name) {
            // Fused: dot with the unit vector e_i picks weight i (w_i * 1 plus zeros: exact).
            std::vector<float> via_dot(rows * cols), unit(cols, 0.0f);
            for (std::size_t r = 0; r < rows; ++r)
                for (std::size_t i = 0; i < cols; ++i) {
                    unit[i] = 1.0f;
                    via_dot[r * cols + i] = kernels::dot(backend, blocks.data() + r * n_blocks, unit.data(), cols);
                    unit[i] = 0.0f;
                }
            // w_i * 1 + (+0) + ... is w_i exactly, except that a weight of -0
            // comes out +0 (IEEE: -0 + +0 = +0); so compare with ==, which
            // identifies the zeros, and bits everywhere else.
            for (std::size_t i = 0; i < via_dot.size(); ++i)
                if (expected[i] == 0.0f && via_dot[i] == 0.0f) via_dot[i] = expected[i];
            require_same_bits(via_dot, expected, std::string(B::name) + " dot");
            // Panel: matmul with the identity (n_tokens = cols) gives y[t, r] = W[r, t].
            std::vector<float> identity(cols * cols, 0.0f), y(cols * rows);
            for (std::size_t i = 0; i < cols; ++i) identity[i * cols + i] = 1.0f;
            kernels::matmul(backend, blocks.data(), rows, cols, identity.data(), cols, y.data(), rows);
            std::vector<float> via_matmul(rows * cols);
            for (std::size_t r = 0; r < rows; ++r)
                for (std::size_t t = 0; t < cols; ++t) via_matmul[r * cols + t] = y[t * rows + r];
            for (std::size_t i = 0; i < via_matmul.size(); ++i)  // the same signed zeros as above
                if (expected[i] == 0.0f && via_matmul[i] == 0.0f) via_matmul[i] = expected[i];
            require_same_bits(via_matmul, expected, std::string(B::name) + " matmul");
        }
    });
}

TEMPLATE_TEST_CASE("fused dot products stay within the derived bound of the exact sum", "[quant][kernels]",
                   MOELAB_QUANT_TYPES) {
    using Block = TestType;
    constexpr std::size_t K = Block::kWeights;
    std::mt19937 rng(7);
    std::uniform_real_distribution<float> dist(-1.0f, 1.0f);
    for (const std::size_t n_blocks : {1, 2, 3, 5, 8, 17, 64}) {
        const std::size_t n = n_blocks * K;
        const auto blocks = random_blocks<Block>(n_blocks, rng, true);
        const auto w = dequantized(blocks);
        for (const std::size_t x_offset : {0, 1, 3}) {        // x misaligned by 0, 4, 12 bytes
            for (const std::size_t w_offset : {0, 2, 6}) {    // blocks misaligned by 0, 2, 6 bytes
                std::vector<float> x_storage(n + x_offset);
                float* x = x_storage.data() + x_offset;
                for (std::size_t i = 0; i < n; ++i) x[i] = dist(rng);
                const OffsetBlocks<Block> stored(blocks, w_offset);
                double exact = 0, magnitude = 0;
                for (std::size_t i = 0; i < n; ++i) {
                    exact += static_cast<double>(w[i]) * x[i];
                    magnitude += std::abs(static_cast<double>(w[i]) * x[i]);
                }
                const double bound = gamma_n(static_cast<double>(n) + 1) * magnitude;
                const float reference = kernels::dot(backend::scalar{}, stored.blocks, x, n);
                AllBackends::each([&]<class B>(B backend) {
                    const float got = kernels::dot(backend, stored.blocks, x, n);
                    INFO(B::name << " " << dtype_name(Block::kDType) << " n = " << n << ", x offset " << x_offset
                                 << ", block offset " << w_offset << ": got " << got << ", exact " << exact
                                 << ", bound " << bound);
                    REQUIRE(std::abs(got - exact) <= bound);
                    REQUIRE(std::abs(double(got) - double(reference)) <= 2 * bound);
                });
            }
        }
    }
}

// ---------------------------------------------------------------------------
// 3. Determinism: a (row, token) result does not depend on the code path.
// ---------------------------------------------------------------------------
TEMPLATE_TEST_CASE("dot, matvec rows and matmul columns agree bit for bit, for any slice", "[quant][kernels]",
                   MOELAB_QUANT_TYPES) {
    using Block = TestType;
    constexpr std::size_t K = Block::kWeights;
    std::mt19937 rng(5);
    std::uniform_real_distribution<float> dist(-1.0f, 1.0f);
    // 3 blocks, and rows over 1,024 columns: the Highway matmul then sweeps
    // its columns in blocks (kernels/highway_tile.hpp, sweep_chunk).
    for (const std::size_t n_blocks : {std::size_t{3}, 1100 / K + 1}) {
        const std::size_t rows = 37, cols = n_blocks * K, tokens = 11;  // odd counts: every tile shape
        const auto blocks = random_blocks<Block>(rows * n_blocks, rng, true);
        std::vector<float> x(tokens * cols);
        for (float& v : x) v = dist(rng);
        AllBackends::each([&]<class B>(B backend) {
            DYNAMIC_SECTION(B::name << ", " << cols << " columns") {
                std::vector<float> all(tokens * rows);
                kernels::matmul(backend, blocks.data(), rows, cols, x.data(), tokens, all.data(), rows);
                for (std::size_t t = 0; t < tokens; ++t) {
                    std::vector<float> column(rows), by_matvec(rows), by_dot(rows);
                    for (std::size_t r = 0; r < rows; ++r) column[r] = all[t * rows + r];
                    kernels::matvec(backend, blocks.data(), rows, cols, x.data() + t * cols, by_matvec.data());
                    for (std::size_t r = 0; r < rows; ++r)
                        by_dot[r] = kernels::dot(backend, blocks.data() + r * n_blocks, x.data() + t * cols, cols);
                    // Labels built by append: GCC 12 warns (-Warray-bounds, a false
                    // positive) on a chain of operator+ over short strings here.
                    std::string label(B::name);
                    label.append(", token ").append(std::to_string(t));
                    require_same_bits(by_matvec, column, label + ": matvec vs matmul");
                    require_same_bits(by_dot, column, label + ": dot vs matmul");
                }
                // Rows [3, 3 + 13) and tokens [2, 2 + 5) alone.
                std::vector<float> part(5 * 13);
                kernels::matmul(backend, blocks.data() + 3 * n_blocks, 13, cols, x.data() + 2 * cols, 5, part.data(), 13);
                for (std::size_t t = 0; t < 5; ++t)
                    for (std::size_t r = 0; r < 13; ++r)
                        REQUIRE(std::bit_cast<std::uint32_t>(part[t * 13 + r]) ==
                                std::bit_cast<std::uint32_t>(all[(t + 2) * rows + r + 3]));
            }
        });
    }
}

// ---------------------------------------------------------------------------
// 4. Quantizers.
// ---------------------------------------------------------------------------
namespace {

// Inputs of several shapes: uniform, heavy-tailed (one outlier per block),
// all positive, all negative, constant, zero.
std::vector<std::vector<float>> quantizer_inputs(std::size_t n) {
    std::mt19937 rng(11);
    std::uniform_real_distribution<float> uniform(-1.0f, 1.0f);
    std::normal_distribution<float> normal(0.0f, 0.02f);
    std::vector<std::vector<float>> out(6, std::vector<float>(n));
    for (std::size_t i = 0; i < n; ++i) {
        out[0][i] = uniform(rng);
        out[1][i] = i % 97 == 5 ? 0.5f : normal(rng);
        out[2][i] = std::abs(uniform(rng)) * 3.0f;
        out[3][i] = -std::abs(uniform(rng)) * 0.01f - 0.001f;
        out[4][i] = 0.125f;
        out[5][i] = 0.0f;
    }
    return out;
}

// |x - w| <= step / 2 up to the rounding of the quotient x / step and of the
// dequantised value: a few units in the last place of the operands.
double slack(double step, double x_max) { return 4 * u * (step + x_max); }

}  // namespace

TEST_CASE("quantizers round to the nearest grid point, with the grid no coarser than stated", "[quant]") {
    constexpr std::size_t n = 2048;
    // A scale rounded up to the next f16 grows by less than one f16 step:
    // 2^-10 relative for normal f16, 2^-24 absolute for subnormal ones.
    constexpr double f16_up = 1.0 + 1.0 / 1024, kF16Spacing = 1.0 / (1 << 24);
    for (const auto& x : quantizer_inputs(n)) {
        double x_max = 0;
        for (float v : x) x_max = std::max(x_max, double(std::abs(v)));
        SECTION("q8_0: |x - w| <= d / 2, d <= max|x| / 127 rounded up to f16") {
            std::vector<block_q8_0> q(n / 32);
            quantize_row(DType::q8_0, x.data(), n, reinterpret_cast<std::byte*>(q.data()));
            const auto w = dequantized(q);
            for (std::size_t b = 0; b < q.size(); ++b) {
                const double d = f16_to_f32(q[b].d);
                double amax = 0;
                for (std::size_t i = 0; i < 32; ++i) amax = std::max(amax, double(std::abs(x[32 * b + i])));
                REQUIRE(d <= amax / 127 * f16_up + kF16Spacing);
                for (std::size_t i = 0; i < 32; ++i) REQUIRE(std::abs(x[32 * b + i] - w[32 * b + i]) <= d / 2 + slack(d, x_max));
            }
        }
        SECTION("q4_0: |x - w| <= d / 2, d <= max(max x / 7, -min x / 8) rounded up") {
            std::vector<block_q4_0> q(n / 32);
            quantize_row(DType::q4_0, x.data(), n, reinterpret_cast<std::byte*>(q.data()));
            const auto w = dequantized(q);
            for (std::size_t b = 0; b < q.size(); ++b) {
                const double d = f16_to_f32(q[b].d);
                double hi = 0, lo = 0;
                for (std::size_t i = 0; i < 32; ++i) hi = std::max(hi, double(x[32 * b + i])), lo = std::min(lo, double(x[32 * b + i]));
                REQUIRE(d <= std::max(hi / 7, -lo / 8) * f16_up + kF16Spacing);
                for (std::size_t i = 0; i < 32; ++i) REQUIRE(std::abs(x[32 * b + i] - w[32 * b + i]) <= d / 2 + slack(d, x_max));
            }
        }
        auto check_k = [&]<class Block>(Block, int levels) {
            // Per sub-block j (range r_j = max x - min(0, min x)), from k_scales.hpp's construction:
            //   step_j = d sc_j <= (r_j + 3 dmin) / (levels - 1) + 2 d    (min up to 2 steps lower, scale up to 1 coarser)
            //   d <= max_j (r_j + dmin) / (levels - 1) / 63, rounded up to f16
            //   |x - w| <= step_j / 2                                     (the grid covers the sub-block)
            std::vector<Block> q(n / 256);
            quantize_row(Block::kDType, x.data(), n, reinterpret_cast<std::byte*>(q.data()));
            const auto w = dequantized(q);
            for (std::size_t b = 0; b < q.size(); ++b) {
                const double d = f16_to_f32(q[b].d), dmin = f16_to_f32(q[b].dmin);
                const KScales k = unpack_k_scales(q[b].scales);
                double max_needed = 0;
                for (std::size_t j = 0; j < 8; ++j) {
                    double hi = x[256 * b + 32 * j], lo = 0;
                    for (std::size_t l = 0; l < 32; ++l) hi = std::max(hi, double(x[256 * b + 32 * j + l])), lo = std::min(lo, double(x[256 * b + 32 * j + l]));
                    const double range = hi - lo, step = d * k.scale[j];
                    max_needed = std::max(max_needed, (range + dmin) / (levels - 1));
                    INFO(dtype_name(Block::kDType) << " block " << b << " sub-block " << j << ": step " << step << ", range " << range);
                    REQUIRE(step <= (range + 3 * dmin) / (levels - 1) + 2 * d + 1e-30);
                    for (std::size_t l = 0; l < 32; ++l) {
                        const std::size_t i = 256 * b + 32 * j + l;
                        REQUIRE(std::abs(x[i] - w[i]) <= step / 2 + slack(step + dmin * k.min[j], x_max));
                    }
                }
                REQUIRE(d <= max_needed / 63 * f16_up + kF16Spacing);
            }
        };
        SECTION("q4_k") { check_k(block_q4_k{}, 16); }
        SECTION("q5_k") { check_k(block_q5_k{}, 32); }
        SECTION("q6_k: |x - w| <= d sc / 2, d sc <= step needed + d") {
            std::vector<block_q6_k> q(n / 256);
            quantize_row(DType::q6_k, x.data(), n, reinterpret_cast<std::byte*>(q.data()));
            const auto w = dequantized(q);
            for (std::size_t b = 0; b < q.size(); ++b) {
                const double d = f16_to_f32(q[b].d);
                double max_needed = 0;
                for (std::size_t s = 0; s < 16; ++s) {
                    double hi = 0, lo = 0;
                    for (std::size_t l = 0; l < 16; ++l) hi = std::max(hi, double(x[256 * b + 16 * s + l])), lo = std::min(lo, double(x[256 * b + 16 * s + l]));
                    const double needed = std::max(hi / 31, -lo / 32), step = d * q[b].scales[s];
                    max_needed = std::max(max_needed, needed);
                    REQUIRE(step <= needed + d + 1e-30);
                    for (std::size_t l = 0; l < 16; ++l) {
                        const std::size_t i = 256 * b + 16 * s + l;
                        REQUIRE(std::abs(x[i] - w[i]) <= step / 2 + slack(step, x_max));
                    }
                }
                REQUIRE(d <= max_needed / 127 * f16_up + kF16Spacing);
            }
        }
    }
}

TEST_CASE("quantize_row and dequantize_row refuse rows that are not whole blocks", "[quant]") {
    std::vector<float> x(300, 0.5f);
    std::vector<std::byte> out(1024);
    REQUIRE_THROWS_WITH(quantize_row(DType::q4_k, x.data(), 300, out.data()),
                        Catch::Contains("300 weights") && Catch::Contains("q4_k"));
    REQUIRE_THROWS_WITH(dequantize_row(DType::q8_0, out.data(), 33, x.data()), Catch::Contains("q8_0"));
}

TEST_CASE("quantized tensors round-trip through a GGUF file", "[quant][gguf]") {
    const test::TempDir dir("quant-gguf");
    const std::size_t rows = 6, cols = 512;
    std::vector<float> x(rows * cols);
    std::mt19937 rng(3);
    std::uniform_real_distribution<float> dist(-0.1f, 0.1f);
    for (float& v : x) v = dist(rng);
    const std::vector<DType> types = {DType::q8_0, DType::q4_0, DType::q4_k, DType::q5_k, DType::q6_k};
    io::GGUFWriter writer;
    writer.add_string("general.architecture", "test");
    std::vector<std::vector<std::byte>> written;
    for (const DType t : types) {
        std::vector<std::byte> bytes(rows * row_bytes(t, cols));
        for (std::size_t r = 0; r < rows; ++r) quantize_row(t, x.data() + r * cols, cols, bytes.data() + r * row_bytes(t, cols));
        written.push_back(bytes);
        writer.add_tensor(std::string("w.") + std::string(dtype_name(t)), {rows, cols}, t,
                          [bytes](std::byte* out, std::size_t n) { std::memcpy(out, bytes.data(), n); });
    }
    const auto path = dir.path() / "quant.gguf";
    writer.write(path);
    const io::GGUFFile file(path);
    for (std::size_t k = 0; k < types.size(); ++k) {
        const io::TensorEntry* e = file.find_tensor("w." + std::string(dtype_name(types[k])));
        REQUIRE(e != nullptr);
        INFO(e->name << " stored as " << e->type_name);
        REQUIRE(e->dtype == types[k]);
        REQUIRE(e->shape == std::vector<std::uint64_t>{rows, cols});
        REQUIRE(e->nbytes == written[k].size());
        REQUIRE(std::memcmp(e->data, written[k].data(), e->nbytes) == 0);
        // Read back through the model's row reader: the dequantised values of what was written.
        const WeightMatrix m{types[k], e->data, rows, cols};
        std::vector<float> row(cols), expected(cols);
        for (std::size_t r = 0; r < rows; ++r) {
            ops::row_to_f32(m, r, row.data());
            dequantize_row(types[k], written[k].data() + r * row_bytes(types[k], cols), cols, expected.data());
            require_same_bits(row, expected, e->name);
        }
    }
}

// ---------------------------------------------------------------------------
// Hostile quantized files: llama.cpp's Q8_0 fixture with one tensor info
// patched (type id, row length, size) or the file cut short. Each must give a
// moelab::Error naming the file, the tensor and the problem.
// ---------------------------------------------------------------------------
namespace {

// Byte offset of the first dimension (ne[0]) in the tensor info of `name`:
// the info is u64 name length, the name, u32 n_dims, u64 ne[n_dims], u32 type.
std::size_t tensor_info_ne0(const std::vector<std::byte>& file, const std::string& name) {
    std::vector<std::byte> needle(8);
    const std::uint64_t length = name.size();
    std::memcpy(needle.data(), &length, 8);  // little-endian host (x86), as GGUF
    for (const char c : name) needle.push_back(static_cast<std::byte>(c));
    const auto at = std::search(file.begin(), file.end(), needle.begin(), needle.end());
    REQUIRE(at != file.end());
    return static_cast<std::size_t>(at - file.begin()) + needle.size() + 4;
}

std::vector<std::byte> read_bytes(const std::filesystem::path& path) {
    std::ifstream in(path, std::ios::binary);
    std::vector<char> chars((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    std::vector<std::byte> out(chars.size());
    std::memcpy(out.data(), chars.data(), chars.size());
    return out;
}

}  // namespace

TEST_CASE("hostile quantized GGUF tensors give clear errors", "[quant][hostile][fixtures]") {
    MOELAB_REQUIRE_FIXTURES();
    const test::TempDir dir("quant-hostile");
    const auto original = read_bytes(test::fixtures_dir() / "models/qwen3-moe-256-q8_0.gguf");
    REQUIRE(!original.empty());
    const std::string name = "blk.0.attn_q.weight";  // Q8_0, ne = [256, 256] (n_head 4 x head_dim 64 rows)
    const std::size_t ne0 = tensor_info_ne0(original, name);
    auto u64_at = [](const std::vector<std::byte>& b, std::size_t at) {
        std::uint64_t v;
        std::memcpy(&v, b.data() + at, 8);
        return v;
    };
    auto u32_at = [](const std::vector<std::byte>& b, std::size_t at) {
        std::uint32_t v;
        std::memcpy(&v, b.data() + at, 4);
        return v;
    };
    REQUIRE(u32_at(original, ne0 - 4) == 2);                             // n_dims
    REQUIRE(u64_at(original, ne0) == 256);                               // ne[0]
    REQUIRE(u64_at(original, ne0 + 8) == 256);                           // ne[1]
    REQUIRE(u32_at(original, ne0 + 16) == 8);                            // type Q8_0
    auto patched = original;
    auto load = [&] { return Model::load(dir.write("model.gguf", patched)); };

    SECTION("the unpatched file loads") { CHECK_NOTHROW(load()); }
    SECTION("a known type moelab cannot compute with (Q5_0: 22-byte blocks, fits in the Q8_0 data)") {
        const std::uint32_t q5_0 = 6;
        std::memcpy(patched.data() + ne0 + 16, &q5_0, 4);
        test::require_error(load, {"model.gguf", "tensor 'blk.0.attn_q.weight'", "Q5_0", "not supported"});
    }
    SECTION("a type id ggml never had") {
        const std::uint32_t unknown = 77;
        std::memcpy(patched.data() + ne0 + 16, &unknown, 4);
        test::require_error(load, {"model.gguf", "tensor 'blk.0.attn_q.weight'", "unknown ggml type id 77"});
    }
    SECTION("a row length that is not a whole number of blocks") {
        const std::uint64_t cols = 100;  // Q8_0 blocks hold 32
        std::memcpy(patched.data() + ne0, &cols, 8);
        test::require_error(load, {"model.gguf", "tensor 'blk.0.attn_q.weight'", "ne[0] = 100",
                                   "not a multiple of Q8_0's block of 32"});
    }
    SECTION("a shape whose bytes exceed the tensor's slot (F32 needs 4 x 256 x 256 > 256 x 8 x 34 bytes)") {
        const std::uint32_t f32 = 0;
        std::memcpy(patched.data() + ne0 + 16, &f32, 4);
        test::require_error(load, {"model.gguf", "blk.0.attn_q.weight", "overlap"});
    }
    SECTION("more rows than the file holds") {
        const std::uint64_t rows = std::uint64_t{1} << 24;  // 2^24 rows x 8 blocks x 34 bytes = 4.5 GB
        std::memcpy(patched.data() + ne0 + 8, &rows, 8);
        test::require_error(load, {"model.gguf", "blk.0.attn_q.weight"});
    }
    SECTION("the file cut inside the last tensor's blocks") {
        patched.resize(original.size() - 1000);
        test::require_error(load, {"model.gguf", "past the end"});
    }
}

// ---------------------------------------------------------------------------
// 5. The fixtures: llama.cpp's quantized models.
// ---------------------------------------------------------------------------
TEMPLATE_TEST_CASE("quantized fixture models match llama.cpp's exact-dequantisation logits", "[quant][fixtures]",
                   MOELAB_TEST_BACKENDS) {
    MOELAB_REQUIRE_FIXTURES();
    ThreadPool pool(2);
    std::size_t compared = 0;
    const nlohmann::json manifest = test::manifest();  // a named object: a range-for over a temporary's member dangles
    for (const auto& entry : manifest["models"]) {
        if (entry["cases"].empty() || !entry["cases"][0].contains("logits_exact")) continue;
        const std::string name = entry["name"];
        const double tolerance = entry["tolerance"]["max_abs_logit_vs_exact"];
        const Model model = Model::load(test::fixtures_dir() / entry["gguf"].get<std::string>());
        const std::size_t V = model.config().n_vocab;
        REQUIRE(V == entry["n_vocab"].get<std::size_t>());
        Transformer<TestType> transformer(model, pool);
        for (const auto& c : entry["cases"]) {
            const auto tokens = c["tokens"].get<std::vector<std::int32_t>>();
            const auto exact = test::read_f32(test::fixtures_dir() / c["logits_exact"].get<std::string>());
            const auto llama_quantized = test::read_f32(test::fixtures_dir() / c["logits"].get<std::string>());
            REQUIRE(exact.size() == tokens.size() * V);
            REQUIRE(llama_quantized.size() == tokens.size() * V);
            std::vector<float> logits(tokens.size() * V);
            transformer.reset();
            transformer.forward(tokens, logits.data());
            const auto vs_exact = test::max_abs_diff(logits.data(), exact.data(), logits.size());
            const auto vs_llama = test::max_abs_diff(logits.data(), llama_quantized.data(), logits.size());
            std::size_t top1_agree = 0;
            for (std::size_t t = 0; t < tokens.size(); ++t)
                top1_agree += test::argmax(logits.data() + t * V, V) == test::argmax(llama_quantized.data() + t * V, V);
            WARN(name << " (" << TestType::name << ", " << tokens.size() << " tokens): max |diff| vs logits_exact "
                      << vs_exact.value << " (tolerance " << tolerance << "), vs llama.cpp's quantized logits "
                      << vs_llama.value << ", top-1 agreement with them " << top1_agree << "/" << tokens.size());
            INFO(name << " (" << TestType::name << ", " << c["logits_exact"] << "): " << test::describe(vs_exact, V));
            CHECK(vs_exact.value <= tolerance);
            ++compared;
        }
    }
    REQUIRE(compared > 0);
}

TEMPLATE_TEST_CASE("quantized models: prefill in one batch and token-by-token decode agree", "[quant][fixtures]",
                   MOELAB_TEST_BACKENDS) {
    MOELAB_REQUIRE_FIXTURES();
    ThreadPool pool(2);
    std::size_t compared = 0;
    const nlohmann::json manifest = test::manifest();  // a named object: a range-for over a temporary's member dangles
    for (const auto& entry : manifest["models"]) {
        if (entry["cases"].empty() || !entry["cases"][0].contains("logits_exact")) continue;
        const double tolerance = entry["tolerance"]["max_abs_logit_vs_exact"];
        const Model model = Model::load(test::fixtures_dir() / entry["gguf"].get<std::string>());
        const std::size_t V = model.config().n_vocab;
        const auto tokens = entry["cases"][0]["tokens"].get<std::vector<std::int32_t>>();
        Transformer<TestType> batch(model, pool), stepwise(model, pool);
        std::vector<float> all(tokens.size() * V), one(V);
        batch.forward(tokens, all.data());
        for (std::size_t t = 0; t < tokens.size(); ++t) {
            stepwise.forward(std::span(&tokens[t], 1), one.data());
            const auto diff = test::max_abs_diff(one.data(), all.data() + t * V, V);
            INFO(entry["name"].get<std::string>() << " position " << t << ": " << test::describe(diff, V));
            // Both are within `tolerance` of the same reference, hence within 2x of each other.
            CHECK(diff.value <= 2 * tolerance);
        }
        ++compared;
    }
    REQUIRE(compared > 0);
}
