// SPDX-License-Identifier: MIT
// A consumer of moelab: one matrix-vector product through the public headers
// with every backend the consumer linked. moelab::moelab gives the scalar
// backend; moelab::highway and moelab::xsimd (linked by the consumer's
// CMakeLists.txt when this moelab build provides them) define
// MOELAB_HAVE_HIGHWAY / MOELAB_HAVE_XSIMD, which make the umbrella header
// include their kernels.
#include <cstdio>

#include "moelab/moelab.hpp"

// The consumer's CMakeLists.txt says which backend targets it linked: each
// one must have brought its definition (and with it, its headers).
#if MOELAB_CONSUMER_LINKED_HIGHWAY && !(defined(MOELAB_HAVE_HIGHWAY) && MOELAB_HAVE_HIGHWAY)
#error "linked moelab::highway, but it did not define MOELAB_HAVE_HIGHWAY"
#endif
#if MOELAB_CONSUMER_LINKED_XSIMD && !(defined(MOELAB_HAVE_XSIMD) && MOELAB_HAVE_XSIMD)
#error "linked moelab::xsimd, but it did not define MOELAB_HAVE_XSIMD"
#endif

namespace {

// W (3 x 37) and x hold small integers: every partial sum is an integer far
// below 2^24, so each backend's result is exact whatever its summation order,
// and must equal the integer product. 37 columns: whole vectors for every
// width up to 32 lanes, then a partial one.
constexpr int kRows = 3, kCols = 37;

int w_value(int i) { return i % 7 - 3; }  // W[r, c] = w_value(r * kCols + c)
int x_value(int c) { return c % 5 - 2; }

template <class Backend>
bool matvec_is_exact(Backend backend) {
    float w[kRows * kCols], x[kCols], y[kRows];
    for (int i = 0; i < kRows * kCols; ++i) w[i] = static_cast<float>(w_value(i));
    for (int c = 0; c < kCols; ++c) x[c] = static_cast<float>(x_value(c));
    moelab::kernels::matvec(backend, w, kRows, kCols, x, y);
    bool exact = true;
    for (int r = 0; r < kRows; ++r) {
        int expected = 0;
        for (int c = 0; c < kCols; ++c) expected += w_value(r * kCols + c) * x_value(c);
        exact = exact && y[r] == static_cast<float>(expected);
    }
    std::printf("  %-8s %-40s %s\n", Backend::name, moelab::kernels::instruction_set(backend), exact ? "exact" : "WRONG");
    return exact;
}

}  // namespace

int main() {
    std::printf("moelab %s consumer:\n", MOELAB_VERSION_STRING);
    bool ok = matvec_is_exact(moelab::backend::scalar{});
#if defined(MOELAB_HAVE_HIGHWAY) && MOELAB_HAVE_HIGHWAY
    ok = matvec_is_exact(moelab::backend::highway{}) && ok;
#endif
#if defined(MOELAB_HAVE_XSIMD) && MOELAB_HAVE_XSIMD
    ok = matvec_is_exact(moelab::backend::xsimd{}) && ok;
#endif
    return ok ? 0 : 1;
}
