// SPDX-License-Identifier: MIT
// Memory: weights stay memory-mapped at their stored dtype (issue 4, item 6).
//
// A bf16 synthetic model of ~155 MB is written to a temp folder, loaded, and
// run (a prefill, then greedy decoding through the KV cache) with each backend.
// The peak resident set (Linux VmHWM, reset before each run) may grow by at
// most
//     1.1 x (file size + KV cache bytes) + activations + allowance
// where activations are the scratch buffers the forward pass sizes from the
// shapes (computed below) and the allowance is the measured growth of the
// very same procedure on a tiny model with the same code path (thread stacks,
// code pages faulted in, allocator arenas: the process's own buffers, which do
// not grow with the model). A loader that widened the bf16 weights to f32
// would add 2 x file size (~310 MB) and fail by a wide margin.
//
// Linux only (/proc/self/status, /proc/self/clear_refs); skipped under
// AddressSanitizer, whose shadow memory and quarantine make RSS meaningless.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "moelab/io/gguf_writer.hpp"
#include "moelab/model/cost.hpp"
#include "moelab/synthetic.hpp"
#include "support/backends.hpp"
#include "support/fixtures.hpp"
#include "support/temp_dir.hpp"
#include "support/transformers.hpp"

using namespace moelab;

namespace {

// One field of /proc/self/status in bytes (the kernel reports kB), or -1.
long long status_bytes(const char* field) {
    std::ifstream in("/proc/self/status");
    std::string line;
    const std::string prefix = std::string(field) + ":";
    while (std::getline(in, line))
        if (line.rfind(prefix, 0) == 0) return std::stoll(line.substr(prefix.size())) * 1024;
    return -1;
}

// Resets VmHWM to the current VmRSS (Linux >= 4.0). Returns false if the
// kernel refused, in which case peaks cannot be measured from here.
bool reset_peak() {
    std::ofstream out("/proc/self/clear_refs");
    out << "5";
    out.close();
    return out.good();
}

// A Qwen3-style dense GGUF with random weights (moelab/synthetic.hpp's scale),
// norms 1, like `moelab synth --arch qwen3`. No tokenizer: the runs below feed ids.
struct SynthShape {
    std::uint64_t d_model, layers, heads, kv_heads, head_dim, d_ff, vocab;
};

void write_synthetic(const std::filesystem::path& path, const SynthShape& s, DType dtype) {
    io::GGUFWriter w;
    w.add_string("general.architecture", "qwen3");
    w.add_u32("qwen3.context_length", 4096);
    w.add_u32("qwen3.embedding_length", static_cast<std::uint32_t>(s.d_model));
    w.add_u32("qwen3.block_count", static_cast<std::uint32_t>(s.layers));
    w.add_u32("qwen3.feed_forward_length", static_cast<std::uint32_t>(s.d_ff));
    w.add_u32("qwen3.attention.head_count", static_cast<std::uint32_t>(s.heads));
    w.add_u32("qwen3.attention.head_count_kv", static_cast<std::uint32_t>(s.kv_heads));
    w.add_u32("qwen3.attention.key_length", static_cast<std::uint32_t>(s.head_dim));
    w.add_u32("qwen3.rope.dimension_count", static_cast<std::uint32_t>(s.head_dim));
    w.add_f32("qwen3.rope.freq_base", 1000000.0f);
    w.add_f32("qwen3.attention.layer_norm_rms_epsilon", 1e-6f);
    std::uint64_t seed = 1;
    auto matrix = [&](const std::string& name, std::uint64_t rows, std::uint64_t cols) {
        w.add_tensor(name, {rows, cols}, dtype, [rows, cols, dtype, seed = seed++](std::byte* dst, std::size_t bytes) {
            SyntheticRng rng(seed);
            const SyntheticMatrix m(rows, cols, dtype, rng);
            std::memcpy(dst, m.view().data, bytes);
        });
    };
    auto ones = [&](const std::string& name, std::uint64_t n) {
        w.add_tensor(name, {n}, DType::f32, [n](std::byte* dst, std::size_t) {
            for (std::uint64_t i = 0; i < n; ++i) reinterpret_cast<float*>(dst)[i] = 1.0f;
        });
    };
    const std::uint64_t D = s.d_model, Q = s.heads * s.head_dim, KV = s.kv_heads * s.head_dim;
    matrix("token_embd.weight", s.vocab, D);
    ones("output_norm.weight", D);
    matrix("output.weight", s.vocab, D);
    for (std::uint64_t il = 0; il < s.layers; ++il) {
        const std::string blk = "blk." + std::to_string(il) + ".";
        ones(blk + "attn_norm.weight", D);
        ones(blk + "ffn_norm.weight", D);
        ones(blk + "attn_q_norm.weight", s.head_dim);
        ones(blk + "attn_k_norm.weight", s.head_dim);
        matrix(blk + "attn_q.weight", Q, D);
        matrix(blk + "attn_k.weight", KV, D);
        matrix(blk + "attn_v.weight", KV, D);
        matrix(blk + "attn_output.weight", D, Q);
        matrix(blk + "ffn_gate.weight", s.d_ff, D);
        matrix(blk + "ffn_up.weight", s.d_ff, D);
        matrix(blk + "ffn_down.weight", D, s.d_ff);
    }
    w.write(path);
}

constexpr std::size_t prompt_tokens = 8, decode_steps = 8;

// The f32 scratch one forward call of n tokens sizes from the shapes
// (transformer.hpp, layers/attention.hpp, layers/ffn_dense.hpp), plus the
// caller's logits: residual x, xn, y (3 n D); q, mixed (2 n q_dim); scores
// (n_head x positions); gate, up (2 n d_ff); RoPE cos/sin (n rot_dims); logits (n V).
std::size_t activation_bytes(const ModelConfig& c, std::size_t n, std::size_t positions) {
    return sizeof(float) * (3 * n * c.n_embd + 2 * n * c.q_dim() + c.n_head * n * positions + 2 * n * c.n_ff +
                            n * c.rope.rot_dims + n * c.n_vocab);
}

struct Growth {
    long long peak = 0;             // VmHWM - VmRSS before the run
    std::size_t file = 0, kv = 0, activations = 0;
};

// Loads `path`, runs a prefill of prompt_tokens and decode_steps greedy steps,
// and returns how far the peak RSS rose above the RSS before loading.
template <class Backend>
Growth run_and_measure(const std::filesystem::path& path, ThreadPool& pool) {
    REQUIRE(reset_peak());
    const long long before = status_bytes("VmRSS");
    Growth g;
    {
        const Model model = Model::load(path);
        const ModelConfig& c = model.config();
        Transformer<Backend> t(model, pool);  // the default context: n_ctx_train, capped at 4096
        g.kv = t.cache().bytes();
        std::vector<std::int32_t> tokens(prompt_tokens);
        for (std::size_t i = 0; i < prompt_tokens; ++i) tokens[i] = static_cast<std::int32_t>((i * 37 + 11) % c.n_vocab);
        std::vector<float> logits(prompt_tokens * c.n_vocab);
        t.forward(tokens, logits.data());
        for (std::size_t step = 0; step < decode_steps; ++step) {
            const float* last = logits.data() + (step == 0 ? prompt_tokens - 1 : 0) * c.n_vocab;
            std::int32_t next = 0;
            for (std::size_t v = 1; v < c.n_vocab; ++v)
                if (last[v] > last[next]) next = static_cast<std::int32_t>(v);
            const std::int32_t one[] = {next};
            t.forward(one, logits.data(), false);
        }
        CHECK(std::all_of(logits.begin(), logits.begin() + static_cast<std::ptrdiff_t>(c.n_vocab),
                          [](float v) { return std::isfinite(v); }));
        g.activations = activation_bytes(c, prompt_tokens, prompt_tokens + decode_steps);
        g.peak = status_bytes("VmHWM") - before;
    }
    g.file = std::filesystem::file_size(path);
    return g;
}

// (The sanitizer build does not compile this file: tests/CMakeLists.txt.)
bool memory_measurable() {
    if (status_bytes("VmHWM") < 0 || !reset_peak()) {
        WARN("SKIPPED: /proc/self/status has no VmHWM or /proc/self/clear_refs cannot reset it (not Linux >= 4.0)");
        ++test::skipped_counter();
        return false;
    }
    return true;
}

constexpr double MiB = 1024.0 * 1024.0;

template <class Backend>
void check_backend(const std::filesystem::path& tiny, const std::filesystem::path& big) {
    ThreadPool pool(2);
    // The process's own buffers: the same procedure, same dtype and backend, on
    // a model whose weights are ~0.4 MB. Measured first, so it also pays for
    // the code pages and thread stacks the big run then finds resident.
    const Growth base = run_and_measure<Backend>(tiny, pool);
    const Growth g = run_and_measure<Backend>(big, pool);
    const double allowance = static_cast<double>(base.peak);
    const double bound = 1.1 * static_cast<double>(g.file + g.kv) + static_cast<double>(g.activations) + allowance;
    INFO(Backend::name << ": file " << g.file / MiB << " MiB, KV cache " << g.kv / MiB << " MiB, activations "
                       << g.activations / MiB << " MiB, allowance (tiny model's growth) " << allowance / MiB
                       << " MiB; peak RSS grew " << g.peak / MiB << " MiB, bound " << bound / MiB << " MiB");
    WARN(Backend::name << ": peak RSS +" << g.peak / MiB << " MiB for a " << g.file / MiB << " MiB bf16 file + "
                       << g.kv / MiB << " MiB KV cache + " << g.activations / MiB << " MiB activations + "
                       << allowance / MiB << " MiB allowance (bound " << bound / MiB << " MiB)");
    CHECK(static_cast<double>(g.peak) <= bound);
    // The measurement sees the mapping: every non-embedding weight is read by
    // each forward pass, so at the peak those pages are resident.
    const io::GGUFFile file(big);
    std::uint64_t embedding = 0;
    for (const auto& t : file.tensors())
        if (t.name == "token_embd.weight") embedding = t.nbytes;
    CHECK(static_cast<double>(g.peak) >= static_cast<double>(g.file - embedding));
}

}  // namespace

TEST_CASE("a bf16 model runs from its mapping: peak RSS <= 1.1 x (file + KV cache) + activations + allowance",
          "[memory]") {
    if (!memory_measurable()) return;
    const test::TempDir dir("memory");
    const auto tiny = dir.path() / "tiny-bf16.gguf", big = dir.path() / "big-bf16.gguf";
    write_synthetic(tiny, {64, 1, 2, 1, 32, 128, 512}, DType::bf16);
    // ~155 MB: 77.6 M weights at 2 bytes; f32 would be ~310 MB.
    write_synthetic(big, {1024, 4, 8, 2, 128, 4096, 8192}, DType::bf16);
    [&]<class... Backends>() { (check_backend<Backends>(tiny, big), ...); }.template operator()<MOELAB_TEST_BACKENDS>();
}

// A hostile config.json must not make loading allocate what it claims: Llama 3.1
// RoPE scaling needs head_dim / 2 divisors, and head_dim 2^32 once meant 8 GiB
// allocated (and a minute spent) before the tensors' shapes refused the model.
// The reference is the same refused load with head_dim doubled (32: the same
// error, nothing large claimed), measured first so that it also pays for the
// error path's first-touched pages (unwinder, exception). The 2^32 load may
// then grow the peak by no more than the folder's bytes plus the reference's growth.
TEST_CASE("a config.json claiming head_dim 2^32 is refused without allocating for it", "[memory][hostile][fixtures]") {
    MOELAB_REQUIRE_FIXTURES();
    if (!memory_measurable()) return;
    const test::TempDir dir("memory-hostile");
    const auto source = test::fixtures_dir() / "models" / "llama31-dense.hf";
    const nlohmann::json config = nlohmann::json::parse(std::ifstream(source / "config.json"));
    REQUIRE(config.contains("rope_scaling"));
    const std::uint64_t head_dim = config["head_dim"].get<std::uint64_t>();
    // A copy of the folder whose config.json claims `claimed_head_dim`.
    auto folder_with = [&](const std::string& name, std::uint64_t claimed_head_dim) {
        const auto folder = dir.path() / name;
        std::filesystem::create_directories(folder);
        const std::vector<char> weights = test::read_bytes(source / "model.safetensors");
        dir.write(name + "/model.safetensors", reinterpret_cast<const std::byte*>(weights.data()), weights.size());
        nlohmann::json edited = config;
        edited["head_dim"] = claimed_head_dim;
        dir.write_text(name + "/config.json", edited.dump());
        return folder;
    };
    const auto reference = folder_with("reference.hf", 2 * head_dim), hostile = folder_with("hostile.hf", std::uint64_t{1} << 32);
    std::uint64_t folder_bytes = 0;
    for (const auto& entry : std::filesystem::directory_iterator(hostile)) folder_bytes += entry.file_size();

    auto refused_load_growth = [](const std::filesystem::path& folder) {
        REQUIRE(reset_peak());
        const long long before = status_bytes("VmRSS");
        test::require_error([&] { Model::load(folder); }, {folder.filename().string(), "q_proj.weight", "shape"});
        return status_bytes("VmHWM") - before;
    };
    const long long reference_growth = refused_load_growth(reference);
    const long long hostile_growth = refused_load_growth(hostile);
    WARN("refused loads grew the peak by " << reference_growth / MiB << " MiB (head_dim " << 2 * head_dim << ") and "
                                           << hostile_growth / MiB << " MiB (head_dim 2^32); the folder holds "
                                           << folder_bytes / MiB << " MiB");
    CHECK(hostile_growth <= static_cast<long long>(folder_bytes) + reference_growth);
}
