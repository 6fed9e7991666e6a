// SPDX-License-Identifier: MIT
// moelab/thread_pool.hpp — a small fork-join pool of std::threads.
//
// Depends on: the standard library only.
//
// One call shape: pool.parallel_for(n_tasks, f) runs f(task) for every task in
// [0, n_tasks) and returns when all have finished. The calling thread works
// too, so a pool of size 1 starts no thread at all. Which thread runs which
// task may vary; callers make results independent of that by giving each task
// its own output (e.g. a range of matrix rows), so output is bitwise identical
// for any thread count.
//
// The caller waits for the *tasks*, never for the workers: a worker that the
// OS has descheduled (a loaded machine) simply finds every task taken when it
// wakes up, instead of stalling the call by a whole scheduler time slice.
// Tasks are claimed from one 64-bit counter that packs (job generation, next
// task index), so a late worker cannot claim a task of a newer job with an
// old job's function. Workers spin briefly before they sleep, because a
// decode step issues hundreds of small parallel_for calls back to back;
// waits spin on the core first and then yield it (spin_until).
#pragma once

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <exception>
#include <functional>
#include <mutex>
#include <stdexcept>
#include <thread>
#include <vector>

namespace moelab {

// One step of a busy wait: the CPU's spin-wait hint (x86 `pause`, about 19 ns
// on this machine; AArch64 `yield`), or nothing elsewhere.
inline void cpu_relax() noexcept {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    __asm__ __volatile__("yield");
#endif
}

// Waits until ready() is true: first spinning on the core (about 40 us of
// pause steps), then giving the core away between checks, at most max_yields
// times. Returns ready(). Most waits of a decode step (a join's last task, a
// worker's next job) end within a few microseconds, and
// std::this_thread::yield() costs 1.2 us a call in this VM (measured), so
// checking only between yields noticed them late.
inline constexpr int kSpinPauseSteps = 2000;

template <class Ready>
bool spin_until(Ready&& ready, std::size_t max_yields = SIZE_MAX) {
    for (int i = 0; i < kSpinPauseSteps; ++i) {
        if (ready()) return true;
        cpu_relax();
    }
    for (std::size_t i = 0; i < max_yields; ++i) {
        if (ready()) return true;
        std::this_thread::yield();
    }
    return ready();
}

class ThreadPool {
public:
    // n_threads counts the caller; 0 means one per hardware thread.
    explicit ThreadPool(std::size_t n_threads = 0) {
        if (n_threads == 0) n_threads = std::max(1u, std::thread::hardware_concurrency());
        workers_.reserve(n_threads - 1);
        for (std::size_t i = 0; i + 1 < n_threads; ++i) workers_.emplace_back([this] { work_loop(); });
    }
    ThreadPool(const ThreadPool&) = delete;
    ThreadPool& operator=(const ThreadPool&) = delete;
    ~ThreadPool() {
        {
            std::lock_guard lock(mutex_);
            stopping_ = true;
            generation_.fetch_add(1, std::memory_order_release);
        }
        wake_.notify_all();
        for (auto& t : workers_) t.join();
    }

    std::size_t size() const { return workers_.size() + 1; }

    // Runs f(task) for task in [0, n_tasks); rethrows the first exception.
    // n_tasks < 2^32 - 1 (task indices share a 64-bit word with the job).
    template <class F>
    void parallel_for(std::size_t n_tasks, F&& f) {
        if (n_tasks == 0) return;
        if (n_tasks >= kNoTask) throw std::length_error("ThreadPool::parallel_for: too many tasks");
        if (workers_.empty() || n_tasks == 1) {
            for (std::size_t i = 0; i < n_tasks; ++i) f(i);
            return;
        }
        std::function<void(std::size_t)> job = std::ref(f);
        std::uint32_t gen;
        {
            std::lock_guard lock(mutex_);
            gen = static_cast<std::uint32_t>(generation_.load(std::memory_order_relaxed) + 1);
            // Close the old job's claim word before anything of the new job is
            // visible. A stale worker (still in run_tasks of the previous job)
            // holds a claim word of the old generation; if it reads the new,
            // larger task count, the release/acquire pair on n_tasks_ makes this
            // store visible to its compare-exchange, which then fails. (Storing
            // n_tasks_ first let such a claim through: it ran a task of the new
            // job early, counted it twice, and parallel_for could return early
            // or, stepping past n_tasks, wait forever.)
            claim_.store((static_cast<std::uint64_t>(gen) << 32) | kNoTask, std::memory_order_relaxed);
            job_ = &job;
            done_.store(0, std::memory_order_relaxed);
            error_ = nullptr;
            n_tasks_.store(n_tasks, std::memory_order_release);
            claim_.store(static_cast<std::uint64_t>(gen) << 32, std::memory_order_release);  // open: task 0 is next
            generation_.store(gen, std::memory_order_release);
        }
        wake_.notify_all();
        run_tasks(gen);
        // Wait until every task has finished (not until every worker woke).
        spin_until([&] { return done_.load(std::memory_order_acquire) == n_tasks; });
        if (error_) std::rethrow_exception(error_);
    }

    // The length of parallel_ranges' chunks of [0, n): n / size(), rounded
    // up to a multiple of `grain` (0 when n is 0).
    std::size_t chunk_size(std::size_t n, std::size_t grain) const {
        const std::size_t chunk = (n + size() - 1) / size();
        return (chunk + grain - 1) / grain * grain;
    }

    // Splits [0, n) into size() contiguous chunks of multiples of `grain`
    // (except the last) and runs f(begin, end) on each non-empty chunk.
    template <class F>
    void parallel_ranges(std::size_t n, std::size_t grain, F&& f) {
        const std::size_t chunk = chunk_size(n, grain);
        if (chunk == 0) return;
        parallel_for((n + chunk - 1) / chunk, [&](std::size_t i) {
            const std::size_t begin = i * chunk;
            f(begin, std::min(n, begin + chunk));
        });
    }

private:
    // Claims and runs tasks of job `gen` until none is left.
    void run_tasks(std::uint32_t gen) {
        for (;;) {
            std::uint64_t c = claim_.load(std::memory_order_acquire);
            std::size_t task;
            do {
                task = static_cast<std::size_t>(c & 0xFFFFFFFFu);
                if ((c >> 32) != gen || task >= n_tasks_.load(std::memory_order_acquire)) return;
            } while (!claim_.compare_exchange_weak(c, c + 1, std::memory_order_acq_rel, std::memory_order_acquire));
            // A successful claim means this job is unfinished, so the caller is
            // still waiting in parallel_for and job_ is valid.
            try {
                (*job_)(task);
            } catch (...) {
                std::lock_guard lock(mutex_);
                if (!error_) error_ = std::current_exception();
            }
            done_.fetch_add(1, std::memory_order_release);
        }
    }

    void work_loop() {
        std::uint32_t seen = 0;
        for (;;) {
            // The next job usually follows within microseconds: spin, then
            // (no job after 4,000 yields) sleep.
            spin_until([&] { return generation_.load(std::memory_order_acquire) != seen; }, 4000);
            std::uint32_t gen;
            {
                std::unique_lock lock(mutex_);
                wake_.wait(lock, [&] { return generation_.load(std::memory_order_acquire) != seen; });
                if (stopping_) return;
                gen = seen = generation_.load(std::memory_order_acquire);
            }
            run_tasks(gen);
        }
    }

    static constexpr std::uint64_t kNoTask = 0xFFFFFFFFu;  // a task index past every job's end

    std::vector<std::thread> workers_;
    std::mutex mutex_;
    std::condition_variable wake_;
    std::atomic<std::uint32_t> generation_{0};
    std::atomic<std::uint64_t> claim_{0};  // (generation << 32) | next task index
    std::atomic<std::size_t> done_{0};
    bool stopping_ = false;
    std::function<void(std::size_t)>* job_ = nullptr;
    std::atomic<std::size_t> n_tasks_{0};  // atomic: a late worker may read it while the next job is set up
    std::exception_ptr error_;
};

}  // namespace moelab
