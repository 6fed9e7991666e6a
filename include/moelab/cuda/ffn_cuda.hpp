// SPDX-License-Identifier: MIT
// moelab/cuda/ffn_cuda.hpp — the host API of the optional CUDA kernels
// (kernels/cuda/*.cu, CMake target moelab::cuda, built with MOELAB_WITH_CUDA=ON).
//
// Depends on: moelab/dtype.hpp, moelab/error.hpp, the standard library. It does
// NOT include the CUDA headers, so code that includes it compiles with any C++20
// compiler; it must link moelab::cuda. It is not part of the umbrella
// moelab.hpp, because nothing else in the library needs a compiled library.
//
// What is here (docs/cuda.md tells the design and how to run the test and
// benchmark on a GPU machine):
//   - device buffers owned through RAII (DeviceBuffer, DeviceArray<T>);
//   - the kernels, each in numbered versions from naive to tuned, one file per
//     kernel: matvec, matmul (f32 and bf16 weights), swiglu, rmsnorm, and the
//     MoE pieces (routing, sort by expert, grouped GEMM, combine);
//   - ffn_dense() and ffn_moe(): the two FFNs the benchmark compares, built
//     from those kernels. Same maths as moelab/layers/ffn_dense.hpp and
//     ffn_moe.hpp (without the shared expert).
//
// Conventions. Every float*/uint32_t* argument of a kernel function is a
// DEVICE pointer. Launches go to the legacy default stream, so they run in
// order; call synchronize() before reading results on the host (download()
// does it). Errors — a failed allocation, a failed launch, an unsupported
// weight type, no device — throw moelab::Error carrying CUDA's error string.
// Matrices are row-major (rows, cols), row = output feature, as everywhere in
// moelab; activations are f32 and accumulation is f32 (fused multiply-add).
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "moelab/dtype.hpp"
#include "moelab/error.hpp"

namespace moelab::cuda {

// ---------------------------------------------------------------------------
// Devices.
// ---------------------------------------------------------------------------

// Number of CUDA devices; 0 when there is none or no driver (never throws:
// this is how the test decides to say SKIPPED).
int device_count();
// "NVIDIA H100 80GB HBM3 (sm_90, 132 SMs)". Throws when the device is absent.
std::string device_description(int device = 0);
// Waits for all launched work; throws the first asynchronous error, if any.
void synchronize();

// ---------------------------------------------------------------------------
// Device memory, owned. Move-only; freed in the destructor (cudaFree).
// ---------------------------------------------------------------------------
namespace detail {
struct DeviceFree {
    void operator()(void* device_ptr) const noexcept;
};
}  // namespace detail

class DeviceBuffer {
public:
    DeviceBuffer() = default;
    explicit DeviceBuffer(std::size_t bytes);  // cudaMalloc; throws with the size asked

    std::size_t bytes() const { return bytes_; }
    void* data() { return ptr_.get(); }
    const void* data() const { return ptr_.get(); }

    // Blocking copies of [offset, offset + bytes) of this buffer; throw when out of range.
    void upload(const void* host, std::size_t bytes, std::size_t offset = 0);
    void download(void* host, std::size_t bytes, std::size_t offset = 0) const;
    void fill_zero();

private:
    std::unique_ptr<void, detail::DeviceFree> ptr_;
    std::size_t bytes_ = 0;
};

// n elements of a trivially copyable T on the device.
template <class T>
class DeviceArray {
public:
    DeviceArray() = default;
    explicit DeviceArray(std::size_t n) : buffer_(n * sizeof(T)), size_(n) {}
    explicit DeviceArray(const std::vector<T>& host) : DeviceArray(host.size()) { upload(host); }

    std::size_t size() const { return size_; }
    T* data() { return static_cast<T*>(buffer_.data()); }
    const T* data() const { return static_cast<const T*>(buffer_.data()); }

    void upload(const std::vector<T>& host) { upload(host.data(), host.size()); }
    void upload(const T* host, std::size_t n) {
        if (n > size_) throw Error("cuda::DeviceArray::upload", "more elements than the array holds");
        buffer_.upload(host, n * sizeof(T));
    }
    std::vector<T> download() const {
        std::vector<T> host(size_);
        buffer_.download(host.data(), size_ * sizeof(T));
        return host;
    }
    void fill_zero() { buffer_.fill_zero(); }

private:
    DeviceBuffer buffer_;
    std::size_t size_ = 0;
};

// ---------------------------------------------------------------------------
// Weight views (non-owning, device memory). dtype must be f32 or bf16; the
// functions below throw for any other type.
// ---------------------------------------------------------------------------
struct DeviceMatrix {
    DType dtype = DType::f32;
    const void* data = nullptr;  // (rows, cols) row-major
    std::size_t rows = 0;        // output features
    std::size_t cols = 0;        // input features
};

// All experts of one projection in one tensor, as GGUF's ffn_{gate,up,down}_exps:
// (n_expert, rows, cols) row-major; expert e's matrix starts at e * rows * cols.
struct DeviceExperts {
    DType dtype = DType::f32;
    const void* data = nullptr;
    std::size_t n_expert = 0, rows = 0, cols = 0;
};

// ---------------------------------------------------------------------------
// Kernels, numbered from naive to tuned (docs/cuda.md says why each step).
// The CPU reference for each is the scalar backend (kernels/scalar.hpp);
// tests/cuda/test_cuda.cpp compares every version with it.
// ---------------------------------------------------------------------------

// y = W x.   w: (rows, cols), x: (cols), y: (rows)
enum class MatvecVersion : int {
    v1_thread_per_row = 1,  // one thread walks a whole row; bitwise equal to every matmul version
    v2_warp_per_row = 2,    // 32 lanes stride the row (coalesced), shuffle-tree sum
    v3_warp_vectorized = 3, // + 16-byte loads, several rows per block (needs cols % 8 == 0, else v2)
};
void matvec(MatvecVersion version, const DeviceMatrix& w, const float* x, float* y);

// Y = X W^T.   w: (rows, cols), x: (n_tokens, cols), y[t * y_stride + r] for r < rows.
// Every version accumulates each (t, r) product with fmaf in column order from
// 0, so all three give bitwise identical results, independent of the batch:
// the kernel contract's determinism rule.
enum class MatmulVersion : int {
    v1_naive = 1,           // one thread per output, straight from global memory
    v2_smem_tiled = 2,      // 32x32 output tiles, operands staged through shared memory
    v3_register_tiled = 3,  // 64x64 tiles, 4x4 outputs per thread held in registers
};
void matmul(MatmulVersion version, const DeviceMatrix& w, const float* x, std::size_t n_tokens, float* y,
            std::size_t y_stride);

// out = silu(gate) * up, n elements; out may alias gate or up.
enum class SwigluVersion : int {
    v1_naive = 1,        // one thread per element
    v2_vectorized = 2,   // float4 loads/stores, grid-stride loop (scalar tail)
};
void swiglu(SwigluVersion version, const float* gate, const float* up, float* out, std::size_t n);

// out[r] = x[r] / sqrt(mean(x[r]^2) + eps) * w for each of n_rows rows of n.
// x, out: (n_rows, n); w: (n). out may alias x.
enum class RmsnormVersion : int {
    v1_thread_per_row = 1,   // one thread per row, serial sums
    v2_block_reduce = 2,     // a block per row, shared-memory tree reduction
    v3_warp_vectorized = 3,  // a warp per row, float4 and shuffle reduction (n % 4 == 0, else v2)
};
void rmsnorm(RmsnormVersion version, const float* x, const float* w, float eps, std::size_t n_rows, std::size_t n,
             float* out);

// ---------------------------------------------------------------------------
// MoE pieces. A batch of n_tokens routed to k experts each has n_pairs =
// n_tokens * k (token, expert) pairs; pair p = t * k + j.
// ---------------------------------------------------------------------------

// Rows of the grouped GEMM's tiles: each expert's group is cut into tiles of
// this many rows, and tile_begin[] counts them (see sort_by_expert).
inline constexpr std::size_t kGroupTileRows = 64;

// Router: probs = softmax(logits) per token (in place over logits: (n_tokens, n_expert)),
// expert_ids/expert_weights: (n_tokens, k), best first; ties to the lowest
// index, NaN last; weights renormalised to sum 1 when norm_topk_prob. Exactly
// moelab/layers/router.hpp's algorithm, one thread per token.
void route(float* logits, std::size_t n_tokens, std::size_t n_expert, std::size_t k, bool norm_topk_prob,
           std::uint32_t* expert_ids, float* expert_weights);

// Device arrays of the sorted layout (all device memory, sized by MoEWorkspace).
struct ExpertGroups {
    std::uint32_t* count = nullptr;        // (n_expert) scratch: pairs per expert
    std::uint32_t* expert_begin = nullptr; // (n_expert + 1): expert e owns sorted rows [begin[e], begin[e+1])
    std::uint32_t* tile_begin = nullptr;   // (n_expert + 1): expert e owns row tiles [tile_begin[e], tile_begin[e+1])
    std::uint32_t* cursor = nullptr;       // (n_expert) scratch for the placement
    std::uint32_t* slot_token = nullptr;   // (n_pairs): sorted row s holds token slot_token[s]
    std::uint32_t* pair_slot = nullptr;    // (n_pairs): pair p went to sorted row pair_slot[p]
};

// Counting sort of the pairs by expert (count, scan, place). Within one
// expert the order of rows is unspecified (atomic placement); nothing depends
// on it, because each row of a grouped product is computed independently and
// moe_combine gathers by pair.
void sort_by_expert(const std::uint32_t* expert_ids, std::size_t n_tokens, std::size_t k, std::size_t n_expert,
                    const ExpertGroups& groups);

// Y[s] = X[a_row(s)] W_e^T for every sorted row s, with e the expert owning s:
// the grouped GEMM. x: rows of w.cols floats; a_row(s) = slot_token[s] when
// slot_token is given (gather the tokens: gate/up), else s (down). y: (n_pairs, w.rows).
enum class GroupedVersion : int {
    v1_launch_per_expert = 1,  // copy the offsets to the host, one tiled launch per non-empty expert
    v2_one_launch_naive = 2,   // one launch; blockIdx.x -> (expert, tile); a thread per output
    v3_one_launch_tiled = 3,   // one launch; the 64x64 register tile of matmul v3
};
void grouped_matmul(GroupedVersion version, const DeviceExperts& w, const float* x, const std::uint32_t* slot_token,
                    std::size_t n_pairs, const ExpertGroups& groups, float* y);

// out[t] = sum_j expert_weights[t, j] * y[pair_slot[t * k + j]], j in order.
// y: (n_pairs, n_embd) sorted rows; out: (n_tokens, n_embd).
void moe_combine(const float* y, const std::uint32_t* pair_slot, const float* expert_weights, std::size_t n_tokens,
                 std::size_t k, std::size_t n_embd, float* out);

// ---------------------------------------------------------------------------
// The two FFNs.
// ---------------------------------------------------------------------------

// out = W_down (silu(W_gate x) * (W_up x)).  x, out: (n_tokens, n_embd)
struct DenseFFN {
    DeviceMatrix gate, up;  // (n_ff, n_embd)
    DeviceMatrix down;      // (n_embd, n_ff)
};
struct DenseWorkspace {
    DenseWorkspace(std::size_t max_tokens, std::size_t n_ff)
        : gate(max_tokens * n_ff), up(max_tokens * n_ff), max_tokens(max_tokens), n_ff(n_ff) {}
    DeviceArray<float> gate, up;  // (max_tokens, n_ff)
    std::size_t max_tokens, n_ff;
};
// One token uses matvec v3 (decode is bandwidth-bound), more use matmul at `version`.
// The decode path therefore rounds differently from a batch (docs/cuda.md).
void ffn_dense(const DenseFFN& w, const float* x, std::size_t n_tokens, float* out, DenseWorkspace& ws,
               MatmulVersion version = MatmulVersion::v3_register_tiled);

// out(x) = sum_{e in topk(softmax(W_router x))} w_e FFN_e(x)   (no shared expert)
struct MoEFFN {
    DeviceMatrix router;          // (n_expert, n_embd)
    DeviceExperts gate, up;       // (n_expert, n_ff_exp, n_embd)
    DeviceExperts down;           // (n_expert, n_embd, n_ff_exp)
    std::size_t n_expert_used = 0;
    bool norm_topk_prob = true;
};
struct MoEWorkspace {
    MoEWorkspace(std::size_t max_tokens, std::size_t n_embd, std::size_t n_ff_exp, std::size_t n_expert, std::size_t k)
        : logits(max_tokens * n_expert), expert_weights(max_tokens * k), expert_ids(max_tokens * k),
          count(n_expert), expert_begin(n_expert + 1), tile_begin(n_expert + 1), cursor(n_expert),
          slot_token(max_tokens * k), pair_slot(max_tokens * k), gate(max_tokens * k * n_ff_exp),
          up(max_tokens * k * n_ff_exp), expert_out(max_tokens * k * n_embd), max_tokens(max_tokens) {}
    ExpertGroups groups() {
        return {count.data(), expert_begin.data(), tile_begin.data(), cursor.data(), slot_token.data(),
                pair_slot.data()};
    }
    DeviceArray<float> logits;                      // (max_tokens, n_expert): router logits, then probabilities
    DeviceArray<float> expert_weights;              // (max_tokens, k)
    DeviceArray<std::uint32_t> expert_ids;          // (max_tokens, k): the routing, read it after the call
    DeviceArray<std::uint32_t> count, expert_begin, tile_begin, cursor, slot_token, pair_slot;
    DeviceArray<float> gate, up;                    // (n_pairs, n_ff_exp), sorted rows
    DeviceArray<float> expert_out;                  // (n_pairs, n_embd), sorted rows
    std::size_t max_tokens;
};
void ffn_moe(const MoEFFN& w, const float* x, std::size_t n_tokens, float* out, MoEWorkspace& ws,
             GroupedVersion version = GroupedVersion::v3_one_launch_tiled);

}  // namespace moelab::cuda
