// SPDX-License-Identifier: MIT
// moelab/layers/router.hpp — the MoE router: which k experts each token uses,
// and with what weights.
//
// Depends on: moelab/kernels/backend.hpp (and the backend's kernel header), moelab/model/config.hpp.
//
//     p = softmax(W_router x)                 one probability per expert, (n_expert)
//     S = top-k indices of p                  ties: the lowest expert index wins
//     w_e = p_e for e in S                    (Qwen2-MoE: used as is)
//     w_e = p_e / sum_{j in S} p_j            (norm_topk_prob: Mixtral, Qwen3-MoE, Qwen3.5)
//     PyTorch: w, S = torch.topk(F.softmax(logits, -1), k); w /= w.sum(-1, keepdim=True)
//
// Selecting on p rather than on the logits gives the same set (softmax is
// monotonic) and is what the reference engines do, so ties break the same way.
#pragma once

#include <cstddef>
#include <cstdint>

#include "moelab/kernels/backend.hpp"
#include "moelab/model/config.hpp"

namespace moelab {

// logits: (n_tokens, n_expert), overwritten with the probabilities.
// expert_ids, weights: (n_tokens, n_expert_used), best expert first.
template <class Backend>
void route(Backend backend, float* logits, std::size_t n_tokens, const MoEConfig& moe, std::uint32_t* expert_ids,
           float* weights) {
    const std::size_t E = moe.n_expert, k = moe.n_expert_used;
    for (std::size_t t = 0; t < n_tokens; ++t) {
        float* p = logits + t * E;
        std::uint32_t* ids = expert_ids + t * k;
        float* w = weights + t * k;
        softmax(backend, p, E);
        topk(backend, p, E, k, ids);
        float sum = 0.0f;
        for (std::size_t j = 0; j < k; ++j) sum += w[j] = p[ids[j]];
        if (moe.norm_topk_prob)
            for (std::size_t j = 0; j < k; ++j) w[j] /= sum;
    }
}

}  // namespace moelab
