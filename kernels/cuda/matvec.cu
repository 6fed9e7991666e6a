// SPDX-License-Identifier: MIT
// kernels/cuda/matvec.cu — y = W x, the decode product, in three versions
// from naive to tuned.
//
// Depends on: kernels/cuda/common.cuh.
//
// CPU reference: moelab::kernels::matvec(backend::scalar, w, rows, cols, x, y)
// (include/moelab/kernels/scalar.hpp), y[r] = sum_c W[r, c] x[c] accumulated
// in column order. tests/cuda/test_cuda.cpp compares every version with it.
//
// A matrix-vector product reads each weight once and does one multiply-add
// with it: 2 FLOP per 2 or 4 bytes, far below any GPU's FLOP/byte balance
// (an H100 needs ~100 FLOP per byte to be compute-bound). So the only goal is
// to stream W at the memory bandwidth, and the versions are steps toward that:
//
//   v1  one thread per row. Neighbouring threads read addresses `cols` apart,
//       so a warp's 32 loads touch 32 different cache lines per step: most of
//       each 32-byte sector fetched is thrown away before it is reused. It is
//       the exact order of the scalar loop (and of every matmul version), so
//       it is also the bitwise reference inside the GPU code.
//   v2  one warp per row. Lane l reads columns l, l+32, ...: a warp step reads
//       128 contiguous bytes (f32), fully coalesced. Lanes are then summed by a
//       shuffle tree, so the rounding differs from v1 (same error bound).
//   v3  v2 with 16-byte loads (float4, or 8 bf16 in a uint4): a quarter of the
//       load instructions, more bytes in flight per thread, which is what it
//       takes to saturate HBM. Needs cols % 8 == 0 and 16-byte aligned W and
//       x; otherwise it runs v2.
#include "common.cuh"

namespace moelab::cuda {
namespace {

constexpr unsigned kThreads = 256;
constexpr unsigned kWarpsPerBlock = kThreads / 32;

template <class T>
__global__ void matvec_v1(const T* __restrict__ w, std::size_t rows, std::size_t cols, const float* __restrict__ x,
                          float* __restrict__ y) {
    const std::size_t r = blockIdx.x * static_cast<std::size_t>(blockDim.x) + threadIdx.x;
    if (r >= rows) return;
    const T* row = w + r * cols;
    float acc = 0.0f;
    for (std::size_t c = 0; c < cols; ++c) acc = fmaf(detail::widen(row[c]), x[c], acc);
    y[r] = acc;
}

template <class T>
__global__ void matvec_v2(const T* __restrict__ w, std::size_t rows, std::size_t cols, const float* __restrict__ x,
                          float* __restrict__ y) {
    const std::size_t r = blockIdx.x * static_cast<std::size_t>(kWarpsPerBlock) + threadIdx.x / 32;
    const unsigned lane = threadIdx.x % 32;
    if (r >= rows) return;  // the whole warp leaves together: r is the same for its 32 lanes
    const T* row = w + r * cols;
    float acc = 0.0f;
    for (std::size_t c = lane; c < cols; c += 32) acc = fmaf(detail::widen(row[c]), x[c], acc);
    acc = detail::warp_sum(acc);
    if (lane == 0) y[r] = acc;
}

// 8 consecutive weights widened to f32, from one 16-byte load (bf16) or two (f32).
__device__ __forceinline__ void load8(const float* p, float (&v)[8]) {
    const float4 a = *reinterpret_cast<const float4*>(p);
    const float4 b = *reinterpret_cast<const float4*>(p + 4);
    v[0] = a.x; v[1] = a.y; v[2] = a.z; v[3] = a.w;
    v[4] = b.x; v[5] = b.y; v[6] = b.z; v[7] = b.w;
}
__device__ __forceinline__ void load8(const moelab::bf16* p, float (&v)[8]) {
    const uint4 q = *reinterpret_cast<const uint4*>(p);
    const unsigned words[4] = {q.x, q.y, q.z, q.w};
    for (int i = 0; i < 4; ++i) {  // little-endian: the lower half is the earlier element
        v[2 * i] = __uint_as_float(words[i] << 16);
        v[2 * i + 1] = __uint_as_float(words[i] & 0xFFFF0000u);
    }
}

template <class T>
__global__ void matvec_v3(const T* __restrict__ w, std::size_t rows, std::size_t cols, const float* __restrict__ x,
                          float* __restrict__ y) {
    const std::size_t r = blockIdx.x * static_cast<std::size_t>(kWarpsPerBlock) + threadIdx.x / 32;
    const unsigned lane = threadIdx.x % 32;
    if (r >= rows) return;
    const T* row = w + r * cols;
    float acc = 0.0f;
    for (std::size_t c = lane * 8; c < cols; c += 32 * 8) {
        float wv[8], xv[8];
        load8(row + c, wv);
        load8(x + c, xv);
#pragma unroll
        for (int i = 0; i < 8; ++i) acc = fmaf(wv[i], xv[i], acc);
    }
    acc = detail::warp_sum(acc);
    if (lane == 0) y[r] = acc;
}

bool aligned16(const void* p) { return reinterpret_cast<std::uintptr_t>(p) % 16 == 0; }

}  // namespace

void matvec(MatvecVersion version, const DeviceMatrix& w, const float* x, float* y) {
    if (w.rows == 0) return;
    detail::visit_weights(w.dtype, w.data, "matvec", [&](const auto* weights) {
        const unsigned warp_blocks = detail::blocks_for(w.rows, kWarpsPerBlock);
        switch (version) {
            case MatvecVersion::v1_thread_per_row:
                matvec_v1<<<detail::blocks_for(w.rows, kThreads), kThreads>>>(weights, w.rows, w.cols, x, y);
                return detail::check_launch("matvec_v1");
            case MatvecVersion::v3_warp_vectorized:
                if (w.cols % 8 == 0 && aligned16(weights) && aligned16(x)) {
                    matvec_v3<<<warp_blocks, kThreads>>>(weights, w.rows, w.cols, x, y);
                    return detail::check_launch("matvec_v3");
                }
                [[fallthrough]];  // rows of 8-element chunks only; v2 handles the rest
            case MatvecVersion::v2_warp_per_row:
                matvec_v2<<<warp_blocks, kThreads>>>(weights, w.rows, w.cols, x, y);
                return detail::check_launch("matvec_v2");
        }
        throw Error("cuda: matvec", "unknown version " + std::to_string(static_cast<int>(version)));
    });
}

}  // namespace moelab::cuda
