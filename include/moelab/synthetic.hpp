// SPDX-License-Identifier: MIT
// moelab/synthetic.hpp — random weights with a fixed seed, for benchmarks that
// need no download: a dense SwiGLU FFN and an MoE FFN of chosen sizes.
//
// Depends on: moelab/dtype.hpp, moelab/tensor.hpp, moelab/model/weights.hpp,
//             moelab/quant/quant.hpp (quantized synthetic weights),
//             moelab/model/config.hpp, the standard library.
//
// Weights are uniform on [-sqrt(3/cols), sqrt(3/cols)] — variance 1/cols, the
// usual initialisation scale — so activations stay of order one through the
// layer and the router spreads tokens over experts roughly uniformly, the
// assumption of the cost model in docs/dense-vs-moe.md. (Uniform rather than
// normal because benchmarks fill gigabytes: one multiply per value.) The
// generator is std::mt19937_64 with our own variates, so a seed gives the same
// weights on every platform.
#pragma once

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <numbers>
#include <random>
#include <string>
#include <vector>

#include "moelab/dtype.hpp"
#include "moelab/error.hpp"
#include "moelab/model/config.hpp"
#include "moelab/model/weights.hpp"
#include "moelab/quant/quant.hpp"
#include "moelab/tensor.hpp"

namespace moelab {

class SyntheticRng {
public:
    explicit SyntheticRng(std::uint64_t seed) : engine_(seed) {}
    double uniform() { return static_cast<double>(engine_() >> 11) * 0x1.0p-53; }  // [0, 1)
    double normal() {                                                              // N(0, 1)
        const double u1 = 1.0 - uniform(), u2 = uniform();
        return std::sqrt(-2.0 * std::log(u1)) * std::cos(2.0 * std::numbers::pi * u2);
    }

private:
    std::mt19937_64 engine_;
};

// An owned matrix of random weights stored at `dtype`: f32, f16, bf16, or a
// quantized GGUF type (each row drawn in f32, then quantized by
// quant/quant.hpp; cols must then be a multiple of the block size, 32 or 256).
class SyntheticMatrix {
public:
    SyntheticMatrix() = default;
    SyntheticMatrix(std::size_t rows, std::size_t cols, DType dtype, SyntheticRng& rng) {
        const std::size_t block = dtype_traits(dtype).block_elems;
        if (cols % block != 0)
            throw Error("synthetic weights", "a row of " + std::to_string(cols) + " weights is not a whole number of " +
                                                 std::string(dtype_name(dtype)) + " blocks of " + std::to_string(block));
        const std::size_t stride = row_bytes(dtype, cols);
        storage_.resize((stride * rows + sizeof(float) - 1) / sizeof(float));
        auto* bytes = reinterpret_cast<std::byte*>(storage_.data());
        const double half_width = std::sqrt(3.0 / static_cast<double>(cols));
        std::vector<float> row(cols);
        for (std::size_t r = 0; r < rows; ++r) {
            for (float& v : row) v = static_cast<float>((2.0 * rng.uniform() - 1.0) * half_width);
            quantize_row(dtype, row.data(), cols, bytes + r * stride);  // plain types: a rounding conversion
        }
        view_ = {dtype, bytes, rows, cols};
    }
    // A copy owns its own bytes (the benchmark keeps several copies of a layer
    // so that timed calls stream from memory, not from cache), so the view
    // must point at the copy's storage, not the original's.
    SyntheticMatrix(const SyntheticMatrix& other) : storage_(other.storage_), view_(other.view_) { rebind(); }
    SyntheticMatrix& operator=(const SyntheticMatrix& other) {
        if (this != &other) {
            storage_ = other.storage_;
            view_ = other.view_;
            rebind();
        }
        return *this;
    }
    SyntheticMatrix(SyntheticMatrix&&) noexcept = default;  // a moved vector keeps its buffer
    SyntheticMatrix& operator=(SyntheticMatrix&&) noexcept = default;

    const WeightMatrix& view() const { return view_; }

private:
    void rebind() {
        if (!view_.empty()) view_.data = reinterpret_cast<const std::byte*>(storage_.data());
    }

    FloatBuffer storage_;  // 64-byte aligned, reinterpreted as the dtype's elements
    WeightMatrix view_;
};

struct SyntheticDenseFFN {
    SyntheticMatrix gate, up, down;  // (n_ff, d), (n_ff, d), (d, n_ff)
    SyntheticDenseFFN(std::size_t d_model, std::size_t d_ff, DType dtype, SyntheticRng& rng)
        : gate(d_ff, d_model, dtype, rng), up(d_ff, d_model, dtype, rng), down(d_model, d_ff, dtype, rng) {}
    DenseFFNWeights weights() const { return {gate.view(), up.view(), down.view()}; }
    std::size_t bytes() const { return gate.view().bytes() + up.view().bytes() + down.view().bytes(); }
};

struct SyntheticMoEFFN {
    MoEConfig config;
    SyntheticMatrix router;  // (n_expert, d), kept in f32 as real checkpoints do
    std::vector<SyntheticDenseFFN> experts;

    SyntheticMoEFFN(std::size_t d_model, std::size_t n_expert, std::size_t n_expert_used, std::size_t d_ff_expert,
                    DType dtype, SyntheticRng& rng)
        : config{n_expert, n_expert_used, d_ff_expert, 0, true, false}, router(n_expert, d_model, DType::f32, rng) {
        experts.reserve(n_expert);
        for (std::size_t e = 0; e < n_expert; ++e) experts.emplace_back(d_model, d_ff_expert, dtype, rng);
    }
    MoEFFNWeights weights() const {
        MoEFFNWeights w;
        w.router = router.view();
        for (const auto& e : experts) w.experts.push_back(e.weights());
        return w;
    }
    std::size_t expert_bytes() const { return experts.front().bytes(); }
};

// One gated full-attention layer and one Gated DeltaNet layer with the shapes
// of Qwen3.5-397B-A17B (d_model 4096; attention 32 q / 2 kv heads of 256 with
// an output gate; DeltaNet 16 key / 64 value heads of 128), for timing a
// decode step of each mixer. Each layer's weights (~200 MB in bf16) are far
// larger than any cache, as in a real model.
struct SyntheticMixers {
    ModelConfig config;  // n_layer 2: layer 0 attention, layer 1 Gated DeltaNet
    SyntheticMatrix wq, wk, wv, wo, in_qkv, in_z, in_beta, in_alpha, out;
    std::vector<float> ones, zeros, decay, conv;

    SyntheticMixers(DType dtype, SyntheticRng& rng) {
        ModelConfig& c = config;
        c.arch = Arch::qwen35moe;
        c.n_embd = 4096, c.n_head = 32, c.n_head_kv = 2, c.head_dim = 256, c.n_layer = 2;
        c.rms_eps = 1e-6f;
        c.rope = {10000000.0f, 64, RopeStyle::neox, {}, std::nullopt};
        c.attn_output_gate = c.attn_qk_norm = true;
        c.deltanet = {4, 16, 64, 128, 128, false};
        c.layer_kinds = {LayerKind::attention, LayerKind::gated_deltanet};
        const std::size_t D = c.n_embd, nv = c.deltanet.n_value_heads;
        const std::size_t vd = nv * c.deltanet.value_head_dim, channels = 2 * 16 * 128 + vd;
        wq = SyntheticMatrix(2 * c.q_dim(), D, dtype, rng), wk = SyntheticMatrix(c.kv_dim(), D, dtype, rng);
        wv = SyntheticMatrix(c.kv_dim(), D, dtype, rng), wo = SyntheticMatrix(D, c.q_dim(), dtype, rng);
        in_qkv = SyntheticMatrix(channels, D, dtype, rng), in_z = SyntheticMatrix(vd, D, dtype, rng);
        in_beta = SyntheticMatrix(nv, D, dtype, rng), in_alpha = SyntheticMatrix(nv, D, dtype, rng);
        out = SyntheticMatrix(D, vd, dtype, rng);
        ones.assign(256, 1.0f), zeros.assign(nv, 0.0f), decay.assign(nv, -0.5f), conv.assign(channels * 4, 0.25f);
    }
    AttentionWeights attention() const {
        return {wq.view(), wk.view(), wv.view(), wo.view(), {}, {}, {}, {ones.data(), 256}, {ones.data(), 256}};
    }
    DeltaNetWeights deltanet() const {
        const std::size_t nv = config.deltanet.n_value_heads;
        return {in_qkv.view(), in_z.view(), in_beta.view(), in_alpha.view(), conv,
                {zeros.data(), nv}, {decay.data(), nv}, {ones.data(), 128}, out.view()};
    }
    std::size_t attention_bytes() const { return wq.view().bytes() + wk.view().bytes() + wv.view().bytes() + wo.view().bytes(); }
    std::size_t deltanet_bytes() const {
        return in_qkv.view().bytes() + in_z.view().bytes() + in_beta.view().bytes() + in_alpha.view().bytes() + out.view().bytes();
    }
};

}  // namespace moelab
