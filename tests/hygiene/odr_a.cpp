// SPDX-License-Identifier: MIT
// With odr_b.cpp: two translation units that include every public header
// (moelab_all_headers.hpp is generated from a glob of include/moelab by
// tests/hygiene/CMakeLists.txt) must link into one program: a non-inline
// function or variable defined in any header would be a duplicate symbol.
#include "moelab_all_headers.hpp"

float odr_b_dot();
bool version_string_matches();

float odr_a_dot() {
    const float w[3] = {1, 2, 3}, x[3] = {4, 5, 6};
    return moelab::kernels::dot(moelab::backend::scalar{}, w, x, 3);
}

int main() {
    // Both TUs compute the same inline function; a wrong link would crash or differ.
    return odr_a_dot() == 32.0f && odr_b_dot() == 32.0f && version_string_matches() ? 0 : 1;
}
