// SPDX-License-Identifier: MIT
// moelab/quant/q4_k_x16.hpp — Q4_K rows interleaved 16 at a time: the same
// weights, laid out so that one SIMD register holds 4 quants of each of 16
// rows, for the int8-activation products (quant/q8_activations.hpp).
//
// Depends on: moelab/quant/q4_k.hpp, moelab/quant/k_scales.hpp,
//             moelab/tensor.hpp (AlignedAllocator), the standard library.
//
// Why. In the file's layout (q4_k.hpp) a row's block spreads its 8 sub-block
// scales over the lanes of a register, so a product of one row must convert
// and scale every 64-weight chunk on its own and reduce the lanes at the end:
// about 40 vector instructions per row and block, where the integer products
// themselves are 4 (measured in docs/kernels.md, "Q4_K interleaved 16 rows").
// With 16 rows side by side, lane r of every register belongs to row r: the
// integer products of a whole sub-block accumulate in one register of 16
// int32 sums (one per row), and the scales are applied once per sub-block for
// 16 rows at a time. Nothing is rounded differently in the integers; the f32
// steps after them are fewer.
//
// Byte layout of one block_q4_k_x16 (16 rows r, one block column b; 2,368
// bytes for 16 x 144 = 2,304 bytes of the file, 2.8% more):
//
//   offset  size  field
//        0    32  d[16]          row r's d (f16)
//       32    32  dmin[16]       row r's dmin (f16)
//       64   128  sc[8][16]      sc[j] of row r at sc[j][r] (unpacked, 0 .. 63)
//      192   128  m[8][16]       m[j] of row r at m[j][r]
//      320  2048  qs[32][16][4]  word w of row r: the row's qs[4w .. 4w + 3]
//
// qs word w = 8c + k of a row holds, in its low nibbles, weights 4k .. 4k + 3
// of sub-block 2c and, in its high nibbles, the same weights of sub-block
// 2c + 1 (q4_k.hpp: qs[32c + l] holds weight l of both). So the 64 bytes
// qs[w] are one register: 4 quants of sub-blocks 2c and 2c + 1 for 16 rows.
//
// A matrix of R rows keeps its first floor(R / 16) * 16 rows interleaved,
// group g (rows 16g .. 16g + 15) as row_blocks consecutive block_q4_k_x16;
// the last R % 16 rows are read from the file's layout.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <vector>

#include "moelab/quant/k_scales.hpp"
#include "moelab/quant/q4_k.hpp"
#include "moelab/tensor.hpp"

namespace moelab {

inline constexpr std::size_t kInterleavedRows = 16;

struct alignas(64) block_q4_k_x16 {
    static constexpr std::size_t kRows = kInterleavedRows;
    f16 d[kRows], dmin[kRows];
    std::uint8_t sc[8][kRows], m[8][kRows];
    std::uint8_t qs[32][kRows][4];
};
static_assert(sizeof(block_q4_k_x16) == 2368, "16 x (2 + 2 + 8 + 8) + 16 x 128 bytes");

using InterleavedQ4K = std::vector<block_q4_k_x16, AlignedAllocator<block_q4_k_x16>>;

// The first rows / 16 * 16 rows of a (rows, cols) Q4_K matrix, interleaved.
inline InterleavedQ4K interleave_q4_k_rows(const block_q4_k* w, std::size_t rows, std::size_t cols) {
    const std::size_t row_blocks = cols / block_q4_k::kWeights, groups = rows / kInterleavedRows;
    InterleavedQ4K out(groups * row_blocks);
    for (std::size_t g = 0; g < groups; ++g)
        for (std::size_t b = 0; b < row_blocks; ++b) {
            block_q4_k_x16& x = out[g * row_blocks + b];
            for (std::size_t r = 0; r < kInterleavedRows; ++r) {
                const block_q4_k& src = w[(g * kInterleavedRows + r) * row_blocks + b];
                const KScales k = unpack_k_scales(src.scales);
                x.d[r] = src.d;
                x.dmin[r] = src.dmin;
                for (std::size_t j = 0; j < 8; ++j) x.sc[j][r] = k.scale[j], x.m[j][r] = k.min[j];
                for (std::size_t word = 0; word < 32; ++word) std::memcpy(x.qs[word][r], src.qs + 4 * word, 4);
            }
        }
    return out;
}

}  // namespace moelab
