// SPDX-License-Identifier: MIT
// The opt-in int8-activation products (quant/q8_activations.hpp,
// kernels/highway_int8.hpp, ops::ActivationPrecision::int8):
//  1. every block type's integer form gives dequantize_block's weights, bit
//     for bit (up to the sign of a zero);
//  2. activation quantization: each value within half a step of the input,
//     the block maximum on +-127, the block sums as stated, NaN/inf poison
//     the block instead of producing garbage;
//  3. the scalar specification is within the derived bound of the same sum
//     computed in double from the dequantised weights and activations;
//  4. every backend that has int8 products agrees with the specification
//     within twice the bound for any summation order (below), over a sweep of
//     lengths (odd block counts too), row counts and batch sizes; dot, matvec
//     and matmul agree bit for bit;
//  5. ops::linear: int8 results are bitwise the same for any thread count,
//     and the mode changes nothing for weights that are not quantized;
//  6. the fixtures: a quantized model in int8 mode is bitwise identical for
//     any thread count, and an unquantized model is bitwise the f32 mode;
//     the distance to llama.cpp's logits is printed (WARN), not bounded
//     (rounding activations is a different computation: docs/quantization.md).
//
// Bound (Higham, Thm 3.1; u = 2^-24, gamma(n) = n u / (1 - n u)). The
// integers are exact. The specification forms per group g the products
// (s_g d_b) * isum_g (two roundings) and o_g * dsum_g (two roundings, dsum
// itself one more), and sums the m groups of each kind: each result is within
// gamma(m + 3) * sum_g (|s_g d_b isum_g| + |o_g d_b sum_g|) of the exact value.
// A backend may split each group into partial integer sums (SIMD lanes of 4
// products) and scale and add those separately: then the bound has n / 4
// terms and the magnitudes product by product (Exact::bound_any below).
#include <catch2/catch.hpp>

#include <array>
#include <bit>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include "moelab/ops/linear.hpp"
#include "moelab/quant/interleaved.hpp"
#include "moelab/quant/q8_activations.hpp"
#include "moelab/quant/quant.hpp"
#include "support/backends.hpp"
#include "support/compare.hpp"
#include "support/error_bounds.hpp"
#include "support/fixtures.hpp"
#include "support/transformers.hpp"
#include "support/twin_models.hpp"

using namespace moelab;

namespace {

using test::gamma_n;  // support/error_bounds.hpp
using test::u;

#define MOELAB_INT8_TYPES block_q8_0, block_q4_0, block_q4_k, block_q5_k, block_q6_k

// Blocks from quantizing random normal weights (realistic scales), plus a
// few of random bytes with tame f16 scales (every bit pattern of the quants).
template <class Block>
std::vector<Block> random_blocks(std::size_t n_blocks, std::mt19937& rng) {
    std::normal_distribution<float> normal(0.0f, 1.0f);
    std::vector<float> w(n_blocks * Block::kWeights);
    for (float& v : w) v = normal(rng);
    std::vector<Block> blocks(n_blocks);
    quantize_row(Block::kDType, w.data(), w.size(), reinterpret_cast<std::byte*>(blocks.data()));
    for (std::size_t b = 0; b < n_blocks; b += 3) {  // every third block: random quant bytes, same scales
        auto* bytes = reinterpret_cast<std::uint8_t*>(&blocks[b]);
        std::vector<std::uint8_t> scales(sizeof(Block));
        std::memcpy(scales.data(), bytes, sizeof(Block));
        for (std::size_t k = 0; k < sizeof(Block); ++k) bytes[k] = static_cast<std::uint8_t>(rng());
        // keep the f16 fields (their offsets) from the quantized block
        if constexpr (std::is_same_v<Block, block_q6_k>) std::memcpy(bytes + 208, scales.data() + 208, 2);
        else if constexpr (std::is_same_v<Block, block_q4_k> || std::is_same_v<Block, block_q5_k>) std::memcpy(bytes, scales.data(), 4);
        else std::memcpy(bytes, scales.data(), 2);
    }
    return blocks;
}

std::vector<float> random_activations(std::size_t n, std::mt19937& rng) {
    std::normal_distribution<float> normal(0.0f, 1.0f);
    std::vector<float> x(n);
    for (std::size_t i = 0; i < n; ++i) x[i] = normal(rng) * (i % 97 == 0 ? 20.0f : 1.0f);  // a few outliers
    return x;
}

// The exact value of the specification's sum, in double, and two bounds:
//   bound      for the specification's order: m group terms of each kind,
//              gamma(m + 3) * sum_g (|s_g d isum_g| + |o_g d asum_g|);
//   bound_any  for any split of the groups into partial integer sums (SIMD
//              lanes hold sums of 4 products, each scaled and summed on its
//              own: at most n / 4 terms of each kind): gamma(n / 4 + 3) times
//              the same sum with |q_w q_x| and |q_x| taken product by product.
struct Exact {
    double value = 0, bound = 0, bound_any = 0;
};
template <class Block>
Exact exact_dot(const Block* w, Q8Row x, std::size_t n) {
    Exact e;
    std::size_t groups = 0;
    double magnitude = 0, magnitude_any = 0;
    for (std::size_t b = 0; b < n / Block::kWeights; ++b) {
        const auto block = integer_form(w[b]);
        constexpr std::size_t G = decltype(block)::kGroup;
        for (std::size_t g = 0; g < Block::kWeights / G; ++g, ++groups) {
            const std::size_t first = b * Block::kWeights + g * G;
            double isum = 0, asum = 0, isum_abs = 0, asum_abs = 0;
            for (std::size_t i = 0; i < G; ++i) {
                const double p = double(block.q[g * G + i]) * x.q[first + i];
                isum += p, asum += x.q[first + i];
                isum_abs += std::abs(p), asum_abs += std::abs(double(x.q[first + i]));
            }
            const double s = std::abs(double(block.scale[g]) * x.d[first / 32]);
            const double o = std::abs(double(block.offset[g]) * x.d[first / 32]);
            e.value += double(block.scale[g]) * x.d[first / 32] * isum - double(block.offset[g]) * x.d[first / 32] * asum;
            magnitude += s * std::abs(isum) + o * std::abs(asum);
            magnitude_any += s * isum_abs + o * asum_abs;
        }
    }
    e.bound = gamma_n(double(groups) + 3) * magnitude;
    e.bound_any = gamma_n(double(n) / 4 + 3) * magnitude_any;
    return e;
}

}  // namespace

// ---------------------------------------------------------------------------
// 1-2. The integer form and the activation format.
// ---------------------------------------------------------------------------
TEMPLATE_TEST_CASE("integer_form gives dequantize_block's weights", "[int8]", MOELAB_INT8_TYPES) {
    std::mt19937 rng(21);
    const auto blocks = random_blocks<TestType>(300, rng);
    for (const TestType& b : blocks) {
        float ref[TestType::kWeights];
        dequantize_block(b, ref);
        const auto f = integer_form(b);
        constexpr std::size_t G = decltype(f)::kGroup;
        for (std::size_t i = 0; i < TestType::kWeights; ++i) {
            const float w = f.scale[i / G] * static_cast<float>(f.q[i]) - f.offset[i / G];
            INFO("weight " << i << ": integer form " << w << ", dequantize_block " << ref[i]);
            // The same bits, except that s q - o = 0 is +0 where s (q - 32) may be -0.
            REQUIRE((std::bit_cast<std::uint32_t>(w) == std::bit_cast<std::uint32_t>(ref[i]) || (w == 0 && ref[i] == 0)));
        }
    }
}

TEST_CASE("quantize_activations: half a step, the maximum on 127, the stated sums", "[int8]") {
    std::mt19937 rng(5);
    const std::size_t n = 32 * 40;
    std::vector<float> x = random_activations(n, rng);
    for (std::size_t i = 64; i < 96; ++i) x[i] = 0.0f;  // an all-zero block
    x[200] = -1e30f;                                     // a huge one
    Q8Activations a;
    quantize_activations(x.data(), 2, n / 2, a);  // two tokens of n / 2
    REQUIRE(a.n_tokens == 2);
    for (std::size_t b = 0; b < n / 32; ++b) {
        const float d = a.d[b];
        float amax = 0;
        int s0 = 0, s1 = 0;
        bool hit_127 = false;
        for (std::size_t i = 0; i < 32; ++i) {
            const std::size_t k = 32 * b + i;
            amax = std::max(amax, std::abs(x[k]));
            REQUIRE(a.q[k] >= -127);  // never -128: |q| fits the unsigned operand of the products
            // |x - d q| <= d / 2, plus the rounding of x / d (one ulp of |x / d| <= 127, in units of d)
            INFO("block " << b << " value " << i << ": x " << x[k] << ", d " << d << ", q " << int(a.q[k]));
            REQUIRE(std::abs(double(x[k]) - double(d) * a.q[k]) <= double(d) * (0.5 + 128 * u));
            hit_127 = hit_127 || std::abs(a.q[k]) == 127;
            (i < 16 ? s0 : s1) += a.q[k];
        }
        REQUIRE(d == amax / 127.0f);
        REQUIRE(hit_127 == (amax > 0));
        REQUIRE(a.dsum16[2 * b] == d * static_cast<float>(s0));
        REQUIRE(a.dsum16[2 * b + 1] == d * static_cast<float>(s1));
        REQUIRE(a.dsum32[b] == d * static_cast<float>(s0 + s1));
        REQUIRE(a.qsum32[b] == s0 + s1);
    }
    REQUIRE(a.d[2] == 0.0f);  // the zero block

    x[5] = std::numeric_limits<float>::infinity();
    x[300] = std::numeric_limits<float>::quiet_NaN();
    quantize_activations(x.data(), 1, n, a);
    REQUIRE(std::isnan(a.d[0]));
    REQUIRE(std::isnan(a.dsum32[0]));
    REQUIRE(a.qsum32[0] == 0);  // the poisoned block's q are 0
    REQUIRE(std::isnan(a.d[300 / 32]));
    REQUIRE(!std::isnan(a.d[1]));
}

TEST_CASE("quantize_activations: q_kquant is q with each 128 per token in quarters 0, 2, 1, 3", "[int8]") {
    std::mt19937 rng(6);
    // 2 tokens of 352 = 2 x 128 + 96: whole groups are reordered, the 96-value tail is copied as it is.
    const std::size_t cols = 352;
    const std::vector<float> x = random_activations(2 * cols, rng);
    Q8Activations a;
    quantize_activations(x.data(), 2, cols, a);
    for (std::size_t t = 0; t < 2; ++t)
        for (std::size_t i = 0; i < cols; ++i) {
            const std::size_t group = i / 128, quarter = i % 128 / 32, in_quarter = i % 32;
            const std::size_t source_quarter = group < cols / 128 ? std::array{0, 2, 1, 3}[quarter] : quarter;
            const std::size_t from = t * cols + 128 * group + 32 * source_quarter + in_quarter;
            INFO("token " << t << ", value " << i);
            REQUIRE(a.q_kquant[t * cols + i] == a.q[from]);
            REQUIRE(a.rows()[t].q_kquant[i] == a.q[from]);
        }
}

TEST_CASE("quantize_activation_rows: any split of the rows, quantize_activations' bytes", "[int8]") {
    std::mt19937 rng(7);
    const std::size_t n_tokens = 9, cols = 384;
    std::vector<float> x = random_activations(n_tokens * cols, rng);
    for (std::size_t i = 32; i < 64; ++i) x[i] = -0.0f;             // a block of negative zeros: d = 0
    for (std::size_t i = 96; i < 128; ++i) x[i] = 1e-45f * float(i); // subnormals
    x[500] = -std::numeric_limits<float>::infinity();
    Q8Activations whole, split;
    quantize_activations(x.data(), n_tokens, cols, whole);
    REQUIRE(whole.d[1] == 0.0f);
    REQUIRE(std::isnan(whole.d[500 / 32]));
    resize_activations(split, n_tokens, cols, /*kquant_order=*/true);
    for (const auto& [begin, end] : {std::pair<std::size_t, std::size_t>{5, 9}, {0, 2}, {2, 5}})  // out of order
        quantize_activation_rows(x.data(), begin, end, split);
    auto same = [](const auto& a, const auto& b) {
        return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(a[0])) == 0;
    };
    REQUIRE(same(whole.q, split.q));
    REQUIRE(same(whole.q_kquant, split.q_kquant));
    REQUIRE(same(whole.d, split.d));
    REQUIRE(same(whole.dsum16, split.dsum16));
    REQUIRE(same(whole.dsum32, split.dsum32));
    REQUIRE(same(whole.qsum32, split.qsum32));
}

TEMPLATE_TEST_CASE("ops::round_for: rounded by a pool or on one thread, the same bytes", "[int8][bf16]", MOELAB_TEST_BACKENDS) {
    std::mt19937 rng(8);
    const std::size_t cols = 1024, n_tokens = ops::kParallelRoundingValues / cols + 3;  // above the threshold
    const auto x = random_activations(n_tokens * cols, rng);
    const WeightMatrix q4k{DType::q4_k, nullptr, 16, cols}, bf16_w{DType::bf16, nullptr, 16, cols};  // read for their dtypes only
    using P = ops::ActivationPrecision;
    for (const P p : {P::int8, P::bf16}) {
        ops::RoundedActivations alone, pooled;
        ThreadPool pool(3);
        const ops::ProductInput a = ops::round_for(TestType{}, p, {&q4k, &bf16_w}, x.data(), n_tokens, cols, alone);
        const ops::ProductInput b = ops::round_for(TestType{}, p, {&q4k, &bf16_w}, x.data(), n_tokens, cols, pooled, &pool);
        REQUIRE((a.x_q8.q != nullptr) == (b.x_q8.q != nullptr));
        REQUIRE((a.x_bf16 != nullptr) == (b.x_bf16 != nullptr));
        REQUIRE((a.x_q8.q != nullptr) == ops::uses_int8(TestType{}, q4k, p));
        REQUIRE((a.x_bf16 != nullptr) == ops::uses_bf16(TestType{}, bf16_w, p));
        if (a.x_q8.q) {
            REQUIRE(std::memcmp(alone.int8.q.data(), pooled.int8.q.data(), n_tokens * cols) == 0);
            REQUIRE(std::memcmp(alone.int8.q_kquant.data(), pooled.int8.q_kquant.data(), n_tokens * cols) == 0);
            REQUIRE(std::memcmp(alone.int8.d.data(), pooled.int8.d.data(), n_tokens * cols / 32 * 4) == 0);
            REQUIRE(std::memcmp(alone.int8.dsum16.data(), pooled.int8.dsum16.data(), n_tokens * cols / 16 * 4) == 0);
        }
        if (a.x_bf16) REQUIRE(std::memcmp(a.x_bf16, b.x_bf16, n_tokens * cols * sizeof(bf16)) == 0);
    }
}

// ---------------------------------------------------------------------------
// 3-4. The products.
// ---------------------------------------------------------------------------
TEMPLATE_TEST_CASE("the int8 specification is within the derived bound of the exact sum", "[int8]", MOELAB_INT8_TYPES) {
    std::mt19937 rng(8);
    for (const std::size_t n_blocks : {1u, 2u, 3u, 7u, 16u, 33u}) {
        const std::size_t n = n_blocks * TestType::kWeights;
        const auto w = random_blocks<TestType>(n_blocks, rng);
        const auto x = random_activations(n, rng);
        Q8Activations a;
        quantize_activations(x.data(), 1, n, a);
        const Exact e = exact_dot(w.data(), a.rows()[0], n);
        const float got = kernels::dot(backend::scalar{}, w.data(), a.rows()[0], n);
        INFO(n << " weights: spec " << got << ", exact " << e.value << ", bound " << e.bound);
        CHECK(std::abs(double(got) - e.value) <= e.bound);
    }
}

TEMPLATE_TEST_CASE("every backend's int8 products agree with the specification", "[int8][kernels]", MOELAB_INT8_TYPES) {
    using Block = TestType;
    std::mt19937 rng(13);
    std::size_t backends_with_int8 = 0;
    test::AllBackends::each([&](auto backend) {
        using Backend = decltype(backend);
        if constexpr (ops::has_int8_product<Backend, Block>) {
            ++backends_with_int8;
            for (const std::size_t n_blocks : {1u, 2u, 3u, 5u, 8u, 9u, 64u + 1u}) {
                const std::size_t cols = n_blocks * Block::kWeights;
                for (const std::size_t rows : {1u, 3u, 4u, 5u, 9u}) {
                    const std::size_t n_tokens = 9;  // Highway's matmul tiles 4 tokens: two tiles and a tail
                    const auto w = random_blocks<Block>(rows * n_blocks, rng);
                    const auto x = random_activations(n_tokens * cols, rng);
                    Q8Activations a;
                    quantize_activations(x.data(), n_tokens, cols, a);
                    std::vector<float> y_matmul(n_tokens * rows), y_matvec(rows), y_spec(rows);
                    kernels::matmul(backend, w.data(), rows, cols, a.rows(), n_tokens, y_matmul.data(), rows);
                    for (std::size_t t = 0; t < n_tokens; ++t) {
                        kernels::matvec(backend, w.data(), rows, cols, a.rows()[t], y_matvec.data());
                        kernels::matvec(backend::scalar{}, w.data(), rows, cols, a.rows()[t], y_spec.data());
                        for (std::size_t r = 0; r < rows; ++r) {
                            const Exact e = exact_dot(w.data() + r * n_blocks, a.rows()[t], cols);
                            INFO(Backend::name << ": " << rows << " x " << cols << ", token " << t << ", row " << r
                                               << ": backend " << y_matvec[r] << ", spec " << y_spec[r] << ", exact "
                                               << e.value << ", bound " << e.bound_any);
                            REQUIRE(std::abs(double(y_matvec[r]) - double(y_spec[r])) <= 2 * e.bound_any);
                            REQUIRE(std::bit_cast<std::uint32_t>(y_matmul[t * rows + r]) ==
                                    std::bit_cast<std::uint32_t>(y_matvec[r]));
                            const float one = kernels::dot(backend, w.data() + r * n_blocks, a.rows()[t], cols);
                            REQUIRE(std::bit_cast<std::uint32_t>(one) == std::bit_cast<std::uint32_t>(y_matvec[r]));
                        }
                    }
                }
            }
        }
    });
    REQUIRE(backends_with_int8 >= 1);  // the scalar specification, at least
    WARN(backends_with_int8 << " backend(s) in this build have int8 products for " << dtype_name(Block::kDType));
}

// Rows interleaved 16 at a time (quant/interleaved.hpp): the same integers,
// the scales applied per group to 16 rows at once, so the same bound.
TEMPLATE_TEST_CASE("interleaved products agree with the specification; matvec and matmul bit for bit",
                   "[int8][kernels]", block_q4_k_x16, block_q8_0_x16) {
    using X16 = TestType;
    using Block = typename X16::Block;
    std::mt19937 rng(19);
    std::size_t backends_with_x16 = 0;
    test::AllBackends::each([&](auto backend) {
        using Backend = decltype(backend);
        if constexpr (ops::has_int8_x16_product<Backend, X16>) {
            ++backends_with_x16;
            for (const std::size_t n_x16 : {1u, 2u, 3u, 5u, 8u, 9u}) {  // Q8_0: 5 and 9 leave a chunk after the 4-chunk steps
                const std::size_t cols = n_x16 * X16::kWeights, n_blocks = cols / Block::kWeights;
                for (const std::size_t rows : {16u, 32u, 35u}) {  // 35: two groups and 3 rows left in the file's layout
                    const std::size_t n_tokens = 9;  // tiles of 4 tokens: two tiles and a tail
                    const auto w = random_blocks<Block>(rows * n_blocks, rng);
                    const auto x16 = interleave_rows<X16>(w.data(), rows, cols);
                    const std::size_t groups = rows / 16;
                    REQUIRE(x16.size() == groups * n_x16);
                    const auto x = random_activations(n_tokens * cols, rng);
                    Q8Activations a;
                    quantize_activations(x.data(), n_tokens, cols, a);
                    std::vector<float> y_matmul(n_tokens * rows, -1.0f), y_matvec(rows, -1.0f), y_spec(rows);
                    kernels::matmul(backend, x16.data(), groups, cols, a.rows(), n_tokens, y_matmul.data(), rows);
                    for (std::size_t t = 0; t < n_tokens; ++t) {
                        kernels::matvec(backend, x16.data(), groups, cols, a.rows()[t], y_matvec.data());
                        kernels::matvec(backend::scalar{}, w.data(), rows, cols, a.rows()[t], y_spec.data());
                        for (std::size_t r = 0; r < groups * 16; ++r) {
                            const Exact e = exact_dot(w.data() + r * n_blocks, a.rows()[t], cols);
                            INFO(Backend::name << ": " << rows << " x " << cols << ", token " << t << ", row " << r
                                               << ": interleaved " << y_matvec[r] << ", spec " << y_spec[r]
                                               << ", exact " << e.value << ", bound " << e.bound_any);
                            REQUIRE(std::abs(double(y_matvec[r]) - double(y_spec[r])) <= 2 * e.bound_any);
                            REQUIRE(std::bit_cast<std::uint32_t>(y_matmul[t * rows + r]) ==
                                    std::bit_cast<std::uint32_t>(y_matvec[r]));
                        }
                        for (std::size_t r = groups * 16; r < rows; ++r)  // not written: the group products stop at 16 * groups
                            REQUIRE(y_matvec[r] == -1.0f);
                    }
                }
            }
        }
    });
    if (backends_with_x16 == 0) WARN("SKIPPED: no backend in this build has interleaved " << dtype_name(Block::kDType) << " products");
    else WARN(backends_with_x16 << " backend(s) in this build have interleaved " << dtype_name(Block::kDType) << " products");
}

// ---------------------------------------------------------------------------
// 5. ops::linear.
// ---------------------------------------------------------------------------
TEMPLATE_TEST_CASE("ops::linear in int8 mode: any thread count, same bits; plain weights unchanged", "[int8]",
                   MOELAB_TEST_BACKENDS) {
    std::mt19937 rng(17);
    const std::size_t rows = 200, cols = 512, n_tokens = 5;
    const auto blocks = random_blocks<block_q4_k>(rows * cols / 256, rng);
    const WeightMatrix quantized{DType::q4_k, reinterpret_cast<const std::byte*>(blocks.data()), rows, cols};
    std::vector<float> plain_values(rows * cols);
    for (float& v : plain_values) v = std::normal_distribution<float>(0.0f, 1.0f)(rng);
    const WeightMatrix plain{DType::f32, reinterpret_cast<const std::byte*>(plain_values.data()), rows, cols};
    const auto x = random_activations(n_tokens * cols, rng);

    auto run = [&](const WeightMatrix& w, std::size_t threads, ops::ActivationPrecision p, std::size_t tokens) {
        ThreadPool pool(threads);
        std::vector<float> y(tokens * rows);
        ops::linear(TestType{}, pool, w, x.data(), tokens, y.data(), p);
        return y;
    };
    using P = ops::ActivationPrecision;
    for (const std::size_t tokens : {std::size_t{1}, n_tokens}) {
        const auto one = run(quantized, 1, P::int8, tokens);
        for (const std::size_t threads : {2u, 3u})
            REQUIRE(std::memcmp(one.data(), run(quantized, threads, P::int8, tokens).data(), one.size() * 4) == 0);
        const auto f32 = run(plain, 2, P::f32, tokens);
        REQUIRE(std::memcmp(f32.data(), run(plain, 2, P::int8, tokens).data(), f32.size() * 4) == 0);
    }
}

TEMPLATE_TEST_CASE("ops::linear on interleaved rows: any thread count and any split of the rows, same bits", "[int8]",
                   MOELAB_TEST_BACKENDS) {
    std::mt19937 rng(23);
    const std::size_t rows = 200, cols = 512, n_tokens = 5;  // 12 groups of 16, 8 rows in the file's layout
    const auto x = random_activations(n_tokens * cols, rng);
    auto check = [&]<class X16>(X16) {
        using Block = typename X16::Block;
        INFO(dtype_name(Block::kDType));
        const auto blocks = random_blocks<Block>(rows * cols / Block::kWeights, rng);
        const auto x16 = interleave_rows<X16>(blocks.data(), rows, cols);
        {  // made on 3 threads: the same bytes
            ThreadPool pool(3);
            const auto threaded = interleave_rows<X16>(blocks.data(), rows, cols, [&](std::size_t n, auto&& f) {
                pool.parallel_ranges(n, 1, f);
            });
            REQUIRE(threaded.size() == x16.size());
            REQUIRE(std::memcmp(threaded.data(), x16.data(), x16.size() * sizeof(X16)) == 0);
        }
        const WeightMatrix plain{Block::kDType, reinterpret_cast<const std::byte*>(blocks.data()), rows, cols};
        WeightMatrix interleaved = plain;
        interleaved.interleaved = reinterpret_cast<const std::byte*>(x16.data());
        using P = ops::ActivationPrecision;
        for (const std::size_t tokens : {std::size_t{1}, n_tokens}) {
            auto run = [&](const WeightMatrix& w, std::size_t threads) {
                ThreadPool pool(threads);
                std::vector<float> y(tokens * rows);
                ops::linear(TestType{}, pool, w, x.data(), tokens, y.data(), P::int8);
                return y;
            };
            const auto one = run(interleaved, 1);
            for (const std::size_t threads : {2u, 3u})
                REQUIRE(std::memcmp(one.data(), run(interleaved, threads).data(), one.size() * 4) == 0);
            // Splits that cut groups (7, 40, 197) give the same bits as whole groups.
            ops::RoundedActivations scratch;
            const ops::ProductInput in = ops::round_for(TestType{}, P::int8, {&interleaved}, x.data(), tokens, cols, scratch);
            std::vector<float> split(tokens * rows);
            const std::size_t cuts[] = {0, 7, 40, 197, rows};
            for (std::size_t i = 0; i + 1 < std::size(cuts); ++i)
                ops::linear_rows(TestType{}, interleaved, cuts[i], cuts[i + 1], in, tokens, split.data(), rows);
            REQUIRE(std::memcmp(one.data(), split.data(), one.size() * 4) == 0);
            // The copy is used exactly where a backend has interleaved products.
            const bool same_as_plain = std::memcmp(one.data(), run(plain, 2).data(), one.size() * 4) == 0;
            CHECK(same_as_plain != ops::has_int8_x16_product<TestType, X16>);
        }
    };
    check(block_q4_k_x16{});
    check(block_q8_0_x16{});
}

// ---------------------------------------------------------------------------
// 6. Whole models.
// ---------------------------------------------------------------------------
TEMPLATE_TEST_CASE("int8 mode on the fixtures: thread-count invariant, a no-op without quantized weights",
                   "[int8][fixtures]", MOELAB_TEST_BACKENDS) {
    MOELAB_REQUIRE_FIXTURES();
    test::check_mode_on_twin_models<TestType>(
        ops::ActivationPrecision::int8, [](const Model& model) { return is_quantized(model.weights().layers[0].attn.wq.dtype); },
        [](const std::string& name, const nlohmann::json& c, const std::vector<float>& int8, const std::vector<float>&) {
            const auto exact = test::read_f32(test::fixtures_dir() / c["logits_exact"].get<std::string>());
            const auto llama = test::read_f32(test::fixtures_dir() / c["logits"].get<std::string>());
            REQUIRE(exact.size() == int8.size());
            WARN(name << " (" << TestType::name << ", int8 activations): max |diff| vs logits_exact "
                      << test::max_abs_diff(int8.data(), exact.data(), exact.size()).value
                      << "; llama.cpp's quantized path vs logits_exact "
                      << test::max_abs_diff(llama.data(), exact.data(), exact.size()).value);
        });
}

TEMPLATE_TEST_CASE("int8 mode on the Q4_K and Q8_0 fixtures with interleaved rows: thread-count invariant",
                   "[int8][fixtures]", MOELAB_TEST_BACKENDS) {
    MOELAB_REQUIRE_FIXTURES();
    const nlohmann::json manifest = test::manifest();
    std::size_t models = 0;
    for (const auto& entry : manifest["models"]) {
        const std::string name = entry["name"];
        if (name != "qwen3-moe-256-q4_k_m" && name != "qwen3-moe-256-q8_0") continue;
        ++models;
        Model model = Model::load(test::fixtures_dir() / entry["gguf"].get<std::string>());
        const auto tokens = entry["cases"][1]["tokens"].get<std::vector<std::int32_t>>();
        const auto file_layout = test::prompt_logits<TestType>(model, tokens, 2, ops::ActivationPrecision::int8);
        const std::size_t added = model.interleave_for_int8();
        REQUIRE(added > 0);  // the model has Q4_K or Q8_0 matrices of 16 rows or more
        REQUIRE(model.interleave_for_int8() == 0);  // idempotent
        const auto one = test::prompt_logits<TestType>(model, tokens, 1, ops::ActivationPrecision::int8);
        const auto three = test::prompt_logits<TestType>(model, tokens, 3, ops::ActivationPrecision::int8);
        REQUIRE(std::memcmp(one.data(), three.data(), one.size() * 4) == 0);
        const auto exact = test::read_f32(test::fixtures_dir() / entry["cases"][1]["logits_exact"].get<std::string>());
        REQUIRE(exact.size() == one.size());
        WARN(name << " (" << TestType::name << ", int8, interleaved copies of " << added << " bytes): max |diff| vs logits_exact "
                  << test::max_abs_diff(one.data(), exact.data(), exact.size()).value << ", vs the file layout "
                  << test::max_abs_diff(one.data(), file_layout.data(), one.size()).value);
    }
    REQUIRE(models == 2);
}

TEST_CASE("interleave_for_int8: matrices that lie back to back share one copy and each view holds its own rows",
          "[int8][fixtures]") {
    MOELAB_REQUIRE_FIXTURES();
    const nlohmann::json manifest = test::manifest();
    std::size_t views = 0, shared = 0;
    for (const auto& entry : manifest["models"]) {
        const std::string name = entry["name"];
        if (name != "qwen3-moe-256-q4_k_m" && name != "qwen3-moe-256-q8_0") continue;
        Model model = Model::load(test::fixtures_dir() / entry["gguf"].get<std::string>());
        REQUIRE(model.interleave_for_int8() > 0);
        // Every copied matrix reads what interleaving it alone would give.
        auto same_as_alone = [&]<class X16>(X16, const WeightMatrix& m) {
            const auto alone = interleave_rows<X16>(reinterpret_cast<const typename X16::Block*>(m.data), m.rows, m.cols);
            REQUIRE(std::memcmp(m.interleaved, alone.data(), alone.size() * sizeof(X16)) == 0);
            ++views;
        };
        for_each_matrix(model.weights(), [&](const WeightMatrix& m) {
            if (!m.interleaved) return;
            if (m.dtype == DType::q4_k) same_as_alone(block_q4_k_x16{}, m);
            else if (m.dtype == DType::q8_0) same_as_alone(block_q8_0_x16{}, m);
            else FAIL("an interleaved copy of a " << dtype_name(m.dtype) << " matrix");
        });
        // An MoE layer's experts are slices of one tensor, so their copies
        // are slices of one copy, in the same order.
        for (const auto& layer : model.weights().layers)
            for (std::size_t e = 0; e + 1 < layer.moe.experts.size(); ++e) {
                const WeightMatrix &a = layer.moe.experts[e].gate, &b = layer.moe.experts[e + 1].gate;
                if (!a.interleaved || !b.interleaved || b.data != a.data + a.rows * a.row_bytes()) continue;
                const std::size_t group_bytes = a.dtype == DType::q4_k
                                                    ? a.cols / block_q4_k_x16::kWeights * sizeof(block_q4_k_x16)
                                                    : a.cols / block_q8_0_x16::kWeights * sizeof(block_q8_0_x16);
                CHECK(b.interleaved == a.interleaved + a.rows / kInterleavedRows * group_bytes);
                ++shared;
            }
    }
    INFO("matrices checked: " << views);
    REQUIRE(views > 0);
    REQUIRE(shared > 0);  // the fixtures have experts stored back to back
}
