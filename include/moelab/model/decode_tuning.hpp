// SPDX-License-Identifier: MIT
// moelab/model/decode_tuning.hpp — how the backend's matvec reads weight rows
// on this machine, decided by timing the first decode steps.
//
// Depends on: moelab/kernels/backend.hpp (MatvecReads), the standard library.
//
// A decoded token is one matrix-vector product per weight matrix, bound by
// memory bandwidth. A SIMD backend can walk a matrix's rows in two ways
// (kernels::MatvecReads): one row after another, a single stream that the
// hardware prefetchers follow, or passes of 8 rows with software prefetch,
// 8 independent chains of multiply-adds. Both give the same bits. Which one
// reaches more of the bandwidth belongs to the machine: on the AMD Zen 4/5
// machines the single stream decoded dense f32 12% faster, on the Intel Xeon
// of 2026-12-07 the passes decoded dense bf16 17% and MoE bf16 12-17% faster
// (docs/kernels.md, "One stream or passes of rows"). So a Transformer does
// not guess: its first decode steps try both, and it keeps the faster.
//
// The schedule: one untimed step (the first decode step after loading may
// pay page faults and first touches), then three timed steps of each way in
// the order A B B A A B, so that a steady drift (the KV cache growing, another
// process ramping up) weighs on both alike; the lower median wins, a tie
// keeps the default. Seven steps in all; every later step uses the winner.
// A backend without the setting (scalar) is decided from the start.
#pragma once

#include <algorithm>
#include <array>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <string>

#include "moelab/kernels/backend.hpp"

namespace moelab {

using kernels::HasMatvecReads;
using kernels::matvec_reads_name;

template <class Backend>
class DecodeTuner {
public:
    // Tunes, starting from the default setting.
    DecodeTuner() = default;
    // Does not tune: every step uses `backend` as given.
    static DecodeTuner fixed(Backend backend) {
        DecodeTuner t;
        t.chosen_ = backend;
        t.fixed_ = true;
        return t;
    }

    bool tunes() const { return HasMatvecReads<Backend> && !fixed_; }
    bool decided() const { return !tunes() || step_ == kSchedule.size(); }
    // The tag for the coming decode step.
    Backend next() const {
        return decided() ? chosen_ : kernels::with_matvec_reads(chosen_, kCandidates[kSchedule[step_]]);
    }
    // The tag for anything else (a prefill), and after the tuning the winner.
    Backend chosen() const { return chosen_; }
    // The decode step that ran with next() took `seconds`.
    void record(double seconds) {
        if (decided()) return;
        seconds_[step_] = seconds;  // step 0's is never read: that step is the untimed one
        if (++step_ == kSchedule.size()) decide();
    }
    // Starts over (the activation precision changed, say); a fixed tuner stays fixed.
    void restart() {
        if (fixed_) return;
        *this = DecodeTuner{};
    }
    // Median seconds per decode step of candidate c (0: stream_when_short, 1: row_passes), once decided by timing.
    double median_seconds(std::size_t c) const { return median_[c]; }

    // One line for reports: "passes (tuned: 37.1 ms per step, stream 41.9 ms)".
    std::string describe() const {
        if constexpr (!HasMatvecReads<Backend>) {
            return "not applicable (" + std::string(Backend::name) + ")";
        } else {
            const std::string name = matvec_reads_name(chosen_.matvec_reads);
            if (fixed_) return name + " (fixed)";
            if (!decided()) return name + " (default; not tuned yet)";
            const std::size_t won = chosen_.matvec_reads == kCandidates[1] ? 1 : 0, lost = 1 - won;
            char text[160];
            std::snprintf(text, sizeof text, "%s (tuned: %.2f ms per decode step, %s %.2f ms)", name.c_str(),
                          1e3 * median_[won], matvec_reads_name(kCandidates[lost]), 1e3 * median_[lost]);
            return text;
        }
    }

private:
    static constexpr std::array<kernels::MatvecReads, 2> kCandidates{kernels::MatvecReads::stream_when_short,
                                                                     kernels::MatvecReads::row_passes};
    // Candidate per step; step 0 (candidate 0) is not timed.
    static constexpr std::array<std::uint8_t, 7> kSchedule{0, 0, 1, 1, 0, 0, 1};
    static constexpr std::size_t kPerCandidate = 3;

    void decide() {
        for (std::size_t c = 0; c < 2; ++c) {
            std::array<double, kPerCandidate> s{};
            std::size_t n = 0;
            for (std::size_t step = 1; step < kSchedule.size(); ++step)
                if (kSchedule[step] == c) s[n++] = seconds_[step];
            std::sort(s.begin(), s.end());
            median_[c] = s[kPerCandidate / 2];
        }
        chosen_ = kernels::with_matvec_reads(chosen_, kCandidates[median_[1] < median_[0] ? 1 : 0]);
    }

    Backend chosen_{};
    bool fixed_ = false;
    std::size_t step_ = 0;
    std::array<double, kSchedule.size()> seconds_{};  // per step
    std::array<double, 2> median_{};
};

}  // namespace moelab
