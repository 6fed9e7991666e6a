// SPDX-License-Identifier: MIT
// Every backend against the scalar specification (kernels/scalar.hpp), over a
// sweep of lengths around the vector width, misaligned pointers, random data
// and every weight dtype. The scalar backend runs too (it must agree with
// itself, and its tolerance arithmetic is exercised).
//
// Tolerances are derived, not tuned. u = 2^-24 is the unit roundoff of f32,
// gamma(n) = n u / (1 - n u). For normal results one ulp is at most 2u relative.
//  * Products (dot, matvec, matmul): widening f16/bf16 is exact, so each
//    result is a sum of n exact-input products. Any summation order, with or
//    without FMA, gives |fl(sum) - sum| <= gamma(n + 1) * sum |w x| (Higham,
//    Thm 3.1 and its order-independent proof). Backend and scalar are each that
//    close to the exact sum (computed in double), so they are within twice it
//    of each other.
//  * exp-based kernels: each implementation's exp is held to a stated budget:
//    glibc expf 1 ulp, Highway's Exp 1 ulp (its documented maximum), xsimd's
//    exp 2 ulp (xsimd documents none; its Cephes-style algorithm measured
//    1.49 ulp at worst over 2e6 points on [-87, 88] while this was written).
//    The bound for each kernel is composed from these and one u per further
//    rounding (the budgets, rmsnorm and softmax in support/error_bounds.hpp,
//    which other tests rely on; the rest below), and backend and scalar must
//    be within the sum of their two bounds of the exact value.
//  * Integers (topk) and single correctly rounded operations (add, scale)
//    must match exactly.
#include <catch2/catch.hpp>

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <numeric>
#include <random>
#include <set>
#include <string>
#include <type_traits>
#include <vector>

#include "support/backends.hpp"
#include "support/error_bounds.hpp"

using namespace moelab;

namespace {

using test::compose;
using test::exp_relative_budget;
using test::gamma_n;
using test::rmsnorm_relative_bound;
using test::softmax_relative_bound;
using test::through_division;
using test::u;

// Vector width in f32 lanes, for the length sweep.
template <class B>
std::size_t lanes_of() {
#if MOELAB_HAVE_HIGHWAY
    if constexpr (std::is_same_v<B, backend::highway>) return detail::HWY_NAMESPACE::f32_lanes();
#endif
#if MOELAB_HAVE_XSIMD
    if constexpr (std::is_same_v<B, backend::xsimd>) return detail::xsimd_kernels::N;
#endif
    return 1;
}

// 0 .. 2L+3, both sides of 4L (two pair-split steps of xsimd's f16/bf16),
// and odd sizes.
std::vector<std::size_t> sweep_lengths(std::size_t lanes) {
    std::set<std::size_t> lengths;
    for (std::size_t n = 0; n <= 2 * lanes + 3; ++n) lengths.insert(n);
    for (std::size_t n : {4 * lanes - 1, 4 * lanes, 4 * lanes + 1, std::size_t{96}, std::size_t{255}, std::size_t{2051}})
        lengths.insert(n);
    return {lengths.begin(), lengths.end()};
}

// n values stored one element past the start of an allocation, so the data is
// misaligned for every vector width (4 bytes off for f32, 2 for f16/bf16).
template <class T>
struct Misaligned {
    std::vector<T> storage;
    explicit Misaligned(std::size_t n) : storage(n + 1) {}
    T* data() { return storage.data() + 1; }
    const T* data() const { return storage.data() + 1; }
    T& operator[](std::size_t i) { return storage[i + 1]; }
    const T& operator[](std::size_t i) const { return storage[i + 1]; }
};

template <class T>
T from_f32(float v) {
    if constexpr (std::is_same_v<T, float>) return v;
    else if constexpr (std::is_same_v<T, f16>) return f32_to_f16(v);
    else return f32_to_bf16(v);
}

template <class T>
Misaligned<T> random_values(std::size_t n, std::mt19937& rng, float lo = -1.0f, float hi = 1.0f) {
    std::uniform_real_distribution<float> dist(lo, hi);
    Misaligned<T> v(n);
    for (std::size_t i = 0; i < n; ++i) v[i] = from_f32<T>(dist(rng));
    return v;
}

template <class T>
const char* dtype_label() {
    if constexpr (std::is_same_v<T, float>) return "f32";
    else if constexpr (std::is_same_v<T, f16>) return "f16";
    else return "bf16";
}

// The exact dot product (double) and sum |w x| of row w with x.
struct ExactDot {
    double value = 0, magnitude = 0;
};
template <class T>
ExactDot exact_dot(const T* w, const float* x, std::size_t n) {
    ExactDot e;
    for (std::size_t i = 0; i < n; ++i) {
        const double p = static_cast<double>(to_f32(w[i])) * x[i];
        e.value += p;
        e.magnitude += std::abs(p);
    }
    return e;
}

// got and ref are each within gamma(n + 1) * magnitude of exact.
void check_product(float got, float ref, const ExactDot& exact, std::size_t n) {
    const double bound = gamma_n(static_cast<double>(n) + 1) * exact.magnitude;
    REQUIRE(std::abs(got - exact.value) <= bound);
    REQUIRE(std::abs(double(got) - double(ref)) <= 2 * bound);
}

std::uint32_t bits(float v) { return std::bit_cast<std::uint32_t>(v); }

}  // namespace

TEMPLATE_TEST_CASE("instruction set each backend compiled to", "[kernels]", MOELAB_TEST_BACKENDS) {
    const std::string name = kernels::instruction_set(TestType{});
    WARN(TestType::name << " backend: " << name);
    REQUIRE(name.find(TestType::name) == 0);
    REQUIRE(lanes_of<TestType>() >= 1);
}

// ---------------------------------------------------------------------------
// Products.
// ---------------------------------------------------------------------------
template <class B, class W>
void check_dot_and_matvec() {
    std::mt19937 rng(101);
    for (std::size_t cols : sweep_lengths(lanes_of<B>())) {
        for (std::size_t rows : {0, 1, 3, 8, 9, 17, 201}) {  // 201: past kSingleStreamRows, 8-row passes
            const auto w = random_values<W>(rows * cols, rng);
            const auto x = random_values<float>(cols, rng);
            Misaligned<float> y(rows + 1), y_ref(rows);
            y[rows] = 12345.0f;  // guard: must stay untouched
            kernels::matvec(B{}, w.data(), rows, cols, x.data(), y.data());
            kernels::matvec(backend::scalar{}, w.data(), rows, cols, x.data(), y_ref.data());
            INFO(dtype_label<W>() << " rows " << rows << " cols " << cols);
            for (std::size_t r = 0; r < rows; ++r) {
                INFO("row " << r);
                const ExactDot exact = exact_dot(w.data() + r * cols, x.data(), cols);
                check_product(y[r], y_ref[r], exact, cols);
                const float d = kernels::dot(B{}, w.data() + r * cols, x.data(), cols);
                check_product(d, y_ref[r], exact, cols);
            }
            REQUIRE(y[rows] == 12345.0f);
        }
    }
}

TEMPLATE_TEST_CASE("dot and matvec match scalar for every weight dtype", "[kernels][products]", MOELAB_TEST_BACKENDS) {
    SECTION("f32") { check_dot_and_matvec<TestType, float>(); }
    SECTION("f16") { check_dot_and_matvec<TestType, f16>(); }
    SECTION("bf16") { check_dot_and_matvec<TestType, bf16>(); }
}

template <class B, class W>
void check_matmul() {
    std::mt19937 rng(102);
    for (std::size_t cols : sweep_lengths(lanes_of<B>())) {
        for (std::size_t rows : {0, 1, 4, 5, 9, 70}) {  // 70: several 16-row chunks, then 6 rows (a tile + 2)
            // 0 and 1: the edge cases of a batch; 2 .. 13: whole and partial
            // register tiles of tokens (kTileTokens is 4 or 6).
            for (std::size_t tokens : {0, 1, 2, 5, 6, 7, 13}) {
                const std::size_t y_stride = rows + 3;
                const auto w = random_values<W>(rows * cols, rng);
                const auto x = random_values<float>(tokens * cols, rng);
                Misaligned<float> y(tokens * y_stride), y_ref(tokens * y_stride);
                std::fill(y.storage.begin(), y.storage.end(), -7.0f);
                kernels::matmul(B{}, w.data(), rows, cols, x.data(), tokens, y.data(), y_stride);
                kernels::matmul(backend::scalar{}, w.data(), rows, cols, x.data(), tokens, y_ref.data(), y_stride);
                INFO(dtype_label<W>() << " rows " << rows << " cols " << cols << " tokens " << tokens);
                for (std::size_t t = 0; t < tokens; ++t) {
                    for (std::size_t r = 0; r < rows; ++r) {
                        INFO("token " << t << " row " << r);
                        const ExactDot exact = exact_dot(w.data() + r * cols, x.data() + t * cols, cols);
                        check_product(y[t * y_stride + r], y_ref[t * y_stride + r], exact, cols);
                    }
                    for (std::size_t r = rows; r < y_stride; ++r) REQUIRE(y[t * y_stride + r] == -7.0f);
                }
            }
        }
    }
}

TEMPLATE_TEST_CASE("matmul matches scalar for several tokens and a y_stride", "[kernels][products]", MOELAB_TEST_BACKENDS) {
    SECTION("f32") { check_matmul<TestType, float>(); }
    SECTION("f16") { check_matmul<TestType, f16>(); }
    SECTION("bf16") { check_matmul<TestType, bf16>(); }
}

// The backend's tag in each of its run-time settings: both ways matvec reads
// rows (kernels::MatvecReads) for the SIMD backends, the plain tag otherwise.
template <class B>
std::vector<B> every_setting() {
    if constexpr (kernels::HasMatvecReads<B>) {
        B stream, passes;
        stream.matvec_reads = kernels::MatvecReads::stream_when_short;
        passes.matvec_reads = kernels::MatvecReads::row_passes;
        return {stream, passes};
    } else {
        return {B{}};
    }
}

template <class B>
std::string setting_name(B b) {
    if constexpr (kernels::HasMatvecReads<B>) return std::string("matvec reads: ") + kernels::matvec_reads_name(b.matvec_reads);
    else return B::name;
}

// The determinism rule: y[t, r] depends only on row r and token t, whoever
// computes it. Bitwise: a row alone (dot, matvec of one row) equals the same
// row inside any block, and matvec equals each token's column of matmul, in
// every setting of the tag (one stream or passes of 8 rows: the same bits).
template <class B, class W>
void check_determinism() {
    std::mt19937 rng(103);
    const std::size_t L = lanes_of<B>();
    // matvec of 203 rows: passes of 8 rows and a tail of 3 (with row_passes,
    // and with stream_when_short for x over 16 KB: 4,099 columns), else one
    // stream; 11-row slices below.
    const std::size_t rows = 203, tokens = 9;
    // 1043 columns (over 1,024, 9 tokens, 203 rows): Highway's matmul sweeps
    // the columns in blocks and the rows in chunks of 64 (highway_tile.hpp).
    for (std::size_t cols : {L + 1, 4 * L + 3, std::size_t{131}, std::size_t{1043}, std::size_t{4099}}) {
        const auto w = random_values<W>(rows * cols, rng);
        const auto x = random_values<float>(tokens * cols, rng);
        std::vector<float> all(tokens * rows);
        kernels::matmul(B{}, w.data(), rows, cols, x.data(), tokens, all.data(), rows);
        INFO(dtype_label<W>() << " cols " << cols);
        for (const B setting : every_setting<B>())
            for (std::size_t t = 0; t < tokens; ++t) {
                std::vector<float> column(rows);
                kernels::matvec(setting, w.data(), rows, cols, x.data() + t * cols, column.data());
                for (std::size_t r = 0; r < rows; ++r) {
                    INFO("token " << t << " row " << r << " " << setting_name(setting));
                    float alone = 0;
                    kernels::matvec(setting, w.data() + r * cols, 1, cols, x.data() + t * cols, &alone);
                    const float d = kernels::dot(B{}, w.data() + r * cols, x.data() + t * cols, cols);
                    REQUIRE(bits(all[t * rows + r]) == bits(column[r]));
                    REQUIRE(bits(alone) == bits(column[r]));
                    REQUIRE(bits(d) == bits(column[r]));
                }
            }
        // A slice of rows and tokens (as a thread or an MoE expert sees it).
        const std::size_t r0 = 3, n_rows = 11, t0 = 2, n_tokens = 5;
        std::vector<float> part(n_tokens * n_rows);
        kernels::matmul(B{}, w.data() + r0 * cols, n_rows, cols, x.data() + t0 * cols, n_tokens, part.data(), n_rows);
        for (std::size_t t = 0; t < n_tokens; ++t)
            for (std::size_t r = 0; r < n_rows; ++r) REQUIRE(bits(part[t * n_rows + r]) == bits(all[(t0 + t) * rows + r0 + r]));
    }
}

TEMPLATE_TEST_CASE("determinism rule: a row's result does not depend on its neighbours", "[kernels][determinism]",
                   MOELAB_TEST_BACKENDS) {
    SECTION("f32") { check_determinism<TestType, float>(); }
    SECTION("f16") { check_determinism<TestType, f16>(); }
    SECTION("bf16") { check_determinism<TestType, bf16>(); }
}

// Highway's f32 matmul reads weight and activation rows in place when cols is
// a multiple of the lane count and the data is 64-byte aligned (as the model's
// tensors, the KV cache and the activations usually are; weights only for more
// than one tile of tokens), and copies them into padded rows otherwise. Either
// way a (row, token) is matvec's, bit for bit.
TEMPLATE_TEST_CASE("f32 matmul: aligned and misaligned rows give matvec's bits", "[kernels][products]",
                   MOELAB_TEST_BACKENDS) {
    std::mt19937 rng(107);
    // 96: whole vectors of 4, 8 or 16 lanes; 1088 too, and over 1,024
    // columns, where Highway's matmul sweeps the columns in blocks.
    for (const std::size_t cols : {std::size_t{96}, std::size_t{1088}}) {
        const std::size_t rows = 37, max_tokens = 13;
        const auto w_values = random_values<float>(rows * cols + 16, rng);
        const auto x_values = random_values<float>(max_tokens * cols + 16, rng);
        const FloatBuffer w(w_values.data(), w_values.data() + rows * cols + 16),  // 64-byte aligned
            x(x_values.data(), x_values.data() + max_tokens * cols + 16);
        REQUIRE(reinterpret_cast<std::uintptr_t>(w.data()) % 64 == 0);
        REQUIRE(reinterpret_cast<std::uintptr_t>(x.data()) % 64 == 0);
        for (const std::size_t n_tokens : {std::size_t{4}, max_tokens}) {  // one tile of tokens (weights copied), and more
            for (const std::size_t offset : {0u, 4u}) {                  // 4 floats = 16 bytes: misaligned rows
                const float* wo = w.data() + offset;
                const float* xo = x.data() + offset;
                std::vector<float> y_matmul(n_tokens * rows), y_matvec(rows);
                kernels::matmul(TestType{}, wo, rows, cols, xo, n_tokens, y_matmul.data(), rows);
                for (std::size_t t = 0; t < n_tokens; ++t) {
                    kernels::matvec(TestType{}, wo, rows, cols, xo + t * cols, y_matvec.data());
                    for (std::size_t r = 0; r < rows; ++r) {
                        INFO(cols << " columns, " << n_tokens << " tokens, offset " << offset << ", token " << t << ", row " << r);
                        REQUIRE(bits(y_matmul[t * rows + r]) == bits(y_matvec[r]));
                    }
                }
            }
        }
    }
}

TEMPLATE_TEST_CASE("f16 weights widen exactly: subnormals, inf and NaN", "[kernels][products]", MOELAB_TEST_BACKENDS) {
    // Every f16 bit pattern, one at a time, as w in dot(w, e_i): the product
    // with 1.0 is the widened value itself.
    const std::size_t n = 2 * lanes_of<TestType>() + 3;
    Misaligned<f16> w(n);
    Misaligned<float> x(n);
    for (std::size_t i = 0; i < n; ++i) x[i] = 0.0f;
    for (std::uint32_t h = 0; h < 0x10000; ++h) {
        const std::size_t pos = h % n;
        for (std::size_t i = 0; i < n; ++i) w[i] = f16{0};
        w[pos] = f16{static_cast<std::uint16_t>(h)};
        x[pos] = 1.0f;
        const float got = kernels::dot(TestType{}, w.data(), x.data(), n);
        x[pos] = 0.0f;
        const float expected = f16_to_f32(f16{static_cast<std::uint16_t>(h)});
        INFO("f16 bits 0x" << std::hex << h);
        if (std::isnan(expected)) REQUIRE(std::isnan(got));
        else REQUIRE(got == expected);
    }
}

// ---------------------------------------------------------------------------
// Normalisations and activations.
// ---------------------------------------------------------------------------
TEMPLATE_TEST_CASE("rmsnorm and l2norm match scalar", "[kernels]", MOELAB_TEST_BACKENDS) {
    std::mt19937 rng(104);
    for (std::size_t n : sweep_lengths(lanes_of<TestType>())) {
        if (n == 0) continue;
        const auto x = random_values<float>(n, rng, -3, 3);
        const auto w = random_values<float>(n, rng, 0.5f, 1.5f);
        const float eps = 1e-6f;
        Misaligned<float> out(n), ref(n), out_l2(n), ref_l2(n);
        kernels::rmsnorm(TestType{}, x.data(), w.data(), eps, n, out.data());
        kernels::rmsnorm(backend::scalar{}, x.data(), w.data(), eps, n, ref.data());
        kernels::l2norm(TestType{}, x.data(), eps, n, out_l2.data());
        kernels::l2norm(backend::scalar{}, x.data(), eps, n, ref_l2.data());
        double sum_sq = 0;
        for (std::size_t i = 0; i < n; ++i) sum_sq += static_cast<double>(x[i]) * x[i];
        const double inv_rms = 1.0 / std::sqrt(sum_sq / n + eps);
        const double inv_norm = 1.0 / std::max(std::sqrt(sum_sq), static_cast<double>(eps));
        // Each implementation within rmsnorm_relative_bound (support/error_bounds.hpp) of the exact value.
        const double rel = rmsnorm_relative_bound(n);
        INFO("n = " << n);
        for (std::size_t i = 0; i < n; ++i) {
            const double exact = x[i] * inv_rms * w[i], exact_l2 = x[i] * inv_norm;
            REQUIRE(std::abs(out[i] - exact) <= rel * std::abs(exact));
            REQUIRE(std::abs(double(out[i]) - ref[i]) <= 2 * rel * std::abs(exact));
            REQUIRE(std::abs(out_l2[i] - exact_l2) <= rel * std::abs(exact_l2));
            REQUIRE(std::abs(double(out_l2[i]) - ref_l2[i]) <= 2 * rel * std::abs(exact_l2));
        }
        // In place (out aliases x) gives the same bits.
        auto in_place = x;
        kernels::rmsnorm(TestType{}, in_place.data(), w.data(), eps, n, in_place.data());
        for (std::size_t i = 0; i < n; ++i) REQUIRE(bits(in_place[i]) == bits(out[i]));
    }
}

// softmax: both backends compute the same rounded argument d_i = fl(x_i - m);
// softmax_relative_bound (support/error_bounds.hpp) composes the exp budget,
// the sum, the division, a reciprocal and a product.
TEMPLATE_TEST_CASE("softmax matches scalar", "[kernels][exp]", MOELAB_TEST_BACKENDS) {
    std::mt19937 rng(105);
    for (std::size_t n : sweep_lengths(lanes_of<TestType>())) {
        if (n == 0) continue;
        const auto x = random_values<float>(n, rng, -20, 20);
        auto got = x, ref = x;
        kernels::softmax(TestType{}, got.data(), n);
        kernels::softmax(backend::scalar{}, ref.data(), n);
        // Exact value: e_i / sum e_j with e_i = exp(d_i) in double, where
        // d_i = fl(x_i - max) is the rounded argument both implementations use.
        float max_value = x[0];
        for (std::size_t i = 1; i < n; ++i) max_value = std::max(max_value, x[i]);
        std::vector<double> e(n);
        double sum = 0;
        for (std::size_t i = 0; i < n; ++i) sum += e[i] = std::exp(static_cast<double>(x[i] - max_value));
        const double rel_backend = softmax_relative_bound<TestType>(n);
        const double rel_scalar = softmax_relative_bound<backend::scalar>(n);
        INFO("n = " << n);
        double total = 0;
        for (std::size_t i = 0; i < n; ++i) {
            const double exact = e[i] / sum;
            INFO("i = " << i << " got " << got[i] << " scalar " << ref[i] << " exact " << exact);
            REQUIRE(std::abs(got[i] - exact) <= rel_backend * exact);
            REQUIRE(std::abs(double(got[i]) - ref[i]) <= (rel_backend + rel_scalar) * exact);
            total += got[i];
        }
        REQUIRE(std::abs(total - 1.0) <= rel_backend);
    }
}

// silu = g / (1 + e), e = exp(-g) (negation is exact): e within the exp
// budget E; 1 + e within compose(E, u) (e / (1 + e) < 1 only damps E); the
// division adds u. swiglu adds one more product (u).
template <class B>
double silu_relative_bound() {
    return compose(through_division(compose(exp_relative_budget<B>(), u)), u);
}

TEMPLATE_TEST_CASE("silu and swiglu match scalar", "[kernels][exp]", MOELAB_TEST_BACKENDS) {
    std::mt19937 rng(106);
    for (std::size_t n : sweep_lengths(lanes_of<TestType>())) {
        const auto gate = random_values<float>(n, rng, -30, 30);
        const auto up = random_values<float>(n, rng, -2, 2);
        auto s = gate, s_ref = gate;
        Misaligned<float> out(n), out_ref(n);
        kernels::silu(TestType{}, s.data(), n);
        kernels::silu(backend::scalar{}, s_ref.data(), n);
        kernels::swiglu(TestType{}, gate.data(), up.data(), out.data(), n);
        kernels::swiglu(backend::scalar{}, gate.data(), up.data(), out_ref.data(), n);
        const double rel_backend = silu_relative_bound<TestType>();
        const double rel_scalar = silu_relative_bound<backend::scalar>();
        INFO("n = " << n);
        for (std::size_t i = 0; i < n; ++i) {
            const double exact = gate[i] / (1.0 + std::exp(-static_cast<double>(gate[i])));
            const double exact_sw = exact * up[i];
            INFO("gate " << gate[i]);
            REQUIRE(std::abs(s[i] - exact) <= rel_backend * std::abs(exact));
            REQUIRE(std::abs(double(s[i]) - s_ref[i]) <= (rel_backend + rel_scalar) * std::abs(exact));
            REQUIRE(std::abs(out[i] - exact_sw) <= compose(rel_backend, u) * std::abs(exact_sw));
            REQUIRE(std::abs(double(out[i]) - out_ref[i]) <=
                    (compose(rel_backend, u) + compose(rel_scalar, u)) * std::abs(exact_sw));
        }
        // In place: swiglu with out aliasing gate.
        auto in_place = gate;
        kernels::swiglu(TestType{}, in_place.data(), up.data(), in_place.data(), n);
        for (std::size_t i = 0; i < n; ++i) REQUIRE(bits(in_place[i]) == bits(out[i]));
    }
}

TEMPLATE_TEST_CASE("exp-based kernels treat inf, NaN and huge inputs like scalar", "[kernels][exp]", MOELAB_TEST_BACKENDS) {
    const float inf = std::numeric_limits<float>::infinity();
    const std::vector<float> values = {NAN, inf, -inf, 100.0f, -100.0f, 1e30f, -1e30f, 0.0f, -0.0f, 3.0f, -3.0f};
    auto s = values, s_ref = values;
    kernels::silu(TestType{}, s.data(), s.size());
    kernels::silu(backend::scalar{}, s_ref.data(), s_ref.size());
    const double rel = silu_relative_bound<TestType>() + silu_relative_bound<backend::scalar>();
    for (std::size_t i = 0; i < values.size(); ++i) {
        INFO("silu(" << values[i] << ") = " << s[i] << ", scalar " << s_ref[i]);
        REQUIRE(std::isnan(s[i]) == std::isnan(s_ref[i]));
        if (std::isnan(s_ref[i]) || std::isinf(s_ref[i])) REQUIRE((std::isnan(s[i]) || s[i] == s_ref[i]));
        else REQUIRE(std::abs(double(s[i]) - s_ref[i]) <= rel * std::abs(double(s_ref[i])));
    }
    // -inf logits get probability 0; a NaN logit poisons the whole row.
    std::vector<float> logits = {0.0f, -inf, 1.0f, -inf, 2.0f};
    auto ref = logits;
    kernels::softmax(TestType{}, logits.data(), logits.size());
    kernels::softmax(backend::scalar{}, ref.data(), ref.size());
    // Probabilities are at most 1, so the relative bounds bound the difference.
    const double rel_softmax = softmax_relative_bound<TestType>(logits.size()) + softmax_relative_bound<backend::scalar>(logits.size());
    for (std::size_t i = 0; i < logits.size(); ++i) REQUIRE(std::abs(double(logits[i]) - ref[i]) <= rel_softmax);
    REQUIRE(logits[1] == 0.0f);
    REQUIRE(logits[3] == 0.0f);
    std::vector<float> with_nan = {0.0f, NAN, 1.0f};
    kernels::softmax(TestType{}, with_nan.data(), with_nan.size());
    for (float v : with_nan) REQUIRE(std::isnan(v));
}

// ---------------------------------------------------------------------------
// RoPE and vector arithmetic.
// ---------------------------------------------------------------------------
TEMPLATE_TEST_CASE("rope matches scalar in both pairings, partial rot_dims", "[kernels]", MOELAB_TEST_BACKENDS) {
    std::mt19937 rng(107);
    const std::size_t L = lanes_of<TestType>();
    std::set<std::size_t> rots;
    for (std::size_t planes = 0; planes <= 2 * L + 3; ++planes) rots.insert(2 * planes);
    rots.insert(64);
    for (std::size_t rot_dims : rots) {
        const std::size_t head_dim = rot_dims + 5;  // an untouched tail
        const auto x = random_values<float>(head_dim, rng, -2, 2);
        const auto angles = random_values<float>(rot_dims / 2, rng, -3.1f, 3.1f);
        Misaligned<float> cos(rot_dims / 2), sin(rot_dims / 2);
        for (std::size_t i = 0; i < rot_dims / 2; ++i) {
            cos[i] = std::cos(angles[i]);
            sin[i] = std::sin(angles[i]);
        }
        for (RopeStyle style : {RopeStyle::interleaved, RopeStyle::neox}) {
            auto got = x, ref = x;
            kernels::rope(TestType{}, got.data(), rot_dims, style, cos.data(), sin.data());
            kernels::rope(backend::scalar{}, ref.data(), rot_dims, style, cos.data(), sin.data());
            INFO("rot_dims " << rot_dims << (style == RopeStyle::neox ? " neox" : " interleaved"));
            for (std::size_t i = 0; i < rot_dims / 2; ++i) {
                const std::size_t ia = style == RopeStyle::interleaved ? 2 * i : i;
                const std::size_t ib = style == RopeStyle::interleaved ? 2 * i + 1 : i + rot_dims / 2;
                const double a = x[ia], b = x[ib];
                // a c - b s and a s + b c are dot products of length 2: each
                // evaluation within gamma(2) * (sum of |products|) of exact.
                const double bound_a = gamma_n(2) * (std::abs(a * cos[i]) + std::abs(b * sin[i]));
                const double bound_b = gamma_n(2) * (std::abs(a * sin[i]) + std::abs(b * cos[i]));
                REQUIRE(std::abs(got[ia] - (a * cos[i] - b * sin[i])) <= bound_a);
                REQUIRE(std::abs(got[ib] - (a * sin[i] + b * cos[i])) <= bound_b);
                REQUIRE(std::abs(double(got[ia]) - ref[ia]) <= 2 * bound_a);
                REQUIRE(std::abs(double(got[ib]) - ref[ib]) <= 2 * bound_b);
            }
            for (std::size_t i = rot_dims; i < head_dim; ++i) REQUIRE(bits(got[i]) == bits(x[i]));
        }
    }
}

TEMPLATE_TEST_CASE("add, scale and axpy match scalar", "[kernels]", MOELAB_TEST_BACKENDS) {
    std::mt19937 rng(108);
    for (std::size_t n : sweep_lengths(lanes_of<TestType>())) {
        const auto a = random_values<float>(n, rng), b = random_values<float>(n, rng);
        Misaligned<float> sum(n + 1), sum_ref(n);
        sum[n] = 99.0f;
        auto scaled = a, scaled_ref = a, y = b, y_ref = b;
        kernels::add(TestType{}, a.data(), b.data(), sum.data(), n);
        kernels::add(backend::scalar{}, a.data(), b.data(), sum_ref.data(), n);
        kernels::scale(TestType{}, scaled.data(), -3.5f, n);
        kernels::scale(backend::scalar{}, scaled_ref.data(), -3.5f, n);
        kernels::axpy(TestType{}, 0.37f, a.data(), y.data(), n);
        kernels::axpy(backend::scalar{}, 0.37f, a.data(), y_ref.data(), n);
        INFO("n = " << n);
        for (std::size_t i = 0; i < n; ++i) {
            REQUIRE(bits(sum[i]) == bits(sum_ref[i]));        // one correctly rounded add
            REQUIRE(bits(scaled[i]) == bits(scaled_ref[i]));  // one correctly rounded product
            // y + a x: fused or not, within gamma(2) (|a x| + |y|) of exact.
            const double exact = b[i] + 0.37 * a[i];
            const double bound = gamma_n(2) * (std::abs(0.37 * a[i]) + std::abs(b[i]));
            REQUIRE(std::abs(y[i] - exact) <= bound);
            REQUIRE(std::abs(double(y[i]) - y_ref[i]) <= 2 * bound);
        }
        REQUIRE(sum[n] == 99.0f);
        auto in_place = a;  // out aliasing a
        kernels::add(TestType{}, in_place.data(), b.data(), in_place.data(), n);
        for (std::size_t i = 0; i < n; ++i) REQUIRE(bits(in_place[i]) == bits(sum[i]));
    }
}

// ---------------------------------------------------------------------------
// Top-k: exactly the scalar ranking, ties (lowest index first) and NaN included.
// ---------------------------------------------------------------------------
TEMPLATE_TEST_CASE("topk matches scalar exactly, with ties, NaN, infinities and signed zeros", "[kernels][topk]",
                   MOELAB_TEST_BACKENDS) {
    std::mt19937 rng(109);
    const float inf = std::numeric_limits<float>::infinity();
    const std::vector<float> specials = {NAN, -NAN, inf, -inf, 0.0f, -0.0f, 1.0f, -1.0f};
    for (std::size_t n : sweep_lengths(lanes_of<TestType>())) {
        if (n == 0 || n > 300) continue;
        for (int kind = 0; kind < 3; ++kind) {
            Misaligned<float> x(n);
            std::uniform_real_distribution<float> dist(-5, 5);
            std::uniform_int_distribution<int> few(0, 3);
            std::uniform_int_distribution<std::size_t> special(0, specials.size() - 1);
            for (std::size_t i = 0; i < n; ++i) {
                if (kind == 0) x[i] = dist(rng);                            // distinct values
                else if (kind == 1) x[i] = static_cast<float>(few(rng));   // ties everywhere
                else x[i] = specials[special(rng)];                         // NaN, inf, +-0 ties
            }
            for (std::size_t k : {std::size_t{0}, std::size_t{1}, std::size_t{2}, n / 2, n - 1, n}) {
                if (k > n) continue;
                std::vector<std::uint32_t> got(k + 1, 0xDEADBEEF), ref(k + 1, 0xDEADBEEF);
                kernels::topk(TestType{}, x.data(), n, k, got.data());
                kernels::topk(backend::scalar{}, x.data(), n, k, ref.data());
                INFO("n " << n << " k " << k << " kind " << kind);
                REQUIRE(got == ref);  // includes the untouched guard at [k]
            }
        }
    }
}

// ---------------------------------------------------------------------------
// The peak-FLOP probe reports the work it did.
// ---------------------------------------------------------------------------
TEMPLATE_TEST_CASE("fma_peak_probe counts 2 FLOP per lane per FMA, linearly in iterations", "[kernels]",
                   MOELAB_TEST_BACKENDS) {
    const double one = kernels::fma_peak_probe(TestType{}, 1);
    const double many = kernels::fma_peak_probe(TestType{}, 1000);
    REQUIRE(one > 0);
    REQUIRE(many == 1000 * one);
    // A whole number of FMAs on whole vectors per iteration.
    const double fmas_per_iteration = one / (2.0 * static_cast<double>(lanes_of<TestType>()));
    REQUIRE(fmas_per_iteration == std::floor(fmas_per_iteration));
    REQUIRE(kernels::fma_peak_probe(TestType{}, 0) == 0);
}
