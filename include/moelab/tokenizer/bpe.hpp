// SPDX-License-Identifier: MIT
// moelab/tokenizer/bpe.hpp — byte-level byte-pair encoding (GPT-2, Qwen, Llama 3).
//
// Depends on: moelab/error.hpp, moelab/tokenizer/unicode.hpp, the standard library.
//
// Byte-level BPE works on bytes, but vocabularies store tokens as printable strings: GPT-2 maps
// each of the 256 byte values to one Unicode character (printable bytes to themselves, the 68
// others — controls, space, DEL, NBSP, soft hyphen — to U+0100 onwards, in byte order), so the
// token "Ġhello" is the bytes " hello". Every vocabulary holds the 256 one-character tokens, so
// any byte string can be encoded and nothing is ever unknown.
//
// Encoding one pre-tokenized word: start with one symbol per byte, then repeatedly merge the
// adjacent pair whose merge rule has the lowest rank (the rule's index in the merges list),
// the leftmost such pair first, until no adjacent pair has a rule. A min-heap of candidate pairs
// keyed by (rank, position) makes that O(n log n) in the word's length n.
// With ignore_merges (Llama 3's tokenizer.json), a word that is itself a token is emitted whole.
#pragma once

#include <algorithm>
#include <array>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include "moelab/error.hpp"
#include "moelab/tokenizer/unicode.hpp"

namespace moelab {

// ---------------------------------------------------------------------------------------------
// The GPT-2 byte <-> character map
// ---------------------------------------------------------------------------------------------

namespace detail {

constexpr bool byte_maps_to_itself(unsigned b) {
    return (b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
}

constexpr std::array<char32_t, 256> make_byte_to_char() {
    std::array<char32_t, 256> table{};
    char32_t next = 0x100;  // the non-printable bytes, in byte order, get U+0100, U+0101, ...
    for (unsigned b = 0; b < 256; ++b) table[b] = byte_maps_to_itself(b) ? b : next++;
    return table;
}

inline constexpr std::array<char32_t, 256> byte_to_char_table = make_byte_to_char();

}  // namespace detail

inline char32_t byte_to_char(unsigned char byte) { return detail::byte_to_char_table[byte]; }

// The byte a vocabulary character stands for, or nullopt for a character outside the map.
inline std::optional<unsigned char> char_to_byte(char32_t cp) {
    if (cp < 0x100 && detail::byte_maps_to_itself(cp)) return static_cast<unsigned char>(cp);
    if (cp >= 0x100 && cp < 0x100 + 68) {
        // Invert the table: the (cp - 0x100)-th byte that does not map to itself.
        unsigned index = cp - 0x100;
        for (unsigned b = 0; b < 256; ++b)
            if (!detail::byte_maps_to_itself(b) && index-- == 0) return static_cast<unsigned char>(b);
    }
    return std::nullopt;
}

// Raw bytes -> the vocabulary's spelling (UTF-8 of the mapped characters).
inline std::string bytes_to_token_string(std::string_view bytes) {
    std::string out;
    out.reserve(bytes.size() * 2);
    for (char c : bytes) append_utf8(out, byte_to_char(static_cast<unsigned char>(c)));
    return out;
}

// The vocabulary's spelling -> raw bytes; nullopt when a character is outside the map (then the
// string is not a byte-level token, e.g. an added token such as "<|im_start|> x"). Throws
// moelab::Error if `token` is not valid UTF-8.
inline std::optional<std::string> token_string_to_bytes(std::string_view token) {
    std::string out;
    out.reserve(token.size());
    for (std::size_t offset = 0; offset < token.size();) {
        const auto byte = char_to_byte(decode_utf8(token, offset));
        if (!byte) return std::nullopt;
        out.push_back(static_cast<char>(*byte));
    }
    return out;
}

// ---------------------------------------------------------------------------------------------
// The BPE model: vocabulary, merge rules, and the merge loop
// ---------------------------------------------------------------------------------------------

class BpeModel {
public:
    // tokens: id -> vocabulary string (byte-level spelling); merges: (left, right) in rank order.
    // Throws moelab::Error when a byte's one-character token is missing, or a merge names a
    // string that is not a token, or its concatenation is not one.
    BpeModel(const std::vector<std::string>& tokens, const std::vector<std::pair<std::string, std::string>>& merges,
             bool ignore_merges)
        : ignore_merges_(ignore_merges) {
        id_of_.reserve(tokens.size());
        for (std::size_t id = 0; id < tokens.size(); ++id)
            id_of_.try_emplace(tokens[id], static_cast<std::int32_t>(id));  // duplicates: lowest id wins
        for (unsigned b = 0; b < 256; ++b) {
            std::string spelling;
            append_utf8(spelling, byte_to_char(static_cast<unsigned char>(b)));
            const auto id = find(spelling);
            if (!id) throw Error("BPE vocabulary has no token for byte " + detail::hex_byte(static_cast<unsigned char>(b)) +
                                 " ('" + spelling + "')");
            byte_token_[b] = *id;
        }
        merges_.reserve(merges.size());
        for (std::size_t rank = 0; rank < merges.size(); ++rank) {
            const auto& [left, right] = merges[rank];
            const auto l = find(left), r = find(right), merged = find(left + right);
            if (!l || !r || !merged)
                throw Error("BPE merge " + std::to_string(rank) + " ('" + left + "' '" + right + "'): " +
                            (!l ? "'" + left + "' is not a token" : !r ? "'" + right + "' is not a token"
                                                                      : "'" + left + right + "' is not a token"));
            // A repeated rule keeps its first (lowest) rank, as a lookup in rank order would.
            merges_.try_emplace(pair_key(*l, *r), Merge{static_cast<std::int32_t>(rank), *merged});
        }
    }

    std::optional<std::int32_t> find(std::string_view token) const {
        auto it = id_of_.find(std::string(token));
        if (it == id_of_.end()) return std::nullopt;
        return it->second;
    }

    // Reusable buffers for encode_word, so encoding many words allocates once.
    struct Scratch {
        struct Symbol { std::int32_t id, prev, next; };  // prev/next: neighbours in the list, -1 at the ends
        struct Candidate {
            std::int32_t rank, pos, left_id, right_id;
            bool operator>(const Candidate& o) const { return rank != o.rank ? rank > o.rank : pos > o.pos; }
        };
        std::vector<Symbol> symbols;
        std::vector<Candidate> heap;
        std::string spelling;
    };

    // Appends the ids of one word (raw bytes, one pre-tokenizer piece) to `out`.
    void encode_word(std::string_view word, std::vector<std::int32_t>& out, Scratch& scratch) const {
        if (word.empty()) return;
        if (ignore_merges_) {
            scratch.spelling.clear();
            for (char c : word) append_utf8(scratch.spelling, byte_to_char(static_cast<unsigned char>(c)));
            if (auto it = id_of_.find(scratch.spelling); it != id_of_.end()) {
                out.push_back(it->second);
                return;
            }
        }
        auto& symbols = scratch.symbols;
        symbols.clear();
        const auto n = static_cast<std::int32_t>(word.size());
        for (std::int32_t i = 0; i < n; ++i)
            symbols.push_back({byte_token_[static_cast<unsigned char>(word[i])], i - 1, i + 1 < n ? i + 1 : -1});

        auto& heap = scratch.heap;  // a min-heap on (rank, pos) via std::push_heap with greater<>
        heap.clear();
        const auto cmp = std::greater<Scratch::Candidate>{};
        auto consider = [&](std::int32_t pos) {  // the pair (pos, next(pos)), if it has a rule
            const std::int32_t next = symbols[pos].next;
            if (next < 0) return;
            auto it = merges_.find(pair_key(symbols[pos].id, symbols[next].id));
            if (it == merges_.end()) return;
            heap.push_back({it->second.rank, pos, symbols[pos].id, symbols[next].id});
            std::push_heap(heap.begin(), heap.end(), cmp);
        };
        for (std::int32_t i = 0; i + 1 < n; ++i) consider(i);

        while (!heap.empty()) {
            std::pop_heap(heap.begin(), heap.end(), cmp);
            const auto c = heap.back();
            heap.pop_back();
            // Skip stale candidates: either side was merged away or changed since it was pushed.
            // (A merged-away symbol has id -1; positions only ever refer to left-hand survivors.)
            auto& left = symbols[c.pos];
            if (left.id != c.left_id || left.next < 0 || symbols[left.next].id != c.right_id) continue;
            auto& right = symbols[left.next];
            left.id = merges_.find(pair_key(c.left_id, c.right_id))->second.id;
            right.id = -1;
            left.next = right.next;
            if (right.next >= 0) symbols[right.next].prev = c.pos;
            if (left.prev >= 0) consider(left.prev);
            consider(c.pos);
        }
        for (std::int32_t i = 0; i >= 0; i = symbols[i].next) out.push_back(symbols[i].id);
    }

private:
    struct Merge { std::int32_t rank, id; };

    static std::uint64_t pair_key(std::int32_t left, std::int32_t right) {
        return (static_cast<std::uint64_t>(static_cast<std::uint32_t>(left)) << 32) | static_cast<std::uint32_t>(right);
    }

    bool ignore_merges_;
    std::unordered_map<std::string, std::int32_t> id_of_;   // vocabulary string -> id
    std::array<std::int32_t, 256> byte_token_{};             // byte -> id of its one-character token
    std::unordered_map<std::uint64_t, Merge> merges_;        // (left id, right id) -> rule
};

}  // namespace moelab
