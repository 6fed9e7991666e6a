// SPDX-License-Identifier: MIT
// Structural identities of the FFN layers. They hold for any weights, so the
// weights here are random; each is a property of the mathematics, not of a
// particular checkpoint:
//   1. an MoE layer with one expert and k = 1 is exactly the dense FFN;
//   2. renormalised routing weights sum to 1;
//   3. an MoE layer whose experts are all the same dense FFN equals that FFN;
//   4. a token decoded alone gets the bits it gets in a batch, in every
//      activation mode and weight type (decode skips the gather and rounds
//      its token once: the same rows as the batch's gathered ones).
//   5. an expert product that throws reaches the caller as an exception (the
//      experts' tasks wait on each other inside one fork-join).
#include <catch2/catch.hpp>

#include <cmath>
#include <cstring>
#include <random>
#include <vector>

#include "moelab/layers/ffn_dense.hpp"
#include "moelab/layers/ffn_moe.hpp"
#include "moelab/quant/quant.hpp"
#include "support/backends.hpp"

using namespace moelab;

namespace {

constexpr double kUnitRoundoff = 1.0 / (1 << 24);

struct RandomMatrix {
    std::vector<float> values;
    WeightMatrix view;
    RandomMatrix(std::size_t rows, std::size_t cols, std::mt19937& rng, float scale = 0.2f)
        : values(rows * cols) {
        std::normal_distribution<float> dist(0.0f, scale);
        for (auto& v : values) v = dist(rng);
        view = {DType::f32, reinterpret_cast<const std::byte*>(values.data()), rows, cols};
    }
};

struct RandomFFN {
    RandomMatrix gate, up, down;
    RandomFFN(std::size_t d, std::size_t f, std::mt19937& rng) : gate(f, d, rng), up(f, d, rng), down(d, f, rng) {}
    DenseFFNWeights weights() const { return {gate.view, up.view, down.view}; }
};

std::vector<float> random_activations(std::size_t n, std::mt19937& rng) {
    std::normal_distribution<float> dist(0.0f, 1.0f);
    std::vector<float> x(n);
    for (auto& v : x) v = dist(rng);
    return x;
}

}  // namespace

TEMPLATE_TEST_CASE("MoE with one expert and k = 1 is exactly the dense FFN", "[layers][moe]", MOELAB_TEST_BACKENDS) {
    std::mt19937 rng(21);
    const std::size_t D = 48, F = 80;
    ThreadPool pool(2);
    const Context<TestType> ctx{TestType{}, pool};
    const RandomFFN ffn(D, F, rng);
    const RandomMatrix router(1, D, rng);
    MoEFFNWeights moe_w{router.view, {ffn.weights()}, {}, {}};
    for (bool normalise : {false, true}) {
        const MoEConfig cfg{1, 1, F, 0, normalise, false};
        for (std::size_t n_tokens : {1, 3, 17}) {
            const auto x = random_activations(n_tokens * D, rng);
            std::vector<float> dense_out(n_tokens * D), moe_out(n_tokens * D);
            DenseFFNScratch ds;
            MoEScratch ms;
            ffn_dense(ctx, ffn.weights(), x.data(), n_tokens, dense_out.data(), ds);
            ffn_moe(ctx, moe_w, cfg, x.data(), n_tokens, moe_out.data(), ms);
            // softmax over one expert is exactly 1, and 0 + 1 * y == y: bitwise equal.
            REQUIRE(moe_out == dense_out);
            for (std::size_t t = 0; t < n_tokens; ++t) REQUIRE(ms.expert_weights[t] == 1.0f);
        }
    }
}

TEMPLATE_TEST_CASE("renormalised routing weights sum to 1, best expert first", "[layers][router]", MOELAB_TEST_BACKENDS) {
    std::mt19937 rng(22);
    for (std::size_t E : {8, 64, 128, 512}) {
        for (std::size_t k : {1, 2, 4, 8, 10}) {
            if (k > E) continue;  // a router picks at most all experts
            const std::size_t n_tokens = 5;
            auto logits = random_activations(n_tokens * E, rng);
            const auto raw = logits;
            std::vector<std::uint32_t> ids(n_tokens * k);
            std::vector<float> w(n_tokens * k);
            route(TestType{}, logits.data(), n_tokens, MoEConfig{E, k, 0, 0, true, false}, ids.data(), w.data());
            for (std::size_t t = 0; t < n_tokens; ++t) {
                double sum = 0;
                for (std::size_t j = 0; j < k; ++j) {
                    sum += w[t * k + j];
                    if (j > 0) REQUIRE(raw[t * E + ids[t * k + j - 1]] >= raw[t * E + ids[t * k + j]]);
                }
                // k divisions each rounded (u each) and a k-term sum in double.
                INFO("E = " << E << ", k = " << k);
                REQUIRE(std::abs(sum - 1.0) <= 2 * k * kUnitRoundoff);
            }
        }
    }
}

TEMPLATE_TEST_CASE("MoE whose experts are copies of one dense FFN equals that FFN", "[layers][moe]", MOELAB_TEST_BACKENDS) {
    std::mt19937 rng(23);
    const std::size_t D = 64, F = 96, E = 8, k = 3;
    ThreadPool pool(2);
    const Context<TestType> ctx{TestType{}, pool};
    const RandomFFN ffn(D, F, rng);
    const RandomMatrix router(E, D, rng);
    MoEFFNWeights moe_w{router.view, std::vector<DenseFFNWeights>(E, ffn.weights()), {}, {}};
    const MoEConfig cfg{E, k, F, 0, /*norm_topk_prob=*/true, false};
    const std::size_t n_tokens = 11;
    const auto x = random_activations(n_tokens * D, rng);
    std::vector<float> dense_out(n_tokens * D), moe_out(n_tokens * D);
    DenseFFNScratch ds;
    MoEScratch ms;
    ffn_dense(ctx, ffn.weights(), x.data(), n_tokens, dense_out.data(), ds);
    ffn_moe(ctx, moe_w, cfg, x.data(), n_tokens, moe_out.data(), ms);
    // Every expert returns the same y for a token (the kernels' determinism
    // rule makes y independent of which other tokens share the expert's
    // batch), so out = fl(sum_j w_j y) with sum_j w_j = 1 +- 2k u. Each of the
    // k axpy steps rounds twice (u |partial|, partial <= |y|): |out - y| <= 4k u |y|.
    for (std::size_t i = 0; i < n_tokens * D; ++i) {
        INFO("element " << i);
        REQUIRE(std::abs(moe_out[i] - dense_out[i]) <= 4 * k * kUnitRoundoff * std::abs(dense_out[i]) + 1e-30);
    }
}

TEMPLATE_TEST_CASE("a shared expert adds sigmoid(g . x) times its FFN", "[layers][moe]", MOELAB_TEST_BACKENDS) {
    std::mt19937 rng(24);
    const std::size_t D = 32, F = 40;
    ThreadPool pool(1);
    const Context<TestType> ctx{TestType{}, pool};
    const RandomFFN expert(D, F, rng), shared(D, F, rng);
    const RandomMatrix router(1, D, rng), gate(1, D, rng);
    const MoEFFNWeights with_shared{router.view, {expert.weights()}, shared.weights(), gate.view};
    const MoEFFNWeights without{router.view, {expert.weights()}, {}, {}};
    const MoEConfig cfg{1, 1, F, F, false, true};
    const auto x = random_activations(D, rng);
    std::vector<float> a(D), b(D), s(D);
    MoEScratch ms;
    DenseFFNScratch ds;
    ffn_moe(ctx, with_shared, cfg, x.data(), 1, a.data(), ms);
    ffn_moe(ctx, without, cfg, x.data(), 1, b.data(), ms);
    ffn_dense(ctx, shared.weights(), x.data(), 1, s.data(), ds);
    double logit = 0;
    for (std::size_t d = 0; d < D; ++d) logit += double(gate.values[d]) * x[d];
    const double g = 1.0 / (1.0 + std::exp(-logit));
    for (std::size_t d = 0; d < D; ++d) {
        // a = b + fl(g) s: the gate logit is a D-term dot (gamma(D+1) relative
        // to sum |g_i x_i|, which sigmoid' <= 1/4 shrinks), plus two roundings.
        double mag = 0;
        for (std::size_t i = 0; i < D; ++i) mag += std::abs(double(gate.values[i]) * x[i]);
        const double gate_err = 0.25 * (D + 1) * kUnitRoundoff * mag + 4 * kUnitRoundoff;
        REQUIRE(std::abs(a[d] - (b[d] + g * s[d])) <= gate_err * std::abs(s[d]) + 2 * kUnitRoundoff * std::abs(a[d]) + 1e-30);
    }
}

TEMPLATE_TEST_CASE("MoE: a token alone gets the bits it gets in a batch, every mode and weight type", "[layers][moe]",
                   MOELAB_TEST_BACKENDS) {
    std::mt19937 rng(25);
    const std::size_t D = 256, F = 256, E = 8, k = 3, n_tokens = 6;  // 256: whole Q4_K blocks
    // Each expert's matrices stored as `dtype` (quantize_row: f32 copied, bf16 rounded, blocks quantized).
    struct StoredMatrix {
        std::vector<std::byte> bytes;
        WeightMatrix view;
    };
    auto stored = [&](DType dtype, std::size_t rows, std::size_t cols) {
        const RandomMatrix m(rows, cols, rng);
        StoredMatrix out{std::vector<std::byte>(rows * row_bytes(dtype, cols)), {}};
        quantize_row(dtype, m.values.data(), rows * cols, out.bytes.data());  // rows are whole blocks: one row of them all
        out.view = {dtype, out.bytes.data(), rows, cols};
        return out;
    };
    ThreadPool pool(2);
    const RandomMatrix router(E, D, rng);
    const auto x = random_activations(n_tokens * D, rng);
    using P = ops::ActivationPrecision;
    for (const DType dtype : {DType::f32, DType::bf16, DType::q8_0, DType::q4_k}) {
        std::vector<StoredMatrix> matrices;
        matrices.reserve(3 * E);
        MoEFFNWeights w{router.view, {}, {}, {}};
        for (std::size_t e = 0; e < E; ++e) {
            for (auto [rows, cols] : {std::pair{F, D}, std::pair{F, D}, std::pair{D, F}}) matrices.push_back(stored(dtype, rows, cols));
            w.experts.push_back({matrices[3 * e].view, matrices[3 * e + 1].view, matrices[3 * e + 2].view});
        }
        const MoEConfig cfg{E, k, F, 0, /*norm_topk_prob=*/true, false};
        for (const P mode : {P::f32, P::int8, P::bf16}) {
            INFO(dtype_name(dtype) << ", mode " << static_cast<int>(mode));
            Context<TestType> ctx{TestType{}, pool};
            ctx.activations = mode;
            MoEScratch ms;
            std::vector<float> batch(n_tokens * D), alone(D);
            ffn_moe(ctx, w, cfg, x.data(), n_tokens, batch.data(), ms);
            for (std::size_t t = 0; t < n_tokens; ++t) {
                ffn_moe(ctx, w, cfg, x.data() + t * D, 1, alone.data(), ms);
                INFO("token " << t);
                REQUIRE(std::memcmp(alone.data(), batch.data() + t * D, D * 4) == 0);
            }
        }
    }
}

// ffn_moe runs every expert's gate/up and down tasks in one fork-join, the
// down tasks waiting for their expert's gate/up blocks; a gate/up task that
// throws must end those waits and reach the caller, not hang the pool.
TEMPLATE_TEST_CASE("MoE: an expert whose product throws is an exception, not a hang", "[layers][moe]",
                   MOELAB_TEST_BACKENDS) {
    std::mt19937 rng(26);
    const std::size_t D = 64, F = 64, E = 4, k = 2, n_tokens = 3;
    const RandomMatrix router(E, D, rng);
    std::vector<RandomFFN> ffns;
    for (std::size_t e = 0; e < E; ++e) ffns.emplace_back(D, F, rng);
    const auto x = random_activations(n_tokens * D, rng);
    const MoEConfig cfg{E, k, F, 0, /*norm_topk_prob=*/true, false};
    for (const std::size_t threads : {1, 2, 3}) {
        INFO(threads << " threads");
        ThreadPool pool(threads);
        Context<TestType> ctx{TestType{}, pool};
        MoEFFNWeights w{router.view, {}, {}, {}};
        for (auto& f : ffns) w.experts.push_back(f.weights());
        MoEScratch ms;
        std::vector<float> out(n_tokens * D);
        ffn_moe(ctx, w, cfg, x.data(), n_tokens, out.data(), ms);  // the valid layer runs
        for (auto& e : w.experts) e.gate.dtype = static_cast<DType>(200);  // a type no kernel reads
        CHECK_THROWS_WITH(ffn_moe(ctx, w, cfg, x.data(), n_tokens, out.data(), ms), Catch::Contains("no kernel"));
        CHECK_THROWS_WITH(ffn_moe(ctx, w, cfg, x.data(), 1, out.data(), ms), Catch::Contains("no kernel"));
    }
}
