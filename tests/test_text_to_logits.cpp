// SPDX-License-Identifier: MIT
// From text to logits: the tokenizer that ships inside a GGUF file and the
// one beside the HF weights give Hugging Face's ids, and the fullvocab
// fixture's `text` case goes text -> ids -> logits matching llama.cpp.
#include <catch2/catch.hpp>

#include <fstream>
#include <string>

#include "moelab/tokenizer/model_tokenizer.hpp"
#include "support/compare.hpp"
#include "support/fixtures.hpp"
#include "support/transformers.hpp"

using namespace moelab;

namespace {
nlohmann::json fullvocab_entry() {
    const nlohmann::json manifest = test::manifest();
    for (const auto& m : manifest["models"])
        if (m["cases"][0].contains("text")) return m;
    FAIL("no manifest model has a text case");
    return {};
}
}  // namespace

TEST_CASE("GGUF and tokenizer.json tokenizers give the reference ids", "[tokenizer][fixtures]") {
    MOELAB_REQUIRE_FIXTURES();
    const nlohmann::json entry = fullvocab_entry();
    for (const char* format : {"gguf", "hf"}) {
        const Tokenizer tok = load_tokenizer(test::fixtures_dir() / entry[format].get<std::string>());
        REQUIRE(tok.n_vocab() == entry["n_vocab"].get<std::size_t>());
        std::ifstream cases(test::fixtures_dir() / "tokenizer/qwen3_public.jsonl");
        std::string line;
        std::size_t compared = 0;
        while (std::getline(cases, line)) {
            const auto c = nlohmann::json::parse(line);
            INFO(format << ": " << c["text"].dump());
            CHECK(tok.encode(c["text"].get<std::string>()) == c["ids"].get<std::vector<std::int32_t>>());
            ++compared;
        }
        REQUIRE(compared > 100);
    }
}

// One backend is enough here: every backend's logits are test_forward's job.
TEST_CASE("text -> ids -> logits matches the manifest's text case", "[tokenizer][forward][fixtures]") {
    using TestType = backend::scalar;
    MOELAB_REQUIRE_FIXTURES();
    const nlohmann::json entry = fullvocab_entry();
    const auto& c = entry["cases"][0];
    ThreadPool pool(2);
    for (const char* format : {"gguf", "hf"}) {
        const Model model = Model::load(test::fixtures_dir() / entry[format].get<std::string>());
        const Tokenizer tok = load_tokenizer(model);
        const auto ids = tok.encode(c["text"].get<std::string>());
        REQUIRE(ids == c["tokens"].get<std::vector<std::int32_t>>());
        const std::size_t V = model.config().n_vocab;
        std::vector<float> logits(ids.size() * V);
        Transformer<TestType> transformer(model, pool);
        transformer.forward(ids, logits.data());
        const auto ref = test::read_f32(test::fixtures_dir() / c["logits"].get<std::string>());
        const auto diff = test::max_abs_diff(logits.data(), ref.data(), logits.size());
        INFO(format << ", " << TestType::name << ": " << test::describe(diff, V));
        CHECK(diff.value <= entry["tolerance"]["max_abs_logit"].get<double>());
    }
}
