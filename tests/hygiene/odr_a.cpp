// SPDX-License-Identifier: MIT
// With odr_b.cpp: two translation units that include everything must link.
#include "moelab/moelab.hpp"

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
