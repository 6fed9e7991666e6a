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
