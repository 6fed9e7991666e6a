// SPDX-License-Identifier: MIT
#include <catch2/catch.hpp>

#include <atomic>
#include <stdexcept>
#include <vector>

#include "moelab/thread_pool.hpp"

TEST_CASE("parallel_for runs every task exactly once, for any pool size", "[thread_pool]") {
    for (std::size_t threads : {1, 2, 3, 8}) {
        moelab::ThreadPool pool(threads);
        REQUIRE(pool.size() == threads);
        for (std::size_t n : {0, 1, 2, 7, 100, 1000}) {
            std::vector<std::atomic<int>> hits(n);
            for (int round = 0; round < 3; ++round) pool.parallel_for(n, [&](std::size_t i) { ++hits[i]; });
            for (std::size_t i = 0; i < n; ++i) REQUIRE(hits[i] == 3);
        }
    }
}

TEST_CASE("parallel_ranges covers [0, n) with grain-aligned chunks", "[thread_pool]") {
    moelab::ThreadPool pool(3);
    for (std::size_t n : {1, 15, 16, 17, 100, 4096}) {
        std::vector<std::atomic<int>> hits(n);
        pool.parallel_ranges(n, 16, [&](std::size_t begin, std::size_t end) {
            REQUIRE(begin % 16 == 0);
            for (std::size_t i = begin; i < end; ++i) ++hits[i];
        });
        for (std::size_t i = 0; i < n; ++i) REQUIRE(hits[i] == 1);
    }
}

TEST_CASE("an exception in a task reaches the caller and the pool stays usable", "[thread_pool]") {
    moelab::ThreadPool pool(2);
    REQUIRE_THROWS_AS(pool.parallel_for(10, [](std::size_t i) { if (i == 5) throw std::runtime_error("task 5"); }),
                      std::runtime_error);
    std::atomic<int> count{0};
    pool.parallel_for(10, [&](std::size_t) { ++count; });
    REQUIRE(count == 10);
}

// A stale worker (one still inside the previous job when the next is posted)
// must not claim a task of the new job through the old job's claim word, and
// parallel_for must return only when every task of its own job has run. A
// 2026-12-01 benchmark hung in exactly that window (a claim passed the bounds
// check against the new job's task count before the claim word moved on,
// ran a new task early and counted it twice). Many back-to-back jobs whose
// sizes rise and fall, on more threads than cores so workers get descheduled
// (the old pool failed it when the machine was loaded).
TEST_CASE("back-to-back jobs of changing sizes: each task exactly once, no early return", "[thread_pool]") {
    moelab::ThreadPool pool(4);
    constexpr std::size_t kMaxTasks = 40;
    std::vector<std::atomic<int>> hits(kMaxTasks);
    std::size_t bad_jobs = 0, first_bad = 0;
    const std::size_t n_jobs = 100000;
    for (std::size_t job = 0; job < n_jobs; ++job) {
        const std::size_t n = 1 + (job * 7) % kMaxTasks;  // 1, 8, 15, ... 36, 3, 10, ...
        pool.parallel_for(n, [&](std::size_t i) { hits[i].fetch_add(1, std::memory_order_relaxed); });
        bool ok = true;
        for (std::size_t i = 0; i < kMaxTasks; ++i) ok &= hits[i].exchange(0) == (i < n ? 1 : 0);
        if (!ok && bad_jobs++ == 0) first_bad = job;
    }
    INFO("first bad job " << first_bad);
    REQUIRE(bad_jobs == 0);
}
