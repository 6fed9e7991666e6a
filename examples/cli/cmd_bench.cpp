// SPDX-License-Identifier: MIT
// moelab bench — the main job: a dense FFN and an MoE FFN side by side, built
// to equal ACTIVE parameters (expert width = d_ff / k) and, separately, to
// equal TOTAL parameters (expert width = d_ff / n_experts), at several batch
// sizes, on synthetic weights (fixed seed, nothing to download). Every speed is
// also shown as a fraction of the machine's read bandwidth and peak FLOP/s,
// measured in the same run. A second table times one decode step of a Gated
// DeltaNet layer against a full attention layer at growing context lengths.
//
//   moelab bench [--d-model 2048] [--d-ff 6144] [--experts 64] [--k 8]
//                [--batch 1,8,64,512] [--dtype bf16|f16|f32|q8_0|q4_0|q4_k|q5_k|q6_k] [--context 512,2048,8192]
//                [--min-time 0.25] [--backend B] [-t N] [--json FILE] [--skip-mixers]
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "cli/cli.hpp"
#include "moelab/layers/attention.hpp"
#include "moelab/layers/deltanet.hpp"
#include "moelab/layers/ffn_dense.hpp"
#include "moelab/layers/ffn_moe.hpp"
#include "moelab/roofline.hpp"
#include "moelab/synthetic.hpp"

namespace moelab::cli {

namespace {

std::vector<std::size_t> parse_list(const std::string& text, const std::string& what) {
    std::vector<std::size_t> out;
    std::size_t start = 0;
    while (start <= text.size()) {
        const std::size_t comma = std::min(text.find(',', start), text.size());
        const long long v = Args::parse_integer(text.substr(start, comma - start), what);
        if (v <= 0 || v > (1 << 20)) throw UsageError(what + ": values must be in [1, 2^20]");
        out.push_back(static_cast<std::size_t>(v));
        start = comma + 1;
    }
    return out;
}

// Median seconds of f(), repeated until `min_time` has passed (3 to 100 runs),
// after `warmups` untimed calls (at least one per copy of the weights the calls
// cycle through: a copy's first read pays page-table and TLB set-up, measured
// here at ~50 ms for 75 MB, which is not what a token costs).
template <class F>
double median_seconds(double min_time, std::size_t warmups, F&& f) {
    using Clock = std::chrono::steady_clock;
    for (std::size_t i = 0; i < std::max<std::size_t>(warmups, 1); ++i) f();
    std::vector<double> times;
    const auto start = Clock::now();
    while (times.size() < 3 || (std::chrono::duration<double>(Clock::now() - start).count() < min_time && times.size() < 100)) {
        const auto t0 = Clock::now();
        f();
        times.push_back(std::chrono::duration<double>(Clock::now() - t0).count());
    }
    std::sort(times.begin(), times.end());
    return times[times.size() / 2];
}

std::vector<float> random_activations(std::size_t n, std::uint64_t seed) {
    SyntheticRng rng(seed);
    std::vector<float> x(n);
    for (auto& v : x) v = static_cast<float>(rng.normal());
    return x;
}

std::string experts_column(double touched, double expected) {
    char buf[48];
    std::snprintf(buf, sizeof buf, "%.1f (%.1f)", touched, expected);
    return buf;
}

struct Ceilings {
    double bw = 0, bw_1 = 0, peak = 0, peak_1 = 0;  // GB/s, GFLOP/s
    const char* bw_pattern = "";                     // the read pattern that measured faster (roofline.hpp)
};

struct FFNRow {
    std::string comparison, layer;
    std::size_t batch = 0;
    double seconds = 0, flops = 0, bytes = 0, experts_touched = 0, experts_expected = 0;
};

nlohmann::json row_json(const FFNRow& r, const Ceilings& c) {
    const double tok_s = static_cast<double>(r.batch) / r.seconds;
    const double predicted = std::min(c.bw * 1e9 / (r.bytes / r.batch), c.peak * 1e9 / (r.flops / r.batch));
    return {{"comparison", r.comparison}, {"layer", r.layer}, {"batch", r.batch}, {"seconds", r.seconds},
            {"tokens_per_s", tok_s}, {"gflops", r.flops / r.seconds / 1e9}, {"frac_peak", r.flops / r.seconds / 1e9 / c.peak},
            {"gb_per_token", r.bytes / r.batch / 1e9}, {"gb_per_s", r.bytes / r.seconds / 1e9},
            {"frac_bw", r.bytes / r.seconds / 1e9 / c.bw}, {"flops_per_token", r.flops / r.batch},
            {"bytes_per_token", r.bytes / r.batch}, {"experts_touched", r.experts_touched},
            {"experts_expected", r.experts_expected}, {"predicted_tokens_per_s", predicted}};
}

}  // namespace

int cmd_bench(int argc, char** argv) {
    // With --model FILE, a whole model end to end (cmd_bench_model.cpp).
    for (int i = 0; i < argc; ++i)
        if (std::string(argv[i]) == "--model" || std::string(argv[i]) == "-model") return cmd_bench_model(argc, argv);
    const Args args(argc, argv, {"skip-mixers"});
    args.allow_only({"d-model", "d-ff", "experts", "k", "batch", "dtype", "activations", "context", "min-time", "backend",
                     "matvec-reads", "t", "threads", "json", "skip-mixers", "seed"});
    if (!args.positional().empty()) throw UsageError("unexpected argument '" + args.positional()[0] + "'");
    const auto D = static_cast<std::size_t>(args.integer("d-model", 2048));
    const auto F = static_cast<std::size_t>(args.integer("d-ff", 6144));
    const auto E = static_cast<std::size_t>(args.integer("experts", 64));
    const auto k = static_cast<std::size_t>(args.integer("k", 8));
    const auto batches = parse_list(args.get("batch", "1,8,64,512"), "--batch");
    const auto contexts = parse_list(args.get("context", "512,2048,8192"), "--context");
    const DType dtype = parse_weight_dtype(args.get("dtype", "bf16"));
    const double min_time = args.number("min-time", 0.25);
    const long long threads = args.integer("t", args.integer("threads", 0));
    if (D == 0 || F == 0 || E == 0 || k == 0 || k > E) throw UsageError("need d-model, d-ff, experts > 0 and 1 <= k <= experts");
    if (F % k != 0 || F % E != 0) throw UsageError("--d-ff must be divisible by --k and by --experts");
    if (D > 65536 || F > 1 << 20 || E > 4096) throw UsageError("sizes out of range");
    if (threads < 0 || threads > 1024) throw UsageError("-t must be in [0, 1024]");
    const std::uint64_t seed = static_cast<std::uint64_t>(args.integer("seed", 1));
    const ops::ActivationPrecision activations = parse_activations(args);
    // No decode loop here to tune in: auto is the tag's default (stream).
    const auto matvec_reads = parse_matvec_reads(args);

    ThreadPool pool(static_cast<std::size_t>(threads));
    nlohmann::json report;
    with_backend(args.get("backend", default_backend()), [&](auto backend) {
        using Backend = decltype(backend);
        const Backend tag = with_matvec_reads(backend, matvec_reads);
        const Context<Backend> ctx{tag, pool, activations};

        // 1. The machine's ceilings, now, on this backend.
        Ceilings ceil;
        {
            ThreadPool one(1);
            const CeilingMeasurement bw = measure_read_bandwidth(backend, pool);
            ceil.bw = bw.median;
            ceil.bw_pattern = bw.pattern;
            ceil.bw_1 = measure_read_bandwidth(backend, one).median;
            ceil.peak = measure_peak_flops(backend, pool).median;
            ceil.peak_1 = measure_peak_flops(backend, one).median;
        }
        std::printf("moelab bench: backend %s — %s, %zu threads, weights %s, %s\n", Backend::name,
                    instruction_set(backend), pool.size(), std::string(dtype_name(dtype)).c_str(),
                    activations_description(backend, activations).c_str());
        if constexpr (HasMatvecReads<Backend>)
            std::printf("matvec reads: %s (--matvec-reads stream|passes; a model's decode tunes it, this does not)\n",
                        matvec_reads_name(tag.matvec_reads));
        std::printf("machine (measured now): read bandwidth %.1f GB/s (%s; 1 thread %.1f), peak %.0f GFLOP/s (1 thread %.0f)\n",
                    ceil.bw, ceil.bw_pattern, ceil.bw_1, ceil.peak, ceil.peak_1);

        // 2. Dense vs MoE FFN.
        SyntheticRng rng(seed);
        // A layer smaller than the last-level cache would be timed partly
        // from cache (AMD's L3 is a victim cache and keeps part of a 75 MB
        // working set), giving "%bw" above 100%. In a real model each token
        // reads every layer once, so weights come from DRAM: the timed calls
        // cycle through enough copies of a layer to span kColdBytes.
        constexpr double kColdBytes = 512e6;
        auto copies_for = [&](std::size_t bytes) {
            return static_cast<std::size_t>(std::clamp(std::ceil(kColdBytes / static_cast<double>(bytes)), 1.0, 64.0));
        };
        const std::vector<SyntheticDenseFFN> dense_copies = [&] {
            SyntheticDenseFFN first(D, F, dtype, rng);
            return std::vector<SyntheticDenseFFN>(copies_for(first.bytes()), first);
        }();
        const SyntheticDenseFFN& dense = dense_copies.front();
        const std::size_t max_batch = *std::max_element(batches.begin(), batches.end());
        // Several input batches, used in turn: each repetition routes its tokens
        // differently, so MoE timings cannot come from experts left in cache by
        // the previous repetition (8 inputs x 8 of 64 experts cover them all).
        constexpr std::size_t kInputs = 8;
        const auto x = random_activations(kInputs * max_batch * D, seed + 1);
        std::size_t call = 0;
        auto next_input = [&](std::size_t B) { return x.data() + (call++ % kInputs) * B * D; };
        std::vector<float> y(max_batch * D);
        std::vector<FFNRow> rows;
        DenseFFNScratch dense_scratch;
        MoEScratch moe_scratch;

        struct Comparison {
            std::string name;
            std::size_t width;
        };
        for (const Comparison& cmp : {Comparison{"equal active", F / k}, Comparison{"equal total", F / E}}) {
            // Quantized experts need whole blocks per row (the down projection's
            // rows are `width` long): 256 weights for the K-quants.
            const std::size_t block = dtype_traits(dtype).block_elems;
            if (cmp.width % block != 0 || F % block != 0) {
                std::printf("\n%s parameters: skipped, expert width %zu or d_ff %zu is not a multiple of %s's block of %zu weights\n",
                            cmp.name.c_str(), cmp.width, F, std::string(dtype_name(dtype)).c_str(), block);
                continue;
            }
            const std::vector<SyntheticMoEFFN> moe_copies = [&] {
                SyntheticMoEFFN first(D, E, k, cmp.width, dtype, rng);
                return std::vector<SyntheticMoEFFN>(copies_for(first.expert_bytes() * E), first);
            }();
            const SyntheticMoEFFN& moe = moe_copies.front();
            std::vector<MoEFFNWeights> moe_ws;
            for (const auto& c : moe_copies) moe_ws.push_back(c.weights());
            std::vector<DenseFFNWeights> dense_ws;
            for (const auto& c : dense_copies) dense_ws.push_back(c.weights());
            std::size_t dense_call = 0, moe_call = 0;
            std::printf("\n%s parameters: dense d_ff %zu (%.1f M params) vs MoE %zu experts x %zu, top-%zu "
                        "(%.1f M stored, %.1f M active per token)\n",
                        cmp.name.c_str(), F, 3.0 * D * F / 1e6, E, cmp.width, k,
                        (3.0 * D * cmp.width * E + D * E) / 1e6, (3.0 * D * cmp.width * k + D * E) / 1e6);
            std::printf("  %-5s %6s %11s %9s %6s %9s %8s %6s %11s %12s\n", "layer", "batch", "tokens/s", "GFLOP/s",
                        "%peak", "GB/token", "GB/s", "%bw", "experts", "predicted/s");
            for (std::size_t B : batches) {
                FFNRow d{cmp.name, "dense", B};
                d.seconds = median_seconds(min_time, dense_ws.size(), [&] {
                    ffn_dense(ctx, dense_ws[dense_call++ % dense_ws.size()], next_input(B), B, y.data(), dense_scratch);
                });
                d.flops = 6.0 * D * F * B;
                d.bytes = static_cast<double>(dense.bytes());

                FFNRow m{cmp.name, "moe", B};
                double touched_sum = 0, calls = 0;
                m.seconds = median_seconds(min_time, std::max(moe_ws.size(), kInputs), [&] {
                    ffn_moe(ctx, moe_ws[moe_call++ % moe_ws.size()], moe.config, next_input(B), B, y.data(), moe_scratch);
                    for (std::size_t e = 0; e < E; ++e) touched_sum += moe_scratch.slot_begin[e + 1] > moe_scratch.slot_begin[e];
                    calls += 1;
                });
                m.experts_touched = touched_sum / calls;  // mean over the calls
                const double touched = m.experts_touched;
                m.experts_expected = static_cast<double>(E) * (1.0 - std::pow(1.0 - static_cast<double>(k) / E, static_cast<double>(B)));
                m.flops = (6.0 * D * cmp.width * k + 2.0 * D * E) * B;
                m.bytes = touched * static_cast<double>(moe.expert_bytes()) + static_cast<double>(moe_ws.front().router.bytes());
                for (const FFNRow* r : {&d, &m}) {
                    const nlohmann::json j = row_json(*r, ceil);
                    std::printf("  %-5s %6zu %11.1f %9.1f %5.1f%% %9.4f %8.1f %5.1f%% %11s %12.1f\n", r->layer.c_str(), B,
                                j["tokens_per_s"].get<double>(), j["gflops"].get<double>(), 100 * j["frac_peak"].get<double>(),
                                j["gb_per_token"].get<double>(), j["gb_per_s"].get<double>(), 100 * j["frac_bw"].get<double>(),
                                r->layer == "moe" ? experts_column(touched, r->experts_expected).c_str() : "-",
                                j["predicted_tokens_per_s"].get<double>());
                    report["ffn"].push_back(j);
                }
            }
        }
        std::printf("  (timed calls cycle through copies of each layer spanning >= %.0f MB, so weights come from DRAM as in a model;\n",
                    kColdBytes / 1e6);
        std::printf("   experts: touched per batch, mean over the timed calls, and (expected) E(1 - (1 - k/E)^B) under uniform routing;\n"
                    "   predicted/s: min(bandwidth / bytes per token, peak / FLOPs per token))\n");

        // 3. One decode step of a mixer at growing context: full attention reads
        //    its whole KV cache, Gated DeltaNet a fixed state (docs/qwen35.md).
        if (!args.has("skip-mixers")) {
            const SyntheticMixers mixers(dtype, rng);
            const ModelConfig& c = mixers.config;
            const DeltaNetConfig& dn = c.deltanet;
            const AttentionWeights aw = mixers.attention();
            const DeltaNetWeights nw = mixers.deltanet();
            const std::size_t max_ctx = *std::max_element(contexts.begin(), contexts.end()) + 1;
            Cache cache(c, max_ctx);
            const auto kv = random_activations(max_ctx * c.kv_dim(), seed + 2);
            std::copy(kv.begin(), kv.end(), cache.layer(0).k.begin());
            std::copy(kv.begin(), kv.end(), cache.layer(0).v.begin());
            const auto xm = random_activations(c.n_embd, seed + 3);
            std::vector<float> ym(c.n_embd);
            AttentionScratch as;
            DeltaNetScratch ds;
            RopeTable angles;
            const double attn_weights_mb = static_cast<double>(mixers.attention_bytes()) / 1e6;
            const double dn_weights_mb = static_cast<double>(mixers.deltanet_bytes()) / 1e6;
            std::printf("\nmixers, one decode step at Qwen3.5-397B-A17B's layer shapes (d_model %zu): full attention "
                        "(%zu q / %zu kv heads x %zu, %.0f MB weights) vs Gated DeltaNet (%zu k / %zu v heads x %zu, %.0f MB weights)\n",
                        c.n_embd, c.n_head, c.n_head_kv, c.head_dim, attn_weights_mb, dn.n_key_heads, dn.n_value_heads,
                        dn.key_head_dim, dn_weights_mb);
            std::printf("  %8s %16s %14s %16s %14s %8s\n", "context", "attention us", "KV read MB", "DeltaNet us", "state MB", "ratio");
            const double state_mb = static_cast<double>(cache.layer(1).ssm.size() + cache.layer(1).conv.size()) * 4 / 1e6;
            for (std::size_t L : contexts) {
                angles.compute(c.rope, L, 1);
                const double t_attn = median_seconds(min_time, 1, [&] { attention(ctx, aw, c, cache.layer(0), angles, xm.data(), 1, L, ym.data(), as); });
                const double t_dn = median_seconds(min_time, 1, [&] { gated_deltanet(ctx, nw, c, cache.layer(1), xm.data(), 1, ym.data(), ds); });
                const double kv_mb = 2.0 * static_cast<double>((L + 1) * c.kv_dim()) * 4 / 1e6;
                std::printf("  %8zu %16.1f %14.2f %16.1f %14.2f %8.2f\n", L, t_attn * 1e6, kv_mb, t_dn * 1e6, state_mb, t_attn / t_dn);
                report["mixers"].push_back({{"context", L}, {"attention_seconds", t_attn}, {"deltanet_seconds", t_dn},
                                            {"kv_cache_mb", kv_mb}, {"deltanet_state_mb", state_mb},
                                            {"attention_weights_mb", attn_weights_mb}, {"deltanet_weights_mb", dn_weights_mb}});
            }
        }

        report["machine"] = {{"backend", Backend::name}, {"isa", instruction_set(backend)}, {"threads", pool.size()},
                             {"read_gb_per_s", ceil.bw}, {"read_pattern", ceil.bw_pattern}, {"read_gb_per_s_1thread", ceil.bw_1},
                             {"peak_gflops", ceil.peak}, {"peak_gflops_1thread", ceil.peak_1}};
        report["config"] = {{"d_model", D}, {"d_ff", F}, {"experts", E}, {"k", k}, {"dtype", std::string(dtype_name(dtype))},
                            {"activations", activations_description(backend, activations)},
                            {"batches", batches}, {"contexts", contexts}, {"seed", seed}};
        if constexpr (HasMatvecReads<Backend>) report["config"]["matvec_reads"] = matvec_reads_name(tag.matvec_reads);
    });
    if (args.has("json")) {
        std::ofstream f(args.get("json"));
        if (!f) throw Error(args.get("json"), "cannot open for writing");
        f << report.dump(2) << "\n";
        std::printf("\nresults written to %s\n", args.get("json").c_str());
    }
    return 0;
}

}  // namespace moelab::cli
