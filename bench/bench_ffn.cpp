// SPDX-License-Identifier: MIT
// bench_ffn — dense vs MoE FFN, the router alone, and the mixers, as Google
// Benchmark suites (the CLI's `moelab bench` prints the same comparison as
// one readable table).
//
//   BM_DenseFFN/d_model/d_ff/tokens
//   BM_MoEFFN/d_model/d_ff/n_experts/k/tokens       EQUAL ACTIVE parameters: expert width = d_ff / k
//   BM_MoEFFN_EqualTotal/d_model/d_ff/n_experts/k/tokens   EQUAL TOTAL parameters: expert width = d_ff / n_experts
//   BM_Router/d_model/n_experts/k/tokens            router matmul + softmax + top-k alone
//   BM_AttentionDecode/context, BM_DeltaNetDecode/context   one decode step of a mixer
//
// The grids (register_all()) are ArgsProducts of
//   d_model {1024, 2048} x d_ff {4096, 5120, 6144} x n_experts {8, 64, 128, 512}
//   x k {1, 2, 4, 8, 10} x tokens {1, 8, 64, 512},
// plus d_model 512 x d_ff 2048 for the dense layer and equal-active MoE (the one
// shape where every n_experts x k fits the weight cap, see below); the router
// runs n_experts {8, 64, 128, 512} x k {1, 2, 4, 8, 10} x tokens {1, 64}.
// Expert width at equal active parameters is d_ff / k rounded to the nearest
// multiple of 16 (SIMD rows stay whole): exact for d_ff 5120 (divisible by 10)
// and for every k but 10 elsewhere; k = 10 gives 208 (d_ff 2048, 1.6% more
// active parameters than dense), 416 (4096, +1.6%) and 608 (6144, -1.0%). The
// counters expert_width and active_vs_dense (k x width / d_ff) say so per run.
//
// Skipped combinations, each reported in the output as "ERROR OCCURRED:
// 'skipped: ...'" with its reason rather than left out silently:
//   - k > n_experts (only n_experts 8 with k 10): not a mixture;
//   - weights over --moelab_max_gb (default 4 GB). Equal-active MoE stores
//     n_experts / k times the dense layer, 6 x d_model x d_ff x n_experts / k
//     bytes in bf16: at d_model 1024 x d_ff 4096 that skips n_experts 512 with
//     k 1 and 2 (12.9 and 6.4 GB); the larger shapes skip more (28 of the
//     (d_model, d_ff, n_experts, k) combinations, down to n_experts 64 with k 1 at
//     d_model 2048, d_ff >= 5120). d_model 512 x d_ff 2048
//     runs every n_experts x k (the largest, 512 experts with k 1, is 3.2 GB).
//     Equal-total MoE is never over the cap: it stores what the dense layer does.
// Each benchmark allocates its weights (<= the cap) plus < 100 MB of inputs
// and scratch, one benchmark at a time: within 4.1 GB of the machine's 24.
//
// Counters: items = tokens; bytes = weight bytes read (MoE: the experts the
// batch actually touched); FLOP/s; frac_bw and frac_peak against the ceilings
// main() measures first (all threads; moelab/roofline.hpp); experts_touched.
// All threads of the machine run each benchmark (UseRealTime). Weights are
// synthetic bf16 (moelab/synthetic.hpp).
// Defaults add --benchmark_repetitions=3 --benchmark_report_aggregates_only=true.
#include <benchmark/benchmark.h>

#include "bench_args.hpp"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "default_backend.hpp"
#include "moelab/layers/attention.hpp"
#include "moelab/layers/deltanet.hpp"
#include "moelab/layers/ffn_dense.hpp"
#include "moelab/layers/ffn_moe.hpp"
#include "moelab/roofline.hpp"
#include "moelab/synthetic.hpp"

namespace {

using namespace moelab;

struct Globals {
    std::unique_ptr<ThreadPool> pool;
    double read_gbps = 0, peak_gflops = 0;
    double max_weight_bytes = 4e9;
};
Globals& globals() {
    static Globals g;  // benchmark-binary state, set once in main()
    return g;
}

constexpr DType kDType = DType::bf16;

std::vector<float> activations(std::size_t n, std::uint64_t seed) {
    SyntheticRng rng(seed);
    std::vector<float> x(n);
    for (auto& v : x) v = static_cast<float>(2 * rng.uniform() - 1);
    return x;
}

void set_counters(benchmark::State& state, double tokens, double flops, double bytes) {
    const auto rate = benchmark::Counter::kIsIterationInvariantRate;
    state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations() * tokens));
    state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations() * bytes));
    state.counters["FLOP/s"] = benchmark::Counter(flops, rate);
    state.counters["frac_bw"] = benchmark::Counter(bytes / (globals().read_gbps * 1e9), rate);
    state.counters["frac_peak"] = benchmark::Counter(flops / (globals().peak_gflops * 1e9), rate);
}

// Rotating inputs: each iteration routes differently (see moelab bench).
struct Inputs {
    std::vector<float> x;
    std::size_t batch, d, n = 8, next = 0;
    Inputs(std::size_t batch_, std::size_t d_) : x(activations(8 * batch_ * d_, 7)), batch(batch_), d(d_) {}
    const float* get() { return x.data() + (next++ % n) * batch * d; }
};

void BM_DenseFFN(benchmark::State& state) {
    const auto D = static_cast<std::size_t>(state.range(0)), F = static_cast<std::size_t>(state.range(1)),
               T = static_cast<std::size_t>(state.range(2));
    SyntheticRng rng(1);
    const SyntheticDenseFFN ffn(D, F, kDType, rng);
    Inputs in(T, D);
    std::vector<float> y(T * D);
    DenseFFNScratch s;
    const Context<Backend> ctx{Backend{}, *globals().pool};
    for (auto _ : state) ffn_dense(ctx, ffn.weights(), in.get(), T, y.data(), s);
    set_counters(state, static_cast<double>(T), 6.0 * D * F * T, static_cast<double>(ffn.bytes()));
}

// Expert width of the equal-active MoE: d_ff / k, rounded to the nearest multiple of 16.
std::size_t equal_active_width(std::size_t d_ff, std::size_t k) {
    return std::max<std::size_t>(16, (2 * d_ff + 16 * k) / (32 * k) * 16);  // round(d_ff / k / 16) * 16
}

// Skips (visibly, with the reason) a configuration that is not a mixture or
// whose bf16 weights exceed --moelab_max_gb. Returns true if skipped.
bool skip_moe(benchmark::State& state, std::size_t D, std::size_t E, std::size_t k, std::size_t width) {
    char why[160];
    const double bytes = 3.0 * static_cast<double>(D) * static_cast<double>(width) * static_cast<double>(E) *
                         static_cast<double>(dtype_traits(kDType).block_bytes);
    if (k > E)
        std::snprintf(why, sizeof why, "skipped: k=%zu > n_experts=%zu", k, E);
    else if (bytes > globals().max_weight_bytes)
        std::snprintf(why, sizeof why, "skipped: weights %.2f GB > --moelab_max_gb=%g", bytes / 1e9,
                      globals().max_weight_bytes / 1e9);
    else
        return false;
    state.SkipWithError(why);
    return true;
}

void moe_benchmark(benchmark::State& state, bool equal_active) {
    const auto D = static_cast<std::size_t>(state.range(0)), F = static_cast<std::size_t>(state.range(1)),
               E = static_cast<std::size_t>(state.range(2)), k = static_cast<std::size_t>(state.range(3)),
               T = static_cast<std::size_t>(state.range(4));
    const std::size_t width = equal_active ? equal_active_width(F, k) : F / E;
    if (skip_moe(state, D, E, k, width)) return;
    SyntheticRng rng(2);
    const SyntheticMoEFFN moe(D, E, k, width, kDType, rng);
    const MoEFFNWeights w = moe.weights();
    Inputs in(T, D);
    std::vector<float> y(T * D);
    MoEScratch s;
    const Context<Backend> ctx{Backend{}, *globals().pool};
    double touched = 0;
    for (auto _ : state) {
        ffn_moe(ctx, w, moe.config, in.get(), T, y.data(), s);
        for (std::size_t e = 0; e < E; ++e) touched += s.slot_begin[e + 1] > s.slot_begin[e];
    }
    const double mean_touched = touched / static_cast<double>(state.iterations());
    state.counters["experts_touched"] = mean_touched;
    state.counters["experts_expected"] = static_cast<double>(E) * (1 - std::pow(1 - static_cast<double>(k) / E, static_cast<double>(T)));
    state.counters["expert_width"] = static_cast<double>(width);
    state.counters["active_vs_dense"] = static_cast<double>(k * width) / static_cast<double>(F);
    set_counters(state, static_cast<double>(T), (6.0 * D * width * k + 2.0 * D * E) * T,
                 mean_touched * static_cast<double>(moe.expert_bytes()) + static_cast<double>(w.router.bytes()));
}
void BM_MoEFFN(benchmark::State& state) { moe_benchmark(state, true); }
void BM_MoEFFN_EqualTotal(benchmark::State& state) { moe_benchmark(state, false); }

void BM_Router(benchmark::State& state) {
    const auto D = static_cast<std::size_t>(state.range(0)), E = static_cast<std::size_t>(state.range(1)),
               k = static_cast<std::size_t>(state.range(2)), T = static_cast<std::size_t>(state.range(3));
    if (k > E) return state.SkipWithError(("skipped: k=" + std::to_string(k) + " > n_experts=" + std::to_string(E)).c_str());
    SyntheticRng rng(3);
    const SyntheticMatrix router(E, D, DType::f32, rng);
    Inputs in(T, D);
    std::vector<float> probs(T * E), weights(T * k);
    std::vector<std::uint32_t> ids(T * k);
    const MoEConfig cfg{E, k, 1, 0, true, false};
    for (auto _ : state) {
        ops::linear(Backend{}, *globals().pool, router.view(), in.get(), T, probs.data());
        route(Backend{}, probs.data(), T, cfg, ids.data(), weights.data());
        benchmark::DoNotOptimize(ids.data());
    }
    set_counters(state, static_cast<double>(T), 2.0 * D * E * T, static_cast<double>(router.view().bytes()));
}

// One decode step of a mixer at context L, at Qwen3.5-397B-A17B's layer shapes.
const SyntheticMixers& mixers() {
    static SyntheticRng rng(4);
    static const SyntheticMixers m(kDType, rng);  // built once, on first use
    return m;
}

void BM_AttentionDecode(benchmark::State& state) {
    const auto L = static_cast<std::size_t>(state.range(0));
    const SyntheticMixers& m = mixers();
    const ModelConfig& c = m.config;
    Cache cache(c, L + 1);
    const auto kv = activations(L * c.kv_dim(), 5);
    std::copy(kv.begin(), kv.end(), cache.layer(0).k.begin());
    std::copy(kv.begin(), kv.end(), cache.layer(0).v.begin());
    RopeTable angles;
    angles.compute(c.rope, L, 1);
    AttentionScratch s;
    const auto x = activations(c.n_embd, 6);
    std::vector<float> y(c.n_embd);
    const Context<Backend> ctx{Backend{}, *globals().pool};
    const AttentionWeights w = m.attention();
    for (auto _ : state) attention(ctx, w, c, cache.layer(0), angles, x.data(), 1, L, y.data(), s);
    const double weight_bytes = static_cast<double>(m.attention_bytes());
    const double kv_bytes = 2.0 * static_cast<double>((L + 1) * c.kv_dim() * sizeof(float));
    // FLOPs: the projections (2 per weight) plus q.k and p.v over the context (4 per cached element per query head group).
    const double weights = weight_bytes / static_cast<double>(dtype_traits(kDType).block_bytes);
    set_counters(state, 1, 2 * weights + 4.0 * static_cast<double>(L + 1) * static_cast<double>(c.q_dim()), weight_bytes + kv_bytes);
}

void BM_DeltaNetDecode(benchmark::State& state) {
    const SyntheticMixers& m = mixers();
    Cache cache(m.config, 1);
    DeltaNetScratch s;
    const auto x = activations(m.config.n_embd, 6);
    std::vector<float> y(m.config.n_embd);
    const Context<Backend> ctx{Backend{}, *globals().pool};
    const DeltaNetWeights w = m.deltanet();
    for (auto _ : state) gated_deltanet(ctx, w, m.config, cache.layer(1), x.data(), 1, y.data(), s);
    const double weight_bytes = static_cast<double>(m.deltanet_bytes());
    const double state_floats = static_cast<double>(cache.layer(1).ssm.size());
    // Projections (2 FLOP per weight) and ~8 FLOP per state element (decay, S k, update, S q).
    const double weights = weight_bytes / static_cast<double>(dtype_traits(kDType).block_bytes);
    set_counters(state, 1, 2 * weights + 8 * state_floats, weight_bytes + 2 * state_floats * sizeof(float));
}

// The grids described at the top of this file. ArgsProduct registers every
// combination; the benchmarks themselves skip, visibly, those that cannot run.
// One family per (d_model, d_ff) keeps each under Google Benchmark's
// 100-input warning; the names are the same either way.
void register_all() {
    const std::vector<std::int64_t> experts{8, 64, 128, 512}, ks{1, 2, 4, 8, 10}, tokens{1, 8, 64, 512};
    struct Shape {
        std::int64_t d_model, d_ff;
        bool equal_total;  // also run the equal-total MoE (the 512 x 2048 shape is there for equal-active only)
    };
    for (const Shape sh : {Shape{512, 2048, false}, Shape{1024, 4096, true}, Shape{1024, 5120, true},
                           Shape{1024, 6144, true}, Shape{2048, 4096, true}, Shape{2048, 5120, true},
                           Shape{2048, 6144, true}}) {
        benchmark::RegisterBenchmark("BM_DenseFFN", BM_DenseFFN)
            ->ArgsProduct({{sh.d_model}, {sh.d_ff}, tokens})->ArgNames({"d_model", "d_ff", "tokens"})->UseRealTime();
        benchmark::RegisterBenchmark("BM_MoEFFN", BM_MoEFFN)
            ->ArgsProduct({{sh.d_model}, {sh.d_ff}, experts, ks, tokens})
            ->ArgNames({"d_model", "d_ff", "n_experts", "k", "tokens"})->UseRealTime();
        if (sh.equal_total)
            benchmark::RegisterBenchmark("BM_MoEFFN_EqualTotal", BM_MoEFFN_EqualTotal)
                ->ArgsProduct({{sh.d_model}, {sh.d_ff}, experts, ks, tokens})
                ->ArgNames({"d_model", "d_ff", "n_experts", "k", "tokens"})->UseRealTime();
    }
    benchmark::RegisterBenchmark("BM_Router", BM_Router)
        ->ArgsProduct({{2048}, experts, ks, {1, 64}})->ArgNames({"d_model", "n_experts", "k", "tokens"})->UseRealTime();
    benchmark::RegisterBenchmark("BM_AttentionDecode", BM_AttentionDecode)
        ->ArgsProduct({{512, 2048, 8192, 32768}})->ArgNames({"context"})->UseRealTime();
    benchmark::RegisterBenchmark("BM_DeltaNetDecode", BM_DeltaNetDecode)->UseRealTime();
}

}  // namespace

int main(int argc, char** argv) {
    std::vector<char*> args(argv, argv + argc);
    // Our own flag, removed before Google Benchmark sees the rest.
    for (auto it = args.begin() + 1; it != args.end();) {
        if (std::strncmp(*it, "--moelab_max_gb=", 16) == 0) {
            globals().max_weight_bytes = std::atof(*it + 16) * 1e9;
            it = args.erase(it);
        } else {
            ++it;
        }
    }
    static char repetitions[] = "--benchmark_repetitions=3";
    initialize_with_medians(args, repetitions);
    if (benchmark::ReportUnrecognizedArguments(static_cast<int>(args.size()), args.data())) return 1;

    globals().pool = std::make_unique<ThreadPool>();
    globals().read_gbps = measure_read_bandwidth(Backend{}, *globals().pool).median;
    globals().peak_gflops = measure_peak_flops(Backend{}, *globals().pool).median;
    std::printf("bench_ffn: backend %s — %s, %zu threads; measured read bandwidth %.1f GB/s, peak %.0f GFLOP/s\n",
                Backend::name, instruction_set(Backend{}), globals().pool->size(), globals().read_gbps,
                globals().peak_gflops);
    if constexpr (kernels::HasMatvecReads<Backend>)
        std::printf("bench_ffn: matvec reads: %s (the tag's default; a Transformer tunes it, these layers do not)\n",
                    kernels::matvec_reads_name(Backend{}.matvec_reads));
    register_all();
    const std::size_t ran = benchmark::RunSpecifiedBenchmarks();
    benchmark::Shutdown();
    if (ran == 0) std::fprintf(stderr, "%s: no benchmark matched the filter\n", argv[0]);
    return ran == 0 ? 1 : 0;
}
