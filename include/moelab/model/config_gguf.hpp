// SPDX-License-Identifier: MIT
// moelab/model/config_gguf.hpp — ModelConfig from a GGUF file's metadata.
//
// Depends on: moelab/model/config.hpp, moelab/io/gguf.hpp, moelab/error.hpp.
//
// GGUF keeps hyperparameters under "<arch>.<key>" (general.architecture names
// the arch). Keys that llama.cpp treats as optional get llama.cpp's defaults
// here; a missing required key is an Error naming the file and the key.
#pragma once

#include <cmath>
#include <string>

#include "moelab/error.hpp"
#include "moelab/io/gguf.hpp"
#include "moelab/model/config.hpp"

namespace moelab {

// No real model has more layers; the bound keeps a hostile count from sizing
// per-layer arrays before the tensors are checked.
inline constexpr std::int64_t kMaxLayers = 65536;

namespace detail {

inline Arch arch_from_gguf_name(const std::string& name, const std::string& file) {
    if (name == "llama") return Arch::llama;
    if (name == "qwen2") return Arch::qwen2;
    if (name == "qwen3") return Arch::qwen3;
    if (name == "qwen2moe") return Arch::qwen2moe;
    if (name == "qwen3moe") return Arch::qwen3moe;
    if (name == "qwen35") return Arch::qwen35;
    if (name == "qwen35moe") return Arch::qwen35moe;
    throw Error(file, "general.architecture '" + name +
                          "' is not supported (supported: llama, qwen2, qwen3, qwen2moe, qwen3moe, qwen35, qwen35moe)");
}

// A size read from a file: non-negative and below a sanity bound, so that
// later products (e.g. n_head * head_dim) cannot overflow.
inline std::size_t checked_size(std::int64_t v, const std::string& file, const std::string& key,
                                std::int64_t max_value = std::int64_t{1} << 32) {
    if (v < 0 || v > max_value)
        throw Error(file, "key '" + key + "': value " + std::to_string(v) + " is out of range [0, " +
                              std::to_string(max_value) + "]");
    return static_cast<std::size_t>(v);
}

}  // namespace detail

inline ModelConfig config_from_gguf(const io::GGUFFile& gguf) {
    const std::string file = gguf.path().string();
    ModelConfig c;
    c.format = SourceFormat::gguf;
    const std::string arch = gguf.get_string("general.architecture");
    c.arch = detail::arch_from_gguf_name(arch, file);
    c.name = gguf.find("general.name") ? gguf.get_string("general.name") : gguf.path().stem().string();

    auto key = [&](const char* k) { return arch + "." + k; };
    auto size_of = [&](const char* k) { return detail::checked_size(gguf.get_int(key(k)), file, key(k)); };
    auto size_or = [&](const char* k, std::size_t fallback) {
        return gguf.find(key(k)) ? size_of(k) : fallback;
    };

    c.n_embd = size_of("embedding_length");
    c.n_layer = detail::checked_size(gguf.get_int(key("block_count")), file, key("block_count"), kMaxLayers);
    c.n_head = size_of("attention.head_count");
    c.n_head_kv = size_or("attention.head_count_kv", c.n_head);
    if (c.n_head == 0 || c.n_embd == 0 || c.n_layer == 0)
        throw Error(file, "embedding_length, block_count and attention.head_count must be positive");
    c.head_dim = size_or("attention.key_length", c.n_embd / c.n_head);
    c.n_ff = size_or("feed_forward_length", 0);
    c.n_ctx_train = size_or("context_length", 0);
    c.rms_eps = static_cast<float>(gguf.get_float(key("attention.layer_norm_rms_epsilon")));

    c.rope.theta = static_cast<float>(gguf.find(key("rope.freq_base")) ? gguf.get_float(key("rope.freq_base")) : 10000.0);
    c.rope.rot_dims = size_or("rope.dimension_count", c.head_dim);
    // llama.cpp runs llama with interleaved-pair RoPE, and its converter
    // permuted the Q/K rows of HF checkpoints to match; the Qwen families use
    // NeoX pairing with unpermuted rows.
    c.rope.style = c.arch == Arch::llama ? RopeStyle::interleaved : RopeStyle::neox;

    c.moe.n_expert = size_or("expert_count", 0);
    if (c.is_moe()) {
        c.moe.n_expert_used = size_of("expert_used_count");
        c.moe.n_ff_exp = size_or("expert_feed_forward_length", c.n_ff);
        c.moe.n_ff_shexp = size_or("expert_shared_feed_forward_length", 0);
        // Which architectures renormalise the selected expert weights is fixed
        // per architecture in llama.cpp; an explicit expert_weights_norm wins.
        const bool renormalise_by_arch =
            c.arch == Arch::llama || c.arch == Arch::qwen3moe || c.arch == Arch::qwen35moe;
        c.moe.norm_topk_prob = gguf.find(key("expert_weights_norm")) ? gguf.get_bool(key("expert_weights_norm"))
                                                                      : renormalise_by_arch;
        c.moe.shared_expert_gate = c.moe.n_ff_shexp > 0;
    }

    c.attn_qk_norm = c.arch == Arch::qwen3 || c.arch == Arch::qwen3moe || c.arch == Arch::qwen35 ||
                     c.arch == Arch::qwen35moe;
    c.layer_kinds.assign(c.n_layer, LayerKind::attention);
    if (c.arch == Arch::qwen35 || c.arch == Arch::qwen35moe) {
        c.attn_output_gate = true;
        const std::size_t interval = size_or("full_attention_interval", 4);
        if (interval == 0) throw Error(file, "key '" + key("full_attention_interval") + "' must be positive");
        for (std::size_t i = 0; i < c.n_layer; ++i)
            if ((i + 1) % interval != 0) c.layer_kinds[i] = LayerKind::gated_deltanet;
        c.deltanet.conv_kernel = size_of("ssm.conv_kernel");
        c.deltanet.key_head_dim = size_of("ssm.state_size");
        c.deltanet.n_key_heads = size_of("ssm.group_count");
        c.deltanet.n_value_heads = size_of("ssm.time_step_rank");
        const std::size_t inner = size_of("ssm.inner_size");
        if (c.deltanet.n_value_heads == 0 || inner % c.deltanet.n_value_heads != 0)
            throw Error(file, "ssm.inner_size is not a multiple of ssm.time_step_rank");
        c.deltanet.value_head_dim = inner / c.deltanet.n_value_heads;
        c.deltanet.value_heads_tiled = true;
    }

    auto token_id = [&](const char* k) -> std::int64_t {
        return gguf.find(k) ? gguf.get_int(k) : -1;
    };
    c.bos_id = token_id("tokenizer.ggml.bos_token_id");
    c.eos_id = token_id("tokenizer.ggml.eos_token_id");
    // n_vocab and tied embeddings are read from the tensors (model.hpp), which
    // are authoritative; <arch>.vocab_size is optional in GGUF.
    return c;
}

}  // namespace moelab
