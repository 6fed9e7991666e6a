// SPDX-License-Identifier: MIT
// Hostile checkpoints at the model level: files that parse as GGUF or
// safetensors but do not describe a model moelab can run. Each must raise
// moelab::Error naming the file and the problem — never crash later in the
// forward pass. (File-format corruption is tests/test_hostile_files.cpp.)
#include <catch2/catch.hpp>

#include <filesystem>
#include <fstream>
#include <functional>
#include <random>
#include <string>
#include <vector>

#include "moelab/tokenizer/model_tokenizer.hpp"
#include "support/fixtures.hpp"
#include "support/gguf_writer.hpp"
#include "support/safetensors_writer.hpp"
#include "support/temp_dir.hpp"
#include "support/transformers.hpp"

using namespace moelab;
using namespace moelab::test;

namespace {

// A complete, tiny llama-style GGUF: n_embd 32, 1 layer, 2 heads of 16, n_ff 16,
// vocabulary 5. `edit` may change it before it is written.
struct TinyLlama {
    static constexpr std::uint64_t D = 32, F = 16, V = 5;
    GGUFWriter w;
    std::mt19937 rng{5};

    std::vector<std::byte> values(std::size_t n) {
        std::normal_distribution<float> dist(0.0f, 0.3f);
        std::vector<float> v(n);
        for (auto& x : v) x = dist(rng);
        return f32_bytes(v);
    }
    void matrix(const std::string& name, std::uint64_t rows, std::uint64_t cols) {
        w.add_tensor(name, {cols, rows}, gguf::F32, values(rows * cols));  // ne innermost first
    }
    TinyLlama() {
        w.add("general.architecture", gguf::string("llama"));
        w.add("llama.embedding_length", gguf::u32(D));
        w.add("llama.block_count", gguf::u32(1));
        w.add("llama.feed_forward_length", gguf::u32(F));
        w.add("llama.attention.head_count", gguf::u32(2));
        w.add("llama.attention.head_count_kv", gguf::u32(2));
        w.add("llama.attention.layer_norm_rms_epsilon", gguf::f32(1e-5f));
        matrix("token_embd.weight", V, D);
        w.add_tensor("output_norm.weight", {D}, gguf::F32, values(D));
        matrix("output.weight", V, D);
        w.add_tensor("blk.0.attn_norm.weight", {D}, gguf::F32, values(D));
        w.add_tensor("blk.0.ffn_norm.weight", {D}, gguf::F32, values(D));
        for (const char* n : {"blk.0.attn_q.weight", "blk.0.attn_k.weight", "blk.0.attn_v.weight", "blk.0.attn_output.weight"})
            matrix(n, D, D);
        matrix("blk.0.ffn_gate.weight", F, D);
        matrix("blk.0.ffn_up.weight", F, D);
        matrix("blk.0.ffn_down.weight", D, F);
    }
    GGUFTensorSpec& tensor(const std::string& name) {
        for (auto& t : w.tensors)
            if (t.name == name) return t;
        FAIL("no tensor " << name);
        return w.tensors.front();
    }
    void remove(const std::string& name) {
        std::erase_if(w.tensors, [&](const GGUFTensorSpec& t) { return t.name == name; });
    }
};

// Copies a fixture HF folder into `dir`, letting `edit_config` change config.json.
std::filesystem::path copy_hf(const TempDir& dir, const std::string& model,
                              const std::function<void(nlohmann::json&)>& edit_config) {
    const auto src = fixtures_dir() / "models" / (model + ".hf");
    const auto dst = dir.path() / (model + ".hf");
    std::filesystem::create_directories(dst);
    std::filesystem::copy_file(src / "model.safetensors", dst / "model.safetensors");
    nlohmann::json config = nlohmann::json::parse(std::ifstream(src / "config.json"));
    edit_config(config);
    std::ofstream(dst / "config.json") << config.dump(2);
    return dst;
}

}  // namespace

TEST_CASE("a well-formed tiny GGUF loads and runs (the baseline for the cases below)", "[model][hostile]") {
    TempDir dir("tiny-ok");
    TinyLlama tiny;
    const auto path = dir.write("tiny.gguf", tiny.w.build());
    const Model model = Model::load(path);
    REQUIRE(model.config().n_vocab == TinyLlama::V);
    ThreadPool pool(1);
    Transformer<backend::scalar> t(model, pool, 8);
    std::vector<float> logits(2 * TinyLlama::V);
    const std::vector<std::int32_t> tokens{1, 4};
    t.forward(tokens, logits.data());
    for (float v : logits) REQUIRE(std::isfinite(v));
}

TEST_CASE("GGUF models that cannot run are refused with the file and the reason", "[model][hostile]") {
    TempDir dir("tiny-bad");
    auto load = [&](TinyLlama& tiny) {
        const auto path = dir.write("bad.gguf", tiny.w.build());
        return [path] { Model::load(path); };
    };
    {
        TinyLlama t;
        t.remove("blk.0.ffn_up.weight");
        require_error(load(t), {"bad.gguf", "missing tensor", "blk.0.ffn_up.weight"});
    }
    {
        TinyLlama t;
        t.tensor("blk.0.attn_k.weight").ne = {TinyLlama::D, TinyLlama::D / 2};
        t.tensor("blk.0.attn_k.weight").data.resize(TinyLlama::D * TinyLlama::D / 2 * 4);
        require_error(load(t), {"bad.gguf", "blk.0.attn_k.weight", "shape [16, 32], expected [32, 32]"});
    }
    {
        TinyLlama t;  // a type moelab has no kernel for: 32 rows of one 22-byte Q5_0 block each
        auto& q = t.tensor("blk.0.attn_q.weight");
        q.type = gguf::Q5_0;
        q.data = pattern_bytes(32 * 22);
        require_error(load(t), {"bad.gguf", "blk.0.attn_q.weight", "Q5_0"});
    }
    {
        TinyLlama t;
        t.w.kv_entries.erase(t.w.kv_entries.begin() + 1);  // llama.embedding_length
        require_error(load(t), {"bad.gguf", "llama.embedding_length", "missing"});
    }
    {
        TinyLlama t;
        t.w.kv_entries.front().clear();
        t.w.kv_entries.erase(t.w.kv_entries.begin());
        t.w.add("general.architecture", gguf::string("gpt-oss"));
        require_error(load(t), {"bad.gguf", "gpt-oss", "not supported"});
    }
    {
        TinyLlama t;  // 3 heads do not divide 2 KV heads
        t.w.kv_entries.erase(t.w.kv_entries.begin() + 4, t.w.kv_entries.begin() + 6);
        t.w.add("llama.attention.head_count", gguf::u32(4));
        t.w.add("llama.attention.head_count_kv", gguf::u32(3));
        require_error(load(t), {"bad.gguf", "not a multiple"});
    }
    {
        TinyLlama t;  // an absurd layer count must fail on the missing tensors, not allocate
        t.w.kv_entries.erase(t.w.kv_entries.begin() + 2);
        t.w.add("llama.block_count", gguf::u64(std::uint64_t{1} << 40));
        require_error(load(t), {"bad.gguf", "llama.block_count", "out of range"});
    }
    {
        TinyLlama t;  // a plausible but false layer count
        t.w.kv_entries.erase(t.w.kv_entries.begin() + 2);
        t.w.add("llama.block_count", gguf::u32(60000));
        require_error(load(t), {"bad.gguf", "60000 layers", "only"});
    }
}

TEST_CASE("token ids outside the vocabulary and a full context are errors, not reads out of bounds",
          "[model][hostile]") {
    TempDir dir("tiny-run");
    TinyLlama tiny;
    const Model model = Model::load(dir.write("tiny.gguf", tiny.w.build()));
    ThreadPool pool(1);
    Transformer<backend::scalar> t(model, pool, 2);
    std::vector<float> logits(3 * TinyLlama::V);
    const std::vector<std::int32_t> bad{1, 5}, negative{-1}, three{1, 2, 3};
    require_error([&] { t.forward(bad, logits.data()); }, {"token id 5", "vocabulary"});
    require_error([&] { t.forward(negative, logits.data()); }, {"token id -1"});
    require_error([&] { t.forward(three, logits.data()); }, {"context is full"});
}

TEST_CASE("HF folders with bad config.json or tensors are refused with the file and the reason",
          "[model][hostile][fixtures]") {
    MOELAB_REQUIRE_FIXTURES();
    TempDir dir("hf-bad");
    for (const char* key : {"hidden_size", "num_hidden_layers", "num_attention_heads", "vocab_size", "intermediate_size",
                            "model_type"}) {
        const auto folder = copy_hf(dir, "qwen3-dense", [&](nlohmann::json& c) { c.erase(key); });
        require_error([&] { Model::load(folder); }, {"config.json", "missing required key", key});
        std::filesystem::remove_all(folder);
    }
    for (const char* key : {"num_experts", "num_experts_per_tok", "moe_intermediate_size"}) {
        const auto folder = copy_hf(dir, "qwen3-moe", [&](nlohmann::json& c) { c.erase(key); });
        require_error([&] { Model::load(folder); }, {"config.json", key});
        std::filesystem::remove_all(folder);
    }
    {
        const auto folder = copy_hf(dir, "qwen3-dense", [](nlohmann::json& c) { c["hidden_size"] = "64"; });
        require_error([&] { Model::load(folder); }, {"config.json", "hidden_size", "integer"});
        std::filesystem::remove_all(folder);
    }
    {
        const auto folder = copy_hf(dir, "qwen3-dense", [](nlohmann::json& c) { c["hidden_size"] = 65; });
        require_error([&] { Model::load(folder); }, {"qwen3-dense.hf", "model.embed_tokens.weight", "shape [515, 64]"});
        std::filesystem::remove_all(folder);
    }
    {
        const auto folder = copy_hf(dir, "llama31-dense", [](nlohmann::json& c) { c["rope_scaling"]["rope_type"] = "yarn"; });
        require_error([&] { Model::load(folder); }, {"config.json", "yarn", "not supported"});
        std::filesystem::remove_all(folder);
    }
    {
        const auto folder = copy_hf(dir, "qwen3-dense", [](nlohmann::json& c) { c["model_type"] = "gemma3"; });
        require_error([&] { Model::load(folder); }, {"config.json", "gemma3", "not supported"});
        std::filesystem::remove_all(folder);
    }
    {
        // Rebuild model.safetensors without one tensor.
        const auto folder = copy_hf(dir, "qwen3-dense", [](nlohmann::json&) {});
        const io::SafetensorsSet original = io::SafetensorsSet::open_folder(fixtures_dir() / "models/qwen3-dense.hf");
        SafetensorsWriter w;
        for (const auto& e : original.tensors())
            if (e.name != "model.layers.1.mlp.up_proj.weight")
                w.add(e.name, e.type_name, e.shape, std::vector<std::byte>(e.data, e.data + e.nbytes));
        const auto bytes = w.build();
        std::ofstream(folder / "model.safetensors", std::ios::binary)
            .write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
        require_error([&] { Model::load(folder); }, {"qwen3-dense.hf", "missing tensor", "model.layers.1.mlp.up_proj.weight"});
    }
    require_error([&] { Model::load(dir.path() / "nothing-here"); }, {"nothing-here"});
}

// Randomised: corrupt the metadata and tensor-info region of small GGUF
// fixtures (where a flipped byte changes a hyperparameter, a shape or a type
// rather than a weight) and push every mutant through the whole stack —
// Model::load, the tokenizer, and a forward pass. Each must either load or
// throw moelab::Error; a mutant that loads must run without crashing (its
// logits may be garbage). Run under ASan/UBSan in CI.
TEST_CASE("corrupted GGUF models load and run, or are refused with moelab::Error", "[model][hostile][fuzz][fixtures]") {
    MOELAB_REQUIRE_FIXTURES();
    TempDir dir("model-fuzz");
    std::mt19937_64 rng(20261122);
    std::size_t loaded = 0, refused = 0, ran = 0;
    ThreadPool pool(1);
    for (const char* name : {"llama-dense", "qwen2-moe", "qwen3-moe", "qwen35-moe"}) {
        const auto original = read_bytes(fixtures_dir() / "models" / (std::string(name) + ".gguf"));
        std::uint64_t header_end = original.size();
        const io::GGUFFile file(fixtures_dir() / "models" / (std::string(name) + ".gguf"));
        for (const auto& t : file.tensors()) header_end = std::min(header_end, t.file_offset);
        for (int it = 0; it < 150; ++it) {
            std::vector<char> bytes = original;
            const int edits = 1 + static_cast<int>(rng() % 3);
            for (int e = 0; e < edits; ++e) {
                const std::size_t at = rng() % header_end;
                switch (rng() % 3) {
                    case 0: bytes[at] = static_cast<char>(rng()); break;                   // any byte
                    case 1: bytes[at] = static_cast<char>(rng() % 8); break;               // a small number
                    default: bytes[at] = static_cast<char>(bytes[at] ^ (1 << (rng() % 8)));  // one bit
                }
            }
            const auto path = dir.write("mutant.gguf", reinterpret_cast<const std::byte*>(bytes.data()), bytes.size());
            try {
                const Model model = Model::load(path);
                ++loaded;
                try {
                    (void)load_tokenizer(model);
                } catch (const Error&) {
                }
                Transformer<backend::scalar> t(model, pool, 8);
                std::vector<float> logits(3 * model.config().n_vocab);
                const std::vector<std::int32_t> tokens{0, 1, 2};
                if (model.config().n_vocab >= 3) {
                    t.forward(tokens, logits.data());
                    ++ran;
                }
            } catch (const Error&) {
                ++refused;
            }
        }
    }
    WARN("model fuzz: " << loaded << " mutants loaded (" << ran << " ran a forward pass), " << refused
                        << " refused with moelab::Error");
    CHECK(loaded + refused == 600);
    CHECK(ran > 0);
    CHECK(refused > 0);
}
