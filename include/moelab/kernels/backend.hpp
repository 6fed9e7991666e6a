// SPDX-License-Identifier: MIT
// moelab/kernels/backend.hpp — the backend tags and the kernel contract.
//
// Depends on: the standard library only.
//
// A *backend* is a tag type: empty, or holding run-time settings that change
// how fast a kernel runs but never what it computes. Every numeric primitive is an overload set
// whose first parameter is the tag, e.g.
//
//     matvec(moelab::backend::xsimd{}, w, rows, cols, x, y);   // found by ADL
//
// Model code is a template on the tag (`template <class Backend>`) and never
// names one; choosing a backend is a template argument, resolved at compile
// time. Adding a backend is one header in this folder that defines its tag's
// overloads, plus one entry in the tests' backend list.
//
// The kernel contract (each backend header implements all of it; scalar.hpp
// is the readable specification and the test oracle):
//
//   Weight-reading products, T in {float, f16, bf16} (and the quantized block
//   types once they exist). Weights are row-major (rows, cols); activations
//   are f32; accumulation is f32.
//     float dot   (B, const T* w, const float* x, size_t n)
//     void  matvec(B, const T* w, size_t rows, size_t cols, const float* x, float* y)
//           y[r] = dot(w[r, :], x)                       for r < rows
//     void  matmul(B, const T* w, size_t rows, size_t cols,
//                  const float* x, size_t n_tokens, float* y, size_t y_stride)
//           y[t * y_stride + r] = dot(w[r, :], x[t, :])  for t < n_tokens, r < rows
//     Determinism rule: y[t, r] must depend only on weight row r and token
//     t's activations x[t, :], never on which other rows or tokens share the
//     call, nor on whether matvec or matmul computed it (accumulate every
//     (t, r) dot product in the same order in every code path). Threads split
//     rows and MoE experts receive arbitrary subsets of a batch, so this is
//     what makes results bitwise identical for any thread count and batch.
//
//   Elementwise and reductions on f32:
//     float dot    (B, const float* a, const float* b, size_t n)   (the T = float case)
//     void  rmsnorm(B, const float* x, const float* w, float eps, size_t n, float* out)
//     void  l2norm (B, const float* x, float eps, size_t n, float* out)
//     void  softmax(B, float* x, size_t n)                          in place
//     void  silu   (B, float* x, size_t n)                          in place
//     void  swiglu (B, const float* gate, const float* up, float* out, size_t n)
//     void  rope   (B, float* x, size_t rot_dims, RopeStyle, const float* cos, const float* sin)
//     void  add    (B, const float* a, const float* b, float* out, size_t n)
//     void  scale  (B, float* x, float s, size_t n)                 in place
//     void  axpy   (B, float a, const float* x, float* y, size_t n) y += a * x
//     double fma_peak_probe(B, size_t iterations)   a register-only loop of
//           independent FMA chains (enough to cover FMA latency); returns the
//           FLOP it performed (2 per lane per FMA) and keeps its result alive.
//           The caller times it: that is peak FLOP/s (moelab/roofline.hpp).
//     void  topk   (B, const float* x, size_t n, size_t k, uint32_t* idx)
//     const char* instruction_set(B)    what the backend compiled to, e.g. "AVX3_DL (16 x f32)"
//     Aliasing: `out` may be the very same pointer as an input (x, a, gate, up)
//     in the elementwise kernels and the norms; layers update buffers in place.
#pragma once

#include <concepts>
#include <cstddef>
#include <cstdint>
#include <type_traits>
#include <utility>

namespace moelab {

// How RoPE pairs up the dimensions it rotates (see kernels/scalar.hpp rope()).
enum class RopeStyle : std::uint8_t {
    interleaved,  // pairs (x[2i], x[2i+1])          — Meta's original Llama, GGUF llama
    neox,         // pairs (x[i], x[i + rot_dims/2]) — "rotate_half": HF, Qwen, GPT-NeoX
};

namespace kernels {

// Calls f(std::integral_constant<size_t, i>) for i = 0 .. kCount-1: a loop the
// compiler sees unrolled, with i a constant (shift counts, array indices).
// SIMD backends walk their arrays of vector accumulators with it: indexed by
// a run-time loop counter, GCC keeps such an array on the stack and stores
// every accumulator back after each multiply-add (docs/kernels.md).
template <std::size_t kCount, class F>
[[gnu::always_inline]] inline void unrolled(F&& f) {
    [&]<std::size_t... Is>(std::index_sequence<Is...>) { (f(std::integral_constant<std::size_t, Is>{}), ...); }(
        std::make_index_sequence<kCount>{});
}

// Calls f(std::integral_constant<size_t, c>) for the run-time count c in
// [1, kMax] (nothing for other counts): turns a leftover tile size into a
// template argument.
template <std::size_t kMax, class F>
[[gnu::always_inline]] inline void with_count(std::size_t count, F&& f) {
    [&]<std::size_t... Is>(std::index_sequence<Is...>) {
        ((count == Is + 1 ? (f(std::integral_constant<std::size_t, Is + 1>{}), 0) : 0), ...);
    }(std::make_index_sequence<kMax>{});
}

// True when rows of `cols` values starting at p can be read where they are by
// a product loop that steps `values_per_load` values (one 64-byte vector) at a
// time: each row a whole number of loads, and the data on a 64-byte boundary
// (so, rows being whole loads, every row is too). A 64-byte load that spans
// two cache lines runs a register tile at about half speed, which is why the
// SIMD matmuls copy other rows into aligned, padded panels first.
[[gnu::always_inline]] inline bool whole_aligned_rows(const void* p, std::size_t cols, std::size_t values_per_load) {
    return cols % values_per_load == 0 && reinterpret_cast<std::uintptr_t>(p) % 64 == 0;
}

// How a SIMD backend's memory-bound matvec walks its weight rows (f32, f16
// and bf16 weights; the quantized products always run several rows at once).
// Both ways give every (row, token) the same operations, so the same bits;
// which one reaches more of the memory bandwidth is a property of the
// machine (its hardware prefetchers, and the latency of one row's chain of
// multiply-adds), not of the code. So it is a value the tag carries, and a
// Transformer picks it by timing its first decode steps
// (model/decode_tuning.hpp; measurements in docs/kernels.md, "One stream or
// passes of rows").
enum class MatvecReads : std::uint8_t {
    // Rows one after another, one stream without software prefetch, when the
    // call is short (an MoE expert's task) or x is short (it stays in L1
    // next to the stream); passes of 8 rows otherwise. Faster on the AMD
    // Zen 4/5 machines of 2026-11 (whole-model f32 decode +12%).
    stream_when_short,
    // Passes of 8 rows, each prefetched, sharing each load of x, for every
    // call of 8 rows or more. Faster on the Intel Xeon of 2026-12-07 (dense
    // bf16 decode +17%, MoE bf16 +12-17%).
    row_passes,
};

// Whether a matvec of `rows` rows against `x_bytes` of activations reads its
// rows in passes of several (else one after another).
constexpr bool matvec_in_passes(MatvecReads reads, std::size_t rows, std::size_t x_bytes) {
    constexpr std::size_t kSingleStreamRows = 192;      // calls this short: an MoE expert's gate and up tasks
    constexpr std::size_t kSingleStreamXBytes = 16384;  // x this short stays in L1 beside the stream
    return reads == MatvecReads::row_passes || (rows > kSingleStreamRows && x_bytes > kSingleStreamXBytes);
}

// Where a matvec pass of `n_rows` rows asks the memory for row r when it
// reads byte `at` of it: `ahead` bytes further along the row, and past the
// row's end the same place in the same row of the next pass (rows are
// `stride` bytes apart, each `row_bytes` long), so no pass starts its rows
// cold. Without the second half a bf16 row of 4 KB begins with 512 B
// unprefetched, an expert's 1.5 KB down-projection row with a third of it
// (docs/kernels.md, "Prefetch past the row's end"). Only the address, in
// integer arithmetic: the backend issues its own prefetch, which never
// faults, so at a call's last pass the address may lie past its rows.
[[gnu::always_inline]] inline const void* pass_prefetch_target(const void* pass, std::size_t n_rows, std::size_t stride,
                                                               std::size_t row_bytes, std::size_t r, std::size_t at,
                                                               std::size_t ahead) {
    const std::uintptr_t row = reinterpret_cast<std::uintptr_t>(pass) + r * stride;
    const std::size_t to = at + ahead;
    return reinterpret_cast<const void*>(to < row_bytes ? row + to : row + n_rows * stride + (to - row_bytes));
}

// How the CLI and reports spell the two.
constexpr const char* matvec_reads_name(MatvecReads reads) {
    return reads == MatvecReads::row_passes ? "passes" : "stream";
}

// Backends whose tag carries the setting.
template <class Backend>
concept HasMatvecReads = requires(Backend b) {
    { b.matvec_reads } -> std::convertible_to<MatvecReads>;
};

// `tag` set to read its matvec rows as `reads`; a tag without the setting
// (scalar) as it is.
template <class Backend>
constexpr Backend with_matvec_reads(Backend tag, MatvecReads reads) {
    if constexpr (HasMatvecReads<Backend>) tag.matvec_reads = reads;
    return tag;
}

// The tags live in namespace moelab::kernels (through the inline namespace
// `backend`), so argument-dependent lookup on a tag finds the kernels
// declared next to it: model code calls kernels *unqualified*,
//     rmsnorm(ctx.backend, x, w, eps, n, out);
// and the compiler picks the backend's overload at instantiation, whatever
// order the headers were included in. (A qualified kernels::rmsnorm inside a
// template would only see the overloads declared before that template.) The
// same rule lets a user define a backend in their own namespace: a tag plus
// overloads beside it.
inline namespace backend {

// The readable reference: plain loops, f32 accumulation, std::exp.
struct scalar {
    static constexpr const char* name = "scalar";
};

// Google Highway, static dispatch: compiled for the target the compiler flags
// allow (e.g. -march=native), no run-time CPU detection. kernels/highway.hpp.
// Its one run-time setting is how matvec reads rows (above).
struct highway {
    static constexpr const char* name = "highway";
    MatvecReads matvec_reads = MatvecReads::stream_when_short;
};

// xsimd (8.x API), compiled for the best architecture the flags allow.
// kernels/xsimd.hpp. The same run-time setting as highway's.
struct xsimd {
    static constexpr const char* name = "xsimd";
    MatvecReads matvec_reads = MatvecReads::stream_when_short;
};

}  // namespace backend
}  // namespace kernels

// The tags' public spelling: moelab::backend::scalar, ::highway, ::xsimd.
namespace backend = kernels::backend;

}  // namespace moelab
