// SPDX-License-Identifier: MIT
// moelab/model/cache.hpp — the state a sequence carries from one forward call
// to the next: a KV cache for attention layers, a recurrent state for Gated
// DeltaNet layers.
//
// Depends on: moelab/model/config.hpp, moelab/tensor.hpp.
//
// Both kinds live behind one interface so the generation loop has no special
// cases: forward() appends n tokens, n_past() says how many are in, reset()
// starts a new sequence. Their costs differ, and that difference is one of the
// things moelab exists to show:
//   attention:   2 * n_head_kv * head_dim floats per token per layer (grows with context)
//   DeltaNet:    n_value_heads * d_v * d_k + (kernel - 1) * channels floats per layer (fixed)
#pragma once

#include <algorithm>
#include <cstddef>
#include <vector>

#include "moelab/model/config.hpp"
#include "moelab/tensor.hpp"

namespace moelab {

struct LayerCache {
    // Attention: (n_head_kv, max_ctx, head_dim), row (g, p) = KV head g at position p.
    // Each KV head's keys are one contiguous matrix, so attention multiplies
    // by it in place (layers/attention.hpp).
    FloatBuffer k;
    FloatBuffer v;     // attention: (n_head_kv, max_ctx, head_dim), as k
    FloatBuffer conv;  // DeltaNet: (conv_kernel - 1, channels): the last inputs of the causal conv, oldest first
    FloatBuffer ssm;   // DeltaNet: (n_value_heads, d_v, d_k): one state matrix S per value head
};

class Cache {
public:
    Cache(const ModelConfig& c, std::size_t max_ctx) : max_ctx_(max_ctx), layers_(c.n_layer) {
        const DeltaNetConfig& dn = c.deltanet;
        const std::size_t channels = 2 * dn.n_key_heads * dn.key_head_dim + dn.n_value_heads * dn.value_head_dim;
        for (std::size_t il = 0; il < c.n_layer; ++il) {
            if (c.layer_kinds[il] == LayerKind::attention) {
                layers_[il].k.assign(max_ctx * c.kv_dim(), 0.0f);
                layers_[il].v.assign(max_ctx * c.kv_dim(), 0.0f);
            } else {
                layers_[il].conv.assign((dn.conv_kernel - 1) * channels, 0.0f);
                layers_[il].ssm.assign(dn.n_value_heads * dn.value_head_dim * dn.key_head_dim, 0.0f);
            }
        }
    }

    std::size_t n_past() const { return n_past_; }
    std::size_t max_ctx() const { return max_ctx_; }
    LayerCache& layer(std::size_t il) { return layers_[il]; }

    void advance(std::size_t n_tokens) { n_past_ += n_tokens; }
    // Starts a new sequence: positions restart at 0 and recurrent states at zero.
    void reset() {
        n_past_ = 0;
        for (auto& l : layers_) {
            std::fill(l.conv.begin(), l.conv.end(), 0.0f);
            std::fill(l.ssm.begin(), l.ssm.end(), 0.0f);
        }
    }

    std::size_t bytes() const {
        std::size_t total = 0;
        for (const auto& l : layers_) total += (l.k.size() + l.v.size() + l.conv.size() + l.ssm.size()) * sizeof(float);
        return total;
    }

private:
    std::size_t max_ctx_;
    std::size_t n_past_ = 0;
    std::vector<LayerCache> layers_;
};

}  // namespace moelab
