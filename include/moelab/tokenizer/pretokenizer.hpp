// SPDX-License-Identifier: MIT
// moelab/tokenizer/pretokenizer.hpp — the regex split that runs before byte-level BPE.
//
// Depends on: moelab/error.hpp, moelab/tokenizer/unicode.hpp, the standard library.
//
// A byte-level BPE tokenizer first cuts text into "words" with a regex and then runs BPE inside
// each word, never across. The two families moelab reads use these patterns (tokenizer.json:
// pre_tokenizer = Sequence[Split(Regex, behavior Isolated), ByteLevel(use_regex=false)]):
//
//   qwen2   (?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+
//           Qwen2, Qwen2.5, Qwen3 (GGUF tokenizer.ggml.pre = "qwen2")
//   llama3  the same with \p{N}{1,3}: digits in groups of up to three
//           Llama 3.x (GGUF tokenizer.ggml.pre = "llama-bpe")
//
// Instead of a regex engine, match_length() below is a hand-written matcher with exactly the
// semantics of a backtracking engine (Oniguruma, which Hugging Face tokenizers uses) on these
// patterns: at each position the leftmost alternative that matches wins, quantifiers are greedy,
// and the only backtracking that matters is worked out by hand at alternatives 5 and 6.
// Every character matches some alternative, so the pieces tile the text with no gaps.
// Classes are true Unicode: \p{L} = General_Category L*, \p{N} = N*, \s = White_Space.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "moelab/error.hpp"
#include "moelab/tokenizer/unicode.hpp"

namespace moelab {

enum class PreTokenizer { qwen2, llama3 };

inline const char* to_string(PreTokenizer pre) { return pre == PreTokenizer::qwen2 ? "qwen2" : "llama3"; }

// The exact Split regex of each family, as tokenizer.json spells it.
inline std::string_view pre_tokenizer_regex(PreTokenizer pre) {
    if (pre == PreTokenizer::qwen2)
        return R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";
    return R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";
}

// tokenizer.json's Split regex -> the family; anything else is an Error (we would silently
// produce different ids otherwise).
inline PreTokenizer pre_tokenizer_from_regex(std::string_view regex) {
    for (PreTokenizer pre : {PreTokenizer::qwen2, PreTokenizer::llama3})
        if (regex == pre_tokenizer_regex(pre)) return pre;
    throw Error("unsupported pre-tokenizer regex '" + std::string(regex) +
                "' (moelab implements the Qwen2/Qwen3 and Llama 3 split patterns only)");
}

// GGUF tokenizer.ggml.pre -> the family. The names are llama.cpp's; each listed one uses exactly
// the pattern above (deepseek-r1-qwen: DeepSeek-R1 distilled into Qwen2.5; smaug-bpe: a Llama 3
// fine-tune). Unknown names are an Error rather than a guess.
inline PreTokenizer pre_tokenizer_from_gguf(std::string_view name) {
    if (name == "qwen2" || name == "deepseek-r1-qwen") return PreTokenizer::qwen2;
    if (name == "llama-bpe" || name == "llama3" || name == "llama-v3" || name == "smaug-bpe") return PreTokenizer::llama3;
    throw Error("unsupported GGUF tokenizer.ggml.pre '" + std::string(name) +
                "' (moelab knows qwen2, deepseek-r1-qwen, llama-bpe, llama3, llama-v3, smaug-bpe)");
}

namespace detail {

// The four classes the patterns distinguish; \r and \n are white space with a class of their own
// because [\r\n] and [^\r\n...] name them.
enum class CharClass : std::uint8_t { letter, number, newline, space, other };

inline CharClass char_class(char32_t cp) {
    if (cp == '\r' || cp == '\n') return CharClass::newline;
    if (is_letter(cp)) return CharClass::letter;
    if (is_number(cp)) return CharClass::number;
    if (is_white_space(cp)) return CharClass::space;
    return CharClass::other;  // [^\s\p{L}\p{N}]
}

// Simple case folding of the letters in the contractions. CaseFolding.txt folds only the ASCII
// capitals and U+017F LATIN SMALL LETTER LONG S (-> s) onto s t r e v m l d, and a
// case-insensitive Unicode regex (Oniguruma, and JavaScript's /iu) matches through folding, so
// "'ſ" is the contraction "'s".
inline char32_t fold_contraction_letter(char32_t cp) {
    if (cp >= 'A' && cp <= 'Z') return cp + ('a' - 'A');
    if (cp == 0x017F) return 's';
    return cp;
}

struct PreTokenizerInput {
    std::vector<char32_t> cps;
    std::vector<CharClass> classes;
};

// Length in code points of the match starting at code point i (always >= 1 when i < n).
inline std::size_t match_length(PreTokenizer pre, const PreTokenizerInput& in, std::size_t i) {
    const std::size_t n = in.cps.size();
    const auto& cls = in.classes;
    auto run_end = [&](std::size_t j, auto predicate) {
        while (j < n && predicate(cls[j])) ++j;
        return j;
    };
    auto is = [](CharClass c) { return [c](CharClass x) { return x == c; }; };
    auto is_white = [](CharClass c) { return c == CharClass::space || c == CharClass::newline; };

    // 1. (?i:'s|'t|'re|'ve|'m|'ll|'d)
    if (in.cps[i] == '\'' && i + 1 < n) {
        const char32_t c1 = fold_contraction_letter(in.cps[i + 1]);
        if (c1 == 's' || c1 == 't' || c1 == 'm' || c1 == 'd') return 2;
        if (i + 2 < n) {
            const char32_t c2 = fold_contraction_letter(in.cps[i + 2]);
            if ((c1 == 'r' && c2 == 'e') || (c1 == 'v' && c2 == 'e') || (c1 == 'l' && c2 == 'l')) return 3;
        }
    }
    // 2. [^\r\n\p{L}\p{N}]?\p{L}+ — one optional leading non-letter, non-digit, non-newline.
    if (cls[i] == CharClass::letter) return run_end(i, is(CharClass::letter)) - i;
    if (cls[i] != CharClass::newline && cls[i] != CharClass::number && i + 1 < n && cls[i + 1] == CharClass::letter)
        return run_end(i + 1, is(CharClass::letter)) - i;
    // 3. \p{N} (qwen2) or \p{N}{1,3} (llama3).
    if (cls[i] == CharClass::number) {
        if (pre == PreTokenizer::qwen2) return 1;
        const std::size_t end = run_end(i, is(CharClass::number));
        return std::min<std::size_t>(end - i, 3);
    }
    // 4. ' '?[^\s\p{L}\p{N}]+[\r\n]* — the optional space is U+0020 only.
    {
        std::size_t start = i;
        if (in.cps[i] == ' ' && i + 1 < n && cls[i + 1] == CharClass::other) start = i + 1;
        if (cls[start] == CharClass::other) {
            const std::size_t end = run_end(run_end(start, is(CharClass::other)), is(CharClass::newline));
            return end - i;
        }
    }
    // Here cps[i] is white space (every other class has matched above). Let [i, q) be the
    // maximal white-space run.
    const std::size_t q = run_end(i, is_white);
    // 5. \s*[\r\n]+ — \s* first takes the whole run, then gives back until [\r\n]+ can match:
    //    the match ends just after the run's last \r or \n.
    for (std::size_t j = q; j > i; --j)
        if (cls[j - 1] == CharClass::newline) return j - i;
    // 6. \s+(?!\S) — the whole run if it ends the text; else give back one character, so the
    //    last white space stays to prefix the next word (needs a run of at least two).
    if (q == n) return q - i;
    if (q - i >= 2) return q - 1 - i;
    // 7. \s+ — a single white-space character before a non-space.
    return q - i;
}

}  // namespace detail

// Splits valid UTF-8 `text` into pieces and calls on_piece(std::string_view) for each, in order;
// the pieces concatenate to `text`. Throws moelab::Error on invalid UTF-8 (naming the offset).
// Cost: O(text) plus one binary search over the class tables per non-ASCII character.
template <class OnPiece>
void pre_tokenize(PreTokenizer pre, std::string_view text, OnPiece&& on_piece) {
    detail::PreTokenizerInput in;
    std::vector<std::size_t> byte_offsets;  // byte offset of each code point, plus text.size()
    in.cps.reserve(text.size());
    in.classes.reserve(text.size());
    byte_offsets.reserve(text.size() + 1);
    for (std::size_t offset = 0; offset < text.size();) {
        byte_offsets.push_back(offset);
        const char32_t cp = decode_utf8(text, offset);
        in.cps.push_back(cp);
        in.classes.push_back(detail::char_class(cp));
    }
    byte_offsets.push_back(text.size());
    for (std::size_t i = 0; i < in.cps.size();) {
        const std::size_t end = i + detail::match_length(pre, in, i);
        on_piece(text.substr(byte_offsets[i], byte_offsets[end] - byte_offsets[i]));
        i = end;
    }
}

inline std::vector<std::string_view> pre_tokenize(PreTokenizer pre, std::string_view text) {
    std::vector<std::string_view> pieces;
    pre_tokenize(pre, text, [&](std::string_view piece) { pieces.push_back(piece); });
    return pieces;
}

}  // namespace moelab
