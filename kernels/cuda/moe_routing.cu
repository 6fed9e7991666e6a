// SPDX-License-Identifier: MIT
// kernels/cuda/moe_routing.cu — the MoE bookkeeping around the grouped GEMM:
// route (softmax + top-k), sort the (token, expert) pairs by expert, and
// combine the experts' outputs back into token order.
//
// Depends on: kernels/cuda/common.cuh.
//
// CPU reference: moelab::route(backend::scalar, ...) (include/moelab/layers/router.hpp)
// for route(); the counting sort and the weighted sum of ffn_moe()
// (include/moelab/layers/ffn_moe.hpp) for the other two.
//
// None of this is where the time goes (the expert products are), so each is a
// single readable version:
//   route           one thread per token, the scalar algorithm line for line:
//                   max-shifted softmax, insertion top-k with the lowest index
//                   winning ties and NaN ranking last, optional renormalisation.
//   sort_by_expert  a counting sort in four launches: zero the counts
//                   (memset), count with atomics, one thread scans the
//                   E counts into the offsets expert_begin[] and the tile
//                   offsets tile_begin[] (E is at most a few hundred), and
//                   every pair claims a row of its expert's group with an
//                   atomic cursor.
//   moe_combine     one thread per (token, feature): a gather over the k
//                   pairs in order j = 0..k-1, no atomics, so the result is
//                   deterministic whatever order the sort placed rows in.
#include "common.cuh"

namespace moelab::cuda {
namespace {

__global__ void route_kernel(float* logits, std::size_t n_tokens, std::size_t n_expert, std::size_t k,
                             bool norm_topk_prob, std::uint32_t* expert_ids, float* expert_weights) {
    const std::size_t t = blockIdx.x * static_cast<std::size_t>(blockDim.x) + threadIdx.x;
    if (t >= n_tokens) return;
    float* p = logits + t * n_expert;
    std::uint32_t* ids = expert_ids + t * k;
    float* wts = expert_weights + t * k;

    // softmax, shifted by the maximum so expf never overflows
    float max_value = p[0];
    for (std::size_t i = 1; i < n_expert; ++i) max_value = fmaxf(max_value, p[i]);
    float sum = 0.0f;
    for (std::size_t i = 0; i < n_expert; ++i) {
        p[i] = expf(p[i] - max_value);
        sum += p[i];
    }
    const float inv_sum = 1.0f / sum;
    for (std::size_t i = 0; i < n_expert; ++i) p[i] *= inv_sum;

    // top-k by insertion; a later index displaces an earlier one only if strictly greater
    auto key = [&](std::size_t i) { return isnan(p[i]) ? -INFINITY : p[i]; };
    std::size_t kept = 0;
    for (std::size_t i = 0; i < n_expert; ++i) {
        if (kept == k && !(key(i) > key(ids[k - 1]))) continue;
        std::size_t pos = kept < k ? kept++ : k - 1;
        while (pos > 0 && key(i) > key(ids[pos - 1])) {
            ids[pos] = ids[pos - 1];
            --pos;
        }
        ids[pos] = static_cast<std::uint32_t>(i);
    }

    float selected = 0.0f;
    for (std::size_t j = 0; j < k; ++j) selected += wts[j] = p[ids[j]];
    if (norm_topk_prob)
        for (std::size_t j = 0; j < k; ++j) wts[j] /= selected;
}

__global__ void count_kernel(const std::uint32_t* expert_ids, std::size_t n_pairs, std::uint32_t* count) {
    const std::size_t p = blockIdx.x * static_cast<std::size_t>(blockDim.x) + threadIdx.x;
    if (p < n_pairs) atomicAdd(&count[expert_ids[p]], 1u);
}

// One thread: E is small, and a serial scan is the clearest statement of the offsets.
__global__ void scan_kernel(const std::uint32_t* count, std::size_t n_expert, std::uint32_t* expert_begin,
                            std::uint32_t* tile_begin, std::uint32_t* cursor) {
    std::uint32_t rows = 0, tiles = 0;
    for (std::size_t e = 0; e < n_expert; ++e) {
        expert_begin[e] = cursor[e] = rows;
        tile_begin[e] = tiles;
        rows += count[e];
        tiles += (count[e] + kGroupTileRows - 1) / kGroupTileRows;
    }
    expert_begin[n_expert] = rows;
    tile_begin[n_expert] = tiles;
}

__global__ void place_kernel(const std::uint32_t* expert_ids, std::size_t n_pairs, std::size_t k,
                             std::uint32_t* cursor, std::uint32_t* slot_token, std::uint32_t* pair_slot) {
    const std::size_t p = blockIdx.x * static_cast<std::size_t>(blockDim.x) + threadIdx.x;
    if (p >= n_pairs) return;
    const std::uint32_t slot = atomicAdd(&cursor[expert_ids[p]], 1u);
    slot_token[slot] = static_cast<std::uint32_t>(p / k);
    pair_slot[p] = slot;
}

__global__ void combine_kernel(const float* __restrict__ y, const std::uint32_t* __restrict__ pair_slot,
                               const float* __restrict__ expert_weights, std::size_t n_tokens, std::size_t k,
                               std::size_t n_embd, float* __restrict__ out) {
    const std::size_t i = blockIdx.x * static_cast<std::size_t>(blockDim.x) + threadIdx.x;
    if (i >= n_tokens * n_embd) return;
    const std::size_t t = i / n_embd, d = i % n_embd;
    float acc = 0.0f;
    for (std::size_t j = 0; j < k; ++j)
        acc = fmaf(expert_weights[t * k + j], y[pair_slot[t * k + j] * n_embd + d], acc);
    out[i] = acc;
}

constexpr unsigned kThreads = 256;

}  // namespace

void route(float* logits, std::size_t n_tokens, std::size_t n_expert, std::size_t k, bool norm_topk_prob,
           std::uint32_t* expert_ids, float* expert_weights) {
    if (n_tokens == 0) return;
    if (k == 0 || k > n_expert)
        throw Error("cuda: route", "top-k of " + std::to_string(k) + " out of " + std::to_string(n_expert) +
                                       " experts (need 1 <= k <= n_expert)");
    route_kernel<<<detail::blocks_for(n_tokens, 128), 128>>>(logits, n_tokens, n_expert, k, norm_topk_prob,
                                                             expert_ids, expert_weights);
    detail::check_launch("route");
}

// Precondition: every id < n_expert (route() guarantees it).
void sort_by_expert(const std::uint32_t* expert_ids, std::size_t n_tokens, std::size_t k, std::size_t n_expert,
                    const ExpertGroups& g) {
    const std::size_t n_pairs = n_tokens * k;
    if (n_pairs > 0xFFFFFFFFu) throw Error("cuda: sort_by_expert", "more pairs than 32-bit slots");
    detail::check(cudaMemsetAsync(g.count, 0, n_expert * sizeof(std::uint32_t)), "sort_by_expert: cudaMemsetAsync");
    if (n_pairs > 0) {
        count_kernel<<<detail::blocks_for(n_pairs, kThreads), kThreads>>>(expert_ids, n_pairs, g.count);
        detail::check_launch("sort_by_expert: count");
    }
    scan_kernel<<<1, 1>>>(g.count, n_expert, g.expert_begin, g.tile_begin, g.cursor);
    detail::check_launch("sort_by_expert: scan");
    if (n_pairs > 0) {
        place_kernel<<<detail::blocks_for(n_pairs, kThreads), kThreads>>>(expert_ids, n_pairs, k, g.cursor,
                                                                          g.slot_token, g.pair_slot);
        detail::check_launch("sort_by_expert: place");
    }
}

void moe_combine(const float* y, const std::uint32_t* pair_slot, const float* expert_weights, std::size_t n_tokens,
                 std::size_t k, std::size_t n_embd, float* out) {
    if (n_tokens * n_embd == 0) return;
    combine_kernel<<<detail::blocks_for(n_tokens * n_embd, kThreads), kThreads>>>(y, pair_slot, expert_weights,
                                                                                 n_tokens, k, n_embd, out);
    detail::check_launch("moe_combine");
}

}  // namespace moelab::cuda
