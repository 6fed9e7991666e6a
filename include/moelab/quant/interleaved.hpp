// SPDX-License-Identifier: MIT
// moelab/quant/interleaved.hpp — quantized rows interleaved 16 at a time: the
// same weights, laid out so that one SIMD register holds 4 quants of each of
// 16 rows, for the int8-activation products (quant/q8_activations.hpp).
// Q4_K and Q8_0.
//
// Depends on: moelab/quant/q4_k.hpp, moelab/quant/q8_0.hpp,
//             moelab/quant/k_scales.hpp, moelab/dtype.hpp, the standard
//             library; on Linux <sys/mman.h> (madvise, for huge pages).
//
// Why. In the file's layout a register holds 64 weights of one row, so a
// product of one row converts and scales every 64-weight chunk on its own
// (a Q4_K chunk spans two sub-blocks with two scales) and reduces the lanes
// at the end: about 40 vector instructions per Q4_K row and block, where the
// integer products themselves are 4 (docs/kernels.md, "Rows interleaved 16 at
// a time"). With 16 rows side by side, lane r of every register belongs to
// row r: the integer products of a whole group of 32 weights accumulate in
// one register of 16 int32 sums (one per row), and each scale is applied once
// per group for 16 rows at a time. The integers are the same; the f32 steps
// after them are fewer.
//
// A matrix of R rows keeps its first floor(R / 16) * 16 rows interleaved,
// group g (rows 16g .. 16g + 15) as cols / kWeights consecutive blocks; the
// last R % 16 rows are read from the file's layout.
//
// block_q4_k_x16: 16 rows x one Q4_K block (256 weights); 2,368 bytes for the
// file's 16 x 144 = 2,304 (2.8% more: the 6-bit scales are unpacked).
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
// 2c + 1 (q4_k.hpp: qs[32c + l] holds weight l of both).
//
// block_q8_0_x16: 16 rows x two Q8_0 blocks (64 weights); 1,088 bytes, the
// file's 16 x 2 x 34 exactly.
//
//   offset  size  field
//        0    64  d[2][16]          block h's d of row r at d[h][r] (f16)
//       64  1024  qs[2][8][16][4]   block h, word k of row r: qs[4k .. 4k + 3] + 128
//
// The quants are stored plus 128 (their top bit flipped), as unsigned bytes:
// the form vpdpbusd multiplies; the products' excess, 128 times the sum of
// the activations, is taken off in the integers (kernels/highway_interleaved.hpp).
// A Q8_0 matrix whose rows have an odd number of blocks is not interleaved.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <new>
#include <vector>

#include "moelab/dtype.hpp"
#include "moelab/quant/k_scales.hpp"
#include "moelab/quant/q4_k.hpp"
#include "moelab/quant/q8_0.hpp"

#if defined(__linux__)
#include <sys/mman.h>
#endif

namespace moelab {

inline constexpr std::size_t kInterleavedRows = 16;

struct alignas(64) block_q4_k_x16 {
    using Block = block_q4_k;
    static constexpr std::size_t kWeights = 256;  // per row
    f16 d[kInterleavedRows], dmin[kInterleavedRows];
    std::uint8_t sc[8][kInterleavedRows], m[8][kInterleavedRows];
    std::uint8_t qs[32][kInterleavedRows][4];
};
static_assert(sizeof(block_q4_k_x16) == 2368, "16 x (2 + 2 + 8 + 8) + 16 x 128 bytes");

struct alignas(64) block_q8_0_x16 {
    using Block = block_q8_0;
    static constexpr std::size_t kWeights = 64;  // per row: two blocks
    f16 d[2][kInterleavedRows];
    std::uint8_t qs[2][8][kInterleavedRows][4];
};
static_assert(sizeof(block_q8_0_x16) == 1088, "16 x 2 x (2 + 32) bytes");

// Storage for interleaved copies, which are large (a copy of most of a
// model): blocks are left uninitialised until interleave_rows writes them
// (a vector would zero them first), and on Linux a copy of 2 MiB or more is
// aligned to 2 MiB and asked to use transparent huge pages. Measured on the
// MoE Q4_K model (1.5 GB of copies): 8.7 s to interleave with 4 KiB pages
// and zeroing, most of it page faults and memset (docs/kernels.md).
template <class T>
struct InterleavedAllocator {
    using value_type = T;
    static constexpr std::size_t kHugePage = std::size_t{2} << 20;
    InterleavedAllocator() = default;
    template <class U>
    InterleavedAllocator(const InterleavedAllocator<U>&) {}
    T* allocate(std::size_t n) {
        const std::size_t bytes = n * sizeof(T);
        if (bytes < kHugePage) return static_cast<T*>(::operator new(bytes, std::align_val_t{alignof(T)}));
        void* p = ::operator new(bytes, std::align_val_t{kHugePage});
#if defined(__linux__) && defined(MADV_HUGEPAGE)
        ::madvise(p, bytes, MADV_HUGEPAGE);  // advice only: without it, 4 KiB pages
#endif
        return static_cast<T*>(p);
    }
    void deallocate(T* p, std::size_t n) {
        ::operator delete(p, std::align_val_t{n * sizeof(T) < kHugePage ? alignof(T) : kHugePage});
    }
    template <class U>
    void construct(U* p) noexcept {
        ::new (static_cast<void*>(p)) U;  // default-initialised: left as it is
    }
    friend bool operator==(const InterleavedAllocator&, const InterleavedAllocator&) { return true; }
};

template <class X16>
using Interleaved = std::vector<X16, InterleavedAllocator<X16>>;

// True when a (rows, cols) matrix of `dtype` can have an interleaved copy.
constexpr bool interleavable(DType dtype, std::size_t rows, std::size_t cols) {
    if (rows < kInterleavedRows) return false;
    if (dtype == DType::q4_k) return cols % block_q4_k_x16::kWeights == 0;
    if (dtype == DType::q8_0) return cols % block_q8_0_x16::kWeights == 0;
    return false;
}

// Block (row r, column block b) -> out.
inline void interleave_block(const block_q4_k* const (&rows)[kInterleavedRows], block_q4_k_x16& out) {
    for (std::size_t r = 0; r < kInterleavedRows; ++r) {
        const block_q4_k& src = *rows[r];
        const KScales k = unpack_k_scales(src.scales);
        out.d[r] = src.d;
        out.dmin[r] = src.dmin;
        for (std::size_t j = 0; j < 8; ++j) out.sc[j][r] = k.scale[j], out.m[j][r] = k.min[j];
        for (std::size_t word = 0; word < 32; ++word) std::memcpy(out.qs[word][r], src.qs + 4 * word, 4);
    }
}
inline void interleave_block(const block_q8_0* const (&rows)[kInterleavedRows], block_q8_0_x16& out) {
    for (std::size_t r = 0; r < kInterleavedRows; ++r)
        for (std::size_t h = 0; h < 2; ++h) {
            const block_q8_0& src = rows[r][h];
            out.d[h][r] = src.d;
            for (std::size_t i = 0; i < 32; ++i)
                out.qs[h][i / 4][r][i % 4] = static_cast<std::uint8_t>(static_cast<std::uint8_t>(src.qs[i]) ^ 0x80u);
        }
}

// Runs f(0, n) on the calling thread: interleave_rows's default.
struct OnThisThread {
    template <class F>
    void operator()(std::size_t n, F&& f) const { f(std::size_t{0}, n); }
};

// The first rows / 16 * 16 rows of a (rows, cols) matrix of X16::Block,
// interleaved. for_ranges(n, f) must call f(begin, end) on ranges covering
// [0, n) once (groups of 16 rows; e.g. ThreadPool::parallel_ranges with grain 1).
template <class X16, class ForRanges = OnThisThread>
Interleaved<X16> interleave_rows(const typename X16::Block* w, std::size_t rows, std::size_t cols,
                                 ForRanges&& for_ranges = {}) {
    constexpr std::size_t per_file_block = X16::kWeights / X16::Block::kWeights;  // file blocks per row in one X16
    const std::size_t file_blocks = cols / X16::Block::kWeights, x16_blocks = cols / X16::kWeights;
    const std::size_t groups = rows / kInterleavedRows;
    Interleaved<X16> out(groups * x16_blocks);
    for_ranges(groups, [&](std::size_t group_begin, std::size_t group_end) {
        for (std::size_t g = group_begin; g < group_end; ++g)
            for (std::size_t b = 0; b < x16_blocks; ++b) {
                const typename X16::Block* from[kInterleavedRows];
                for (std::size_t r = 0; r < kInterleavedRows; ++r)
                    from[r] = w + (g * kInterleavedRows + r) * file_blocks + b * per_file_block;
                interleave_block(from, out[g * x16_blocks + b]);
            }
    });
    return out;
}

}  // namespace moelab
