// SPDX-License-Identifier: MIT
// Test support: a scratch folder under the system temp directory, unique to
// this test process and tag, removed (with its contents) when it goes away;
// and the expectation "this throws moelab::Error and the message says X".
#pragma once

#include <catch2/catch.hpp>
#include <unistd.h>

#include <cstddef>
#include <filesystem>
#include <fstream>
#include <initializer_list>
#include <string>
#include <string_view>
#include <system_error>
#include <vector>

#include "moelab/error.hpp"

namespace moelab::test {

class TempDir {
public:
    explicit TempDir(std::string_view tag)
        : path_(std::filesystem::temp_directory_path() /
                ("moelab-test-" + std::to_string(::getpid()) + "-" + std::string(tag))) {
        std::filesystem::remove_all(path_);
        std::filesystem::create_directories(path_);
    }
    TempDir(const TempDir&) = delete;
    TempDir& operator=(const TempDir&) = delete;
    ~TempDir() {
        std::error_code ec;
        std::filesystem::remove_all(path_, ec);
    }

    const std::filesystem::path& path() const { return path_; }

    // Writes `bytes` to path()/name (replacing it) and returns the full path.
    std::filesystem::path write(std::string_view name, const std::vector<std::byte>& bytes) const {
        return write(name, bytes.data(), bytes.size());
    }
    std::filesystem::path write(std::string_view name, const std::byte* data, std::size_t size) const {
        const auto file = path_ / std::string(name);
        std::ofstream out(file, std::ios::binary | std::ios::trunc);
        out.write(reinterpret_cast<const char*>(data), static_cast<std::streamsize>(size));
        out.close();
        REQUIRE(out.good());
        return file;
    }
    std::filesystem::path write_text(std::string_view name, std::string_view text) const {
        return write(name, reinterpret_cast<const std::byte*>(text.data()), text.size());
    }

private:
    std::filesystem::path path_;
};

// Runs `action`; requires that it throws moelab::Error whose message contains
// every one of `parts`. Returns the message. Any other exception escapes and
// fails the test case.
template <class F>
std::string require_error(F&& action, std::initializer_list<std::string_view> parts) {
    std::string message;
    bool threw = false;
    try {
        action();
    } catch (const moelab::Error& e) {
        threw = true;
        message = e.what();
    }
    INFO("message: " << message);
    REQUIRE(threw);
    for (const std::string_view part : parts) CHECK_THAT(message, Catch::Matchers::Contains(std::string(part)));
    return message;
}

}  // namespace moelab::test
