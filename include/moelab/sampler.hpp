// SPDX-License-Identifier: MIT
// moelab/sampler.hpp — choosing the next token from the logits.
//
// Depends on: moelab/error.hpp, the standard library.
//
// The chain, in this order (each step optional):
//   1. repetition penalty over the last `repeat_last_n` tokens (Keskar et al.
//      2019, CTRL): a positive logit is divided by the penalty, a negative one
//      multiplied, so a repeated token always becomes less likely;
//   2. temperature: logits / T (T <= 0 means greedy: argmax, ties to the lowest id);
//   3. top-k: keep the k most likely tokens;
//   4. top-p (nucleus, Holtzman et al. 2020): keep the smallest set of most
//      likely tokens whose probabilities sum to >= p;
//   5. min-p: drop tokens whose probability is below min_p * p(most likely);
//   6. draw from the renormalised distribution.
// The draw uses our own uniform variate built from the raw bits of
// std::mt19937_64 (whose sequence the standard fixes), not a standard
// distribution (whose algorithm it does not), so a seed gives the same text
// on every platform.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <numeric>
#include <random>
#include <span>
#include <string>
#include <vector>

#include "moelab/error.hpp"

namespace moelab {

struct SamplerOptions {
    float temperature = 0.0f;     // <= 0: greedy
    std::size_t top_k = 0;        // 0: off
    float top_p = 1.0f;           // 1: off
    float min_p = 0.0f;           // 0: off
    float repeat_penalty = 1.0f;  // 1: off
    std::size_t repeat_last_n = 64;
    std::uint64_t seed = 0;
};

class Sampler {
public:
    explicit Sampler(SamplerOptions options) : options_(options), rng_(options.seed) {
        if (!(options.top_p > 0.0f && options.top_p <= 1.0f)) throw Error("sampler", "top_p must be in (0, 1]");
        if (!(options.min_p >= 0.0f && options.min_p < 1.0f)) throw Error("sampler", "min_p must be in [0, 1)");
        if (!(options.repeat_penalty > 0.0f)) throw Error("sampler", "repeat_penalty must be positive");
        if (!std::isfinite(options.temperature)) throw Error("sampler", "temperature must be finite");
    }

    const SamplerOptions& options() const { return options_; }

    // Picks the next token. `history` holds the tokens so far (prompt and
    // generated), used by the repetition penalty.
    std::int32_t sample(std::span<const float> logits, std::span<const std::int32_t> history) {
        if (logits.empty()) throw Error("sampler", "no logits to sample from");
        scores_.assign(logits.begin(), logits.end());
        apply_repetition_penalty(history);
        if (options_.temperature <= 0.0f) return argmax();

        // Candidates sorted by score, best first (ties: lowest id first).
        order_.resize(scores_.size());
        std::iota(order_.begin(), order_.end(), 0);
        const std::size_t k = options_.top_k == 0 ? order_.size() : std::min(options_.top_k, order_.size());
        auto better = [&](std::int32_t a, std::int32_t b) {
            return scores_[static_cast<std::size_t>(a)] > scores_[static_cast<std::size_t>(b)] ||
                   (scores_[static_cast<std::size_t>(a)] == scores_[static_cast<std::size_t>(b)] && a < b);
        };
        std::partial_sort(order_.begin(), order_.begin() + static_cast<std::ptrdiff_t>(k), order_.end(), better);
        order_.resize(k);

        // Softmax over the candidates at temperature T, in double.
        probs_.resize(k);
        const double max_score = scores_[static_cast<std::size_t>(order_[0])];
        double sum = 0;
        for (std::size_t i = 0; i < k; ++i)
            sum += probs_[i] = std::exp((scores_[static_cast<std::size_t>(order_[i])] - max_score) / options_.temperature);
        for (auto& p : probs_) p /= sum;

        // Top-p: the shortest prefix whose mass reaches p (at least one token).
        std::size_t keep = k;
        if (options_.top_p < 1.0f) {
            double mass = 0;
            for (std::size_t i = 0; i < k; ++i) {
                mass += probs_[i];
                if (mass >= options_.top_p) {
                    keep = i + 1;
                    break;
                }
            }
        }
        // Min-p: relative to the most likely candidate.
        if (options_.min_p > 0.0f) {
            std::size_t i = 1;
            while (i < keep && probs_[i] >= options_.min_p * probs_[0]) ++i;
            keep = i;
        }

        // Draw u in [0, mass) and walk the cumulative distribution.
        double mass = 0;
        for (std::size_t i = 0; i < keep; ++i) mass += probs_[i];
        const double u = uniform01() * mass;
        double cumulative = 0;
        for (std::size_t i = 0; i < keep; ++i) {
            cumulative += probs_[i];
            if (u < cumulative) return order_[i];
        }
        return order_[keep - 1];
    }

private:
    void apply_repetition_penalty(std::span<const std::int32_t> history) {
        if (options_.repeat_penalty == 1.0f || options_.repeat_last_n == 0) return;
        const std::size_t n = std::min(options_.repeat_last_n, history.size());
        seen_.assign(scores_.size(), false);
        for (std::size_t i = history.size() - n; i < history.size(); ++i) {
            const auto id = static_cast<std::size_t>(history[i]);
            if (history[i] < 0 || id >= scores_.size() || seen_[id]) continue;  // each token penalised once
            seen_[id] = true;
            float& s = scores_[id];
            s = s > 0.0f ? s / options_.repeat_penalty : s * options_.repeat_penalty;
        }
    }

    std::int32_t argmax() const {
        std::size_t best = 0;
        for (std::size_t i = 1; i < scores_.size(); ++i)
            if (scores_[i] > scores_[best]) best = i;
        return static_cast<std::int32_t>(best);
    }

    // 53 random bits -> [0, 1), exactly representable in double.
    double uniform01() { return static_cast<double>(rng_() >> 11) * 0x1.0p-53; }

    SamplerOptions options_;
    std::mt19937_64 rng_;
    std::vector<float> scores_;
    std::vector<std::int32_t> order_;
    std::vector<double> probs_;
    std::vector<bool> seen_;
};

}  // namespace moelab
