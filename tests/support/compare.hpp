// SPDX-License-Identifier: MIT
// Test support: comparing logits with a reference and saying where they differ.
#pragma once

#include <catch2/catch.hpp>

#include <cmath>
#include <cstddef>
#include <sstream>
#include <string>

namespace moelab::test {

struct MaxDiff {
    double value = 0.0;       // max |got - ref| (NaN counts as infinite)
    std::size_t index = 0;    // where
    float got = 0, ref = 0;
};

inline MaxDiff max_abs_diff(const float* got, const float* ref, std::size_t n) {
    MaxDiff m;
    for (std::size_t i = 0; i < n; ++i) {
        const double d = std::isnan(got[i]) || std::isnan(ref[i]) ? INFINITY : std::abs(double(got[i]) - double(ref[i]));
        if (d > m.value || (i == 0 && d == 0)) m = {d, i, got[i], ref[i]};
    }
    return m;
}

// "max |diff| 2.1e-05 at [row 3, col 17]: got 1.234 ref 1.2341"
inline std::string describe(const MaxDiff& m, std::size_t row_length) {
    std::ostringstream s;
    s << "max |diff| " << m.value << " at [row " << m.index / row_length << ", col " << m.index % row_length
      << "]: got " << m.got << ", ref " << m.ref;
    return s.str();
}

inline std::size_t argmax(const float* x, std::size_t n) {
    std::size_t best = 0;
    for (std::size_t i = 1; i < n; ++i)
        if (x[i] > x[best]) best = i;
    return best;
}

}  // namespace moelab::test
