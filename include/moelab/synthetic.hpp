// SPDX-License-Identifier: MIT
// moelab/synthetic.hpp — random weights with a fixed seed, for benchmarks that
// need no download: a dense SwiGLU FFN and an MoE FFN of chosen sizes.
//
// Depends on: moelab/dtype.hpp, moelab/tensor.hpp, moelab/model/weights.hpp,
//             moelab/model/config.hpp, the standard library.
//
// Values are N(0, 1/cols), the usual initialisation scale, so activations stay
// of order one through the layer and the router spreads tokens over experts
// roughly uniformly — the assumption of the cost model in docs/dense-vs-moe.md.
// The generator is std::mt19937_64 with our own normal variate (Box-Muller on
// 53-bit uniforms), so a seed gives the same weights on every platform.
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

// An owned matrix of random weights stored at `dtype` (f32, f16 or bf16).
class SyntheticMatrix {
public:
    SyntheticMatrix() = default;
    SyntheticMatrix(std::size_t rows, std::size_t cols, DType dtype, SyntheticRng& rng) {
        if (dtype != DType::f32 && dtype != DType::f16 && dtype != DType::bf16)
            throw Error("synthetic weights", "dtype " + std::string(dtype_name(dtype)) + " is not supported (f32, f16, bf16)");
        storage_.resize((row_bytes(dtype, cols) * rows + sizeof(float) - 1) / sizeof(float));
        auto* bytes = reinterpret_cast<std::byte*>(storage_.data());
        const double scale = 1.0 / std::sqrt(static_cast<double>(cols));
        for (std::size_t i = 0; i < rows * cols; ++i) {
            const float v = static_cast<float>(rng.normal() * scale);
            if (dtype == DType::f32) reinterpret_cast<float*>(bytes)[i] = v;
            else if (dtype == DType::f16) reinterpret_cast<f16*>(bytes)[i] = f32_to_f16(v);
            else reinterpret_cast<bf16*>(bytes)[i] = f32_to_bf16(v);
        }
        view_ = {dtype, bytes, rows, cols};
    }
    const WeightMatrix& view() const { return view_; }

private:
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

}  // namespace moelab
