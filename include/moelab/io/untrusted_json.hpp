// SPDX-License-Identifier: MIT
// moelab/io/untrusted_json.hpp — parse JSON that came from a file, safely.
//
// Depends on: nlohmann/json (3.11), moelab/io/mapped_file.hpp, moelab/error.hpp,
//             the standard library.
//
// nlohmann::json parses without recursion and validates UTF-8, but it accepts
// two things a model file must not contain: a duplicated object key (it keeps
// one of the values silently, so two readers could disagree about which
// tensor a name means) and unbounded nesting (each level costs a heap node;
// a 100 MB header of '[' would build fifty million of them). This wrapper
// rejects both while parsing, through nlohmann's parse callback, and turns
// nlohmann's exceptions into moelab::Error. The caller prefixes the file name.
#pragma once

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "moelab/error.hpp"
#include "moelab/io/mapped_file.hpp"

namespace moelab::io {

// Model headers and configs nest 3-4 levels; 16 leaves room for any sane
// config.json while bounding the work a hostile file can cause.
inline constexpr int json_max_depth = 16;
// Each JSON value costs a heap node of 16+ bytes however short its text, so
// the number of values is capped too: a safetensors header lists ~8 per
// tensor, a 150k-token tokenizer.json ~500k in all.
inline constexpr std::uint64_t json_max_values = std::uint64_t{1} << 23;

// Parses `text` as one JSON document. Throws moelab::Error "invalid JSON: ...",
// "duplicate key 'K'", "JSON nested more than N levels deep" or "JSON has
// more than N values".
inline nlohmann::json parse_untrusted_json(std::string_view text, int max_depth = json_max_depth,
                                           std::uint64_t max_values = json_max_values) {
    using Event = nlohmann::json::parse_event_t;
    std::vector<std::set<std::string>> keys_of_open_objects;
    std::uint64_t values = 0;
    const auto check = [&](int depth, Event event, nlohmann::json& parsed) -> bool {
        if ((event == Event::value || event == Event::object_start || event == Event::array_start) &&
            ++values > max_values)
            throw Error("JSON has more than " + std::to_string(max_values) + " values (moelab's limit)");
        switch (event) {
            case Event::object_start:
            case Event::array_start:
                // depth = number of enclosing containers; the root container is at 0.
                if (depth >= max_depth)
                    throw Error("JSON nested more than " + std::to_string(max_depth) + " levels deep");
                if (event == Event::object_start) keys_of_open_objects.emplace_back();
                break;
            case Event::key: {
                const auto& key = parsed.get_ref<const std::string&>();
                if (!keys_of_open_objects.back().insert(key).second) throw Error("duplicate key '" + key + "'");
                break;
            }
            case Event::object_end: keys_of_open_objects.pop_back(); break;
            default: break;
        }
        return true;  // keep every value
    };
    try {
        return nlohmann::json::parse(text.begin(), text.end(), check);
    } catch (const nlohmann::json::exception& e) {
        throw Error(std::string("invalid JSON: ") + e.what());
    }
}

// Reads and parses a JSON file (config.json, tokenizer.json, an index); errors
// name the file. The file is mapped, not copied; the value cap bounds memory.
inline nlohmann::json read_json_file(const std::filesystem::path& path, int max_depth = json_max_depth) {
    const MappedFile file(path);
    try {
        return parse_untrusted_json({reinterpret_cast<const char*>(file.data()), file.size()}, max_depth);
    } catch (const Error& e) {
        throw Error(path.string(), e.what());
    }
}

}  // namespace moelab::io
