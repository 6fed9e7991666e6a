// SPDX-License-Identifier: MIT
// Randomized corruption of every fixture file: flip bytes, overwrite 4- and
// 8-byte fields with extreme values, truncate. Each mutated file must either
// open — and then every tensor's bytes lie inside the file, and its first and
// last byte can be read — or throw moelab::Error. Anything else (another
// exception, a crash, an out-of-bounds read under ASan) fails.
//
// Seeded and repeatable: the seed is printed on failure and can be replaced
// with the environment variable MOELAB_FUZZ_SEED. The work is bounded by the
// header size (parsing cost), so the whole case stays well under a minute
// even under ASan on two cores.
#include <catch2/catch.hpp>

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <random>
#include <string>
#include <vector>

#include "moelab/io/gguf.hpp"
#include "moelab/io/safetensors.hpp"
#include "support/fixtures.hpp"
#include "support/temp_dir.hpp"

using namespace moelab;
using namespace moelab::io;

namespace {

struct Target {
    std::filesystem::path path;
    bool is_gguf;
};

// Every GGUF file and every HF model.safetensors in the manifest.
std::vector<Target> fixture_targets() {
    std::vector<Target> targets;
    const auto manifest = test::manifest();  // kept alive: the loop walks into it
    for (const auto& model : manifest["models"]) {
        targets.push_back({test::fixtures_dir() / model["gguf"].get<std::string>(), true});
        if (model.contains("hf"))
            targets.push_back({test::fixtures_dir() / model["hf"].get<std::string>() / "model.safetensors", false});
    }
    return targets;
}

// Opens `path` and touches every tensor; returns whether it opened. Checks
// that each tensor lies inside the file as it is now (`file_size` bytes).
template <class File>
bool open_and_touch(const std::filesystem::path& path, std::uint64_t file_size, std::uint64_t& sink) {
    try {
        const File file(path);
        for (const TensorEntry& t : file.tensors()) {
            INFO("tensor " << t.name << " at " << t.file_offset << " + " << t.nbytes);
            REQUIRE(t.file_offset <= file_size);
            REQUIRE(t.nbytes <= file_size - t.file_offset);
            if (t.nbytes == 0) continue;
            REQUIRE(t.data != nullptr);
            sink += std::to_integer<std::uint64_t>(t.data[0]) + std::to_integer<std::uint64_t>(t.data[t.nbytes - 1]);
        }
        return true;
    } catch (const Error& e) {
        const std::string message = e.what();
        INFO("message: " << message);
        REQUIRE(message.find(path.filename().string()) != std::string::npos);  // names the file
        return false;
    }
    // Any other exception type propagates and fails the test case.
}

// Where the header ends: the first tensor byte (GGUF) or 8 + N (safetensors).
std::uint64_t header_end(const Target& target) {
    if (target.is_gguf) {
        const GGUFFile file(target.path);
        std::uint64_t end = std::filesystem::file_size(target.path);
        for (const TensorEntry& t : file.tensors()) end = std::min(end, t.file_offset);
        return end;
    }
    const SafetensorsFile file(target.path);
    std::uint64_t end = std::filesystem::file_size(target.path);
    for (const TensorEntry& t : file.tensors()) end = std::min(end, t.file_offset);
    return end;
}

// Writes `n` bytes at `offset` of an open file descriptor.
void put(int fd, std::uint64_t offset, const std::byte* data, std::size_t n) {
    REQUIRE(::pwrite(fd, data, n, static_cast<off_t>(offset)) == static_cast<ssize_t>(n));
}

}  // namespace

TEST_CASE("randomly corrupted fixture files open cleanly or throw moelab::Error", "[fuzz][hostile][fixtures]") {
    MOELAB_REQUIRE_FIXTURES();
    std::uint64_t seed = 0x6d6f656c6162;  // "moelab"
    if (const char* env = std::getenv("MOELAB_FUZZ_SEED"); env && *env) seed = std::strtoull(env, nullptr, 0);
    INFO("MOELAB_FUZZ_SEED=" << seed);
    const test::TempDir dir("fuzz");

    // Values that break naive readers: sign bits, wrap-around, 2^32 boundaries.
    const std::uint64_t extreme64[] = {0, 1, 0x7FFFFFFFFFFFFFFFull, 0x8000000000000000ull, 0xFFFFFFFFFFFFFFFFull,
                                       std::uint64_t{1} << 60, 0xFFFFFFFFull, 0x100000000ull, 0xFFFFFFFFFFFFFFF0ull};
    const std::uint32_t extreme32[] = {0, 1, 3, 4, 5, 9, 12, 13, 99, 0x7FFFFFFF, 0x80000000u, 0xFFFFFFFFu};

    std::uint64_t opened = 0, rejected = 0, sink = 0;
    std::size_t target_index = 0;
    for (const Target& target : fixture_targets()) {
        ++target_index;
        INFO("file " << target.path.string());
        const std::vector<char> raw = test::read_bytes(target.path);
        const auto* original = reinterpret_cast<const std::byte*>(raw.data());
        const std::uint64_t size = raw.size();
        const std::uint64_t header = header_end(target);
        REQUIRE(header > 8);
        REQUIRE(header <= size);
        // Parsing cost grows with the header, so fewer mutations for big headers
        // (the 151k-token vocabulary): 300 for the typical 2-20 KB header.
        const int iterations = static_cast<int>(std::clamp<std::uint64_t>(4'000'000 / header, 20, 300));

        const auto copy = dir.write(target.is_gguf ? "mutant.gguf" : "mutant.safetensors", original, size);
        const int fd = ::open(copy.c_str(), O_RDWR);
        REQUIRE(fd >= 0);
        std::mt19937_64 rng(seed ^ (target_index * 0x9E3779B97F4A7C15ull));
        const auto below = [&](std::uint64_t n) { return n == 0 ? 0 : rng() % n; };
        // Positions favour the header, and within it the counts at the start
        // and the tensor table at the end, where corruption matters most.
        const auto position = [&](std::uint64_t width) -> std::uint64_t {
            const std::uint64_t limit = size - width;
            switch (below(4)) {
                case 0: return below(std::min<std::uint64_t>(256, limit));
                case 1: return std::min(limit, header - std::min<std::uint64_t>(header, 4096) + below(std::min<std::uint64_t>(header, 4096)));
                case 2: return std::min(limit, below(header));
                default: return below(limit);
            }
        };

        for (int it = 0; it < iterations; ++it) {
            INFO("iteration " << it);
            std::vector<std::pair<std::uint64_t, std::size_t>> patched;  // (offset, length) to restore
            const auto patch = [&](std::uint64_t at, const std::vector<std::byte>& bytes) {
                put(fd, at, bytes.data(), bytes.size());
                patched.emplace_back(at, bytes.size());
            };
            const std::uint64_t kind = below(5);
            if (kind == 0 || kind == 4) {  // flip 1-8 random bytes
                const std::uint64_t n = 1 + below(8);
                for (std::uint64_t k = 0; k < n; ++k) {
                    const std::uint64_t at = position(1);
                    patch(at, {original[at] ^ static_cast<std::byte>(1 + below(255))});
                }
            } else if (kind == 1) {  // an 8-byte field becomes extreme
                const std::uint64_t v = below(4) == 0 ? rng() : extreme64[below(std::size(extreme64))];
                std::vector<std::byte> bytes(8);
                for (int k = 0; k < 8; ++k) bytes[k] = static_cast<std::byte>((v >> (8 * k)) & 0xFF);
                patch(position(8), bytes);
            } else if (kind == 2) {  // a 4-byte field (type, n_dims, version) becomes extreme
                const std::uint32_t v = extreme32[below(std::size(extreme32))];
                std::vector<std::byte> bytes(4);
                for (int k = 0; k < 4; ++k) bytes[k] = static_cast<std::byte>((v >> (8 * k)) & 0xFF);
                patch(position(4), bytes);
            }
            std::uint64_t length = size;
            if (kind == 3 || kind == 4) {  // truncate: inside the header or anywhere
                length = below(2) == 0 ? below(std::min(size, header + 64)) : below(size);
                REQUIRE(::ftruncate(fd, static_cast<off_t>(length)) == 0);
            }

            const bool ok = target.is_gguf ? open_and_touch<GGUFFile>(copy, length, sink)
                                           : open_and_touch<SafetensorsFile>(copy, length, sink);
            (ok ? opened : rejected) += 1;

            // Restore the original bytes for the next mutation.
            for (const auto& [at, n] : patched) put(fd, at, original + at, n);
            if (length != size) put(fd, length, original + length, static_cast<std::size_t>(size - length));
        }
        ::close(fd);
    }
    WARN("fuzz: " << opened << " mutants opened, " << rejected << " rejected with moelab::Error (sink " << sink % 7 << ")");
    // Both outcomes must occur, or the mutations are not exercising the reader.
    CHECK(opened > 0);
    CHECK(rejected > 0);
}
