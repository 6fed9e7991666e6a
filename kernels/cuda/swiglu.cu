// SPDX-License-Identifier: MIT
// kernels/cuda/swiglu.cu — out = silu(gate) * up (Shazeer 2020), in two
// versions.
//
// Depends on: kernels/cuda/common.cuh.
//
// CPU reference: moelab::kernels::swiglu(backend::scalar, gate, up, out, n):
// out_i = gate_i / (1 + exp(-gate_i)) * up_i, the formula used here too (expf
// is CUDA's full-precision exp, at most 2 ulp off; no fast-math).
//
// Elementwise: 12 bytes of traffic per element and ~20 instructions, so it is
// bandwidth-bound and the versions differ only in how they move bytes.
//   v1  one thread per element, 4-byte loads.
//   v2  16-byte loads and stores (float4) and a grid-stride loop sized to the
//       GPU, fewer instructions per byte; a scalar tail handles n % 4. Needs
//       16-byte aligned pointers, else it runs v1.
// `out` may alias `gate` or `up` (the FFN updates gate in place), so no
// pointer is declared __restrict__.
#include "common.cuh"

namespace moelab::cuda {
namespace {

__device__ __forceinline__ float swiglu1(float g, float u) { return g / (1.0f + expf(-g)) * u; }

__global__ void swiglu_v1(const float* gate, const float* up, float* out, std::size_t n) {
    const std::size_t i = blockIdx.x * static_cast<std::size_t>(blockDim.x) + threadIdx.x;
    if (i < n) out[i] = swiglu1(gate[i], up[i]);
}

__global__ void swiglu_v2(const float* gate, const float* up, float* out, std::size_t n) {
    const std::size_t n4 = n / 4;
    const std::size_t stride = static_cast<std::size_t>(gridDim.x) * blockDim.x;
    const std::size_t first = blockIdx.x * static_cast<std::size_t>(blockDim.x) + threadIdx.x;
    for (std::size_t i = first; i < n4; i += stride) {
        const float4 g = reinterpret_cast<const float4*>(gate)[i];
        const float4 u = reinterpret_cast<const float4*>(up)[i];
        reinterpret_cast<float4*>(out)[i] =
            make_float4(swiglu1(g.x, u.x), swiglu1(g.y, u.y), swiglu1(g.z, u.z), swiglu1(g.w, u.w));
    }
    for (std::size_t i = 4 * n4 + first; i < n; i += stride) out[i] = swiglu1(gate[i], up[i]);
}

bool aligned16(const void* p) { return reinterpret_cast<std::uintptr_t>(p) % 16 == 0; }

}  // namespace

void swiglu(SwigluVersion version, const float* gate, const float* up, float* out, std::size_t n) {
    if (n == 0) return;
    constexpr unsigned threads = 256;
    switch (version) {
        case SwigluVersion::v2_vectorized:
            if (aligned16(gate) && aligned16(up) && aligned16(out)) {
                int device = 0, sms = 0;
                detail::check(cudaGetDevice(&device), "cudaGetDevice");
                detail::check(cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, device),
                              "cudaDeviceGetAttribute");
                // Enough blocks to fill every SM several times over, no more than the work needs.
                const unsigned needed = detail::blocks_for((n + 3) / 4, threads);
                const unsigned blocks = needed < 8u * sms ? needed : 8u * sms;
                swiglu_v2<<<blocks, threads>>>(gate, up, out, n);
                return detail::check_launch("swiglu_v2");
            }
            [[fallthrough]];
        case SwigluVersion::v1_naive:
            swiglu_v1<<<detail::blocks_for(n, threads), threads>>>(gate, up, out, n);
            return detail::check_launch("swiglu_v1");
    }
    throw Error("cuda: swiglu", "unknown version " + std::to_string(static_cast<int>(version)));
}

}  // namespace moelab::cuda
