// SPDX-License-Identifier: MIT
// moelab/model/transformer.hpp — the forward pass. Read this file first.
//
// Depends on: moelab/model/model.hpp, moelab/model/cache.hpp,
//             moelab/model/decode_tuning.hpp, moelab/layers/*.hpp,
//             moelab/ops/embedding.hpp, moelab/ops/linear.hpp, and the kernel
//             header of the backend you instantiate it with.
//
// A decoder-only transformer is a stack of identical blocks around a residual
// stream x of n_embd floats per token (pre-norm, as in Llama and Qwen):
//
//     x = embed(tokens)                                        (n_tokens, n_embd)
//     for each layer:
//         x = x + mixer(rmsnorm(x))       softmax attention, or Gated DeltaNet (Qwen3.5)
//         x = x + ffn(rmsnorm(x))         dense SwiGLU, or a Mixture of Experts
//     logits = rmsnorm(x) W_out^T                              (n_tokens, n_vocab)
//
// Everything that distinguishes Llama, Qwen2, Qwen3, Mixtral, Qwen2-MoE,
// Qwen3-MoE and Qwen3.5 is a field of ModelConfig read by the layers, never a
// branch on the architecture's name. forward() takes any number of tokens: the
// whole prompt at once (prefill: every weight matrix meets all tokens in one
// matrix-matrix product) or one at a time (decode: matrix-vector products, and
// the cache supplies the past). Both give the same logits up to rounding.
//
// Cost of one decoded token: every active weight is read once from memory,
// so tokens/s <= memory bandwidth / active weight bytes (docs/dense-vs-moe.md).
// How the backend reads those weights fastest depends on the machine, so the
// first decode steps time the backend's two ways and keep the faster
// (model/decode_tuning.hpp); neither changes a bit of the logits.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "moelab/error.hpp"
#include "moelab/layers/attention.hpp"
#include "moelab/layers/context.hpp"
#include "moelab/layers/deltanet.hpp"
#include "moelab/layers/ffn_dense.hpp"
#include "moelab/layers/ffn_moe.hpp"
#include "moelab/layers/rope.hpp"
#include "moelab/model/cache.hpp"
#include "moelab/model/decode_tuning.hpp"
#include "moelab/model/model.hpp"
#include "moelab/ops/embedding.hpp"
#include "moelab/ops/linear.hpp"

namespace moelab {

// What the router decided, for docs and benchmarks (moelab logits --routing).
// Entry i is (layer, position) with n_expert_used (expert, weight) pairs, best first.
struct RoutingTrace {
    std::size_t n_expert_used = 0;
    std::vector<std::uint32_t> layer, position;  // (n_entries)
    std::vector<std::uint32_t> experts;          // (n_entries, n_expert_used)
    std::vector<float> weights;                  // (n_entries, n_expert_used)
};

template <class Backend>
class Transformer {
public:
    // max_ctx: positions the cache holds (0: the model's training context, capped at 4096).
    Transformer(const Model& model, ThreadPool& pool, std::size_t max_ctx = 0)
        : model_(model), pool_(pool), cache_(model.config(), max_ctx ? max_ctx : default_ctx(model.config())) {}

    const Model& model() const { return model_; }
    Cache& cache() { return cache_; }
    const Cache& cache() const { return cache_; }
    void reset() { cache_.reset(); }
    // Record every routing decision of later forward() calls into `trace` (nullptr: stop).
    void record_routing(RoutingTrace* trace) { trace_ = trace; }
    // f32 (default): exact products. int8: quantized weights meet activations
    // rounded to 8 bits; bf16: bf16 weights meet activations rounded to bf16;
    // each where the backend has those products (ops/linear.hpp).
    // A new precision reads other kernels, so the decode tuning starts over.
    void set_activation_precision(ops::ActivationPrecision precision) {
        if (precision != activations_) tuner_.restart();
        activations_ = precision;
    }
    ops::ActivationPrecision activation_precision() const { return activations_; }
    // Use this tag (and its run-time settings) as given, instead of timing
    // the first decode steps to choose how matvec reads rows.
    void fix_backend(Backend backend) { tuner_ = DecodeTuner<Backend>::fixed(backend); }
    // What the decode tuning chose, and what it measured (describe()).
    const DecodeTuner<Backend>& decode_tuning() const { return tuner_; }

    // Runs `tokens` at positions n_past() .. n_past() + n - 1 and appends them to
    // the cache. logits: (n_tokens, n_vocab) if all_logits, else (n_vocab) for
    // the last token only (what generation needs; it skips most of the LM head).
    void forward(std::span<const std::int32_t> tokens, float* logits, bool all_logits = true);  // below the class

private:
    static std::size_t default_ctx(const ModelConfig& c) {
        return c.n_ctx_train == 0 ? 4096 : std::min<std::size_t>(c.n_ctx_train, 4096);
    }

    void rmsnorm_rows(const Context<Backend>& ctx, const float* x, FloatSpan weight, std::size_t n_rows,
                      float* out) const {
        const std::size_t D = weight.size;
        for (std::size_t t = 0; t < n_rows; ++t)
            rmsnorm(ctx.backend, x + t * D, weight.data, model_.config().rms_eps, D, out + t * D);
    }

    void record(std::size_t layer, std::size_t pos0, std::size_t n) {
        if (!trace_) return;
        const std::size_t k = model_.config().moe.n_expert_used;
        trace_->n_expert_used = k;
        for (std::size_t t = 0; t < n; ++t) {
            trace_->layer.push_back(static_cast<std::uint32_t>(layer));
            trace_->position.push_back(static_cast<std::uint32_t>(pos0 + t));
        }
        trace_->experts.insert(trace_->experts.end(), moe_scratch_.expert_ids.begin(),
                               moe_scratch_.expert_ids.begin() + static_cast<std::ptrdiff_t>(n * k));
        trace_->weights.insert(trace_->weights.end(), moe_scratch_.expert_weights.begin(),
                               moe_scratch_.expert_weights.begin() + static_cast<std::ptrdiff_t>(n * k));
    }

    const Model& model_;
    ThreadPool& pool_;
    Cache cache_;
    RoutingTrace* trace_ = nullptr;
    ops::ActivationPrecision activations_ = ops::ActivationPrecision::f32;
    DecodeTuner<Backend> tuner_;  // the tag each forward() runs with
    RopeTable rope_;
    FloatBuffer x_, xn_, y_;  // (n_tokens, n_embd): residual stream, its normalised copy, a layer's output
    AttentionScratch attn_scratch_;
    DeltaNetScratch deltanet_scratch_;
    DenseFFNScratch dense_scratch_;
    MoEScratch moe_scratch_;
    ops::RoundedActivations rounded_scratch_;  // linear()'s rounded inputs in the int8 and bf16 modes
};

// forward() is written outside the class so that it is not an inline function:
// a program of several files can then compile it (and the kernels behind it,
// most of the compile time) once per backend, with `template class
// Transformer<B>;` in one file and `extern template class Transformer<B>;`
// where the others can see it (tests/support/transformers.hpp does this).
template <class Backend>
void Transformer<Backend>::forward(std::span<const std::int32_t> tokens, float* logits, bool all_logits) {
    const ModelConfig& c = model_.config();
    const ModelWeights& w = model_.weights();
    const std::size_t n = tokens.size(), D = c.n_embd, pos0 = cache_.n_past();
    if (n == 0) return;
    if (pos0 + n > cache_.max_ctx())
        throw Error("forward", "context is full: " + std::to_string(pos0) + " + " + std::to_string(n) +
                                   " tokens exceed the cache's " + std::to_string(cache_.max_ctx()) + " positions");
    // One token is a decode step: while the tuning runs, it tries a setting
    // on the step and times it (from here, after the checks, to the logits).
    const bool tuning_step = n == 1 && !tuner_.decided();
    const auto start = tuning_step ? std::chrono::steady_clock::now() : std::chrono::steady_clock::time_point{};
    const Context<Backend> ctx{tuning_step ? tuner_.next() : tuner_.chosen(), pool_, activations_, &rounded_scratch_};

    float* x = scratch(x_, n * D);
    float* xn = scratch(xn_, n * D);
    float* y = scratch(y_, n * D);
    for (std::size_t t = 0; t < n; ++t) {
        if (tokens[t] < 0 || static_cast<std::size_t>(tokens[t]) >= c.n_vocab)
            throw Error("forward", "token id " + std::to_string(tokens[t]) + " is outside the vocabulary [0, " +
                                       std::to_string(c.n_vocab) + ")");
        ops::row_to_f32(w.token_embd, static_cast<std::size_t>(tokens[t]), x + t * D);
    }
    rope_.compute(c.rope, pos0, n);

    for (std::size_t il = 0; il < c.n_layer; ++il) {
        const LayerWeights& L = w.layers[il];
        // x = x + mixer(rmsnorm(x))
        rmsnorm_rows(ctx, x, L.attn_norm, n, xn);
        if (c.layer_kinds[il] == LayerKind::attention)
            attention(ctx, L.attn, c, cache_.layer(il), rope_, xn, n, pos0, y, attn_scratch_);
        else
            gated_deltanet(ctx, L.deltanet, c, cache_.layer(il), xn, n, y, deltanet_scratch_);
        add(ctx.backend, x, y, x, n * D);
        // x = x + ffn(rmsnorm(x))
        rmsnorm_rows(ctx, x, L.ffn_norm, n, xn);
        if (c.is_moe()) {
            ffn_moe(ctx, L.moe, c.moe, xn, n, y, moe_scratch_);
            record(il, pos0, n);
        } else {
            ffn_dense(ctx, L.ffn, xn, n, y, dense_scratch_);
        }
        add(ctx.backend, x, y, x, n * D);
    }
    cache_.advance(n);

    // logits = rmsnorm(x) W_out^T, for every row or just the last.
    const std::size_t first = all_logits ? 0 : n - 1;
    rmsnorm_rows(ctx, x + first * D, w.output_norm, n - first, xn);
    linear(ctx, w.output, xn, n - first, logits);
    if (tuning_step) tuner_.record(std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
}

}  // namespace moelab
