// SPDX-License-Identifier: MIT
// GGUF reader: every fixture model opens and reads right; metadata values of
// all 13 types and nested arrays round-trip through the test writer; shapes
// are reversed into outermost-first order; split files merge.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cctype>
#include <cstdint>
#include <cstring>
#include <limits>
#include <string>
#include <vector>

#include "moelab/io/gguf.hpp"
#include "support/fixtures.hpp"
#include "support/gguf_writer.hpp"
#include "support/temp_dir.hpp"

using namespace moelab;
using namespace moelab::io;
using moelab::test::GGUFWriter;
namespace gguf = moelab::test::gguf;

namespace {

std::uint64_t read_le_u64(const std::vector<char>& bytes, std::size_t at) {
    std::uint64_t v = 0;
    for (std::size_t k = 0; k < 8; ++k) v |= static_cast<std::uint64_t>(static_cast<unsigned char>(bytes[at + k])) << (8 * k);
    return v;
}

std::string upper(std::string_view s) {
    std::string out(s);
    for (char& c : out) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
    return out;
}

}  // namespace

TEST_CASE("every fixture GGUF opens with the right tensors, shapes, types and metadata", "[gguf][fixtures]") {
    MOELAB_REQUIRE_FIXTURES();
    const auto manifest = test::manifest();
    int checked = 0;
    for (const auto& model : manifest["models"]) {
        const auto path = test::fixtures_dir() / model["gguf"].get<std::string>();
        INFO("model " << model["name"].get<std::string>() << ": " << path.string());
        const GGUFFile file(path);

        // Counts in the header, read independently of the reader: bytes 8..16 and 16..24.
        const std::vector<char> raw = test::read_bytes(path);
        CHECK(file.tensors().size() == read_le_u64(raw, 8));
        CHECK(file.metadata().size() == read_le_u64(raw, 16));
        CHECK((file.version() == 2 || file.version() == 3));

        const std::string arch = file.get_string("general.architecture");
        CHECK(arch == model["arch"].get<std::string>());
        const auto n_vocab = model["n_vocab"].get<std::uint64_t>();
        CHECK(file.get_string_array("tokenizer.ggml.tokens").size() == n_vocab);
        const std::int64_t n_layer = file.get_int(arch + ".block_count");
        const std::int64_t n_embd = file.get_int(arch + ".embedding_length");
        if (model.contains("spec")) {
            CHECK(n_layer == model["spec"]["n_layer"].get<std::int64_t>());
            CHECK(n_embd == model["spec"]["n_embd"].get<std::int64_t>());
        }

        // Embedding: (n_vocab, n_embd) outermost first, i.e. GGUF ne = {n_embd, n_vocab}.
        const TensorEntry* embd = file.find_tensor("token_embd.weight");
        REQUIRE(embd != nullptr);
        CHECK(embd->shape == std::vector<std::uint64_t>{n_vocab, static_cast<std::uint64_t>(n_embd)});
        // Layers 0 .. n_layer-1 exist and no more.
        CHECK(file.find_tensor("blk.0.attn_norm.weight") != nullptr);
        CHECK(file.find_tensor("blk." + std::to_string(n_layer - 1) + ".attn_norm.weight") != nullptr);
        const std::string beyond = "blk." + std::to_string(n_layer) + ".";
        CHECK(std::none_of(file.tensors().begin(), file.tensors().end(),
                           [&](const TensorEntry& t) { return t.name.rfind(beyond, 0) == 0; }));
        CHECK(file.find_tensor("no.such.tensor") == nullptr);

        // Every tensor: a type moelab computes with (all fixtures use one), a
        // size that follows from shape and type, and bytes inside the file.
        const std::string weights = model["weights"].get<std::string>();
        // The manifest's weight type: "f32", "Q8_0", "Q4_K_M" (a mix led by Q4_K), ...
        std::string main_type = weights == "f32" ? "F32" : weights;
        if (main_type.size() > 2 && main_type.substr(main_type.size() - 2) == "_M") main_type.resize(main_type.size() - 2);
        bool saw_main_type = false;
        for (const TensorEntry& t : file.tensors()) {
            INFO("tensor " << t.name << " " << t.type_name);
            REQUIRE(t.dtype.has_value());
            CHECK(upper(dtype_name(*t.dtype)) == t.type_name);
            REQUIRE(!t.shape.empty());
            REQUIRE(t.shape.size() <= 4);
            std::uint64_t rows = 1;
            for (std::size_t d = 0; d + 1 < t.shape.size(); ++d) rows *= t.shape[d];
            CHECK(t.nbytes == rows * row_bytes(*t.dtype, t.shape.back()));
            CHECK(t.file_offset % file.alignment() == 0);
            CHECK(t.file_offset + t.nbytes <= raw.size());
            // The pointer is the mapping at file_offset: the bytes agree with a plain read.
            REQUIRE(t.data != nullptr);
            CHECK(std::memcmp(t.data, raw.data() + t.file_offset, static_cast<std::size_t>(std::min<std::uint64_t>(t.nbytes, 64))) == 0);
            CHECK(std::memcmp(t.data + t.nbytes - 1, raw.data() + t.file_offset + t.nbytes - 1, 1) == 0);
            if (weights == "f32") CHECK(t.type_name == "F32");
            saw_main_type |= t.type_name == main_type;
        }
        CHECK(saw_main_type);
        ++checked;
    }
    CHECK(checked == static_cast<int>(manifest["models"].size()));
}

TEST_CASE("all 13 metadata value types and nested arrays round-trip", "[gguf]") {
    test::TempDir dir("gguf-values");
    for (const std::uint32_t version : {2u, 3u}) {
        INFO("version " << version);
        GGUFWriter w;
        w.version = version;
        w.add("u8", gguf::u8(255));
        w.add("i8", gguf::i8(-128));
        w.add("u16", gguf::u16(65535));
        w.add("i16", gguf::i16(-32768));
        w.add("u32", gguf::u32(4294967295u));
        w.add("i32", gguf::i32(std::numeric_limits<std::int32_t>::min()));
        w.add("f32", gguf::f32(-1.5f));
        w.add("bool.t", gguf::boolean(true));
        w.add("bool.f", gguf::boolean(false));
        w.add("string", gguf::string("héllo\0world"));  // literal ends at the NUL: "héllo"
        w.add("string.nul", gguf::raw(gguf::STRING, [] {
                  test::ByteSink s;
                  s.str(std::string_view("a\0b", 3));
                  return s.bytes;
              }()));
        w.add("u64", gguf::u64(std::numeric_limits<std::uint64_t>::max()));
        w.add("i64", gguf::i64(std::numeric_limits<std::int64_t>::min()));
        w.add("f64", gguf::f64(0.1));
        w.add("arr.i32", gguf::array(gguf::INT32, {gguf::i32(-1), gguf::i32(2), gguf::i32(3)}));
        w.add("arr.f32", gguf::array(gguf::FLOAT32, {gguf::f32(0.5f), gguf::f32(-2.0f)}));
        w.add("arr.str", gguf::array(gguf::STRING, {gguf::string("a"), gguf::string(""), gguf::string("ccc")}));
        w.add("arr.bool", gguf::array(gguf::BOOL, {gguf::boolean(true), gguf::boolean(false)}));
        w.add("arr.u64", gguf::array(gguf::UINT64, {gguf::u64(1), gguf::u64(std::uint64_t{1} << 40)}));
        w.add("arr.empty", gguf::array(gguf::UINT8, {}));
        // [[1, 2], [], [3]] of uint16, and an array nested 8 deep (the reader's limit).
        w.add("arr.nested", gguf::array(gguf::ARRAY, {gguf::array(gguf::UINT16, {gguf::u16(1), gguf::u16(2)}),
                                                      gguf::array(gguf::UINT16, {}),
                                                      gguf::array(gguf::UINT16, {gguf::u16(3)})}));
        gguf::Value deep = gguf::array(gguf::INT8, {gguf::i8(7)});
        for (int level = 2; level <= 8; ++level) deep = gguf::array(gguf::ARRAY, {deep});
        w.add("arr.deep8", deep);
        const auto path = dir.write("values.gguf", w.build());

        const GGUFFile f(path);
        CHECK(f.version() == version);
        CHECK(f.tensors().empty());
        REQUIRE(f.metadata().size() == 22);
        CHECK(f.metadata().front().first == "u8");  // file order kept
        CHECK(f.metadata().back().first == "arr.deep8");

        CHECK(f.find("u8")->type == GGUFType::uint8);
        CHECK(f.get_int("u8") == 255);
        CHECK(f.find("i8")->type == GGUFType::int8);
        CHECK(f.get_int("i8") == -128);
        CHECK(f.get_int("u16") == 65535);
        CHECK(f.find("i16")->type == GGUFType::int16);
        CHECK(f.get_int("i16") == -32768);
        CHECK(f.get_int("u32") == 4294967295LL);
        CHECK(f.get_int("i32") == std::numeric_limits<std::int32_t>::min());
        CHECK(f.find("f32")->type == GGUFType::float32);
        CHECK(f.get_float("f32") == -1.5);
        CHECK(f.get_bool("bool.t") == true);
        CHECK(f.get_bool("bool.f") == false);
        CHECK(f.get_string("string") == "héllo");
        CHECK(f.get_string("string.nul") == std::string("a\0b", 3));
        CHECK(f.find("u64")->type == GGUFType::uint64);
        CHECK(std::get<std::uint64_t>(f.find("u64")->value) == std::numeric_limits<std::uint64_t>::max());
        CHECK(f.get_int("i64") == std::numeric_limits<std::int64_t>::min());
        CHECK(f.find("f64")->type == GGUFType::float64);
        CHECK(f.get_float("f64") == 0.1);
        CHECK(f.get_float("u16") == 65535.0);  // integers read as floats too

        CHECK(f.get_int_array("arr.i32") == std::vector<std::int64_t>{-1, 2, 3});
        CHECK(f.find("arr.i32")->element_type == GGUFType::int32);
        CHECK(f.get_float_array("arr.f32") == std::vector<double>{0.5, -2.0});
        CHECK(f.get_float_array("arr.i32") == std::vector<double>{-1.0, 2.0, 3.0});
        CHECK(f.get_string_array("arr.str") == std::vector<std::string>{"a", "", "ccc"});
        CHECK(f.find("arr.bool")->as_array()->at(0).as_bool() != nullptr);
        CHECK(*f.find("arr.bool")->as_array()->at(0).as_bool());
        CHECK(f.get_int_array("arr.u64") == std::vector<std::int64_t>{1, std::int64_t{1} << 40});
        CHECK(f.get_int_array("arr.empty").empty());

        const GGUFValue* nested = f.find("arr.nested");
        REQUIRE(nested != nullptr);
        CHECK(nested->element_type == GGUFType::array);
        CHECK(nested->type_description() == "array of array of uint16");
        const auto& outer = *nested->as_array();
        REQUIRE(outer.size() == 3);
        CHECK(outer[0].as_array()->size() == 2);
        CHECK(outer[0].as_array()->at(1).to_int() == 2);
        CHECK(outer[1].as_array()->empty());
        CHECK(outer[2].as_array()->at(0).to_int() == 3);

        const GGUFValue* v = f.find("arr.deep8");
        for (int level = 1; level < 8; ++level) {
            REQUIRE(v->type == GGUFType::array);
            REQUIRE(v->as_array()->size() == 1);
            v = &v->as_array()->front();
        }
        CHECK(v->element_type == GGUFType::int8);
        CHECK(v->as_array()->front().to_int() == 7);
    }
}

TEST_CASE("GGUF typed getters say which key is missing or has the wrong type", "[gguf]") {
    test::TempDir dir("gguf-getters");
    GGUFWriter w;
    w.add("name", gguf::string("tiny"));
    w.add("count", gguf::u32(7));
    w.add("huge", gguf::u64(std::numeric_limits<std::uint64_t>::max()));
    w.add("tokens", gguf::array(gguf::STRING, {gguf::string("a")}));
    w.add("huge.arr", gguf::array(gguf::UINT64, {gguf::u64(1), gguf::u64(std::uint64_t{1} << 63)}));
    const auto path = dir.write("getters.gguf", w.build());
    const GGUFFile f(path);

    test::require_error([&] { f.get_string("absent"); }, {"getters.gguf: key 'absent': missing"});
    test::require_error([&] { f.get_string("count"); }, {"getters.gguf: key 'count': expected string, found uint32"});
    test::require_error([&] { f.get_int("name"); }, {"key 'name': expected an integer, found string"});
    test::require_error([&] { f.get_float("tokens"); }, {"key 'tokens': expected a number, found array of string"});
    test::require_error([&] { f.get_bool("count"); }, {"key 'count': expected bool, found uint32"});
    test::require_error([&] { f.get_int("huge"); }, {"key 'huge': value 18446744073709551615 does not fit in int64"});
    test::require_error([&] { f.get_int_array("tokens"); }, {"key 'tokens': expected array of integers, found array of string"});
    test::require_error([&] { f.get_int_array("huge.arr"); }, {"key 'huge.arr': value 9223372036854775808 does not fit"});
    test::require_error([&] { f.get_string_array("count"); }, {"key 'count': expected array of string, found uint32"});
    test::require_error([&] { f.get_float_array("name"); }, {"key 'name': expected array of numbers, found string"});

    CHECK(f.get_string_or("absent", "dflt") == "dflt");
    CHECK(f.get_string_or("name", "dflt") == "tiny");
    CHECK(f.get_int_or("absent", -3) == -3);
    CHECK(f.get_int_or("count", -3) == 7);
    CHECK(f.get_float_or("absent", 2.5) == 2.5);
    CHECK(f.get_bool_or("absent", true));
    CHECK(f.get_string_array_or("absent", {"x"}) == std::vector<std::string>{"x"});
    CHECK(f.get_int_array_or("absent", {1, 2}) == std::vector<std::int64_t>{1, 2});
    CHECK(f.get_float_array_or("absent", {}).empty());
    test::require_error([&] { f.get_int_or("name", 0); }, {"key 'name': expected an integer, found string"});
}

TEST_CASE("GGUF tensors: ne reversed into shape, data points at the right bytes, every known type opens",
          "[gguf]") {
    test::TempDir dir("gguf-tensors");
    GGUFWriter w;
    w.alignment = 64;
    w.add("general.alignment", gguf::u32(64));
    // ne = {3, 2}: rows of 3, 2 rows -> shape (2, 3).
    w.add_tensor("m", {3, 2}, gguf::F32, test::f32_bytes({0, 1, 2, 3, 4, 5}));
    w.add_tensor("v", {5}, gguf::F16, test::pattern_bytes(10));
    w.add_tensor("q5", {64, 2}, gguf::Q5_0, test::pattern_bytes(2 * 2 * 22));  // known, not computable
    w.add_tensor("k", {256, 1, 2}, gguf::Q4_K, test::pattern_bytes(2 * 144));
    w.add_tensor("ids", {4, 1, 1, 2}, gguf::I32, test::pattern_bytes(32));
    w.add_tensor("b", {2}, gguf::BF16, test::pattern_bytes(4));
    const std::vector<std::byte> bytes = w.build();
    const auto path = dir.write("tensors.gguf", bytes);

    GGUFFile f(path);
    CHECK(f.alignment() == 64);
    REQUIRE(f.tensors().size() == 6);
    const std::vector<std::string> names{"m", "v", "q5", "k", "ids", "b"};
    for (std::size_t i = 0; i < names.size(); ++i) {
        const TensorEntry& t = f.tensors()[i];
        INFO(t.name);
        CHECK(t.name == names[i]);  // file order
        CHECK(t.file_offset == w.tensor_file_offsets[i]);
        CHECK(t.file_offset % 64 == 0);
        CHECK(t.nbytes == w.tensors[i].data.size());
        CHECK(std::memcmp(t.data, w.tensors[i].data.data(), t.nbytes) == 0);
        CHECK(f.file_of(t.name) == path);
    }
    const TensorEntry& m = *f.find_tensor("m");
    CHECK(m.shape == std::vector<std::uint64_t>{2, 3});
    CHECK(m.n_elements() == 6);
    CHECK(m.dtype == DType::f32);
    float row1[3];
    std::memcpy(row1, m.data + 3 * sizeof(float), sizeof row1);  // row 1 = elements 3, 4, 5
    CHECK(row1[0] == 3.0f);
    CHECK(row1[2] == 5.0f);
    CHECK(f.find_tensor("v")->dtype == DType::f16);
    const TensorEntry& q5 = *f.find_tensor("q5");
    CHECK(q5.type_name == "Q5_0");
    CHECK(!q5.dtype.has_value());
    CHECK(q5.shape == std::vector<std::uint64_t>{2, 64});
    CHECK(f.find_tensor("k")->dtype == DType::q4_k);
    CHECK(f.find_tensor("k")->shape == std::vector<std::uint64_t>{2, 1, 256});
    CHECK(f.find_tensor("ids")->type_name == "I32");
    CHECK(f.find_tensor("ids")->shape == std::vector<std::uint64_t>{2, 1, 1, 4});
    CHECK(!f.find_tensor("ids")->dtype.has_value());
    CHECK(f.find_tensor("b")->dtype == DType::bf16);

    // Moving the file object keeps every pointer valid (the mapping does not move).
    const std::byte* before = f.find_tensor("m")->data;
    GGUFFile moved = std::move(f);
    CHECK(moved.find_tensor("m")->data == before);
    CHECK(std::memcmp(moved.find_tensor("m")->data, w.tensors[0].data.data(), 24) == 0);
}

TEST_CASE("every ggml type in the table has a plausible block and matches dtype.hpp", "[gguf]") {
    for (const GGMLTypeInfo& t : ggml_type_table) {
        INFO(t.name);
        CHECK(ggml_type_info(t.id) == &t);  // ids unique
        CHECK(t.block_elems >= 1);
        CHECK(t.block_bytes >= 1);
        if (t.dtype) CHECK(upper(dtype_name(*t.dtype)) == t.name);
    }
    for (const std::uint32_t removed : {4u, 5u, 31u, 32u, 33u, 36u, 37u, 38u, 1000u}) CHECK(ggml_type_info(removed) == nullptr);
    // The moelab-computable set is exactly these eight.
    int computable = 0;
    for (const GGMLTypeInfo& t : ggml_type_table) computable += t.dtype.has_value();
    CHECK(computable == 8);
}

namespace {

// Writes a 3-way split of a small model into `dir`: split 0 holds the
// metadata and tensors a, b; split 1 holds c; split 2 holds d, e.
std::vector<std::filesystem::path> write_split_model(const test::TempDir& dir, const std::string& prefix,
                                                     std::int64_t tensors_count = 5) {
    const std::vector<std::vector<std::string>> names{{"a", "b"}, {"c"}, {"d", "e"}};
    std::vector<std::filesystem::path> paths;
    for (std::size_t i = 0; i < 3; ++i) {
        GGUFWriter w;
        if (i == 0) {
            w.add("general.architecture", gguf::string("llama"));
            w.add("only.in.first", gguf::u8(1));
        } else {
            w.add("only.in.later", gguf::u8(1));
        }
        w.add("split.no", gguf::u16(static_cast<std::uint16_t>(i)));
        w.add("split.count", gguf::u16(3));
        w.add("split.tensors.count", gguf::i32(static_cast<std::int32_t>(tensors_count)));
        for (const std::string& name : names[i])
            w.add_tensor(name, {4}, gguf::F32, test::f32_bytes({float(name[0]), 1, 2, 3}));
        paths.push_back(dir.write(prefix + "-0000" + std::to_string(i + 1) + "-of-00003.gguf", w.build()));
    }
    return paths;
}

}  // namespace

TEST_CASE("GGUF split files merge, opened from the first or any split", "[gguf][split]") {
    test::TempDir dir("gguf-split");
    const auto paths = write_split_model(dir, "tiny");
    for (const auto& given : {paths[0], paths[1], paths[2]}) {
        INFO("opened from " << given.filename().string());
        const GGUFFile f(given);
        CHECK(f.path() == given);
        CHECK(f.split_count() == 3);
        REQUIRE(f.tensors().size() == 5);
        const std::vector<std::string> expected{"a", "b", "c", "d", "e"};
        for (std::size_t i = 0; i < 5; ++i) {
            const TensorEntry& t = f.tensors()[i];
            CHECK(t.name == expected[i]);
            float first = 0;
            std::memcpy(&first, t.data, sizeof first);
            CHECK(first == float(expected[i][0]));  // each tensor's bytes come from its own split
        }
        CHECK(f.file_of("a") == paths[0]);
        CHECK(f.file_of("c") == paths[1]);
        CHECK(f.file_of("e") == paths[2]);
        // Metadata comes from the first split only.
        CHECK(f.get_string("general.architecture") == "llama");
        CHECK(f.find("only.in.first") != nullptr);
        CHECK(f.find("only.in.later") == nullptr);
        CHECK(f.get_int("split.no") == 0);
    }
    // A moved split set keeps its pointers.
    GGUFFile f(paths[1]);
    const std::byte* d = f.find_tensor("d")->data;
    const GGUFFile g = std::move(f);
    CHECK(g.find_tensor("d")->data == d);
}

TEST_CASE("a GGUF file without split keys is one file, whatever its name", "[gguf][split]") {
    test::TempDir dir("gguf-nosplit");
    GGUFWriter w;
    w.add_tensor("x", {2}, gguf::F32, test::f32_bytes({1, 2}));
    const auto path = dir.write("looks-00001-of-00002.gguf", w.build());
    const GGUFFile f(path);
    CHECK(f.split_count() == 1);
    CHECK(f.tensors().size() == 1);
}

// Hostile split sets live here, next to the writer helper they share.
TEST_CASE("broken GGUF split sets are rejected with the file and the problem", "[gguf][split][hostile]") {
    test::TempDir dir("gguf-split-bad");
    SECTION("a missing split") {
        const auto paths = write_split_model(dir, "gone");
        std::filesystem::remove(paths[2]);
        test::require_error([&] { GGUFFile f(paths[0]); }, {"gone-00003-of-00003.gguf", "cannot open"});
    }
    SECTION("split.tensors.count disagrees with the tensors found") {
        const auto paths = write_split_model(dir, "count", 6);
        test::require_error([&] { GGUFFile f(paths[1]); },
                            {"count-00001-of-00003.gguf", "split.tensors.count' is 6", "hold 5 tensors"});
    }
    SECTION("a file name that is not NAME-0000i-of-0000N.gguf") {
        const auto paths = write_split_model(dir, "renamed");
        const auto odd = dir.path() / "renamed.gguf";
        std::filesystem::rename(paths[0], odd);
        test::require_error([&] { GGUFFile f(odd); }, {"renamed.gguf", "does not follow NAME-00001-of-0000N.gguf"});
    }
    SECTION("split.no disagrees with the file name") {
        const auto paths = write_split_model(dir, "swap");
        const auto tmp = dir.path() / "tmp.gguf";
        std::filesystem::rename(paths[0], tmp);
        std::filesystem::rename(paths[1], paths[0]);
        std::filesystem::rename(tmp, paths[1]);
        test::require_error([&] { GGUFFile f(paths[0]); }, {"swap-00001-of-00003.gguf", "disagree with the file name"});
    }
    SECTION("the same tensor in two splits") {
        GGUFWriter a, b;
        for (std::uint16_t i = 0; i < 2; ++i) {
            GGUFWriter& w = i == 0 ? a : b;
            w.add("split.no", gguf::u16(i));
            w.add("split.count", gguf::u16(2));
            w.add_tensor("same", {1}, gguf::F32, test::f32_bytes({1}));
        }
        const auto first = dir.write("dup-00001-of-00002.gguf", a.build());
        dir.write("dup-00002-of-00002.gguf", b.build());
        test::require_error([&] { GGUFFile f(first); }, {"dup-00002-of-00002.gguf", "tensor 'same' is also in"});
    }
}
