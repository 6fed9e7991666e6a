// SPDX-License-Identifier: MIT
// moelab/roofline.hpp: the bookkeeping (medians, thread counts, work counted)
// on small problems. How fast the machine is belongs to bench/, not here.
#include <catch2/catch.hpp>

#include <string>

#include "moelab/roofline.hpp"
#include "support/backends.hpp"

using namespace moelab;

TEST_CASE("roofline summaries: median, min and max of the repetitions", "[roofline]") {
    const CeilingMeasurement odd = detail::summarize_rates({3.0, 1.0, 2.0}, 4);
    REQUIRE(odd.median == 2.0);
    REQUIRE(odd.min == 1.0);
    REQUIRE(odd.max == 3.0);
    REQUIRE(odd.threads == 4);
    REQUIRE(odd.repetitions == 3);
    const CeilingMeasurement even = detail::summarize_rates({4.0, 1.0, 3.0, 2.0}, 1, {8.0, 5.0, 7.0, 6.0});
    REQUIRE(even.median == 2.5);
    REQUIRE(even.median_cpu == 6.5);
    const CeilingMeasurement none = detail::summarize_rates({}, 2);
    REQUIRE(none.repetitions == 0);
    REQUIRE(none.median == 0.0);
}

TEMPLATE_TEST_CASE("roofline measurements run on every thread and report positive rates", "[roofline]",
                   MOELAB_TEST_BACKENDS) {
    for (std::size_t threads : {1, 2, 3}) {
        ThreadPool pool(threads);
        INFO("threads " << threads);
        // 1 MiB and a tiny buffer (each thread still reads a whole block).
        for (std::size_t bytes : {std::size_t{1} << 20, std::size_t{100}}) {
            const CeilingMeasurement bw = measure_read_bandwidth(TestType{}, pool, bytes, 3);
            REQUIRE(bw.threads == threads);
            REQUIRE(bw.repetitions == 3);
            REQUIRE(bw.min > 0);
            REQUIRE(bw.min <= bw.median);
            REQUIRE(bw.median <= bw.max);
            REQUIRE(bw.median_cpu > 0);
            const std::string pattern = bw.pattern;  // the faster of the two read patterns
            REQUIRE((pattern == "one stream" || pattern == "passes of 8 rows"));
        }
        const CeilingMeasurement peak = measure_peak_flops(TestType{}, pool, 1000, 3);
        REQUIRE(peak.threads == threads);
        REQUIRE(peak.repetitions == 3);
        REQUIRE(peak.min > 0);
        REQUIRE(peak.min <= peak.median);
        REQUIRE(peak.median <= peak.max);
        REQUIRE(peak.median_cpu > 0);
    }
}
