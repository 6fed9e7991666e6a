// SPDX-License-Identifier: MIT
// moelab bench --model FILE — a whole model end to end, measured the way
// llama.cpp's llama-bench measures it, so the two can be put side by side on
// the same GGUF file (docs/performance.md):
//
//   decode (tg N):  N tokens, one at a time through the KV cache, after an
//                   untimed prompt of --depth tokens (default 4; llama-bench's
//                   -d); tokens/s = N / seconds.
//   prefill (pp P): P prompt tokens in one forward() from an empty cache (logits
//                   of the last position only, as llama-bench); tokens/s = P / seconds.
//
//   moelab bench --model FILE [--prefill 64,512] [--decode 32] [--depth 4] [--reps 3]
//                [--backend B] [--activations f32|int8|bf16] [--int8-layout interleaved|file]
//                [--matvec-reads auto|stream|passes] [-t N] [--json FILE]
//
// Each test runs once untimed (page faults, first touch of the KV cache) and
// then --reps times; the median is reported, by the wall clock (what
// llama-bench reports) and by CPU time per thread (robust when other
// processes time-share the cores; equal to the wall clock on an idle machine).
// Every rate is set against the machine's ceilings, measured in the same run:
//   decode  GB/s = weight bytes read per decoded token (model/cost.hpp) x tokens/s,
//           as a fraction of the measured read bandwidth (roofline.hpp); the KV
//           cache it also reads is not counted (printed separately at a depth);
//   prefill GFLOP/s = (2 x active matrix parameters per token + attention) x tokens/s
//           (forward_flops, model/cost.hpp), as a fraction of the measured peak FLOP/s.
// The ceilings are measured before the tests (the ratios use these) and again
// after them; a move of more than 15% is flagged in the output. Decode is also
// set against a short read probe taken just before each of its repetitions
// (the "paired" fraction: the median over repetitions).
// bench/bench_model.cpp runs the same two tests as Google Benchmark suites.
// The weights' dtype is whatever the file stores; nothing here depends on it.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <ctime>
#include <fstream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "cli/cli.hpp"
#include "cli/transformers.hpp"
#include "moelab/model/cost.hpp"
#include "moelab/roofline.hpp"

namespace moelab::cli {

namespace {

struct Timing {
    double wall = 0, cpu = 0;  // seconds: median wall clock, median process CPU time / threads
};

// Runs f() once untimed, then `reps` times; medians of wall and CPU time.
template <class F>
Timing median_timing(int reps, std::size_t threads, F&& f) {
    f();
    std::vector<double> wall, cpu;
    for (int r = 0; r < reps; ++r) {
        const std::clock_t c0 = std::clock();
        const auto t0 = std::chrono::steady_clock::now();
        f();
        wall.push_back(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
        cpu.push_back(static_cast<double>(std::clock() - c0) / CLOCKS_PER_SEC / static_cast<double>(threads));
    }
    return {detail::median_of(wall), detail::median_of(cpu)};
}

// How much of the mapped weights file is resident, and how much of that the
// kernel maps with 2 MiB pages (FilePmdMapped in /proc/self/smaps), over the
// mappings that overlap [lo, hi). Both engines of a side-by-side read the
// same page cache: a file cached in 2 MiB folios (read fresh from disk) ran
// MoE bf16 prefill 1.1-1.5x and llama.cpp's dense bf16 decode 1.6x faster
// than one cached in 4 KiB pages (written recently), so a benchmark says
// which it had (docs/performance.md). Zeros where smaps is not available.
struct FilePages {
    double resident_mb = 0, huge_mb = 0;
};
FilePages file_pages(const std::byte* lo, const std::byte* hi) {
    FilePages out;
    std::ifstream smaps("/proc/self/smaps");
    bool inside = false;
    for (std::string line; std::getline(smaps, line);) {
        unsigned long long begin = 0, end = 0;
        if (std::sscanf(line.c_str(), "%llx-%llx ", &begin, &end) == 2 && line.find(':') > line.find(' ')) {
            inside = begin < reinterpret_cast<std::uintptr_t>(hi) && end > reinterpret_cast<std::uintptr_t>(lo);
            continue;
        }
        unsigned long long kb = 0;
        if (!inside) continue;
        if (std::sscanf(line.c_str(), "Rss: %llu kB", &kb) == 1) out.resident_mb += static_cast<double>(kb) / 1024;
        if (std::sscanf(line.c_str(), "FilePmdMapped: %llu kB", &kb) == 1) out.huge_mb += static_cast<double>(kb) / 1024;
    }
    return out;
}

std::vector<std::size_t> parse_sizes(const std::string& text, const std::string& what) {
    std::vector<std::size_t> out;
    std::size_t start = 0;
    while (start <= text.size()) {
        const std::size_t comma = std::min(text.find(',', start), text.size());
        const long long v = Args::parse_integer(text.substr(start, comma - start), what);
        if (v <= 0 || v > 65536) throw UsageError(what + ": values must be in [1, 65536]");
        out.push_back(static_cast<std::size_t>(v));
        start = comma + 1;
    }
    return out;
}

}  // namespace

int cmd_bench_model(int argc, char** argv) {
    const Args args(argc, argv, {});
    args.allow_only({"model", "prefill", "decode", "depth", "reps", "backend", "activations", "int8-layout", "matvec-reads",
                     "t", "threads", "json"});
    if (!args.positional().empty()) throw UsageError("unexpected argument '" + args.positional()[0] + "'");
    const std::string path = args.required("model");
    const auto prefills = parse_sizes(args.get("prefill", "64,512"), "--prefill");
    const auto n_decode = static_cast<std::size_t>(args.integer("decode", 32));
    constexpr long long kDefaultDepth = 4;  // untimed tokens before decoding starts, unless --depth says
    const long long depth_arg = args.integer("depth", kDefaultDepth);
    const long long reps = args.integer("reps", 3);
    const long long threads = args.integer("t", args.integer("threads", 0));
    if (n_decode == 0 || n_decode > 65536) throw UsageError("--decode must be in [1, 65536]");
    if (depth_arg < 1 || depth_arg > 65536) throw UsageError("--depth must be in [1, 65536]");
    if (reps < 1 || reps > 1000) throw UsageError("--reps must be in [1, 1000]");
    if (threads < 0 || threads > 1024) throw UsageError("-t must be in [0, 1024]");
    const ops::ActivationPrecision activations = parse_activations(args);
    const bool interleave = parse_int8_interleave(args);
    const auto matvec_reads = parse_matvec_reads(args);

    Model model = Model::load(path);
    const ModelConfig& c = model.config();
    const ModelCost cost = model_cost(c, model.weights());
    volatile unsigned checksum = touch_weight_pages(model.weights());
    (void)checksum;
    const std::byte *lo = nullptr, *hi = nullptr;  // the matrices' span of the mapped file
    for_each_matrix(model.weights(), [&](const WeightMatrix& m) {
        if (m.empty()) return;
        if (!lo || m.data < lo) lo = m.data;
        if (!hi || m.data + m.bytes() > hi) hi = m.data + m.bytes();
    });
    const FilePages pages = lo ? file_pages(lo, hi) : FilePages{};  // before any copy releases file pages
    const auto depth = static_cast<std::size_t>(depth_arg);
    const bool default_depth = depth_arg == kDefaultDepth;
    const std::size_t max_prefill = *std::max_element(prefills.begin(), prefills.end());
    const std::size_t max_ctx = std::max(max_prefill, depth + n_decode);
    ThreadPool pool(static_cast<std::size_t>(threads));
    nlohmann::json report;

    with_backend(args.get("backend", default_backend()), [&](auto backend) {
        using Backend = decltype(backend);
        const std::size_t T = pool.size();
        const std::size_t interleaved_bytes = prepare_model(backend, model, activations, interleave, pool);
        const CeilingMeasurement bw = measure_read_bandwidth(backend, pool);
        const CeilingMeasurement peak = measure_peak_flops(backend, pool);
        std::printf("moelab bench --model %s\n", path.c_str());
        std::printf("  backend %s — %s, %zu threads; weights %s, %.2f GB stored, %.3f GB read per decoded token\n",
                    Backend::name, instruction_set(backend), T, std::string(dtype_name(model.weights().token_embd.dtype)).c_str(),
                    static_cast<double>(cost.total_bytes) / 1e9, static_cast<double>(cost.bytes_per_token) / 1e9);
        std::printf("  products: %s\n", activations_description(backend, activations, interleave).c_str());
        if (pages.resident_mb > 0)
            std::printf("  weights file: %.0f MB resident, %.0f MB of it on 2 MiB pages (the page cache's folios; docs/performance.md)\n",
                        pages.resident_mb, pages.huge_mb);
        if (interleaved_bytes > 0)
            std::printf("  interleaved copies: %.3f GB (GB/s below counts the file's bytes: Q4_K 144 per 256 weights)\n",
                        static_cast<double>(interleaved_bytes) / 1e9);
        std::printf("  machine (measured now; wall / cpu): read bandwidth %.1f / %.1f GB/s (%s), peak %.0f / %.0f GFLOP/s\n",
                    bw.median, bw.median_cpu, bw.pattern, peak.median, peak.median_cpu);
        std::printf("  %-8s %10s %10s %9s %8s %10s %8s\n", "test", "tok/s", "tok/s cpu", "GB/s cpu", "%bw", "GFLOP/s", "%peak");

        Transformer<Backend> transformer(model, pool, max_ctx);
        transformer.set_activation_precision(activations);
        apply_matvec_reads(matvec_reads, transformer);
        std::vector<float> logits(c.n_vocab);
        // Token ids: a fixed, valid pseudo-random sequence (the weights are what is timed, not the text).
        std::vector<std::int32_t> tokens(max_ctx);
        for (std::size_t i = 0; i < tokens.size(); ++i) tokens[i] = static_cast<std::int32_t>((i * 7919 + 13) % c.n_vocab);

        auto emit = [&](const std::string& test, std::size_t n, const Timing& t, bool decode, double flops) {
            const double tok_s = static_cast<double>(n) / t.wall, tok_s_cpu = static_cast<double>(n) / t.cpu;
            nlohmann::json j{{"test", test}, {"tokens", n}, {"seconds", t.wall}, {"cpu_seconds", t.cpu},
                             {"tokens_per_s", tok_s}, {"tokens_per_s_cpu", tok_s_cpu}};
            if (decode) {
                const double gbs = static_cast<double>(cost.bytes_per_token) * tok_s_cpu / 1e9;
                j["gb_per_s_cpu"] = gbs;
                j["frac_bw_cpu"] = gbs / bw.median_cpu;
                j["gb_per_s"] = static_cast<double>(cost.bytes_per_token) * tok_s / 1e9;
                j["frac_bw"] = j["gb_per_s"].get<double>() / bw.median;
                std::printf("  %-8s %10.2f %10.2f %9.1f %7.1f%% %10s %8s\n", test.c_str(), tok_s, tok_s_cpu, gbs,
                            100 * gbs / bw.median_cpu, "-", "-");
            } else {
                const double gflops = flops / t.cpu / 1e9;
                j["gflops_cpu"] = gflops;
                j["frac_peak_cpu"] = gflops / peak.median_cpu;
                j["gflops"] = flops / t.wall / 1e9;
                j["frac_peak"] = j["gflops"].get<double>() / peak.median;
                std::printf("  %-8s %10.2f %10.2f %9s %8s %10.1f %7.1f%%\n", test.c_str(), tok_s, tok_s_cpu, "-", "-",
                            gflops, 100 * gflops / peak.median_cpu);
            }
            report["tests"].push_back(j);
        };

        for (std::size_t P : prefills) {
            const Timing t = median_timing(static_cast<int>(reps), T, [&] {
                transformer.reset();
                transformer.forward(std::span(tokens.data(), P), logits.data(), /*all_logits=*/false);
            });
            emit("pp" + std::to_string(P), P, t, false, forward_flops(c, model.weights(), cost, P));
        }
        {
            // The untimed prompt is re-run inside each repetition but outside its timing.
            // Before each timed repetition a short read probe (256 MiB, 3 rounds)
            // gives that repetition its own ceiling: on this shared machine the
            // probe moves by tens of percent within a minute, so a decode rate
            // set against a probe seconds away says more than against one taken
            // before the prefill tests (docs/performance.md).
            std::vector<double> wall, cpu, paired, probes;
            for (long long r = 0; r <= reps; ++r) {
                const double probe = r == 0 ? 0.0 : measure_read_bandwidth(backend, pool, std::size_t{256} << 20, 3).median_cpu;
                transformer.reset();
                transformer.forward(std::span(tokens.data(), depth), logits.data(), false);
                const std::clock_t c0 = std::clock();
                const auto t0 = std::chrono::steady_clock::now();
                for (std::size_t i = 0; i < n_decode; ++i)
                    transformer.forward(std::span(tokens.data() + depth + i, 1), logits.data());
                if (r == 0) continue;  // warm-up
                wall.push_back(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
                cpu.push_back(static_cast<double>(std::clock() - c0) / CLOCKS_PER_SEC / static_cast<double>(T));
                paired.push_back(static_cast<double>(cost.bytes_per_token * n_decode) / cpu.back() / 1e9 / probe);
                probes.push_back(probe);
            }
            // As llama-bench names it ("tg32 @ d1024"), without spaces; the default depth is plain "tg32".
            const std::string test = "tg" + std::to_string(n_decode) + (default_depth ? "" : "@d" + std::to_string(depth));
            emit(test, n_decode, {detail::median_of(wall), detail::median_of(cpu)}, true, 0);
            std::string each;
            for (double f : paired) each += (each.empty() ? "" : ", ") + std::to_string(static_cast<int>(std::lround(100 * f))) + "%";
            std::printf("  %-8s against a read probe just before each repetition: median %.1f%% of bw (%s)\n", test.c_str(),
                        100 * detail::median_of(paired), each.c_str());
            report["tests"].back()["frac_bw_cpu_paired"] = detail::median_of(paired);
            report["tests"].back()["frac_bw_cpu_each_paired"] = paired;
            report["tests"].back()["read_gb_per_s_cpu_each_paired"] = probes;
            // The KV cache each decoded token reads, at the run's mean depth:
            // not in GB/s above (weights only), but at a long depth it is not small.
            const double kv_mb = static_cast<double>(cost.kv_bytes_per_token) *
                                 (static_cast<double>(depth) + 0.5 * static_cast<double>(n_decode)) / 1e6;
            // The decode tuning ran in the first decode steps (the untimed
            // repetition's, or pp1's): every timed repetition used its winner.
            std::printf("  %-8s matvec reads: %s\n", test.c_str(), transformer.decode_tuning().describe().c_str());
            report["tests"].back()["matvec_reads"] = transformer.decode_tuning().describe();
            report["tests"].back()["depth"] = depth;
            report["tests"].back()["kv_mb_per_token"] = kv_mb;
            if (!default_depth)
                std::printf("  %-8s KV cache read per decoded token at the mean depth: %.1f MB (%.0f%% of the weights' bytes; not in GB/s)\n",
                            test.c_str(), kv_mb, 100 * kv_mb * 1e6 / static_cast<double>(cost.bytes_per_token));
        }
        // The ceilings again: on a shared machine they move within a minute
        // (the read probe gave 30 and 44 GB/s in consecutive runs here), and a
        // ratio is only as good as the ceiling it divides by.
        const CeilingMeasurement bw_after = measure_read_bandwidth(backend, pool);
        const CeilingMeasurement peak_after = measure_peak_flops(backend, pool);
        const double bw_moved = bw_after.median_cpu / bw.median_cpu - 1, peak_moved = peak_after.median_cpu / peak.median_cpu - 1;
        std::printf("  machine after the tests: read bandwidth %.1f / %.1f GB/s (%+.0f%%), peak %.0f / %.0f GFLOP/s (%+.0f%%)%s\n",
                    bw_after.median, bw_after.median_cpu, 100 * bw_moved, peak_after.median, peak_after.median_cpu,
                    100 * peak_moved,
                    std::abs(bw_moved) > 0.15 || std::abs(peak_moved) > 0.15 ? ": the ceilings moved, so %bw and %peak are uncertain by as much" : "");
        report["machine"] = {{"backend", Backend::name}, {"isa", instruction_set(backend)}, {"threads", T},
                             {"activations", activations_description(backend, activations, interleave)},
                             {"read_gb_per_s", bw.median}, {"read_gb_per_s_cpu", bw.median_cpu}, {"read_pattern", bw.pattern},
                             {"peak_gflops", peak.median}, {"peak_gflops_cpu", peak.median_cpu},
                             {"read_gb_per_s_after", bw_after.median}, {"read_gb_per_s_cpu_after", bw_after.median_cpu},
                             {"peak_gflops_after", peak_after.median}, {"peak_gflops_cpu_after", peak_after.median_cpu},
                             {"file_resident_mb", pages.resident_mb}, {"file_huge_page_mb", pages.huge_mb}};
        report["model"] = {{"path", path}, {"total_bytes", cost.total_bytes}, {"bytes_per_token", cost.bytes_per_token},
                           {"active_params", cost.active_params}, {"total_params", cost.total_params}};
    });
    std::printf("  (tok/s: median wall clock, as llama-bench; cpu: per CPU second of each thread. %%bw and %%peak use cpu rates.)\n");
    if (args.has("json")) {
        std::ofstream f(args.get("json"));
        if (!f) throw Error(args.get("json"), "cannot open for writing");
        f << report.dump(2) << "\n";
    }
    return 0;
}

}  // namespace moelab::cli
