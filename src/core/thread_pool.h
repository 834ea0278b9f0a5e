// A fixed pool of worker threads for data-parallel loops. The calling thread
// takes part in every loop; nested loops run serially on the calling worker.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <mutex>
#include <utility>
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
  // Callers on different threads take turns (a pool runs one job at a time).
  void run(int64_t num_tasks, const std::function<void(int64_t task, int thread)>& fn);
  // Calls fn(thread, thread) once on every thread (the caller is thread 0), all
  // at the same time: the calls may wait for each other.
  void run_on_every_thread(const std::function<void(int64_t task, int thread)>& fn);

 private:
  struct Job;  // one run(): lives on the caller's stack
  void start_and_join(Job& job);
  void worker_loop(int thread);
  void drain(Job& job, int thread);

  std::vector<std::thread> workers_;
  std::mutex run_mutex_;  // held by the thread whose job the workers run
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

// The pool that parallel loops on this thread use: the one a ScopedThreadPool
// installed on this thread, else the process-wide pool (sized by
// set_num_threads; default: hardware threads). set_num_threads also sets
// OpenBLAS's thread count, so that one number governs every thread tinyemo
// starts (see docs/perf/kernels.md); OpenBLAS only runs in builds without AVX-512.
ThreadPool& thread_pool();
void set_num_threads(int n);
int num_threads();  // thread_pool().size()

// Makes `pool` the one this thread's parallel loops use until destroyed (the
// previous one is restored): a library handle owns a pool of its own thread
// count and installs it for the duration of each call.
class ScopedThreadPool {
 public:
  explicit ScopedThreadPool(ThreadPool* pool);
  ~ScopedThreadPool();
  ScopedThreadPool(const ScopedThreadPool&) = delete;
  ScopedThreadPool& operator=(const ScopedThreadPool&) = delete;

 private:
  ThreadPool* previous_;
};
// True on a thread that is running a pool task (where nested loops run serially).
bool in_parallel_region();

// Threads running one function together (run_team): each member knows its
// index and waits for the others at barrier(). A decode step runs as one team
// so that the threads meet once per mat-vec at a barrier instead of forking
// and joining a pool job for each (docs/perf/kernels.md). Members spin while they
// wait: a team is for work that keeps every thread busy between barriers.
class Team {
 public:
  struct State;
  Team(State* state, int index, int size) : state_(state), index_(index), size_(size) {}
  int index() const { return index_; }
  int size() const { return size_; }
  // Returns once every member has called it as often as this one. Throws
  // TeamAborted when another member failed, so that no member waits forever.
  void barrier();
  // This member's part [begin, end) of [0, n): equal contiguous shares, their
  // bounds multiples of `align` (the last ends at n).
  std::pair<int64_t, int64_t> share(int64_t n, int64_t align = 1) const;
  // parallel_for_stealing within the team: every member calls it with the same
  // n and grain; fn(begin, end) runs once per piece on some member, each member
  // streaming its own share first and then helping the others from their ends
  // (a shared VM slows one core or the other by tens of percent for seconds).
  // At most one call per member between two barriers.
  void for_each_piece(int64_t n, int64_t grain, const std::function<void(int64_t begin, int64_t end)>& fn);

 private:
  State* state_;
  int index_, size_;
  int64_t pieces_calls_ = 0;
};
struct TeamAborted {};

// Runs fn on every pool thread at once as one team (on the calling thread
// alone, as a team of one, inside a pool task). The first exception is rethrown.
void run_team(const std::function<void(Team& team)>& fn);

// Splits [0, n) into contiguous chunks of at least `grain` items, one or more
// per thread, and calls fn(begin, end) for each on the global pool.
void parallel_for(int64_t n, int64_t grain, const std::function<void(int64_t begin, int64_t end)>& fn);

// Splits [0, n) into one contiguous range per thread. Each thread walks its own
// range front to back, in pieces that shrink to `grain` items near its end, then
// takes `grain` items at a time from the back of the others' ranges. So each
// thread reads one long sequential run (a memory stream the prefetchers follow),
// and the threads still finish within about one grain of each other, also when
// one starts late (a mat-vec over a weight matrix: docs/perf/kernels.md).
// fn(begin, end) is called per piece, from any thread.
void parallel_for_stealing(int64_t n, int64_t grain, const std::function<void(int64_t begin, int64_t end)>& fn);

}  // namespace tinyemo
