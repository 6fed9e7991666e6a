// SPDX-License-Identifier: MIT
// Test and benchmark support for the CUDA kernels: random weights on the host
// in f32 or bf16, their copies on the device, and the same weights as the
// CPU layers' WeightMatrix / DenseFFNWeights / MoEFFNWeights views, so that
// one set of numbers feeds both the GPU and the scalar reference.
// (Used by tests/cuda/test_cuda.cpp and bench/cuda/bench_cuda.cpp.)
#pragma once

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <vector>

#include "moelab/cuda/ffn_cuda.hpp"
#include "moelab/dtype.hpp"
#include "moelab/model/config.hpp"
#include "moelab/model/weights.hpp"
#include "moelab/tensor.hpp"

namespace moelab::test {

// SplitMix64: small, seedable, the same sequence on every platform.
class Rng {
public:
    explicit Rng(std::uint64_t seed) : state_(seed) {}
    std::uint64_t next() {
        std::uint64_t z = (state_ += 0x9E3779B97F4A7C15ull);
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
        return z ^ (z >> 31);
    }
    // Uniform in [-scale, scale).
    float uniform(float scale) {
        const double unit = static_cast<double>(next() >> 11) * 0x1.0p-53;  // [0, 1)
        return static_cast<float>((2.0 * unit - 1.0) * scale);
    }
    std::vector<float> vector(std::size_t n, float scale) {
        std::vector<float> v(n);
        for (float& x : v) x = uniform(scale);
        return v;
    }

private:
    std::uint64_t state_;
};

// A (rows, cols) weight matrix stored as f32 or bf16 on the host and on the device.
struct TestMatrix {
    DType dtype = DType::f32;
    std::size_t rows = 0, cols = 0;
    std::vector<float> f32;              // the stored values when dtype == f32
    std::vector<moelab::bf16> b16;       // the stored values when dtype == bf16
    std::vector<float> widened;          // (rows, cols): what both sides multiply with (exact)
    cuda::DeviceBuffer device;

    TestMatrix(Rng& rng, DType type, std::size_t n_rows, std::size_t n_cols, float scale)
        : dtype(type), rows(n_rows), cols(n_cols), widened(rng.vector(n_rows * n_cols, scale)) {
        if (dtype == DType::bf16) {
            b16.resize(widened.size());
            for (std::size_t i = 0; i < widened.size(); ++i) {
                b16[i] = f32_to_bf16(widened[i]);
                widened[i] = bf16_to_f32(b16[i]);
            }
        } else {
            f32 = widened;
        }
        device = cuda::DeviceBuffer(bytes());
        device.upload(host_data(), bytes());
    }
    const void* host_data() const {
        return dtype == DType::bf16 ? static_cast<const void*>(b16.data()) : static_cast<const void*>(f32.data());
    }
    std::size_t bytes() const { return rows * cols * (dtype == DType::bf16 ? 2 : 4); }

    WeightMatrix host() const { return {dtype, static_cast<const std::byte*>(host_data()), rows, cols}; }
    cuda::DeviceMatrix gpu() const { return {dtype, device.data(), rows, cols}; }
    // This matrix as n_expert stacked (rows / n_expert, cols) matrices.
    cuda::DeviceExperts gpu_experts(std::size_t n_expert) const {
        return {dtype, device.data(), n_expert, rows / n_expert, cols};
    }
    WeightMatrix host_expert(std::size_t e, std::size_t n_expert) const {
        const std::size_t per = rows / n_expert;
        return host().slice_rows(e * per, per);
    }
};

// A dense SwiGLU FFN: gate, up (n_ff, n_embd), down (n_embd, n_ff).
struct TestDenseFFN {
    TestMatrix gate, up, down;
    TestDenseFFN(Rng& rng, DType dtype, std::size_t n_embd, std::size_t n_ff)
        : gate(rng, dtype, n_ff, n_embd, scale(n_embd)), up(rng, dtype, n_ff, n_embd, scale(n_embd)),
          down(rng, dtype, n_embd, n_ff, scale(n_ff)) {}
    // Uniform(-1/sqrt(fan_in), 1/sqrt(fan_in)) keeps activations O(1) layer to layer.
    static float scale(std::size_t fan_in) { return 1.0f / std::sqrt(static_cast<float>(fan_in)); }
    DenseFFNWeights host() const { return {gate.host(), up.host(), down.host()}; }
    cuda::DenseFFN gpu() const { return {gate.gpu(), up.gpu(), down.gpu()}; }
};

// An MoE FFN with n_expert experts of width n_ff_exp, stacked as GGUF's *_exps tensors.
struct TestMoEFFN {
    std::size_t n_expert, k;
    bool norm_topk_prob;
    TestMatrix router, gate, up, down;
    TestMoEFFN(Rng& rng, DType dtype, std::size_t n_embd, std::size_t n_ff_exp, std::size_t n_expert_,
               std::size_t k_, bool norm)
        : n_expert(n_expert_), k(k_), norm_topk_prob(norm),
          router(rng, DType::f32, n_expert_, n_embd, 4.0f / std::sqrt(static_cast<float>(n_embd))),
          gate(rng, dtype, n_expert_ * n_ff_exp, n_embd, TestDenseFFN::scale(n_embd)),
          up(rng, dtype, n_expert_ * n_ff_exp, n_embd, TestDenseFFN::scale(n_embd)),
          down(rng, dtype, n_expert_ * n_embd, n_ff_exp, TestDenseFFN::scale(n_ff_exp)) {}
    MoEConfig config() const { return {n_expert, k, gate.rows / n_expert, 0, norm_topk_prob, false}; }
    MoEFFNWeights host() const {
        MoEFFNWeights w;
        w.router = router.host();
        for (std::size_t e = 0; e < n_expert; ++e)
            w.experts.push_back({gate.host_expert(e, n_expert), up.host_expert(e, n_expert),
                                 down.host_expert(e, n_expert)});
        return w;
    }
    cuda::MoEFFN gpu() const {
        return {router.gpu(), gate.gpu_experts(n_expert), up.gpu_experts(n_expert), down.gpu_experts(n_expert), k,
                norm_topk_prob};
    }
};

}  // namespace moelab::test
