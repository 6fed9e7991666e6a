// SPDX-License-Identifier: MIT
// moelab/tokenizer/unicode.hpp — UTF-8, the character classes a tokenizer regex needs, and NFC.
//
// Depends on: moelab/error.hpp, moelab/tokenizer/unicode_tables.hpp (generated from the Unicode
// 15.0.0 Character Database by scripts/gen_unicode_tables.py), the standard library.
//
// Three things, in reading order:
//   1. UTF-8 (RFC 3629): decode with validation, encode, and the length of an incomplete tail
//      (what a streaming decoder must hold back). Invalid input — a stray continuation byte,
//      an overlong form, a surrogate, a code point past U+10FFFF, a truncated sequence — throws
//      moelab::Error naming the byte offset, e.g. "invalid UTF-8 at byte offset 7: ...".
//   2. Character classes: is_letter (\p{L}), is_number (\p{N}), is_white_space (\s, which in
//      Oniguruma's Unicode mode — the engine Hugging Face tokenizers uses — is White_Space).
//      Binary search over the generated ranges; ASCII answers from a comparison.
//   3. NFC (Unicode Standard Annex #15): canonical decomposition, canonical ordering by
//      combining class, canonical composition skipping the composition exclusions; Hangul
//      syllables are decomposed and composed arithmetically (Unicode 15.0, section 3.12).
//      Cost: one pass to check; text that is already NFC (no combining marks, no NFC_QC != Yes
//      characters — most text) is returned unchanged after that pass.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <iterator>
#include <span>
#include <string>
#include <string_view>

#include "moelab/error.hpp"
#include "moelab/tokenizer/unicode_tables.hpp"

namespace moelab {

// ---------------------------------------------------------------------------------------------
// 1. UTF-8
// ---------------------------------------------------------------------------------------------

namespace detail {

inline std::string hex_byte(unsigned char byte) {
    const char* digits = "0123456789ABCDEF";
    return std::string{'0', 'x', digits[byte >> 4], digits[byte & 15]};
}

[[noreturn]] inline void throw_invalid_utf8(std::size_t offset, const std::string& why) {
    throw Error("invalid UTF-8 at byte offset " + std::to_string(offset) + ": " + why);
}

// Bytes in the sequence a lead byte starts (1-4), or 0 for a byte that cannot start one
// (a continuation byte 0x80-0xBF, or 0xC0, 0xC1, 0xF5-0xFF which only occur in invalid forms).
constexpr int utf8_sequence_length(unsigned char lead) {
    if (lead < 0x80) return 1;
    if (lead < 0xC2) return 0;
    if (lead < 0xE0) return 2;
    if (lead < 0xF0) return 3;
    if (lead < 0xF5) return 4;
    return 0;
}

// The valid range of the byte after `lead` (RFC 3629's table): it excludes overlong forms
// (E0 80..9F, F0 80..8F), UTF-16 surrogates (ED A0..BF) and code points past U+10FFFF (F4 90..).
constexpr std::pair<unsigned char, unsigned char> utf8_second_byte_range(unsigned char lead) {
    if (lead == 0xE0) return {0xA0, 0xBF};
    if (lead == 0xED) return {0x80, 0x9F};
    if (lead == 0xF0) return {0x90, 0xBF};
    if (lead == 0xF4) return {0x80, 0x8F};
    return {0x80, 0xBF};
}

}  // namespace detail

// Decodes the code point at text[offset] and advances offset past it; throws on invalid UTF-8.
inline char32_t decode_utf8(std::string_view text, std::size_t& offset) {
    const auto lead = static_cast<unsigned char>(text[offset]);
    if (lead < 0x80) {
        ++offset;
        return lead;
    }
    const int length = detail::utf8_sequence_length(lead);
    if (length == 0)
        detail::throw_invalid_utf8(offset, "byte " + detail::hex_byte(lead) + " cannot start a character");
    if (offset + length > text.size())
        detail::throw_invalid_utf8(offset, "a " + std::to_string(length) + "-byte character is cut off by the end of the text");
    char32_t cp = lead & (0x7F >> length);
    for (int i = 1; i < length; ++i) {
        const auto byte = static_cast<unsigned char>(text[offset + i]);
        const auto [low, high] = i == 1 ? detail::utf8_second_byte_range(lead) : std::pair<unsigned char, unsigned char>{0x80, 0xBF};
        if (byte < low || byte > high)
            detail::throw_invalid_utf8(offset, "byte " + detail::hex_byte(byte) + " cannot follow " +
                                                   detail::hex_byte(lead) + " in a " + std::to_string(length) + "-byte character");
        cp = (cp << 6) | (byte & 0x3F);
    }
    offset += length;
    return cp;
}

// Throws moelab::Error unless `text` is entirely valid UTF-8.
inline void check_utf8(std::string_view text) {
    for (std::size_t offset = 0; offset < text.size();) decode_utf8(text, offset);
}

inline std::u32string utf8_to_code_points(std::string_view text) {
    std::u32string out;
    out.reserve(text.size());
    for (std::size_t offset = 0; offset < text.size();) out.push_back(decode_utf8(text, offset));
    return out;
}

// Precondition: cp is a Unicode scalar value (<= U+10FFFF, not a surrogate).
inline void append_utf8(std::string& out, char32_t cp) {
    if (cp < 0x80) {
        out.push_back(static_cast<char>(cp));
    } else if (cp < 0x800) {
        out.push_back(static_cast<char>(0xC0 | (cp >> 6)));
        out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
    } else if (cp < 0x10000) {
        out.push_back(static_cast<char>(0xE0 | (cp >> 12)));
        out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
        out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
    } else {
        out.push_back(static_cast<char>(0xF0 | (cp >> 18)));
        out.push_back(static_cast<char>(0x80 | ((cp >> 12) & 0x3F)));
        out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
        out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
    }
}

inline std::string code_points_to_utf8(std::u32string_view code_points) {
    std::string out;
    out.reserve(code_points.size());
    for (char32_t cp : code_points) append_utf8(out, cp);
    return out;
}

// How many bytes at the end of `bytes` are the valid beginning of a character that needs more
// bytes (0-3). A streaming decoder holds exactly these back. Bytes that can never become valid
// UTF-8 do not count: holding them would only delay them forever.
inline std::size_t utf8_incomplete_tail(std::string_view bytes) {
    const std::size_t n = bytes.size();
    for (std::size_t back = 1; back <= 3 && back <= n; ++back) {
        const auto byte = static_cast<unsigned char>(bytes[n - back]);
        if (byte >= 0x80 && byte < 0xC0) continue;  // a continuation byte: look further back for the lead
        const int length = detail::utf8_sequence_length(byte);
        if (length <= static_cast<int>(back)) return 0;  // ASCII, invalid lead, or already complete
        // The lead wants more bytes than are there; hold them only if those present are valid.
        if (back >= 2) {
            const auto [low, high] = detail::utf8_second_byte_range(byte);
            const auto second = static_cast<unsigned char>(bytes[n - back + 1]);
            if (second < low || second > high) return 0;
        }
        return back;
    }
    return 0;
}

// ---------------------------------------------------------------------------------------------
// 2. Character classes
// ---------------------------------------------------------------------------------------------

namespace detail {

inline bool in_ranges(std::span<const unicode_tables::Range> ranges, char32_t cp) {
    // The last range whose first <= cp, if any, contains cp iff cp <= its last.
    auto it = std::upper_bound(ranges.begin(), ranges.end(), cp,
                               [](char32_t value, const unicode_tables::Range& r) { return value < r.first; });
    return it != ranges.begin() && cp <= std::prev(it)->last;
}

}  // namespace detail

// General_Category L* (Lu Ll Lt Lm Lo) — what \p{L} matches.
inline bool is_letter(char32_t cp) {
    if (cp < 0x80) return (cp | 0x20) >= 'a' && (cp | 0x20) <= 'z';
    return detail::in_ranges(detail::unicode_tables::letter_ranges, cp);
}

// General_Category N* (Nd Nl No) — what \p{N} matches: digits, but also ½, Ⅻ, ², ١.
inline bool is_number(char32_t cp) {
    if (cp < 0x80) return cp >= '0' && cp <= '9';
    return detail::in_ranges(detail::unicode_tables::number_ranges, cp);
}

// White_Space — what \s matches in Oniguruma's Unicode mode: \t \n \v \f \r, space, U+0085,
// U+00A0, U+1680, U+2000-200A, U+2028, U+2029, U+202F, U+205F, U+3000.
inline bool is_white_space(char32_t cp) {
    if (cp < 0x80) return cp == ' ' || (cp >= '\t' && cp <= '\r');
    return detail::in_ranges(detail::unicode_tables::white_space_ranges, cp);
}

// Canonical_Combining_Class (0 for starters).
inline std::uint8_t combining_class(char32_t cp) {
    if (cp < 0x300) return 0;
    const auto& table = detail::unicode_tables::combining_classes;
    auto it = std::upper_bound(std::begin(table), std::end(table), cp,
                               [](char32_t value, const auto& r) { return value < r.first; });
    return it != std::begin(table) && cp <= std::prev(it)->last ? std::prev(it)->ccc : 0;
}

// ---------------------------------------------------------------------------------------------
// 3. NFC
// ---------------------------------------------------------------------------------------------

namespace detail::hangul {
// Unicode 15.0, section 3.12: syllable = SBase + (L * VCount + V) * TCount + T.
constexpr char32_t SBase = 0xAC00, LBase = 0x1100, VBase = 0x1161, TBase = 0x11A7;
constexpr char32_t LCount = 19, VCount = 21, TCount = 28, NCount = VCount * TCount, SCount = LCount * NCount;
}  // namespace detail::hangul

// Appends the full canonical decomposition of cp (cp itself when it has none).
inline void append_canonical_decomposition(std::u32string& out, char32_t cp) {
    using namespace detail::hangul;
    if (cp >= SBase && cp < SBase + SCount) {
        const char32_t s = cp - SBase;
        out.push_back(LBase + s / NCount);
        out.push_back(VBase + (s % NCount) / TCount);
        if (s % TCount != 0) out.push_back(TBase + s % TCount);
        return;
    }
    if (cp >= 0xC0) {
        const auto& table = detail::unicode_tables::decompositions;
        auto it = std::lower_bound(std::begin(table), std::end(table), cp,
                                   [](const auto& d, char32_t value) { return d.code_point < value; });
        if (it != std::end(table) && it->code_point == cp) {
            const char32_t* first = detail::unicode_tables::decomposition_pool + it->offset;
            out.append(first, first + it->length);
            return;
        }
    }
    out.push_back(cp);
}

// The primary composite of (first, second), or 0 when they do not compose.
inline char32_t canonical_composition(char32_t first, char32_t second) {
    using namespace detail::hangul;
    if (first >= LBase && first < LBase + LCount && second >= VBase && second < VBase + VCount)
        return SBase + ((first - LBase) * VCount + (second - VBase)) * TCount;
    if (first >= SBase && first < SBase + SCount && (first - SBase) % TCount == 0 && second > TBase &&
        second < TBase + TCount)
        return first + (second - TBase);
    const auto& table = detail::unicode_tables::compositions;
    auto it = std::lower_bound(std::begin(table), std::end(table), std::pair{first, second},
                               [](const auto& c, const std::pair<char32_t, char32_t>& key) {
                                   return std::pair{c.first, c.second} < key;
                               });
    return it != std::end(table) && it->first == first && it->second == second ? it->composite : 0;
}

// True when cp can never be changed by NFC nor change its neighbours: NFC_QC = Yes and
// combining class 0. Text made only of such code points is already NFC.
inline bool is_nfc_inert(char32_t cp) {
    if (cp < 0x300) return true;  // Latin-1 and friends: no marks, nothing composes onto them from here
    return combining_class(cp) == 0 && !detail::in_ranges(detail::unicode_tables::nfc_quick_check_not_yes, cp);
}

// NFC of a code point sequence (UAX #15, sections 1.3 and 3).
inline std::u32string nfc(std::u32string_view text) {
    // D: full canonical decomposition.
    std::u32string decomposed;
    decomposed.reserve(text.size() + 8);
    for (char32_t cp : text) append_canonical_decomposition(decomposed, cp);

    // Canonical ordering: within each run of non-starters, stable sort by combining class.
    for (std::size_t i = 0; i < decomposed.size();) {
        if (combining_class(decomposed[i]) == 0) {
            ++i;
            continue;
        }
        std::size_t end = i;
        while (end < decomposed.size() && combining_class(decomposed[end]) != 0) ++end;
        std::stable_sort(decomposed.begin() + i, decomposed.begin() + end,
                         [](char32_t a, char32_t b) { return combining_class(a) < combining_class(b); });
        i = end;
    }

    // C: canonical composition. A character combines with the last starter unless it is
    // blocked: some character between them has class 0 or a class >= its own.
    std::u32string out;
    out.reserve(decomposed.size());
    std::size_t starter = std::u32string::npos;  // index in `out` of the last starter
    int last_class = -1;                          // class of out.back(); -1: out.back() is the starter
    for (char32_t cp : decomposed) {
        const int cls = combining_class(cp);
        if (starter != std::u32string::npos && (last_class == -1 || (last_class != 0 && last_class < cls))) {
            if (char32_t composite = canonical_composition(out[starter], cp)) {
                out[starter] = composite;
                continue;
            }
        }
        out.push_back(cp);
        if (cls == 0) {
            starter = out.size() - 1;
            last_class = -1;
        } else {
            last_class = cls;
        }
    }
    return out;
}

// NFC of UTF-8 text; throws moelab::Error on invalid UTF-8. Returns the input unchanged (one
// validating pass, one copy) when every code point is NFC-inert.
inline std::string nfc(std::string_view utf8) {
    bool inert = true;
    for (std::size_t offset = 0; offset < utf8.size();) {
        const char32_t cp = decode_utf8(utf8, offset);  // validates all of it, inert or not
        if (inert) inert = is_nfc_inert(cp);
    }
    if (inert) return std::string(utf8);
    return code_points_to_utf8(nfc(utf8_to_code_points(utf8)));
}

}  // namespace moelab
