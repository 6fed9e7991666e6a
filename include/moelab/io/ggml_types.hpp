// SPDX-License-Identifier: MIT
// moelab/io/ggml_types.hpp — the table of ggml tensor types a GGUF file may use.
//
// Depends on: moelab/dtype.hpp, the standard library.
//
// A GGUF tensor names its element type by a numeric ggml type id. Every type
// stores its elements in blocks: `block_elems` elements in `block_bytes`
// bytes (1 element in 4 bytes for F32; 32 weights in 34 bytes for Q8_0; 256
// weights in 144 bytes for Q4_K). That is all a reader needs to check that a
// tensor's bytes fit in the file, so every type below is *known* — a file that
// uses Q5_0 or IQ2_XS opens fine — even though moelab computes with only some
// of them (those with a `dtype`). The model layer reports a tensor whose type
// has no dtype when (and only if) it needs that tensor.
//
// Ids 4-5 (Q4_2, Q4_3), 31-33 (Q4_0_4_4 ...) and 36-38 (IQ4_NL_4_4 ...) were
// removed from ggml and never appear in current files; like any id missing
// from the table they are errors. Block sizes: the block layouts of ggml's
// quantization formats (see dtype.hpp for the five moelab computes with).
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string_view>

#include "moelab/dtype.hpp"

namespace moelab::io {

struct GGMLTypeInfo {
    std::uint32_t id;
    std::string_view name;     // as ggml and llama.cpp print it
    std::uint32_t block_elems;  // elements per block (a row length must be a multiple)
    std::uint32_t block_bytes;  // bytes per block
    std::optional<DType> dtype;  // what moelab computes with, if anything
};

inline constexpr std::array<GGMLTypeInfo, 34> ggml_type_table{{
    {0, "F32", 1, 4, DType::f32},
    {1, "F16", 1, 2, DType::f16},
    {2, "Q4_0", 32, 18, DType::q4_0},   // f16 scale + 32 x 4 bits
    {3, "Q4_1", 32, 20, std::nullopt},  // f16 scale, f16 min + 32 x 4 bits
    {6, "Q5_0", 32, 22, std::nullopt},  // f16 scale + 32 high bits + 32 x 4 bits
    {7, "Q5_1", 32, 24, std::nullopt},
    {8, "Q8_0", 32, 34, DType::q8_0},   // f16 scale + 32 x int8
    {9, "Q8_1", 32, 36, std::nullopt},  // f16 scale, f16 sum + 32 x int8
    {10, "Q2_K", 256, 84, std::nullopt},
    {11, "Q3_K", 256, 110, std::nullopt},
    {12, "Q4_K", 256, 144, DType::q4_k},
    {13, "Q5_K", 256, 176, DType::q5_k},
    {14, "Q6_K", 256, 210, DType::q6_k},
    {15, "Q8_K", 256, 292, std::nullopt},  // f32 scale + 256 x int8 + 16 x i16 sums
    {16, "IQ2_XXS", 256, 66, std::nullopt},
    {17, "IQ2_XS", 256, 74, std::nullopt},
    {18, "IQ3_XXS", 256, 98, std::nullopt},
    {19, "IQ1_S", 256, 50, std::nullopt},
    {20, "IQ4_NL", 32, 18, std::nullopt},
    {21, "IQ3_S", 256, 110, std::nullopt},
    {22, "IQ2_S", 256, 82, std::nullopt},
    {23, "IQ4_XS", 256, 136, std::nullopt},
    {24, "I8", 1, 1, std::nullopt},
    {25, "I16", 1, 2, std::nullopt},
    {26, "I32", 1, 4, std::nullopt},
    {27, "I64", 1, 8, std::nullopt},
    {28, "F64", 1, 8, std::nullopt},
    {29, "IQ1_M", 256, 56, std::nullopt},
    {30, "BF16", 1, 2, DType::bf16},
    {34, "TQ1_0", 256, 54, std::nullopt},
    {35, "TQ2_0", 256, 66, std::nullopt},
    {39, "MXFP4", 32, 17, std::nullopt},   // e8m0 scale + 32 x 4-bit e2m1
    {40, "NVFP4", 64, 36, std::nullopt},   // 4 x e4m3 scales + 64 x 4-bit e2m1
    {41, "Q1_0", 128, 18, std::nullopt},   // f16 scale + 128 x 1 bit (newest; check if ggml changes it)
}};

// The table entry for a ggml type id, or nullptr when the id is not known.
constexpr const GGMLTypeInfo* ggml_type_info(std::uint32_t id) {
    for (const GGMLTypeInfo& t : ggml_type_table)
        if (t.id == id) return &t;
    return nullptr;
}

namespace detail {
// The types moelab computes with must agree with dtype.hpp's block sizes.
constexpr bool ggml_table_matches_dtypes() {
    for (const GGMLTypeInfo& t : ggml_type_table) {
        if (!t.dtype) continue;
        const DTypeTraits tr = dtype_traits(*t.dtype);
        if (tr.block_elems != t.block_elems || tr.block_bytes != t.block_bytes) return false;
    }
    return true;
}
static_assert(ggml_table_matches_dtypes(), "ggml_type_table disagrees with dtype_traits()");
}  // namespace detail

}  // namespace moelab::io
