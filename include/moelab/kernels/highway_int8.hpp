// SPDX-License-Identifier: MIT
// moelab/kernels/highway_int8.hpp — the Highway backend's int8-activation
// products for quantized weights (the opt-in ActivationPrecision::int8 mode;
// quant/q8_activations.hpp is the specification, read it first).
//
// Depends on: moelab/quant/q8_activations.hpp, moelab/kernels/highway_quant.hpp
//             (unpack_k_scales_simd), Highway 1.0.x (target selection),
//             <immintrin.h>, the standard library. kernels/highway.hpp
//             includes this header at its end.
//
// Only on x86 targets with AVX-512BW (Highway's AVX3 and better). Highway
// 1.0.3 has no byte multiply-add (SumOfMulQuadAccumulate came in a later
// release), so the integer products call the instructions through
// <immintrin.h>, on the target Highway compiled for:
//   AVX-512 VNNI:          vpdpbusd — 64 u8 x s8 products summed in fours
//                          into 16 int32 lanes, one instruction;
//   AVX-512BW without VNNI: vpmaddubsw (pairs into int16) then vpmaddwd
//                          (pairs of those into int32), the same sums.
// On other targets this header declares nothing: ops::linear sees no int8
// product and runs the exact f32 path (has_int8_product in ops/linear.hpp).
//
// Every weight type is walked in *chunks of 64 weights* (two 32-weight blocks
// of Q8_0/Q4_0, a quarter of a Q4_K/Q5_K/Q6_K super-block). A chunk's quants
// become 64 unsigned bytes q in weight order, its activations are 64 signed
// bytes a, and
//     lanes = base + dot4(q, a)  lane i = sum of q[j] a[j], j = 4i .. 4i+3 (exact)
//     acc  += f32(lanes) * s     s lane i = weight scale * activation scale of those 4 weights
// A whole-quant offset (Q4_0's q - 8, Q6_K's q - 32, and, with VNNI, Q8_0's
// signed quants taken as q + 128) stays in the integers: base = -offset * (sums of four a),
// once per token and chunk, so the lanes are exactly sum((q - offset) a). The
// k-quants' mins are f32 (dmin m[j], not a whole number of quants): they are
// multiplied by the activations' precomputed d * sum(q) once a block, into the
// same accumulator. Each row's result is reduce(acc); the f32 sums are in lane
// order (tests/test_int8.cpp derives the tolerance against the scalar
// reference, which sums the same integers in another order).
//
// Cost per (row, token, chunk), the inner loop of prefill: one dot4, one
// int-to-f32 conversion, one multiply (or lane permute) for s, one
// multiply-add. The quants of a chunk are decoded once for all the tokens of
// a tile, and a token's activations (and base) once for all its rows
// (measured in docs/kernels.md, "int8 prefill tiles").
//
// Determinism rule (kernels/backend.hpp): matvec and matmul both run rows()
// below, which gives every (row, token) the same operations whatever the tile
// (matmul decodes each block once for several tokens), so they agree bit for
// bit for any split.
#pragma once

#if !defined(HWY_COMPILE_ONLY_STATIC) && !defined(HWY_COMPILE_ONLY_EMU128) && \
    !defined(HWY_COMPILE_ONLY_SCALAR)
#define HWY_COMPILE_ONLY_STATIC 1  // see highway.hpp
#endif

#include <hwy/highway.h>

#include <cstddef>
#include <cstdint>
#include <type_traits>

#include "moelab/kernels/backend.hpp"
#include "moelab/kernels/highway_quant.hpp"
#include "moelab/quant/q8_activations.hpp"

#if HWY_ARCH_X86 && HWY_TARGET <= HWY_AVX3
#include <immintrin.h>
// VNNI comes with AVX3_DL, and on its own with some CPUs that Highway 1.0.3
// files under AVX3 (e.g. AMD Zen 4, whose AVX3_DL test also wants VPCLMULQDQ...).
#if HWY_TARGET <= HWY_AVX3_DL || defined(__AVX512VNNI__)
#define MOELAB_HIGHWAY_VNNI 1
#else
#define MOELAB_HIGHWAY_VNNI 0
#endif

HWY_BEFORE_NAMESPACE();
namespace moelab::detail::HWY_NAMESPACE::int8 {

inline constexpr std::size_t kMatvecRows = 4;

// lane i = sum_{j = 4i}^{4i+3} q[j] a[j]; q unsigned bytes <= 128, a signed.
HWY_INLINE __m512i dot4(__m512i q, __m512i a) {
#if MOELAB_HIGHWAY_VNNI
    return _mm512_dpbusd_epi32(_mm512_setzero_si512(), q, a);
#else
    // Pairs into int16 cannot saturate: 2 * 128 * 127 < 2^15.
    return _mm512_madd_epi16(_mm512_maddubs_epi16(q, a), _mm512_set1_epi16(1));
#endif
}

// An f16 scale to f32 with F16C's one instruction (exact, like f16_to_f32).
HWY_INLINE float f16_scale(f16 h) { return _cvtsh_ss(h.bits); }

HWY_INLINE __m256i nibbles_low(__m256i v) { return _mm256_and_si256(v, _mm256_set1_epi8(0x0F)); }
HWY_INLINE __m256i nibbles_high(__m256i v) { return _mm256_and_si256(_mm256_srli_epi16(v, 4), _mm256_set1_epi8(0x0F)); }
HWY_INLINE __m512i join(__m256i low, __m256i high) {
    return _mm512_inserti64x4(_mm512_castsi256_si512(low), high, 1);
}
// Lanes 0..7 = v[0], lanes 8..15 = v[1].
HWY_INLINE __m512 halves(__m128 v) {
    return _mm512_permutexvar_ps(_mm512_setr_epi32(0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1), _mm512_castps128_ps512(v));
}
// Lanes 0..7 = f16 a, lanes 8..15 = f16 b, widened exactly by one vcvtph2ps
// (two blocks' scales: converting each on its own and broadcasting the
// halves took three times the instructions, per row and chunk of decode).
HWY_INLINE __m512 halves(f16 a, f16 b) {
    return halves(_mm_cvtph_ps(_mm_cvtsi32_si128(static_cast<int>(a.bits | (std::uint32_t{b.bits} << 16)))));
}
// Lane i = v[c0 + (i >> kShift)]: a group's scale spread over its lanes.
template <int kShift>
HWY_INLINE __m512 spread(__m512 v, int c0) {
    const __m512i lane = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
    return _mm512_permutexvar_ps(_mm512_add_epi32(_mm512_set1_epi32(c0), _mm512_srli_epi32(lane, kShift)), v);
}
// Lanes 0..7 = v[c0], lanes 8..15 = v[c0 + 2]: the k-quants' chunk of sub-blocks c0 and c0 + 2.
HWY_INLINE __m512 spread2(__m512 v, int c0) {
    const __m512i lane = _mm512_setr_epi32(0, 0, 0, 0, 0, 0, 0, 0, 2, 2, 2, 2, 2, 2, 2, 2);
    return _mm512_permutexvar_ps(_mm512_add_epi32(_mm512_set1_epi32(c0), lane), v);
}
// lanes = base + dot4(q, a): the products start from int32 lanes `base` (an
// integer offset, below), one instruction with VNNI.
HWY_INLINE __m512i dot4_from(__m512i base, __m512i q, __m512i a) {
#if MOELAB_HIGHWAY_VNNI
    return _mm512_dpbusd_epi32(base, q, a);
#else
    return _mm512_add_epi32(base, dot4(q, a));
#endif
}
// Lane i = -k * (a[4i] + .. + a[4i + 3]): a weight offset of k quants, as the
// integers dot4_from starts from. The activations are within [-127, 127].
template <std::uint8_t k>
HWY_INLINE __m512i minus_k_sums(__m512i a) {
    return dot4(_mm512_set1_epi8(static_cast<char>(k)), _mm512_sub_epi8(_mm512_setzero_si512(), a));
}
// The scale of a 64-weight chunk's activations: lanes 0..7 = d[0], 8..15 = d[1].
HWY_INLINE __m512 activation_scales(const float* d) {
    return halves(_mm_castsi128_ps(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(d))));
}
// acc += f32(lanes) * (weight scale x activation scale), lane by lane.
HWY_INLINE void accumulate(__m512i lanes, __m512 weight_scale, __m512 activation_scale, __m512& acc) {
    acc = _mm512_fmadd_ps(_mm512_cvtepi32_ps(lanes), _mm512_mul_ps(weight_scale, activation_scale), acc);
}

// ---------------------------------------------------------------------------
// One chunk position of kRows rows against kT tokens. The loops run chunk by
// chunk: each row's quants and scales are decoded once for the kT tokens, and
// each token's activations (and their integer offset) are loaded once for the
// kRows rows; then every (row, token) costs one dot4_from, one conversion and
// two multiply-adds. acc[r][t] is that pair's accumulator. Every (row, token)
// gets the same operations whatever kRows and kT are (matvec: kT = 1; matmul:
// tiles), so matvec and matmul agree bit for bit. x[t] points at token t's
// activations for the first weight of the block (pair).
// ---------------------------------------------------------------------------

// Q8_0, two blocks a chunk: w = d qs. With VNNI, the signed quants go in as
// qs + 128 (unsigned, flipping the top bit) and the products start from
// -128 * sum(a), so the integers are exactly sum(qs a). Without VNNI,
// vpmaddubsw would saturate on (qs + 128) a pairs: |qs| goes in as the
// unsigned operand and sign(qs) moves onto a.
template <std::size_t kRows, std::size_t kT>
HWY_INLINE void two_blocks(const block_q8_0* const (&b0)[kRows], const block_q8_0* const (&b1)[kRows],
                           const Q8Row (&x)[kT], __m512 (&acc)[kRows][kT]) {
    __m512i q[kRows];
    __m512 d[kRows];
    [[maybe_unused]] __mmask64 negative[kRows];
    for (std::size_t r = 0; r < kRows; ++r) {
        q[r] = join(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(b0[r]->qs)),
                    _mm256_loadu_si256(reinterpret_cast<const __m256i*>(b1[r]->qs)));
        d[r] = halves(b0[r]->d, b1[r]->d);
#if MOELAB_HIGHWAY_VNNI
        q[r] = _mm512_xor_si512(q[r], _mm512_set1_epi8(static_cast<char>(0x80)));
#else
        negative[r] = _mm512_movepi8_mask(q[r]);
        q[r] = _mm512_abs_epi8(q[r]);
#endif
    }
    for (std::size_t t = 0; t < kT; ++t) {
        const __m512i a = _mm512_loadu_si512(x[t].q);
        const __m512 s = activation_scales(x[t].d);
#if MOELAB_HIGHWAY_VNNI
        const __m512i base = minus_k_sums<128>(a);
        for (std::size_t r = 0; r < kRows; ++r) accumulate(dot4_from(base, q[r], a), d[r], s, acc[r][t]);
#else
        for (std::size_t r = 0; r < kRows; ++r)
            accumulate(dot4(q[r], _mm512_mask_sub_epi8(a, negative[r], _mm512_setzero_si512(), a)), d[r], s, acc[r][t]);
#endif
    }
}

// Q4_0, two blocks: w = d (q - 8); weights 0..15 in the low nibbles, 16..31 in
// the high. The products start from -8 * sum(a): exactly sum((q - 8) a).
HWY_INLINE __m256i q4_0_quants(const block_q4_0& b) {
    const __m128i raw = _mm_loadu_si128(reinterpret_cast<const __m128i*>(b.qs));
    const __m256i both = _mm256_inserti128_si256(_mm256_castsi128_si256(raw), _mm_srli_epi16(raw, 4), 1);
    return nibbles_low(both);
}
template <std::size_t kRows, std::size_t kT>
HWY_INLINE void two_blocks(const block_q4_0* const (&b0)[kRows], const block_q4_0* const (&b1)[kRows],
                           const Q8Row (&x)[kT], __m512 (&acc)[kRows][kT]) {
    __m512i q[kRows];
    __m512 d[kRows];
    for (std::size_t r = 0; r < kRows; ++r) {
        q[r] = join(q4_0_quants(*b0[r]), q4_0_quants(*b1[r]));
        d[r] = halves(b0[r]->d, b1[r]->d);
    }
    for (std::size_t t = 0; t < kT; ++t) {
        const __m512i a = _mm512_loadu_si512(x[t].q);
        const __m512i base = minus_k_sums<8>(a);
        const __m512 s = activation_scales(x[t].d);
        for (std::size_t r = 0; r < kRows; ++r) accumulate(dot4_from(base, q[r], a), d[r], s, acc[r][t]);
    }
}

// Q4_K / Q5_K: w = d sc[j] q - dmin m[j]. Sub-blocks 2i and 2i + 1 are the
// low and high nibbles of qs[32i .. 32i + 31], so one 64-byte load of
// qs[64p ..] holds sub-blocks 4p .. 4p + 3: its low nibbles are the chunk
// (4p, 4p + 2) and its high nibbles the chunk (4p + 1, 4p + 3); the
// activations in that order are Q8Row::q_kquant. Q5_K's bit 4 of weight l of sub-block j is bit j of qh[l]. The
// offsets (dmin m[j] times the activations' d sum(q), lanes 0..7) go into the
// same accumulator once a block.
template <std::size_t kRows, std::size_t kT, class Block>
HWY_INLINE void k_block(const Block* const (&b)[kRows], const Q8Row (&x)[kT], __m512 (&acc)[kRows][kT]) {
    __m512 scale[kRows][kT];  // d sc[j] x.d[j], lanes 0..7
    [[maybe_unused]] __m512i qh[kRows];  // qh in the low 32 bytes, qh >> 2 in the high
    for (std::size_t r = 0; r < kRows; ++r) {
        HWY_ALIGN std::uint8_t k[16];  // sc[0..7], m[0..7]
        quant::unpack_k_scales_simd(b[r]->scales, k);
        // d sc[j] in lanes 0..7 and dmin m[j] in 8..15: one widening, one conversion and one multiply for both
        const __m512 factors = _mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_cvtepu8_epi32(_mm_load_si128(reinterpret_cast<const __m128i*>(k)))),
                                             halves(b[r]->d, b[r]->dmin));
        const __m256 sc = _mm512_castps512_ps256(factors);
        const __m512 mins = _mm512_zextps256_ps512(_mm512_extractf32x8_ps(factors, 1));
        for (std::size_t t = 0; t < kT; ++t) {
            scale[r][t] = _mm512_zextps256_ps512(_mm256_mul_ps(sc, _mm256_loadu_ps(x[t].d)));
            acc[r][t] = _mm512_fnmadd_ps(mins, _mm512_zextps256_ps512(_mm256_loadu_ps(x[t].dsum32)), acc[r][t]);
        }
        if constexpr (requires { b[r]->qh; }) {
            const __m256i bits = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(b[r]->qh));
            qh[r] = join(bits, _mm256_srli_epi16(bits, 2));
        }
    }
    const __m512i mask4 = _mm512_set1_epi8(0x0F);
    for (int p = 0; p < 2; ++p) {
        __m512i low[kRows], high[kRows];
        for (std::size_t r = 0; r < kRows; ++r) {
            const __m512i raw = _mm512_loadu_si512(b[r]->qs + 64 * p);
            low[r] = _mm512_and_si512(raw, mask4);
            high[r] = _mm512_and_si512(_mm512_srli_epi16(raw, 4), mask4);
            if constexpr (requires { b[r]->qh; }) {  // bits 4p, 4p + 2 (low) and 4p + 1, 4p + 3 (high), to bit 4
                const __m512i one = _mm512_set1_epi8(1);
                low[r] = _mm512_or_si512(low[r], _mm512_slli_epi16(_mm512_and_si512(qh[r], one), 4));
                high[r] = _mm512_or_si512(high[r], _mm512_slli_epi16(_mm512_and_si512(_mm512_srli_epi16(qh[r], 1), one), 4));
                qh[r] = _mm512_srli_epi16(qh[r], 4);
            }
        }
        for (std::size_t t = 0; t < kT; ++t) {
            const __m512i a_low = _mm512_loadu_si512(x[t].q_kquant + 128 * p);  // sub-blocks 4p, 4p + 2
            const __m512i a_high = _mm512_loadu_si512(x[t].q_kquant + 128 * p + 64);  // 4p + 1, 4p + 3
            for (std::size_t r = 0; r < kRows; ++r) {  // lanes 0..7: sub-block 4p (+1), 8..15: 4p + 2 (+1)
                acc[r][t] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(dot4(low[r], a_low)), spread2(scale[r][t], 4 * p), acc[r][t]);
                acc[r][t] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(dot4(high[r], a_high)), spread2(scale[r][t], 4 * p + 1), acc[r][t]);
            }
        }
    }
}

// Q6_K: w = d sc[g] (q - 32), groups of 16. Chunk c = half h = c / 2, groups
// 4c .. 4c + 3: low 4 bits from the low (c even) or high (c odd) nibbles of
// ql[64h .. 64h + 63], high 2 bits from qh[32h + l]. The products start from
// -32 * sum(a): exactly sum((q - 32) a).
template <std::size_t kRows, std::size_t kT>
HWY_INLINE void q6_k_block(const block_q6_k* const (&b)[kRows], const Q8Row (&x)[kT], __m512 (&acc)[kRows][kT]) {
    __m512 sc[kRows];  // d sc[g], lane g
    for (std::size_t r = 0; r < kRows; ++r)
        sc[r] = _mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(b[r]->scales)))),
                              _mm512_set1_ps(f16_scale(b[r]->d)));
    const __m512i mask4 = _mm512_set1_epi8(0x0F);
    const __m256i mask2 = _mm256_set1_epi8(0x03);
    for (int c = 0; c < 4; ++c) {
        const int h = c / 2, part = c % 2;
        __m512i q[kRows];
        __m512 scale[kRows];
        for (std::size_t r = 0; r < kRows; ++r) {
            const __m512i ql = _mm512_loadu_si512(b[r]->ql + 64 * h);
            const __m256i qh = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(b[r]->qh + 32 * h));
            const __m512i low = _mm512_and_si512(part == 0 ? ql : _mm512_srli_epi16(ql, 4), mask4);
            const __m256i qh_part = part == 0 ? qh : _mm256_srli_epi16(qh, 4);
            const __m512i high = join(_mm256_and_si256(qh_part, mask2), _mm256_and_si256(_mm256_srli_epi16(qh_part, 2), mask2));
            q[r] = _mm512_or_si512(low, _mm512_slli_epi16(high, 4));
            scale[r] = spread<2>(sc[r], 4 * c);  // lane i of the chunk belongs to group 4c + i / 4
        }
        for (std::size_t t = 0; t < kT; ++t) {
            const __m512i a = _mm512_loadu_si512(x[t].q + 64 * c);
            const __m512i base = minus_k_sums<32>(a);
            const __m512 s = activation_scales(x[t].d + 2 * c);
            for (std::size_t r = 0; r < kRows; ++r) accumulate(dot4_from(base, q[r], a), scale[r], s, acc[r][t]);
        }
    }
}

// ---------------------------------------------------------------------------
// kRows rows of row_blocks blocks (rows row_stride blocks apart) against one token.
// ---------------------------------------------------------------------------
// Prefetch. The kRows rows of one call are contiguous, and the next call
// reads the next kRows. Short rows (a group of at most kGroupAhead bytes):
// while a call consumes its group column by column, it asks for the same
// share of the *next* group, a contiguous stream one group ahead. Long rows:
// each row asks for the bytes kRowAhead past where it reads (in the next
// group once that is past the row's end). Measured on one
// thread from DRAM (docs/kernels.md): 32000 x 2048 Q4_K (1,152-byte rows)
// streams 6.8 GB/s with 512 bytes ahead of each row (the f32 kernels' way),
// 12-15 GB/s with 1-8 KB ahead of each row, 20 GB/s one group ahead;
// 8192 x 8192 Q8_0 (8.7 KB rows): 15.6 GB/s one group (35 KB) ahead,
// 19-20 GB/s with 2-8 KB ahead of each row. Prefetches never fault, so the
// last group's, past the matrix, are harmless.
inline constexpr std::size_t kGroupAhead = 16384, kRowAhead = 8192;

struct Prefetch {
    const char* next_group = nullptr;  // nullptr: no prefetching (dot, matmul's later tokens)
    std::size_t row_bytes = 0;
};

template <std::size_t kRows, class Block>
HWY_INLINE void prefetch_step(const Block* w, std::size_t row_stride, std::size_t b, std::size_t blocks, Prefetch p) {
    if (!p.next_group) return;
    const std::size_t step = blocks * sizeof(Block);  // bytes each row reads this step
    if (kRows * p.row_bytes <= kGroupAhead) {
        const char* target = p.next_group + kRows * b * sizeof(Block);
        for (std::size_t offset = 0; offset < kRows * step; offset += 64) _mm_prefetch(target + offset, _MM_HINT_T0);
    } else {
        // kRowAhead past the read position of each row; past the row's end, that point
        // is in the next group: skip the other kRows - 1 rows of this one.
        std::size_t ahead = b * sizeof(Block) + kRowAhead;
        if (ahead >= p.row_bytes) ahead += (kRows - 1) * p.row_bytes;
        for (std::size_t r = 0; r < kRows; ++r) {
            const char* target = reinterpret_cast<const char*>(w + r * row_stride) + ahead;
            for (std::size_t offset = 0; offset < step; offset += 64) _mm_prefetch(target + offset, _MM_HINT_T0);
        }
    }
}

// y[t * y_stride + r] for kRows rows of row_blocks blocks (rows row_stride
// blocks apart) and kT tokens (x[t]).
template <std::size_t kRows, std::size_t kT, class Block>
HWY_INLINE void rows(const Block* HWY_RESTRICT w, std::size_t row_stride, std::size_t row_blocks, const Q8Row (&x)[kT],
                     float* HWY_RESTRICT y, std::size_t y_stride, Prefetch prefetch = {}) {
    __m512 acc[kRows][kT];
    for (std::size_t r = 0; r < kRows; ++r)
        for (std::size_t t = 0; t < kT; ++t) acc[r][t] = _mm512_setzero_ps();
    constexpr std::size_t K = Block::kWeights;
    auto at_block = [&](std::size_t b, Q8Row (&xb)[kT]) {  // x[t] advanced to block b
        for (std::size_t t = 0; t < kT; ++t)
            xb[t] = {x[t].q + K * b, x[t].d + K / 32 * b, x[t].dsum16 + K / 16 * b, x[t].dsum32 + K / 32 * b,
                     x[t].q_kquant + K * b, x[t].qsum32 + K / 32 * b};
    };
    if constexpr (K == 32) {  // Q8_0, Q4_0: two blocks a chunk
        std::size_t b = 0;
        for (; b + 2 <= row_blocks; b += 2) {
            Q8Row xb[kT];
            at_block(b, xb);
            prefetch_step<kRows>(w, row_stride, b, 2, prefetch);
            const Block *b0[kRows], *b1[kRows];
            for (std::size_t r = 0; r < kRows; ++r) b0[r] = w + r * row_stride + b, b1[r] = b0[r] + 1;
            two_blocks<kRows, kT>(b0, b1, xb, acc);
        }
        if (b < row_blocks) {  // an odd last block pairs with a zero block and zero activations
            const Block zero{};
            for (std::size_t t = 0; t < kT; ++t) {
                HWY_ALIGN std::int8_t q[64] = {};
                for (int i = 0; i < 32; ++i) q[i] = x[t].q[32 * b + i];
                const float d[2] = {x[t].d[b], 0.0f};
                const Q8Row padded[1] = {{q, d}};  // two_blocks reads q and d only
                for (std::size_t r = 0; r < kRows; ++r) {
                    const Block* b0[1] = {w + r * row_stride + b};
                    const Block* b1[1] = {&zero};
                    __m512 a[1][1] = {{acc[r][t]}};
                    two_blocks<1, 1>(b0, b1, padded, a);
                    acc[r][t] = a[0][0];
                }
            }
        }
    } else {
        for (std::size_t b = 0; b < row_blocks; ++b) {
            Q8Row xb[kT];
            at_block(b, xb);
            prefetch_step<kRows>(w, row_stride, b, 1, prefetch);
            const Block* block[kRows];
            for (std::size_t r = 0; r < kRows; ++r) block[r] = w + r * row_stride + b;
            if constexpr (std::is_same_v<Block, block_q6_k>) q6_k_block<kRows, kT>(block, xb, acc);
            else k_block<kRows, kT>(block, xb, acc);
        }
    }
    for (std::size_t r = 0; r < kRows; ++r)
        for (std::size_t t = 0; t < kT; ++t) y[t * y_stride + r] = _mm512_reduce_add_ps(acc[r][t]);
}

// Decode. Q8_0 reads its rows one after another, one sequential stream with
// no software prefetch: its chunk (68 bytes) takes one multiply-add, so one
// row's accumulator chain keeps up with memory, and the hardware prefetchers
// follow one stream best (one thread, from DRAM, 768 to 6144 columns: 17-19
// against 13-15 GB/s for the 4-row passes; docs/kernels.md). The 4-bit types
// spend one multiply-add per 36 bytes or less, so a single chain would wait
// on its own latency: they run kMatvecRows rows at once, each group asking
// for the next (prefetch_step). Every (row, token) gets the same operations
// either way, so the bits do not depend on the choice.
template <class Block>
inline void matvec(const Block* w, std::size_t n_rows, std::size_t cols, Q8Row x, float* y) {
    const std::size_t row_blocks = cols / Block::kWeights;
    const Q8Row xs[1] = {x};
    std::size_t r = 0;
    if constexpr (!std::is_same_v<Block, block_q8_0>)
        for (; r + kMatvecRows <= n_rows; r += kMatvecRows)
            rows<kMatvecRows>(w + r * row_blocks, row_blocks, row_blocks, xs, y + r, 0,
                              Prefetch{reinterpret_cast<const char*>(w + (r + kMatvecRows) * row_blocks), row_blocks * sizeof(Block)});
    for (; r < n_rows; ++r) rows<1>(w + r * row_blocks, row_blocks, row_blocks, xs, y + r, 0);
}

// Prefill: tiles of kTileRows rows x kTileTokens tokens, so that each block is
// decoded once per kTileTokens tokens and each activation chunk loaded once
// per kTileRows rows (16 accumulators of 32 registers). 4 x 4 measured best of
// 2x4, 3x4, 4x3, 2x6 and 4x4 (docs/kernels.md).
inline constexpr std::size_t kTileRows = 4, kTileTokens = 4;

template <class Block>
inline void matmul(const Block* w, std::size_t n_rows, std::size_t cols, Q8Rows x, std::size_t n_tokens, float* y,
                   std::size_t y_stride) {
    const std::size_t row_blocks = cols / Block::kWeights;
    auto tile = [&](auto rows_c, std::size_t r, std::size_t t0) {
        constexpr std::size_t kR = decltype(rows_c)::value;
        std::size_t t = t0;
        for (; t + kTileTokens <= n_tokens; t += kTileTokens) {
            Q8Row xs[kTileTokens];
            for (std::size_t i = 0; i < kTileTokens; ++i) xs[i] = x[t + i];
            rows<kR>(w + r * row_blocks, row_blocks, row_blocks, xs, y + t * y_stride + r, y_stride);
        }
        for (; t < n_tokens; ++t) {
            const Q8Row xs[1] = {x[t]};
            rows<kR>(w + r * row_blocks, row_blocks, row_blocks, xs, y + t * y_stride + r, y_stride);
        }
    };
    std::size_t r = 0;
    for (; r + kTileRows <= n_rows; r += kTileRows) tile(std::integral_constant<std::size_t, kTileRows>{}, r, 0);
    for (; r < n_rows; ++r) tile(std::integral_constant<std::size_t, 1>{}, r, 0);
}

}  // namespace moelab::detail::HWY_NAMESPACE::int8
HWY_AFTER_NAMESPACE();

namespace moelab::kernels {

// What the int8 products compiled to.
inline const char* int8_instruction_set(backend::highway) {
#if MOELAB_HIGHWAY_VNNI
    return "AVX-512 VNNI (vpdpbusd)";
#else
    return "AVX-512BW (vpmaddubsw + vpmaddwd)";
#endif
}
#undef MOELAB_HIGHWAY_VNNI  // internal: no macro of this header outlives it

template <IntegerFormBlock Block>
float dot(backend::highway, const Block* w, Q8Row x, std::size_t n) {
    float y;
    const Q8Row xs[1] = {x};
    detail::HWY_NAMESPACE::int8::rows<1>(w, 0, n / Block::kWeights, xs, &y, 0);
    return y;
}

// W (rows, cols), x: one token, y (rows).
template <IntegerFormBlock Block>
void matvec(backend::highway, const Block* w, std::size_t rows, std::size_t cols, Q8Row x, float* y) {
    detail::HWY_NAMESPACE::int8::matvec(w, rows, cols, x, y);
}

// W (rows, cols), x: n_tokens rows, y[t * y_stride + r].
template <IntegerFormBlock Block>
void matmul(backend::highway, const Block* w, std::size_t rows, std::size_t cols, Q8Rows x, std::size_t n_tokens,
            float* y, std::size_t y_stride) {
    detail::HWY_NAMESPACE::int8::matmul(w, rows, cols, x, n_tokens, y, y_stride);
}

}  // namespace moelab::kernels

#else  // no AVX-512BW: no int8 products; ops::linear keeps the f32 path

namespace moelab::kernels {
inline const char* int8_instruction_set(backend::highway) { return nullptr; }
}  // namespace moelab::kernels

#endif
