// SPDX-License-Identifier: MIT
// The scalar backend is the specification; here it is checked against the
// same mathematics computed in double precision.
//
// Tolerances are derived, not tuned. With unit roundoff u = 2^-24 and
// gamma(n) = n u / (1 - n u), recursive f32 summation of n products satisfies
//   |fl(sum w_i x_i) - sum w_i x_i| <= gamma(n + 1) * sum |w_i x_i|        (Higham, Thm 3.1)
// Elementwise functions built from a handful of correctly rounded operations
// and std::exp (within 1 ulp on glibc) are bounded by a small multiple of u.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <numeric>
#include <random>
#include <vector>

#include "moelab/kernels/scalar.hpp"
#include "support/error_bounds.hpp"

using namespace moelab;

namespace {

using test::gamma_n;  // support/error_bounds.hpp
using test::u;

std::vector<float> random_floats(std::size_t n, std::mt19937& rng, float lo = -1.0f, float hi = 1.0f) {
    std::uniform_real_distribution<float> dist(lo, hi);
    std::vector<float> v(n);
    for (auto& x : v) x = dist(rng);
    return v;
}

const std::size_t kLengths[] = {0, 1, 2, 3, 7, 15, 16, 17, 31, 32, 33, 35, 96, 255, 2051};

}  // namespace

TEMPLATE_TEST_CASE("scalar dot matches double within gamma(n+1) * sum|w x|", "[scalar]", float, f16, bf16) {
    std::mt19937 rng(7);
    for (std::size_t n : kLengths) {
        const auto xf = random_floats(n, rng);
        const auto wf = random_floats(n, rng);
        std::vector<TestType> w(n);
        for (std::size_t i = 0; i < n; ++i) {
            if constexpr (std::is_same_v<TestType, float>) w[i] = wf[i];
            else if constexpr (std::is_same_v<TestType, f16>) w[i] = f32_to_f16(wf[i]);
            else w[i] = f32_to_bf16(wf[i]);
        }
        double exact = 0, magnitude = 0;
        for (std::size_t i = 0; i < n; ++i) {
            exact += static_cast<double>(to_f32(w[i])) * xf[i];
            magnitude += std::abs(static_cast<double>(to_f32(w[i])) * xf[i]);
        }
        const float got = kernels::dot(backend::scalar{}, w.data(), xf.data(), n);
        INFO("n = " << n);
        REQUIRE(std::abs(got - exact) <= gamma_n(static_cast<double>(n) + 1) * magnitude);
    }
}

TEST_CASE("scalar matmul is one dot per (token, row) and honours y_stride", "[scalar]") {
    std::mt19937 rng(8);
    const std::size_t rows = 5, cols = 33, tokens = 3, stride = 9;
    const auto w = random_floats(rows * cols, rng);
    const auto x = random_floats(tokens * cols, rng);
    std::vector<float> y(tokens * stride, -7.0f);
    kernels::matmul(backend::scalar{}, w.data(), rows, cols, x.data(), tokens, y.data(), stride);
    for (std::size_t t = 0; t < tokens; ++t) {
        for (std::size_t r = 0; r < rows; ++r) {
            double exact = 0, magnitude = 0;
            for (std::size_t c = 0; c < cols; ++c) {
                exact += static_cast<double>(w[r * cols + c]) * x[t * cols + c];
                magnitude += std::abs(static_cast<double>(w[r * cols + c]) * x[t * cols + c]);
            }
            REQUIRE(std::abs(y[t * stride + r] - exact) <= gamma_n(cols + 1.0) * magnitude);
        }
        for (std::size_t r = rows; r < stride; ++r) REQUIRE(y[t * stride + r] == -7.0f);  // untouched
    }
}

TEST_CASE("scalar rmsnorm and l2norm match double", "[scalar]") {
    std::mt19937 rng(9);
    for (std::size_t n : kLengths) {
        if (n == 0) continue;
        const auto x = random_floats(n, rng, -3, 3);
        const auto w = random_floats(n, rng, 0.5f, 1.5f);
        const float eps = 1e-6f;
        std::vector<float> out(n), out_l2(n);
        kernels::rmsnorm(backend::scalar{}, x.data(), w.data(), eps, n, out.data());
        kernels::l2norm(backend::scalar{}, x.data(), eps, n, out_l2.data());
        double sum_sq = 0;
        for (float v : x) sum_sq += static_cast<double>(v) * v;
        const double inv_rms = 1.0 / std::sqrt(sum_sq / n + eps);
        const double inv_norm = 1.0 / std::max(std::sqrt(sum_sq), static_cast<double>(eps));
        // Sum of squares: gamma(n) relative (all terms positive); then a
        // division, sqrt, reciprocal and two products: + 6u.
        const double rel = gamma_n(static_cast<double>(n)) + 6 * u;
        for (std::size_t i = 0; i < n; ++i) {
            const double expected = x[i] * inv_rms * w[i];
            REQUIRE(std::abs(out[i] - expected) <= rel * std::abs(expected) + 1e-30);
            const double expected_l2 = x[i] * inv_norm;
            REQUIRE(std::abs(out_l2[i] - expected_l2) <= rel * std::abs(expected_l2) + 1e-30);
        }
    }
}

TEST_CASE("scalar softmax matches double and sums to one", "[scalar]") {
    std::mt19937 rng(10);
    for (std::size_t n : kLengths) {
        if (n == 0) continue;
        auto x = random_floats(n, rng, -20, 20);
        std::vector<double> expected(n);
        const double m = *std::max_element(x.begin(), x.end());
        double sum = 0;
        for (std::size_t i = 0; i < n; ++i) sum += expected[i] = std::exp(static_cast<double>(x[i]) - m);
        kernels::softmax(backend::scalar{}, x.data(), n);
        // exp of a rounded argument: relative error |x - m| u (the subtraction)
        // + 1 ulp (exp); the sum adds gamma(n); the division and multiply 2u.
        const double rel = 40 * u + gamma_n(static_cast<double>(n)) + 3 * u;
        double total = 0;
        for (std::size_t i = 0; i < n; ++i) {
            REQUIRE(std::abs(x[i] - expected[i] / sum) <= rel * expected[i] / sum + 1e-37);
            total += x[i];
        }
        REQUIRE(std::abs(total - 1.0) <= gamma_n(n + 45.0));
    }
}

TEST_CASE("scalar silu and swiglu match double", "[scalar]") {
    std::mt19937 rng(11);
    const std::size_t n = 2051;
    auto x = random_floats(n, rng, -30, 30);
    const auto up = random_floats(n, rng, -2, 2);
    std::vector<float> out(n);
    kernels::swiglu(backend::scalar{}, x.data(), up.data(), out.data(), n);
    auto s = x;
    kernels::silu(backend::scalar{}, s.data(), n);
    for (std::size_t i = 0; i < n; ++i) {
        const double silu = x[i] / (1.0 + std::exp(-static_cast<double>(x[i])));
        // exp (1 ulp, plus |x| u from the rounded argument), add, divide, multiply.
        const double rel = (std::abs(x[i]) + 5) * u;
        REQUIRE(std::abs(s[i] - silu) <= rel * std::abs(silu) + 1e-37);
        REQUIRE(std::abs(out[i] - silu * up[i]) <= (rel + u) * std::abs(silu * up[i]) + 1e-37);
    }
}

TEST_CASE("scalar rope rotates planes in both pairings and leaves the tail alone", "[scalar]") {
    std::mt19937 rng(12);
    const std::size_t head_dim = 16, rot_dims = 8;
    const auto x = random_floats(head_dim, rng);
    std::vector<float> cos(rot_dims / 2), sin(rot_dims / 2);
    for (std::size_t i = 0; i < rot_dims / 2; ++i) {
        cos[i] = static_cast<float>(std::cos(0.3 * (i + 1)));
        sin[i] = static_cast<float>(std::sin(0.3 * (i + 1)));
    }
    for (RopeStyle style : {RopeStyle::interleaved, RopeStyle::neox}) {
        auto y = x;
        kernels::rope(backend::scalar{}, y.data(), rot_dims, style, cos.data(), sin.data());
        for (std::size_t i = 0; i < rot_dims / 2; ++i) {
            const std::size_t ia = style == RopeStyle::interleaved ? 2 * i : i;
            const std::size_t ib = style == RopeStyle::interleaved ? 2 * i + 1 : i + rot_dims / 2;
            const double a = x[ia], b = x[ib];
            const double bound = 3 * u * (std::abs(a * cos[i]) + std::abs(b * sin[i]));
            REQUIRE(std::abs(y[ia] - (a * cos[i] - b * sin[i])) <= bound);
            REQUIRE(std::abs(y[ib] - (a * sin[i] + b * cos[i])) <= bound);
        }
        for (std::size_t i = rot_dims; i < head_dim; ++i) REQUIRE(y[i] == x[i]);
    }
}

TEST_CASE("scalar add, scale and axpy", "[scalar]") {
    std::mt19937 rng(13);
    const std::size_t n = 97;
    const auto a = random_floats(n, rng), b = random_floats(n, rng);
    std::vector<float> out(n), y = b, s = a;
    kernels::add(backend::scalar{}, a.data(), b.data(), out.data(), n);
    kernels::axpy(backend::scalar{}, 0.5f, a.data(), y.data(), n);
    kernels::scale(backend::scalar{}, s.data(), -3.0f, n);
    for (std::size_t i = 0; i < n; ++i) {
        REQUIRE(out[i] == a[i] + b[i]);  // one correctly rounded operation
        REQUIRE(std::abs(y[i] - (b[i] + 0.5 * a[i])) <= u * std::abs(b[i] + 0.5 * a[i]));
        REQUIRE(s[i] == a[i] * -3.0f);
    }
}

TEST_CASE("scalar topk: largest first, ties go to the lowest index, NaN ranks last", "[scalar][topk]") {
    auto reference = [](const std::vector<float>& x, std::size_t k) {
        std::vector<std::uint32_t> order(x.size());
        std::iota(order.begin(), order.end(), 0u);
        auto key = [&](std::uint32_t i) { return std::isnan(x[i]) ? -INFINITY : x[i]; };
        std::stable_sort(order.begin(), order.end(), [&](auto i, auto j) { return key(i) > key(j); });
        order.resize(k);
        return order;
    };
    std::mt19937 rng(14);
    for (std::size_t n : {1, 2, 8, 64, 128, 512}) {
        for (std::size_t k : {1, 2, 4, 8, 10}) {
            if (k > n) continue;
            // Few distinct values, so ties are everywhere.
            std::uniform_int_distribution<int> pick(0, 5);
            std::vector<float> x(n);
            for (auto& v : x) v = static_cast<float>(pick(rng));
            if (n > 3) x[3] = NAN;
            std::vector<std::uint32_t> got(k);
            kernels::topk(backend::scalar{}, x.data(), n, k, got.data());
            INFO("n = " << n << ", k = " << k);
            REQUIRE(got == reference(x, k));
        }
    }
    const std::vector<float> all_equal(6, 1.0f);
    std::vector<std::uint32_t> got(3);
    kernels::topk(backend::scalar{}, all_equal.data(), 6, 3, got.data());
    REQUIRE(got == std::vector<std::uint32_t>{0, 1, 2});
}
