// SPDX-License-Identifier: MIT
// bench_model — a whole model end to end, prefill and decode, as Google
// Benchmark suites: the two tests of `moelab bench --model` (examples/cli/
// cmd_bench_model.cpp, which also puts them next to llama-bench) with Google
// Benchmark's repetitions, filters and --benchmark_out JSON.
//
//   bench_model [--model PATH]... [--prefill 64,512] [--decode 32] [--benchmark_* flags]
//   MOELAB_BENCH_MODEL=PATH[:PATH...] bench_model
//   bench_model          no model given: the fixture models qwen3-dense.gguf and
//                        qwen3-moe.gguf from MOELAB_FIXTURES_DIR (compile definition,
//                        or the environment variable of that name); if they are
//                        absent it prints "SKIPPED: ..." and exits 77 (ctest: Skipped).
//
//   BM_Prefill/<model>/tokens:P  one forward() of P tokens from an empty cache,
//                                logits of the last position only (llama-bench's pp P)
//   BM_Decode/<model>/tokens:N   N tokens one at a time through the cache after an
//                                untimed 4-token prompt (llama-bench's tg N)
//
// Counters (per second unless noted):
//   items      tokens
//   bytes      weight bytes read per decoded token (model_cost(), model/cost.hpp)
//              x tokens. For decode this is the weight stream itself; for prefill
//              it is what the same tokens would read one at a time, so its
//              bytes_per_second there is not a bandwidth (a batch reads each
//              weight once for all its tokens).
//   FLOP/s     forward_flops() (model/cost.hpp): 2 x active matrix parameters
//              per token, the LM head once per forward, attention over the context
//   frac_bw    (decode) bytes/s as a fraction of the read bandwidth that main()
//              measures first (all threads; moelab/roofline.hpp). A model that
//              fits in the caches (the ~1 MB fixtures) reads from cache, and its
//              frac_bw can exceed 1; real models are far larger.
//   frac_peak  (prefill) FLOP/s as a fraction of the measured peak FLOP/s
//   weight_bytes_per_token, active_params   (plain values) what the model is
// All threads of the machine run each benchmark (UseRealTime). The weights are
// whatever the file stores; every page is touched once before timing starts.
// Defaults add --benchmark_repetitions=3 --benchmark_report_aggregates_only=true.
#include <benchmark/benchmark.h>

#include "bench_args.hpp"

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "default_backend.hpp"
#include "moelab/model/cost.hpp"
#include "moelab/model/model.hpp"
#include "moelab/model/transformer.hpp"
#include "moelab/roofline.hpp"

namespace {

using namespace moelab;

constexpr std::size_t kDecodePrompt = 4;  // untimed tokens before decoding starts (moelab bench --model's default --depth)

// One model under test, loaded once; benchmarks only read it.
struct LoadedModel {
    std::string label;  // file name without extension: the benchmark name's middle part
    Model model;
    ModelCost cost;
};

struct Machine {
    ThreadPool& pool;
    double read_gbps, peak_gflops;  // medians, measured in main() before any benchmark
};

// A fixed, valid pseudo-random token sequence: the weights are what is timed, not the text.
std::vector<std::int32_t> token_ids(std::size_t n, std::size_t n_vocab) {
    std::vector<std::int32_t> tokens(n);
    for (std::size_t i = 0; i < n; ++i) tokens[i] = static_cast<std::int32_t>((i * 7919 + 13) % n_vocab);
    return tokens;
}

void set_counters(benchmark::State& state, const LoadedModel& m, const Machine& machine, double tokens,
                  double flops, bool decode) {
    const auto rate = benchmark::Counter::kIsIterationInvariantRate;
    const double bytes = tokens * static_cast<double>(m.cost.bytes_per_token);
    state.SetItemsProcessed(static_cast<std::int64_t>(static_cast<double>(state.iterations()) * tokens));
    state.SetBytesProcessed(static_cast<std::int64_t>(static_cast<double>(state.iterations()) * bytes));
    state.counters["FLOP/s"] = benchmark::Counter(flops, rate);
    if (decode)
        state.counters["frac_bw"] = benchmark::Counter(bytes / (machine.read_gbps * 1e9), rate);
    else
        state.counters["frac_peak"] = benchmark::Counter(flops / (machine.peak_gflops * 1e9), rate);
    state.counters["weight_bytes_per_token"] = static_cast<double>(m.cost.bytes_per_token);
    state.counters["active_params"] = static_cast<double>(m.cost.active_params);
}

void BM_Prefill(benchmark::State& state, const LoadedModel* m, const Machine* machine) {
    const auto P = static_cast<std::size_t>(state.range(0));
    const ModelConfig& c = m->model.config();
    Transformer<Backend> transformer(m->model, machine->pool, P);
    const auto tokens = token_ids(P, c.n_vocab);
    std::vector<float> logits(c.n_vocab);
    auto prefill = [&] {
        transformer.reset();
        transformer.forward(std::span(tokens.data(), P), logits.data(), /*all_logits=*/false);
    };
    prefill();  // untimed: first touch of the cache and scratch buffers
    for (auto _ : state) prefill();
    set_counters(state, *m, *machine, static_cast<double>(P), forward_flops(c, m->model.weights(), m->cost, P), false);
}

void BM_Decode(benchmark::State& state, const LoadedModel* m, const Machine* machine) {
    const auto N = static_cast<std::size_t>(state.range(0));
    const ModelConfig& c = m->model.config();
    Transformer<Backend> transformer(m->model, machine->pool, kDecodePrompt + N);
    const auto tokens = token_ids(kDecodePrompt + N, c.n_vocab);
    std::vector<float> logits(c.n_vocab);
    auto prompt = [&] {
        transformer.reset();
        transformer.forward(std::span(tokens.data(), kDecodePrompt), logits.data(), false);
    };
    auto decode = [&] {
        for (std::size_t i = 0; i < N; ++i) transformer.forward(std::span(tokens.data() + kDecodePrompt + i, 1), logits.data());
    };
    prompt(), decode();  // untimed warm-up; the Transformer's decode tuning runs in its first 7 steps
    for (auto _ : state) {
        state.PauseTiming();  // once per N tokens
        prompt();
        state.ResumeTiming();
        decode();
    }
    double flops = 0;
    for (std::size_t i = 0; i < N; ++i) flops += forward_flops(c, m->model.weights(), m->cost, 1, kDecodePrompt + i);
    set_counters(state, *m, *machine, static_cast<double>(N), flops, true);
    state.SetLabel("matvec reads: " + transformer.decode_tuning().describe());
}

// "64,512" -> {64, 512}; nothing on a malformed list (main() then says so).
std::vector<long> parse_sizes(const char* text) {
    std::vector<long> out;
    for (const char* p = text; *p;) {
        char* end = nullptr;
        const long v = std::strtol(p, &end, 10);
        if (end == p || v <= 0 || v > 65536 || (*end != ',' && *end != '\0')) return {};
        out.push_back(v);
        p = *end ? end + 1 : end;
    }
    return out;
}

// The fixture models, when no model was given.
std::vector<std::string> fixture_models() {
    std::filesystem::path dir = MOELAB_FIXTURES_DIR;
    if (const char* env = std::getenv("MOELAB_FIXTURES_DIR"); env && *env) dir = env;
    std::vector<std::string> paths;
    for (const char* name : {"qwen3-dense.gguf", "qwen3-moe.gguf"})
        if (std::filesystem::exists(dir / "models" / name)) paths.push_back((dir / "models" / name).string());
    if (paths.empty())
        std::printf("SKIPPED: no model given (--model PATH or MOELAB_BENCH_MODEL) and no fixture models in %s/models\n",
                    dir.string().c_str());
    return paths;
}

}  // namespace

int main(int argc, char** argv) {
    // Our own flags, removed before Google Benchmark sees the rest.
    std::vector<char*> args(argv, argv + argc);
    std::vector<std::string> paths;
    std::vector<long> prefills{64, 512}, decodes{32};
    for (auto it = args.begin() + 1; it != args.end();) {
        const std::string a = *it;
        std::string key, value;
        for (const char* flag : {"--model", "--prefill", "--decode"}) {
            if (a == flag && it + 1 != args.end()) key = flag, value = *(it + 1);
            if (a.rfind(std::string(flag) + "=", 0) == 0) key = flag, value = a.substr(std::strlen(flag) + 1);
        }
        if (key.empty()) {
            ++it;
            continue;
        }
        it = args.erase(it, it + (a == key ? 2 : 1));
        if (key == "--model") {
            paths.push_back(value);
            continue;
        }
        auto& sizes = key == "--prefill" ? prefills : decodes;
        sizes = parse_sizes(value.c_str());
        if (sizes.empty()) {
            std::fprintf(stderr, "bench_model: %s wants a list like 64,512 of values in [1, 65536], got '%s'\n",
                         key.c_str(), value.c_str());
            return 2;
        }
    }
    if (const char* env = std::getenv("MOELAB_BENCH_MODEL"); paths.empty() && env && *env)
        for (std::string rest = env; !rest.empty();) {
            const std::size_t colon = rest.find(':');
            if (colon) paths.push_back(rest.substr(0, colon));
            rest = colon == std::string::npos ? "" : rest.substr(colon + 1);
        }
    if (paths.empty() && (paths = fixture_models()).empty()) return 77;

    static char repetitions[] = "--benchmark_repetitions=3";
    initialize_with_medians(args, repetitions);
    if (benchmark::ReportUnrecognizedArguments(static_cast<int>(args.size()), args.data())) return 2;

    std::vector<std::unique_ptr<LoadedModel>> models;
    try {
        for (const std::string& path : paths) {
            Model model = Model::load(path);
            const ModelCost cost = model_cost(model.config(), model.weights());
            volatile unsigned checksum = touch_weight_pages(model.weights());
            (void)checksum;
            models.push_back(std::make_unique<LoadedModel>(
                LoadedModel{std::filesystem::path(path).stem().string(), std::move(model), cost}));
        }
    } catch (const std::exception& e) {
        std::fprintf(stderr, "bench_model: %s\n", e.what());
        return 1;
    }

    ThreadPool pool;
    const Machine machine{pool, measure_read_bandwidth(Backend{}, pool).median, measure_peak_flops(Backend{}, pool).median};
    std::printf("bench_model: backend %s — %s, %zu threads; measured read bandwidth %.1f GB/s, peak %.0f GFLOP/s\n",
                Backend::name, instruction_set(Backend{}), pool.size(), machine.read_gbps, machine.peak_gflops);
    for (const auto& m : models) {
        std::printf("  %s: %s, %.3f GB stored, %.4f GB read per decoded token, %.3g active of %.3g parameters\n",
                    m->label.c_str(), std::string(arch_name(m->model.config().arch)).c_str(),
                    static_cast<double>(m->cost.total_bytes) / 1e9, static_cast<double>(m->cost.bytes_per_token) / 1e9,
                    static_cast<double>(m->cost.active_params), static_cast<double>(m->cost.total_params));
        benchmark::RegisterBenchmark(("BM_Prefill/" + m->label).c_str(), BM_Prefill, m.get(), &machine)
            ->ArgsProduct({prefills})->ArgNames({"tokens"})->UseRealTime()->Unit(benchmark::kMillisecond);
        benchmark::RegisterBenchmark(("BM_Decode/" + m->label).c_str(), BM_Decode, m.get(), &machine)
            ->ArgsProduct({decodes})->ArgNames({"tokens"})->UseRealTime()->Unit(benchmark::kMillisecond);
    }
    const std::size_t ran = benchmark::RunSpecifiedBenchmarks();
    benchmark::Shutdown();
    if (ran == 0) std::fprintf(stderr, "%s: no benchmark matched the filter\n", argv[0]);
    return ran == 0 ? 1 : 0;
}
