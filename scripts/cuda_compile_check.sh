#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Compile-only check of the optional CUDA code: configures a separate build
# directory with MOELAB_WITH_CUDA=ON and builds just the CUDA targets
# (moelab_cuda, test_cuda, bench_cuda) for the architectures in
# MOELAB_CUDA_ARCHS (default "80;90"). Needs nvcc, not a GPU. Without nvcc it
# prints "SKIPPED: nvcc not found" and exits 0, so CPU-only machines stay green.
# Then it runs test_cuda, which either tests on a GPU or says SKIPPED (77).
#   MOELAB_CUDA_BUILD_DIR  build directory (default: build-cuda)
set -euo pipefail
cd "$(dirname "$0")/.."
start=$(date +%s)

nvcc="$(command -v nvcc || true)"
if [[ -z "$nvcc" ]]; then
  for candidate in /usr/local/cuda/bin/nvcc /usr/local/cuda-*/bin/nvcc; do
    if [[ -x "$candidate" ]]; then nvcc="$candidate"; break; fi
  done
fi
if [[ -z "$nvcc" ]]; then
  echo "SKIPPED: nvcc not found"
  exit 0
fi

build_dir="${MOELAB_CUDA_BUILD_DIR:-build-cuda}"
echo "=== CUDA compile check with $nvcc ($("$nvcc" --version | tail -1))"
cmake -S . -B "$build_dir" -DMOELAB_WITH_CUDA=ON -DCMAKE_CUDA_COMPILER="$nvcc" \
      "-DCMAKE_CUDA_ARCHITECTURES=${MOELAB_CUDA_ARCHS:-80;90}" \
      -DMOELAB_BUILD_TESTS=ON -DMOELAB_BUILD_BENCH=ON -DMOELAB_BUILD_EXAMPLES=OFF -DMOELAB_HYGIENE=OFF
grep -q '^CMAKE_CUDA_COMPILER:' "$build_dir/CMakeCache.txt" || { echo "CMake did not enable CUDA" >&2; exit 1; }
cmake --build "$build_dir" --target moelab_cuda test_cuda bench_cuda -j"$(nproc)"

status=0
"$build_dir/bin/test_cuda" || status=$?
if [[ $status -ne 0 && $status -ne 77 ]]; then
  echo "test_cuda failed (exit $status)" >&2
  exit "$status"
fi
echo "=== CUDA compile check passed in $(( $(date +%s) - start )) s"
