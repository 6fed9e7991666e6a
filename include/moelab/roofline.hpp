// SPDX-License-Identifier: MIT
// moelab/roofline.hpp — measuring the two ceilings every kernel is judged
// against: streaming read bandwidth (decode: matvec reads each weight once)
// and peak FLOP/s (prefill: matmul reuses each weight across tokens).
//
// Depends on: moelab/thread_pool.hpp, moelab/kernels/backend.hpp, the
//             standard library; plus the header of the backend you pass
//             (its dot(), matvec() and fma_peak_probe() are found by
//             argument-dependent lookup on the tag).
//
// Both functions run `repetitions` timed rounds after one untimed warm-up
// round and report the median, because machines are shared and noisy; by
// the wall clock, and by CPU time (what the threads did while they ran).
// Usage (as in bench/bench_kernels.cpp):
//     moelab::ThreadPool pool(1);
//     auto bw = moelab::measure_read_bandwidth(moelab::backend::highway{}, pool);
//     auto fl = moelab::measure_peak_flops(moelab::backend::highway{}, pool);
//     printf("%.1f GB/s, %.1f GFLOP/s\n", bw.median, fl.median);
#pragma once

#include <algorithm>
#include <chrono>
#include <ctime>
#include <cstddef>
#include <memory>
#include <utility>
#include <vector>

#include "moelab/kernels/backend.hpp"
#include "moelab/thread_pool.hpp"

namespace moelab {

// One ceiling: GB/s (1e9 bytes per second) or GFLOP/s (1e9 FLOP per second).
struct CeilingMeasurement {
    double median = 0;         // wall clock, median of the timed repetitions
    double min = 0, max = 0;   // spread of the timed repetitions (wall clock)
    // The same work over the process's CPU time per thread (std::clock):
    // the rate while the threads actually ran. Equal to `median` on an idle
    // machine; higher when other processes time-share the cores, which is
    // when it is the fairer yardstick for single-threaded CPU-time benchmarks.
    double median_cpu = 0;
    std::size_t threads = 0;   // pool.size() during the measurement
    int repetitions = 0;
    const char* pattern = "";  // read bandwidth: the read pattern that measured faster (measure_read_bandwidth)
};

namespace detail {

inline double median_of(std::vector<double> values) {
    if (values.empty()) return 0;
    std::sort(values.begin(), values.end());
    const std::size_t mid = values.size() / 2;
    return values.size() % 2 ? values[mid] : 0.5 * (values[mid - 1] + values[mid]);
}

// Median, min and max of the wall-clock `rates`, median of `cpu_rates`.
inline CeilingMeasurement summarize_rates(std::vector<double> rates, std::size_t threads,
                                          std::vector<double> cpu_rates = {}) {
    CeilingMeasurement m;
    m.threads = threads;
    m.repetitions = static_cast<int>(rates.size());
    if (rates.empty()) return m;
    m.median = median_of(rates);
    m.min = *std::min_element(rates.begin(), rates.end());
    m.max = *std::max_element(rates.begin(), rates.end());
    m.median_cpu = median_of(std::move(cpu_rates));
    return m;
}

// Runs round() repetitions + 1 times (the first untimed); round() returns the
// work it did (bytes or FLOP). Summarises work / seconds / 1e9 per timed
// round, by the wall clock and by process CPU time / threads.
template <class Round>
CeilingMeasurement timed_rates(int repetitions, std::size_t threads, Round&& round) {
    std::vector<double> rates, cpu_rates;
    round();  // warm-up: page faults, caches, clock ramp-up
    for (int rep = 0; rep < repetitions; ++rep) {
        const std::clock_t cpu_start = std::clock();
        const auto start = std::chrono::steady_clock::now();
        const double work = round();
        const std::chrono::duration<double> seconds = std::chrono::steady_clock::now() - start;
        const double cpu_seconds = static_cast<double>(std::clock() - cpu_start) / CLOCKS_PER_SEC;
        rates.push_back(work / seconds.count() / 1e9);
        cpu_rates.push_back(work / (cpu_seconds / static_cast<double>(threads)) / 1e9);
    }
    return summarize_rates(std::move(rates), threads, std::move(cpu_rates));
}

}  // namespace detail

// Streaming read bandwidth in GB/s over a buffer of `bytes` (default 1 GiB,
// far larger than any cache, so it measures DRAM). Each thread of the pool
// owns one contiguous part and reads it once per repetition, in each of the
// two ways decode's matvec reads weights (kernels::MatvecReads):
//   * one stream: the backend's vectorised dot(part, part); the second
//     operand is the same address, already in L1;
//   * passes of rows: the part as rows of up to 4,096 floats, read by the
//     backend's matvec set to MatvecReads::row_passes (8 rows at a time, each
//     prefetched ahead) against a 16 KB x that stays in L1.
// Either way exactly the part's bytes cross the memory bus per round, through
// the load path the kernels use, and the results are kept, so the reads cannot
// be optimised away. The faster pattern's measurement is returned (`pattern`
// names it): the ceiling is what the machine can read, and which way reads
// more depends on the machine. On this project's Intel Xeon (2026-12-07) the
// passes read 30.6-31.5 GB/s with two threads against the stream's
// 26.7-27.9, and the stream alone put dense f32 decode at 122-132% "of the
// bandwidth"; on the AMD machine of 2026-11 the two read about the same
// (docs/kernels.md, "Ceilings").
//
// The buffer starts on a 64-byte boundary, as every weight tensor of the
// models we measure does (GGUF data offsets are multiples of 32 and, for
// these shapes, of 64). A buffer straight from the allocator starts 16 bytes
// past one, and then every 64-byte load spans two cache lines: measured on
// this project's Zen 5 machine, two threads read 33-35 GB/s that way against
// 54-60 GB/s aligned (docs/performance.md, "The read probe").
template <class Backend>
CeilingMeasurement measure_read_bandwidth(Backend backend, ThreadPool& pool,
                                          std::size_t bytes = std::size_t{1} << 30, int repetitions = 5) {
    const std::size_t n_threads = pool.size();
    const std::size_t n = bytes / sizeof(float);
    const std::size_t part = std::max<std::size_t>(64, (n / n_threads) / 64 * 64);  // whole 256-byte blocks per thread
    constexpr std::size_t kCacheLine = 64;
    const std::size_t n_values = n_threads * part;
    std::size_t space = (n_values + kCacheLine / sizeof(float)) * sizeof(float);
    auto storage = std::make_unique_for_overwrite<float[]>(space / sizeof(float));
    void* start = storage.get();
    float* const buffer = static_cast<float*>(std::align(kCacheLine, n_values * sizeof(float), start, space));
    // First touch from the pool: pages are mapped before timing starts, and
    // on NUMA machines they land near the threads that read them.
    pool.parallel_for(n_threads, [&](std::size_t t) {
        std::fill(buffer + t * part, buffer + (t + 1) * part, 1.0f / 1024);
    });
    std::vector<float> sums(n_threads);
    const CeilingMeasurement stream = detail::timed_rates(repetitions, n_threads, [&] {
        pool.parallel_for(n_threads, [&](std::size_t t) {
            const float* p = buffer + t * part;
            sums[t] += dot(backend, p, p, part);
        });
        return static_cast<double>(n_threads * part * sizeof(float));
    });

    const Backend in_passes = kernels::with_matvec_reads(backend, kernels::MatvecReads::row_passes);
    const std::size_t cols = std::min<std::size_t>(4096, part), rows = part / cols;  // part % cols floats unread
    const std::vector<float> x(cols, 1.0f);
    std::vector<float> y(n_threads * rows);
    CeilingMeasurement passes = detail::timed_rates(repetitions, n_threads, [&] {
        pool.parallel_for(n_threads, [&](std::size_t t) {
            matvec(in_passes, buffer + t * part, rows, cols, x.data(), y.data() + t * rows);
            sums[t] += y[t * rows];
        });
        return static_cast<double>(n_threads * rows * cols * sizeof(float));
    });

    volatile float sink = 0;
    for (float s : sums) sink = sink + s;
    if (passes.median > stream.median) {
        passes.pattern = "passes of 8 rows";
        return passes;
    }
    CeilingMeasurement m = stream;
    m.pattern = "one stream";
    return m;
}

// Peak FLOP/s in GFLOP/s: every thread of the pool runs the backend's
// fma_peak_probe (independent FMA chains in registers, no memory traffic)
// for `iterations` iterations per repetition.
template <class Backend>
CeilingMeasurement measure_peak_flops(Backend backend, ThreadPool& pool,
                                      std::size_t iterations = std::size_t{1} << 22, int repetitions = 5) {
    const std::size_t n_threads = pool.size();
    std::vector<double> flops(n_threads);
    return detail::timed_rates(repetitions, n_threads, [&] {
        pool.parallel_for(n_threads, [&](std::size_t t) { flops[t] = fma_peak_probe(backend, iterations); });
        double total = 0;
        for (double f : flops) total += f;
        return total;
    });
}

}  // namespace moelab
