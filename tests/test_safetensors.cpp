// SPDX-License-Identifier: MIT
// Safetensors reader: every fixture HF folder opens and agrees with an
// independent parse of its header and with its GGUF twin; built files with
// every dtype, empty and scalar tensors, and sharded sets open right.
#include <catch2/catch.hpp>

#include <bit>
#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "moelab/io/gguf.hpp"
#include "moelab/io/safetensors.hpp"
#include "support/fixtures.hpp"
#include "support/safetensors_writer.hpp"
#include "support/temp_dir.hpp"

using namespace moelab;
using namespace moelab::io;
using moelab::test::SafetensorsWriter;

TEST_CASE("every fixture HF folder opens and matches an independent read of its header", "[safetensors][fixtures]") {
    MOELAB_REQUIRE_FIXTURES();
    int checked = 0;
    const auto manifest = test::manifest();
    for (const auto& model : manifest["models"]) {
        if (!model.contains("hf")) continue;
        const auto folder = test::fixtures_dir() / model["hf"].get<std::string>();
        INFO("model " << model["name"].get<std::string>());
        const SafetensorsSet set = SafetensorsSet::open_folder(folder);
        REQUIRE(set.files().size() == 1);
        CHECK(set.files()[0].metadata().at("format") == "pt");

        // Independent parse: 8-byte length, then JSON, with nlohmann directly.
        const std::vector<char> raw = test::read_bytes(folder / "model.safetensors");
        std::uint64_t n = 0;
        for (int k = 0; k < 8; ++k) n |= static_cast<std::uint64_t>(static_cast<unsigned char>(raw[k])) << (8 * k);
        const auto header = nlohmann::json::parse(raw.begin() + 8, raw.begin() + 8 + static_cast<std::ptrdiff_t>(n));
        CHECK(set.tensors().size() == header.size() - (header.contains("__metadata__") ? 1 : 0));
        for (const auto& [name, info] : header.items()) {
            if (name == "__metadata__") continue;
            INFO("tensor " << name);
            const TensorEntry* t = set.find_tensor(name);
            REQUIRE(t != nullptr);
            CHECK(t->type_name == info["dtype"].get<std::string>());
            CHECK(t->shape == info["shape"].get<std::vector<std::uint64_t>>());
            const auto begin = info["data_offsets"][0].get<std::uint64_t>();
            const auto end = info["data_offsets"][1].get<std::uint64_t>();
            CHECK(t->nbytes == end - begin);
            CHECK(t->file_offset == 8 + n + begin);
            CHECK(std::memcmp(t->data, raw.data() + t->file_offset, t->nbytes) == 0);
            CHECK(t->dtype == DType::bf16);  // the fixtures store bf16, like real checkpoints
            CHECK(set.file_of(name) == folder / "model.safetensors");
        }
        // tensors() is in the order of the bytes.
        for (std::size_t i = 1; i < set.tensors().size(); ++i)
            CHECK(set.tensors()[i - 1].file_offset + set.tensors()[i - 1].nbytes == set.tensors()[i].file_offset);
        ++checked;
    }
    CHECK(checked > 0);
}

TEST_CASE("GGUF and HF twins have the same shapes and the same numbers", "[safetensors][gguf][fixtures]") {
    MOELAB_REQUIRE_FIXTURES();
    const auto manifest = test::manifest();
    int compared_models = 0;
    for (const auto& model : manifest["models"]) {
        if (!model.contains("hf")) continue;
        INFO("model " << model["name"].get<std::string>());
        const GGUFFile gguf(test::fixtures_dir() / model["gguf"].get<std::string>());
        const SafetensorsSet hf = SafetensorsSet::open_folder(test::fixtures_dir() / model["hf"].get<std::string>());

        // Same tensor, two names; shapes outermost first in both.
        const std::vector<std::pair<std::string, std::string>> twins{
            {"token_embd.weight", "model.embed_tokens.weight"},
            {"output_norm.weight", "model.norm.weight"},
            {"blk.0.attn_norm.weight", "model.layers.0.input_layernorm.weight"},
            {"output.weight", "lm_head.weight"},
        };
        int compared = 0;
        for (const auto& [gguf_name, hf_name] : twins) {
            const TensorEntry* g = gguf.find_tensor(gguf_name);
            const TensorEntry* h = hf.find_tensor(hf_name);
            if (g == nullptr || h == nullptr) continue;  // e.g. tied embeddings have no output.weight
            INFO(gguf_name << " vs " << hf_name);
            CHECK(g->shape == h->shape);
            ++compared;
        }
        CHECK(compared >= 3);
        ++compared_models;
        const auto n_vocab = model["n_vocab"].get<std::uint64_t>();
        CHECK(hf.find_tensor("model.embed_tokens.weight")->shape.front() == n_vocab);

        // Experts: GGUF stacks them, (n_expert, rows, cols); HF stores one per expert.
        const TensorEntry* gate_exps = gguf.find_tensor("blk.0.ffn_gate_exps.weight");
        for (const char* hf_name : {"model.layers.0.mlp.experts.0.gate_proj.weight",
                                    "model.layers.0.block_sparse_moe.experts.0.w1.weight"}) {
            const TensorEntry* h = hf.find_tensor(hf_name);
            if (gate_exps == nullptr || h == nullptr) continue;
            INFO(hf_name);
            std::vector<std::uint64_t> stacked{model["spec"]["n_expert"].get<std::uint64_t>()};
            stacked.insert(stacked.end(), h->shape.begin(), h->shape.end());
            CHECK(gate_exps->shape == stacked);
        }

        // The numbers: every weight is a bf16 value, stored as f32 in the GGUF
        // and as bf16 in HF, so f32 bits == bf16 bits << 16, exactly.
        if (model["weights"].get<std::string>() != "f32") continue;
        const TensorEntry& g = *gguf.find_tensor("token_embd.weight");
        const TensorEntry& h = *hf.find_tensor("model.embed_tokens.weight");
        REQUIRE(g.n_elements() == h.n_elements());
        std::uint64_t mismatches = 0;
        for (std::uint64_t i = 0; i < g.n_elements(); ++i) {
            std::uint32_t f32_bits;
            std::uint16_t bf16_bits;
            std::memcpy(&f32_bits, g.data + 4 * i, 4);
            std::memcpy(&bf16_bits, h.data + 2 * i, 2);
            mismatches += f32_bits != (static_cast<std::uint32_t>(bf16_bits) << 16);
        }
        CHECK(mismatches == 0);
    }
    CHECK(compared_models > 0);
}

TEST_CASE("built safetensors files: every dtype, empty and scalar tensors, metadata", "[safetensors]") {
    test::TempDir dir("st-build");
    SafetensorsWriter w;
    w.add_metadata("format", "pt");
    w.add_metadata("note", "héllo");
    for (const SafetensorsDTypeInfo& t : safetensors_dtype_table) {
        // 8 elements are a whole number of bytes for every width (4, 6, 8, ... 64 bits).
        w.add("t." + std::string(t.name), std::string(t.name), {2, 4}, test::pattern_bytes(8 * t.bits / 8));
    }
    w.add("empty", "F32", {0, 3}, {});
    w.add("scalar", "F32", {}, test::f32_bytes({42.0f}));
    w.add("last", "BF16", {3}, test::pattern_bytes(6));
    const auto path = dir.write("all.safetensors", w.build());

    const SafetensorsFile f(path);
    CHECK(f.path() == path);
    CHECK(f.metadata().size() == 2);
    CHECK(f.metadata().at("note") == "héllo");
    REQUIRE(f.tensors().size() == safetensors_dtype_table.size() + 3);
    for (const SafetensorsDTypeInfo& t : safetensors_dtype_table) {
        const TensorEntry* e = f.find_tensor("t." + std::string(t.name));
        REQUIRE(e != nullptr);
        CHECK(e->type_name == t.name);
        CHECK(e->nbytes == t.bits);
        CHECK(e->shape == std::vector<std::uint64_t>{2, 4});
        CHECK(e->dtype == t.dtype);
    }
    CHECK(f.find_tensor("t.F32")->dtype == DType::f32);
    CHECK(f.find_tensor("t.F16")->dtype == DType::f16);
    CHECK(f.find_tensor("t.BF16")->dtype == DType::bf16);
    CHECK(!f.find_tensor("t.I64")->dtype.has_value());
    CHECK(!f.find_tensor("t.F8_E4M3")->dtype.has_value());

    const TensorEntry& empty = *f.find_tensor("empty");
    CHECK(empty.nbytes == 0);
    CHECK(empty.n_elements() == 0);
    const TensorEntry& scalar = *f.find_tensor("scalar");
    CHECK(scalar.shape.empty());
    CHECK(scalar.n_elements() == 1);
    float value = 0;
    std::memcpy(&value, scalar.data, 4);
    CHECK(value == 42.0f);
    // In byte order: the last tensor added ends the file.
    CHECK(f.tensors().back().name == "last");
    CHECK(f.tensors().back().file_offset + 6 == std::filesystem::file_size(path));
}

TEST_CASE("sharded safetensors: the index is followed, tensors merged, files remembered", "[safetensors]") {
    test::TempDir dir("st-shards");
    SafetensorsWriter a, b;
    a.add("model.embed_tokens.weight", "F32", {2, 2}, test::f32_bytes({1, 2, 3, 4}));
    a.add("model.norm.weight", "F32", {2}, test::f32_bytes({5, 6}));
    b.add("lm_head.weight", "F32", {2, 2}, test::f32_bytes({7, 8, 9, 10}));
    b.add("extra.not.in.index", "F32", {1}, test::f32_bytes({11}));  // included: shards are read whole
    const auto shard1 = dir.write("model-00001-of-00002.safetensors", a.build());
    const auto shard2 = dir.write("model-00002-of-00002.safetensors", b.build());
    dir.write_text("model.safetensors.index.json", R"({
        "metadata": {"total_size": 44},
        "weight_map": {
            "lm_head.weight": "model-00002-of-00002.safetensors",
            "model.embed_tokens.weight": "model-00001-of-00002.safetensors",
            "model.norm.weight": "model-00001-of-00002.safetensors"
        }})");

    SafetensorsSet set = SafetensorsSet::open_folder(dir.path());
    REQUIRE(set.files().size() == 2);
    REQUIRE(set.tensors().size() == 4);
    CHECK(set.tensors()[0].name == "model.embed_tokens.weight");  // shard 1 first, then file order
    CHECK(set.tensors()[2].name == "lm_head.weight");
    CHECK(set.file_of("model.norm.weight") == shard1);
    CHECK(set.file_of("lm_head.weight") == shard2);
    CHECK(set.find_tensor("extra.not.in.index") != nullptr);
    float v = 0;
    std::memcpy(&v, set.find_tensor("lm_head.weight")->data + 12, 4);
    CHECK(v == 10.0f);
    test::require_error([&] { set.file_of("nope"); }, {"tensor 'nope': missing"});

    // Moving the set keeps every pointer valid.
    const std::byte* p = set.find_tensor("lm_head.weight")->data;
    const SafetensorsSet moved = std::move(set);
    CHECK(moved.find_tensor("lm_head.weight")->data == p);

    // With both present, model.safetensors wins (transformers' order).
    SafetensorsWriter single;
    single.add("only", "F16", {1}, test::pattern_bytes(2));
    dir.write("model.safetensors", single.build());
    const SafetensorsSet preferred = SafetensorsSet::open_folder(dir.path());
    CHECK(preferred.tensors().size() == 1);
    CHECK(preferred.tensors()[0].name == "only");
}
