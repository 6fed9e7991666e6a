// SPDX-License-Identifier: MIT
// moelab run --model PATH --prompt TEXT [-n N] [--temp T] [--top-k K] [--top-p P]
//            [--min-p P] [--repeat-penalty R] [--seed S] [--chat] [--system TEXT]
//            [--stop STR] [--ctx N] [--backend B] [--activations f32|int8|bf16] [--int8-layout interleaved|file]
//            [--matvec-reads auto|stream|passes] [-t N]
// Streams the generated text to stdout as it is produced; then prints the
// prompt and decode speeds, and for MoE models how the experts were used, to
// stderr. When stderr is a terminal, a status line there shows the prefill's
// progress, and the decode's too when stdout is not that terminal (the text
// itself shows it otherwise). Ctrl-C is checked after every prefill chunk and
// every decode step, whether or not text came out; it stops generation
// cleanly: the summary is still printed and the exit code is 130 (128 + SIGINT).
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <string>
#include <vector>

#include "cli/cli.hpp"
#include "cli/transformers.hpp"
#include "moelab/chat.hpp"
#include "moelab/generate.hpp"
#include "moelab/tokenizer/model_tokenizer.hpp"

namespace moelab::cli {

namespace {

// Set by the SIGINT handler; the one piece of process-wide state, as a signal
// handler can reach nothing else.
volatile std::sig_atomic_t g_interrupted = 0;
extern "C" void on_sigint(int) { g_interrupted = 1; }

// Prompt tokens per forward call. A few hundred tokens per matrix-matrix product keeps
// prefill compute-bound (weights are re-read once per chunk, a small cost next to the FLOPs),
// and a chunk is short enough that Ctrl-C and the status line respond during a long prompt.
constexpr std::size_t prefill_chunk = 256;

// One line on stderr, rewritten in place ("\r", then ESC [K erases the old text), at most
// four times a second so that printing never costs noticeable time, except that a new phase
// (prefill -> decode) shows at once. Disabled unless stderr is a terminal: in a log file these
// updates would be noise.
class StatusLine {
public:
    explicit StatusLine(bool enabled) : enabled_(enabled) {}

    void show(const std::string& text, bool at_once) {
        if (!enabled_) return;
        const auto now = std::chrono::steady_clock::now();
        if (shown_ && !at_once && now - last_ < std::chrono::milliseconds(250)) return;
        std::fprintf(stderr, "\r\033[K%s", text.c_str());
        std::fflush(stderr);
        shown_ = true;
        last_ = now;
    }

    void clear() {
        if (!shown_) return;
        std::fputs("\r\033[K", stderr);
        std::fflush(stderr);
        shown_ = false;
    }

private:
    bool enabled_;
    bool shown_ = false;
    std::chrono::steady_clock::time_point last_;
};

std::string progress_text(const GenerationProgress& p) {
    char line[160];
    if (!p.decoding)
        std::snprintf(line, sizeof line, "prefill: %zu/%zu prompt tokens (%.1f tokens/s), Ctrl-C stops", p.prompt_done,
                      p.prompt_tokens, static_cast<double>(p.prompt_done) / std::max(p.seconds, 1e-9));
    else
        std::snprintf(line, sizeof line, "decode: %zu/%zu tokens (%.1f tokens/s), Ctrl-C stops", p.generated,
                      p.max_new_tokens, static_cast<double>(p.generated) / std::max(p.seconds, 1e-9));
    return line;
}

void print_expert_usage(const GenerationResult& r, const ModelConfig& c) {
    if (r.expert_counts.empty()) return;
    std::fprintf(stderr, "experts (top-%zu of %zu per token, %zu layers):\n", c.moe.n_expert_used, c.moe.n_expert,
                 c.n_layer);
    for (std::size_t il = 0; il < r.expert_counts.size(); ++il) {
        const auto& counts = r.expert_counts[il];
        std::uint64_t total = 0, max = 0;
        std::size_t used = 0;
        for (auto n : counts) total += n, max = std::max(max, n), used += n > 0;
        if (total == 0) continue;
        std::vector<std::size_t> order(counts.size());
        for (std::size_t e = 0; e < order.size(); ++e) order[e] = e;
        std::stable_sort(order.begin(), order.end(), [&](auto a, auto b) { return counts[a] > counts[b]; });
        const double mean = static_cast<double>(total) / static_cast<double>(counts.size());
        std::fprintf(stderr, "  layer %2zu: %3zu/%zu experts used, busiest/mean %.2f, top:", il, used, counts.size(),
                     static_cast<double>(max) / mean);
        for (std::size_t i = 0; i < std::min<std::size_t>(4, order.size()) && counts[order[i]] > 0; ++i)
            std::fprintf(stderr, " e%zu (%.0f%%)", order[i], 100.0 * static_cast<double>(counts[order[i]]) / static_cast<double>(total));
        std::fputc('\n', stderr);
    }
}

}  // namespace

int cmd_run(int argc, char** argv) {
    const Args args(argc, argv, {"chat"});
    args.allow_only({"model", "prompt", "n", "temp", "top-k", "top-p", "min-p", "repeat-penalty", "seed", "chat",
                     "system", "stop", "ctx", "backend", "activations", "int8-layout", "matvec-reads", "t", "threads"});
    if (!args.positional().empty()) throw UsageError("unexpected argument '" + args.positional()[0] + "'");
    const std::string prompt_text = args.required("prompt");
    GenerationOptions options;
    const long long n = args.integer("n", 128);
    if (n < 0 || n > 1'000'000) throw UsageError("-n must be in [0, 1000000]");
    options.max_new_tokens = static_cast<std::size_t>(n);
    options.sampling.temperature = static_cast<float>(args.number("temp", 0.0));
    const long long top_k = args.integer("top-k", 0);
    if (top_k < 0) throw UsageError("--top-k must be >= 0");
    options.sampling.top_k = static_cast<std::size_t>(top_k);
    options.sampling.top_p = static_cast<float>(args.number("top-p", 1.0));
    options.sampling.min_p = static_cast<float>(args.number("min-p", 0.0));
    options.sampling.repeat_penalty = static_cast<float>(args.number("repeat-penalty", 1.0));
    options.sampling.seed = static_cast<std::uint64_t>(args.integer("seed", 0));
    if (args.has("stop")) options.stop_strings.push_back(args.get("stop"));
    const long long threads = args.integer("t", args.integer("threads", 0));
    if (threads < 0 || threads > 1024) throw UsageError("-t must be in [0, 1024]");
    const long long ctx = args.integer("ctx", 0);
    if (ctx < 0) throw UsageError("--ctx must be >= 0");
    const ops::ActivationPrecision activations = parse_activations(args);
    const auto matvec_reads = parse_matvec_reads(args);
    const bool interleave = parse_int8_interleave(args);

    Model model = Model::load(args.required("model"));
    const ModelConfig& c = model.config();
    const Tokenizer tokenizer = load_tokenizer(model);
    std::string text = prompt_text;
    if (args.has("chat")) {
        const ChatTemplate chat = ChatTemplate::detect(chat_template_source(model), model.path().string());
        std::vector<ChatMessage> messages;
        if (args.has("system")) messages.push_back({"system", args.get("system")});
        messages.push_back({"user", prompt_text});
        text = chat.apply(messages);
    } else if (args.has("system")) {
        throw UsageError("--system needs --chat");
    }
    std::vector<std::int32_t> prompt;
    try {
        prompt = tokenizer.encode(text);
    } catch (const Error& e) {
        throw Error("--prompt", e.what());
    }
    if (prompt.empty()) throw UsageError("the prompt is empty");
    const std::size_t max_ctx = ctx ? static_cast<std::size_t>(ctx) : prompt.size() + options.max_new_tokens;
    if (prompt.size() >= max_ctx) throw UsageError("the prompt (" + std::to_string(prompt.size()) + " tokens) does not fit --ctx");

    ThreadPool pool(static_cast<std::size_t>(threads));
    // The status line shares the terminal with the text only while no text is written: during
    // decode it is shown only when the text goes elsewhere (a file, a pipe).
    StatusLine status(isatty(fileno(stderr)) != 0);
    const bool text_on_terminal = isatty(fileno(stdout)) != 0;
    options.prefill_chunk = prefill_chunk;
    bool decoding = false;
    options.on_progress = [&](const GenerationProgress& p) {
        if (p.decoding && text_on_terminal)
            status.clear();
        else
            status.show(progress_text(p), /*at_once=*/p.decoding != decoding);
        decoding = p.decoding;
        return g_interrupted == 0;
    };
    std::signal(SIGINT, on_sigint);
    const std::string backend_name = args.get("backend", default_backend());
    with_backend(backend_name, [&](auto b) {
        std::fprintf(stderr, "moelab run: %s (%s), %zu prompt tokens, backend %s [%s], %zu threads\n", c.name.c_str(),
                     std::string(arch_name(c.arch)).c_str(), prompt.size(), backend_name.c_str(), instruction_set(b),
                     pool.size());
    });
    const GenerationResult r = with_backend(backend_name, [&](auto backend) {
        prepare_model(backend, model, activations, interleave, pool);
        Transformer<decltype(backend)> transformer(model, pool, max_ctx);
        transformer.set_activation_precision(activations);
        apply_matvec_reads(matvec_reads, transformer);
        return generate(transformer, tokenizer, prompt, options, [&](std::string_view piece) {
            if (text_on_terminal) status.clear();
            std::fwrite(piece.data(), 1, piece.size(), stdout);
            std::fflush(stdout);
            return g_interrupted == 0;
        });
    });
    std::signal(SIGINT, SIG_DFL);
    status.clear();
    std::fputc('\n', stdout);
    std::fflush(stdout);

    std::fprintf(stderr, "\nprompt: %zu tokens in %.3f s (%.1f tokens/s)\n", r.prompt_tokens, r.prompt_seconds,
                 static_cast<double>(r.prompt_tokens) / std::max(r.prompt_seconds, 1e-9));
    std::fprintf(stderr, "decode: %zu tokens in %.3f s (%.1f tokens/s), stopped: %s\n", r.tokens.size(), r.decode_seconds,
                 static_cast<double>(r.decode_steps) / std::max(r.decode_seconds, 1e-9), r.stop_reason.c_str());
    print_expert_usage(r, c);
    return r.stop_reason == "cancelled" ? 130 : 0;
}

}  // namespace moelab::cli
