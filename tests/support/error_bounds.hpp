// SPDX-License-Identifier: MIT
// Test support: the rounding-error arithmetic that tolerances are derived
// from, shared by the kernel tests (which hold every backend to these bounds)
// and the tests that build on those kernels (which may then rely on them).
//
// u = 2^-24 is the unit roundoff of f32, gamma(n) = n u / (1 - n u) (Higham,
// "Accuracy and Stability of Numerical Algorithms", 3.1). For normal results
// one ulp is at most 2u relative.
#pragma once

#include <cstddef>
#include <type_traits>

#include "support/backends.hpp"

namespace moelab::test {

inline constexpr double u = 1.0 / (1 << 24);
inline double gamma_n(double n) { return n * u / (1.0 - n * u); }
// Relative error bounds compose: (1 + a)(1 + b) = 1 + compose(a, b).
inline double compose(double a, double b) { return a + b + a * b; }
// Dividing by a quantity with relative error a: 1 / (1 - a) - 1.
inline double through_division(double a) { return a / (1.0 - a); }

// The exp budget of each backend, as a relative error bound (1 ulp <= 2u):
// glibc expf 1 ulp, Highway's Exp 1 ulp (its documented maximum), xsimd's exp
// 2 ulp (xsimd documents none; its Cephes-style algorithm measured 1.49 ulp at
// worst over 2e6 points on [-87, 88] when test_kernels.cpp was written).
template <class B>
double exp_relative_budget() {
#if MOELAB_HAVE_XSIMD
    if constexpr (std::is_same_v<B, backend::xsimd>) return 2 * 2 * u;
#endif
    return 1 * 2 * u;  // glibc expf (scalar), hwy::Exp
}

// rmsnorm, every backend, each output against the exact value for its f32
// input: the sum of squares gamma(n) relative (positive terms, any order),
// then a division, an add, sqrt, reciprocal and two products.
inline double rmsnorm_relative_bound(std::size_t n) { return gamma_n(static_cast<double>(n)) + 6 * u; }

// softmax of n values, each output against e_i / sum_j e_j with e_i the exact
// exp of the rounded argument d_i = fl(x_i - max) that every backend computes
// (the max is exact in any order). With exp budget E each e_i is within E;
// their sum within compose(E, gamma(n)); dividing by it (through_division),
// then a reciprocal and a product (2u).
template <class B>
double softmax_relative_bound(std::size_t n) {
    const double e = exp_relative_budget<B>();
    const double sum_rel = compose(e, gamma_n(static_cast<double>(n)));
    return compose(compose(e, through_division(sum_rel)), compose(u, u));
}

}  // namespace moelab::test
