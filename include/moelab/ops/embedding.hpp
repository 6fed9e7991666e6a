// SPDX-License-Identifier: MIT
// moelab/ops/embedding.hpp — read one row of a weight matrix as f32 (token
// embedding lookup).
//
// Depends on: moelab/tensor.hpp, moelab/quant/quant.hpp, moelab/error.hpp.
//
// An embedding lookup reads a single row per token, so it is not worth a SIMD
// kernel; this widens (or dequantises, exactly) the row with the scalar
// definitions.
#pragma once

#include <cstddef>
#include <string>

#include "moelab/error.hpp"
#include "moelab/quant/quant.hpp"
#include "moelab/tensor.hpp"

namespace moelab::ops {

// out[0..w.cols) = W[row, :] as f32.
inline void row_to_f32(const WeightMatrix& w, std::size_t row, float* out) {
    const std::byte* src = w.row(row);
    switch (w.dtype) {
        case DType::f32:
            for (std::size_t i = 0; i < w.cols; ++i) out[i] = reinterpret_cast<const float*>(src)[i];
            return;
        case DType::f16:
            for (std::size_t i = 0; i < w.cols; ++i) out[i] = f16_to_f32(reinterpret_cast<const f16*>(src)[i]);
            return;
        case DType::bf16:
            for (std::size_t i = 0; i < w.cols; ++i) out[i] = bf16_to_f32(reinterpret_cast<const bf16*>(src)[i]);
            return;
        default:
            if (!is_quantized(w.dtype))
                throw Error("embedding", "rows of type " + std::string(dtype_name(w.dtype)) + " cannot be read in this build");
            dequantize_row(w.dtype, src, w.cols, out);
            return;
    }
}

}  // namespace moelab::ops
