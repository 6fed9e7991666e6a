// SPDX-License-Identifier: MIT
// Test support: the list of backends this build provides, for
// TEMPLATE_TEST_CASE(..., MOELAB_TEST_BACKENDS). Adding a backend = one line here.
#pragma once

#include "moelab/kernels/scalar.hpp"
#if MOELAB_HAVE_HIGHWAY
#include "moelab/kernels/highway.hpp"
#define MOELAB_TEST_HIGHWAY , moelab::backend::highway
#else
#define MOELAB_TEST_HIGHWAY
#endif
#if MOELAB_HAVE_XSIMD
#include "moelab/kernels/xsimd.hpp"
#define MOELAB_TEST_XSIMD , moelab::backend::xsimd
#else
#define MOELAB_TEST_XSIMD
#endif

#define MOELAB_TEST_BACKENDS moelab::backend::scalar MOELAB_TEST_HIGHWAY MOELAB_TEST_XSIMD

namespace moelab::test {

// Every backend of this build, for a loop over backends inside one test case:
//     AllBackends::each([&](auto backend) { ... });   calls f(B{}) for each B
template <class... Bs>
struct BackendList {
    template <class F>
    static void each(F&& f) {
        (f(Bs{}), ...);
    }
};
using AllBackends = BackendList<MOELAB_TEST_BACKENDS>;

}  // namespace moelab::test
