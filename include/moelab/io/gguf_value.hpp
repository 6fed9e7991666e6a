// SPDX-License-Identifier: MIT
// moelab/io/gguf_value.hpp — one GGUF metadata value: a type tag and a value.
//
// Depends on: the standard library.
//
// GGUF metadata values have one of 13 types (the numbers are the on-disk tag):
//
//    0 uint8    1 int8    2 uint16   3 int16   4 uint32   5 int32
//    6 float32  7 bool    8 string   9 array  10 uint64  11 int64  12 float64
//
// An array declares one element type and holds values of that type; arrays of
// arrays are allowed. GGUFValue keeps the declared tag (so a writer could
// reproduce the file) and the value widened to one of six C++ types:
// unsigned integers as uint64_t, signed as int64_t, floats as double (float32
// widens exactly), bool, std::string (raw bytes: GGUF strings are meant to be
// UTF-8, but a tokenizer's byte tokens need not be, so the reader keeps the
// bytes and leaves validation to whoever interprets them), and arrays as
// std::vector<GGUFValue>.
#pragma once

#include <cstdint>
#include <limits>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

namespace moelab::io {

enum class GGUFType : std::uint32_t {
    uint8 = 0, int8 = 1, uint16 = 2, int16 = 3, uint32 = 4, int32 = 5, float32 = 6,
    boolean = 7, string = 8, array = 9, uint64 = 10, int64 = 11, float64 = 12,
};
inline constexpr std::uint32_t gguf_type_count = 13;

constexpr std::string_view gguf_type_name(GGUFType t) {
    switch (t) {
        case GGUFType::uint8: return "uint8";
        case GGUFType::int8: return "int8";
        case GGUFType::uint16: return "uint16";
        case GGUFType::int16: return "int16";
        case GGUFType::uint32: return "uint32";
        case GGUFType::int32: return "int32";
        case GGUFType::float32: return "float32";
        case GGUFType::boolean: return "bool";
        case GGUFType::string: return "string";
        case GGUFType::array: return "array";
        case GGUFType::uint64: return "uint64";
        case GGUFType::int64: return "int64";
        case GGUFType::float64: return "float64";
    }
    return "?";
}

constexpr bool gguf_type_is_unsigned(GGUFType t) {
    return t == GGUFType::uint8 || t == GGUFType::uint16 || t == GGUFType::uint32 || t == GGUFType::uint64;
}
constexpr bool gguf_type_is_signed(GGUFType t) {
    return t == GGUFType::int8 || t == GGUFType::int16 || t == GGUFType::int32 || t == GGUFType::int64;
}
constexpr bool gguf_type_is_integer(GGUFType t) { return gguf_type_is_unsigned(t) || gguf_type_is_signed(t); }
constexpr bool gguf_type_is_float(GGUFType t) { return t == GGUFType::float32 || t == GGUFType::float64; }

// Bytes one value of the type occupies on disk; 0 for string and array, whose
// size depends on their contents.
constexpr std::uint64_t gguf_type_fixed_size(GGUFType t) {
    switch (t) {
        case GGUFType::uint8: case GGUFType::int8: case GGUFType::boolean: return 1;
        case GGUFType::uint16: case GGUFType::int16: return 2;
        case GGUFType::uint32: case GGUFType::int32: case GGUFType::float32: return 4;
        case GGUFType::uint64: case GGUFType::int64: case GGUFType::float64: return 8;
        case GGUFType::string: case GGUFType::array: return 0;
    }
    return 0;
}

struct GGUFValue {
    using Array = std::vector<GGUFValue>;

    GGUFType type = GGUFType::uint8;
    GGUFType element_type = GGUFType::uint8;  // arrays only: the declared element type
    std::variant<std::uint64_t, std::int64_t, double, bool, std::string, Array> value;

    bool is_integer() const { return gguf_type_is_integer(type); }
    bool is_number() const { return is_integer() || gguf_type_is_float(type); }

    // The value as int64 if it is an integer that fits, else nullopt.
    std::optional<std::int64_t> to_int() const {
        if (const auto* s = std::get_if<std::int64_t>(&value)) return *s;
        if (const auto* u = std::get_if<std::uint64_t>(&value))
            if (*u <= static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max()))
                return static_cast<std::int64_t>(*u);
        return std::nullopt;
    }
    // The value as double if it is any number (integers convert, possibly rounding).
    std::optional<double> to_double() const {
        if (const auto* d = std::get_if<double>(&value)) return *d;
        if (const auto* s = std::get_if<std::int64_t>(&value)) return static_cast<double>(*s);
        if (const auto* u = std::get_if<std::uint64_t>(&value)) return static_cast<double>(*u);
        return std::nullopt;
    }
    const bool* as_bool() const { return std::get_if<bool>(&value); }
    const std::string* as_string() const { return std::get_if<std::string>(&value); }
    const Array* as_array() const { return std::get_if<Array>(&value); }

    // "uint32", "string", "array of string", "array of array of int32", ...
    std::string type_description() const {
        if (type != GGUFType::array) return std::string(gguf_type_name(type));
        std::string out = "array of ";
        // Nested arrays: describe the first element's element type, if any.
        if (element_type == GGUFType::array) {
            const Array& items = std::get<Array>(value);
            return out + (items.empty() ? std::string("array") : items.front().type_description());
        }
        return out + std::string(gguf_type_name(element_type));
    }
};

}  // namespace moelab::io
