#include "core/thread_pool.h"

#include <cblas.h>

#include <algorithm>
#include <memory>
#include <utility>

namespace tinyemo {

namespace {
thread_local bool t_in_pool_job = false;
}

ThreadPool::ThreadPool(int num_threads) {
  for (int i = 1; i < std::max(1, num_threads); ++i) workers_.emplace_back([this, i] { worker_loop(i); });
}

ThreadPool::~ThreadPool() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stop_ = true;
  }
  wake_.notify_all();
  for (auto& w : workers_) w.join();
}

void ThreadPool::drain(int thread) {
  const bool was_in_job = t_in_pool_job;
  t_in_pool_job = true;
  for (;;) {
    const int64_t task = next_task_.fetch_add(1, std::memory_order_relaxed);
    if (task >= num_tasks_) break;
    try {
      (*job_)(task, thread);
    } catch (...) {
      std::lock_guard<std::mutex> lock(mutex_);
      if (!error_) error_ = std::current_exception();
      next_task_.store(num_tasks_, std::memory_order_relaxed);  // stop handing out tasks
    }
  }
  t_in_pool_job = was_in_job;
}

void ThreadPool::worker_loop(int thread) {
  uint64_t seen = 0;
  for (;;) {
    // Spin briefly: loops on decode paths come back within microseconds.
    bool got = false;
    for (int spin = 0; spin < 20000; ++spin) {
      if (generation_.load(std::memory_order_acquire) != seen) {
        got = true;
        break;
      }
#if defined(__x86_64__)
      __builtin_ia32_pause();
#endif
    }
    if (!got) {
      std::unique_lock<std::mutex> lock(mutex_);
      wake_.wait(lock, [&] { return stop_ || generation_.load(std::memory_order_acquire) != seen; });
      if (stop_) return;
    }
    seen = generation_.load(std::memory_order_acquire);
    drain(thread);
    if (active_.fetch_sub(1, std::memory_order_acq_rel) == 1) {
      std::lock_guard<std::mutex> lock(mutex_);
      done_.notify_one();
    }
  }
}

void ThreadPool::run(int64_t num_tasks, const std::function<void(int64_t, int)>& fn) {
  if (num_tasks <= 0) return;
  if (workers_.empty() || num_tasks == 1 || t_in_pool_job) {
    const bool was_in_job = t_in_pool_job;
    t_in_pool_job = true;
    try {
      for (int64_t t = 0; t < num_tasks; ++t) fn(t, 0);
    } catch (...) {
      t_in_pool_job = was_in_job;
      throw;
    }
    t_in_pool_job = was_in_job;
    return;
  }
  {
    std::lock_guard<std::mutex> lock(mutex_);
    job_ = &fn;
    num_tasks_ = num_tasks;
    error_ = nullptr;
    next_task_.store(0, std::memory_order_relaxed);
    active_.store(static_cast<int>(workers_.size()), std::memory_order_relaxed);
    generation_.fetch_add(1, std::memory_order_release);
  }
  wake_.notify_all();
  drain(0);
  // Wait for the workers (spinning first, as they finish quickly).
  for (int spin = 0; spin < 20000 && active_.load(std::memory_order_acquire) != 0; ++spin) {
#if defined(__x86_64__)
    __builtin_ia32_pause();
#endif
  }
  std::unique_lock<std::mutex> lock(mutex_);
  done_.wait(lock, [&] { return active_.load(std::memory_order_acquire) == 0; });
  job_ = nullptr;
  if (error_) std::rethrow_exception(std::exchange(error_, nullptr));
}

namespace {
std::unique_ptr<ThreadPool>& global_pool_slot() {
  static std::unique_ptr<ThreadPool> pool;
  return pool;
}
std::mutex g_pool_mutex;

// Creates or resizes the global pool; the caller holds g_pool_mutex.
void resize_pool_locked(int n) {
  auto& pool = global_pool_slot();
  const int want = n > 0 ? n : static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  if (!pool || pool->size() != want) {
    pool = std::make_unique<ThreadPool>(want);
    // OpenBLAS keeps its own threads (busy-waiting after each call); when it is
    // called at all, it gets the same budget as the pool.
    openblas_set_num_threads(want);
  }
}

}  // namespace

ThreadPool& thread_pool() {
  std::lock_guard<std::mutex> lock(g_pool_mutex);
  auto& pool = global_pool_slot();
  if (!pool) resize_pool_locked(0);
  return *pool;
}

void set_num_threads(int n) {
  std::lock_guard<std::mutex> lock(g_pool_mutex);
  resize_pool_locked(n);
}

bool in_parallel_region() { return t_in_pool_job; }

int num_threads() { return thread_pool().size(); }

void parallel_for(int64_t n, int64_t grain, const std::function<void(int64_t, int64_t)>& fn) {
  if (n <= 0) return;
  ThreadPool& pool = thread_pool();
  grain = std::max<int64_t>(1, grain);
  const int64_t max_chunks = (n + grain - 1) / grain;
  const int64_t chunks = std::min<int64_t>(max_chunks, pool.size());
  if (chunks <= 1) {
    fn(0, n);
    return;
  }
  pool.run(chunks, [&](int64_t c, int) {
    const int64_t begin = n * c / chunks;
    const int64_t end = n * (c + 1) / chunks;
    if (begin < end) fn(begin, end);
  });
}

}  // namespace tinyemo
