// SPDX-License-Identifier: MIT
// moelab run --model PATH --prompt TEXT [-n N] [--temp T] [--top-k K] [--top-p P]
//            [--min-p P] [--repeat-penalty R] [--seed S] [--chat] [--system TEXT]
//            [--stop STR] [--ctx N] [--backend B] [--activations f32|int8] [-t N]
// Streams the generated text to stdout as it is produced; then prints the
// prompt and decode speeds, and for MoE models how the experts were used, to
// stderr. Ctrl-C stops generation cleanly (the summary is still printed).
#include <algorithm>
#include <atomic>
#include <csignal>
#include <cstdio>
#include <string>
#include <vector>

#include "cli/cli.hpp"
#include "moelab/chat.hpp"
#include "moelab/generate.hpp"
#include "moelab/tokenizer/model_tokenizer.hpp"

namespace moelab::cli {

namespace {

// Set by the SIGINT handler; the one piece of process-wide state, as a signal
// handler can reach nothing else.
volatile std::sig_atomic_t g_interrupted = 0;
extern "C" void on_sigint(int) { g_interrupted = 1; }

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
                     "system", "stop", "ctx", "backend", "activations", "t", "threads"});
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

    const Model model = Model::load(args.required("model"));
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
    std::signal(SIGINT, on_sigint);
    const std::string backend_name = args.get("backend", default_backend());
    with_backend(backend_name, [&](auto b) {
        std::fprintf(stderr, "moelab run: %s (%s), %zu prompt tokens, backend %s [%s], %zu threads\n", c.name.c_str(),
                     std::string(arch_name(c.arch)).c_str(), prompt.size(), backend_name.c_str(), instruction_set(b),
                     pool.size());
    });
    const GenerationResult r = with_backend(backend_name, [&](auto backend) {
        Transformer<decltype(backend)> transformer(model, pool, max_ctx);
        transformer.set_activation_precision(parse_activations(args));
        return generate(transformer, tokenizer, prompt, options, [](std::string_view piece) {
            std::fwrite(piece.data(), 1, piece.size(), stdout);
            std::fflush(stdout);
            return g_interrupted == 0;
        });
    });
    std::signal(SIGINT, SIG_DFL);
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
