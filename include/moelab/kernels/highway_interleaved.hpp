// SPDX-License-Identifier: MIT
// moelab/kernels/highway_interleaved.hpp — the Highway backend's int8
// products for Q4_K and Q8_0 rows interleaved 16 at a time
// (quant/interleaved.hpp): 16 rows' dot products in the 16 lanes of one register.
//
// Depends on: moelab/quant/interleaved.hpp, moelab/quant/q8_activations.hpp,
//             moelab/kernels/highway_int8.hpp (dot4_from, the AVX-512 guard),
//             <immintrin.h>, the standard library. kernels/highway.hpp
//             includes this header at its end.
//
// Q4_K. For a group of 16 rows, block b and token x, with isum_j the exact integer
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
// against about 40 in the file's layout (kernels/highway_int8.hpp).
//
// Q8_0. The quants are stored + 128 (unsigned), so for block b
//     isum = -128 * x.qsum32[b] + sum_k vpdpbusd(qs + 128, 4 activations)  = sum qs a, exactly
//     acc  = acc + f32(isum) * (d * x.d[b])                                  blocks in order
// 8 vpdpbusd per 16 rows and block, no unpacking: about 2 instructions per row
// and block of 32 weights. Only with VNNI: vpmaddubsw would saturate on
// (qs + 128) x a pairs, so without it Q8_0 keeps the file's layout.
//
// Measured in docs/kernels.md ("Rows interleaved 16 at a time").
//
// Determinism: every (row, token) gets the same f32 operations in the same
// order whatever the number of tokens a call takes (the integers are exact in
// any order), so matvec and matmul agree bit for bit, and a row's result does
// not depend on which other rows a call covers.
#pragma once

#include "moelab/kernels/highway_int8.hpp"
#include "moelab/quant/interleaved.hpp"

#if HWY_ARCH_X86 && HWY_TARGET <= HWY_AVX3
#include <immintrin.h>

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <type_traits>

HWY_BEFORE_NAMESPACE();
namespace moelab::detail::HWY_NAMESPACE::int8 {

// 4 activations as one int32, for a broadcast (vpdpbusd's {1to16} operand).
HWY_INLINE __m512i broadcast4(const std::int8_t* a) {
    std::int32_t word;
    std::memcpy(&word, a, 4);
    return _mm512_set1_epi32(word);
}

// Decode reads the interleaved groups as one stream; each step asks for the
// bytes it reads, kX16AheadBytes further on. Measured on one thread from DRAM
// (75 MB of Q4_K, 2,048 columns): none 20-25 GB/s, 2 blocks (4.7 KB) ahead
// into L1 36, 4 ahead 30-34 (L2 or L1), 8 ahead into L2 33 (docs/kernels.md).
inline constexpr std::size_t kX16AheadBytes = 2 * sizeof(block_q4_k_x16);

HWY_INLINE void prefetch_ahead(const void* step, std::size_t bytes) {
    const char* ahead = static_cast<const char*>(step) + kX16AheadBytes;
    for (std::size_t offset = 0; offset < bytes; offset += 64) _mm_prefetch(ahead + offset, _MM_HINT_T0);
}

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
        if (prefetch) prefetch_ahead(&B, sizeof B);
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

#if HWY_TARGET <= HWY_AVX3_DL || defined(__AVX512VNNI__)
#define MOELAB_HIGHWAY_X16_Q8_0 1
// Q8_0: rows 16g .. 16g + 15 against kT tokens, kChunks chunks of 2 blocks at
// once (4 for one token: 8 chains; 1 for a tile: 2 chains per token).
template <std::size_t kT, std::size_t kChunks>
HWY_INLINE void x16_chunks(const block_q8_0_x16* HWY_RESTRICT w, std::size_t first_block, const Q8Row (&x)[kT],
                           __m512 (&acc)[kT], bool prefetch) {
    if (prefetch) prefetch_ahead(w, kChunks * sizeof(block_q8_0_x16));
    __m512i isum[kChunks][2][kT];  // [chunk][block of the chunk][token]
    for (std::size_t c = 0; c < kChunks; ++c)
        for (std::size_t h = 0; h < 2; ++h)
            for (std::size_t t = 0; t < kT; ++t)
                isum[c][h][t] = _mm512_set1_epi32(-128 * x[t].qsum32[first_block + 2 * c + h]);
    for (std::size_t k = 0; k < 8; ++k)
        for (std::size_t c = 0; c < kChunks; ++c)
            for (std::size_t h = 0; h < 2; ++h) {
                const __m512i q = _mm512_load_si512(w[c].qs[h][k]);
                for (std::size_t t = 0; t < kT; ++t)
                    isum[c][h][t] = _mm512_dpbusd_epi32(isum[c][h][t], q, broadcast4(x[t].q + 32 * (first_block + 2 * c + h) + 4 * k));
            }
    for (std::size_t c = 0; c < kChunks; ++c)
        for (std::size_t h = 0; h < 2; ++h) {
            const __m512 d = _mm512_cvtph_ps(_mm256_load_si256(reinterpret_cast<const __m256i*>(w[c].d[h])));
            for (std::size_t t = 0; t < kT; ++t)
                acc[t] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(isum[c][h][t]),
                                         _mm512_mul_ps(d, _mm512_set1_ps(x[t].d[first_block + 2 * c + h])), acc[t]);
        }
}

template <std::size_t kT, std::size_t kChunks>
HWY_INLINE void x16_rows(const block_q8_0_x16* HWY_RESTRICT w, std::size_t chunks, const Q8Row (&x)[kT],
                         float* HWY_RESTRICT y, std::size_t y_stride, bool prefetch) {
    __m512 acc[kT];
    for (std::size_t t = 0; t < kT; ++t) acc[t] = _mm512_setzero_ps();
    std::size_t c = 0;
    for (; c + kChunks <= chunks; c += kChunks) x16_chunks<kT, kChunks>(w + c, 2 * c, x, acc, prefetch);
    for (; c < chunks; ++c) x16_chunks<kT, 1>(w + c, 2 * c, x, acc, prefetch);
    for (std::size_t t = 0; t < kT; ++t) _mm512_storeu_ps(y + t * y_stride, acc[t]);
}
#else
#define MOELAB_HIGHWAY_X16_Q8_0 0
#endif

// Prefill tiles: 16 rows x kX16Tokens tokens (8 chains of vpdpbusd, each quant
// word loaded, and unpacked, once for 4 tokens).
inline constexpr std::size_t kX16Tokens = 4;

// groups groups of 16 rows, `blocks` X16 blocks per group, against n_tokens
// tokens: y[t * y_stride + r]. One token: the decode loop (more chains, and
// prefetching); tiles of kX16Tokens and single tokens after them otherwise.
// Every (row, token) gets the same f32 operations either way.
template <class X16>
HWY_INLINE void x16_products(const X16* w, std::size_t groups, std::size_t blocks, Q8Rows x, std::size_t n_tokens,
                             float* y, std::size_t y_stride) {
    constexpr std::size_t kOneToken = 4;  // Q4_K sub-block pairs, Q8_0 chunks at once: 8 chains
    for (std::size_t g = 0; g < groups; ++g) {
        const X16* group = w + g * blocks;
        float* y_group = y + kInterleavedRows * g;
        std::size_t t = 0;
        for (; t + kX16Tokens <= n_tokens; t += kX16Tokens) {
            Q8Row xs[kX16Tokens];
            for (std::size_t i = 0; i < kX16Tokens; ++i) xs[i] = x[t + i];
            x16_rows<kX16Tokens, 1>(group, blocks, xs, y_group + t * y_stride, y_stride, false);
        }
        for (; t < n_tokens; ++t) {
            const Q8Row xs[1] = {x[t]};
            x16_rows<1, kOneToken>(group, blocks, xs, y_group + t * y_stride, 0, /*prefetch=*/n_tokens == 1);
        }
    }
}

}  // namespace moelab::detail::HWY_NAMESPACE::int8
HWY_AFTER_NAMESPACE();

namespace moelab::kernels {

// The interleaved layouts this build has products for.
template <class X16>
concept HighwayInterleaved =
    std::is_same_v<X16, block_q4_k_x16> || (MOELAB_HIGHWAY_X16_Q8_0 != 0 && std::is_same_v<X16, block_q8_0_x16>);

// groups groups of 16 rows (16 * groups rows), cols columns, one token:
// y[r] for r < 16 * groups.
template <HighwayInterleaved X16>
void matvec(backend::highway, const X16* w, std::size_t groups, std::size_t cols, Q8Row x, float* y) {
    const Q8Rows one{x.q, x.d, x.dsum16, x.dsum32, x.q_kquant, x.qsum32, cols};
    detail::HWY_NAMESPACE::int8::x16_products(w, groups, cols / X16::kWeights, one, 1, y, 0);
}

// The same against n_tokens tokens: y[t * y_stride + r].
template <HighwayInterleaved X16>
void matmul(backend::highway, const X16* w, std::size_t groups, std::size_t cols, Q8Rows x, std::size_t n_tokens,
            float* y, std::size_t y_stride) {
    detail::HWY_NAMESPACE::int8::x16_products(w, groups, cols / X16::kWeights, x, n_tokens, y, y_stride);
}
#undef MOELAB_HIGHWAY_X16_Q8_0  // internal: no macro of this header outlives it

}  // namespace moelab::kernels

#endif
