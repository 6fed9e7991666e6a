#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# The whole test suite: configure, build (build/ by default) and run every
# ctest entry — unit tests, fixture tests, header hygiene, the CMake consumer
# projects, and the notebook. Exits non-zero on any failure.
#   MOELAB_BUILD_DIR   build directory (default: build)
#   MOELAB_CMAKE_ARGS  extra arguments for the configure step
set -euo pipefail
cd "$(dirname "$0")/.."
build_dir="${MOELAB_BUILD_DIR:-build}"
jobs="$(nproc)"
# shellcheck disable=SC2086  # MOELAB_CMAKE_ARGS is a list of arguments
cmake -S . -B "$build_dir" ${MOELAB_CMAKE_ARGS:-}
cmake --build "$build_dir" -j"$jobs"
ctest --test-dir "$build_dir" --output-on-failure -j"$jobs"
