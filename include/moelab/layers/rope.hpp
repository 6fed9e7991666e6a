// SPDX-License-Identifier: MIT
// moelab/layers/rope.hpp — the rotation angles of rotary position embeddings.
//
// Depends on: moelab/model/config.hpp, moelab/tensor.hpp.
//
// Plane i of a head turns by angle(p, i) = p * theta^(-2i / rot_dims) / divisor_i
// at position p (Su et al. 2021; divisor_i = 1 unless Llama 3.1 scaling is on).
// The kernels take precomputed cosines and sines; this computes them once per
// forward call for all its positions, in double precision, and every layer
// shares them.
#pragma once

#include <cmath>
#include <cstddef>

#include "moelab/model/config.hpp"
#include "moelab/tensor.hpp"

namespace moelab {

struct RopeTable {
    std::size_t n_planes = 0;  // rot_dims / 2
    FloatBuffer cos, sin;      // (n_tokens, n_planes): row t is position pos0 + t

    void compute(const RopeConfig& rope, std::size_t pos0, std::size_t n_tokens) {
        n_planes = rope.rot_dims / 2;
        cos.resize(n_tokens * n_planes);
        sin.resize(n_tokens * n_planes);
        for (std::size_t i = 0; i < n_planes; ++i) {
            double inv_freq = std::pow(static_cast<double>(rope.theta),
                                       -2.0 * static_cast<double>(i) / static_cast<double>(rope.rot_dims));
            if (!rope.freq_divisors.empty()) inv_freq /= rope.freq_divisors[i];
            for (std::size_t t = 0; t < n_tokens; ++t) {
                const double angle = static_cast<double>(pos0 + t) * inv_freq;
                cos[t * n_planes + i] = static_cast<float>(std::cos(angle));
                sin[t * n_planes + i] = static_cast<float>(std::sin(angle));
            }
        }
    }
    const float* cos_at(std::size_t t) const { return cos.data() + t * n_planes; }
    const float* sin_at(std::size_t t) const { return sin.data() + t * n_planes; }
};

}  // namespace moelab
