// SPDX-License-Identifier: MIT
// kernels/cuda/common.cuh — what every CUDA translation unit shares: error
// checking that throws moelab::Error, widening of stored weights to f32, the
// weight-type switch, and warp reductions.
//
// Depends on: the CUDA runtime, moelab/cuda/ffn_cuda.hpp, moelab/dtype.hpp, moelab/error.hpp.
#pragma once

#include <cuda_runtime.h>

#include <cstddef>
#include <cstdint>
#include <string>

#include "moelab/cuda/ffn_cuda.hpp"
#include "moelab/dtype.hpp"
#include "moelab/error.hpp"

namespace moelab::cuda::detail {

// "matmul: kernel launch failed: cudaErrorInvalidConfiguration (invalid configuration argument)"
inline void check(cudaError_t status, const char* what) {
    if (status != cudaSuccess)
        throw Error(std::string("cuda: ") + what,
                    std::string(cudaGetErrorName(status)) + " (" + cudaGetErrorString(status) + ")");
}
// After a <<<...>>> launch: configuration errors surface here, execution
// errors at the next synchronisation.
inline void check_launch(const char* kernel) { check(cudaGetLastError(), kernel); }

inline unsigned blocks_for(std::size_t n, unsigned threads) {
    return static_cast<unsigned>((n + threads - 1) / threads);
}

// Stored weight -> f32. bf16 is the top half of an f32, so widening is exact.
__device__ __forceinline__ float widen(float w) { return w; }
__device__ __forceinline__ float widen(moelab::bf16 w) {
    return __uint_as_float(static_cast<unsigned>(w.bits) << 16);
}

// Calls f(const T*) with the stored element type; only f32 and bf16 have kernels.
template <class F>
void visit_weights(DType dtype, const void* data, const char* who, F&& f) {
    switch (dtype) {
        case DType::f32: return f(static_cast<const float*>(data));
        case DType::bf16: return f(static_cast<const moelab::bf16*>(data));
        default:
            throw Error(std::string("cuda: ") + who, "weights of type " + std::string(dtype_name(dtype)) +
                                                         " have no CUDA kernel (f32 and bf16 only)");
    }
}

// Sum over the 32 lanes of a warp; every lane gets the total. The tree order
// is fixed, so the result is deterministic run to run.
__device__ __forceinline__ float warp_sum(float v) {
    for (int offset = 16; offset > 0; offset /= 2) v += __shfl_xor_sync(0xffffffffu, v, offset);
    return v;
}

}  // namespace moelab::cuda::detail
