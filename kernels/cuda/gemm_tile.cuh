// SPDX-License-Identifier: MIT
// kernels/cuda/gemm_tile.cuh — the 64x64 register-tiled block product shared
// by matmul v3 (matmul.cu) and the grouped GEMM v1/v3 (moe_ffn.cu).
//
// Depends on: kernels/cuda/common.cuh.
//
// One block of 256 threads computes a 64 x 64 tile of Y = A W^T:
//   A: activations, 64 rows (tokens) of K floats, optionally gathered through
//      a row index (the MoE case: sorted row s reads token slot_token[s]);
//   W: 64 weight rows (output features) of K stored weights (f32 or bf16).
// K advances in steps of 16. Each step stages A (64 x 16 floats) and W
// (64 x 16, widened to f32) in shared memory, transposed so that a thread
// reads 4 consecutive rows of each with one float4; then every thread
// updates its 4 x 4 outputs, held in registers, with 16 x 16 fused
// multiply-adds. Per step a thread loads 8 floats from shared memory and
// does 16 FMAs (2 FMA per shared load, against 1/2 for the 32x32 one-output
// tile of matmul v2): the arithmetic intensity that register blocking buys.
//
// Each output (row i, column j) is accumulated as acc = fmaf(w[k], a[k], acc)
// for k = 0, 1, ..., K-1 from acc = +0. Out-of-range rows, columns and k are
// loaded as zeros, and fmaf(0, 0, acc) == acc bitwise (acc is never -0, since
// it starts at +0 and round-to-nearest gives +0 for an exact zero sum). So an
// output does not depend on the tile shape, on its position in the tile, or
// on the other rows: bitwise the same as matmul v1/v2 and matvec v1.
//
// Not done (each is the next step on real hardware, and needs measurements
// we do not have): double-buffered cp.async loads, and tensor cores (TF32 or
// bf16 MMA), which would also change the rounding of the activations.
#pragma once

#include <cstddef>
#include <cstdint>

#include "common.cuh"

namespace moelab::cuda::detail {

constexpr int kTileM = 64;  // rows of A (tokens) per tile
constexpr int kTileN = 64;  // rows of W (output features) per tile
constexpr int kTileK = 16;  // depth of one shared-memory stage
constexpr int kTileThreads = 256;
static_assert(kTileM == static_cast<int>(kGroupTileRows), "grouped tiles are register tiles");

// y[(row0 + i) * y_stride + col0 + j] = A[row0 + i] . W[col0 + j] for i < n_rows, col0 + j < n_out.
// A[s] = a + (a_rows ? a_rows[s] : s) * K. Call with blockDim.x == kTileThreads,
// from every thread of the block (it synchronises).
template <class T>
__device__ void register_tile(const T* __restrict__ w, std::size_t n_out, std::size_t K,
                              const float* __restrict__ a, const std::uint32_t* __restrict__ a_rows,
                              std::size_t row0, int n_rows, std::size_t col0, float* __restrict__ y,
                              std::size_t y_stride) {
    __shared__ __align__(16) float a_tile[kTileK][kTileM];  // a_tile[k][i] = A[row0 + i][k0 + k]
    __shared__ __align__(16) float w_tile[kTileK][kTileN];  // w_tile[k][j] = W[col0 + j][k0 + k]

    const int tid = threadIdx.x;
    const int ty = tid / 16, tx = tid % 16;  // this thread owns rows 4ty..4ty+3, columns 4tx..4tx+3

    // Loading: thread -> (tile row `lr`, four consecutive k from `lk`); 4
    // neighbouring threads read 64 contiguous bytes of one row.
    const int lr = tid / 4, lk = (tid % 4) * 4;
    const float* a_src = nullptr;
    if (lr < n_rows) a_src = a + (a_rows ? a_rows[row0 + lr] : row0 + lr) * K;
    const T* w_src = col0 + lr < n_out ? w + (col0 + lr) * K : nullptr;

    float acc[4][4] = {};
    for (std::size_t k0 = 0; k0 < K; k0 += kTileK) {
#pragma unroll
        for (int i = 0; i < 4; ++i) {
            const std::size_t k = k0 + lk + i;
            a_tile[lk + i][lr] = a_src && k < K ? a_src[k] : 0.0f;
            w_tile[lk + i][lr] = w_src && k < K ? widen(w_src[k]) : 0.0f;
        }
        __syncthreads();
#pragma unroll
        for (int k = 0; k < kTileK; ++k) {
            const float4 av = *reinterpret_cast<const float4*>(&a_tile[k][4 * ty]);
            const float4 wv = *reinterpret_cast<const float4*>(&w_tile[k][4 * tx]);
            const float as[4] = {av.x, av.y, av.z, av.w};
            const float ws[4] = {wv.x, wv.y, wv.z, wv.w};
#pragma unroll
            for (int i = 0; i < 4; ++i)
#pragma unroll
                for (int j = 0; j < 4; ++j) acc[i][j] = fmaf(ws[j], as[i], acc[i][j]);
        }
        __syncthreads();
    }

    for (int i = 0; i < 4; ++i) {
        const int row = 4 * ty + i;
        if (row >= n_rows) break;
        for (int j = 0; j < 4; ++j) {
            const std::size_t col = col0 + 4 * tx + j;
            if (col < n_out) y[(row0 + row) * y_stride + col] = acc[i][j];
        }
    }
}

}  // namespace moelab::cuda::detail
