// SPDX-License-Identifier: MIT
// bench_kernels — the weight-reading kernels of every backend against the
// machine's measured ceilings.
//
// Before any benchmark runs, main() measures (moelab/roofline.hpp):
//   * streaming read bandwidth over 1 GiB (DRAM), 1 thread and all threads;
//   * peak FLOP/s from each SIMD backend's fma_peak_probe, 1 thread and all;
// and prints them with each backend's instruction set. The benchmarks are
// single-threaded, so their fractions use the 1-thread ceilings (the best
// over the SIMD backends' probes):
//   frac_bw   = weight bytes read per second / read bandwidth   (decode: matvec)
//   frac_peak = FLOP per second / peak FLOP/s                    (prefill: matmul)
// Shapes: matvec 2048x2048 (16 MiB in f32: fits a 32 MiB L3, so frac_bw may
// exceed 1), 2048x6144 and 8192x8192 (256 MiB: DRAM); matmul 2048x2048 at 64
// and 512 tokens (scalar: 64 only); quantized matvec (q8_0, q4_0, q4_k, q5_k,
// q6_k) at 4096x4096 and 8192x8192, bytes counted as block bytes, in the exact
// f32-activation kernels and (matvec_int8/...) the opt-in int8-activation ones
// where a backend has them. Defaults: --benchmark_repetitions=5
// --benchmark_report_aggregates_only=true, so medians are reported; a summary
// table (markdown) with fractions and backend ratios closes the run.
#include <benchmark/benchmark.h>

#include "bench_args.hpp"

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <ctime>
#include <map>
#include <utility>
#include <string>
#include <string_view>
#include <vector>

#include "moelab/kernels/scalar.hpp"
#if MOELAB_HAVE_HIGHWAY
#include "moelab/kernels/highway.hpp"
#endif
#if MOELAB_HAVE_XSIMD
#include "moelab/kernels/xsimd.hpp"
#endif
#include "moelab/ops/linear.hpp"
#include "moelab/quant/bf16_activations.hpp"
#include "moelab/quant/q8_activations.hpp"
#include "moelab/quant/quant.hpp"
#include "moelab/roofline.hpp"
#include "moelab/tensor.hpp"
#include "moelab/thread_pool.hpp"

namespace {

using namespace moelab;

struct Ceilings {
    double read_bytes_per_s = 0;  // 1 thread
    double flop_per_s = 0;        // 1 thread
};

// Weights start on a 64-byte boundary, as the models' tensors do (their GGUF
// offsets are multiples of 64 for these shapes). A plain std::vector of this
// size starts 16 bytes past one, every 64-byte load then spans two cache
// lines, and two threads read about 40% less (docs/performance.md).
template <class T>
using Aligned = std::vector<T, AlignedAllocator<T>>;

// Cheap deterministic fill in [-1, 1) (the values do not change the speed).
template <class W>
Aligned<W> filled(std::size_t n, std::uint32_t seed) {
    Aligned<W> v(n);
    std::uint32_t s = seed;
    for (auto& e : v) {
        s = s * 1664525u + 1013904223u;
        const float f = static_cast<float>(s >> 8) / static_cast<float>(1u << 23) - 1.0f;
        if constexpr (std::is_same_v<W, float>) e = f;
        else if constexpr (std::is_same_v<W, f16>) e = f32_to_f16(f);
        else e = f32_to_bf16(f);
    }
    return v;
}

// One weight buffer per (dtype, shape), shared by all backends: the same
// physical pages for everyone. (Separate allocations measured up to 25% apart
// on DRAM-sized matrices for identical kernels, from page placement alone.)
template <class W>
const Aligned<W>& shared_weights(std::size_t rows, std::size_t cols) {
    static std::map<std::pair<std::size_t, std::size_t>, Aligned<W>> cache;  // bench-local
    auto [it, inserted] = cache.try_emplace({rows, cols});
    if (inserted) it->second = filled<W>(rows * cols, 1);
    return it->second;
}

template <class W>
const char* dtype_label() {
    if constexpr (std::is_same_v<W, float>) return "f32";
    else if constexpr (std::is_same_v<W, f16>) return "f16";
    else return "bf16";
}

// Runs body() in the benchmark loop and sets the counters. Like Google
// Benchmark's own rates, everything is per CPU second (std::clock), so time
// the process spent descheduled on a shared machine does not count; the
// ceilings are measured the same way (CeilingMeasurement::median_cpu). The
// fractions are plain numbers (rate counters would print them "per second").
template <class Body>
void run_and_count(benchmark::State& state, double weight_bytes, double flop, const Ceilings& c, Body&& body) {
    const std::clock_t start = std::clock();
    for (auto _ : state) body();
    const double cpu_seconds = static_cast<double>(std::clock() - start) / CLOCKS_PER_SEC;
    const double n = static_cast<double>(state.iterations());
    state.SetBytesProcessed(static_cast<std::int64_t>(weight_bytes * n));
    state.counters["FLOP/s"] = benchmark::Counter(flop * n, benchmark::Counter::kIsRate);
    state.counters["frac_bw"] = weight_bytes * n / cpu_seconds / c.read_bytes_per_s;
    state.counters["frac_peak"] = flop * n / cpu_seconds / c.flop_per_s;
}

template <class B, class W>
void register_matvec(std::size_t rows, std::size_t cols, const Ceilings& c) {
    const std::string name = std::string("matvec/") + B::name + "/" + dtype_label<W>() + "/" +
                             std::to_string(rows) + "x" + std::to_string(cols);
    benchmark::RegisterBenchmark(name.c_str(), [rows, cols, c](benchmark::State& state) {
        const auto& w = shared_weights<W>(rows, cols);
        const auto x = filled<float>(cols, 2);
        std::vector<float> y(rows);
        run_and_count(state, static_cast<double>(rows * cols * sizeof(W)), 2.0 * rows * cols, c, [&] {
            kernels::matvec(B{}, w.data(), rows, cols, x.data(), y.data());
            benchmark::DoNotOptimize(y.data());
            benchmark::ClobberMemory();
        });
    })->Unit(benchmark::kMicrosecond);
}

template <class B, class W>
void register_matmul(std::size_t rows, std::size_t cols, std::size_t tokens, const Ceilings& c) {
    const std::string name = std::string("matmul/") + B::name + "/" + dtype_label<W>() + "/" +
                             std::to_string(rows) + "x" + std::to_string(cols) + "/tokens:" + std::to_string(tokens);
    benchmark::RegisterBenchmark(name.c_str(), [rows, cols, tokens, c](benchmark::State& state) {
        const auto& w = shared_weights<W>(rows, cols);
        const auto x = filled<float>(tokens * cols, 4);
        std::vector<float> y(tokens * rows);
        run_and_count(state, static_cast<double>(rows * cols * sizeof(W)), 2.0 * rows * cols * tokens, c, [&] {
            kernels::matmul(B{}, w.data(), rows, cols, x.data(), tokens, y.data(), rows);
            benchmark::DoNotOptimize(y.data());
            benchmark::ClobberMemory();
        });
    })->Unit(benchmark::kMillisecond);
}

// Quantized weights (GGUF blocks, fused dequantise-and-dot kernels). 16
// distinct rows quantized from the same fill, then repeated: the values do
// not change the speed, and quantizing 64M weights would cost seconds.
template <class Block>
const Aligned<Block>& shared_quant_weights(std::size_t rows, std::size_t cols) {
    static std::map<std::pair<std::size_t, std::size_t>, Aligned<Block>> cache;  // bench-local
    auto [it, inserted] = cache.try_emplace({rows, cols});
    if (inserted) {
        constexpr std::size_t kDistinct = 16;
        const std::size_t blocks_per_row = cols / Block::kWeights;
        const auto values = filled<float>(kDistinct * cols, 1);
        std::vector<Block> distinct(kDistinct * blocks_per_row);
        quantize_row(Block::kDType, values.data(), kDistinct * cols, reinterpret_cast<std::byte*>(distinct.data()));
        it->second.resize(rows * blocks_per_row);
        for (std::size_t r = 0; r < rows; ++r)
            std::copy_n(distinct.begin() + static_cast<std::ptrdiff_t>((r % kDistinct) * blocks_per_row), blocks_per_row,
                        it->second.begin() + static_cast<std::ptrdiff_t>(r * blocks_per_row));
    }
    return it->second;
}

// matvec over quantized rows; bytes are block bytes (scales included), the
// speed that decode is bound by: weight GB/s = rows x row_bytes / time.
template <class B, class Block>
void register_quant_matvec(std::size_t rows, std::size_t cols, const Ceilings& c) {
    const std::string name = std::string("matvec/") + B::name + "/" + std::string(dtype_name(Block::kDType)) + "/" +
                             std::to_string(rows) + "x" + std::to_string(cols);
    benchmark::RegisterBenchmark(name.c_str(), [rows, cols, c](benchmark::State& state) {
        const auto& w = shared_quant_weights<Block>(rows, cols);
        const auto x = filled<float>(cols, 2);
        std::vector<float> y(rows);
        run_and_count(state, static_cast<double>(rows * row_bytes(Block::kDType, cols)), 2.0 * rows * cols, c, [&] {
            kernels::matvec(B{}, w.data(), rows, cols, x.data(), y.data());
            benchmark::DoNotOptimize(y.data());
            benchmark::ClobberMemory();
        });
    })->Unit(benchmark::kMicrosecond);
}

// The same product with the activations rounded to 8 bits (the opt-in int8
// mode, quant/q8_activations.hpp), for backends that have it. The rounding of
// x is inside the timed call, as in ops::linear; bytes and FLOPs as above.
template <class B, class Block>
void register_quant_matvec_int8(std::size_t rows, std::size_t cols, const Ceilings& c) {
    if constexpr (ops::has_int8_product<B, Block>) {
        const std::string name = std::string("matvec_int8/") + B::name + "/" + std::string(dtype_name(Block::kDType)) +
                                 "/" + std::to_string(rows) + "x" + std::to_string(cols);
        benchmark::RegisterBenchmark(name.c_str(), [rows, cols, c](benchmark::State& state) {
            const auto& w = shared_quant_weights<Block>(rows, cols);
            const auto x = filled<float>(cols, 2);
            Q8Activations xq;
            std::vector<float> y(rows);
            run_and_count(state, static_cast<double>(rows * row_bytes(Block::kDType, cols)), 2.0 * rows * cols, c, [&] {
                quantize_activations(x.data(), 1, cols, xq);
                kernels::matvec(B{}, w.data(), rows, cols, xq.rows()[0], y.data());
                benchmark::DoNotOptimize(y.data());
                benchmark::ClobberMemory();
            });
        })->Unit(benchmark::kMicrosecond);
    }
}

// Quantized matvec: 4096x4096 (q8_0 17.8 MB, q4_k 9.4 MB: inside a 32 MiB L3)
// and 8192x8192 (q8_0 71 MB, q4_k 38 MB, q6_k 55 MB: DRAM), every backend
// back to back per (format, shape).
template <class... Backends>
void register_quant(const Ceilings& c) {
    auto per_format = [&]<class Block>(Block) {
        for (auto [rows, cols] : {std::pair<std::size_t, std::size_t>{4096, 4096}, {8192, 8192}})
            ((register_quant_matvec<Backends, Block>(rows, cols, c),
              register_quant_matvec_int8<Backends, Block>(rows, cols, c)), ...);
    };
    per_format(block_q8_0{});
    per_format(block_q4_0{});
    per_format(block_q4_k{});
    per_format(block_q5_k{});
    per_format(block_q6_k{});
}

// Every (dtype, shape) runs all backends back to back, so that the ratios
// between backends come from measurements minutes apart at most (the machine
// is shared). Scalar skips matmul at 512 tokens (6 s per call for f16).
template <class... Backends>
void register_all(const Ceilings& c) {
    auto for_each_dtype = [&](auto f) {
        f(static_cast<float*>(nullptr));
        f(static_cast<f16*>(nullptr));
        f(static_cast<bf16*>(nullptr));
    };
    for_each_dtype([&]<class W>(W*) {
        for (auto [rows, cols] : {std::pair<std::size_t, std::size_t>{2048, 2048}, {2048, 6144}, {8192, 8192}})
            (register_matvec<Backends, W>(rows, cols, c), ...);
        for (std::size_t tokens : {64, 512}) {
            auto one = [&]<class B>(B) {
                if (!(std::is_same_v<B, backend::scalar> && tokens > 64)) register_matmul<B, W>(2048, 2048, tokens, c);
            };
            (one(Backends{}), ...);
        }
    });
}

// Rounding activations for the opt-in modes (quantize_activations,
// round_activations_to_bf16): portable code, no backend, on one thread as
// ops::round_for runs it for one token. 1 row is a decoded token's input,
// 8 rows a decoded MoE layer's expert inputs before decode rounded its token
// once (docs/kernels.md). Bytes are the f32 values read.
void register_rounding(const Ceilings& c) {
    for (const std::size_t rows : {1, 8}) {
        constexpr std::size_t cols = 2048;
        const std::string shape = std::to_string(rows) + "x" + std::to_string(cols);
        benchmark::RegisterBenchmark(("round/portable/int8/" + shape).c_str(), [rows, c](benchmark::State& state) {
            const auto x = filled<float>(rows * cols, 5);
            Q8Activations q;
            run_and_count(state, static_cast<double>(rows * cols * 4), 0.0, c, [&] {
                quantize_activations(x.data(), rows, cols, q);
                benchmark::DoNotOptimize(q.q.data());
                benchmark::ClobberMemory();
            });
        })->Unit(benchmark::kMicrosecond);
        benchmark::RegisterBenchmark(("round/portable/bf16/" + shape).c_str(), [rows, c](benchmark::State& state) {
            const auto x = filled<float>(rows * cols, 5);
            Bf16Buffer b;
            run_and_count(state, static_cast<double>(rows * cols * 4), 0.0, c, [&] {
                round_activations_to_bf16(x.data(), rows * cols, b);
                benchmark::DoNotOptimize(b.data());
                benchmark::ClobberMemory();
            });
        })->Unit(benchmark::kMicrosecond);
    }
}

// All backends this build provides.
void register_everything(const Ceilings& c) {
    register_rounding(c);
    register_all<backend::scalar
#if MOELAB_HAVE_HIGHWAY
                 , backend::highway
#endif
#if MOELAB_HAVE_XSIMD
                 , backend::xsimd
#endif
                 >(c);
    register_quant<backend::scalar
#if MOELAB_HAVE_HIGHWAY
                   , backend::highway
#endif
#if MOELAB_HAVE_XSIMD
                   , backend::xsimd
#endif
                   >(c);
}

// The console output, plus a markdown summary of the medians at the end.
class SummaryReporter : public benchmark::ConsoleReporter {
public:
    void ReportRuns(const std::vector<Run>& runs) override {
        for (const Run& run : runs) {
            const bool median = run.run_type == Run::RT_Aggregate && run.aggregate_name == "median";
            const bool single = run.run_type == Run::RT_Iteration && run.repetitions <= 1;
            if ((median || single) && !run.error_occurred) rows_.push_back(run);
        }
        ConsoleReporter::ReportRuns(runs);
    }

    void Finalize() override {
        ConsoleReporter::Finalize();
        // name = kind/backend/dtype/shape...; group by everything but the backend.
        std::map<std::string, std::map<std::string, double>> seconds;  // group -> backend -> s
        for (const Run& run : rows_) {
            const auto [group, backend] = split_backend(run.run_name.function_name);
            seconds[group][backend] = run.cpu_accumulated_time / static_cast<double>(run.iterations);
        }
        std::printf("\nMedians (1 thread, CPU time; fractions of the 1-thread CPU-time ceilings above)\n\n");
        std::printf("| benchmark | CPU time | weight GB/s | frac_bw | GFLOP/s | frac_peak | speed-up vs scalar |\n");
        std::printf("|---|---:|---:|---:|---:|---:|---:|\n");
        for (const Run& run : rows_) {
            const auto [group, backend] = split_backend(run.run_name.function_name);
            const double s = run.cpu_accumulated_time / static_cast<double>(run.iterations);
            const auto& per_backend = seconds[group];
            const auto scalar = per_backend.find("scalar");
            std::printf("| %s | %s | %.1f | %.2f | %.1f | %.3f | %s |\n", run.run_name.function_name.c_str(),
                        format_time(s).c_str(), counter(run, "bytes_per_second") / 1e9, counter(run, "frac_bw"),
                        counter(run, "FLOP/s") / 1e9, counter(run, "frac_peak"),
                        scalar == per_backend.end() ? "-" : format_ratio(scalar->second / s).c_str());
        }
        std::printf("\n| benchmark | highway vs xsimd (time ratio xsimd / highway) |\n|---|---:|\n");
        for (const auto& [group, per_backend] : seconds) {
            const auto h = per_backend.find("highway"), x = per_backend.find("xsimd");
            if (h != per_backend.end() && x != per_backend.end())
                std::printf("| %s | %.2f |\n", group.c_str(), x->second / h->second);
        }
    }

private:
    static std::pair<std::string, std::string> split_backend(const std::string& name) {
        const std::size_t a = name.find('/'), b = name.find('/', a + 1);
        return {name.substr(0, a) + name.substr(b), name.substr(a + 1, b - a - 1)};
    }
    static double counter(const Run& run, const char* key) {
        const auto it = run.counters.find(key);
        return it == run.counters.end() ? 0.0 : it->second.value;
    }
    static std::string format_time(double s) {
        char buf[32];
        if (s >= 1e-3) std::snprintf(buf, sizeof buf, "%.2f ms", s * 1e3);
        else std::snprintf(buf, sizeof buf, "%.1f us", s * 1e6);
        return buf;
    }
    static std::string format_ratio(double r) {
        char buf[32];
        std::snprintf(buf, sizeof buf, "%.1fx", r);
        return buf;
    }
    std::vector<Run> rows_;
};

struct Measured {
    CeilingMeasurement bw_1, bw_all, peak_1, peak_all;
};

template <class B>
Measured measure(ThreadPool& one, ThreadPool& all) {
    return {measure_read_bandwidth(B{}, one), measure_read_bandwidth(B{}, all), measure_peak_flops(B{}, one),
            measure_peak_flops(B{}, all)};
}

template <class B>
void print_ceilings(const Measured& m) {
    auto line = [](const char* what, const char* unit, const CeilingMeasurement& one, const CeilingMeasurement& all) {
        std::printf("    %-5s %7.1f %-7s 1 thread (CPU time: %7.1f)   %7.1f %-7s %zu threads (CPU time: %7.1f)\n", what,
                    one.median, unit, one.median_cpu, all.median, unit, all.threads, all.median_cpu);
    };
    std::printf("  %-8s %s\n", B::name, kernels::instruction_set(B{}));
    line("read", "GB/s", m.bw_1, m.bw_all);
    line("peak", "GFLOP/s", m.peak_1, m.peak_all);
    benchmark::AddCustomContext(std::string("ceilings/") + B::name,
                                std::to_string(m.bw_1.median_cpu) + " GB/s, " + std::to_string(m.peak_1.median_cpu) +
                                    " GFLOP/s (1 thread, CPU time)");
}

}  // namespace

int main(int argc, char** argv) {
    // Medians over repetitions unless the user chose otherwise.
    std::vector<char*> args(argv, argv + argc);
    bool listing = false;
    for (int i = 1; i < argc; ++i) listing |= std::string_view(argv[i]).starts_with("--benchmark_list_tests");
    static char repetitions[] = "--benchmark_repetitions=5";
    initialize_with_medians(args, repetitions);
    if (benchmark::ReportUnrecognizedArguments(static_cast<int>(args.size()), args.data())) return 1;

    if (listing) {  // names only: no need to measure the machine
        register_everything(Ceilings{1, 1});
        benchmark::RunSpecifiedBenchmarks();
        return 0;
    }

    ThreadPool one(1), all(0);
    std::printf("Machine ceilings (moelab/roofline.hpp, median of 5, wall clock and CPU time; read = 1 GiB streamed by dot):\n");
    std::printf("  %-8s %s\n", "scalar", kernels::instruction_set(backend::scalar{}));
    Ceilings ceilings;
    auto keep_best = [&](const Measured& m) {
        ceilings.read_bytes_per_s = std::max(ceilings.read_bytes_per_s, m.bw_1.median_cpu * 1e9);
        ceilings.flop_per_s = std::max(ceilings.flop_per_s, m.peak_1.median_cpu * 1e9);
    };
#if MOELAB_HAVE_HIGHWAY
    {
        const Measured m = measure<backend::highway>(one, all);
        print_ceilings<backend::highway>(m);
        keep_best(m);
    }
#endif
#if MOELAB_HAVE_XSIMD
    {
        const Measured m = measure<backend::xsimd>(one, all);
        print_ceilings<backend::xsimd>(m);
        keep_best(m);
    }
#endif
    if (ceilings.flop_per_s == 0) {  // no SIMD backend in this build: the scalar probe
        const Measured m = measure<backend::scalar>(one, all);
        print_ceilings<backend::scalar>(m);
        keep_best(m);
    }
    std::printf("Fractions below use read %.1f GB/s and peak %.1f GFLOP/s (1 thread, CPU time, best backend).\n\n",
                ceilings.read_bytes_per_s / 1e9, ceilings.flop_per_s / 1e9);
    std::fflush(stdout);

    register_everything(ceilings);
    SummaryReporter reporter;
    benchmark::RunSpecifiedBenchmarks(&reporter);
    benchmark::Shutdown();
    return 0;
}
