// SPDX-License-Identifier: MIT
// A consumer of moelab: uses the scalar backend through the public headers.
#include <cstdio>

#include "moelab/moelab.hpp"

int main() {
    const float w[4] = {1, 2, 3, 4}, x[2] = {1, 1};
    float y[2];
    moelab::kernels::matvec(moelab::backend::scalar{}, w, 2, 2, x, y);
    std::printf("moelab %s consumer: y = [%g, %g]\n", MOELAB_VERSION_STRING, y[0], y[1]);
    return y[0] == 3 && y[1] == 7 ? 0 : 1;
}
