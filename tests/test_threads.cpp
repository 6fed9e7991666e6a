// SPDX-License-Identifier: MIT
// Thread count never changes a result: for every f32 fixture model (dense,
// MoE, hybrid), with every backend, a prefill of a whole prompt and then one
// decode step through the KV cache give BITWISE identical logits with 1, 2, 3
// and 5 threads. The kernel contract makes y[t, r] depend only on weight row r
// and token t, the pool hands each task its own output rows, attention gives
// each (KV group, token) its own output slice, and the MoE layer mixes expert
// outputs in a fixed order; this test is what holds all of that to account.
// 3 and 5 threads split rows and heads at boundaries 2 does not (uneven
// chunks, more tasks than heads); 5 is more threads than this machine's cores.
#include <catch2/catch.hpp>

#include <cstring>
#include <filesystem>
#include <string>
#include <vector>

#include "support/backends.hpp"
#include "support/fixtures.hpp"
#include "support/transformers.hpp"

using namespace moelab;

namespace {

// Logits of prefill (every position) followed by one decode step, concatenated.
template <class Backend>
std::vector<float> prefill_then_decode(const Model& model, std::size_t n_threads, const std::vector<std::int32_t>& prompt,
                                       std::int32_t next) {
    ThreadPool pool(n_threads);
    Transformer<Backend> transformer(model, pool);
    const std::size_t V = model.config().n_vocab;
    std::vector<float> logits((prompt.size() + 1) * V);
    transformer.forward(prompt, logits.data());
    transformer.forward(std::span(&next, 1), logits.data() + prompt.size() * V);
    return logits;
}

}  // namespace

TEMPLATE_TEST_CASE("logits are bitwise identical for 1, 2, 3 and 5 threads", "[forward][threads][fixtures]",
                   MOELAB_TEST_BACKENDS) {
    MOELAB_REQUIRE_FIXTURES();
    std::size_t models = 0, moe_models = 0;
    const nlohmann::json manifest = test::manifest();  // kept alive: the loop iterates into it
    for (const auto& m : manifest["models"]) {
        if (m["weights"] != "f32" || !m.contains("gguf")) continue;
        const Model model = Model::load(test::fixtures_dir() / m["gguf"].get<std::string>());
        const auto prompt = m["cases"][0]["tokens"].get<std::vector<std::int32_t>>();
        REQUIRE(prompt.size() >= 2);  // a real batch: matmul, causal masking, MoE grouping
        const std::int32_t next = prompt.front();
        const auto reference = prefill_then_decode<TestType>(model, 1, prompt, next);
        for (std::size_t n_threads : {2, 3, 5}) {
            const auto logits = prefill_then_decode<TestType>(model, n_threads, prompt, next);
            INFO(m["name"].get<std::string>() << " with " << TestType::name << ", " << n_threads << " threads vs 1");
            REQUIRE(logits.size() == reference.size());
            CHECK(std::memcmp(logits.data(), reference.data(), logits.size() * sizeof(float)) == 0);
        }
        ++models;
        moe_models += model.config().is_moe();
    }
    // Both kinds of FFN must have been exercised.
    REQUIRE(moe_models > 0);
    REQUIRE(models > moe_models);
}
