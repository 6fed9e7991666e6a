// SPDX-License-Identifier: MIT
// moelab synth — write a synthetic model as a GGUF file that moelab and
// llama.cpp can both load, so that speed comparisons run on the same bytes.
//
//   moelab synth --out FILE [--arch qwen3|qwen3moe] [--d-model 2048] [--layers 8]
//                [--heads 16] [--kv-heads 4] [--head-dim 128] [--d-ff 6144]
//                [--experts 64] [--k 8] [--expert-ff 768] [--vocab 32000] [--dtype bf16] [--seed 1]
//   --dtype: f32, f16, bf16, q8_0, q4_0, q4_k, q5_k or q6_k (one type for every matrix;
//            norms f32, and the MoE router f32 as in llama.cpp's quantized files)
//
// Weights are random (moelab/synthetic.hpp's scale), norms are 1; the
// tokenizer is byte-level BPE over the 256 byte tokens plus a few special
// tokens, padded to --vocab. Defaults are the benchmark shapes:
// d_model 2048, 8 layers, dense d_ff 6144 vs 64 experts top-8 of width 768
// (equal active parameters).
#include <cstdio>
#include <cstring>
#include <functional>
#include <utility>
#include <string>
#include <vector>

#include "cli/cli.hpp"
#include "moelab/io/gguf_writer.hpp"
#include "moelab/synthetic.hpp"
#include "moelab/tokenizer/bpe.hpp"

namespace moelab::cli {

namespace {

// Deterministic per-tensor seed: the same file whatever order tensors are written in.
std::uint64_t name_seed(const std::string& name, std::uint64_t seed) {
    std::uint64_t h = 1469598103934665603ull ^ seed;
    for (unsigned char c : name) h = (h ^ c) * 1099511628211ull;
    return h;
}

}  // namespace

int cmd_synth(int argc, char** argv) {
    const Args args(argc, argv, {});
    args.allow_only({"out", "arch", "d-model", "layers", "heads", "kv-heads", "head-dim", "d-ff", "experts", "k",
                     "expert-ff", "vocab", "dtype", "seed"});
    const std::string out = args.required("out");
    const std::string arch = args.get("arch", "qwen3");
    if (arch != "qwen3" && arch != "qwen3moe") throw UsageError("--arch must be qwen3 or qwen3moe");
    auto size = [&](const char* key, long long fallback, long long max) {
        const long long v = args.integer(key, fallback);
        if (v <= 0 || v > max) throw UsageError(std::string("--") + key + " must be in [1, " + std::to_string(max) + "]");
        return static_cast<std::uint64_t>(v);
    };
    const std::uint64_t D = size("d-model", 2048, 65536), L = size("layers", 8, 1024), H = size("heads", 16, 1024),
                        KV = size("kv-heads", 4, 1024), HD = size("head-dim", 128, 1024), F = size("d-ff", 6144, 1 << 20),
                        E = size("experts", 64, 4096), K = size("k", 8, 4096), FE = size("expert-ff", 768, 1 << 20),
                        V = size("vocab", 32000, 1 << 20);
    if (H % KV != 0 || K > E) throw UsageError("--heads must be a multiple of --kv-heads and --k <= --experts");
    if (V < 260) throw UsageError("--vocab must be at least 260 (256 bytes + special tokens)");
    const std::string dt = args.get("dtype", "bf16");
    const DType dtype = parse_weight_dtype(dt);
    const bool moe = arch == "qwen3moe";
    // Quantized rows are whole blocks: every row length (d_model, heads x
    // head_dim, d_ff, expert width) must be a multiple of the block size.
    const std::uint64_t block = dtype_traits(dtype).block_elems;
    for (const auto& [what, n] : {std::pair<const char*, std::uint64_t>{"--d-model", D}, {"--heads x --head-dim", H * HD},
                                  moe ? std::pair<const char*, std::uint64_t>{"--expert-ff", FE} : std::pair<const char*, std::uint64_t>{"--d-ff", F}})
        if (n % block != 0)
            throw UsageError(std::string(what) + " = " + std::to_string(n) + " is not a multiple of " +
                             std::string(dtype_name(dtype)) + "'s block of " + std::to_string(block) + " weights");
    const std::uint64_t seed = static_cast<std::uint64_t>(args.integer("seed", 1));

    io::GGUFWriter w;
    w.add_string("general.architecture", arch);
    w.add_string("general.name", "moelab-synthetic-" + arch);
    auto key = [&](const char* k) { return arch + "." + k; };
    w.add_u32(key("context_length"), 4096);
    w.add_u32(key("embedding_length"), static_cast<std::uint32_t>(D));
    w.add_u32(key("block_count"), static_cast<std::uint32_t>(L));
    w.add_u32(key("feed_forward_length"), static_cast<std::uint32_t>(F));
    w.add_u32(key("attention.head_count"), static_cast<std::uint32_t>(H));
    w.add_u32(key("attention.head_count_kv"), static_cast<std::uint32_t>(KV));
    w.add_u32(key("attention.key_length"), static_cast<std::uint32_t>(HD));
    w.add_u32(key("attention.value_length"), static_cast<std::uint32_t>(HD));
    w.add_u32(key("rope.dimension_count"), static_cast<std::uint32_t>(HD));
    w.add_f32(key("rope.freq_base"), 1000000.0f);
    w.add_f32(key("attention.layer_norm_rms_epsilon"), 1e-6f);
    w.add_u32(key("vocab_size"), static_cast<std::uint32_t>(V));
    if (moe) {
        w.add_u32(key("expert_count"), static_cast<std::uint32_t>(E));
        w.add_u32(key("expert_used_count"), static_cast<std::uint32_t>(K));
        w.add_u32(key("expert_feed_forward_length"), static_cast<std::uint32_t>(FE));
    }
    // llama.cpp's llama_ftype numbering (informational; every matrix here has
    // the one dtype, so the K-quants are the "_S" variants).
    const std::uint32_t file_type = [&] {
        switch (dtype) {
            case DType::f32: return 0u;
            case DType::f16: return 1u;
            case DType::q4_0: return 2u;
            case DType::q8_0: return 7u;
            case DType::q4_k: return 14u;
            case DType::q5_k: return 16u;
            case DType::q6_k: return 18u;
            case DType::bf16: break;
        }
        return 32u;
    }();
    w.add_u32("general.file_type", file_type);

    // Tokenizer: the 256 byte tokens, three special tokens, padding to V.
    std::vector<std::string> tokens;
    std::vector<std::int32_t> types;
    for (int b = 0; b < 256; ++b) {
        tokens.push_back(bytes_to_token_string(std::string(1, static_cast<char>(b))));
        types.push_back(1);  // normal
    }
    for (const char* special : {"<|endoftext|>", "<|im_start|>", "<|im_end|>"}) {
        tokens.push_back(special);
        types.push_back(3);  // control
    }
    while (tokens.size() < V) {
        tokens.push_back("<|pad_" + std::to_string(tokens.size()) + "|>");
        types.push_back(4);  // user-defined
    }
    w.add_string("tokenizer.ggml.model", "gpt2");
    w.add_string("tokenizer.ggml.pre", "qwen2");
    w.add_string_array("tokenizer.ggml.tokens", tokens);
    w.add_i32_array("tokenizer.ggml.token_type", types);
    w.add_string_array("tokenizer.ggml.merges", {});
    w.add_u32("tokenizer.ggml.eos_token_id", 256);
    w.add_u32("tokenizer.ggml.bos_token_id", 256);
    w.add_bool("tokenizer.ggml.add_bos_token", false);

    auto matrix = [&](const std::string& name, std::vector<std::uint64_t> shape, DType type) {
        w.add_tensor(name, shape, type, [name, shape, type, seed](std::byte* dst, std::size_t bytes) {
            SyntheticRng rng(name_seed(name, seed));
            std::uint64_t rows = 1;
            for (std::size_t i = 0; i + 1 < shape.size(); ++i) rows *= shape[i];
            const SyntheticMatrix m(rows, shape.back(), type, rng);
            std::memcpy(dst, m.view().data, bytes);
        });
    };
    auto ones = [&](const std::string& name, std::uint64_t n) {
        w.add_tensor(name, {n}, DType::f32, [n](std::byte* dst, std::size_t) {
            for (std::uint64_t i = 0; i < n; ++i) reinterpret_cast<float*>(dst)[i] = 1.0f;
        });
    };
    matrix("token_embd.weight", {V, D}, dtype);
    ones("output_norm.weight", D);
    matrix("output.weight", {V, D}, dtype);
    for (std::uint64_t il = 0; il < L; ++il) {
        const std::string blk = "blk." + std::to_string(il) + ".";
        ones(blk + "attn_norm.weight", D);
        ones(blk + "ffn_norm.weight", D);
        matrix(blk + "attn_q.weight", {H * HD, D}, dtype);
        matrix(blk + "attn_k.weight", {KV * HD, D}, dtype);
        matrix(blk + "attn_v.weight", {KV * HD, D}, dtype);
        matrix(blk + "attn_output.weight", {D, H * HD}, dtype);
        ones(blk + "attn_q_norm.weight", HD);
        ones(blk + "attn_k_norm.weight", HD);
        if (moe) {
            matrix(blk + "ffn_gate_inp.weight", {E, D}, DType::f32);
            matrix(blk + "ffn_gate_exps.weight", {E, FE, D}, dtype);
            matrix(blk + "ffn_up_exps.weight", {E, FE, D}, dtype);
            matrix(blk + "ffn_down_exps.weight", {E, D, FE}, dtype);
        } else {
            matrix(blk + "ffn_gate.weight", {F, D}, dtype);
            matrix(blk + "ffn_up.weight", {F, D}, dtype);
            matrix(blk + "ffn_down.weight", {D, F}, dtype);
        }
    }
    w.write(out);
    std::printf("wrote %s: %s, d_model %llu, %llu layers, %s, %s\n", out.c_str(), arch.c_str(),
                static_cast<unsigned long long>(D), static_cast<unsigned long long>(L),
                moe ? (std::to_string(E) + " experts x " + std::to_string(FE) + ", top-" + std::to_string(K)).c_str()
                    : ("d_ff " + std::to_string(F)).c_str(),
                std::string(dtype_name(dtype)).c_str());
    return 0;
}

}  // namespace moelab::cli
