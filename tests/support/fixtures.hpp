// SPDX-License-Identifier: MIT
// Test support: where the reference fixtures are, reading their files, and
// the visible SKIP used when they are absent.
#pragma once

#include <catch2/catch.hpp>

#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace moelab::test {

inline int& skipped_counter() {
    static int count = 0;  // test-support bookkeeping only, never library state
    return count;
}
inline int skipped_count() { return skipped_counter(); }

// MOELAB_FIXTURES_DIR, overridable at run time by the environment variable of
// the same name (so an installed test binary can be pointed elsewhere).
inline std::filesystem::path fixtures_dir() {
    if (const char* env = std::getenv("MOELAB_FIXTURES_DIR"); env && *env) return env;
    return MOELAB_FIXTURES_DIR;
}

inline bool have_fixtures() { return std::filesystem::exists(fixtures_dir() / "manifest.json"); }

inline nlohmann::json manifest() {
    std::ifstream in(fixtures_dir() / "manifest.json");
    return nlohmann::json::parse(in);
}

// float32 little-endian file -> vector (the refs/*.f32 layout).
inline std::vector<float> read_f32(const std::filesystem::path& path) {
    std::ifstream in(path, std::ios::binary);
    REQUIRE(in.good());
    in.seekg(0, std::ios::end);
    const auto size = static_cast<std::size_t>(in.tellg());
    in.seekg(0);
    std::vector<float> values(size / sizeof(float));
    in.read(reinterpret_cast<char*>(values.data()), static_cast<std::streamsize>(values.size() * sizeof(float)));
    return values;
}

inline std::vector<char> read_bytes(const std::filesystem::path& path) {
    std::ifstream in(path, std::ios::binary);
    return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

}  // namespace moelab::test

// First statement of a test case that needs ../shared/fixtures: when they are
// missing it says SKIPPED (visible in the output and as ctest's "Skipped") and
// leaves the test case without asserting anything.
#define MOELAB_REQUIRE_FIXTURES()                                                          \
    do {                                                                                   \
        if (!::moelab::test::have_fixtures()) {                                            \
            WARN("SKIPPED: fixtures not found at " << ::moelab::test::fixtures_dir().string()); \
            ++::moelab::test::skipped_counter();                                           \
            return;                                                                        \
        }                                                                                  \
    } while (0)
