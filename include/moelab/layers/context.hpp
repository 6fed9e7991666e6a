// SPDX-License-Identifier: MIT
// moelab/layers/context.hpp — what every layer function receives besides its
// weights and activations: the backend tag and the thread pool.
//
// Depends on: moelab/thread_pool.hpp, moelab/tensor.hpp.
#pragma once

#include <cstddef>

#include "moelab/tensor.hpp"
#include "moelab/thread_pool.hpp"

namespace moelab {

template <class Backend>
struct Context {
    Backend backend;   // empty tag; selects the kernel overloads
    ThreadPool& pool;  // rows of every matrix product are split over it
};

// Grows a scratch buffer to at least n floats and returns its data. Buffers
// only grow, so steady-state decoding allocates nothing.
inline float* scratch(FloatBuffer& buffer, std::size_t n) {
    if (buffer.size() < n) buffer.resize(n);
    return buffer.data();
}

}  // namespace moelab
