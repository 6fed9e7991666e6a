// SPDX-License-Identifier: MIT
// The opt-in bf16-activation products (quant/bf16_activations.hpp,
// kernels/highway_bf16.hpp, ops::ActivationPrecision::bf16):
//  1. rounding activations: ties to even, every value within half a bf16 ulp,
//     inf and NaN kept;
//  2. the scalar specification is within gamma(n + 1) * sum |w x| of the sum
//     in double of the same (exact) products;
//  3. every backend that has bf16 products is within that bound of the
//     exact sum and within twice it of the specification, over a sweep of
//     lengths (partial last vectors too), row counts and batch sizes; dot,
//     matvec and matmul agree bit for bit;
//  4. ops::linear: bf16 results are bitwise the same for any thread count and
//     equal the kernel on the rounded activations; the mode changes nothing
//     for weights that are not bf16;
//  5. the fixtures: the bf16 model in bf16 mode is thread-count invariant and
//     differs from the f32 mode wherever a backend has the products; every
//     other model is bitwise its f32 mode; the distance to llama.cpp's
//     logits (which round activations to bf16 too) is printed, not bounded.
//
// Bound. Every product of two bf16 values is exact in f32 (8 + 8 significant
// bits), so the products are the n terms and the only rounding is their
// summation: any order of n additions, with one more for a zero start, is
// within gamma(n + 1) * sum |terms| of the exact sum (Higham, Thm 3.1/4.1).
#include <catch2/catch.hpp>

#include <bit>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <random>
#include <string>
#include <type_traits>
#include <vector>

#include "moelab/ops/linear.hpp"
#include "moelab/quant/bf16_activations.hpp"
#include "moelab/quant/quant.hpp"
#include "support/backends.hpp"
#include "support/compare.hpp"
#include "support/error_bounds.hpp"
#include "support/fixtures.hpp"
#include "support/twin_models.hpp"

using namespace moelab;

namespace {

std::vector<float> normal_values(std::size_t n, std::mt19937& rng, float scale = 1.0f) {
    std::normal_distribution<float> normal(0.0f, scale);
    std::vector<float> x(n);
    for (std::size_t i = 0; i < n; ++i) x[i] = normal(rng) * (i % 97 == 0 ? 20.0f : 1.0f);  // a few outliers
    return x;
}

Bf16Buffer rounded(const std::vector<float>& x) {
    Bf16Buffer out;
    round_activations_to_bf16(x.data(), x.size(), out);
    return out;
}

struct ExactDot {
    double value = 0, magnitude = 0;
};
ExactDot exact_dot(const bf16* w, const bf16* x, std::size_t n) {
    ExactDot e;
    for (std::size_t i = 0; i < n; ++i) {
        const double p = double(bf16_to_f32(w[i])) * double(bf16_to_f32(x[i]));
        e.value += p;
        e.magnitude += std::abs(p);
    }
    return e;
}

std::uint32_t bits(float v) { return std::bit_cast<std::uint32_t>(v); }

}  // namespace

// ---------------------------------------------------------------------------
// 1-2. Rounding and the specification.
// ---------------------------------------------------------------------------
TEST_CASE("round_activations_to_bf16: nearest, ties to even, inf and NaN kept", "[bf16]") {
    const float inf = std::numeric_limits<float>::infinity();
    const std::vector<float> special = {1.0f + 0x1p-8f,  // a tie between 1 and 1 + 2^-7: to even, 1
                                        1.0f + 0x3p-8f,  // a tie between 1 + 2^-7 and 1 + 2^-6: to even, 1 + 2^-6
                                        1.0f + 0x1p-8f + 0x1p-20f,  // just above the tie: up
                                        -inf, inf, std::numeric_limits<float>::quiet_NaN(), 0.0f, -0.0f};
    const Bf16Buffer r = rounded(special);
    REQUIRE(r.size() >= special.size());
    CHECK(bf16_to_f32(r[0]) == 1.0f);
    CHECK(bf16_to_f32(r[1]) == 1.0f + 0x1p-6f);
    CHECK(bf16_to_f32(r[2]) == 1.0f + 0x1p-7f);
    CHECK(bf16_to_f32(r[3]) == -inf);
    CHECK(bf16_to_f32(r[4]) == inf);
    CHECK(std::isnan(bf16_to_f32(r[5])));
    CHECK(bits(bf16_to_f32(r[6])) == bits(0.0f));
    CHECK(bits(bf16_to_f32(r[7])) == bits(-0.0f));

    std::mt19937 rng(3);
    const auto x = normal_values(10000, rng);
    const Bf16Buffer xb = rounded(x);
    for (std::size_t i = 0; i < x.size(); ++i) {
        // half an ulp of an 8-bit significand: 2^-8 relative to the binade's bottom
        const double half_ulp = std::ldexp(1.0, std::ilogb(x[i]) - 8);
        REQUIRE(std::abs(double(bf16_to_f32(xb[i])) - double(x[i])) <= half_ulp);
    }
}

TEST_CASE("the bf16 specification is within gamma(n + 1) of the exact sum", "[bf16]") {
    std::mt19937 rng(5);
    for (const std::size_t n : {1u, 31u, 32u, 33u, 1000u, 4096u}) {
        const auto w = rounded(normal_values(n, rng, 0.05f));
        const auto x = rounded(normal_values(n, rng));
        const float got = kernels::dot(backend::scalar{}, w.data(), x.data(), n);
        const ExactDot e = exact_dot(w.data(), x.data(), n);
        INFO(n << " values: spec " << got << ", exact " << e.value);
        CHECK(std::abs(double(got) - e.value) <= test::gamma_n(double(n) + 1) * e.magnitude);
    }
}

// ---------------------------------------------------------------------------
// 3. The backends.
// ---------------------------------------------------------------------------
TEST_CASE("every backend's bf16 products agree with the specification", "[bf16][kernels]") {
    std::mt19937 rng(7);
    std::size_t backends_with_bf16 = 0;
    std::string names;
    test::AllBackends::each([&](auto backend) {
        using Backend = decltype(backend);
        if constexpr (ops::has_bf16_product<Backend>) {
            ++backends_with_bf16;
            names += std::string(names.empty() ? "" : ", ") + Backend::name;
            // Highway: 32 values a step, matvec row by row up to 192 rows and 8 at a time past
            // that, matmul 4 x 6 tiles in chunks of 16 rows.
            for (const std::size_t cols : {1u, 31u, 32u, 33u, 64u, 100u, 2051u}) {
                for (const std::size_t rows : {1u, 5u, 8u, 9u, 17u, 201u}) {  // 201: 8-row matvec passes
                    const std::size_t n_tokens = 13;  // two 6-token tiles and a tail
                    const auto w = rounded(normal_values(rows * cols, rng, 0.05f));
                    const auto x = rounded(normal_values(n_tokens * cols, rng));
                    std::vector<float> y_matmul(n_tokens * rows), y_matvec(rows), y_spec(rows);
                    kernels::matmul(backend, w.data(), rows, cols, x.data(), n_tokens, y_matmul.data(), rows);
                    for (std::size_t t = 0; t < n_tokens; ++t) {
                        const bf16* xt = x.data() + t * cols;
                        kernels::matvec(backend, w.data(), rows, cols, xt, y_matvec.data());
                        kernels::matvec(backend::scalar{}, w.data(), rows, cols, xt, y_spec.data());
                        for (std::size_t r = 0; r < rows; ++r) {
                            const ExactDot e = exact_dot(w.data() + r * cols, xt, cols);
                            const double bound = test::gamma_n(double(cols) + 1) * e.magnitude;
                            INFO(Backend::name << ": " << rows << " x " << cols << ", token " << t << ", row " << r
                                               << ": backend " << y_matvec[r] << ", spec " << y_spec[r] << ", exact "
                                               << e.value << ", bound " << bound);
                            REQUIRE(std::abs(double(y_matvec[r]) - e.value) <= bound);
                            REQUIRE(std::abs(double(y_matvec[r]) - double(y_spec[r])) <= 2 * bound);
                            REQUIRE(bits(y_matmul[t * rows + r]) == bits(y_matvec[r]));
                            REQUIRE(bits(kernels::dot(backend, w.data() + r * cols, xt, cols)) == bits(y_matvec[r]));
                        }
                    }
                }
            }
        }
    });
    REQUIRE(backends_with_bf16 >= 1);  // the scalar specification, at least
    WARN(backends_with_bf16 << " backend(s) in this build have bf16 products: " << names
                            << (backends_with_bf16 == 1 ? " (no SIMD backend has them: AVX512_BF16 missing?)" : ""));
}

TEST_CASE("bf16 matmul: rows read in place when aligned, copied when not, the same bits", "[bf16][kernels]") {
    std::mt19937 rng(11);
    std::size_t tested = 0;
    test::AllBackends::each([&](auto backend) {
        using Backend = decltype(backend);
        if constexpr (ops::has_bf16_product<Backend> && !std::is_same_v<Backend, backend::scalar>) {
            // Highway reads weight rows and activation rows in place when cols is a multiple of
            // 32 and the data is 64-byte aligned, and copies them into padded rows otherwise.
            const std::size_t rows = 37, cols = 96, n_tokens = 7;
            const auto w = rounded(normal_values(rows * cols + 32, rng, 0.05f));  // Bf16Buffer: 64-byte aligned
            const auto x = rounded(normal_values(n_tokens * cols + 32, rng));
            REQUIRE(reinterpret_cast<std::uintptr_t>(w.data()) % 64 == 0);
            REQUIRE(reinterpret_cast<std::uintptr_t>(x.data()) % 64 == 0);
            for (const std::size_t offset : {0u, 16u}) {  // 16 bf16 = 32 bytes: misaligned rows
                const bf16* wo = w.data() + offset;
                const bf16* xo = x.data() + offset;
                std::vector<float> y_matmul(n_tokens * rows), y_matvec(rows);
                kernels::matmul(backend, wo, rows, cols, xo, n_tokens, y_matmul.data(), rows);
                for (std::size_t t = 0; t < n_tokens; ++t) {
                    kernels::matvec(backend, wo, rows, cols, xo + t * cols, y_matvec.data());
                    for (std::size_t r = 0; r < rows; ++r) {
                        INFO(Backend::name << ": offset " << offset << ", token " << t << ", row " << r);
                        REQUIRE(bits(y_matmul[t * rows + r]) == bits(y_matvec[r]));
                    }
                }
                ++tested;
            }
        }
    });
    if (tested == 0) WARN("SKIPPED: no backend in this build has bf16 products besides the scalar one");
}

// ---------------------------------------------------------------------------
// 4. ops::linear.
// ---------------------------------------------------------------------------
TEMPLATE_TEST_CASE("ops::linear in bf16 mode: any thread count, same bits; other weights unchanged", "[bf16]",
                   MOELAB_TEST_BACKENDS) {
    std::mt19937 rng(11);
    const std::size_t rows = 200, cols = 512, n_tokens = 5;
    const auto w_bf16 = rounded(normal_values(rows * cols, rng, 0.05f));
    const WeightMatrix bf16_weights{DType::bf16, reinterpret_cast<const std::byte*>(w_bf16.data()), rows, cols};
    const auto w_f32 = normal_values(rows * cols, rng, 0.05f);
    const WeightMatrix f32_weights{DType::f32, reinterpret_cast<const std::byte*>(w_f32.data()), rows, cols};
    std::vector<block_q8_0> w_q8(rows * cols / 32);
    quantize_row(DType::q8_0, w_f32.data(), w_f32.size(), reinterpret_cast<std::byte*>(w_q8.data()));
    const WeightMatrix q8_weights{DType::q8_0, reinterpret_cast<const std::byte*>(w_q8.data()), rows, cols};
    const auto x = normal_values(n_tokens * cols, rng);
    const auto xb = rounded(x);

    auto run = [&](const WeightMatrix& w, std::size_t threads, ops::ActivationPrecision p, std::size_t tokens) {
        ThreadPool pool(threads);
        std::vector<float> y(tokens * rows);
        ops::RoundedActivations scratch;
        ops::linear(TestType{}, pool, w, x.data(), tokens, y.data(), p, &scratch);
        return y;
    };
    using P = ops::ActivationPrecision;
    for (const std::size_t tokens : {std::size_t{1}, n_tokens}) {
        const auto one = run(bf16_weights, 1, P::bf16, tokens);
        for (const std::size_t threads : {2u, 3u})
            REQUIRE(std::memcmp(one.data(), run(bf16_weights, threads, P::bf16, tokens).data(), one.size() * 4) == 0);
        std::vector<float> expected(tokens * rows);
        if constexpr (ops::has_bf16_product<TestType>) {
            kernels::matmul(TestType{}, w_bf16.data(), rows, cols, xb.data(), tokens, expected.data(), rows);
        } else {  // the mode does not apply: the exact path
            kernels::matmul(TestType{}, w_bf16.data(), rows, cols, x.data(), tokens, expected.data(), rows);
        }
        REQUIRE(std::memcmp(one.data(), expected.data(), one.size() * 4) == 0);
        for (const WeightMatrix* other : {&f32_weights, &q8_weights}) {
            const auto f32 = run(*other, 2, P::f32, tokens);
            REQUIRE(std::memcmp(f32.data(), run(*other, 2, P::bf16, tokens).data(), f32.size() * 4) == 0);
        }
    }
}

// ---------------------------------------------------------------------------
// 5. Whole models.
// ---------------------------------------------------------------------------
TEMPLATE_TEST_CASE("bf16 mode on the fixtures: thread-count invariant, a no-op without bf16 weights",
                   "[bf16][fixtures]", MOELAB_TEST_BACKENDS) {
    MOELAB_REQUIRE_FIXTURES();
    test::check_mode_on_twin_models<TestType>(
        ops::ActivationPrecision::bf16, [](const Model& model) { return model.weights().layers[0].attn.wq.dtype == DType::bf16; },
        [](const std::string& name, const nlohmann::json& c, const std::vector<float>& bf16_logits, const std::vector<float>& f32) {
            const auto exact = test::read_f32(test::fixtures_dir() / c["logits_exact"].get<std::string>());
            const auto llama = test::read_f32(test::fixtures_dir() / c["logits"].get<std::string>());
            REQUIRE(exact.size() == bf16_logits.size());
            REQUIRE(llama.size() == bf16_logits.size());
            if constexpr (ops::has_bf16_product<TestType>)  // the mode engaged: the activations were rounded
                REQUIRE(std::memcmp(bf16_logits.data(), f32.data(), f32.size() * 4) != 0);
            else
                REQUIRE(std::memcmp(bf16_logits.data(), f32.data(), f32.size() * 4) == 0);
            WARN(name << " (" << TestType::name << ", bf16 activations): max |diff| vs logits_exact "
                      << test::max_abs_diff(bf16_logits.data(), exact.data(), exact.size()).value
                      << ", vs llama.cpp's bf16 path "
                      << test::max_abs_diff(bf16_logits.data(), llama.data(), llama.size()).value
                      << "; llama.cpp's bf16 path vs logits_exact "
                      << test::max_abs_diff(llama.data(), exact.data(), exact.size()).value);
        });
}
