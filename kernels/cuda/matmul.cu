// SPDX-License-Identifier: MIT
// kernels/cuda/matmul.cu — Y = X W^T for a batch of tokens (prefill, or the
// tokens an expert received), in three versions from naive to tuned.
//
// Depends on: kernels/cuda/common.cuh, kernels/cuda/gemm_tile.cuh.
//
// CPU reference: moelab::kernels::matmul(backend::scalar, w, rows, cols, x, n_tokens, y, y_stride)
// (include/moelab/kernels/scalar.hpp): y[t * y_stride + r] = sum_c W[r, c] x[t, c].
//
// A batch of B tokens does 2 B FLOP per weight read, so as B grows the
// product turns from bandwidth-bound into compute-bound. What stands in the
// way is data reuse: each weight should be loaded from DRAM once per batch
// and from shared memory as few times as possible.
//
//   v1  one thread per output (t, r), reading W and X straight from global
//       memory: every weight is fetched B times (L2 catches some), and
//       neighbouring threads read rows `cols` apart (uncoalesced).
//   v2  32 x 32 output tiles: a block stages a 32 x 32 slab of X and of W in
//       shared memory (coalesced loads), and each thread does 32 FMAs from
//       it. DRAM traffic falls 32x; the limit becomes shared-memory loads
//       (two per FMA). The W slab is padded to 33 columns so that the
//       column-wise reads hit 32 different banks.
//   v3  64 x 64 tiles with 4 x 4 outputs per thread in registers
//       (gemm_tile.cuh): half a shared-memory load per FMA, and twice the
//       reuse of every staged weight.
//
// All three accumulate each output with fmaf in column order from +0, so
// they agree bitwise with each other and with matvec v1: an output depends
// only on its weight row and its token (the kernel contract's determinism rule).
#include "common.cuh"
#include "gemm_tile.cuh"

namespace moelab::cuda {
namespace {

template <class T>
__global__ void matmul_v1(const T* __restrict__ w, std::size_t rows, std::size_t cols, const float* __restrict__ x,
                          std::size_t n_tokens, float* __restrict__ y, std::size_t y_stride) {
    const std::size_t i = blockIdx.x * static_cast<std::size_t>(blockDim.x) + threadIdx.x;
    if (i >= rows * n_tokens) return;
    const std::size_t t = i / rows, r = i % rows;
    const T* row = w + r * cols;
    const float* xt = x + t * cols;
    float acc = 0.0f;
    for (std::size_t c = 0; c < cols; ++c) acc = fmaf(detail::widen(row[c]), xt[c], acc);
    y[t * y_stride + r] = acc;
}

constexpr int kV2Tile = 32;

// Block (32, 32): threadIdx.y = token in the tile, threadIdx.x = output row in the tile.
template <class T>
__global__ void matmul_v2(const T* __restrict__ w, std::size_t rows, std::size_t cols, const float* __restrict__ x,
                          std::size_t n_tokens, float* __restrict__ y, std::size_t y_stride) {
    __shared__ float x_tile[kV2Tile][kV2Tile];      // x_tile[t][c]
    __shared__ float w_tile[kV2Tile][kV2Tile + 1];  // w_tile[r][c], padded: column reads avoid bank conflicts
    const int tx = threadIdx.x, ty = threadIdx.y;
    const std::size_t t0 = blockIdx.x * static_cast<std::size_t>(kV2Tile);
    const std::size_t r0 = blockIdx.y * static_cast<std::size_t>(kV2Tile);
    const std::size_t t = t0 + ty, r = r0 + tx;
    float acc = 0.0f;
    for (std::size_t c0 = 0; c0 < cols; c0 += kV2Tile) {
        // Thread (ty, tx) loads column c0 + tx of token t0 + ty and of weight row r0 + ty: coalesced in tx.
        const std::size_t c = c0 + tx;
        x_tile[ty][tx] = t < n_tokens && c < cols ? x[t * cols + c] : 0.0f;
        w_tile[ty][tx] = r0 + ty < rows && c < cols ? detail::widen(w[(r0 + ty) * cols + c]) : 0.0f;
        __syncthreads();
#pragma unroll
        for (int k = 0; k < kV2Tile; ++k) acc = fmaf(w_tile[tx][k], x_tile[ty][k], acc);
        __syncthreads();
    }
    if (t < n_tokens && r < rows) y[t * y_stride + r] = acc;
}

template <class T>
__global__ void __launch_bounds__(detail::kTileThreads)
    matmul_v3(const T* __restrict__ w, std::size_t rows, std::size_t cols, const float* __restrict__ x,
              std::size_t n_tokens, float* __restrict__ y, std::size_t y_stride) {
    const std::size_t row0 = blockIdx.x * static_cast<std::size_t>(detail::kTileM);
    const std::size_t remaining = n_tokens - row0;
    const int n_rows = remaining < detail::kTileM ? static_cast<int>(remaining) : detail::kTileM;
    detail::register_tile(w, rows, cols, x, nullptr, row0, n_rows, blockIdx.y * std::size_t{detail::kTileN}, y,
                          y_stride);
}

}  // namespace

void matmul(MatmulVersion version, const DeviceMatrix& w, const float* x, std::size_t n_tokens, float* y,
            std::size_t y_stride) {
    if (w.rows == 0 || n_tokens == 0) return;
    if (y_stride < w.rows) throw Error("cuda: matmul", "y_stride " + std::to_string(y_stride) + " < rows " +
                                                           std::to_string(w.rows));
    detail::visit_weights(w.dtype, w.data, "matmul", [&](const auto* weights) {
        switch (version) {
            case MatmulVersion::v1_naive: {
                constexpr unsigned threads = 256;
                matmul_v1<<<detail::blocks_for(w.rows * n_tokens, threads), threads>>>(weights, w.rows, w.cols, x,
                                                                                        n_tokens, y, y_stride);
                return detail::check_launch("matmul_v1");
            }
            case MatmulVersion::v2_smem_tiled: {
                const dim3 grid(detail::blocks_for(n_tokens, kV2Tile), detail::blocks_for(w.rows, kV2Tile));
                matmul_v2<<<grid, dim3(kV2Tile, kV2Tile)>>>(weights, w.rows, w.cols, x, n_tokens, y, y_stride);
                return detail::check_launch("matmul_v2");
            }
            case MatmulVersion::v3_register_tiled: {
                const dim3 grid(detail::blocks_for(n_tokens, detail::kTileM), detail::blocks_for(w.rows, detail::kTileN));
                matmul_v3<<<grid, detail::kTileThreads>>>(weights, w.rows, w.cols, x, n_tokens, y, y_stride);
                return detail::check_launch("matmul_v3");
            }
        }
        throw Error("cuda: matmul", "unknown version " + std::to_string(static_cast<int>(version)));
    });
}

}  // namespace moelab::cuda
