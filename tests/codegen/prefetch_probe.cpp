// SPDX-License-Identifier: MIT
// Compiled to assembly (-S), not run: tests/codegen/check_prefetch.cmake reads
// the output and requires a prefetch instruction in each probe_* function.
// Decode's multi-row passes ask for each row's weights ahead of the loads
// (docs/kernels.md, "Software prefetch"); a prefetch has no effect the
// optimiser can see, so a refactoring can lose it without changing a bit of
// any result. From 2026-12-01 to 2026-12-07 GCC 12 deleted the f32/f16/bf16
// passes' prefetches (they sat in a lambda that did nothing else) and no test
// noticed. Each probe is flattened, so the kernel is inlined into it except
// for functions that are never inlined (Highway's matvec_rows); the check
// follows the probe's calls and jumps to those, in the same file.
#include <cstddef>

#include "moelab/dtype.hpp"
#include "moelab/kernels/backend.hpp"
#include "moelab/quant/quant.hpp"
#include "moelab/quant/q8_activations.hpp"

#if MOELAB_HAVE_HIGHWAY
#include "moelab/kernels/highway.hpp"
#endif
#if MOELAB_HAVE_XSIMD
#include "moelab/kernels/xsimd.hpp"
#endif

using namespace moelab;
using kernels::MatvecReads;

#define MOELAB_PROBE extern "C" __attribute__((noinline, flatten))

// The passes, not the single stream: row_passes runs them for any call of 8 rows or more.
template <class Tag>
Tag in_passes() {
    return kernels::with_matvec_reads(Tag{}, MatvecReads::row_passes);
}

#if MOELAB_HAVE_HIGHWAY
MOELAB_PROBE void probe_highway_f32(const float* w, std::size_t rows, std::size_t cols, const float* x, float* y) {
    kernels::matvec(in_passes<backend::highway>(), w, rows, cols, x, y);
}
MOELAB_PROBE void probe_highway_f16(const f16* w, std::size_t rows, std::size_t cols, const float* x, float* y) {
    kernels::matvec(in_passes<backend::highway>(), w, rows, cols, x, y);
}
MOELAB_PROBE void probe_highway_bf16(const bf16* w, std::size_t rows, std::size_t cols, const float* x, float* y) {
    kernels::matvec(in_passes<backend::highway>(), w, rows, cols, x, y);
}
MOELAB_PROBE void probe_highway_q8_0(const block_q8_0* w, std::size_t rows, std::size_t cols, const float* x, float* y) {
    kernels::matvec(backend::highway{}, w, rows, cols, x, y);
}
MOELAB_PROBE void probe_highway_q4_k(const block_q4_k* w, std::size_t rows, std::size_t cols, const float* x, float* y) {
    kernels::matvec(backend::highway{}, w, rows, cols, x, y);
}
// Prefill's sweeps ask for the next chunk of rows while they sweep one
// (highway_tile.hpp, NextChunk): in place (f32), widened (bf16), decoded (Q8_0).
MOELAB_PROBE void probe_highway_matmul_f32(const float* w, std::size_t rows, std::size_t cols, const float* x,
                                           std::size_t n_tokens, float* y) {
    kernels::matmul(backend::highway{}, w, rows, cols, x, n_tokens, y, rows);
}
MOELAB_PROBE void probe_highway_matmul_bf16(const bf16* w, std::size_t rows, std::size_t cols, const float* x,
                                            std::size_t n_tokens, float* y) {
    kernels::matmul(backend::highway{}, w, rows, cols, x, n_tokens, y, rows);
}
MOELAB_PROBE void probe_highway_matmul_q8_0(const block_q8_0* w, std::size_t rows, std::size_t cols, const float* x,
                                            std::size_t n_tokens, float* y) {
    kernels::matmul(backend::highway{}, w, rows, cols, x, n_tokens, y, rows);
}
#if HWY_ARCH_X86 && HWY_TARGET <= HWY_AVX3
MOELAB_PROBE void probe_highway_int8_q4_k(const block_q4_k* w, std::size_t rows, std::size_t cols, Q8Row x, float* y) {
    kernels::matvec(backend::highway{}, w, rows, cols, x, y);
}
#endif
#if HWY_ARCH_X86 && HWY_TARGET <= HWY_AVX3 && defined(__AVX512BF16__)
MOELAB_PROBE void probe_highway_bf16_mode(const bf16* w, std::size_t rows, std::size_t cols, const bf16* x, float* y) {
    kernels::matvec(in_passes<backend::highway>(), w, rows, cols, x, y);
}
#endif
#endif

#if MOELAB_HAVE_XSIMD
MOELAB_PROBE void probe_xsimd_f32(const float* w, std::size_t rows, std::size_t cols, const float* x, float* y) {
    kernels::matvec(in_passes<backend::xsimd>(), w, rows, cols, x, y);
}
MOELAB_PROBE void probe_xsimd_bf16(const bf16* w, std::size_t rows, std::size_t cols, const float* x, float* y) {
    kernels::matvec(in_passes<backend::xsimd>(), w, rows, cols, x, y);
}
MOELAB_PROBE void probe_xsimd_q4_k(const block_q4_k* w, std::size_t rows, std::size_t cols, const float* x, float* y) {
    kernels::matvec(backend::xsimd{}, w, rows, cols, x, y);
}
#endif
