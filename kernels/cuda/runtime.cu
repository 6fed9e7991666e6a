// SPDX-License-Identifier: MIT
// kernels/cuda/runtime.cu — devices and owned device memory (the RAII half of
// moelab/cuda/ffn_cuda.hpp).
//
// Depends on: kernels/cuda/common.cuh.
#include <string>

#include "common.cuh"

namespace moelab::cuda {

int device_count() {
    int n = 0;
    // No driver (cudaErrorInsufficientDriver) or no device (cudaErrorNoDevice)
    // both mean "no GPU here"; clear the sticky error so later calls start clean.
    if (cudaGetDeviceCount(&n) != cudaSuccess) {
        (void)cudaGetLastError();
        return 0;
    }
    return n;
}

std::string device_description(int device) {
    cudaDeviceProp prop{};
    detail::check(cudaGetDeviceProperties(&prop, device), "cudaGetDeviceProperties");
    return std::string(prop.name) + " (sm_" + std::to_string(prop.major) + std::to_string(prop.minor) + ", " +
           std::to_string(prop.multiProcessorCount) + " SMs, " +
           std::to_string(prop.totalGlobalMem >> 20) + " MiB)";
}

void synchronize() { detail::check(cudaDeviceSynchronize(), "cudaDeviceSynchronize"); }

void detail::DeviceFree::operator()(void* device_ptr) const noexcept {
    (void)cudaFree(device_ptr);  // a destructor must not throw; a failure here leaks, nothing worse
}

DeviceBuffer::DeviceBuffer(std::size_t bytes) : bytes_(bytes) {
    if (bytes == 0) return;
    void* p = nullptr;
    detail::check(cudaMalloc(&p, bytes), ("cudaMalloc of " + std::to_string(bytes) + " bytes").c_str());
    ptr_.reset(p);
}

namespace {
void check_range(const char* what, std::size_t offset, std::size_t bytes, std::size_t size) {
    if (offset > size || bytes > size - offset)
        throw Error(std::string("cuda::DeviceBuffer::") + what,
                    "bytes [" + std::to_string(offset) + ", " + std::to_string(offset) + " + " +
                        std::to_string(bytes) + ") past the end of a " + std::to_string(size) + "-byte buffer");
}
}  // namespace

void DeviceBuffer::upload(const void* host, std::size_t bytes, std::size_t offset) {
    check_range("upload", offset, bytes, bytes_);
    if (bytes == 0) return;
    detail::check(cudaMemcpy(static_cast<char*>(data()) + offset, host, bytes, cudaMemcpyHostToDevice),
                  "cudaMemcpy host -> device");
}

void DeviceBuffer::download(void* host, std::size_t bytes, std::size_t offset) const {
    check_range("download", offset, bytes, bytes_);
    if (bytes == 0) return;
    detail::check(cudaMemcpy(host, static_cast<const char*>(data()) + offset, bytes, cudaMemcpyDeviceToHost),
                  "cudaMemcpy device -> host");
}

void DeviceBuffer::fill_zero() {
    if (bytes_ != 0) detail::check(cudaMemset(data(), 0, bytes_), "cudaMemset");
}

}  // namespace moelab::cuda
