// SPDX-License-Identifier: MIT
// Tests for moelab/tokenizer/pretokenizer.hpp: each alternative of the Qwen2 / Llama 3 split
// regex on inputs where the expected split follows from the regex's semantics by hand (the
// derivation is in each comment), the pieces always tiling the input, and clear errors for
// unknown pre-tokenizers. End-to-end agreement with Hugging Face is in test_tokenizer.cpp.
#include <catch2/catch.hpp>

#include <random>
#include <string>
#include <vector>

#include "moelab/tokenizer/pretokenizer.hpp"

using moelab::PreTokenizer;

namespace {

std::vector<std::string> split(PreTokenizer pre, std::string_view text) {
    std::vector<std::string> out;
    for (auto piece : moelab::pre_tokenize(pre, text)) out.emplace_back(piece);
    return out;
}

using Pieces = std::vector<std::string>;

}  // namespace

TEST_CASE("pre-tokenizer: each alternative of the split regex", "[pretokenizer]") {
    for (PreTokenizer pre : {PreTokenizer::qwen2, PreTokenizer::llama3}) {
        INFO(moelab::to_string(pre));
        // 2: optional non-letter/digit/newline prefix + letters.
        CHECK(split(pre, "Hello world") == Pieces{"Hello", " world"});
        CHECK(split(pre, "$x \tab \u3000\xE4\xB8\xAD") == Pieces{"$x", " ", "\tab", " ", "\u3000\xE4\xB8\xAD"});
        // 1 before 2: contractions, case-insensitive; "'x" is not one, so 2 takes "'x".
        CHECK(split(pre, "I'M he's we'Ve 'll 'xyz") == Pieces{"I", "'M", " he", "'s", " we", "'Ve", " '", "ll", " '", "xyz"});
        // Alternative 1 wins even before letters, where 2 would have taken the whole word.
        CHECK(split(pre, "'sup'TWO'rem'vex'mom'lll'dad") ==
              Pieces{"'s", "up", "'T", "WO", "'re", "m", "'ve", "x", "'m", "om", "'ll", "l", "'d", "ad"});
        // (?i) folds U+017F LATIN SMALL LETTER LONG S to s (CaseFolding.txt): "'ſ" is "'s".
        CHECK(split(pre, "it'\xC5\xBF") == Pieces{"it", "'\xC5\xBF"});
        // 4: an optional U+0020, a run of [^\s\p{L}\p{N}], then trailing newlines.
        CHECK(split(pre, "!!!hello") == Pieces{"!!!", "hello"});
        CHECK(split(pre, " !!!\n\nx") == Pieces{" !!!\n\n", "x"});
        CHECK(split(pre, "a\t!") == Pieces{"a", "\t", "!"});  // only U+0020 may lead alternative 4
        // 5: \s*[\r\n]+ ends after the last newline of the white-space run.
        CHECK(split(pre, "\n\n  \n x") == Pieces{"\n\n  \n", " x"});
        CHECK(split(pre, "x  \r\n") == Pieces{"x", "  \r\n"});
        CHECK(split(pre, "\r\nx") == Pieces{"\r\n", "x"});
        // 6: \s+(?!\S) leaves the run's last space for the next word; whole run at the end.
        CHECK(split(pre, "   Hello") == Pieces{"  ", " Hello"});
        CHECK(split(pre, "end   ") == Pieces{"end", "   "});
        // 7: a single space before a digit (2, 4 and 6 all fail there).
        CHECK(split(pre, "a  1") == Pieces{"a", " ", " ", "1"});
        CHECK(split(pre, "") == Pieces{});
    }
    // 3: digits one at a time (Qwen2) or in greedy groups of up to three (Llama 3); \p{N} includes ½.
    CHECK(split(PreTokenizer::qwen2, "12345\xC2\xBD") == Pieces{"1", "2", "3", "4", "5", "\xC2\xBD"});
    CHECK(split(PreTokenizer::llama3, "12345\xC2\xBD") == Pieces{"123", "45\xC2\xBD"});
    CHECK(split(PreTokenizer::llama3, "1234567") == Pieces{"123", "456", "7"});
}

TEST_CASE("pre-tokenizer: pieces are non-empty and tile random text", "[pretokenizer]") {
    const std::vector<std::string> atoms = {"a", "Z", "\xC3\xA9", "\xE4\xB8\xAD", "1", "\xD9\xA3", " ", "  ", "\t", "\n",
                                            "\r", "\xE3\x80\x80", "'", "'s", "'LL", "!", "?", "\xF0\x9F\x98\x80", "\xCC\x81", "_"};
    std::mt19937 rng(1234);
    for (int trial = 0; trial < 2000; ++trial) {
        std::string text;
        const int n = static_cast<int>(rng() % 24);
        for (int i = 0; i < n; ++i) text += atoms[rng() % atoms.size()];
        for (PreTokenizer pre : {PreTokenizer::qwen2, PreTokenizer::llama3}) {
            std::string joined;
            for (auto piece : moelab::pre_tokenize(pre, text)) {
                REQUIRE(!piece.empty());
                joined += piece;
            }
            REQUIRE(joined == text);
        }
    }
}

TEST_CASE("pre-tokenizer: unknown regexes and GGUF names are errors", "[pretokenizer]") {
    CHECK(moelab::pre_tokenizer_from_regex(moelab::pre_tokenizer_regex(PreTokenizer::qwen2)) == PreTokenizer::qwen2);
    CHECK(moelab::pre_tokenizer_from_regex(moelab::pre_tokenizer_regex(PreTokenizer::llama3)) == PreTokenizer::llama3);
    CHECK(moelab::pre_tokenizer_from_gguf("qwen2") == PreTokenizer::qwen2);
    CHECK(moelab::pre_tokenizer_from_gguf("llama-bpe") == PreTokenizer::llama3);
    CHECK_THROWS_WITH(moelab::pre_tokenizer_from_regex("\\w+|\\s+"), Catch::Contains("unsupported pre-tokenizer regex '\\w+|\\s+'"));
    CHECK_THROWS_WITH(moelab::pre_tokenizer_from_gguf("gpt2"), Catch::Contains("unsupported GGUF tokenizer.ggml.pre 'gpt2'"));
    CHECK_THROWS_AS(moelab::pre_tokenize(PreTokenizer::qwen2, "ok\xFF"), moelab::Error);
}
