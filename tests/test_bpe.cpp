// SPDX-License-Identifier: MIT
// Tests for moelab/tokenizer/bpe.hpp: the GPT-2 byte map (its defining properties), and the
// merge loop on a tiny vocabulary where the right answer follows from the merge ranks by hand.
#include <catch2/catch.hpp>

#include <set>
#include <string>
#include <vector>

#include "moelab/tokenizer/bpe.hpp"

namespace {

// The 256 byte tokens in byte order, then `extra`.
std::vector<std::string> byte_vocabulary(const std::vector<std::string>& extra) {
    std::vector<std::string> tokens;
    for (unsigned b = 0; b < 256; ++b) tokens.push_back(moelab::bytes_to_token_string(std::string(1, static_cast<char>(b))));
    tokens.insert(tokens.end(), extra.begin(), extra.end());
    return tokens;
}

std::vector<std::string> encode(const moelab::BpeModel& model, const std::vector<std::string>& tokens, std::string_view word) {
    std::vector<std::int32_t> ids;
    moelab::BpeModel::Scratch scratch;
    model.encode_word(word, ids, scratch);
    std::vector<std::string> out;
    for (auto id : ids) out.push_back(tokens[id]);
    return out;
}

}  // namespace

TEST_CASE("byte map: a bijection from bytes onto printable characters, as GPT-2 defines it", "[bpe]") {
    std::set<char32_t> seen;
    for (unsigned b = 0; b < 256; ++b) {
        const char32_t c = moelab::byte_to_char(static_cast<unsigned char>(b));
        seen.insert(c);
        REQUIRE(moelab::char_to_byte(c) == static_cast<unsigned char>(b));
    }
    CHECK(seen.size() == 256);
    CHECK(moelab::byte_to_char(' ') == U'\u0120');   // 'Ġ'
    CHECK(moelab::byte_to_char('\n') == U'\u010A');  // 'Ċ'
    CHECK(moelab::byte_to_char(0) == U'\u0100');
    CHECK(moelab::byte_to_char('A') == U'A');
    CHECK(moelab::byte_to_char(0xAD) == U'\u0143');  // soft hyphen: the last of the 68 remapped
    CHECK(moelab::byte_to_char(0xE9) == U'\u00E9');
    CHECK_FALSE(moelab::char_to_byte(U' ').has_value());
    CHECK_FALSE(moelab::char_to_byte(U'\u0144').has_value());
    CHECK(moelab::bytes_to_token_string(" hi\n") == "\xC4\xA0hi\xC4\x8A");
    CHECK(moelab::token_string_to_bytes("\xC4\xA0hi\xC4\x8A") == " hi\n");
    CHECK_FALSE(moelab::token_string_to_bytes("<a b>").has_value());
}

TEST_CASE("BPE merges by rank, leftmost first on ties", "[bpe]") {
    const auto tokens = byte_vocabulary({"ab", "abc", "aa", "bc", "abd"});
    const std::vector<std::pair<std::string, std::string>> merges = {{"a", "b"}, {"ab", "c"}, {"a", "a"}, {"b", "c"}};
    const moelab::BpeModel model(tokens, merges, false);
    using V = std::vector<std::string>;
    CHECK(encode(model, tokens, "abcab") == V{"abc", "ab"});  // (a,b) rank 0 twice, then (ab,c) rank 1
    CHECK(encode(model, tokens, "aaa") == V{"aa", "a"});      // one rule, two places: leftmost wins
    CHECK(encode(model, tokens, "abc") == V{"abc"});          // (a,b) rank 0 beats (b,c) rank 3
    CHECK(encode(model, tokens, "xbc") == V{"x", "bc"});
    CHECK(encode(model, tokens, "abd") == V{"ab", "d"});      // "abd" is a token but no rule makes it
    const moelab::BpeModel ignoring(tokens, merges, true);
    CHECK(encode(ignoring, tokens, "abd") == V{"abd"});       // ignore_merges: a whole-word token wins
    CHECK(encode(ignoring, tokens, "abcab") == V{"abc", "ab"});
}

TEST_CASE("BPE: malformed vocabularies and merges are errors", "[bpe]") {
    auto tokens = byte_vocabulary({"ab"});
    CHECK_THROWS_WITH(moelab::BpeModel(tokens, {{"a", "q"}, {"a", "z"}}, false), Catch::Contains("BPE merge 0 ('a' 'q')"));
    CHECK_THROWS_WITH(moelab::BpeModel(tokens, {{"a", "b"}, {"x", "yz"}}, false), Catch::Contains("'yz' is not a token"));
    tokens.erase(tokens.begin() + 'A');
    CHECK_THROWS_WITH(moelab::BpeModel(tokens, {}, false), Catch::Contains("no token for byte 0x41"));
}
