// SPDX-License-Identifier: MIT
// moelab/io/mapped_file.hpp — a whole file mapped read-only into memory.
//
// Depends on: moelab/error.hpp, POSIX (open, fstat, mmap, madvise), the standard library.
//
// Why mmap: weights are never copied at load time. A reader validates the
// file's header and hands out pointers into the mapping (TensorEntry::data),
// and the kernel pages the bytes in when a matrix row is first read, so
// opening a 30 GB checkpoint costs only its header.
//
// MappedFile is RAII: the mapping lives exactly as long as the object. It is
// movable (the mapping, and every pointer into it, survives the move) and not
// copyable. An empty file maps to data() == nullptr, size() == 0.
//
// One limit of mapping that no reader can check away: if another process
// truncates the file while it is mapped, touching the lost pages raises
// SIGBUS. Do not rewrite model files in place while they are open.
#pragma once

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <string>
#include <system_error>
#include <utility>

#include "moelab/error.hpp"

namespace moelab::io {

class MappedFile {
public:
    // Maps `path` read-only. Throws moelab::Error "PATH: cannot open: <reason>"
    // when the file cannot be opened, is not a regular file, or cannot be mapped.
    explicit MappedFile(const std::filesystem::path& path) : path_(path) {
        // O_NONBLOCK: opening a FIFO must not hang; it is rejected below anyway.
        const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK);
        if (fd < 0) fail("cannot open", errno);
        struct stat st {};
        if (::fstat(fd, &st) != 0) {
            const int e = errno;
            ::close(fd);
            fail("cannot open", e);
        }
        if (!S_ISREG(st.st_mode)) {
            ::close(fd);
            throw Error(path_.string(), "cannot open: not a regular file");
        }
        size_ = static_cast<std::size_t>(st.st_size);
        if (size_ > 0) {
            void* p = ::mmap(nullptr, size_, PROT_READ, MAP_PRIVATE, fd, 0);
            if (p == MAP_FAILED) {
                const int e = errno;
                ::close(fd);
                fail("cannot map", e);
            }
            data_ = static_cast<const std::byte*>(p);
#if defined(MADV_HUGEPAGE)
            // Advice only: map the file with 2 MiB pages where the page cache
            // holds it in 2 MiB folios, one TLB entry per 2 MiB of weights.
            // Here (ext4, Linux 6.18) a file read fresh from disk is cached
            // in large folios anyway (969 of 1,014 MB PMD-mapped without the
            // advice, 1,010 MB with it); one written recently (a download,
            // `moelab synth`) stays in 4 KiB pages until evicted. MoE bf16
            // from 2 MiB-folio against 4 KiB-page cache, alternating, three
            // rounds: prefill at 64 tokens 401-422 against 275-381 tok/s,
            // decode 53.0-55.8 against 48.1-52.1 (docs/performance.md).
            ::madvise(p, size_, MADV_HUGEPAGE);
#endif
        }
        ::close(fd);  // the mapping keeps its own reference to the file
    }

    MappedFile(MappedFile&& other) noexcept
        : path_(std::move(other.path_)), data_(std::exchange(other.data_, nullptr)),
          size_(std::exchange(other.size_, 0)) {}
    MappedFile& operator=(MappedFile&& other) noexcept {
        if (this != &other) {
            unmap();
            path_ = std::move(other.path_);
            data_ = std::exchange(other.data_, nullptr);
            size_ = std::exchange(other.size_, 0);
        }
        return *this;
    }
    MappedFile(const MappedFile&) = delete;
    MappedFile& operator=(const MappedFile&) = delete;
    ~MappedFile() { unmap(); }

    const std::byte* data() const { return data_; }
    std::size_t size() const { return size_; }
    bool contains(const std::byte* p, std::size_t n) const {
        return data_ != nullptr && p >= data_ && n <= size_ && static_cast<std::size_t>(p - data_) <= size_ - n;
    }

    // Hands the pages wholly inside [p, p + n) (within this mapping) back to
    // the kernel: they leave the process's resident set and are read from the
    // file again if touched (the mapping is private and never written, so
    // nothing is lost). For bytes a caller has copied and will rarely read
    // again (Model::interleave_for_int8). Advice only: failures are ignored.
    void release(const std::byte* p, std::size_t n) const noexcept {
        if (!contains(p, n)) return;
        const auto page = static_cast<std::uintptr_t>(::sysconf(_SC_PAGESIZE));
        const std::uintptr_t begin = (reinterpret_cast<std::uintptr_t>(p) + page - 1) / page * page;
        const std::uintptr_t end = (reinterpret_cast<std::uintptr_t>(p) + n) / page * page;
        if (end > begin) ::madvise(reinterpret_cast<void*>(begin), end - begin, MADV_DONTNEED);
    }
    const std::filesystem::path& path() const { return path_; }

private:
    [[noreturn]] void fail(const char* what, int error_number) const {
        throw Error(path_.string(), std::string(what) + ": " + std::generic_category().message(error_number));
    }
    void unmap() noexcept {
        if (data_ != nullptr) ::munmap(const_cast<std::byte*>(data_), size_);
        data_ = nullptr;
        size_ = 0;
    }

    std::filesystem::path path_;
    const std::byte* data_ = nullptr;
    std::size_t size_ = 0;
};

}  // namespace moelab::io
