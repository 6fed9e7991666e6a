// SPDX-License-Identifier: MIT
// Tests for moelab/generate.hpp: why generation stops, and what text comes out when.
//
// The outside truth is the llama-dense fixture's greedy continuation of its case c0 (computed by
// llama.cpp; test_forward checks our logits reproduce it). Its 8 tokens decode to
//   "ine" "(" "!" " on" "9" " com" " j" "\xE2"   (the last is half of a UTF-8 character)
// Every expectation below is derived from those ids and the fixture's tokenizer, never typed in.
// Stop tokens are chosen by giving the tokenizer a different EOS / end-of-turn id: generate()
// takes the tokenizer separately from the model, so this exercises the real stop path.
// on_progress is called after every decode step, so a test can see what text had been emitted
// after k tokens: that is how "held back" is observed.
#include <catch2/catch.hpp>

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "moelab/generate.hpp"
#include "moelab/tokenizer/tokenizer_json.hpp"
#include "support/fixtures.hpp"
#include "support/transformers.hpp"

using namespace moelab;
using Ids = std::vector<std::int32_t>;

namespace {

struct Reference {
    Ids prompt, greedy;
    TokenizerSpec tokenizer_spec;  // the fixture's tokenizer.json, to adjust per test
};

// The manifest is named before looping: a temporary in a range-for would die before the body.
const Reference& reference() {
    static const Reference ref = [] {
        const nlohmann::json manifest = test::manifest();
        for (const auto& m : manifest.at("models")) {
            if (m.at("name") != "llama-dense") continue;
            const auto& c = m.at("cases").at(0);
            return Reference{c.at("tokens").get<Ids>(), c.at("greedy").get<Ids>(),
                             tokenizer_spec_from_hf_json(test::fixtures_dir() / m.at("hf").get<std::string>() / "tokenizer.json")};
        }
        FAIL("manifest has no llama-dense model");
        return Reference{};
    }();
    return ref;
}

const Model& model() {
    static const Model m = [] {
        const nlohmann::json manifest = test::manifest();
        for (const auto& entry : manifest.at("models"))
            if (entry.at("name") == "llama-dense") return Model::load(test::fixtures_dir() / entry.at("gguf").get<std::string>());
        throw Error("manifest has no llama-dense model");
    }();
    return m;
}

// One generate() call on a fresh cache, with everything it emitted and reported.
struct Run {
    GenerationResult result;
    std::vector<std::string> pieces;            // each on_text call
    std::vector<GenerationProgress> progress;   // each on_progress call
    std::vector<std::string> emitted_at;        // the text emitted so far, at each on_progress call
    std::size_t n_past = 0;                     // positions in the cache afterwards
    std::string text() const {
        std::string all;
        for (const auto& p : pieces) all += p;
        return all;
    }
    // The text emitted when the k-th token had been generated and run through the model.
    std::string emitted_after(std::size_t k) const {
        for (std::size_t i = 0; i < progress.size(); ++i)
            if (progress[i].decoding && progress[i].generated == k) return emitted_at[i];
        FAIL("no progress report after " << k << " generated tokens");
        return {};
    }
};

Run run(const Tokenizer& tok, GenerationOptions options, std::size_t max_ctx = 0,
        const std::function<bool(std::size_t n_call)>& text_ok = {},
        const std::function<bool(const GenerationProgress&)>& progress_ok = {}) {
    ThreadPool pool(2);
    Transformer<backend::scalar> transformer(model(), pool, max_ctx);
    Run r;
    options.on_progress = [&](const GenerationProgress& p) {
        r.progress.push_back(p);
        r.emitted_at.push_back(r.text());
        return progress_ok ? progress_ok(p) : true;
    };
    r.result = generate(transformer, tok, reference().prompt, options, [&](std::string_view piece) {
        r.pieces.emplace_back(piece);
        return text_ok ? text_ok(r.pieces.size()) : true;
    });
    r.n_past = transformer.cache().n_past();
    return r;
}

GenerationOptions greedy_options(std::vector<std::string> stop_strings = {}) {
    GenerationOptions o;
    o.max_new_tokens = reference().greedy.size();
    o.stop_strings = std::move(stop_strings);
    return o;
}

Ids first(std::size_t n) { return Ids(reference().greedy.begin(), reference().greedy.begin() + static_cast<std::ptrdiff_t>(n)); }

}  // namespace

TEST_CASE("generate: the fixture's greedy tokens, and the preconditions the other cases rely on", "[generate][fixtures]") {
    MOELAB_REQUIRE_FIXTURES();
    const Reference& ref = reference();
    const Tokenizer tok(ref.tokenizer_spec);
    REQUIRE(ref.greedy.size() == 8);
    for (std::size_t i = 0; i < ref.greedy.size(); ++i) {
        INFO("greedy[" << i << "] = " << ref.greedy[i]);
        REQUIRE_FALSE(tok.is_end_of_turn(ref.greedy[i]));  // nothing stops the plain run early
        REQUIRE_FALSE(tok.token_bytes(ref.greedy[i]).empty());
        for (std::size_t j = 0; j < i; ++j) REQUIRE(ref.greedy[j] != ref.greedy[i]);  // "stop at token i" is unambiguous
    }
    const Run r = run(tok, greedy_options());
    CHECK(r.result.tokens == ref.greedy);
    CHECK(r.result.stop_reason == "max tokens");
    CHECK(r.text() == tok.decode(ref.greedy));  // including the half character, flushed at the end
    CHECK(r.result.decode_steps == ref.greedy.size() - 1);  // the last token's logits are never needed
}

TEST_CASE("generate: EOS and end-of-turn tokens stop before being emitted", "[generate][fixtures]") {
    MOELAB_REQUIRE_FIXTURES();
    const Reference& ref = reference();
    SECTION("EOS") {
        TokenizerSpec spec = ref.tokenizer_spec;
        spec.eos_id = ref.greedy[3];
        const Tokenizer tok(spec);
        const Run r = run(tok, greedy_options());
        CHECK(r.result.stop_reason == "end of sequence");
        CHECK(r.result.tokens == first(3));
        CHECK(r.text() == tok.decode(first(3)));
    }
    SECTION("end of turn") {
        TokenizerSpec spec = ref.tokenizer_spec;
        spec.end_of_turn_ids.push_back(ref.greedy[5]);
        const Tokenizer tok(spec);
        const Run r = run(tok, greedy_options());
        CHECK(r.result.stop_reason == "end of sequence");
        CHECK(r.result.tokens == first(5));
        CHECK(r.text() == tok.decode(first(5)));
    }
    SECTION("EOS releases text held back for a stop string") {
        TokenizerSpec spec = ref.tokenizer_spec;
        spec.eos_id = ref.greedy[4];
        const Tokenizer tok(spec);
        // Token 3's text could begin this stop string, so it is held until EOS ends the text.
        const Run r = run(tok, greedy_options({tok.token_bytes(ref.greedy[3]) + "\x01"}));
        CHECK(r.result.stop_reason == "end of sequence");
        CHECK(r.result.tokens == first(4));
        CHECK(r.emitted_after(4) == tok.decode(first(3)));
        CHECK(r.text() == tok.decode(first(4)));
    }
}

TEST_CASE("generate: stop strings, within a token and across two", "[generate][fixtures]") {
    MOELAB_REQUIRE_FIXTURES();
    const Reference& ref = reference();
    const Tokenizer tok(ref.tokenizer_spec);
    const std::string full = tok.decode(ref.greedy);

    SECTION("inside one token: the text before it is emitted, the rest never") {
        // The last two bytes of token 5 (" com" -> "om"): the stop string ends inside the token.
        const std::string token5 = tok.token_bytes(ref.greedy[5]);
        REQUIRE(token5.size() >= 3);
        const std::string stop = token5.substr(token5.size() - 2);
        const std::size_t at = full.find(stop);
        REQUIRE(at == tok.decode(first(5)).size() + token5.size() - 2);  // its first occurrence is there
        const Run r = run(tok, greedy_options({stop}));
        CHECK(r.result.stop_reason == "stop string");
        CHECK(r.result.tokens == first(6));  // the token that completed it is generated, its text cut
        CHECK(r.text() == full.substr(0, at));
    }
    SECTION("spanning two tokens: the first part is held back, then dropped") {
        // Token 2's text plus the first byte of token 3 ("!" + " "): neither token holds it alone.
        const std::string stop = tok.token_bytes(ref.greedy[2]) + tok.token_bytes(ref.greedy[3]).substr(0, 1);
        const std::size_t at = full.find(stop);
        REQUIRE(at == tok.decode(first(2)).size());
        const Run r = run(tok, greedy_options({stop}));
        CHECK(r.result.stop_reason == "stop string");
        CHECK(r.result.tokens == first(4));
        CHECK(r.emitted_after(3) == tok.decode(first(2)));  // token 2 generated, its text not shown
        CHECK(r.text() == tok.decode(first(2)));            // and never shown
    }
    SECTION("a prefix that does not continue is held back, then released") {
        const std::string stop = tok.token_bytes(ref.greedy[2]) + "\x01";
        REQUIRE(full.find(stop) == std::string::npos);
        const Run r = run(tok, greedy_options({stop}));
        CHECK(r.result.stop_reason == "max tokens");
        CHECK(r.result.tokens == ref.greedy);
        CHECK(r.emitted_after(2) == tok.decode(first(2)));
        CHECK(r.emitted_after(3) == tok.decode(first(2)));  // "!" might start the stop string
        CHECK(r.emitted_after(4) == tok.decode(first(4)));  // " on" shows it does not
        CHECK(r.text() == full);
    }
    SECTION("held back at the end of generation: released") {
        const std::string stop = tok.token_bytes(ref.greedy[6]) + "\x01";
        REQUIRE(full.find(stop) == std::string::npos);
        const Run r = run(tok, greedy_options({stop}));
        CHECK(r.result.stop_reason == "max tokens");
        CHECK(r.emitted_after(7) == tok.decode(first(6)));
        CHECK(r.text() == full);
    }
    SECTION("several stop strings: the earliest in the text wins") {
        const std::string later = tok.token_bytes(ref.greedy[5]);
        const std::string earlier = tok.token_bytes(ref.greedy[1]);
        const Run r = run(tok, greedy_options({later, earlier}));
        CHECK(r.result.stop_reason == "stop string");
        CHECK(r.result.tokens == first(2));
        CHECK(r.text() == tok.decode(first(1)));
    }
}

TEST_CASE("generate: max tokens, a full context, and cancelling", "[generate][fixtures]") {
    MOELAB_REQUIRE_FIXTURES();
    const Reference& ref = reference();
    const Tokenizer tok(ref.tokenizer_spec);

    SECTION("max tokens") {
        GenerationOptions o = greedy_options();
        o.max_new_tokens = 3;
        const Run r = run(tok, o);
        CHECK(r.result.stop_reason == "max tokens");
        CHECK(r.result.tokens == first(3));
        CHECK(r.text() == tok.decode(first(3)));
    }
    SECTION("context full") {
        // 3 free positions after the prompt: tokens 0-2 are run through the model, token 3 is
        // sampled from token 2's logits and would need a 4th.
        const Run r = run(tok, greedy_options(), ref.prompt.size() + 3);
        CHECK(r.result.stop_reason == "context full");
        CHECK(r.result.tokens == first(4));
        CHECK(r.n_past == ref.prompt.size() + 3);
    }
    SECTION("on_text returning false") {
        const Run r = run(tok, greedy_options(), 0, [](std::size_t n_call) { return n_call < 2; });
        CHECK(r.result.stop_reason == "cancelled");
        CHECK(r.result.tokens == first(2));
        CHECK(r.text() == tok.decode(first(2)));
    }
    SECTION("on_progress returning false while all text is held back") {
        // A stop string that every prefix of the text so far could begin: on_text is never
        // called, so only on_progress can see the cancellation (Ctrl-C in `moelab run`).
        const std::string stop = tok.decode(first(6)) + "\x01";
        const Run r = run(tok, greedy_options({stop}), 0, {}, [](const GenerationProgress& p) { return p.generated < 3; });
        CHECK(r.result.stop_reason == "cancelled");
        CHECK(r.result.tokens == first(3));
        CHECK(r.pieces.empty());  // cancelled: held-back text is dropped, as documented
    }
}

TEST_CASE("generate: chunked prefill gives the same tokens, reports each chunk, and can be cancelled", "[generate][fixtures]") {
    MOELAB_REQUIRE_FIXTURES();
    const Reference& ref = reference();
    const Tokenizer tok(ref.tokenizer_spec);
    REQUIRE(ref.prompt.size() == 9);

    SECTION("chunks of 2") {
        GenerationOptions o = greedy_options();
        o.prefill_chunk = 2;
        const Run r = run(tok, o);
        CHECK(r.result.tokens == ref.greedy);
        std::vector<std::size_t> prefill_done, decode_generated;
        for (const auto& p : r.progress) {
            CHECK(p.prompt_tokens == ref.prompt.size());
            CHECK(p.max_new_tokens == ref.greedy.size());
            (p.decoding ? decode_generated : prefill_done).push_back(p.decoding ? p.generated : p.prompt_done);
        }
        CHECK(prefill_done == std::vector<std::size_t>{2, 4, 6, 8, 9});
        CHECK(decode_generated == std::vector<std::size_t>{1, 2, 3, 4, 5, 6, 7});  // one report per decode step
    }
    SECTION("cancelled after the first chunk") {
        GenerationOptions o = greedy_options();
        o.prefill_chunk = 4;
        const Run r = run(tok, o, 0, {}, [](const GenerationProgress&) { return false; });
        CHECK(r.result.stop_reason == "cancelled");
        CHECK(r.result.tokens.empty());
        CHECK(r.pieces.empty());
        CHECK(r.n_past == 4);  // the rest of the prompt never went through the model
        REQUIRE(r.progress.size() == 1);
        CHECK_FALSE(r.progress[0].decoding);
        CHECK(r.progress[0].prompt_done == 4);
    }
}
