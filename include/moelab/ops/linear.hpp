// SPDX-License-Identifier: MIT
// moelab/ops/linear.hpp — y = W x for a batch of tokens: the one front door
// through which the model reads weights.
//
// Depends on: moelab/tensor.hpp, moelab/thread_pool.hpp, moelab/error.hpp,
//             moelab/quant/quant.hpp (the quantized block types),
//             moelab/quant/q8_activations.hpp, moelab/quant/bf16_activations.hpp
//             (the opt-in int8- and bf16-activation products),
//             moelab/quant/interleaved.hpp (interleaved rows for them),
//             moelab/kernels/scalar.hpp (the reference backend is always there);
//             for a SIMD backend, include its header too (kernels/highway.hpp,
//             kernels/xsimd.hpp) anywhere in the translation unit.
//
// Two jobs the kernels do not do: pick the typed kernel for the weight's
// stored dtype (a switch, once per matrix, never per element), and split the
// output rows across the thread pool. One token is a matrix-vector product
// (decode); several are a matrix-matrix product (prefill, or the tokens an
// MoE expert received), which lets a backend reuse each weight row for all of
// them while it is in cache.
#pragma once

#include <algorithm>
#include <array>
#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <span>
#include <string>

#include "moelab/error.hpp"
#include "moelab/kernels/backend.hpp"
#include "moelab/kernels/scalar.hpp"
#include "moelab/quant/bf16_activations.hpp"
#include "moelab/quant/interleaved.hpp"
#include "moelab/quant/q8_activations.hpp"
#include "moelab/quant/quant.hpp"
#include "moelab/tensor.hpp"
#include "moelab/thread_pool.hpp"

namespace moelab::ops {

// Calls f(const T* typed_rows) with the element (or block) type that `dtype`
// stores. Extend here when a new storage type gains kernels.
template <class F>
void visit_weight_type(const WeightMatrix& w, F&& f) {
    switch (w.dtype) {
        case DType::f32: return f(reinterpret_cast<const float*>(w.data));
        case DType::f16: return f(reinterpret_cast<const moelab::f16*>(w.data));
        case DType::bf16: return f(reinterpret_cast<const moelab::bf16*>(w.data));
        case DType::q8_0: return f(reinterpret_cast<const block_q8_0*>(w.data));
        case DType::q4_0: return f(reinterpret_cast<const block_q4_0*>(w.data));
        case DType::q4_k: return f(reinterpret_cast<const block_q4_k*>(w.data));
        case DType::q5_k: return f(reinterpret_cast<const block_q5_k*>(w.data));
        case DType::q6_k: return f(reinterpret_cast<const block_q6_k*>(w.data));
        default:
            throw Error("linear", "weights of type " + std::string(dtype_name(w.dtype)) +
                                      " have no kernel in this build");
    }
}

// True when visit_weight_type() has a kernel for this storage type.
constexpr bool has_linear_kernel(DType t) {
    return t == DType::f32 || t == DType::f16 || t == DType::bf16 || is_quantized(t);
}

// Rows per thread chunk: a multiple of every backend's row blocking, so that
// chunks never split a block of rows a kernel processes together.
inline constexpr std::size_t kRowGrain = 16;

// Rows [row_begin, row_end) of y = x W^T, on the calling thread:
//     y[t * ldy + r] = sum_c W[r, c] * x[t, c]      x: (n_tokens, W.cols), y: (n_tokens, ldy)
// By the kernel contract every y[t, r] is the same whichever rows a call
// covers and whether it is a matvec or a matmul, so callers may split the
// rows of one matrix, or the matrices of several experts, across threads
// in any way without changing a bit of the result.
template <class Backend>
void linear_rows(Backend backend, const WeightMatrix& w, std::size_t row_begin, std::size_t row_end, const float* x,
                 std::size_t n_tokens, float* y, std::size_t ldy) {
    visit_weight_type(w, [&](auto* rows) {
        const std::size_t blocks_per_row = w.row_bytes() / sizeof(*rows);
        const auto* first = rows + row_begin * blocks_per_row;
        if (n_tokens == 1)
            matvec(backend, first, row_end - row_begin, w.cols, x, y + row_begin);
        else
            matmul(backend, first, row_end - row_begin, w.cols, x, n_tokens, y + row_begin, ldy);
    });
}

// ---------------------------------------------------------------------------
// The reduced-precision activation modes, both opt-in. Each applies to a
// matrix when the caller asks for it, the weights are of its kind, and the
// backend has the products for them; every other matrix runs the exact f32
// path. The activations are rounded once per product (per batch of rows a
// set of matrices shares), on the calling thread, and every thread reads them.
//   int8: quantized weights meet activations rounded to 8 bits per 32 values
//         (quant/q8_activations.hpp), integer products;
//   bf16: bf16 weights meet activations rounded to bf16
//         (quant/bf16_activations.hpp), bf16 dot products.
// ---------------------------------------------------------------------------
enum class ActivationPrecision : std::uint8_t {
    f32,   // every weight widened or dequantised exactly, f32 products (the specification; the default)
    int8,  // quantized weights: activations rounded to 8 bits per 32 values, integer products (opt-in)
    bf16,  // bf16 weights: activations rounded to bf16, bf16 x bf16 products (opt-in)
};

template <class Backend, class Block>
constexpr bool has_int8_product = requires(Backend b, const Block* w, Q8Row x, Q8Rows xs, float* y) {
    matvec(b, w, std::size_t{}, std::size_t{}, x, y);
    matmul(b, w, std::size_t{}, std::size_t{}, xs, std::size_t{}, y, std::size_t{});
};

// Products of rows interleaved 16 at a time (quant/interleaved.hpp; X16 =
// block_q4_k_x16, block_q8_0_x16) with int8 activations: groups of 16 rows,
// y[t * y_stride + r].
template <class Backend, class X16>
constexpr bool has_int8_x16_product = requires(Backend b, const X16* w, Q8Row x, Q8Rows xs, float* y) {
    matvec(b, w, std::size_t{}, std::size_t{}, x, y);
    matmul(b, w, std::size_t{}, std::size_t{}, xs, std::size_t{}, y, std::size_t{});
};

// Calls f(X16{}) with the interleaved layout of `dtype` if Backend has
// products for it, and returns whether it did.
template <class Backend, class F>
bool visit_interleaved(DType dtype, F&& f) {
    if constexpr (has_int8_x16_product<Backend, block_q4_k_x16>)
        if (dtype == DType::q4_k) return f(block_q4_k_x16{}), true;
    if constexpr (has_int8_x16_product<Backend, block_q8_0_x16>)
        if (dtype == DType::q8_0) return f(block_q8_0_x16{}), true;
    return false;
}

// True when Backend reads interleaved copies of `dtype` in the int8 mode.
template <class Backend>
bool reads_interleaved(DType dtype) {
    return visit_interleaved<Backend>(dtype, [](auto) {});
}

template <class Backend>
constexpr bool has_bf16_product = requires(Backend b, const bf16* w, const bf16* x, float* y) {
    matvec(b, w, std::size_t{}, std::size_t{}, x, y);
    matmul(b, w, std::size_t{}, std::size_t{}, x, std::size_t{}, y, std::size_t{});
};

// True when the backend has int8 products for w's block type.
template <class Backend>
bool int8_capable(Backend, const WeightMatrix& w) {
    bool available = false;
    visit_quant_block(w.dtype, [&]<class Block>(Block) { available = has_int8_product<Backend, Block>; });
    return available;
}

// True when products with w run on int8 activations under `precision`.
template <class Backend>
bool uses_int8(Backend backend, const WeightMatrix& w, ActivationPrecision precision) {
    return precision == ActivationPrecision::int8 && int8_capable(backend, w);
}

// True when products with w run on bf16 activations under `precision`.
template <class Backend>
bool uses_bf16(Backend, const WeightMatrix& w, ActivationPrecision precision) {
    return precision == ActivationPrecision::bf16 && w.dtype == DType::bf16 && has_bf16_product<Backend>;
}

// The activations of a product as kernels read them: the f32 rows always,
// and the same rows rounded where the mode applies to some matrix that reads
// them (round_for below). A view; `from(t)` starts at token t.
struct ProductInput {
    const float* x_f32 = nullptr;   // (n_tokens, cols)
    Q8Rows x_q8{};                  // q == nullptr: not rounded to 8 bits
    const bf16* x_bf16 = nullptr;   // nullptr: not rounded to bf16
    std::size_t cols = 0;
    ProductInput from(std::size_t token) const {
        return {x_f32 + token * cols, x_q8.q ? x_q8.from(token) : Q8Rows{}, x_bf16 ? x_bf16 + token * cols : nullptr,
                cols};
    }
};

// The rounded copies behind ProductInputs. Buffers only grow, so a caller
// that keeps one allocates nothing once warm.
struct RoundedActivations {
    Q8Activations int8;
    Bf16Buffer bf16;
};

// Which rounded copies the matrices `readers` read under `precision`: 8-bit
// (with the K-quant ordered copy, Q8Activations::q_kquant, only if a Q4_K or
// Q5_K matrix will read it), bf16, both or neither.
struct Rounding {
    bool int8 = false, kquant_order = false, bf16 = false;
};

template <class Backend>
Rounding rounding_for(Backend backend, ActivationPrecision precision, std::span<const WeightMatrix* const> readers) {
    Rounding r;
    for (const WeightMatrix* w : readers) {
        if (uses_int8(backend, *w, precision)) {
            r.int8 = true;
            r.kquant_order |= w->dtype == DType::q4_k || w->dtype == DType::q5_k;
        }
        r.bf16 |= uses_bf16(backend, *w, precision);
    }
    return r;
}

// Sizes `scratch` for x: (n_tokens, cols) and returns the view linear_rows()
// takes; the rounded rows are written by round_rows(), in any ranges, on any
// threads (rows are independent, so the bits are the same).
inline ProductInput prepare_rounding(const Rounding& r, const float* x, std::size_t n_tokens, std::size_t cols,
                                     RoundedActivations& scratch) {
    ProductInput in{x, {}, nullptr, cols};
    if (r.int8) {
        resize_activations(scratch.int8, n_tokens, cols, r.kquant_order);
        in.x_q8 = scratch.int8.rows();
    }
    if (r.bf16) {
        if (scratch.bf16.size() < n_tokens * cols) scratch.bf16.resize(n_tokens * cols);
        in.x_bf16 = scratch.bf16.data();
    }
    return in;
}

inline void round_rows(const Rounding& r, const float* x, std::size_t row_begin, std::size_t row_end,
                       std::size_t cols, RoundedActivations& scratch) {
    if (r.int8) quantize_activation_rows(x, row_begin, row_end, scratch.int8);
    if (r.bf16)
        round_activations_to_bf16(x + row_begin * cols, (row_end - row_begin) * cols, scratch.bf16.data() + row_begin * cols);
}

// x: (n_tokens, cols), read by the matrices `readers` (all of cols columns).
// Rounds x into `scratch` for each mode that applies to one of them, and
// returns the view linear_rows() takes. With a pool, a batch of at least
// kParallelRoundingValues values is rounded by all threads, a range of rows
// each. On one thread the other waited: rounding was 2.5% of a perf profile
// of dense Q4_K pp512 in the int8 mode, against 22% for the products
// (docs/kernels.md).
inline constexpr std::size_t kParallelRoundingValues = 64 * 1024;

template <class Backend>
ProductInput round_for(Backend backend, ActivationPrecision precision, std::span<const WeightMatrix* const> readers,
                       const float* x, std::size_t n_tokens, std::size_t cols, RoundedActivations& scratch,
                       ThreadPool* pool = nullptr) {
    const Rounding r = rounding_for(backend, precision, readers);
    const ProductInput in = prepare_rounding(r, x, n_tokens, cols, scratch);
    if (!r.int8 && !r.bf16) return in;
    auto round = [&](std::size_t begin, std::size_t end) { round_rows(r, x, begin, end, cols, scratch); };
    if (pool && n_tokens * cols >= kParallelRoundingValues) pool->parallel_ranges(n_tokens, 1, round);
    else round(0, n_tokens);
    return in;
}

template <class Backend>
ProductInput round_for(Backend backend, ActivationPrecision precision,
                       std::initializer_list<const WeightMatrix*> readers, const float* x, std::size_t n_tokens,
                       std::size_t cols, RoundedActivations& scratch, ThreadPool* pool = nullptr) {
    return round_for(backend, precision, std::span<const WeightMatrix* const>(readers.begin(), readers.size()), x,
                     n_tokens, cols, scratch, pool);
}

// Rows [row_begin, row_end) of a matrix's interleaved copy (X16's layout; all
// below w.rows / 16 * 16), int8 activations. Whole groups go to the backend's
// interleaved products; a group the range cuts is computed whole, token by
// token, into 16 lanes of scratch, and the range's rows copied out: a row's
// result does not depend on the rows computed with it (kernels/highway_interleaved.hpp),
// so any split of the rows gives the same bits.
template <class X16, class Backend>
void interleaved_rows(Backend backend, const WeightMatrix& w, std::size_t row_begin, std::size_t row_end, Q8Rows x,
                      std::size_t n_tokens, float* y, std::size_t ldy) {
    constexpr std::size_t G = kInterleavedRows;
    const std::size_t row_blocks = w.cols / X16::kWeights;
    const X16* copy = reinterpret_cast<const X16*>(w.interleaved);
    std::size_t r = row_begin;
    auto part_of_group = [&](std::size_t end) {
        const std::size_t group = r / G;
        float lanes[G];
        for (std::size_t t = 0; t < n_tokens; ++t) {
            matvec(backend, copy + group * row_blocks, 1, w.cols, x[t], lanes);
            for (std::size_t i = r; i < end; ++i) y[t * ldy + i] = lanes[i - group * G];
        }
        r = end;
    };
    if (r % G != 0) part_of_group(std::min(row_end, (r / G + 1) * G));
    if (const std::size_t groups = (row_end - r) / G; groups > 0) {
        const X16* first = copy + r / G * row_blocks;
        if (n_tokens == 1) matvec(backend, first, groups, w.cols, x[0], y + r);
        else matmul(backend, first, groups, w.cols, x, n_tokens, y + r, ldy);
        r += groups * G;
    }
    if (r < row_end) part_of_group(row_end);
}

// Rows [row_begin, row_end) of y = x W^T on the calling thread, from the
// representation of x that w's mode reads (rounded by round_for for it), or
// the exact f32 path. Same bits for any split of the rows, as above.
template <class Backend>
void linear_rows(Backend backend, const WeightMatrix& w, std::size_t row_begin, std::size_t row_end,
                 const ProductInput& x, std::size_t n_tokens, float* y, std::size_t ldy) {
    if (x.x_q8.q && int8_capable(backend, w)) {
        const std::size_t interleaved_end = w.interleaved ? std::min(row_end, w.rows / kInterleavedRows * kInterleavedRows) : 0;
        if (row_begin < interleaved_end &&  // the interleaved copy's rows, where there is one and the backend reads it
            visit_interleaved<Backend>(w.dtype, [&]<class X16>(X16) {
                interleaved_rows<X16>(backend, w, row_begin, interleaved_end, x.x_q8, n_tokens, y, ldy);
            }))
            row_begin = interleaved_end;
        if (row_begin == row_end) return;
        visit_quant_block(w.dtype, [&]<class Block>(Block) {
            if constexpr (has_int8_product<Backend, Block>) {
                const auto* first = reinterpret_cast<const Block*>(w.data) + row_begin * (w.cols / Block::kWeights);
                if (n_tokens == 1)
                    matvec(backend, first, row_end - row_begin, w.cols, x.x_q8[0], y + row_begin);
                else
                    matmul(backend, first, row_end - row_begin, w.cols, x.x_q8, n_tokens, y + row_begin, ldy);
            }
        });
        return;
    }
    if constexpr (has_bf16_product<Backend>) {
        if (x.x_bf16 && w.dtype == DType::bf16) {
            const auto* first = reinterpret_cast<const bf16*>(w.data) + row_begin * w.cols;
            if (n_tokens == 1)
                matvec(backend, first, row_end - row_begin, w.cols, x.x_bf16, y + row_begin);
            else
                matmul(backend, first, row_end - row_begin, w.cols, x.x_bf16, n_tokens, y + row_begin, ldy);
            return;
        }
    }
    linear_rows(backend, w, row_begin, row_end, x.x_f32, n_tokens, y, ldy);
}

// One of several products that read the same input: y = x W^T, y: (n_tokens, w->rows).
struct Product {
    const WeightMatrix* w;
    float* y;
};
inline constexpr std::size_t kMaxSharedProducts = 8;

// The products of one input x, e.g. attention's K, V and Q or a dense FFN's
// gate and up, in one fork-join: x is rounded once for all of them, and each
// matrix's rows are split into one chunk per thread, as parallel_ranges
// would split them. The same bits as one product at a time (a row's result
// does not depend on the split). Decoding MoE Q4_K, the three fork-joins of K, V and Q
// took 91 us per layer for 3.5 MB, 39 GB/s against 49 GB/s in the experts'
// products (docs/kernels.md): each fork-join ends in a tail where one thread
// waits for the other.
template <class Backend>
void linear(Backend backend, ThreadPool& pool, std::initializer_list<Product> products, const float* x,
            std::size_t n_tokens, ActivationPrecision precision = ActivationPrecision::f32,
            RoundedActivations* rounded = nullptr) {
    if (products.size() == 0) return;
    if (products.size() > kMaxSharedProducts)
        throw Error("linear", std::to_string(products.size()) + " products of one input exceed " +
                                  std::to_string(kMaxSharedProducts));
    std::array<const WeightMatrix*, kMaxSharedProducts> readers{};
    std::array<std::size_t, kMaxSharedProducts> chunk{}, first_task{};  // rows per task; the product's first task
    const std::size_t cols = products.begin()->w->cols;
    std::size_t n_tasks = 0, i = 0;
    for (const Product& p : products) {
        visit_weight_type(*p.w, [](auto*) {});  // an unsupported dtype throws here, on the calling thread
        if (p.w->cols != cols)
            throw Error("linear", "products of one input need equal widths, got " + std::to_string(cols) + " and " +
                                      std::to_string(p.w->cols) + " columns");
        readers[i] = p.w;
        chunk[i] = pool.chunk_size(p.w->rows, kRowGrain);  // as parallel_ranges splits one matrix
        first_task[i] = n_tasks;
        if (chunk[i] > 0) n_tasks += (p.w->rows + chunk[i] - 1) / chunk[i];
        ++i;
    }
    RoundedActivations local;
    const ProductInput in = round_for(backend, precision, std::span<const WeightMatrix* const>(readers.data(), i), x,
                                      n_tokens, cols, rounded ? *rounded : local, &pool);
    pool.parallel_for(n_tasks, [&](std::size_t task) {
        std::size_t p = products.size() - 1;
        while (first_task[p] > task) --p;
        const WeightMatrix& w = *products.begin()[p].w;
        const std::size_t begin = (task - first_task[p]) * chunk[p];
        linear_rows(backend, w, begin, std::min(w.rows, begin + chunk[p]), in, n_tokens, products.begin()[p].y, w.rows);
    });
}

// y[t, r] = sum_c W[r, c] * x[t, c]      x: (n_tokens, W.cols), y: (n_tokens, W.rows)
// PyTorch: y = x @ W.T
// Under a reduced-precision mode that applies to w, x is rounded once, into
// `rounded` (nullptr: a local buffer), and every thread reads it. The rows
// are split into one chunk per thread: the set of one product above.
template <class Backend>
void linear(Backend backend, ThreadPool& pool, const WeightMatrix& w, const float* x, std::size_t n_tokens, float* y,
            ActivationPrecision precision = ActivationPrecision::f32, RoundedActivations* rounded = nullptr) {
    linear(backend, pool, {Product{&w, y}}, x, n_tokens, precision, rounded);
}

}  // namespace moelab::ops
