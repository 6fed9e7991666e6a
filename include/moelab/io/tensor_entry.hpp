// SPDX-License-Identifier: MIT
// moelab/io/tensor_entry.hpp — one tensor as it is stored in a model file.
//
// Depends on: moelab/dtype.hpp, the standard library.
//
// Both readers (gguf.hpp, safetensors.hpp) describe each tensor the same way,
// so the model layer above them does not care which format it came from:
//
//   name       the file's own name ("blk.0.attn_q.weight", "model.norm.weight")
//   type_name  the file's own name for the element type ("F32", "Q4_K", "BF16",
//              "I64", ...), kept even when moelab cannot compute with the type,
//              so an error can say "tensor X has type Q5_0, which moelab
//              cannot compute with"
//   dtype      the moelab::DType for that type, or nullopt when there is none
//   shape      OUTERMOST FIRST (PyTorch order): a (rows, cols) matrix is
//              {rows, cols} and each row is contiguous. GGUF stores ne[] the
//              other way round (ne[0] innermost); its reader reverses it.
//   data       points into the file's memory mapping: zero copy. The reader
//              has checked that [data, data + nbytes) lies inside the file.
//              It is valid while the GGUFFile / SafetensorsSet that produced
//              it is alive (moving that object keeps it valid). No alignment
//              beyond 1 byte is promised (safetensors promises none); read
//              multi-byte values with std::memcpy, or check alignment first.
//   nbytes     exact size of the stored data
//   file_offset  where the data starts in its file, in bytes (for messages and
//              for `inspect`)
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "moelab/dtype.hpp"

namespace moelab::io {

struct TensorEntry {
    std::string name;
    std::string type_name;
    std::optional<DType> dtype;
    std::vector<std::uint64_t> shape;  // outermost first
    const std::byte* data = nullptr;   // into the mapping, bounds-checked
    std::uint64_t nbytes = 0;
    std::uint64_t file_offset = 0;

    // Product of the shape (1 for a scalar, shape {}). The readers reject
    // shapes whose product does not fit in 63 bits, so this cannot overflow.
    std::uint64_t n_elements() const {
        std::uint64_t n = 1;
        for (const std::uint64_t d : shape) n *= d;
        return n;
    }
};

}  // namespace moelab::io
