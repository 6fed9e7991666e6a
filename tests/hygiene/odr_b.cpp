// SPDX-License-Identifier: MIT
// The second TU of the ODR pair (see odr_a.cpp): every public header, in reverse order.
#include "moelab_all_headers_reversed.hpp"

#include <cstring>

float odr_b_dot() {
    const float w[3] = {1, 2, 3}, x[3] = {4, 5, 6};
    return moelab::kernels::dot(moelab::backend::scalar{}, w, x, 3);
}

#define MOELAB_HYGIENE_STR2(x) #x
#define MOELAB_HYGIENE_STR(x) MOELAB_HYGIENE_STR2(x)
bool version_string_matches() {
    return std::strcmp(MOELAB_VERSION_STRING, MOELAB_HYGIENE_STR(MOELAB_VERSION_MAJOR) "." MOELAB_HYGIENE_STR(
                                                  MOELAB_VERSION_MINOR) "." MOELAB_HYGIENE_STR(MOELAB_VERSION_PATCH)) == 0;
}
