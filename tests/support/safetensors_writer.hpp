// SPDX-License-Identifier: MIT
// Test support: a safetensors byte builder (test-only), written from the
// byte layout in moelab/io/safetensors.hpp.
//
//   SafetensorsWriter w;
//   w.add("w", "F32", {2, 3}, f32_bytes({...}));   // offsets assigned in order
//   w.header["w"]["data_offsets"] = {4, 0};         // corrupt any field directly
//   std::vector<std::byte> bytes = w.build();
//
// Knobs: `header` is plain JSON to edit; build() takes a header-length
// override; build_raw() writes any header text (non-JSON, duplicate keys).
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "support/gguf_writer.hpp"  // ByteSink

namespace moelab::test {

struct SafetensorsWriter {
    nlohmann::ordered_json header = nlohmann::ordered_json::object();
    std::vector<std::byte> buffer;

    void add(const std::string& name, const std::string& dtype, const std::vector<std::uint64_t>& shape,
             const std::vector<std::byte>& data) {
        header[name] = {{"dtype", dtype}, {"shape", shape}, {"data_offsets", {buffer.size(), buffer.size() + data.size()}}};
        buffer.insert(buffer.end(), data.begin(), data.end());
    }
    void add_metadata(const std::string& key, const std::string& value) { header["__metadata__"][key] = value; }

    std::vector<std::byte> build(std::optional<std::uint64_t> header_length = std::nullopt) const {
        return build_raw(header.dump(), buffer, header_length);
    }

    // 8-byte length, the header text padded with spaces to a multiple of 8 (as
    // the reference writer does), then the buffer.
    static std::vector<std::byte> build_raw(std::string text, const std::vector<std::byte>& buffer,
                                            std::optional<std::uint64_t> header_length = std::nullopt) {
        while (text.size() % 8 != 0) text += ' ';
        ByteSink s;
        s.put<std::uint64_t>(header_length.value_or(text.size()));
        s.raw(text);
        s.raw(buffer);
        return std::move(s.bytes);
    }
};

}  // namespace moelab::test
