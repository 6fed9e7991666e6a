// SPDX-License-Identifier: MIT
// Tokenizer throughput: encoding and decoding about 1 MB of mixed text with the real Qwen3
// tokenizer.json (151,669 tokens, 151,387 merges) from the fixtures.
//
// The text is generated deterministically (a fixed-seed std::mt19937 used through `% n`, which,
// unlike std::uniform_int_distribution, is the same on every standard library): English prose,
// C++/Python code, Chinese and Japanese, emoji (with ZWJ sequences and skin tones), numbers, and
// decomposed accents that NFC must recompose — roughly the mix a chat or a prompt file carries.
// Reported: bytes/s of input (bytes_per_second) and tokens/s (items_per_second).
// The ceiling is the CPU, single-threaded: encode() is one pass of UTF-8 validation + NFC
// check, one of pre-tokenization, then BPE per word with hash-map lookups per merge.
#include <benchmark/benchmark.h>

#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include "moelab/tokenizer/tokenizer_json.hpp"

namespace {

std::filesystem::path tokenizer_json_path() {
    std::filesystem::path dir = MOELAB_FIXTURES_DIR;
    if (const char* env = std::getenv("MOELAB_FIXTURES_DIR"); env && *env) dir = env;
    return dir / "models/qwen3-dense-fullvocab.hf/tokenizer.json";
}

// Loaded on first use and kept for the process (a benchmark-harness convenience).
const moelab::Tokenizer* tokenizer() {
    static const std::optional<moelab::Tokenizer> tok = []() -> std::optional<moelab::Tokenizer> {
        if (!std::filesystem::exists(tokenizer_json_path())) return std::nullopt;
        return moelab::load_hf_tokenizer(tokenizer_json_path());
    }();
    return tok ? &*tok : nullptr;
}

std::string mixed_text(std::size_t target_bytes) {
    static const char* words[] = {"the", "model", "expert", "router", "dense", "layer", "tokens", "of", "and",
                                  "a", "mixture", "bandwidth", "we", "measure", "which", "is", "faster",
                                  "because", "it's", "don't", "parameters", "active", "total", "cache"};
    static const char* code[] = {"for (std::size_t i = 0; i < n; ++i) {\n    y[i] += w[i] * x[i];\n}\n",
                                 "def forward(self, x):\n    return self.down(F.silu(self.gate(x)) * self.up(x))\n",
                                 "#include <vector>\nint main() { return 0; }\n",
                                 "    if (err != 0) { fprintf(stderr, \"error %d\\n\", err); }\n"};
    static const char* cjk[] = {"\xE6\xA8\xA1\xE5\x9E\x8B", "\xE4\xB8\x93\xE5\xAE\xB6", "\xE6\xB7\xB7\xE5\x90\x88",
                                "\xE7\x9A\x84", "\xE6\x98\xAF", "\xE8\xAE\xA1\xE7\xAE\x97",
                                "\xE3\x81\xA7\xE3\x81\x99", "\xE3\x81\xAE", "\xE3\x83\x88\xE3\x83\xBC\xE3\x82\xAF\xE3\x83\xB3",
                                "\xE3\x80\x82", "\xEF\xBC\x8C"};
    static const char* emoji[] = {"\xF0\x9F\x98\x80", "\xF0\x9F\x9A\x80", "\xF0\x9F\x91\x8D\xF0\x9F\x8F\xBE",
                                  "\xE2\x9D\xA4\xEF\xB8\x8F", "\xF0\x9F\xA7\x91\xE2\x80\x8D\xF0\x9F\x92\xBB",
                                  "\xF0\x9F\x87\xAB\xF0\x9F\x87\xB7", "\xF0\x9F\x94\xA5"};
    std::mt19937 rng(42);
    auto pick = [&](const auto& array) { return array[rng() % std::size(array)]; };
    std::string text;
    text.reserve(target_bytes + 256);
    while (text.size() < target_bytes) {
        switch (rng() % 10) {
            case 0: case 1: case 2: case 3: {  // prose
                for (int i = 0, n = 8 + rng() % 20; i < n; ++i) text += std::string(i ? " " : "") + pick(words);
                text += rng() % 3 ? ". " : ".\n\n";
                break;
            }
            case 4: case 5: text += pick(code); break;
            case 6: case 7:
                for (int i = 0, n = 5 + rng() % 30; i < n; ++i) text += pick(cjk);
                text += "\n";
                break;
            case 8:
                for (int i = 0, n = 1 + rng() % 4; i < n; ++i) text += std::string(pick(emoji)) + " ";
                break;
            default:  // numbers, and an accent left decomposed (e + U+0301) for NFC to recompose
                text += std::to_string(rng() % 1000000) + "." + std::to_string(rng() % 100) + " caf" +
                        (rng() % 2 ? "e\xCC\x81" : "\xC3\xA9") + " ";
                break;
        }
    }
    return text;
}

void BM_encode_mixed_1MB(benchmark::State& state) {
    const moelab::Tokenizer* tok = tokenizer();
    if (!tok) return state.SkipWithError("fixtures not found (MOELAB_FIXTURES_DIR)");
    const std::string text = mixed_text(1 << 20);
    std::size_t n_tokens = 0;
    for (auto _ : state) {
        auto ids = tok->encode(text);
        n_tokens = ids.size();
        benchmark::DoNotOptimize(ids.data());
    }
    state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations() * text.size()));
    state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations() * n_tokens));
    state.counters["bytes"] = static_cast<double>(text.size());
    state.counters["tokens"] = static_cast<double>(n_tokens);
}
BENCHMARK(BM_encode_mixed_1MB)->Unit(benchmark::kMillisecond);

void BM_decode_mixed_1MB(benchmark::State& state) {
    const moelab::Tokenizer* tok = tokenizer();
    if (!tok) return state.SkipWithError("fixtures not found (MOELAB_FIXTURES_DIR)");
    const std::string text = mixed_text(1 << 20);
    const auto ids = tok->encode(text);
    for (auto _ : state) {
        auto bytes = tok->decode(ids);
        benchmark::DoNotOptimize(bytes.data());
    }
    state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations() * text.size()));
    state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations() * ids.size()));
}
BENCHMARK(BM_decode_mixed_1MB)->Unit(benchmark::kMillisecond);

void BM_load_tokenizer_json(benchmark::State& state) {
    if (!std::filesystem::exists(tokenizer_json_path())) return state.SkipWithError("fixtures not found");
    for (auto _ : state) {
        auto tok = moelab::load_hf_tokenizer(tokenizer_json_path());
        benchmark::DoNotOptimize(&tok);
    }
}
BENCHMARK(BM_load_tokenizer_json)->Unit(benchmark::kMillisecond)->Iterations(3);

}  // namespace

BENCHMARK_MAIN();
