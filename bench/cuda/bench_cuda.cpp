// SPDX-License-Identifier: MIT
// bench_cuda — dense vs MoE SwiGLU FFN on one GPU, batch 1 .. 4096 tokens.
//
//   bench_cuda [--f32] [--max-batch N] [--min-ms T]
//
// Shapes (Qwen3-30B-A3B-like): n_embd 2048; MoE: 128 experts of width 768,
// top-8, renormalised; dense: width 8 x 768 = 6144, i.e. the same ACTIVE
// FLOPs per token as the MoE (docs/dense-vs-moe.md). Weights bf16 (default)
// or f32; activations f32.
//
// Per batch size it prints the median time of one FFN call (CUDA events
// around each call, repeated for at least --min-ms), and
//   weight GB/s = weight bytes the call must read / time: dense all 3 matrices;
//                 MoE the router plus the experts at least one token chose
//                 (counted from the routing of that batch);
//   TFLOP/s     = 2 x multiply-adds / time: dense 3 D F per token; MoE
//                 3 D F_exp k + D E (router) per token.
// Activation traffic is not counted (it is small against the weights up to a
// few hundred tokens, and the time includes it either way).
// The ceiling printed first is MEASURED: a 1 GiB device-to-device copy
// (read + write bytes / time). No peak FLOP/s is measured here.
//
// Before timing, the first batch sizes' results are checked against the
// scalar CPU layers (moelab::ffn_dense / ffn_moe) on their first two tokens.
// The bound is a relative L2 error of 1e-3: rounding alone gives about
// sqrt(K) u ~ 1e-5 for K <= 6144 (tests/cuda/test_cuda.cpp proves the
// element-wise bounds); 1e-3 catches a wrong kernel, not rounding.
#include <cuda_runtime.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <set>
#include <string>
#include <vector>

#include "cuda_support.hpp"
#include "moelab/cuda/ffn_cuda.hpp"
#include "moelab/kernels/scalar.hpp"
#include "moelab/layers/ffn_dense.hpp"
#include "moelab/layers/ffn_moe.hpp"
#include "moelab/thread_pool.hpp"

using namespace moelab;

namespace {

void check(cudaError_t status, const char* what) {
    if (status != cudaSuccess) throw Error(std::string("bench_cuda: ") + what, cudaGetErrorString(status));
}

// Median milliseconds of fn(), timed one call at a time with CUDA events.
template <class F>
double median_ms(F&& fn, double min_total_ms) {
    cudaEvent_t start, stop;
    check(cudaEventCreate(&start), "cudaEventCreate");
    check(cudaEventCreate(&stop), "cudaEventCreate");
    for (int i = 0; i < 3; ++i) fn();  // warm-up: caches, clocks, lazy module loading
    cuda::synchronize();
    std::vector<double> times;
    double total = 0.0;
    while ((total < min_total_ms || times.size() < 10) && times.size() < 2000) {
        check(cudaEventRecord(start), "cudaEventRecord");
        fn();
        check(cudaEventRecord(stop), "cudaEventRecord");
        check(cudaEventSynchronize(stop), "cudaEventSynchronize");
        float ms = 0.0f;
        check(cudaEventElapsedTime(&ms, start, stop), "cudaEventElapsedTime");
        times.push_back(ms);
        total += ms;
    }
    cudaEventDestroy(start);
    cudaEventDestroy(stop);
    std::nth_element(times.begin(), times.begin() + times.size() / 2, times.end());
    return times[times.size() / 2];
}

// A measured bandwidth ceiling: device-to-device copy, read + write bytes.
double copy_gbps() {
    const std::size_t bytes = std::size_t{1} << 30;
    cuda::DeviceBuffer a(bytes), b(bytes);
    const double ms = median_ms(
        [&] { check(cudaMemcpy(b.data(), a.data(), bytes, cudaMemcpyDeviceToDevice), "cudaMemcpy"); }, 200.0);
    return 2.0 * static_cast<double>(bytes) / (ms * 1e-3) / 1e9;
}

double relative_l2(const float* got, const float* ref, std::size_t n) {
    double diff = 0.0, norm = 0.0;
    for (std::size_t i = 0; i < n; ++i) {
        diff += (double(got[i]) - ref[i]) * (double(got[i]) - ref[i]);
        norm += double(ref[i]) * ref[i];
    }
    return std::sqrt(diff / norm);
}

}  // namespace

int main(int argc, char** argv) try {
    DType dtype = DType::bf16;
    std::size_t max_batch = 4096;
    double min_ms = 100.0;
    for (int i = 1; i < argc; ++i) {
        const std::string arg = argv[i];
        if (arg == "--f32") dtype = DType::f32;
        else if (arg == "--max-batch" && i + 1 < argc) max_batch = std::strtoull(argv[++i], nullptr, 10);
        else if (arg == "--min-ms" && i + 1 < argc) min_ms = std::strtod(argv[++i], nullptr);
        else {
            std::fprintf(stderr, "usage: bench_cuda [--f32] [--max-batch N] [--min-ms T]\n");
            return 2;
        }
    }
    if (cuda::device_count() == 0) {
        std::printf("SKIPPED: no CUDA device (or no driver); nothing to measure\n");
        return 77;
    }
    const std::size_t n_embd = 2048, n_expert = 128, k = 8, n_ff_exp = 768, n_ff = k * n_ff_exp;
    const std::size_t elt = dtype == DType::bf16 ? 2 : 4;

    std::printf("device: %s\n", cuda::device_description(0).c_str());
    std::printf("measured copy bandwidth (1 GiB device to device, read+write): %.0f GB/s\n", copy_gbps());
    std::printf("weights %s; n_embd %zu; dense n_ff %zu; MoE %zu experts x n_ff %zu, top-%zu (equal active FLOPs)\n",
                std::string(dtype_name(dtype)).c_str(), n_embd, n_ff, n_expert, n_ff_exp, k);

    test::Rng rng(2024);
    const test::TestDenseFFN dense(rng, dtype, n_embd, n_ff);
    const test::TestMoEFFN moe(rng, dtype, n_embd, n_ff_exp, n_expert, k, true);
    const double dense_bytes = 3.0 * n_embd * n_ff * elt;
    const double expert_bytes = 3.0 * n_embd * n_ff_exp * elt, router_bytes = 4.0 * n_expert * n_embd;
    std::printf("weight bytes: dense %.1f MB; MoE %.1f MB total, %.1f MB per token (router + %zu experts)\n\n",
                dense_bytes / 1e6, (router_bytes + n_expert * expert_bytes) / 1e6,
                (router_bytes + k * expert_bytes) / 1e6, k);

    cuda::DenseWorkspace dense_ws(max_batch, n_ff);
    cuda::MoEWorkspace moe_ws(max_batch, n_embd, n_ff_exp, n_expert, k);
    cuda::DeviceArray<float> x(max_batch * n_embd), out_dense(max_batch * n_embd), out_moe(max_batch * n_embd);
    const std::vector<float> x_host = rng.vector(max_batch * n_embd, 1.0f);
    x.upload(x_host);

    // CPU reference check on the first run of each FFN, at batch 1 and at batch 4 (first two tokens).
    ThreadPool pool;
    const Context<kernels::backend::scalar> cpu{{}, pool};
    int failures = 0;
    for (std::size_t batch : {std::size_t{1}, std::size_t{4}}) {
        if (batch > max_batch) break;
        const std::size_t n_check = std::min<std::size_t>(batch, 2);
        cuda::ffn_dense(dense.gpu(), x.data(), batch, out_dense.data(), dense_ws);
        cuda::ffn_moe(moe.gpu(), x.data(), batch, out_moe.data(), moe_ws);
        const auto got_dense = out_dense.download(), got_moe = out_moe.download();
        const auto gpu_ids = moe_ws.expert_ids.download();
        std::vector<float> ref(n_check * n_embd);
        DenseFFNScratch dense_scratch;
        ffn_dense(cpu, dense.host(), x_host.data(), n_check, ref.data(), dense_scratch);
        const double err_dense = relative_l2(got_dense.data(), ref.data(), ref.size());
        MoEScratch moe_scratch;
        ffn_moe(cpu, moe.host(), moe.config(), x_host.data(), n_check, ref.data(), moe_scratch);
        const bool same_routing = std::equal(moe_scratch.expert_ids.begin(), moe_scratch.expert_ids.end(), gpu_ids.begin());
        const double err_moe = relative_l2(got_moe.data(), ref.data(), ref.size());
        // A different expert set is only possible at a near tie of two router
        // probabilities (rounding decides it); the MoE output is then not comparable.
        std::printf("CPU check, batch %zu (first %zu tokens): dense rel. L2 error %.2e, MoE %.2e, routing %s\n", batch,
                    n_check, err_dense, err_moe, same_routing ? "identical" : "differs (near tie; MoE not compared)");
        failures += err_dense > 1e-3 || (same_routing && err_moe > 1e-3);
    }
    if (failures) {
        std::printf("FAILED: the GPU disagrees with the scalar CPU reference; no timings\n");
        return 1;
    }

    std::printf("\n%6s | %9s %9s %8s | %9s %7s %9s %8s | %9s\n", "batch", "dense ms", "GB/s", "TFLOP/s", "MoE ms",
                "experts", "GB/s", "TFLOP/s", "MoE/dense");
    for (std::size_t batch = 1; batch <= max_batch; batch *= 2) {
        const double t_dense = median_ms([&] { cuda::ffn_dense(dense.gpu(), x.data(), batch, out_dense.data(), dense_ws); }, min_ms);
        const double t_moe = median_ms([&] { cuda::ffn_moe(moe.gpu(), x.data(), batch, out_moe.data(), moe_ws); }, min_ms);
        const auto ids = moe_ws.expert_ids.download();
        const std::set<std::uint32_t> used(ids.begin(), ids.begin() + static_cast<std::ptrdiff_t>(batch * k));
        const double b = static_cast<double>(batch);
        const double dense_flop = 2.0 * 3.0 * n_embd * n_ff * b;
        const double moe_flop = 2.0 * (3.0 * n_embd * n_ff_exp * k + double(n_embd) * n_expert) * b;
        const double moe_bytes = router_bytes + used.size() * expert_bytes;
        std::printf("%6zu | %9.4f %9.1f %8.2f | %9.4f %7zu %9.1f %8.2f | %9.2f\n", batch, t_dense,
                    dense_bytes / (t_dense * 1e-3) / 1e9, dense_flop / (t_dense * 1e-3) / 1e12, t_moe, used.size(),
                    moe_bytes / (t_moe * 1e-3) / 1e9, moe_flop / (t_moe * 1e-3) / 1e12, t_moe / t_dense);
        std::fflush(stdout);
    }
    return 0;
} catch (const std::exception& e) {
    std::fprintf(stderr, "bench_cuda: %s\n", e.what());
    return 1;
}
