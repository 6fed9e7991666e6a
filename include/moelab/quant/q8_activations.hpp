// SPDX-License-Identifier: MIT
// moelab/quant/q8_activations.hpp — the int8-activation product (opt-in):
// activations rounded to 8 bits, every weight block in integer form, and the
// specification of their dot product.
//
// Depends on: moelab/quant/{q8_0,q4_0,q4_k,q5_k,q6_k}.hpp, moelab/tensor.hpp
//             (AlignedAllocator), moelab/kernels/backend.hpp (the scalar
//             backend's overloads at the end), the standard library.
//
// Why. Decoding a quantized weight to f32 costs more instructions per byte
// than the memory system delivers bytes (docs/performance.md): the exact
// f32 path is compute-bound. If the activation vector is rounded to 8 bits
// once per matrix product, each 32-weight group becomes an integer dot
// product (64 byte multiply-adds per AVX-512 instruction) and one f32 scale.
// It changes the numbers — the activations are rounded — so it is a mode the
// caller chooses (ActivationPrecision::int8 in ops/linear.hpp), never the
// default; docs/quantization.md measures how far it moves the logits.
//
// Activations. Each row of cols values (cols a multiple of 32) is cut into
// blocks of 32; block b keeps
//
//     d[b]   = max_i |x[32b + i]| / 127                 (f32, not rounded further)
//     q[i]   = round_half_even(x[i] / d[b])  in [-127, 127]      x[i] ~ d[b] q[i]
//     dsum16 = d[b] * (sum of q over each half block)   (for offsets of 16-weight groups)
//     dsum32 = d[b] * (sum of q over the block)         (for offsets of 32-weight groups)
//     qsum32 = sum of q over the block                  (an integer; for interleaved Q8_0's +128)
//
// (llama.cpp rounds d to f16 for 32-blocks and shares one d per 256 values
// for its k-quants; one f32 d per 32 values is at least as fine.)
//
// Weights in integer form. Every format's weight is  w[i] = s[g] q[i] - o[g]
// for a small integer q[i] and a group g of G consecutive weights:
//
//     type   G   q[i]           s[g]          o[g]
//     Q8_0   32  qs (signed)    d             0
//     Q4_0   32  nibble 0..15   d             8 d
//     Q4_K   32  nibble 0..15   d sc[g]       dmin m[g]
//     Q5_K   32  5 bits 0..31   d sc[g]       dmin m[g]
//     Q6_K   16  6 bits 0..63   d sc[g]       32 d sc[g]
//
// with exactly the values dequantize_block() gives (each product is exact in
// f32; tests check integer_form against dequantize_block; only a zero may
// differ in sign, s q - o = +0 where s (q - 32) is -0). Then
//
//     sum_i w[i] x[i] ~ sum_g (s[g] d[b(g)]) * isum[g]  -  sum_g o[g] * dsum[g]
//     isum[g] = sum_{i in g} q_w[i] q_x[i]      (exact: |isum| < 2^20)
//
// The scalar dot below is the specification: it accumulates the first sum
// and the second sum separately, group by group in weight order, and
// returns their difference. SIMD backends compute the same integers exactly
// and accumulate the f32 terms in lanes (a different order: they match
// within a tolerance derived from the length). Where the offset is a whole
// number of quants (Q4_0: o = 8 s, Q6_K: o = 32 s) they may also fold it into
// the integers, isum'[g] = sum (q_w - o/s) q_x, which is exact too and only
// drops rounding steps (kernels/highway_int8.hpp).
#pragma once

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <vector>

#include "moelab/kernels/backend.hpp"
#include "moelab/quant/q4_0.hpp"
#include "moelab/quant/q4_k.hpp"
#include "moelab/quant/q5_k.hpp"
#include "moelab/quant/q6_k.hpp"
#include "moelab/quant/q8_0.hpp"
#include "moelab/tensor.hpp"

namespace moelab {

// ---------------------------------------------------------------------------
// Activations: (n_tokens, cols) values in blocks of 32.
// ---------------------------------------------------------------------------
inline constexpr std::size_t kQ8ActivationBlock = 32;

// One token's quantized activations (views into Q8Activations).
struct Q8Row {
    const std::int8_t* q = nullptr;  // (cols)
    const float* d = nullptr;        // (cols / 32)
    const float* dsum16 = nullptr;   // (cols / 16)
    const float* dsum32 = nullptr;   // (cols / 32)
    const std::int8_t* q_kquant = nullptr;  // (cols) q in K-quant nibble order (below); SIMD kernels only
    const std::int32_t* qsum32 = nullptr;   // (cols / 32)
};

// Consecutive tokens' rows: token t of the view is row first + t of the owner.
struct Q8Rows {
    const std::int8_t* q = nullptr;
    const float* d = nullptr;
    const float* dsum16 = nullptr;
    const float* dsum32 = nullptr;
    const std::int8_t* q_kquant = nullptr;
    const std::int32_t* qsum32 = nullptr;
    std::size_t cols = 0;
    Q8Row operator[](std::size_t t) const {
        return {q + t * cols, d + t * (cols / 32), dsum16 + t * (cols / 16), dsum32 + t * (cols / 32),
                q_kquant ? q_kquant + t * cols : nullptr, qsum32 + t * (cols / 32)};
    }
    Q8Rows from(std::size_t first) const {
        const Q8Row r = (*this)[first];
        return {r.q, r.d, r.dsum16, r.dsum32, r.q_kquant, r.qsum32, cols};
    }
};

// q_kquant holds the bytes of q again, each 128 (per token) in the order of
// their 32-byte quarters 0, 2, 1, 3: the order in which a Q4_K/Q5_K block's
// 64 bytes of qs hold its sub-blocks (low nibbles: 4p and 4p + 2, high
// nibbles: 4p + 1 and 4p + 3), so a SIMD kernel loads matching activations
// with one load instead of gathering two halves per token. The specification
// reads q only.
struct Q8Activations {
    std::size_t n_tokens = 0, cols = 0;
    std::vector<std::int8_t, AlignedAllocator<std::int8_t>> q, q_kquant;  // (n_tokens, cols), 64-byte aligned
    std::vector<float> d, dsum16, dsum32;                                 // (n_tokens, cols / 32 | 16 | 32)
    std::vector<std::int32_t> qsum32;                                     // (n_tokens, cols / 32)
    bool has_kquant_order = false;  // q_kquant written by the last quantize_activations
    Q8Rows rows() const {
        return {q.data(), d.data(), dsum16.data(), dsum32.data(), has_kquant_order ? q_kquant.data() : nullptr,
                qsum32.data(), cols};
    }
};

// Sizes out for (n_tokens, cols) activations; quantize_activation_rows() then
// fills any rows of it, in any order or split (each row is independent).
// Buffers only grow. kquant_order: also hold q_kquant (only SIMD Q4_K/Q5_K
// kernels read it; ops::round_for skips it for other weights).
inline void resize_activations(Q8Activations& out, std::size_t n_tokens, std::size_t cols, bool kquant_order) {
    const std::size_t n = n_tokens * cols, blocks = n / kQ8ActivationBlock;
    out.n_tokens = n_tokens;
    out.cols = cols;
    out.has_kquant_order = kquant_order;
    if (out.q.size() < n) out.q.resize(n);
    if (kquant_order && out.q_kquant.size() < n) out.q_kquant.resize(n);
    if (out.d.size() < blocks)
        out.d.resize(blocks), out.dsum32.resize(blocks), out.dsum16.resize(2 * blocks), out.qsum32.resize(blocks);
}

// Rows [row_begin, row_end) of x: (out.n_tokens, out.cols) -> out, sized by
// resize_activations(). cols must be a multiple of 32 (every quantized weight
// row is). A block holding an infinity or NaN gets d = NaN, so every product
// that reads it is NaN, as in the f32 path.
inline void quantize_activation_rows(const float* x, std::size_t row_begin, std::size_t row_end, Q8Activations& out) {
    constexpr std::size_t B = kQ8ActivationBlock;
    const std::size_t cols = out.cols;
    for (std::size_t b = row_begin * cols / B; b < row_end * cols / B; ++b) {
        const float* xb = x + b * B;
        std::int8_t* qb = out.q.data() + b * B;
        // Written as flat loops without early exits so that compilers vectorize them.
        // max |x| on the bit patterns: without the sign bit, a finite float's bits
        // order as its magnitude does, and an infinity or NaN has bits >= those of
        // infinity. (A float max reduction stays scalar without -ffast-math: a
        // row of 2,048 took 2.4 us that way, 1.5-1.6 us this way, docs/kernels.md.)
        std::uint32_t amax_bits = 0;
        for (std::size_t i = 0; i < B; ++i) amax_bits = std::max(amax_bits, std::bit_cast<std::uint32_t>(xb[i]) & 0x7FFFFFFFu);
        if (amax_bits >= 0x7F800000u) {  // an infinity or NaN
            for (std::size_t i = 0; i < B; ++i) qb[i] = 0;
            out.qsum32[b] = 0;
            out.d[b] = out.dsum32[b] = out.dsum16[2 * b] = out.dsum16[2 * b + 1] =
                std::numeric_limits<float>::quiet_NaN();
            continue;
        }
        const float amax = std::bit_cast<float>(amax_bits);
        const float d = amax / 127.0f;
        const float divisor = d > 0.0f ? d : 1.0f;  // an all-zero block: q = 0
        int q[B];
        for (std::size_t i = 0; i < B; ++i)  // round half to even (the FPU's mode), as quant/block.hpp
            q[i] = static_cast<int>(std::clamp(std::nearbyint(xb[i] / divisor), -127.0f, 127.0f));
        int sum_low = 0, sum_high = 0;
        for (std::size_t i = 0; i < B / 2; ++i) sum_low += q[i], sum_high += q[B / 2 + i];
        for (std::size_t i = 0; i < B; ++i) qb[i] = static_cast<std::int8_t>(q[i]);
        out.d[b] = d;
        out.dsum16[2 * b] = d * static_cast<float>(sum_low);
        out.dsum16[2 * b + 1] = d * static_cast<float>(sum_high);
        out.dsum32[b] = d * static_cast<float>(sum_low + sum_high);
        out.qsum32[b] = sum_low + sum_high;
    }
    for (std::size_t t = row_begin; out.has_kquant_order && t < row_end; ++t) {  // quarters 0, 2, 1, 3 of every 128 (a shorter tail as is)
        const std::int8_t* from = out.q.data() + t * cols;
        std::int8_t* to = out.q_kquant.data() + t * cols;
        std::size_t i = 0;
        for (; i + 128 <= cols; i += 128)
            for (std::size_t quarter : {0, 2, 1, 3}) to = std::copy_n(from + i + 32 * quarter, 32, to);
        std::copy(from + i, from + cols, to);
    }
}

// x: (n_tokens, cols) -> out, all rows on the calling thread.
inline void quantize_activations(const float* x, std::size_t n_tokens, std::size_t cols, Q8Activations& out,
                                 bool kquant_order = true) {
    resize_activations(out, n_tokens, cols, kquant_order);
    quantize_activation_rows(x, 0, n_tokens, out);
}

// ---------------------------------------------------------------------------
// Weights in integer form: w[i] = scale[i / kGroup] * q[i] - offset[i / kGroup].
// ---------------------------------------------------------------------------
template <std::size_t K, std::size_t G>
struct IntegerBlock {
    static constexpr std::size_t kWeights = K, kGroup = G;
    std::int16_t q[K];
    float scale[K / G];
    float offset[K / G];
};

inline IntegerBlock<32, 32> integer_form(const block_q8_0& b) {
    IntegerBlock<32, 32> out;
    for (std::size_t i = 0; i < 32; ++i) out.q[i] = b.qs[i];
    out.scale[0] = f16_to_f32(b.d);
    out.offset[0] = 0.0f;
    return out;
}

inline IntegerBlock<32, 32> integer_form(const block_q4_0& b) {
    IntegerBlock<32, 32> out;
    for (std::size_t l = 0; l < 16; ++l) {
        out.q[l] = static_cast<std::int16_t>(b.qs[l] & 0x0F);
        out.q[l + 16] = static_cast<std::int16_t>(b.qs[l] >> 4);
    }
    out.scale[0] = f16_to_f32(b.d);
    out.offset[0] = 8.0f * out.scale[0];  // exact: a power of two times an f16
    return out;
}

// Q4_K and Q5_K share the scale layout (k_scales.hpp); Q5_K adds bit j of qh[l].
template <class Block>
IntegerBlock<256, 32> integer_form_k(const Block& b) {
    IntegerBlock<256, 32> out;
    const float d = f16_to_f32(b.d), dmin = f16_to_f32(b.dmin);
    const KScales k = unpack_k_scales(b.scales);
    for (std::size_t j = 0; j < 8; ++j) {
        out.scale[j] = d * static_cast<float>(k.scale[j]);
        out.offset[j] = dmin * static_cast<float>(k.min[j]);
        const std::uint8_t* chunk = b.qs + 32 * (j / 2);
        const unsigned shift = 4 * (j % 2);
        for (std::size_t l = 0; l < 32; ++l) {
            unsigned q = (chunk[l] >> shift) & 0x0Fu;
            if constexpr (requires { b.qh; }) q |= ((b.qh[l] >> j) & 1u) << 4;
            out.q[32 * j + l] = static_cast<std::int16_t>(q);
        }
    }
    return out;
}
inline IntegerBlock<256, 32> integer_form(const block_q4_k& b) { return integer_form_k(b); }
inline IntegerBlock<256, 32> integer_form(const block_q5_k& b) { return integer_form_k(b); }

inline IntegerBlock<256, 16> integer_form(const block_q6_k& b) {
    IntegerBlock<256, 16> out;
    const float d = f16_to_f32(b.d);
    for (std::size_t g = 0; g < 16; ++g) {
        out.scale[g] = d * static_cast<float>(b.scales[g]);
        out.offset[g] = 32.0f * out.scale[g];
    }
    for (std::size_t h = 0; h < 2; ++h)
        for (std::size_t g = 0; g < 4; ++g)
            for (std::size_t l = 0; l < 32; ++l) {
                const unsigned low = (b.ql[64 * h + 32 * (g % 2) + l] >> (g < 2 ? 0 : 4)) & 0x0Fu;
                const unsigned high = (b.qh[32 * h + l] >> (2 * g)) & 0x03u;
                out.q[128 * h + 32 * g + l] = static_cast<std::int16_t>(low | (high << 4));
            }
    return out;
}

// A block type with an integer form.
template <class Block>
concept IntegerFormBlock = requires(const Block& b) { integer_form(b); };

// ---------------------------------------------------------------------------
// The specification: sum_i w[i] x[i] for n weights (n a multiple of
// Block::kWeights) against one token's quantized activations.
// ---------------------------------------------------------------------------
template <IntegerFormBlock Block>
float q8_dot_reference(const Block* w, Q8Row x, std::size_t n) {
    float scaled = 0.0f, offsets = 0.0f;
    for (std::size_t b = 0; b < n / Block::kWeights; ++b) {
        const auto block = integer_form(w[b]);
        constexpr std::size_t G = decltype(block)::kGroup;
        for (std::size_t g = 0; g < Block::kWeights / G; ++g) {
            const std::size_t first = b * Block::kWeights + g * G;  // the group's first weight
            std::int32_t isum = 0;
            for (std::size_t i = 0; i < G; ++i)
                isum += std::int32_t{block.q[g * G + i]} * std::int32_t{x.q[first + i]};
            scaled += (block.scale[g] * x.d[first / 32]) * static_cast<float>(isum);
            offsets += block.offset[g] * (G == 16 ? x.dsum16[first / 16] : x.dsum32[first / 32]);
        }
    }
    return scaled - offsets;
}

}  // namespace moelab

// ---------------------------------------------------------------------------
// The scalar backend's int8-activation products: the reference above, row by
// row and token by token. Other backends provide the same three overloads
// (kernels/highway_int8.hpp); ops/linear.hpp uses them when the caller asks
// for ActivationPrecision::int8 and the backend has them for the block type.
// ---------------------------------------------------------------------------
namespace moelab::kernels {

template <IntegerFormBlock Block>
float dot(backend::scalar, const Block* w, Q8Row x, std::size_t n) {
    return q8_dot_reference(w, x, n);
}

// W (rows, cols), x: one token, y (rows).
template <IntegerFormBlock Block>
void matvec(backend::scalar, const Block* w, std::size_t rows, std::size_t cols, Q8Row x, float* y) {
    const std::size_t row_blocks = cols / Block::kWeights;
    for (std::size_t r = 0; r < rows; ++r) y[r] = q8_dot_reference(w + r * row_blocks, x, cols);
}

// W (rows, cols), x: n_tokens rows, y[t * y_stride + r].
template <IntegerFormBlock Block>
void matmul(backend::scalar b, const Block* w, std::size_t rows, std::size_t cols, Q8Rows x, std::size_t n_tokens,
            float* y, std::size_t y_stride) {
    for (std::size_t t = 0; t < n_tokens; ++t) matvec(b, w, rows, cols, x[t], y + t * y_stride);
}

}  // namespace moelab::kernels
