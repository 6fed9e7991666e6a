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
// Cost: one wake-up and one join per call. Workers spin briefly before they
// sleep, because a decode step issues hundreds of small parallel_for calls
// back to back and a futex wake-up costs several microseconds each.
#pragma once

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <cstddef>
#include <exception>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

namespace moelab {

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
            ++generation_;
        }
        wake_.notify_all();
        for (auto& t : workers_) t.join();
    }

    std::size_t size() const { return workers_.size() + 1; }

    // Runs f(task) for task in [0, n_tasks); rethrows the first exception.
    template <class F>
    void parallel_for(std::size_t n_tasks, F&& f) {
        if (n_tasks == 0) return;
        if (workers_.empty() || n_tasks == 1) {
            for (std::size_t i = 0; i < n_tasks; ++i) f(i);
            return;
        }
        std::function<void(std::size_t)> job = std::ref(f);
        {
            std::lock_guard lock(mutex_);
            job_ = &job;
            n_tasks_ = n_tasks;
            next_task_.store(0, std::memory_order_relaxed);
            busy_workers_.store(workers_.size(), std::memory_order_relaxed);
            error_ = nullptr;
            generation_.fetch_add(1, std::memory_order_release);
        }
        wake_.notify_all();
        run_tasks();
        // Wait for the workers to leave this job before `job` goes out of scope.
        while (busy_workers_.load(std::memory_order_acquire) != 0) std::this_thread::yield();
        if (error_) std::rethrow_exception(error_);
    }

    // Splits [0, n) into size() contiguous chunks of multiples of `grain`
    // (except the last) and runs f(begin, end) on each non-empty chunk.
    template <class F>
    void parallel_ranges(std::size_t n, std::size_t grain, F&& f) {
        const std::size_t n_chunks = size();
        std::size_t chunk = (n + n_chunks - 1) / n_chunks;
        chunk = (chunk + grain - 1) / grain * grain;
        if (chunk == 0) return;
        parallel_for((n + chunk - 1) / chunk, [&](std::size_t i) {
            const std::size_t begin = i * chunk;
            f(begin, std::min(n, begin + chunk));
        });
    }

private:
    void run_tasks() {
        for (;;) {
            const std::size_t task = next_task_.fetch_add(1, std::memory_order_relaxed);
            if (task >= n_tasks_) return;
            try {
                (*job_)(task);
            } catch (...) {
                std::lock_guard lock(mutex_);
                if (!error_) error_ = std::current_exception();
            }
        }
    }

    void work_loop() {
        std::size_t seen = 0;
        for (;;) {
            // Spin a little (cheap when jobs come back to back), then sleep.
            for (int spin = 0; spin < 20000 && generation_.load(std::memory_order_acquire) == seen; ++spin)
                std::this_thread::yield();
            {
                std::unique_lock lock(mutex_);
                wake_.wait(lock, [&] { return generation_.load(std::memory_order_acquire) != seen; });
                seen = generation_.load(std::memory_order_acquire);
                if (stopping_) return;
            }
            run_tasks();
            busy_workers_.fetch_sub(1, std::memory_order_acq_rel);
        }
    }

    std::vector<std::thread> workers_;
    std::mutex mutex_;
    std::condition_variable wake_;
    std::atomic<std::size_t> generation_{0};
    bool stopping_ = false;
    std::function<void(std::size_t)>* job_ = nullptr;
    std::size_t n_tasks_ = 0;
    std::atomic<std::size_t> next_task_{0};
    std::atomic<std::size_t> busy_workers_{0};
    std::exception_ptr error_;
};

}  // namespace moelab
