// SPDX-License-Identifier: MIT
// moelab/tokenizer/tokenizer.hpp — text <-> token ids, as Hugging Face's tokenizers computes them.
//
// Depends on: moelab/error.hpp, moelab/tokenizer/{unicode,pretokenizer,bpe}.hpp, the standard
// library. (Reading tokenizer.json is moelab/tokenizer/tokenizer_json.hpp; a GGUF reader fills a
// TokenizerSpec with tokenizer_spec_from_gguf() below.)
//
// encode(text), in the order Hugging Face applies the steps:
//   1. added tokens: every entry of tokenizer.json's added_tokens — special ("<|im_start|>") or
//      not ("<think>", "<tool_call>") — is cut out whole wherever it occurs in the raw text: at
//      the leftmost position where any matches, the longest one wins;
//   2. the normalizer (NFC for Qwen, none for Llama 3) runs on each piece of text between them;
//      (added tokens marked "normalized": true are then cut out of the normalized text);
//   3. the pre-tokenizer regex cuts that into words (pretokenizer.hpp);
//   4. byte-level BPE encodes each word (bpe.hpp).
// No BOS is added: callers that want one prepend bos_id() themselves.
//
// decode(ids) concatenates each token's bytes: an added token contributes its text, a
// vocabulary token the bytes its characters stand for. Output is raw bytes — a prefix of a
// sequence may end inside a UTF-8 character; StreamDecoder holds such tails back.
#pragma once

#include <algorithm>
#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "moelab/error.hpp"
#include "moelab/tokenizer/bpe.hpp"
#include "moelab/tokenizer/pretokenizer.hpp"
#include "moelab/tokenizer/unicode.hpp"

namespace moelab {

enum class Normalizer { none, nfc };

struct AddedToken {
    std::string content;     // matched byte for byte in the input, and emitted as-is by decode
    std::int32_t id;
    bool special;            // control tokens (<|im_end|>); false for e.g. <think>, still matched whole
    bool normalized = false; // matched in the normalized text instead of the raw text (rare)
};

// Everything a tokenizer is made of, whatever the file it came from.
struct TokenizerSpec {
    std::vector<std::string> tokens;                          // id -> token string (byte-level spelling; added tokens: their content)
    std::vector<std::pair<std::string, std::string>> merges;  // BPE rules in rank order
    std::vector<AddedToken> added_tokens;
    PreTokenizer pre_tokenizer = PreTokenizer::qwen2;
    Normalizer normalizer = Normalizer::none;
    bool ignore_merges = false;                                // a word that is a token is not merged (Llama 3)
    std::optional<std::int32_t> bos_id, eos_id;
    std::vector<std::int32_t> end_of_turn_ids;                 // generation stops here: <|im_end|>, <|eot_id|>, ...
};

namespace detail {

// Finds added tokens in text: leftmost match first, longest at that position (what Hugging
// Face's Aho-Corasick LeftmostLongest search returns). Candidates are bucketed by first byte
// and sorted longest first, so a position costs one table lookup unless a token can start there.
class AddedTokenMatcher {
public:
    AddedTokenMatcher() = default;
    explicit AddedTokenMatcher(std::vector<AddedToken> tokens) : tokens_(std::move(tokens)) {
        std::stable_sort(tokens_.begin(), tokens_.end(),
                         [](const AddedToken& a, const AddedToken& b) { return a.content.size() > b.content.size(); });
        for (std::size_t i = 0; i < tokens_.size(); ++i)
            by_first_byte_[static_cast<unsigned char>(tokens_[i].content[0])].push_back(i);
    }

    // Calls on_text(std::string_view) for the (possibly empty-skipped) text between matches and
    // on_token(std::int32_t id) for each match, in order.
    template <class OnText, class OnToken>
    void split(std::string_view text, OnText&& on_text, OnToken&& on_token) const {
        std::size_t done = 0;
        for (std::size_t pos = 0; pos < text.size();) {
            const AddedToken* match = nullptr;
            for (std::size_t i : by_first_byte_[static_cast<unsigned char>(text[pos])]) {
                if (text.substr(pos, tokens_[i].content.size()) == tokens_[i].content) {
                    match = &tokens_[i];
                    break;
                }
            }
            if (!match) {
                ++pos;
                continue;
            }
            if (pos > done) on_text(text.substr(done, pos - done));
            on_token(match->id);
            pos += match->content.size();
            done = pos;
        }
        if (done < text.size()) on_text(text.substr(done));
    }

private:
    std::vector<AddedToken> tokens_;
    std::array<std::vector<std::size_t>, 256> by_first_byte_;
};

}  // namespace detail

class Tokenizer {
public:
    // Validates the spec: ids in range, every added token's content equal to tokens[id], the BPE
    // checks of BpeModel. Throws moelab::Error naming the offending id / merge.
    explicit Tokenizer(TokenizerSpec spec)
        : spec_(std::move(spec)), bpe_(spec_.tokens, spec_.merges, spec_.ignore_merges) {
        const auto n = static_cast<std::int64_t>(spec_.tokens.size());
        auto check_id = [&](std::int64_t id, const std::string& what) {
            if (id < 0 || id >= n)
                throw Error("tokenizer: " + what + " id " + std::to_string(id) + " is outside the vocabulary [0, " +
                            std::to_string(n) + ")");
        };
        if (spec_.bos_id) check_id(*spec_.bos_id, "BOS");
        if (spec_.eos_id) check_id(*spec_.eos_id, "EOS");
        for (auto id : spec_.end_of_turn_ids) check_id(id, "end-of-turn");

        is_added_.assign(spec_.tokens.size(), 0);
        std::vector<AddedToken> raw, normalized;
        for (const auto& added : spec_.added_tokens) {
            check_id(added.id, "added token '" + added.content + "'");
            if (added.content.empty()) throw Error("tokenizer: added token " + std::to_string(added.id) + " is empty");
            if (spec_.tokens[added.id] != added.content)
                throw Error("tokenizer: added token " + std::to_string(added.id) + " '" + added.content +
                            "' differs from the vocabulary's token '" + spec_.tokens[added.id] + "'");
            is_added_[added.id] = added.special ? 2 : 1;
            if (!added.normalized) {
                raw.push_back(added);
            } else {
                AddedToken copy = added;
                if (spec_.normalizer == Normalizer::nfc) copy.content = nfc(std::string_view(copy.content));
                normalized.push_back(std::move(copy));
            }
        }
        raw_added_ = detail::AddedTokenMatcher(std::move(raw));
        normalized_added_ = detail::AddedTokenMatcher(std::move(normalized));

        // Each token's bytes, once. A vocabulary token whose characters are not all in the
        // byte map stands for its own UTF-8 text, as Hugging Face's ByteLevel decoder does.
        token_bytes_.reserve(spec_.tokens.size());
        for (std::size_t id = 0; id < spec_.tokens.size(); ++id) {
            const std::string& token = spec_.tokens[id];
            if (is_added_[id]) {
                token_bytes_.push_back(token);
                continue;
            }
            try {
                token_bytes_.push_back(token_string_to_bytes(token).value_or(token));
            } catch (const Error& e) {
                throw Error("tokenizer: token " + std::to_string(id), e.what());
            }
        }
    }

    // Token ids of `text` (UTF-8; invalid UTF-8 throws moelab::Error naming the byte offset).
    // No BOS is added. Thread-safe: const and without caches.
    std::vector<std::int32_t> encode(std::string_view text) const {
        check_utf8(text);
        std::vector<std::int32_t> ids;
        ids.reserve(text.size() / 3 + 4);
        BpeModel::Scratch scratch;
        auto push_id = [&](std::int32_t id) { ids.push_back(id); };
        auto encode_words = [&](std::string_view normalized_text) {
            pre_tokenize(spec_.pre_tokenizer, normalized_text,
                         [&](std::string_view word) { bpe_.encode_word(word, ids, scratch); });
        };
        raw_added_.split(
            text,
            [&](std::string_view between) {
                if (spec_.normalizer == Normalizer::nfc) {
                    const std::string normalized = nfc(between);
                    normalized_added_.split(normalized, encode_words, push_id);
                } else {
                    normalized_added_.split(between, encode_words, push_id);
                }
            },
            push_id);
        return ids;
    }

    // The bytes of each id, concatenated. Throws moelab::Error for an id outside the vocabulary.
    std::string decode(std::span<const std::int32_t> ids) const {
        std::string out;
        for (auto id : ids) out += token_bytes(id);
        return out;
    }

    const std::string& token_bytes(std::int32_t id) const {
        if (id < 0 || static_cast<std::size_t>(id) >= token_bytes_.size())
            throw Error("tokenizer: token id " + std::to_string(id) + " is outside the vocabulary [0, " +
                        std::to_string(token_bytes_.size()) + ")");
        return token_bytes_[id];
    }

    // The id of a token given as the vocabulary spells it ("<|im_end|>", "Ġthe").
    std::optional<std::int32_t> find_token(std::string_view token) const { return bpe_.find(token); }

    std::size_t n_vocab() const { return spec_.tokens.size(); }
    const std::string& token_string(std::int32_t id) const { return spec_.tokens.at(static_cast<std::size_t>(id)); }
    bool is_added(std::int32_t id) const { return in_range(id) && is_added_[id] != 0; }
    bool is_special(std::int32_t id) const { return in_range(id) && is_added_[id] == 2; }
    bool is_end_of_turn(std::int32_t id) const {
        return std::find(spec_.end_of_turn_ids.begin(), spec_.end_of_turn_ids.end(), id) != spec_.end_of_turn_ids.end();
    }
    std::optional<std::int32_t> bos_id() const { return spec_.bos_id; }
    std::optional<std::int32_t> eos_id() const { return spec_.eos_id; }
    const std::vector<std::int32_t>& end_of_turn_ids() const { return spec_.end_of_turn_ids; }
    PreTokenizer pre_tokenizer() const { return spec_.pre_tokenizer; }
    Normalizer normalizer() const { return spec_.normalizer; }

private:
    bool in_range(std::int32_t id) const { return id >= 0 && static_cast<std::size_t>(id) < spec_.tokens.size(); }

    TokenizerSpec spec_;
    BpeModel bpe_;
    std::vector<std::uint8_t> is_added_;  // 0: vocabulary token, 1: added, 2: added and special
    detail::AddedTokenMatcher raw_added_, normalized_added_;
    std::vector<std::string> token_bytes_;
};

// Decodes ids as they are generated. feed(id) returns the text that is now complete: bytes up to
// the last whole UTF-8 character; a character split across tokens (an emoji is often two or
// three byte tokens) is held back until its last byte arrives. finish() returns what is held.
// Bytes that can never become valid UTF-8 are passed through, not held (see utf8_incomplete_tail).
// The concatenation of all feed() results and finish() equals tokenizer.decode(ids).
class StreamDecoder {
public:
    explicit StreamDecoder(const Tokenizer& tokenizer) : tokenizer_(&tokenizer) {}

    std::string feed(std::int32_t id) {
        pending_ += tokenizer_->token_bytes(id);
        const std::size_t hold = utf8_incomplete_tail(pending_);
        std::string ready = pending_.substr(0, pending_.size() - hold);
        pending_.erase(0, pending_.size() - hold);
        return ready;
    }

    std::string finish() { return std::exchange(pending_, std::string()); }

private:
    const Tokenizer* tokenizer_;
    std::string pending_;  // at most 3 bytes: an incomplete UTF-8 character
};

namespace detail {

// The ids generation should stop at: EOS plus the end-of-turn / end-of-text markers the
// vocabulary has (Qwen <|im_end|> <|endoftext|>, Llama 3 <|eot_id|> <|eom_id|> <|end_of_text|>).
inline std::vector<std::int32_t> default_end_of_turn_ids(const std::vector<AddedToken>& added,
                                                         std::optional<std::int32_t> eos_id) {
    std::vector<std::int32_t> ids;
    if (eos_id) ids.push_back(*eos_id);
    for (const auto& token : added) {
        for (std::string_view marker : {"<|im_end|>", "<|endoftext|>", "<|eot_id|>", "<|eom_id|>", "<|end_of_text|>"})
            if (token.content == marker && std::find(ids.begin(), ids.end(), token.id) == ids.end())
                ids.push_back(token.id);
    }
    return ids;
}

}  // namespace detail

// A TokenizerSpec from the arrays of a GGUF file:
//   tokens       tokenizer.ggml.tokens      (id -> byte-level string, added tokens as their text)
//   merges       tokenizer.ggml.merges      ("left right", in rank order)
//   token_types  tokenizer.ggml.token_type  (3 CONTROL -> added special, 4 USER_DEFINED -> added;
//                                            llama.cpp's converter marks <think> etc. CONTROL too, so
//                                            from a GGUF every added token may come out special)
//   pre          tokenizer.ggml.pre         (qwen2 -> NFC, as tokenizer.json asks; llama-bpe -> none
//                                            and ignore_merges, as Llama 3's tokenizer.json has)
// and tokenizer.ggml.bos_token_id / eos_token_id when present. Throws moelab::Error naming the
// array and index of a malformed entry.
inline TokenizerSpec tokenizer_spec_from_gguf(std::vector<std::string> tokens, std::span<const std::string> merges,
                                              std::span<const std::int32_t> token_types, std::string_view pre,
                                              std::optional<std::int32_t> bos_id, std::optional<std::int32_t> eos_id) {
    TokenizerSpec spec;
    spec.pre_tokenizer = pre_tokenizer_from_gguf(pre);
    spec.normalizer = spec.pre_tokenizer == PreTokenizer::qwen2 ? Normalizer::nfc : Normalizer::none;
    spec.ignore_merges = spec.pre_tokenizer == PreTokenizer::llama3;
    if (!token_types.empty() && token_types.size() != tokens.size())
        throw Error("tokenizer.ggml.token_type: " + std::to_string(token_types.size()) + " entries for " +
                    std::to_string(tokens.size()) + " tokens");
    for (std::size_t id = 0; id < token_types.size(); ++id)
        if (token_types[id] == 3 || token_types[id] == 4)
            spec.added_tokens.push_back({tokens[id], static_cast<std::int32_t>(id), token_types[id] == 3});
    spec.merges.reserve(merges.size());
    for (std::size_t rank = 0; rank < merges.size(); ++rank) {
        const std::string& merge = merges[rank];
        const auto space = merge.find(' ');
        if (space == std::string::npos || space == 0 || space + 1 == merge.size() ||
            merge.find(' ', space + 1) != std::string::npos)
            throw Error("tokenizer.ggml.merges[" + std::to_string(rank) + "]: '" + merge +
                        "' is not two tokens separated by one space");
        spec.merges.emplace_back(merge.substr(0, space), merge.substr(space + 1));
    }
    spec.tokens = std::move(tokens);
    spec.bos_id = bos_id;
    spec.eos_id = eos_id;
    spec.end_of_turn_ids = detail::default_end_of_turn_ids(spec.added_tokens, eos_id);
    return spec;
}

}  // namespace moelab
