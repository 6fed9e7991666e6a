// SPDX-License-Identifier: MIT
// moelab/io/untrusted_bytes.hpp — the three primitives every file reader is
// built from: overflow-checked size arithmetic, a bounds-checked little-endian
// cursor, and UTF-8 validation.
//
// Depends on: moelab/error.hpp, the standard library (C++20 <bit>).
//
// A number read from a file is an attacker's number. The rule the readers
// follow: a count, length or offset from a file is compared against the bytes
// that remain, with arithmetic that cannot wrap, *before* it sizes an
// allocation, a loop or a pointer. checked_add/checked_mul return nullopt on
// overflow instead of wrapping; ByteCursor refuses to read past its end. The
// cursor's errors carry no file name: each reader catches them and prefixes
// its own context ("model.gguf: key 'general.name': ..."), so every message
// names the file, the thing being read, and the problem.
#pragma once

#include <bit>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <limits>
#include <optional>
#include <string>
#include <string_view>
#include <type_traits>

#include "moelab/error.hpp"

namespace moelab::io {

// a + b, or nullopt when the sum does not fit in 64 bits.
constexpr std::optional<std::uint64_t> checked_add(std::uint64_t a, std::uint64_t b) {
    if (b > std::numeric_limits<std::uint64_t>::max() - a) return std::nullopt;
    return a + b;
}

// a * b, or nullopt when the product does not fit in 64 bits.
constexpr std::optional<std::uint64_t> checked_mul(std::uint64_t a, std::uint64_t b) {
    if (a != 0 && b > std::numeric_limits<std::uint64_t>::max() / a) return std::nullopt;
    return a * b;
}

// The smallest multiple of `alignment` (a power of two) that is >= value, or
// nullopt on overflow.
constexpr std::optional<std::uint64_t> checked_align_up(std::uint64_t value, std::uint64_t alignment) {
    const auto bumped = checked_add(value, alignment - 1);
    if (!bumped) return std::nullopt;
    return *bumped & ~(alignment - 1);
}

// True when `text` is well-formed UTF-8 (RFC 3629: no overlong forms, no
// surrogates, nothing above U+10FFFF). Names from files are checked with this
// before they appear in error messages or maps.
constexpr bool is_valid_utf8(std::string_view text) {
    std::size_t i = 0;
    while (i < text.size()) {
        const auto lead = static_cast<unsigned char>(text[i]);
        std::size_t length = 0;
        std::uint32_t code = 0, min_code = 0;
        if (lead < 0x80) { ++i; continue; }
        else if ((lead & 0xE0) == 0xC0) { length = 2; code = lead & 0x1Fu; min_code = 0x80; }
        else if ((lead & 0xF0) == 0xE0) { length = 3; code = lead & 0x0Fu; min_code = 0x800; }
        else if ((lead & 0xF8) == 0xF0) { length = 4; code = lead & 0x07u; min_code = 0x10000; }
        else return false;  // stray continuation byte or 0xF8..0xFF
        if (text.size() - i < length) return false;
        for (std::size_t k = 1; k < length; ++k) {
            const auto next = static_cast<unsigned char>(text[i + k]);
            if ((next & 0xC0) != 0x80) return false;
            code = (code << 6) | (next & 0x3Fu);
        }
        if (code < min_code || code > 0x10FFFF || (code >= 0xD800 && code <= 0xDFFF)) return false;
        i += length;
    }
    return true;
}

// A name from a file, made safe to print: valid UTF-8 is returned as is,
// anything else is replaced by a hex dump of (at most) its first 32 bytes.
inline std::string printable_name(std::string_view name) {
    if (is_valid_utf8(name) && name.size() <= 256) return std::string(name);
    static constexpr char hex[] = "0123456789abcdef";
    std::string out = "<" + std::to_string(name.size()) + " bytes:";
    for (std::size_t i = 0; i < name.size() && i < 32; ++i) {
        const auto b = static_cast<unsigned char>(name[i]);
        out += ' ';
        out += hex[b >> 4];
        out += hex[b & 15];
    }
    return out + (name.size() > 32 ? " ...>" : ">");
}

// Reads little-endian scalars and length-prefixed strings from [data, data+size).
// Every read checks the bytes that remain first; a short read throws
// moelab::Error("truncated: ..."), naming what was being read and where.
class ByteCursor {
public:
    ByteCursor(const std::byte* data, std::uint64_t size) : data_(data), size_(size) {}

    std::uint64_t position() const { return pos_; }
    std::uint64_t remaining() const { return size_ - pos_; }

    // One little-endian value of an arithmetic type (integers, float, double).
    // Assembled byte by byte, so it is correct on any host and any alignment.
    template <class T>
    T read(std::string_view what) {
        static_assert(std::is_arithmetic_v<T> && !std::is_same_v<T, bool>);
        require(sizeof(T), what);
        std::uint64_t bits = 0;
        for (std::size_t k = 0; k < sizeof(T); ++k)
            bits |= static_cast<std::uint64_t>(std::to_integer<std::uint8_t>(data_[pos_ + k])) << (8 * k);
        pos_ += sizeof(T);
        if constexpr (std::is_same_v<T, float>) return std::bit_cast<float>(static_cast<std::uint32_t>(bits));
        else if constexpr (std::is_same_v<T, double>) return std::bit_cast<double>(bits);
        else return static_cast<T>(bits);
    }

    // `n` raw bytes, as a view into the underlying memory (no copy).
    std::string_view read_bytes(std::uint64_t n, std::string_view what) {
        require(n, what);
        const auto* p = reinterpret_cast<const char*>(data_ + pos_);
        pos_ += n;
        return {p, static_cast<std::size_t>(n)};
    }

    // A u64 byte length followed by that many bytes (GGUF's string layout).
    // The length is checked against the remaining bytes before anything is
    // allocated, so a length of 2^63 fails here rather than in operator new.
    std::string_view read_string(std::string_view what) {
        const auto length = read<std::uint64_t>(what);
        if (length > remaining())
            throw Error(std::string(what) + ": length " + std::to_string(length) + " exceeds the " +
                        std::to_string(remaining()) + " bytes left in the file (at byte " +
                        std::to_string(pos_ - 8) + ")");
        return read_bytes(length, what);
    }

private:
    void require(std::uint64_t n, std::string_view what) const {
        if (n > remaining())
            throw Error("truncated: " + std::string(what) + " needs " + std::to_string(n) + " bytes at byte " +
                        std::to_string(pos_) + ", but only " + std::to_string(remaining()) + " remain");
    }

    const std::byte* data_;
    std::uint64_t size_;
    std::uint64_t pos_ = 0;
};

}  // namespace moelab::io
