// SPDX-License-Identifier: MIT
// The benchmarks' command line: medians over repetitions unless asked otherwise.
#pragma once

#include <string_view>
#include <vector>

#include <benchmark/benchmark.h>

// Adds `repetitions` (e.g. "--benchmark_repetitions=5") and
// --benchmark_report_aggregates_only=true to argv when the user gave no
// repetitions or aggregate flag of their own, then initializes Google
// Benchmark. args[0] is the program name; the strings must outlive the run.
inline void initialize_with_medians(std::vector<char*>& args, char* repetitions) {
    static char aggregates[] = "--benchmark_report_aggregates_only=true";
    bool has_repetitions = false, has_aggregates = false;
    for (std::size_t i = 1; i < args.size(); ++i) {
        const std::string_view a = args[i];
        has_repetitions |= a.starts_with("--benchmark_repetitions");
        has_aggregates |= a.starts_with("--benchmark_report_aggregates_only") || a.starts_with("--benchmark_display_aggregates_only");
    }
    if (!has_repetitions) args.push_back(repetitions);
    if (!has_aggregates) args.push_back(aggregates);
    int n = static_cast<int>(args.size());
    benchmark::Initialize(&n, args.data());
    args.resize(static_cast<std::size_t>(n));  // what Google Benchmark did not consume
}
