#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Installs exactly what moelab needs to build, test, benchmark and run its
# notebooks, from Debian's packages. Idempotent: apt-get skips what is there.
set -euo pipefail

packages=(
  cmake make g++ pkg-config        # toolchain
  libhwy-dev                       # Highway 1.0.x: the highway backend
  libxsimd-dev                     # xsimd 8.1: the xsimd backend
  nlohmann-json3-dev               # JSON: safetensors headers, config.json, tokenizer.json
  catch2                           # Catch2 v2: tests
  libbenchmark-dev                 # Google Benchmark: bench/
  unicode-data bzip2               # the UCD: scripts/gen_unicode_tables.py, NFC conformance test
  python3 python3-numpy python3-matplotlib          # notebooks and plots
  jupyter-core jupyter-nbconvert python3-nbconvert python3-nbformat python3-ipykernel
)

sudo=""
if [ "$(id -u)" -ne 0 ]; then sudo="sudo"; fi
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
$sudo apt-get install -y -qq --no-install-recommends "${packages[@]}" >/dev/null
echo "setup: installed ${#packages[@]} packages (${packages[*]})"
