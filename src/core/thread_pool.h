// A fixed pool of worker threads for data-parallel loops. The calling thread
// takes part in every loop; nested loops run serially on the calling worker.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

namespace tinyemo {

class ThreadPool {
 public:
  // `num_threads` counts the caller: 1 means no worker threads.
  explicit ThreadPool(int num_threads);
  ~ThreadPool();
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  int size() const { return static_cast<int>(workers_.size()) + 1; }

  // Calls fn(task, thread) for every task in [0, num_tasks), tasks handed out
  // dynamically; returns when all are done. The first exception is rethrown.
  void run(int64_t num_tasks, const std::function<void(int64_t task, int thread)>& fn);

 private:
  struct Job;  // one run(): lives on the caller's stack
  void worker_loop(int thread);
  void drain(Job& job, int thread);

  std::vector<std::thread> workers_;
  std::mutex mutex_;
  std::condition_variable wake_;  // workers sleep here between jobs
  std::condition_variable done_;  // the caller sleeps here for the last task
  // The join waits for the job's tasks, not for every worker to check in: a
  // worker the OS has descheduled must not hold up the caller. Workers announce
  // themselves in `inside_` before reading `job_`, so the caller knows when
  // nobody can still touch its Job.
  std::atomic<Job*> job_{nullptr};
  std::atomic<int> inside_{0};
  std::atomic<uint64_t> generation_{0};
  bool stop_ = false;
};

// The process-wide pool (sized by set_num_threads; default: hardware threads).
// set_num_threads also sets OpenBLAS's thread count, so that one number governs
// every thread tinyemo starts (see docs/kernels.md).
ThreadPool& thread_pool();
void set_num_threads(int n);
int num_threads();
// True on a thread that is running a pool task (where nested loops run serially).
bool in_parallel_region();

// Splits [0, n) into contiguous chunks of at least `grain` items, one or more
// per thread, and calls fn(begin, end) for each on the global pool.
void parallel_for(int64_t n, int64_t grain, const std::function<void(int64_t begin, int64_t end)>& fn);

// Splits [0, n) into one contiguous range per thread. Each thread walks its own
// range front to back, in pieces that shrink to `grain` items near its end, then
// takes `grain` items at a time from the back of the others' ranges. So each
// thread reads one long sequential run (a memory stream the prefetchers follow),
// and the threads still finish within about one grain of each other, also when
// one starts late (a mat-vec over a weight matrix: docs/kernels.md).
// fn(begin, end) is called per piece, from any thread.
void parallel_for_stealing(int64_t n, int64_t grain, const std::function<void(int64_t begin, int64_t end)>& fn);

}  // namespace tinyemo
