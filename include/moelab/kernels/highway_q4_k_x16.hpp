// SPDX-License-Identifier: MIT
// moelab/kernels/highway_q4_k_x16.hpp — the Highway backend's int8 products
// for Q4_K rows interleaved 16 at a time (quant/q4_k_x16.hpp): 16 rows' dot
// products in the 16 lanes of one register.
//
// Depends on: moelab/quant/q4_k_x16.hpp, moelab/quant/q8_activations.hpp,
//             moelab/kernels/highway_int8.hpp (dot4_from, the AVX-512 guard),
//             <immintrin.h>, the standard library. kernels/highway.hpp
//             includes this header at its end.
//
// For a group of 16 rows, block b and token x, with isum_j the exact integer
// sum of sub-block j (lane r: row r):
//     sum  = sum_{j=0..7} f32(isum_j) * (sc_j * x.d[j])      fused multiply-adds, j in order
//     msum = sum_{j=0..7} m_j * x.dsum32[j]                  (x.dsum32 = x.d * sum of x.q)
//     acc  = acc + sum * d;  acc = acc - msum * dmin          lane r: row r's result
// which is the specification's sum (quant/q8_activations.hpp) with the
// scales factored per block: d sc_j x_j isum_j - dmin m_j x_j qsum_j. The
// integer sums are built from words of 4 quants: lane r of qs[8c + k] holds
// weights 4k .. 4k + 3 of sub-blocks 2c (low nibbles) and 2c + 1 (high), and
// one vpdpbusd adds their products with the token's 4 activations, broadcast.
//
// Cost per 16 rows and block (256 weights each): 32 loads, 96 nibble
// operations, 64 vpdpbusd, and about 70 for the scales: 16 per row and block,
// against about 40 in the file's layout (kernels/highway_int8.hpp). Measured in
// docs/kernels.md ("Q4_K interleaved 16 rows").
//
// Determinism: every (row, token) gets the same f32 operations in the same
// order whatever the number of tokens a call takes (the integers are exact in
// any order), so matvec and matmul agree bit for bit, and a row's result does
// not depend on which other rows a call covers.
#pragma once

#include "moelab/kernels/highway_int8.hpp"
#include "moelab/quant/q4_k_x16.hpp"

#if HWY_ARCH_X86 && HWY_TARGET <= HWY_AVX3
#include <immintrin.h>

#include <cstddef>
#include <cstdint>
#include <cstring>

HWY_BEFORE_NAMESPACE();
namespace moelab::detail::HWY_NAMESPACE::int8 {

// 4 activations as one int32, for a broadcast (vpdpbusd's {1to16} operand).
HWY_INLINE __m512i broadcast4(const std::int8_t* a) {
    std::int32_t word;
    std::memcpy(&word, a, 4);
    return _mm512_set1_epi32(word);
}

// Decode reads the interleaved groups as one stream; each block asks for the
// block kX16Ahead blocks on (4.7 KB ahead). Measured on one thread from DRAM
// (75 MB of Q4_K, 2,048 columns): none 20-25 GB/s, 2 blocks ahead into L1 36,
// 4 ahead 30-34 (L2 or L1), 8 ahead into L2 33 (docs/kernels.md).
inline constexpr std::size_t kX16Ahead = 2;

// Rows 16g .. 16g + 15 (w: the group's row_blocks blocks) against kT tokens;
// y[t * y_stride + r]. kPairs sub-block pairs are accumulated together: 4 for
// one token (8 independent vpdpbusd chains), 1 for a tile of tokens (2 chains
// per token); the integers, and so the bits, do not depend on it.
template <std::size_t kT, std::size_t kPairs>
HWY_INLINE void x16_rows(const block_q4_k_x16* HWY_RESTRICT w, std::size_t row_blocks, const Q8Row (&x)[kT],
                         float* HWY_RESTRICT y, std::size_t y_stride, bool prefetch) {
    const __m512i mask4 = _mm512_set1_epi8(0x0F);
    __m512 acc[kT];
    for (std::size_t t = 0; t < kT; ++t) acc[t] = _mm512_setzero_ps();
    for (std::size_t b = 0; b < row_blocks; ++b) {
        const block_q4_k_x16& B = w[b];
        if (prefetch) {
            const char* ahead = reinterpret_cast<const char*>(&B + kX16Ahead);
            for (std::size_t offset = 0; offset < sizeof(block_q4_k_x16); offset += 64)
                _mm_prefetch(ahead + offset, _MM_HINT_T0);
        }
        __m512 sum[kT], msum[kT];
        for (std::size_t t = 0; t < kT; ++t) sum[t] = msum[t] = _mm512_setzero_ps();
        for (std::size_t c0 = 0; c0 < 4; c0 += kPairs) {
            __m512i isum[kPairs][2][kT];  // [pair][low: sub-block 2c, high: 2c + 1][token]
            for (std::size_t p = 0; p < kPairs; ++p)
                for (std::size_t t = 0; t < kT; ++t) isum[p][0][t] = isum[p][1][t] = _mm512_setzero_si512();
            for (std::size_t k = 0; k < 8; ++k)
                for (std::size_t p = 0; p < kPairs; ++p) {
                    const std::size_t c = c0 + p;
                    const __m512i raw = _mm512_load_si512(B.qs[8 * c + k]);
                    const __m512i low = _mm512_and_si512(raw, mask4);
                    const __m512i high = _mm512_and_si512(_mm512_srli_epi16(raw, 4), mask4);
                    for (std::size_t t = 0; t < kT; ++t) {
                        const std::int8_t* a = x[t].q + 256 * b + 64 * c + 4 * k;
                        isum[p][0][t] = dot4_from(isum[p][0][t], low, broadcast4(a));
                        isum[p][1][t] = dot4_from(isum[p][1][t], high, broadcast4(a + 32));
                    }
                }
            for (std::size_t p = 0; p < kPairs; ++p)
                for (std::size_t half = 0; half < 2; ++half) {
                    const std::size_t j = 2 * (c0 + p) + half;
                    const __m512 sc = _mm512_cvtepi32_ps(_mm512_cvtepu8_epi32(_mm_load_si128(reinterpret_cast<const __m128i*>(B.sc[j]))));
                    const __m512 m = _mm512_cvtepi32_ps(_mm512_cvtepu8_epi32(_mm_load_si128(reinterpret_cast<const __m128i*>(B.m[j]))));
                    for (std::size_t t = 0; t < kT; ++t) {
                        sum[t] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(isum[p][half][t]), _mm512_mul_ps(sc, _mm512_set1_ps(x[t].d[8 * b + j])), sum[t]);
                        msum[t] = _mm512_fmadd_ps(m, _mm512_set1_ps(x[t].dsum32[8 * b + j]), msum[t]);
                    }
                }
        }
        const __m512 d = _mm512_cvtph_ps(_mm256_load_si256(reinterpret_cast<const __m256i*>(B.d)));
        const __m512 dmin = _mm512_cvtph_ps(_mm256_load_si256(reinterpret_cast<const __m256i*>(B.dmin)));
        for (std::size_t t = 0; t < kT; ++t) {
            acc[t] = _mm512_fmadd_ps(sum[t], d, acc[t]);
            acc[t] = _mm512_fnmadd_ps(msum[t], dmin, acc[t]);
        }
    }
    for (std::size_t t = 0; t < kT; ++t) _mm512_storeu_ps(y + t * y_stride, acc[t]);
}

// Prefill tiles: 16 rows x kX16Tokens tokens (8 chains of vpdpbusd, each quant
// word unpacked once for 4 tokens).
inline constexpr std::size_t kX16Tokens = 4;

}  // namespace moelab::detail::HWY_NAMESPACE::int8
HWY_AFTER_NAMESPACE();

namespace moelab::kernels {

// groups groups of 16 rows (16 * groups rows), cols columns, one token:
// y[r] for r < 16 * groups.
inline void matvec(backend::highway, const block_q4_k_x16* w, std::size_t groups, std::size_t cols, Q8Row x,
                   float* y) {
    namespace k = detail::HWY_NAMESPACE::int8;
    const std::size_t row_blocks = cols / block_q4_k::kWeights;
    const Q8Row xs[1] = {x};
    for (std::size_t g = 0; g < groups; ++g)
        k::x16_rows<1, 4>(w + g * row_blocks, row_blocks, xs, y + kInterleavedRows * g, 0, /*prefetch=*/true);
}

// The same against n_tokens tokens: y[t * y_stride + r].
inline void matmul(backend::highway, const block_q4_k_x16* w, std::size_t groups, std::size_t cols, Q8Rows x,
                   std::size_t n_tokens, float* y, std::size_t y_stride) {
    namespace k = detail::HWY_NAMESPACE::int8;
    const std::size_t row_blocks = cols / block_q4_k::kWeights;
    for (std::size_t g = 0; g < groups; ++g) {
        const block_q4_k_x16* group = w + g * row_blocks;
        float* y_group = y + kInterleavedRows * g;
        std::size_t t = 0;
        for (; t + k::kX16Tokens <= n_tokens; t += k::kX16Tokens) {
            Q8Row xs[k::kX16Tokens];
            for (std::size_t i = 0; i < k::kX16Tokens; ++i) xs[i] = x[t + i];
            k::x16_rows<k::kX16Tokens, 1>(group, row_blocks, xs, y_group + t * y_stride, y_stride, false);
        }
        for (; t < n_tokens; ++t) {
            const Q8Row xs[1] = {x[t]};
            k::x16_rows<1, 4>(group, row_blocks, xs, y_group + t * y_stride, 0, false);
        }
    }
}

}  // namespace moelab::kernels

#endif
