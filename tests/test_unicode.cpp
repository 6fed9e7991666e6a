// SPDX-License-Identifier: MIT
// Tests for moelab/tokenizer/unicode.hpp: UTF-8 round trips and rejection of every class of
// invalid input, character classes on code points whose Unicode properties are documented, and
// NFC against the Unicode Consortium's conformance file NormalizationTest.txt (15.0.0).
#include <catch2/catch.hpp>

#include <cstdio>
#include <fstream>
#include <sstream>
#include <string>
#include <unordered_set>
#include <vector>

#include "moelab/tokenizer/unicode.hpp"
#include "support/fixtures.hpp"

using moelab::Error;

namespace {

// NFC of code points, shown as UTF-8 so that Catch can print a mismatch.
std::string nfc_utf8(std::u32string_view text) { return moelab::code_points_to_utf8(moelab::nfc(text)); }

std::string error_of(auto&& f) {
    try {
        f();
    } catch (const Error& e) {
        return e.what();
    }
    return "(no error)";
}

}  // namespace

TEST_CASE("UTF-8 decode/encode round-trips every scalar value", "[unicode]") {
    std::size_t n = 0;
    for (char32_t cp = 0; cp <= 0x10FFFF; ++cp) {
        if (cp >= 0xD800 && cp <= 0xDFFF) continue;
        std::string utf8;
        moelab::append_utf8(utf8, cp);
        std::size_t offset = 0;
        const char32_t back = moelab::decode_utf8(utf8, offset);
        if (back != cp || offset != utf8.size()) FAIL("code point " << std::hex << static_cast<std::uint32_t>(cp));
        ++n;
    }
    CHECK(n == 0x110000 - 0x800);
    CHECK(moelab::code_points_to_utf8(U"a\u00E9\u4E2D\U0001F600") == "a\xC3\xA9\xE4\xB8\xAD\xF0\x9F\x98\x80");
}

TEST_CASE("invalid UTF-8 is an Error naming the byte offset", "[unicode]") {
    struct Case { std::string bytes, offset; };
    const std::vector<Case> cases = {
        {"abc\x80", "byte offset 3"},             // stray continuation byte
        {"ab\xC0\xAF", "byte offset 2"},          // overlong '/'
        {"\xC1\xBF", "byte offset 0"},            // overlong
        {"x\xE0\x80\x80", "byte offset 1"},       // overlong 3-byte
        {"xy\xED\xA0\x80z", "byte offset 2"},     // UTF-16 surrogate U+D800
        {"\xF4\x90\x80\x80", "byte offset 0"},    // U+110000
        {"\xF5\x80\x80\x80", "byte offset 0"},    // lead byte past U+10FFFF
        {"ok\xE2\x82", "byte offset 2"},          // cut off by the end
        {"ok\xE2\x82x", "byte offset 2"},         // continuation missing
        {"\xF0\x9F\x98", "byte offset 0"},        // truncated emoji
        {"\xFF", "byte offset 0"},
    };
    for (const auto& c : cases) {
        const std::string message = error_of([&] { moelab::check_utf8(c.bytes); });
        INFO(message);
        CHECK(message.find("invalid UTF-8 at " + c.offset) != std::string::npos);
    }
    CHECK_NOTHROW(moelab::check_utf8("\xF4\x8F\xBF\xBF \xEF\xBF\xBF \xED\x9F\xBF"));  // U+10FFFF, U+FFFF, U+D7FF
}

TEST_CASE("utf8_incomplete_tail holds back exactly a valid unfinished character", "[unicode]") {
    CHECK(moelab::utf8_incomplete_tail("") == 0);
    CHECK(moelab::utf8_incomplete_tail("abc") == 0);
    CHECK(moelab::utf8_incomplete_tail("a\xC3") == 1);
    CHECK(moelab::utf8_incomplete_tail("a\xC3\xA9") == 0);
    CHECK(moelab::utf8_incomplete_tail("a\xE4\xB8") == 2);
    CHECK(moelab::utf8_incomplete_tail("\xF0\x9F\x98") == 3);
    CHECK(moelab::utf8_incomplete_tail("\xF0\x9F\x98\x80") == 0);
    CHECK(moelab::utf8_incomplete_tail("\x80") == 0);          // never valid: pass it on
    CHECK(moelab::utf8_incomplete_tail("\xE0\x80") == 0);      // overlong prefix: never valid
    CHECK(moelab::utf8_incomplete_tail("\xED\xA0") == 0);      // surrogate prefix: never valid
    CHECK(moelab::utf8_incomplete_tail("\xFF") == 0);
}

TEST_CASE("character classes follow the Unicode Character Database", "[unicode]") {
    // General_Category L*
    for (char32_t cp : {U'A', U'z', U'\u00E9', U'\u00AA', U'\u4E2D', U'\uAC00', U'\u05D0', U'\u0627', U'\u02B0', U'\U00020000'})
        CHECK(moelab::is_letter(cp));
    for (char32_t cp : {U'0', U'_', U' ', U'\u0301', U'\u00D7', U'\U0001F600', U'\u3000', U'\u0663'})
        CHECK_FALSE(moelab::is_letter(cp));
    // General_Category N*: Nd, Nl (Roman numerals), No (fractions, superscripts)
    for (char32_t cp : {U'0', U'9', U'\u0663', U'\u00BD', U'\u00B2', U'\u216B', U'\u3007', U'\U0001D7CE'})
        CHECK(moelab::is_number(cp));
    for (char32_t cp : {U'a', U'\u4E00', U'.', U'\u00B7'}) CHECK_FALSE(moelab::is_number(cp));
    // White_Space: includes U+0085 and U+3000; excludes ZERO WIDTH SPACE and the BOM.
    for (char32_t cp : {U' ', U'\t', U'\n', U'\v', U'\f', U'\r', U'\u0085', U'\u00A0', U'\u1680', U'\u2000',
                        U'\u200A', U'\u2028', U'\u2029', U'\u202F', U'\u205F', U'\u3000'})
        CHECK(moelab::is_white_space(cp));
    for (char32_t cp : {U'\u200B', U'\uFEFF', U'\u180E', U'a', U'\u001C'}) CHECK_FALSE(moelab::is_white_space(cp));
    CHECK(moelab::combining_class(U'\u0301') == 230);
    CHECK(moelab::combining_class(U'\u0316') == 220);
    CHECK(moelab::combining_class(U'a') == 0);
    CHECK(std::string(moelab::detail::unicode_tables::unicode_version) == "15.0.0");
}

TEST_CASE("NFC: decomposed accents, canonical order, exclusions, Hangul", "[unicode][nfc]") {
    CHECK(moelab::nfc(std::string_view("e\xCC\x81")) == "\xC3\xA9");                        // e + acute -> é
    CHECK(moelab::nfc(std::string_view("A\xCC\x8A")) == "\xC3\x85");                        // A + ring -> Å
    CHECK(moelab::nfc(std::string_view("\xE2\x84\xAB")) == "\xC3\x85");                     // ANGSTROM SIGN -> Å (singleton)
    // a + dot below (220) + acute (230) and a + acute + dot below are canonically equivalent.
    CHECK(moelab::nfc(std::string_view("a\xCC\x81\xCC\xA3")) == moelab::nfc(std::string_view("a\xCC\xA3\xCC\x81")));
    CHECK(nfc_utf8(U"\u1100\u1161\u11A8") == moelab::code_points_to_utf8(U"\uAC01"));  // jamo L V T -> 각
    CHECK(nfc_utf8(U"\uAC00\u11A8") == moelab::code_points_to_utf8(U"\uAC01"));  // LV + T
    CHECK(nfc_utf8(U"\u0958") == moelab::code_points_to_utf8(U"\u0915\u093C"));  // excluded composite stays decomposed
    CHECK(nfc_utf8(U"\u0344") == moelab::code_points_to_utf8(U"\u0308\u0301"));  // non-starter decomposition
    CHECK(moelab::nfc(std::string_view("plain ASCII and \xE4\xB8\xAD")) == "plain ASCII and \xE4\xB8\xAD");
    CHECK_THROWS_AS(moelab::nfc(std::string_view("\xC3")), Error);
}

namespace {

std::u32string parse_code_points(const std::string& field) {
    std::u32string out;
    std::istringstream in(field);
    std::string hex;
    while (in >> hex) out.push_back(static_cast<char32_t>(std::stoul(hex, nullptr, 16)));
    return out;
}

}  // namespace

// NormalizationTest.txt: each line c1;c2;c3;c4;c5. Conformance for NFC (its header):
//   c2 == NFC(c1) == NFC(c2) == NFC(c3),   c4 == NFC(c4) == NFC(c5);
// and every code point not listed in Part 1 is its own NFC.
TEST_CASE("NFC conforms to NormalizationTest.txt (Unicode 15.0.0)", "[unicode][nfc]") {
    std::ifstream in(MOELAB_NORMALIZATION_TEST);
    if (!in) {
        WARN("SKIPPED: " << MOELAB_NORMALIZATION_TEST << " not found (needs unicode-data and bzip2 at configure time)");
        ++moelab::test::skipped_counter();
        return;
    }
    std::string line, part;
    std::size_t n_lines = 0, n_failed = 0;
    std::unordered_set<char32_t> part1;
    std::size_t n_by_part[4] = {};
    while (std::getline(in, line)) {
        if (line.empty() || line[0] == '#') continue;
        if (line[0] == '@') {
            part = line;
            continue;
        }
        std::vector<std::u32string> c;
        std::istringstream fields(line);
        std::string field;
        for (int i = 0; i < 5 && std::getline(fields, field, ';'); ++i) c.push_back(parse_code_points(field));
        REQUIRE(c.size() == 5);
        const bool ok = moelab::nfc(c[0]) == c[1] && moelab::nfc(c[1]) == c[1] && moelab::nfc(c[2]) == c[1] &&
                        moelab::nfc(c[3]) == c[3] && moelab::nfc(c[4]) == c[3];
        // The UTF-8 entry point (with its quick-check fast path) must agree.
        const bool ok_utf8 = moelab::nfc(std::string_view(moelab::code_points_to_utf8(c[0]))) == moelab::code_points_to_utf8(c[1]) &&
                             moelab::nfc(std::string_view(moelab::code_points_to_utf8(c[4]))) == moelab::code_points_to_utf8(c[3]);
        if (!ok || !ok_utf8) {
            if (++n_failed <= 10) UNSCOPED_INFO("failed: " << line);
        }
        if (part == "@Part1 # Character by character test") part1.insert(c[0][0]);
        const int index = part.size() > 5 && part[5] >= '0' && part[5] <= '3' ? part[5] - '0' : 0;
        ++n_by_part[index];
        ++n_lines;
    }
    std::size_t n_identity = 0;
    for (char32_t cp = 0; cp <= 0x10FFFF; ++cp) {
        if ((cp >= 0xD800 && cp <= 0xDFFF) || part1.count(cp)) continue;
        const std::u32string one(1, cp);
        if (moelab::nfc(one) != one && ++n_failed <= 10) UNSCOPED_INFO("not its own NFC: U+" << std::hex << static_cast<std::uint32_t>(cp));
        ++n_identity;
    }
    std::printf("NormalizationTest.txt: %zu lines (part0 %zu, part1 %zu, part2 %zu, part3 %zu) + %zu unlisted code points, %zu failed\n",
                n_lines, n_by_part[0], n_by_part[1], n_by_part[2], n_by_part[3], n_identity, n_failed);
    CHECK(n_lines > 19000);
    CHECK(part1.size() > 1000);
    CHECK(n_failed == 0);
}
