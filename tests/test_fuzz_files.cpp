// SPDX-License-Identifier: MIT
// Randomized corruption of every fixture file.
//
// 1. The file readers: flip bytes of each GGUF file and each HF
//    model.safetensors, overwrite 4- and 8-byte fields with extreme values,
//    truncate. Each mutated file must either open — and then every tensor's
//    bytes lie inside the file, and its first and last byte can be read — or
//    throw moelab::Error. Anything else (another exception, a crash, an
//    out-of-bounds read under ASan) fails.
// 2. Whole Hugging Face folders: a copy of each fixture folder with one file
//    mutated — config.json, tokenizer.json, tokenizer_config.json or
//    model.safetensors — by bytes (flips, invalid UTF-8, truncation, a
//    duplicated span) or by structure (one JSON value removed, retyped, set to
//    an extreme or nearby number, or to another string the loaders branch on).
//    The loaders that read that file run on the folder: Model::load and a
//    forward pass, or load_tokenizer, encode/decode and the chat template. Each
//    must succeed or throw moelab::Error naming the folder's file.
//
// Seeded and repeatable: the seed is printed on failure and can be replaced
// with the environment variable MOELAB_FUZZ_SEED. The work is bounded by the
// bytes parsed per mutant (header or JSON size), so each case stays well under
// a minute even under ASan on two cores.
#include <catch2/catch.hpp>

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <iterator>
#include <limits>
#include <map>
#include <random>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "moelab/chat.hpp"
#include "moelab/io/gguf.hpp"
#include "moelab/io/safetensors.hpp"
#include "moelab/tokenizer/model_tokenizer.hpp"
#include "support/fixtures.hpp"
#include "support/temp_dir.hpp"
#include "support/transformers.hpp"

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

std::uint64_t fuzz_seed() {
    std::uint64_t seed = 0x6d6f656c6162;  // "moelab"
    if (const char* env = std::getenv("MOELAB_FUZZ_SEED"); env && *env) seed = std::strtoull(env, nullptr, 0);
    return seed;
}

TEST_CASE("randomly corrupted fixture files open cleanly or throw moelab::Error", "[fuzz][hostile][fixtures]") {
    MOELAB_REQUIRE_FIXTURES();
    const std::uint64_t seed = fuzz_seed();
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

// ---------------------------------------------------------------------------
// Whole Hugging Face folders.

namespace {

using Json = nlohmann::json;
using Bytes = std::vector<char>;

// Strings the loaders branch on (model types, rope and layer types, tokenizer
// step types, dtypes, special tokens): a mutant that swaps one for another
// parses and reaches the code that must check its consequences.
const char* const branch_strings[] = {
    "llama", "mixtral", "qwen2", "qwen3", "qwen2_moe", "qwen3_moe", "qwen3_5", "qwen3_5_text", "qwen3_5_moe_text",
    "llama3", "yarn", "default", "linear_attention", "full_attention", "BPE", "NFC", "NFKC", "Sequence", "Split",
    "ByteLevel", "Isolated", "Removed", "BF16", "F16", "F32", "F64", "I64", "U8", "F8_E4M3", "<|im_end|>",
    "<|endoftext|>", "<|im_start|>", "", " ", "a b", "\u0120", "\u0120 \u0120", "\xC3\xA9", "{{ messages }}"};

// Picks one value of `doc` by a random walk from the root (at each container,
// stop with probability 1/4 unless at the root; always stop at a scalar) and
// changes it in one of six ways.
void mutate_json(Json& doc, std::mt19937_64& rng) {
    Json* parent = nullptr;
    Json* node = &doc;
    std::string key;
    std::size_t index = 0;
    while ((node->is_object() || node->is_array()) && !node->empty() && (parent == nullptr || rng() % 4 != 0)) {
        parent = node;
        const std::size_t i = rng() % node->size();
        if (node->is_object()) {
            auto it = node->begin();
            std::advance(it, static_cast<std::ptrdiff_t>(i));
            key = it.key();
            node = &it.value();
        } else {
            index = i;
            node = &(*node)[i];
        }
    }
    const Json extremes[] = {nullptr, true, false, 0, -1, 1, 2, 3, 7, 64,
                             std::int64_t{1} << 31, std::uint64_t{1} << 32, (std::uint64_t{1} << 32) + 1,
                             std::uint64_t{1} << 53, std::numeric_limits<std::int64_t>::min(),
                             std::numeric_limits<std::uint64_t>::max(), 1e308, -1e308, 0.5, 1e-30, -0.0,
                             "", Json::array(), Json::object()};
    switch (rng() % 6) {
        case 0:  // removed
            if (parent == nullptr) *node = Json::object();
            else if (parent->is_object()) parent->erase(key);
            else parent->erase(index);
            return;
        case 1: *node = extremes[rng() % std::size(extremes)]; return;
        case 2:  // a nearby number: plausible, but inconsistent with the rest
            if (node->is_number_integer()) {
                const std::int64_t v = node->get<std::int64_t>();
                const std::int64_t nearby[] = {v + 1, v - 1, v * 2, v / 2, -v, 0};
                *node = nearby[rng() % std::size(nearby)];
            } else if (node->is_number()) {
                const double v = node->get<double>();
                const double nearby[] = {v * 2, v / 2, -v, 0.0, v + 1};
                *node = nearby[rng() % std::size(nearby)];
            } else {
                *node = extremes[rng() % std::size(extremes)];
            }
            return;
        case 3: *node = branch_strings[rng() % std::size(branch_strings)]; return;
        case 4: {  // retyped: wrapped in an array or an object, or turned into its text
            const Json copy = *node;
            const std::uint64_t how = rng() % 3;
            *node = how == 0 ? Json::array({copy}) : how == 1 ? Json{{"x", copy}} : Json(copy.dump());
            return;
        }
        default:  // an array gains a duplicate of one element or loses its last; an object gains a key
            if (node->is_array() && !node->empty()) {
                if (rng() % 2) node->push_back((*node)[rng() % node->size()]);
                else node->erase(node->size() - 1);
            } else if (node->is_object()) {
                (*node)["x" + std::to_string(rng() % 4)] = extremes[rng() % std::size(extremes)];
            } else {
                *node = Json::array();
            }
            return;
    }
}

// Byte-level damage to any file: flips, bytes that break UTF-8 or JSON
// syntax, a duplicated span (in JSON often a duplicated key), truncation.
// `limit` bounds where bytes change (the header of a safetensors file).
void mutate_bytes(Bytes& bytes, std::size_t limit, std::mt19937_64& rng) {
    limit = std::min(limit, bytes.size());
    if (limit == 0) return;
    const char specials[] = {'\xFF', '\xC0', '\x80', '\xED', '"', '{', '}', '[', ']', ',', ':', '0', '9', '-', '\\', '\0'};
    switch (rng() % 4) {
        case 0:
            for (std::uint64_t n = 1 + rng() % 4; n > 0; --n) bytes[rng() % limit] ^= static_cast<char>(1 + rng() % 255);
            return;
        case 1:
            for (std::uint64_t n = 1 + rng() % 2; n > 0; --n) bytes[rng() % limit] = specials[rng() % std::size(specials)];
            return;
        case 2: {
            const std::size_t from = rng() % limit, length = std::min<std::size_t>(1 + rng() % 64, limit - from);
            const Bytes span(bytes.begin() + static_cast<std::ptrdiff_t>(from),
                             bytes.begin() + static_cast<std::ptrdiff_t>(from + length));
            bytes.insert(bytes.begin() + static_cast<std::ptrdiff_t>(from + length), span.begin(), span.end());
            return;
        }
        default: bytes.resize(rng() % std::max<std::size_t>(limit, bytes.size())); return;
    }
}

// A safetensors file whose JSON header went through mutate_json: the new
// header gets its own length, the tensor data stays as it was.
Bytes mutate_safetensors_header(const Bytes& file, std::mt19937_64& rng) {
    std::uint64_t n = 0;
    std::memcpy(&n, file.data(), 8);
    Json header = Json::parse(file.begin() + 8, file.begin() + 8 + static_cast<std::ptrdiff_t>(n));
    mutate_json(header, rng);
    std::string text = header.dump();
    while (text.size() % 8 != 0) text += ' ';
    // Assembled by appends into one string (inserting into an 8-byte vector
    // trips GCC 12's -Warray-bounds false positive).
    const std::uint64_t length = text.size();
    std::string out(reinterpret_cast<const char*>(&length), 8);
    out += text;
    out.append(file.begin() + 8 + static_cast<std::ptrdiff_t>(n), file.end());
    return Bytes(out.begin(), out.end());
}

void write_file(const std::filesystem::path& path, const Bytes& bytes) {
    std::ofstream out(path, std::ios::binary | std::ios::trunc);
    out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
    out.close();
    REQUIRE(out.good());
}

// Copies the files of a fixture folder (read-only there) into a writable `to`.
std::filesystem::path copy_folder(const std::filesystem::path& from, const std::filesystem::path& to) {
    std::filesystem::create_directories(to);
    for (const auto& entry : std::filesystem::directory_iterator(from))
        write_file(to / entry.path().filename(), test::read_bytes(entry.path()));
    return to;
}

struct Outcomes {
    std::size_t loaded = 0, refused = 0;
};

}  // namespace

TEST_CASE("HF folders with one corrupted file load and run, or throw moelab::Error naming the file",
          "[fuzz][hostile][fixtures]") {
    MOELAB_REQUIRE_FIXTURES();
    const std::uint64_t seed = fuzz_seed();
    INFO("MOELAB_FUZZ_SEED=" << seed);
    const test::TempDir dir("fuzz-hf");
    ThreadPool pool(1);

    // Each fixture folder, copied; plus qwen3-dense with the full Qwen3
    // tokenizer_config.json beside its tokenizer.json. The only fixture that
    // has that file is the 151k-token folder, whose 6 MB tokenizer.json takes
    // ~0.5 s to load (several under ASan) against ~1 ms for the 10 KB ones of
    // the same layout; its tokenizer files are mutated here instead (the
    // tokens tokenizer_config.json names, <|im_end|> and <|endoftext|>, are in
    // the 515-token vocabulary too).
    constexpr std::uint64_t max_tokenizer_bytes = 1 << 20;
    std::vector<std::filesystem::path> folders;
    const auto manifest = test::manifest();
    for (const auto& model : manifest["models"]) {
        if (!model.contains("hf")) continue;
        const std::filesystem::path source = test::fixtures_dir() / model["hf"].get<std::string>();
        folders.push_back(copy_folder(source, dir.path() / source.filename()));
    }
    REQUIRE(!folders.empty());
    {
        const auto source = test::fixtures_dir() / "models";
        const auto copy = copy_folder(source / "qwen3-dense.hf", dir.path() / "qwen3-dense+tokenizer_config.hf");
        write_file(copy / "tokenizer_config.json", test::read_bytes(source / "qwen3-dense-fullvocab.hf" / "tokenizer_config.json"));
        folders.push_back(copy);
    }

    // Every folder loads unmutated: the mutants below start from working models.
    for (const auto& folder : folders) {
        INFO("folder " << folder.string());
        REQUIRE_NOTHROW(Model::load(folder));
        if (std::filesystem::file_size(folder / "tokenizer.json") <= max_tokenizer_bytes)
            REQUIRE_NOTHROW(load_tokenizer(folder));
    }

    std::map<std::string, Outcomes> by_file;
    std::size_t forward_passes = 0, encoded = 0;
    std::size_t folder_index = 0;
    for (const auto& folder : folders) {
        ++folder_index;
        const auto tokenizer_bytes = std::filesystem::file_size(folder / "tokenizer.json");
        for (const char* name : {"config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json"}) {
            const auto path = folder / name;
            if (!std::filesystem::exists(path)) continue;
            const std::string file = name;
            const bool model_file = file == "config.json" || file == "model.safetensors";
            if (!model_file && tokenizer_bytes > max_tokenizer_bytes) continue;  // see above
            const Bytes original = test::read_bytes(path);
            // Bytes parsed per mutant: the JSON files, or the safetensors header.
            std::uint64_t parsed = original.size();
            if (file == "model.safetensors") std::memcpy(&parsed, original.data(), 8);
            if (!model_file) parsed = tokenizer_bytes + (file == "tokenizer_config.json" ? original.size() : 0);
            // 40 mutants of each file; fewer when a mutant parses more than 20 KB.
            const int iterations = static_cast<int>(std::clamp<std::uint64_t>(800'000 / parsed, 2, 40));
            std::uint64_t file_hash = 1469598103934665603ull;  // FNV-1a: the same stream on every platform
            for (unsigned char ch : file) file_hash = (file_hash ^ ch) * 1099511628211ull;
            std::mt19937_64 rng(seed ^ (folder_index * 0x9E3779B97F4A7C15ull) ^ file_hash);

            for (int it = 0; it < iterations; ++it) {
                INFO("mutant " << it << " of " << path.string());
                Bytes bytes;
                const bool structural = rng() % 3 != 0;
                if (file == "model.safetensors") {
                    if (structural) {
                        bytes = mutate_safetensors_header(original, rng);
                    } else {
                        bytes = original;
                        mutate_bytes(bytes, 8 + parsed, rng);
                    }
                } else if (structural) {
                    Json doc = Json::parse(original.begin(), original.end());
                    mutate_json(doc, rng);
                    const std::string text = doc.dump(1);
                    bytes.assign(text.begin(), text.end());
                } else {
                    bytes = original;
                    mutate_bytes(bytes, bytes.size(), rng);
                }
                write_file(path, bytes);

                Outcomes& outcome = by_file[file];
                try {
                    if (model_file) {
                        const Model model = Model::load(folder);
                        ++outcome.loaded;
                        // A mutant that loads must run (its logits may be garbage).
                        if (model.config().n_vocab >= 3) {
                            Transformer<backend::scalar> t(model, pool, 4);
                            std::vector<float> logits(3 * model.config().n_vocab);
                            const std::vector<std::int32_t> tokens{0, 1, 2};
                            t.forward(tokens, logits.data());
                            ++forward_passes;
                        }
                    } else {
                        const Tokenizer tokenizer = load_tokenizer(folder);
                        // A tokenizer that loads must encode any valid UTF-8 and decode what it made.
                        const std::vector<std::int32_t> ids =
                            tokenizer.encode("Hello, world! <|im_start|>user\n\xC3\xA9t\xC3\xA9 2026<|im_end|>");
                        (void)tokenizer.decode(ids);
                        ++encoded;
                        if (file == "tokenizer_config.json") {
                            const std::string source = chat_template_source(Model::load(folder));
                            if (!source.empty()) (void)ChatTemplate::detect(source, path.string());
                        }
                        ++outcome.loaded;
                    }
                } catch (const Error& e) {
                    const std::string message = e.what();
                    INFO("message: " << message);
                    REQUIRE(message.find(folder.string()) != std::string::npos);  // names the folder's file
                    ++outcome.refused;
                }
            }
            write_file(path, original);
        }
    }
    for (const auto& [file, outcome] : by_file) {
        WARN("fuzz " << file << ": " << outcome.loaded << " mutants loaded, " << outcome.refused
                     << " refused with moelab::Error");
        // Both outcomes occur for each file, or the mutations are not exercising its loader.
        CHECK(outcome.loaded > 0);
        CHECK(outcome.refused > 0);
    }
    WARN("fuzz HF folders: " << forward_passes << " forward passes, " << encoded << " tokenizers encoded text");
    CHECK(by_file.size() == 4);
    CHECK(forward_passes > 0);
    CHECK(encoded > 0);
}
