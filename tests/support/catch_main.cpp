// SPDX-License-Identifier: MIT
// The one Catch2 main for every test executable. It turns "some test was
// skipped for lack of fixtures and nothing failed" into exit code 77, which
// CMake's SKIP_RETURN_CODE shows as "Skipped" (Catch2 v2 has no SKIP()).
#define CATCH_CONFIG_RUNNER
#include <catch2/catch.hpp>

#include "support/fixtures.hpp"

int main(int argc, char* argv[]) {
    const int failed = Catch::Session().run(argc, argv);
    if (failed == 0 && moelab::test::skipped_count() > 0) {
        std::fprintf(stderr, "SKIPPED: %d test case(s) found no fixtures at %s\n",
                     moelab::test::skipped_count(), MOELAB_FIXTURES_DIR);
        return 77;
    }
    return failed;
}
