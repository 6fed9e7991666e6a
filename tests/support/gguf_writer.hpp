// SPDX-License-Identifier: MIT
// Test support: a GGUF writer (test-only) that builds GGUF bytes in memory
// from metadata and tensors, with knobs that produce every corruption the
// reader must reject. Written from the byte layout in moelab/io/gguf.hpp,
// independently of the reader (it shares no code with it).
//
//   GGUFWriter w;                               // v3, alignment 32
//   w.add("general.architecture", gguf::string("llama"));
//   w.add_tensor("w", {3, 2}, gguf::F32, f32_bytes({0, 1, 2, 3, 4, 5}));  // ne innermost first
//   std::vector<std::byte> bytes = w.build();
//
// Knobs: magic, version, alignment (used for padding and default offsets;
// write general.alignment yourself), tensor/kv count overrides, per tensor an
// explicit offset, ne written exactly as given (any length), a raw type id,
// and n_dims / name-length overrides; add_raw_kv() appends arbitrary bytes as
// one entry.
#pragma once

#include <bit>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <optional>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

namespace moelab::test {

// Little-endian byte sink.
struct ByteSink {
    std::vector<std::byte> bytes;

    template <class T>
    void put(T value) {
        static_assert(std::is_trivially_copyable_v<T>);
        std::uint64_t bits = 0;
        if constexpr (std::is_same_v<T, float>) bits = std::bit_cast<std::uint32_t>(value);
        else if constexpr (std::is_same_v<T, double>) bits = std::bit_cast<std::uint64_t>(value);
        else bits = static_cast<std::uint64_t>(value);
        for (std::size_t k = 0; k < sizeof(T); ++k) bytes.push_back(static_cast<std::byte>((bits >> (8 * k)) & 0xFF));
    }
    void raw(std::string_view s) {
        for (const char c : s) bytes.push_back(static_cast<std::byte>(c));
    }
    void raw(const std::vector<std::byte>& b) { bytes.insert(bytes.end(), b.begin(), b.end()); }
    // GGUF string: u64 length + bytes. `length` overrides the written length.
    void str(std::string_view s, std::optional<std::uint64_t> length = std::nullopt) {
        put<std::uint64_t>(length.value_or(s.size()));
        raw(s);
    }
    void pad_to(std::uint64_t alignment) {
        while (bytes.size() % alignment != 0) bytes.push_back(std::byte{0});
    }
};

namespace gguf {
// ggml type ids used by the tests.
inline constexpr std::uint32_t F32 = 0, F16 = 1, Q4_0 = 2, Q5_0 = 6, Q8_0 = 8, Q4_K = 12, I32 = 26, BF16 = 30;

// GGUF value type tags.
enum Tag : std::uint32_t {
    UINT8 = 0, INT8, UINT16, INT16, UINT32, INT32, FLOAT32, BOOL, STRING, ARRAY, UINT64, INT64, FLOAT64
};

// An encoded metadata value: its type tag and its bytes.
struct Value {
    std::uint32_t tag;
    std::vector<std::byte> bytes;
};

template <class T>
Value scalar(std::uint32_t tag, T v) {
    ByteSink s;
    s.put<T>(v);
    return {tag, std::move(s.bytes)};
}
inline Value u8(std::uint8_t v) { return scalar(UINT8, v); }
inline Value i8(std::int8_t v) { return scalar(INT8, v); }
inline Value u16(std::uint16_t v) { return scalar(UINT16, v); }
inline Value i16(std::int16_t v) { return scalar(INT16, v); }
inline Value u32(std::uint32_t v) { return scalar(UINT32, v); }
inline Value i32(std::int32_t v) { return scalar(INT32, v); }
inline Value f32(float v) { return scalar(FLOAT32, v); }
inline Value boolean(bool v) { return scalar(BOOL, static_cast<std::uint8_t>(v)); }
inline Value u64(std::uint64_t v) { return scalar(UINT64, v); }
inline Value i64(std::int64_t v) { return scalar(INT64, v); }
inline Value f64(double v) { return scalar(FLOAT64, v); }
inline Value string(std::string_view v) {
    ByteSink s;
    s.str(v);
    return {STRING, std::move(s.bytes)};
}
// An array of `element_tag` values (each item's own tag is not written).
inline Value array(std::uint32_t element_tag, const std::vector<Value>& items,
                   std::optional<std::uint64_t> count = std::nullopt) {
    ByteSink s;
    s.put<std::uint32_t>(element_tag);
    s.put<std::uint64_t>(count.value_or(items.size()));
    for (const Value& v : items) s.raw(v.bytes);
    return {ARRAY, std::move(s.bytes)};
}
// Any tag with any bytes: for corrupt values.
inline Value raw(std::uint32_t tag, std::vector<std::byte> bytes) { return {tag, std::move(bytes)}; }
}  // namespace gguf

struct GGUFTensorSpec {
    std::string name;
    std::vector<std::uint64_t> ne;  // innermost first, written as given (so n_dims = ne.size())
    std::uint32_t type = gguf::F32;
    std::vector<std::byte> data;
    std::optional<std::uint64_t> offset;       // written instead of the computed offset
    std::optional<std::uint64_t> name_length;  // written instead of name.size()
    std::optional<std::uint32_t> n_dims;       // written instead of ne.size()
};

struct GGUFWriter {
    std::string magic = "GGUF";
    std::uint32_t version = 3;
    std::uint64_t alignment = 32;
    std::optional<std::uint64_t> tensor_count, kv_count;  // written instead of the real counts

    std::vector<std::vector<std::byte>> kv_entries;  // encoded key/type/value, in order
    std::vector<GGUFTensorSpec> tensors;

    // Filled in by build(): where the data section and each tensor's data start.
    std::uint64_t data_start = 0;
    std::vector<std::uint64_t> tensor_file_offsets;

    void add(std::string_view key, const gguf::Value& v) {
        ByteSink s;
        s.str(key);
        s.put<std::uint32_t>(v.tag);
        s.raw(v.bytes);
        kv_entries.push_back(std::move(s.bytes));
    }
    void add_raw_kv(std::vector<std::byte> entry) { kv_entries.push_back(std::move(entry)); }

    GGUFTensorSpec& add_tensor(std::string name, std::vector<std::uint64_t> ne, std::uint32_t type,
                               std::vector<std::byte> data) {
        tensors.push_back({std::move(name), std::move(ne), type, std::move(data), std::nullopt, std::nullopt, std::nullopt});
        return tensors.back();
    }

    std::vector<std::byte> build() {
        ByteSink s;
        s.raw(magic);
        s.put<std::uint32_t>(version);
        s.put<std::uint64_t>(tensor_count.value_or(tensors.size()));
        s.put<std::uint64_t>(kv_count.value_or(kv_entries.size()));
        for (const auto& entry : kv_entries) s.raw(entry);

        // Data offsets: each tensor at the next multiple of the alignment.
        std::vector<std::uint64_t> offsets;
        std::uint64_t next = 0;
        for (const GGUFTensorSpec& t : tensors) {
            offsets.push_back(next);
            next += (t.data.size() + alignment - 1) / alignment * alignment;
        }
        for (std::size_t i = 0; i < tensors.size(); ++i) {
            const GGUFTensorSpec& t = tensors[i];
            s.str(t.name, t.name_length);
            s.put<std::uint32_t>(t.n_dims.value_or(static_cast<std::uint32_t>(t.ne.size())));
            for (const std::uint64_t d : t.ne) s.put<std::uint64_t>(d);
            s.put<std::uint32_t>(t.type);
            s.put<std::uint64_t>(t.offset.value_or(offsets[i]));
        }
        s.pad_to(alignment);
        data_start = s.bytes.size();
        tensor_file_offsets.clear();
        for (std::size_t i = 0; i < tensors.size(); ++i) {
            tensor_file_offsets.push_back(data_start + tensors[i].offset.value_or(offsets[i]));
            s.raw(tensors[i].data);
            s.pad_to(alignment);
        }
        return std::move(s.bytes);
    }
};

// Bytes of little-endian f32 values.
inline std::vector<std::byte> f32_bytes(const std::vector<float>& values) {
    ByteSink s;
    for (const float v : values) s.put<float>(v);
    return std::move(s.bytes);
}

// `n` bytes 0, 1, 2, ... (mod 251), for tensors whose values do not matter.
inline std::vector<std::byte> pattern_bytes(std::size_t n) {
    std::vector<std::byte> b(n);
    for (std::size_t i = 0; i < n; ++i) b[i] = static_cast<std::byte>(i % 251);
    return b;
}

}  // namespace moelab::test
