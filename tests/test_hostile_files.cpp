// SPDX-License-Identifier: MIT
// Hostile files: each corruption must give a moelab::Error whose message names
// the file and the problem (and the key or tensor, where there is one). Never
// a crash, an allocation sized by the file, or a read out of bounds (the ASan
// build checks the last two).
#include <catch2/catch.hpp>

#include <cstdint>
#include <cstring>
#include <limits>
#include <string>
#include <vector>

#include "moelab/io/gguf.hpp"
#include "moelab/io/mapped_file.hpp"
#include "moelab/io/safetensors.hpp"
#include "moelab/io/untrusted_json.hpp"
#include "support/fixtures.hpp"
#include "support/gguf_writer.hpp"
#include "support/safetensors_writer.hpp"
#include "support/temp_dir.hpp"

using namespace moelab;
using namespace moelab::io;
using moelab::test::GGUFWriter;
using moelab::test::require_error;
using moelab::test::SafetensorsWriter;
namespace gguf = moelab::test::gguf;

namespace {

constexpr std::uint64_t two_63 = std::uint64_t{1} << 63;
constexpr std::uint64_t two_60 = std::uint64_t{1} << 60;

// A small valid model: a few metadata types, an array, three tensors.
GGUFWriter small_gguf() {
    GGUFWriter w;
    w.add("general.architecture", gguf::string("llama"));
    w.add("llama.block_count", gguf::u32(1));
    w.add("tokenizer.ggml.tokens", gguf::array(gguf::STRING, {gguf::string("a"), gguf::string("bc")}));
    w.add("f", gguf::f32(0.5f));
    w.add_tensor("token_embd.weight", {4, 2}, gguf::F32, test::f32_bytes({0, 1, 2, 3, 4, 5, 6, 7}));
    w.add_tensor("blk.0.attn_q.weight", {32, 1}, gguf::Q8_0, test::pattern_bytes(34));
    w.add_tensor("output_norm.weight", {4}, gguf::F32, test::f32_bytes({1, 1, 1, 1}));
    return w;
}

// The encoded bytes of a u64, for raw values.
std::vector<std::byte> u64_bytes(std::uint64_t v) {
    test::ByteSink s;
    s.put<std::uint64_t>(v);
    return s.bytes;
}

}  // namespace

TEST_CASE("MappedFile: missing files, folders and empty files", "[io][hostile]") {
    test::TempDir dir("mapped");
    require_error([&] { MappedFile f(dir.path() / "absent.gguf"); },
                  {"absent.gguf: cannot open: No such file or directory"});
    require_error([&] { MappedFile f(dir.path()); }, {"cannot open: not a regular file"});
    const auto empty = dir.write("empty.bin", std::vector<std::byte>{});
    const MappedFile f(empty);
    CHECK(f.size() == 0);
    CHECK(f.data() == nullptr);
    require_error([&] { GGUFFile g(empty); }, {"empty.bin: truncated: magic needs 4 bytes at byte 0, but only 0 remain"});
    require_error([&] { SafetensorsFile s(empty); }, {"empty.bin: file is 0 bytes, too short"});

    const auto some = dir.write("some.bin", test::pattern_bytes(100));
    MappedFile a(some);
    const std::byte* p = a.data();
    MappedFile b = std::move(a);
    CHECK(b.data() == p);
    CHECK(a.data() == nullptr);
    CHECK(std::to_integer<int>(b.data()[99]) == 99);
}

TEST_CASE("MappedFile::release hands pages back and the bytes read the same after", "[io]") {
    test::TempDir dir("release");
    const std::vector<std::byte> bytes = test::pattern_bytes(5 * 4096 + 123);
    const MappedFile f(dir.write("pages.bin", bytes));
    REQUIRE(std::memcmp(f.data(), bytes.data(), bytes.size()) == 0);  // every page touched
    f.release(f.data() + 100, 3 * 4096);                              // pages 1 and 2 wholly inside
    f.release(f.data(), f.size());                                    // all of them
    f.release(bytes.data(), bytes.size());                            // not this mapping's: ignored
    f.release(f.data() + f.size() - 10, 100);                         // past the end: ignored
    CHECK(f.contains(f.data(), f.size()));
    CHECK_FALSE(f.contains(f.data() + 1, f.size()));
    CHECK_FALSE(f.contains(bytes.data(), 1));
    CHECK(std::memcmp(f.data(), bytes.data(), bytes.size()) == 0);  // read again from the file
}

TEST_CASE("GGUF truncated at every offset fails cleanly", "[gguf][hostile]") {
    test::TempDir dir("gguf-trunc");
    GGUFWriter w = small_gguf();
    const std::vector<std::byte> bytes = w.build();
    REQUIRE(bytes.size() < 1024);  // small enough to try every length
    {
        const GGUFFile whole(dir.write("whole.gguf", bytes));
        CHECK(whole.tensors().size() == 3);
    }
    // Every length short of the last tensor's end (beyond it lies only padding,
    // and a file cut there is still valid).
    const std::uint64_t data_end = w.tensor_file_offsets.back() + w.tensors.back().data.size();
    for (std::size_t length = 0; length < data_end; ++length) {
        INFO("truncated to " << length << " of " << bytes.size() << " bytes");
        const auto path = dir.write("cut.gguf", bytes.data(), length);
        const std::string message = require_error([&] { GGUFFile f(path); }, {"cut.gguf: "});
        const bool says_why = message.find("truncated") != std::string::npos ||
                              message.find("cannot fit") != std::string::npos ||
                              message.find("exceeds the") != std::string::npos ||
                              message.find("past the end of the file") != std::string::npos;
        CHECK(says_why);
    }
}

TEST_CASE("GGUF header corruptions", "[gguf][hostile]") {
    test::TempDir dir("gguf-header");
    const auto open = [&](GGUFWriter& w) {
        const auto path = dir.write("bad.gguf", w.build());
        return [path] { GGUFFile f(path); };
    };
    GGUFWriter w = small_gguf();
    SECTION("bad magic") {
        w.magic = "GGML";
        require_error(open(w), {"bad.gguf: not a GGUF file: it starts with GGML"});
    }
    SECTION("binary magic") {
        w.magic = std::string("\xff\x00\x01\x02", 4);
        require_error(open(w), {"bad.gguf: not a GGUF file", "bytes: ff 00 01 02"});
    }
    SECTION("version 99") {
        w.version = 99;
        require_error(open(w), {"bad.gguf: unsupported GGUF version 99"});
    }
    SECTION("version 1") {
        w.version = 1;
        require_error(open(w), {"bad.gguf: GGUF version 1 is not supported"});
    }
    SECTION("big-endian") {
        w.version = 0x03000000u;
        require_error(open(w), {"bad.gguf: big-endian GGUF files are not supported"});
    }
    SECTION("metadata count 2^60") {
        w.kv_count = two_60;
        require_error(open(w), {"bad.gguf: metadata count 1152921504606846976 cannot fit"});
    }
    SECTION("tensor count 2^60") {
        w.tensor_count = two_60;
        require_error(open(w), {"bad.gguf: tensor count 1152921504606846976 cannot fit"});
    }
    SECTION("tensor count larger than the infos written") {
        w.tensor_count = 4;
        require_error(open(w), {"bad.gguf: tensor info 3 of 4"});
    }
}

TEST_CASE("GGUF metadata corruptions", "[gguf][hostile]") {
    test::TempDir dir("gguf-meta");
    GGUFWriter w;
    const auto open = [&] {
        const auto path = dir.write("meta.gguf", w.build());
        return [path] { GGUFFile f(path); };
    };
    SECTION("string length 2^63") {
        auto value = u64_bytes(two_63);
        value.push_back(std::byte{'x'});
        w.add("general.name", gguf::raw(gguf::STRING, value));
        require_error(open(), {"meta.gguf: key 'general.name': string: length 9223372036854775808 exceeds the"});
    }
    SECTION("key length 2^63") {
        test::ByteSink entry;
        entry.str("general.name", two_63);
        w.add_raw_kv(entry.bytes);
        require_error(open(), {"meta.gguf: metadata entry 0 of 1: key: length 9223372036854775808 exceeds"});
    }
    SECTION("array count 2^60") {
        w.add("tokenizer.ggml.scores", gguf::array(gguf::FLOAT32, {gguf::f32(1)}, two_60));
        require_error(open(), {"meta.gguf: key 'tokenizer.ggml.scores': array of 1152921504606846976 float32 elements cannot fit"});
    }
    SECTION("array of strings count 2^60") {
        w.add("tokenizer.ggml.tokens", gguf::array(gguf::STRING, {gguf::string("a")}, two_60));
        require_error(open(), {"key 'tokenizer.ggml.tokens': array of 1152921504606846976 string elements cannot fit"});
    }
    SECTION("a string inside an array with length 2^63") {
        auto bad = u64_bytes(two_63);
        w.add("tokens", gguf::array(gguf::STRING, {gguf::string("ok"), gguf::raw(gguf::STRING, bad)}));
        require_error(open(), {"key 'tokens': array element 1: string: length 9223372036854775808 exceeds"});
    }
    SECTION("arrays nested 9 deep") {
        gguf::Value v = gguf::array(gguf::UINT8, {gguf::u8(1)});
        for (int level = 2; level <= 9; ++level) v = gguf::array(gguf::ARRAY, {v});
        w.add("deep", v);
        require_error(open(), {"meta.gguf: key 'deep'", "arrays nested more than 8 deep"});
    }
    SECTION("arrays nested a million deep are stopped at 8") {
        // Each level: element type ARRAY, count 1. No recursion past 8 levels.
        test::ByteSink s;
        for (int level = 0; level < 1'000'000; ++level) {
            s.put<std::uint32_t>(gguf::ARRAY);
            s.put<std::uint64_t>(1);
        }
        w.add("abyss", gguf::raw(gguf::ARRAY, s.bytes));
        require_error(open(), {"key 'abyss'", "nested more than 8 deep"});
    }
    SECTION("more array elements in all than the memory cap") {
        // Two uint8 arrays of 2^22 + 1: each fits the file, together they pass 2^23.
        test::ByteSink arr;
        arr.put<std::uint32_t>(gguf::UINT8);
        arr.put<std::uint64_t>((std::uint64_t{1} << 22) + 1);
        arr.bytes.resize(arr.bytes.size() + (std::size_t{1} << 22) + 1);
        w.add("first", gguf::raw(gguf::ARRAY, arr.bytes));
        w.add("second", gguf::raw(gguf::ARRAY, arr.bytes));
        require_error(open(), {"meta.gguf: key 'second': metadata arrays hold more than 8388608 values in all"});
    }
    SECTION("key longer than 65535 bytes") {
        w.add(std::string(65536, 'k'), gguf::u8(1));
        require_error(open(), {"meta.gguf: metadata entry 0 of 1: key is 65536 bytes long, over the limit of 65535"});
    }
    SECTION("duplicate key") {
        w.add("general.name", gguf::string("a"));
        w.add("general.name", gguf::string("b"));
        require_error(open(), {"meta.gguf: key 'general.name': duplicate key"});
    }
    SECTION("empty key") {
        w.add("", gguf::u8(1));
        require_error(open(), {"meta.gguf: metadata entry 0 of 1: key is empty"});
    }
    SECTION("key that is not UTF-8") {
        w.add("bad\xff\xfekey", gguf::u8(1));
        require_error(open(), {"meta.gguf", "key <8 bytes: 62 61 64 ff fe 6b 65 79>", "is not valid UTF-8"});
    }
    SECTION("unknown value type") {
        w.add("k", gguf::raw(13, u64_bytes(0)));
        require_error(open(), {"meta.gguf: key 'k': value type 13 is not a GGUF value type"});
    }
    SECTION("unknown array element type") {
        test::ByteSink s;
        s.put<std::uint32_t>(77);
        s.put<std::uint64_t>(0);
        w.add("k", gguf::raw(gguf::ARRAY, s.bytes));
        require_error(open(), {"key 'k': array element type 77 is not a GGUF value type"});
    }
    SECTION("bool that is neither 0 nor 1") {
        w.add("flag", gguf::raw(gguf::BOOL, {std::byte{2}}));
        require_error(open(), {"meta.gguf: key 'flag': bool value 2 is neither 0 nor 1"});
    }
    SECTION("alignment 0") {
        w.add("general.alignment", gguf::u32(0));
        require_error(open(), {"meta.gguf: key 'general.alignment': 0 is not a non-zero power of two"});
    }
    SECTION("alignment 3") {
        w.add("general.alignment", gguf::u32(3));
        require_error(open(), {"meta.gguf: key 'general.alignment': 3 is not a non-zero power of two"});
    }
    SECTION("alignment of the wrong type") {
        w.add("general.alignment", gguf::string("32"));
        require_error(open(), {"key 'general.alignment': expected an integer, found string"});
    }
    SECTION("alignment 2^63 leaves no room for data") {
        w.add("general.alignment", gguf::u64(two_63));
        w.add_tensor("t", {1}, gguf::F32, test::f32_bytes({1}));
        require_error(open(), {"meta.gguf: the data section would start past the end of the file"});
    }
}

TEST_CASE("GGUF tensor info corruptions", "[gguf][hostile]") {
    test::TempDir dir("gguf-tensors-bad");
    GGUFWriter w = small_gguf();
    const auto open = [&] {
        const auto path = dir.write("model.gguf", w.build());
        return [path] { GGUFFile f(path); };
    };
    auto& q = w.tensors[1];  // blk.0.attn_q.weight
    SECTION("offset past the end of the file") {
        q.offset = 1 << 20;
        const std::vector<std::byte> bytes = w.build();
        const auto path = dir.write("model.gguf", bytes);
        const std::uint64_t begin = w.data_start + (1 << 20);
        require_error([&] { GGUFFile f(path); },
                      {"model.gguf: tensor 'blk.0.attn_q.weight': data [" + std::to_string(begin) + ", " +
                           std::to_string(begin + 34) + ") ends past the end of the file (" +
                           std::to_string(bytes.size()) + " bytes)"});
    }
    SECTION("shape pointing past the end of the file") {
        q.ne = {32, 1000};
        require_error(open(), {"model.gguf: tensor 'blk.0.attn_q.weight': data [", "ends past the end of the file"});
    }
    SECTION("offset + size overflows 64 bits") {
        q.offset = std::numeric_limits<std::uint64_t>::max() - 31;
        require_error(open(), {"tensor 'blk.0.attn_q.weight': data offset", "overflows 64 bits"});
    }
    SECTION("shape product overflows 64 bits") {
        q.ne = {std::uint64_t{1} << 32, std::uint64_t{1} << 32};
        require_error(open(), {"model.gguf: tensor 'blk.0.attn_q.weight': shape (ne) [4294967296, 4294967296] has more than 2^63 - 1 elements"});
    }
    SECTION("shape product just over 2^63") {
        q.ne = {32, std::uint64_t{1} << 58};
        require_error(open(), {"tensor 'blk.0.attn_q.weight'", "more than 2^63 - 1 elements"});
    }
    SECTION("n_dims 5") {
        q.ne = {32, 1, 1, 1, 1};
        require_error(open(), {"model.gguf: tensor 'blk.0.attn_q.weight': n_dims 5 is outside 1..4"});
    }
    SECTION("n_dims 0") {
        q.ne = {};
        require_error(open(), {"tensor 'blk.0.attn_q.weight': n_dims 0 is outside 1..4"});
    }
    SECTION("n_dims 2^32 - 1") {
        q.n_dims = 0xFFFFFFFFu;  // the dims that follow are the two real ones
        require_error(open(), {"tensor 'blk.0.attn_q.weight': n_dims 4294967295 is outside 1..4"});
    }
    SECTION("a zero dimension") {
        q.ne = {32, 0};
        require_error(open(), {"tensor 'blk.0.attn_q.weight': shape (ne) [32, 0] has a zero dimension"});
    }
    SECTION("duplicate tensor names") {
        w.tensors[2].name = "token_embd.weight";
        require_error(open(), {"model.gguf: tensor 'token_embd.weight': duplicate tensor name"});
    }
    SECTION("tensor name length 2^63") {
        q.name_length = two_63;
        require_error(open(), {"model.gguf: tensor info 1 of 3: tensor name: length 9223372036854775808 exceeds"});
    }
    SECTION("empty tensor name") {
        q.name = "";
        require_error(open(), {"tensor info 1 of 3: tensor name is empty"});
    }
    SECTION("misaligned offset") {
        q.offset = 48;  // the real offset is 32; 48 is not a multiple of 32
        require_error(open(), {"model.gguf: tensor 'blk.0.attn_q.weight': data offset 48 is not a multiple of the alignment (32)"});
    }
    SECTION("unknown type id") {
        q.type = 99;
        require_error(open(), {"model.gguf: tensor 'blk.0.attn_q.weight': unknown ggml type id 99"});
    }
    SECTION("a type id ggml removed") {
        q.type = 4;  // Q4_2
        require_error(open(), {"tensor 'blk.0.attn_q.weight': unknown ggml type id 4"});
    }
    SECTION("row length not a multiple of the block") {
        q.type = 12;  // Q4_K, blocks of 256
        require_error(open(), {"tensor 'blk.0.attn_q.weight': row length ne[0] = 32 is not a multiple of Q4_K's block of 256"});
    }
    SECTION("overlapping tensors") {
        w.tensors[2].offset = 0;  // output_norm on top of token_embd
        require_error(open(), {"model.gguf: tensors 'token_embd.weight' and 'output_norm.weight' overlap"});
    }
}

TEST_CASE("safetensors truncated at every offset fails cleanly", "[safetensors][hostile]") {
    test::TempDir dir("st-trunc");
    SafetensorsWriter w;
    w.add_metadata("format", "pt");
    w.add("a", "F32", {2, 3}, test::f32_bytes({0, 1, 2, 3, 4, 5}));
    w.add("b", "BF16", {4}, test::pattern_bytes(8));
    const std::vector<std::byte> bytes = w.build();
    CHECK(SafetensorsFile(dir.write("whole.safetensors", bytes)).tensors().size() == 2);
    for (std::size_t length = 0; length < bytes.size(); ++length) {
        INFO("truncated to " << length << " of " << bytes.size() << " bytes");
        const auto path = dir.write("cut.safetensors", bytes.data(), length);
        const std::string message = require_error([&] { SafetensorsFile f(path); }, {"cut.safetensors: "});
        const bool says_why = message.find("too short") != std::string::npos ||
                              message.find("larger than the file") != std::string::npos ||
                              message.find("past the end of the data buffer") != std::string::npos;
        CHECK(says_why);
    }
}

TEST_CASE("safetensors header corruptions", "[safetensors][hostile]") {
    test::TempDir dir("st-header");
    SafetensorsWriter w;
    w.add("a", "F32", {2, 3}, test::f32_bytes({0, 1, 2, 3, 4, 5}));
    w.add("b", "BF16", {4}, test::pattern_bytes(8));
    const auto open_bytes = [&](const std::vector<std::byte>& bytes) {
        const auto path = dir.write("bad.safetensors", bytes);
        return [path] { SafetensorsFile f(path); };
    };
    SECTION("shorter than the length field") {
        require_error(open_bytes(test::pattern_bytes(5)), {"bad.safetensors: file is 5 bytes, too short for the 8-byte header length"});
    }
    SECTION("header length larger than the file") {
        const auto bytes = w.build(1000);
        require_error(open_bytes(bytes), {"bad.safetensors: header length 1000 is larger than the file (" +
                                          std::to_string(bytes.size()) + " bytes)"});
    }
    SECTION("header length 2^63") {
        require_error(open_bytes(w.build(two_63)), {"bad.safetensors: header length 9223372036854775808 is larger than the file"});
    }
    SECTION("header length 0") {
        require_error(open_bytes(w.build(0)), {"bad.safetensors: header length is 0"});
    }
    SECTION("header length too short: JSON cut off") {
        require_error(open_bytes(w.build(20)), {"bad.safetensors: header: invalid JSON"});
    }
    SECTION("not JSON") {
        require_error(open_bytes(SafetensorsWriter::build_raw("this is not json", {})), {"bad.safetensors: header: invalid JSON"});
    }
    SECTION("JSON that is not an object") {
        require_error(open_bytes(SafetensorsWriter::build_raw("[1, 2, 3]", {})), {"bad.safetensors: header is array, not a JSON object"});
    }
    SECTION("invalid UTF-8 in a name") {
        const std::string text = "{\"a\xff\": {\"dtype\": \"F32\", \"shape\": [0], \"data_offsets\": [0, 0]}}";
        require_error(open_bytes(SafetensorsWriter::build_raw(text, {})), {"bad.safetensors: header: invalid JSON"});
    }
    SECTION("duplicate tensor names") {
        const std::string text = R"({"a": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]},
                                     "a": {"dtype": "F32", "shape": [1], "data_offsets": [4, 8]}})";
        require_error(open_bytes(SafetensorsWriter::build_raw(text, test::pattern_bytes(8))),
                      {"bad.safetensors: header: duplicate key 'a'"});
    }
    SECTION("JSON nested 100000 deep") {
        const std::string text = std::string(100000, '[') + std::string(100000, ']');
        require_error(open_bytes(SafetensorsWriter::build_raw(text, {})), {"bad.safetensors: header: JSON nested more than"});
    }
    SECTION("__metadata__ with a non-string value") {
        w.header["__metadata__"] = {{"format", 1}};
        require_error(open_bytes(w.build()), {"bad.safetensors: __metadata__: value of 'format' is number, not a string"});
    }
}

TEST_CASE("safetensors tensor entry corruptions", "[safetensors][hostile]") {
    test::TempDir dir("st-entries");
    SafetensorsWriter w;
    w.add("a", "F32", {2, 3}, test::f32_bytes({0, 1, 2, 3, 4, 5}));  // [0, 24)
    w.add("b", "BF16", {4}, test::pattern_bytes(8));                  // [24, 32)
    const auto open = [&] {
        const auto path = dir.write("w.safetensors", w.build());
        return [path] { SafetensorsFile f(path); };
    };
    SECTION("overlapping data_offsets") {
        w.header["b"]["data_offsets"] = {20, 28};
        w.buffer.resize(28);
        require_error(open(), {"w.safetensors: tensors 'a' [0, 24) and 'b' [20, 28) overlap"});
    }
    SECTION("offsets past the end of the buffer") {
        w.header["b"]["data_offsets"] = {24, 32 + 8};
        w.header["b"]["shape"] = {8};
        require_error(open(), {"w.safetensors: tensor 'b': data_offsets [24, 40) end past the end of the data buffer (32 bytes)"});
    }
    SECTION("reversed offsets") {
        w.header["b"]["data_offsets"] = {32, 24};
        require_error(open(), {"w.safetensors: tensor 'b': data_offsets [32, 24] are reversed"});
    }
    SECTION("size disagrees with shape x dtype") {
        w.header["a"]["shape"] = {2, 2};
        require_error(open(), {"w.safetensors: tensor 'a': shape of 4 F32 elements needs 16 bytes, but data_offsets [0, 24) hold 24"});
    }
    SECTION("dtype disagrees with the size") {
        w.header["a"]["dtype"] = "F16";
        require_error(open(), {"tensor 'a': shape of 6 F16 elements needs 12 bytes"});
    }
    SECTION("unknown dtype") {
        w.header["a"]["dtype"] = "Q4_K";
        require_error(open(), {"w.safetensors: tensor 'a': unknown dtype 'Q4_K'"});
    }
    SECTION("a gap between tensors") {
        w.header["b"]["data_offsets"] = {28, 36};
        w.buffer.resize(36);
        require_error(open(), {"w.safetensors: bytes [24, 28) of the data buffer belong to no tensor"});
    }
    SECTION("bytes after the last tensor") {
        w.buffer.resize(40);
        require_error(open(), {"w.safetensors: bytes [32, 40) at the end of the data buffer belong to no tensor"});
    }
    SECTION("shape product overflows") {
        w.header["a"]["shape"] = {std::uint64_t{1} << 32, std::uint64_t{1} << 32};
        require_error(open(), {"w.safetensors: tensor 'a': shape has more than 2^63 - 1 elements"});
    }
    SECTION("bits overflow 64 bits") {
        w.header["a"]["shape"] = {std::uint64_t{1} << 62};
        require_error(open(), {"tensor 'a': data size overflows 64 bits"});
    }
    SECTION("sub-byte dtype that is not a whole number of bytes") {
        w.header["a"]["dtype"] = "F4";
        w.header["a"]["shape"] = {3};
        require_error(open(), {"tensor 'a': shape of F4 elements is not a whole number of bytes"});
    }
    SECTION("negative dimension") {
        w.header["a"]["shape"] = {-1, 6};
        require_error(open(), {"tensor 'a': a dimension in 'shape' is number, not a non-negative integer"});
    }
    SECTION("fractional dimension") {
        w.header["a"]["shape"] = {1.5, 4};
        require_error(open(), {"tensor 'a': a dimension in 'shape' is number, not a non-negative integer"});
    }
    SECTION("wrong field types") {
        w.header["a"]["dtype"] = 7;
        require_error(open(), {"w.safetensors: tensor 'a': field 'dtype' is number, not a string"});
    }
    SECTION("shape is a string") {
        w.header["a"]["shape"] = "2x3";
        require_error(open(), {"tensor 'a': field 'shape' is string, not an array"});
    }
    SECTION("three data offsets") {
        w.header["a"]["data_offsets"] = {0, 12, 24};
        require_error(open(), {"tensor 'a': field 'data_offsets' is not an array of two integers"});
    }
    SECTION("missing field") {
        w.header["a"].erase("data_offsets");
        require_error(open(), {"w.safetensors: tensor 'a': missing field 'data_offsets'"});
    }
    SECTION("entry is not an object") {
        w.header["a"] = "F32";
        require_error(open(), {"tensor 'a': entry is string, not an object"});
    }
}

TEST_CASE("broken sharded safetensors sets", "[safetensors][hostile]") {
    test::TempDir dir("st-index");
    SafetensorsWriter shard;
    shard.add("x", "F32", {1}, test::f32_bytes({1}));
    dir.write("model-00001-of-00002.safetensors", shard.build());
    const auto index = [&](const std::string& text) {
        dir.write_text("model.safetensors.index.json", text);
        return [&] { SafetensorsSet::open_folder(dir.path()); };
    };
    SECTION("a folder with no weights") {
        test::TempDir empty("st-index-empty");
        require_error([&] { SafetensorsSet::open_folder(empty.path()); },
                      {"st-index-empty: no model.safetensors or model.safetensors.index.json"});
    }
    SECTION("index naming a missing shard") {
        require_error(index(R"({"weight_map": {"x": "model-00001-of-00002.safetensors",
                                               "y": "model-00002-of-00002.safetensors"}})"),
                      {"model.safetensors.index.json: shard 'model-00002-of-00002.safetensors'", "cannot open"});
    }
    SECTION("tensor absent from its shard") {
        require_error(index(R"({"weight_map": {"x": "model-00001-of-00002.safetensors",
                                               "z": "model-00001-of-00002.safetensors"}})"),
                      {"model.safetensors.index.json: tensor 'z' is mapped to shard 'model-00001-of-00002.safetensors', which does not contain it"});
    }
    SECTION("the same tensor in two shards") {
        dir.write("model-00002-of-00002.safetensors", shard.build());
        require_error(index(R"({"weight_map": {"x": "model-00001-of-00002.safetensors",
                                               "y": "model-00002-of-00002.safetensors"}})"),
                      {"model-00002-of-00002.safetensors: tensor 'x' is also in"});
    }
    SECTION("a shard path that leaves the folder") {
        require_error(index(R"({"weight_map": {"x": "../model-00001-of-00002.safetensors"}})"),
                      {"model.safetensors.index.json: weight_map: tensor 'x': shard '../model-00001-of-00002.safetensors' is not a plain file name"});
    }
    SECTION("no weight_map") {
        require_error(index(R"({"metadata": {}})"), {"model.safetensors.index.json: missing 'weight_map'"});
    }
    SECTION("weight_map of the wrong type") {
        require_error(index(R"({"weight_map": ["x"]})"), {"'weight_map' is array, not an object"});
    }
    SECTION("shard name of the wrong type") {
        require_error(index(R"({"weight_map": {"x": 1}})"), {"weight_map: tensor 'x': shard is number, not a string"});
    }
    SECTION("index that is not JSON") {
        require_error(index("{weight_map"), {"model.safetensors.index.json: invalid JSON"});
    }
    SECTION("a corrupt shard is reported through the index") {
        dir.write("model-00001-of-00002.safetensors", test::pattern_bytes(4));
        require_error(index(R"({"weight_map": {"x": "model-00001-of-00002.safetensors"}})"),
                      {"model.safetensors.index.json: shard 'model-00001-of-00002.safetensors'", "too short"});
    }
}

TEST_CASE("untrusted JSON: duplicates at any depth, nesting and value count are bounded", "[io][hostile]") {
    CHECK(parse_untrusted_json(R"({"a": {"b": [1, 2, {"c": null}]}})")["a"]["b"][2].contains("c"));
    require_error([] { parse_untrusted_json(R"({"a": {"b": 1, "b": 2}})"); }, {"duplicate key 'b'"});
    // The same key in sibling objects is fine.
    CHECK(parse_untrusted_json(R"([{"k": 1}, {"k": 2}])").size() == 2);
    CHECK(parse_untrusted_json("[[[1]]]", 3).is_array());
    require_error([] { parse_untrusted_json("[[[[1]]]]", 3); }, {"JSON nested more than 3 levels deep"});
    CHECK(parse_untrusted_json("[1, 2, 3]", 16, 4).size() == 3);  // 3 numbers + the array
    require_error([] { parse_untrusted_json("[1, 2, 3, 4]", 16, 4); }, {"JSON has more than 4 values"});
    require_error([] { parse_untrusted_json("{\"a\": }"); }, {"invalid JSON: [json.exception.parse_error"});
    require_error([] { parse_untrusted_json(""); }, {"invalid JSON"});

    test::TempDir dir("json");
    const auto bad = dir.write_text("config.json", "{\"a\": 1,}");
    require_error([&] { read_json_file(bad); }, {"config.json: invalid JSON"});
    require_error([&] { read_json_file(dir.path() / "absent.json"); }, {"absent.json: cannot open"});
    CHECK(read_json_file(dir.write_text("ok.json", R"({"n_layer": 2})"))["n_layer"] == 2);
}

TEST_CASE("the JSON limits accept every real fixture JSON file", "[io][fixtures]") {
    MOELAB_REQUIRE_FIXTURES();
    int files = 0;
    for (const auto& entry : std::filesystem::recursive_directory_iterator(test::fixtures_dir())) {
        if (entry.path().extension() != ".json") continue;
        INFO(entry.path().string());
        CHECK_NOTHROW(read_json_file(entry.path()));
        ++files;
    }
    CHECK(files > 10);  // manifest + config/tokenizer files of every HF folder
}
