// SPDX-License-Identifier: MIT
// moelab/tensor.hpp — non-owning views of weights as they lie in a file.
//
// Depends on: moelab/dtype.hpp, the standard library.
//
// Weights are never copied or widened at load time: a WeightMatrix points into
// the memory-mapped file and carries the dtype it was stored in. Kernels read
// it row by row. (One opt-in exception: Model::interleave_for_int8 adds a
// second, interleaved copy of Q4_K and Q8_0 matrices for the int8-activation
// products.) Shapes are written outermost first (PyTorch order), so a
// linear layer y = W x with W of shape (rows, cols) has `rows` output features
// and `cols` input features, and each row is contiguous.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

#include "moelab/dtype.hpp"

namespace moelab {

// (rows, cols) row-major matrix at any dtype; row r starts at data + r * row_bytes().
struct WeightMatrix {
    DType dtype = DType::f32;
    const std::byte* data = nullptr;
    std::size_t rows = 0;  // output features
    std::size_t cols = 0;  // input features; a multiple of dtype_traits(dtype).block_elems
    // Optional (Q4_K, Q8_0): rows [0, rows / 16 * 16) again, interleaved 16 at
    // a time (quant/interleaved.hpp: block_q4_k_x16 or block_q8_0_x16, by
    // dtype), read by the int8 products of backends that have them
    // (ops/linear.hpp); nullptr: none. Owned elsewhere (the Model).
    const std::byte* interleaved = nullptr;

    bool empty() const { return data == nullptr; }
    std::size_t row_bytes() const { return moelab::row_bytes(dtype, cols); }
    std::size_t bytes() const { return rows * row_bytes(); }
    const std::byte* row(std::size_t r) const { return data + r * row_bytes(); }

    // Rows [begin, begin + count): how threads and fused tensors are split.
    // A slice reads the file's layout only (no interleaved copy).
    WeightMatrix slice_rows(std::size_t begin, std::size_t count) const {
        return {dtype, row(begin), count, cols};
    }
};

// A view of f32 data owned elsewhere (norm weights, biases: small 1-D tensors
// that loaders widen to f32 once, so kernels see one type).
struct FloatSpan {
    const float* data = nullptr;
    std::size_t size = 0;
    bool empty() const { return data == nullptr; }
    const float& operator[](std::size_t i) const { return data[i]; }
};

// Growable f32 scratch buffer with 64-byte aligned storage, used for
// activations. (A std::vector with an aligned allocator; no raw new.)
template <class T, std::size_t Alignment = 64>
struct AlignedAllocator {
    using value_type = T;
    AlignedAllocator() = default;
    template <class U>
    AlignedAllocator(const AlignedAllocator<U, Alignment>&) {}
    template <class U>
    struct rebind { using other = AlignedAllocator<U, Alignment>; };
    T* allocate(std::size_t n) {
        return static_cast<T*>(::operator new(n * sizeof(T), std::align_val_t{Alignment}));
    }
    void deallocate(T* p, std::size_t) { ::operator delete(p, std::align_val_t{Alignment}); }
    friend bool operator==(const AlignedAllocator&, const AlignedAllocator&) { return true; }
};

using FloatBuffer = std::vector<float, AlignedAllocator<float>>;

}  // namespace moelab
