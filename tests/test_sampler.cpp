// SPDX-License-Identifier: MIT
#include <catch2/catch.hpp>

#include <cmath>
#include <map>
#include <vector>

#include "moelab/sampler.hpp"

using namespace moelab;

TEST_CASE("greedy picks the argmax, ties to the lowest id", "[sampler]") {
    Sampler s({});
    const std::vector<float> logits{0.5f, 2.0f, -1.0f, 2.0f};
    REQUIRE(s.sample(logits, {}) == 1);
}

TEST_CASE("a seed fixes the sequence; another seed changes it", "[sampler]") {
    const std::vector<float> logits{1.0f, 1.1f, 0.9f, 1.05f, 0.8f, 1.2f, 0.95f, 1.0f};
    auto run = [&](std::uint64_t seed) {
        Sampler s({.temperature = 1.0f, .seed = seed});
        std::vector<std::int32_t> out;
        for (int i = 0; i < 64; ++i) out.push_back(s.sample(logits, {}));
        return out;
    };
    REQUIRE(run(42) == run(42));
    REQUIRE(run(42) != run(43));  // 8^64 sequences; equality would be a broken RNG path
}

TEST_CASE("temperature-1 sampling follows softmax(logits)", "[sampler]") {
    const std::vector<double> p{0.5, 0.3, 0.15, 0.05};
    std::vector<float> logits;
    for (double v : p) logits.push_back(static_cast<float>(std::log(v)));
    Sampler s({.temperature = 1.0f, .seed = 7});
    const int n = 40000;
    std::map<int, int> counts;
    for (int i = 0; i < n; ++i) ++counts[s.sample(logits, {})];
    for (std::size_t i = 0; i < p.size(); ++i) {
        // Binomial count: mean n p, standard deviation sqrt(n p (1 - p)); allow 5 sigma.
        const double mean = n * p[i], sigma = std::sqrt(n * p[i] * (1 - p[i]));
        INFO("token " << i << ": " << counts[static_cast<int>(i)] << " draws, expected " << mean);
        REQUIRE(std::abs(counts[static_cast<int>(i)] - mean) <= 5 * sigma);
    }
}

TEST_CASE("top-k, top-p and min-p cut the tail", "[sampler]") {
    const std::vector<float> logits{std::log(0.5f), std::log(0.3f), std::log(0.15f), std::log(0.05f)};
    auto support = [&](SamplerOptions o) {
        Sampler s(o);
        std::map<int, int> seen;
        for (int i = 0; i < 4000; ++i) ++seen[s.sample(logits, {})];
        std::vector<int> ids;
        for (auto& [id, count] : seen) ids.push_back(id);
        return ids;
    };
    REQUIRE(support({.temperature = 1.0f, .top_k = 1, .seed = 1}) == std::vector<int>{0});
    REQUIRE(support({.temperature = 1.0f, .top_k = 2, .seed = 1}) == std::vector<int>{0, 1});
    // Cumulative 0.5, 0.8, 0.95: p = 0.75 keeps the first two, p = 0.9 three.
    REQUIRE(support({.temperature = 1.0f, .top_p = 0.75f, .seed = 2}) == std::vector<int>{0, 1});
    REQUIRE(support({.temperature = 1.0f, .top_p = 0.9f, .seed = 2}) == std::vector<int>{0, 1, 2});
    // min_p 0.2: threshold 0.1 keeps 0.5, 0.3, 0.15 and drops 0.05.
    REQUIRE(support({.temperature = 1.0f, .min_p = 0.2f, .seed = 3}) == std::vector<int>{0, 1, 2});
    REQUIRE(support({.temperature = 1.0f, .min_p = 0.7f, .seed = 3}) == std::vector<int>{0});
}

TEST_CASE("repetition penalty divides positive and multiplies negative logits", "[sampler]") {
    // Greedy: 2.0 / 1.1 = 1.82 < 1.9, so the repeated token 0 loses to token 1.
    Sampler s({.repeat_penalty = 1.1f});
    const std::vector<float> logits{2.0f, 1.9f, -0.5f};
    const std::vector<std::int32_t> history{0};
    REQUIRE(s.sample(logits, {}) == 0);
    REQUIRE(s.sample(logits, history) == 1);
    // A negative logit gets more negative: -0.5 * 3 = -1.5 < -1.0.
    Sampler s2({.repeat_penalty = 3.0f});
    const std::vector<float> negatives{-0.5f, -1.0f};
    const std::vector<std::int32_t> h2{0};
    REQUIRE(s2.sample(negatives, {}) == 0);
    REQUIRE(s2.sample(negatives, h2) == 1);
    // Only the last repeat_last_n tokens count.
    Sampler s3({.repeat_penalty = 1.1f, .repeat_last_n = 1});
    const std::vector<std::int32_t> h3{0, 2};
    REQUIRE(s3.sample(logits, h3) == 0);
}

TEST_CASE("invalid sampler options are rejected", "[sampler]") {
    REQUIRE_THROWS_AS(Sampler({.top_p = 0.0f}), Error);
    REQUIRE_THROWS_AS(Sampler({.top_p = 1.5f}), Error);
    REQUIRE_THROWS_AS(Sampler({.min_p = 1.0f}), Error);
    REQUIRE_THROWS_AS(Sampler({.repeat_penalty = 0.0f}), Error);
    REQUIRE_THROWS_AS(Sampler({.temperature = NAN}), Error);
    Sampler ok({});
    REQUIRE_THROWS_AS(ok.sample(std::vector<float>{}, {}), Error);
}
