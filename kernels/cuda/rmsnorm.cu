// SPDX-License-Identifier: MIT
// kernels/cuda/rmsnorm.cu — RMSNorm over the rows of a batch, in three
// versions from naive to tuned.
//
// Depends on: kernels/cuda/common.cuh.
//
// CPU reference: moelab::kernels::rmsnorm(backend::scalar, x, w, eps, n, out), per row:
//     out_i = x_i / sqrt(mean_j x_j^2 + eps) * w_i          (Zhang & Sennrich 2019)
//
// A row is a reduction (the sum of squares) followed by an elementwise pass.
// Rows are short (n_embd: 1k-8k) and there are few of them in decode, so the
// question is how many threads share one row's reduction.
//   v1  one thread per row, a serial sum: in decode a single thread does all
//       the work while the GPU idles; reads are `n` apart across threads.
//   v2  one block (256 threads) per row: strided partial sums (coalesced), a
//       shared-memory tree reduction, and the scale broadcast through shared
//       memory. Two __syncthreads-separated phases per tree level.
//   v3  one warp per row, 8 rows per block: float4 loads, the reduction in
//       registers with shuffles (no shared memory, no block barriers), and
//       rsqrtf. Needs n % 4 == 0 and 16-byte aligned x, w, out, else v2.
// The summation order differs between versions (same error bound, see the test).
// `out` may alias `x`: each thread writes only elements it has itself read.
#include "common.cuh"

namespace moelab::cuda {
namespace {

__global__ void rmsnorm_v1(const float* x, const float* w, float eps, std::size_t n_rows, std::size_t n, float* out) {
    const std::size_t r = blockIdx.x * static_cast<std::size_t>(blockDim.x) + threadIdx.x;
    if (r >= n_rows) return;
    const float* xr = x + r * n;
    float sum_sq = 0.0f;
    for (std::size_t i = 0; i < n; ++i) sum_sq = fmaf(xr[i], xr[i], sum_sq);
    const float inv_rms = 1.0f / sqrtf(sum_sq / static_cast<float>(n) + eps);
    float* o = out + r * n;
    for (std::size_t i = 0; i < n; ++i) o[i] = xr[i] * inv_rms * w[i];
}

constexpr unsigned kV2Threads = 256;

__global__ void rmsnorm_v2(const float* x, const float* w, float eps, std::size_t n, float* out) {
    __shared__ float partial[kV2Threads];
    const float* xr = x + blockIdx.x * n;
    float sum_sq = 0.0f;
    for (std::size_t i = threadIdx.x; i < n; i += kV2Threads) sum_sq = fmaf(xr[i], xr[i], sum_sq);
    partial[threadIdx.x] = sum_sq;
    __syncthreads();
    for (unsigned half = kV2Threads / 2; half > 0; half /= 2) {
        if (threadIdx.x < half) partial[threadIdx.x] += partial[threadIdx.x + half];
        __syncthreads();
    }
    const float inv_rms = 1.0f / sqrtf(partial[0] / static_cast<float>(n) + eps);
    float* o = out + blockIdx.x * n;
    for (std::size_t i = threadIdx.x; i < n; i += kV2Threads) o[i] = xr[i] * inv_rms * w[i];
}

constexpr unsigned kV3Threads = 256;

__global__ void rmsnorm_v3(const float* x, const float* w, float eps, std::size_t n_rows, std::size_t n, float* out) {
    const std::size_t r = blockIdx.x * static_cast<std::size_t>(kV3Threads / 32) + threadIdx.x / 32;
    const unsigned lane = threadIdx.x % 32;
    if (r >= n_rows) return;  // whole warps leave together
    const float4* xr = reinterpret_cast<const float4*>(x + r * n);
    const float4* w4 = reinterpret_cast<const float4*>(w);
    float4* o = reinterpret_cast<float4*>(out + r * n);
    const std::size_t n4 = n / 4;
    float sum_sq = 0.0f;
    for (std::size_t i = lane; i < n4; i += 32) {
        const float4 v = xr[i];
        sum_sq = fmaf(v.x, v.x, sum_sq);
        sum_sq = fmaf(v.y, v.y, sum_sq);
        sum_sq = fmaf(v.z, v.z, sum_sq);
        sum_sq = fmaf(v.w, v.w, sum_sq);
    }
    sum_sq = detail::warp_sum(sum_sq);
    const float inv_rms = rsqrtf(sum_sq / static_cast<float>(n) + eps);
    for (std::size_t i = lane; i < n4; i += 32) {
        const float4 v = xr[i], g = w4[i];
        o[i] = make_float4(v.x * inv_rms * g.x, v.y * inv_rms * g.y, v.z * inv_rms * g.z, v.w * inv_rms * g.w);
    }
}

bool aligned16(const void* p) { return reinterpret_cast<std::uintptr_t>(p) % 16 == 0; }

}  // namespace

void rmsnorm(RmsnormVersion version, const float* x, const float* w, float eps, std::size_t n_rows, std::size_t n,
             float* out) {
    if (n_rows == 0 || n == 0) return;
    switch (version) {
        case RmsnormVersion::v1_thread_per_row: {
            constexpr unsigned threads = 128;
            rmsnorm_v1<<<detail::blocks_for(n_rows, threads), threads>>>(x, w, eps, n_rows, n, out);
            return detail::check_launch("rmsnorm_v1");
        }
        case RmsnormVersion::v3_warp_vectorized:
            if (n % 4 == 0 && aligned16(x) && aligned16(w) && aligned16(out)) {
                rmsnorm_v3<<<detail::blocks_for(n_rows, kV3Threads / 32), kV3Threads>>>(x, w, eps, n_rows, n, out);
                return detail::check_launch("rmsnorm_v3");
            }
            [[fallthrough]];
        case RmsnormVersion::v2_block_reduce:
            if (n_rows > 0x7FFFFFFFu) throw Error("cuda: rmsnorm", "more rows than a grid has blocks");
            rmsnorm_v2<<<static_cast<unsigned>(n_rows), kV2Threads>>>(x, w, eps, n, out);
            return detail::check_launch("rmsnorm_v2");
    }
    throw Error("cuda: rmsnorm", "unknown version " + std::to_string(static_cast<int>(version)));
}

}  // namespace moelab::cuda
