// SPDX-License-Identifier: MIT
// moelab/generate.hpp — the generation loop: prefill the prompt, then sample,
// decode and stream one token at a time until a stop condition.
//
// Depends on: moelab/model/transformer.hpp, moelab/sampler.hpp,
//             moelab/tokenizer/tokenizer.hpp, the standard library.
//
// The loop knows nothing about architectures or caches: Transformer::forward
// appends tokens whatever the layers keep (KV cache, recurrent state). It
// stops at the first of: an end-of-sequence or end-of-turn token, a user stop
// string in the text, max_new_tokens, a full context, or a callback returning
// false (Ctrl-C). Text streams as complete UTF-8 characters; text that might be
// the start of a stop string is held back until it is known not to be one.
// Because a step can produce no text (held back, or half a character), a caller
// that must react promptly (Ctrl-C, a progress line) uses on_progress, which is
// called after every prefill chunk and every decode step whatever the text did.
#pragma once

#include <algorithm>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "moelab/model/transformer.hpp"
#include "moelab/sampler.hpp"
#include "moelab/tokenizer/tokenizer.hpp"

namespace moelab {

// Where generation stands, as on_progress sees it.
struct GenerationProgress {
    bool decoding = false;            // false while the prompt goes through the model
    std::size_t prompt_done = 0;      // prompt tokens through the model so far
    std::size_t prompt_tokens = 0;
    std::size_t generated = 0;        // tokens generated so far
    std::size_t max_new_tokens = 0;
    double seconds = 0;               // spent in the current phase (prefill, or decode)
};

struct GenerationOptions {
    std::size_t max_new_tokens = 128;
    SamplerOptions sampling;
    std::vector<std::string> stop_strings;  // generation ends before any of these
    // Prompt tokens per forward call; 0: the whole prompt in one call. One call is the
    // fastest (every weight matrix is read once for all tokens); chunks of a few hundred
    // tokens cost little and let on_progress report, and cancel, a long prefill.
    std::size_t prefill_chunk = 0;
    // Called after each prefill chunk and each decode step; returning false stops with
    // "cancelled" (text still held back is dropped). Empty: never called.
    std::function<bool(const GenerationProgress&)> on_progress;
};

struct GenerationResult {
    std::vector<std::int32_t> tokens;  // generated ids (the stop token excluded)
    std::string stop_reason;           // "end of sequence", "stop string", "max tokens", "context full", "cancelled"
    std::size_t prompt_tokens = 0;
    std::size_t decode_steps = 0;      // forward calls of one token each
    double prompt_seconds = 0, decode_seconds = 0;
    // MoE models: how often each expert was chosen, (n_layer, n_expert), over
    // the prompt and the generated tokens.
    std::vector<std::vector<std::uint64_t>> expert_counts;
};

// on_text receives each newly complete piece of text; returning false stops ("cancelled").
template <class Backend>
GenerationResult generate(Transformer<Backend>& transformer, const Tokenizer& tokenizer,
                          std::span<const std::int32_t> prompt, const GenerationOptions& options,
                          const std::function<bool(std::string_view)>& on_text) {
    using Clock = std::chrono::steady_clock;
    const ModelConfig& c = transformer.model().config();
    GenerationResult result;
    result.prompt_tokens = prompt.size();
    if (prompt.empty()) throw Error("generate", "the prompt has no tokens");
    RoutingTrace trace;
    if (c.is_moe()) transformer.record_routing(&trace);

    Sampler sampler(options.sampling);
    StreamDecoder stream(tokenizer);
    std::vector<std::int32_t> history(prompt.begin(), prompt.end());
    std::vector<float> logits(c.n_vocab);
    std::string held;  // decoded text not yet emitted (could begin a stop string)

    auto is_stop_token = [&](std::int32_t id) {
        return (tokenizer.eos_id() && id == *tokenizer.eos_id()) || tokenizer.is_end_of_turn(id) ||
               (c.eos_id >= 0 && id == c.eos_id);
    };
    // Emits what can no longer be part of a stop string; true when a stop string completed.
    auto flush = [&](bool final) -> bool {
        std::size_t stop_at = std::string::npos;
        for (const auto& s : options.stop_strings)
            if (!s.empty()) stop_at = std::min(stop_at, held.find(s));
        if (stop_at != std::string::npos) {
            if (stop_at > 0) on_text(std::string_view(held).substr(0, stop_at));
            held.clear();
            return true;
        }
        std::size_t keep = 0;  // longest suffix of `held` that is a proper prefix of a stop string
        if (!final)
            for (const auto& s : options.stop_strings)
                for (std::size_t len = std::min(s.size() - 1, held.size()); len > keep; --len)
                    if (std::string_view(held).substr(held.size() - len) == std::string_view(s).substr(0, len)) {
                        keep = len;
                        break;
                    }
        bool go_on = true;
        if (held.size() > keep) go_on = on_text(std::string_view(held).substr(0, held.size() - keep));
        held.erase(0, held.size() - keep);
        if (!go_on) result.stop_reason = "cancelled";
        return !go_on;
    };

    // Reports progress; false when the caller cancels.
    auto keep_going = [&](bool decoding, std::size_t prompt_done, Clock::time_point phase_start) {
        if (!options.on_progress) return true;
        GenerationProgress progress;
        progress.decoding = decoding;
        progress.prompt_done = prompt_done;
        progress.prompt_tokens = prompt.size();
        progress.generated = result.tokens.size();
        progress.max_new_tokens = options.max_new_tokens;
        progress.seconds = std::chrono::duration<double>(Clock::now() - phase_start).count();
        if (options.on_progress(progress)) return true;
        result.stop_reason = "cancelled";
        return false;
    };

    // Prefill. Only the last token's logits are needed: each chunk overwrites the previous.
    result.stop_reason = "max tokens";
    const auto t0 = Clock::now();
    const std::size_t chunk = options.prefill_chunk ? options.prefill_chunk : prompt.size();
    bool cancelled = false;
    for (std::size_t done = 0; done < prompt.size() && !cancelled;) {
        const std::size_t n = std::min(chunk, prompt.size() - done);
        transformer.forward(prompt.subspan(done, n), logits.data(), /*all_logits=*/false);
        done += n;
        cancelled = !keep_going(false, done, t0);
    }
    const auto t1 = Clock::now();
    result.prompt_seconds = std::chrono::duration<double>(t1 - t0).count();

    for (std::size_t step = 0; step < options.max_new_tokens && !cancelled; ++step) {
        const std::int32_t next = sampler.sample(logits, history);
        if (is_stop_token(next)) {
            result.stop_reason = "end of sequence";
            break;
        }
        result.tokens.push_back(next);
        history.push_back(next);
        held += stream.feed(next);
        if (flush(false)) {
            if (result.stop_reason != "cancelled") result.stop_reason = "stop string";
            break;
        }
        if (step + 1 == options.max_new_tokens) break;  // no need to compute logits we won't use
        if (transformer.cache().n_past() >= transformer.cache().max_ctx()) {
            result.stop_reason = "context full";
            break;
        }
        transformer.forward(std::span(&next, 1), logits.data(), false);
        ++result.decode_steps;
        cancelled = !keep_going(true, prompt.size(), t1);
    }
    if (result.stop_reason != "cancelled" && result.stop_reason != "stop string") {
        held += stream.finish();
        if (flush(true) && result.stop_reason != "cancelled") result.stop_reason = "stop string";
    }
    result.decode_seconds = std::chrono::duration<double>(Clock::now() - t1).count();

    if (c.is_moe()) {
        transformer.record_routing(nullptr);
        result.expert_counts.assign(c.n_layer, std::vector<std::uint64_t>(c.moe.n_expert, 0));
        for (std::size_t i = 0; i < trace.layer.size(); ++i)
            for (std::size_t j = 0; j < trace.n_expert_used; ++j)
                ++result.expert_counts[trace.layer[i]][trace.experts[i * trace.n_expert_used + j]];
    }
    return result;
}

}  // namespace moelab
