// SPDX-License-Identifier: MIT
// The forward pass against an independent engine: for every f32 model in
// ../shared/fixtures/manifest.json, loaded from its GGUF file and from its
// Hugging Face folder, with every backend, moelab must reproduce llama.cpp's
// logits at every position within the manifest's tolerance, and greedy
// decoding of case c0 through the cache must pick the same tokens with the
// same logits at each step. Nothing about a fixture is hard-coded here.
#include <catch2/catch.hpp>

#include <filesystem>
#include <string>
#include <vector>

#include "moelab/model/transformer.hpp"
#include "support/backends.hpp"
#include "support/compare.hpp"
#include "support/fixtures.hpp"

using namespace moelab;
namespace fs = std::filesystem;

namespace {

std::vector<std::int32_t> token_list(const nlohmann::json& j) { return j.get<std::vector<std::int32_t>>(); }

// Every (model, format) pair the manifest lists with f32 weights.
struct Source {
    std::string model, format;
    fs::path path;
    nlohmann::json entry;
};
std::vector<Source> f32_sources() {
    std::vector<Source> out;
    const nlohmann::json manifest = test::manifest();
    for (const auto& m : manifest["models"]) {
        if (m["weights"] != "f32") continue;
        for (const char* format : {"gguf", "hf"})
            if (m.contains(format)) out.push_back({m["name"], format, test::fixtures_dir() / m[format].get<std::string>(), m});
    }
    return out;
}

}  // namespace

TEMPLATE_TEST_CASE("every position's logits match llama.cpp, both formats", "[forward][fixtures]", MOELAB_TEST_BACKENDS) {
    MOELAB_REQUIRE_FIXTURES();
    ThreadPool pool(2);
    std::size_t compared = 0;
    for (const Source& src : f32_sources()) {
        const double tolerance = src.entry["tolerance"]["max_abs_logit"];
        const Model model = Model::load(src.path);
        const std::size_t V = model.config().n_vocab;
        REQUIRE(V == src.entry["n_vocab"].get<std::size_t>());
        Transformer<TestType> transformer(model, pool);
        for (const auto& c : src.entry["cases"]) {
            const auto tokens = token_list(c["tokens"]);
            const auto ref = test::read_f32(test::fixtures_dir() / c["logits"].get<std::string>());
            REQUIRE(ref.size() == tokens.size() * V);
            std::vector<float> logits(tokens.size() * V);
            transformer.reset();
            transformer.forward(tokens, logits.data());
            const auto diff = test::max_abs_diff(logits.data(), ref.data(), logits.size());
            INFO(src.model << " (" << src.format << ", " << TestType::name << ", " << c["logits"] << "): "
                           << test::describe(diff, V) << ", tolerance " << tolerance);
            CHECK(diff.value <= tolerance);
            ++compared;
        }
    }
    WARN("compared " << compared << " prompts with backend " << TestType::name);
    REQUIRE(compared > 0);
}

TEMPLATE_TEST_CASE("greedy decoding through the cache reproduces greedy and gen_logits", "[forward][fixtures]",
                   MOELAB_TEST_BACKENDS) {
    MOELAB_REQUIRE_FIXTURES();
    ThreadPool pool(2);
    std::size_t compared = 0;
    for (const Source& src : f32_sources()) {
        const auto& c0 = src.entry["cases"][0];
        if (!c0.contains("greedy")) continue;
        const double tolerance = src.entry["tolerance"]["max_abs_logit"];
        const Model model = Model::load(src.path);
        const std::size_t V = model.config().n_vocab;
        const auto tokens = token_list(c0["tokens"]);
        const auto greedy = token_list(c0["greedy"]);
        const auto gen_ref = test::read_f32(test::fixtures_dir() / c0["gen_logits"].get<std::string>());
        REQUIRE(gen_ref.size() >= greedy.size() * V);

        Transformer<TestType> transformer(model, pool);
        std::vector<float> last(V);
        transformer.forward(tokens, last.data(), /*all_logits=*/false);
        std::vector<std::int32_t> chosen;
        for (std::size_t step = 0; step < greedy.size(); ++step) {
            chosen.push_back(static_cast<std::int32_t>(test::argmax(last.data(), V)));
            const std::int32_t next = chosen.back();
            transformer.forward(std::span(&next, 1), last.data());
            // Row `step` of gen_logits is the output after greedy[step] is fed.
            const auto diff = test::max_abs_diff(last.data(), gen_ref.data() + step * V, V);
            INFO(src.model << " (" << src.format << ", " << TestType::name << ") decode step " << step << ": "
                           << test::describe(diff, V));
            CHECK(diff.value <= tolerance);
        }
        INFO(src.model << " (" << src.format << ", " << TestType::name << ")");
        CHECK(chosen == greedy);
        ++compared;
    }
    REQUIRE(compared > 0);
}

TEMPLATE_TEST_CASE("prefill in one batch and token-by-token decode agree", "[forward][fixtures]", MOELAB_TEST_BACKENDS) {
    MOELAB_REQUIRE_FIXTURES();
    ThreadPool pool(2);
    for (const Source& src : f32_sources()) {
        if (src.format != "gguf") continue;
        const double tolerance = src.entry["tolerance"]["max_abs_logit"];
        const Model model = Model::load(src.path);
        const std::size_t V = model.config().n_vocab;
        const auto tokens = token_list(src.entry["cases"][0]["tokens"]);
        Transformer<TestType> batch(model, pool), stepwise(model, pool);
        std::vector<float> all(tokens.size() * V), one(V);
        batch.forward(tokens, all.data());
        for (std::size_t t = 0; t < tokens.size(); ++t) {
            stepwise.forward(std::span(&tokens[t], 1), one.data());
            const auto diff = test::max_abs_diff(one.data(), all.data() + t * V, V);
            INFO(src.model << " position " << t << ": " << test::describe(diff, V));
            // Both are within `tolerance` of the same reference, hence within 2x of each other.
            CHECK(diff.value <= 2 * tolerance);
        }
    }
}
