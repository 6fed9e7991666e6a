// SPDX-License-Identifier: MIT
// Test support: the fixtures' qwen3-moe-256-* family (one random model in
// every quantized and 16-bit GGUF type, each case with `logits_exact`, llama.cpp
// in f32 on the exactly dequantised weights), for the tests of the opt-in
// reduced-precision activation modes.
#pragma once

#include <catch2/catch.hpp>

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include "support/fixtures.hpp"
#include "support/transformers.hpp"

namespace moelab::test {

// f(name, model, prompt) for every manifest model whose cases carry
// logits_exact; prompt is its longer case (cases[1]).
template <class F>
void for_each_twin_model(F&& f) {
    const nlohmann::json manifest = test::manifest();  // a named object: a range-for over a temporary's member dangles
    for (const auto& entry : manifest["models"]) {
        if (entry["cases"].empty() || !entry["cases"][0].contains("logits_exact")) continue;
        const Model model = Model::load(fixtures_dir() / entry["gguf"].get<std::string>());
        f(entry["name"].get<std::string>(), model, entry["cases"][1]);
    }
}

// Every position's logits for `tokens`, from a fresh Transformer on `threads`
// threads under activation precision p: (tokens.size(), n_vocab).
template <class Backend>
std::vector<float> prompt_logits(const Model& model, const std::vector<std::int32_t>& tokens, std::size_t threads,
                                 ops::ActivationPrecision p) {
    ThreadPool pool(threads);
    Transformer<Backend> transformer(model, pool);
    transformer.set_activation_precision(p);
    std::vector<float> out(tokens.size() * model.config().n_vocab);
    transformer.forward(tokens, out.data());
    return out;
}

// The shape both reduced-precision modes are tested in, on every twin model:
// in mode p the logits are bitwise the same on 1 and 3 threads; on a model
// the mode applies to (applies(model)), check(name, prompt, mode_logits,
// f32_logits) judges them; on every other model they are bitwise the f32
// mode's. Both kinds of model must occur.
template <class Backend, class Applies, class Check>
void check_mode_on_twin_models(ops::ActivationPrecision p, Applies&& applies, Check&& check) {
    std::size_t applied = 0, other = 0;
    for_each_twin_model([&](const std::string& name, const Model& model, const nlohmann::json& c) {
        const auto tokens = c["tokens"].get<std::vector<std::int32_t>>();
        const auto one = prompt_logits<Backend>(model, tokens, 1, p);
        const auto three = prompt_logits<Backend>(model, tokens, 3, p);
        REQUIRE(std::memcmp(one.data(), three.data(), one.size() * 4) == 0);
        const auto f32 = prompt_logits<Backend>(model, tokens, 2, ops::ActivationPrecision::f32);
        if (applies(model)) {
            ++applied;
            check(name, c, one, f32);
        } else {
            ++other;
            REQUIRE(std::memcmp(one.data(), f32.data(), f32.size() * 4) == 0);
        }
    });
    REQUIRE(applied > 0);
    REQUIRE(other > 0);
}

}  // namespace moelab::test
