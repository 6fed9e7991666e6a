// SPDX-License-Identifier: MIT
// moelab/quant/quant.hpp — the five quantized GGUF formats moelab computes
// with, chosen at run time by DType: whole rows in and out of f32.
//
// Depends on: moelab/quant/{q8_0,q4_0,q4_k,q5_k,q6_k}.hpp, moelab/dtype.hpp,
//             moelab/error.hpp, the standard library.
//
//   visit_quant_block(dtype, f)          f(block_q4_k{}) etc.; false when dtype is not quantized
//   dequantize_row(dtype, src, n, out)   n weights of any dtype -> f32 (exact)
//   quantize_row(dtype, x, n, dst)       n f32 values -> any dtype (round to nearest)
//
// n must be a multiple of the dtype's block size (dtype_traits(dtype).block_elems).
// Plain types are converted too (f16/bf16: round to nearest even), so a
// caller can write a row of any dtype with one call.
#pragma once

#include <cstddef>
#include <cstring>
#include <string>

#include "moelab/dtype.hpp"
#include "moelab/error.hpp"
#include "moelab/quant/block.hpp"
#include "moelab/quant/q4_0.hpp"
#include "moelab/quant/q4_k.hpp"
#include "moelab/quant/q5_k.hpp"
#include "moelab/quant/q6_k.hpp"
#include "moelab/quant/q8_0.hpp"

namespace moelab {

static_assert(sizeof(block_q8_0) == dtype_traits(DType::q8_0).block_bytes && block_q8_0::kWeights == dtype_traits(DType::q8_0).block_elems);
static_assert(sizeof(block_q4_0) == dtype_traits(DType::q4_0).block_bytes && block_q4_0::kWeights == dtype_traits(DType::q4_0).block_elems);
static_assert(sizeof(block_q4_k) == dtype_traits(DType::q4_k).block_bytes && block_q4_k::kWeights == dtype_traits(DType::q4_k).block_elems);
static_assert(sizeof(block_q5_k) == dtype_traits(DType::q5_k).block_bytes && block_q5_k::kWeights == dtype_traits(DType::q5_k).block_elems);
static_assert(sizeof(block_q6_k) == dtype_traits(DType::q6_k).block_bytes && block_q6_k::kWeights == dtype_traits(DType::q6_k).block_elems);
static_assert(QuantBlock<block_q8_0> && QuantBlock<block_q4_0> && QuantBlock<block_q4_k> && QuantBlock<block_q5_k> &&
              QuantBlock<block_q6_k>);

// Calls f(Block{}) with the block type that stores `dtype` and returns true,
// or returns false for a plain (f32, f16, bf16) dtype.
template <class F>
bool visit_quant_block(DType dtype, F&& f) {
    switch (dtype) {
        case DType::q8_0: f(block_q8_0{}); return true;
        case DType::q4_0: f(block_q4_0{}); return true;
        case DType::q4_k: f(block_q4_k{}); return true;
        case DType::q5_k: f(block_q5_k{}); return true;
        case DType::q6_k: f(block_q6_k{}); return true;
        default: return false;
    }
}

constexpr bool is_quantized(DType dtype) {
    return dtype == DType::q8_0 || dtype == DType::q4_0 || dtype == DType::q4_k || dtype == DType::q5_k ||
           dtype == DType::q6_k;
}

namespace detail {
inline void check_row_length(DType dtype, std::size_t n, const char* what) {
    if (n % dtype_traits(dtype).block_elems != 0)
        throw Error(what, "a row of " + std::to_string(n) + " weights is not a whole number of " +
                              std::string(dtype_name(dtype)) + " blocks (" +
                              std::to_string(dtype_traits(dtype).block_elems) + " weights each)");
}
}  // namespace detail

// out[0, n) = the n weights stored at src (row_bytes(dtype, n) bytes), as f32.
inline void dequantize_row(DType dtype, const std::byte* src, std::size_t n, float* out) {
    detail::check_row_length(dtype, n, "dequantize_row");
    const bool quantized = visit_quant_block(dtype, [&]<class Block>(Block) {
        for (std::size_t b = 0; b < n / Block::kWeights; ++b) {
            Block block;  // memcpy: src need not be aligned for Block
            std::memcpy(&block, src + b * sizeof(Block), sizeof(Block));
            dequantize_block(block, out + b * Block::kWeights);
        }
    });
    if (quantized) return;
    for (std::size_t i = 0; i < n; ++i) {
        if (dtype == DType::f32) std::memcpy(out + i, src + 4 * i, 4);
        else {
            std::uint16_t bits;
            std::memcpy(&bits, src + 2 * i, 2);
            out[i] = dtype == DType::f16 ? f16_to_f32(f16{bits}) : bf16_to_f32(bf16{bits});
        }
    }
}

// dst[0, row_bytes(dtype, n)) = x[0, n) stored as dtype. Quantized types use
// each format's quantize_block (round to nearest; see the format headers).
inline void quantize_row(DType dtype, const float* x, std::size_t n, std::byte* dst) {
    detail::check_row_length(dtype, n, "quantize_row");
    const bool quantized = visit_quant_block(dtype, [&]<class Block>(Block) {
        for (std::size_t b = 0; b < n / Block::kWeights; ++b) {
            Block block{};
            quantize_block(x + b * Block::kWeights, block);
            std::memcpy(dst + b * sizeof(Block), &block, sizeof(Block));
        }
    });
    if (quantized) return;
    for (std::size_t i = 0; i < n; ++i) {
        if (dtype == DType::f32) std::memcpy(dst + 4 * i, x + i, 4);
        else {
            const std::uint16_t bits = dtype == DType::f16 ? f32_to_f16(x[i]).bits : f32_to_bf16(x[i]).bits;
            std::memcpy(dst + 2 * i, &bits, 2);
        }
    }
}

}  // namespace moelab
