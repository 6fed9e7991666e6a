// SPDX-License-Identifier: MIT
// kernels/cuda/grouped_gemm.cu — the MoE expert products as one grouped GEMM
// over tokens sorted by expert, in three versions from naive to tuned.
//
// Depends on: kernels/cuda/common.cuh, kernels/cuda/gemm_tile.cuh.
//
// CPU reference: step 3 of moelab::ffn_moe (include/moelab/layers/ffn_moe.hpp),
// which calls the scalar matmul once per expert on that expert's tokens.
//
// After sort_by_expert (moe_routing.cu) the n_pairs = n_tokens * k rows are
// grouped: expert e owns sorted rows [expert_begin[e], expert_begin[e+1]),
// and sorted row s is token slot_token[s]. Each group is cut into tiles of
// kGroupTileRows = 64 rows; tile_begin[e] counts the tiles of the experts
// before e, so the tiles of all experts are numbered 0 .. tile_begin[E) - 1
// in one sequence. One launch covers them all:
//
//     blockIdx.x -> global row tile  -> (expert e, row0) by binary search in tile_begin
//     blockIdx.y -> 64 output features
//
// The host does not know tile_begin[E] without waiting for the GPU, so the
// grid is launched for an upper bound, ceil(n_pairs / 64) + min(E, n_pairs)
// (each non-empty expert wastes at most one partial tile), and the blocks
// past tile_begin[E] return at once. No host round trip, one launch per
// projection however many experts are active.
//
//   v1  what one would write first: copy expert_begin to the host (a
//       synchronisation), then one register-tiled launch per non-empty expert.
//       With 128 experts at batch 1..64 that is ~8..128 small launches, each
//       too small to fill the GPU, and launch latency dominates.
//   v2  the one-launch grid above, with a naive body (a thread per output,
//       operands straight from global memory): shows the grid mapping alone.
//   v3  the one-launch grid with the 64x64 register tile of matmul v3.
//
// Every version accumulates each output with fmaf in column order from +0
// (gemm_tile.cuh), so all three agree bitwise with each other and with the
// dense matmul of the same expert on the same token.
#include <algorithm>
#include <vector>

#include "common.cuh"
#include "gemm_tile.cuh"

namespace moelab::cuda {
namespace {

// Finds the expert and rows of global row tile `tile`; false past the last tile.
__device__ bool locate_tile(const std::uint32_t* tile_begin, const std::uint32_t* expert_begin, std::size_t n_expert,
                            std::size_t tile, std::size_t& expert, std::size_t& row0, int& n_rows) {
    if (tile >= tile_begin[n_expert]) return false;
    // Invariant: tile_begin[lo] <= tile < tile_begin[hi]. Empty experts have
    // tile_begin[e] == tile_begin[e + 1] and are skipped by construction.
    std::size_t lo = 0, hi = n_expert;
    while (hi - lo > 1) {
        const std::size_t mid = (lo + hi) / 2;
        if (tile_begin[mid] <= tile) lo = mid;
        else hi = mid;
    }
    expert = lo;
    row0 = expert_begin[lo] + (tile - tile_begin[lo]) * kGroupTileRows;
    const std::size_t remaining = expert_begin[lo + 1] - row0;
    n_rows = remaining < kGroupTileRows ? static_cast<int>(remaining) : static_cast<int>(kGroupTileRows);
    return true;
}

// v1: the tiles of one expert, rows [row_begin, row_begin + count).
template <class T>
__global__ void __launch_bounds__(detail::kTileThreads)
    grouped_v1(const T* __restrict__ w_expert, std::size_t n_out, std::size_t K, const float* __restrict__ x,
               const std::uint32_t* __restrict__ slot_token, std::size_t row_begin, std::size_t count,
               float* __restrict__ y) {
    const std::size_t row0 = row_begin + blockIdx.x * std::size_t{detail::kTileM};
    const std::size_t remaining = row_begin + count - row0;
    const int n_rows = remaining < detail::kTileM ? static_cast<int>(remaining) : detail::kTileM;
    detail::register_tile(w_expert, n_out, K, x, slot_token, row0, n_rows, blockIdx.y * std::size_t{detail::kTileN},
                          y, n_out);
}

template <class T>
__global__ void grouped_v2(const T* __restrict__ w, std::size_t n_expert, std::size_t n_out, std::size_t K,
                           const float* __restrict__ x, const std::uint32_t* __restrict__ slot_token,
                           const std::uint32_t* __restrict__ expert_begin, const std::uint32_t* __restrict__ tile_begin,
                           float* __restrict__ y) {
    std::size_t expert = 0, row0 = 0;
    int n_rows = 0;
    if (!locate_tile(tile_begin, expert_begin, n_expert, blockIdx.x, expert, row0, n_rows)) return;
    const T* w_expert = w + expert * n_out * K;
    const std::size_t col0 = blockIdx.y * std::size_t{detail::kTileN};
    for (int i = threadIdx.x; i < detail::kTileM * detail::kTileN; i += blockDim.x) {
        const int row = i / detail::kTileN;
        const std::size_t col = col0 + i % detail::kTileN;
        if (row >= n_rows || col >= n_out) continue;
        const std::size_t s = row0 + row;
        const float* a = x + (slot_token ? slot_token[s] : s) * K;
        const T* wr = w_expert + col * K;
        float acc = 0.0f;
        for (std::size_t k = 0; k < K; ++k) acc = fmaf(detail::widen(wr[k]), a[k], acc);
        y[s * n_out + col] = acc;
    }
}

template <class T>
__global__ void __launch_bounds__(detail::kTileThreads)
    grouped_v3(const T* __restrict__ w, std::size_t n_expert, std::size_t n_out, std::size_t K,
               const float* __restrict__ x, const std::uint32_t* __restrict__ slot_token,
               const std::uint32_t* __restrict__ expert_begin, const std::uint32_t* __restrict__ tile_begin,
               float* __restrict__ y) {
    std::size_t expert = 0, row0 = 0;
    int n_rows = 0;
    // The whole block takes the same branch, so returning before the tile's barriers is safe.
    if (!locate_tile(tile_begin, expert_begin, n_expert, blockIdx.x, expert, row0, n_rows)) return;
    detail::register_tile(w + expert * n_out * K, n_out, K, x, slot_token, row0, n_rows,
                          blockIdx.y * std::size_t{detail::kTileN}, y, n_out);
}

}  // namespace

void grouped_matmul(GroupedVersion version, const DeviceExperts& w, const float* x, const std::uint32_t* slot_token,
                    std::size_t n_pairs, const ExpertGroups& groups, float* y) {
    if (n_pairs == 0 || w.rows == 0 || w.n_expert == 0) return;
    const std::size_t n_expert = w.n_expert, n_out = w.rows, K = w.cols;
    const std::size_t max_tiles = (n_pairs + kGroupTileRows - 1) / kGroupTileRows + std::min(n_expert, n_pairs);
    if (max_tiles > 0x7FFFFFFFu) throw Error("cuda: grouped_matmul", "too many row tiles for one grid");
    const unsigned col_tiles = detail::blocks_for(n_out, detail::kTileN);

    detail::visit_weights(w.dtype, w.data, "grouped_matmul", [&](const auto* weights) {
        switch (version) {
            case GroupedVersion::v1_launch_per_expert: {
                std::vector<std::uint32_t> begin(n_expert + 1);
                detail::check(cudaMemcpy(begin.data(), groups.expert_begin, begin.size() * sizeof(std::uint32_t),
                                         cudaMemcpyDeviceToHost),
                              "grouped_matmul v1: copy expert offsets to the host");
                for (std::size_t e = 0; e < n_expert; ++e) {
                    const std::size_t count = begin[e + 1] - begin[e];
                    if (count == 0) continue;
                    const dim3 grid(detail::blocks_for(count, detail::kTileM), col_tiles);
                    grouped_v1<<<grid, detail::kTileThreads>>>(weights + e * n_out * K, n_out, K, x, slot_token,
                                                               begin[e], count, y);
                    detail::check_launch("grouped_matmul v1");
                }
                return;
            }
            case GroupedVersion::v2_one_launch_naive: {
                const dim3 grid(static_cast<unsigned>(max_tiles), col_tiles);
                grouped_v2<<<grid, 256>>>(weights, n_expert, n_out, K, x, slot_token, groups.expert_begin,
                                          groups.tile_begin, y);
                return detail::check_launch("grouped_matmul v2");
            }
            case GroupedVersion::v3_one_launch_tiled: {
                const dim3 grid(static_cast<unsigned>(max_tiles), col_tiles);
                grouped_v3<<<grid, detail::kTileThreads>>>(weights, n_expert, n_out, K, x, slot_token,
                                                           groups.expert_begin, groups.tile_begin, y);
                return detail::check_launch("grouped_matmul v3");
            }
        }
        throw Error("cuda: grouped_matmul", "unknown version " + std::to_string(static_cast<int>(version)));
    });
}

}  // namespace moelab::cuda
