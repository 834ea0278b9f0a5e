#include "core/thread_pool.h"

#include <cblas.h>

#include <algorithm>
#include <memory>
#include <utility>

#include "core/error.h"

namespace tinyemo {

namespace {
thread_local bool t_in_pool_job = false;
thread_local ThreadPool* t_current_pool = nullptr;  // set by ScopedThreadPool
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

struct ThreadPool::Job {
  const std::function<void(int64_t, int)>* fn = nullptr;
  int64_t num_tasks = 0;
  bool one_per_thread = false;  // task t runs on thread t (run_on_every_thread)
  std::atomic<int64_t> next{0};
  std::atomic<int64_t> done{0};
  std::atomic<bool> failed{false};
  std::mutex error_mutex;
  std::exception_ptr error;
};

namespace {
inline void cpu_relax() {
#if defined(__x86_64__)
  __builtin_ia32_pause();
#endif
}
// Spins before sleeping: decode runs hundreds of loops per token, microseconds apart.
constexpr int kSpins = 20000;
// Spins at a team barrier before yielding: ~40 us at ~19 ns per pause (Zen 5 VM).
constexpr int kBarrierSpins = 2048;
}  // namespace

void ThreadPool::drain(Job& job, int thread) {
  const bool was_in_job = t_in_pool_job;
  t_in_pool_job = true;
  for (bool first = true;; first = false) {
    const int64_t task = job.one_per_thread ? (first ? thread : job.num_tasks)
                                            : job.next.fetch_add(1, std::memory_order_relaxed);
    if (task >= job.num_tasks) break;
    if (!job.failed.load(std::memory_order_relaxed)) {  // after a failure the rest are skipped, still counted
      try {
        (*job.fn)(task, thread);
      } catch (...) {
        std::lock_guard<std::mutex> lock(job.error_mutex);
        if (!job.error) job.error = std::current_exception();
        job.failed.store(true, std::memory_order_relaxed);
      }
    }
    if (job.done.fetch_add(1, std::memory_order_acq_rel) + 1 == job.num_tasks) {
      std::lock_guard<std::mutex> lock(mutex_);  // pairs with the caller's predicate check
      done_.notify_one();
    }
  }
  t_in_pool_job = was_in_job;
}

void ThreadPool::worker_loop(int thread) {
  uint64_t seen = 0;
  for (;;) {
    bool got = false;
    for (int spin = 0; spin < kSpins; ++spin) {
      if (generation_.load(std::memory_order_acquire) != seen) {
        got = true;
        break;
      }
      cpu_relax();
    }
    if (!got) {
      std::unique_lock<std::mutex> lock(mutex_);
      wake_.wait(lock, [&] { return stop_ || generation_.load(std::memory_order_acquire) != seen; });
      if (stop_) return;
    }
    seen = generation_.load(std::memory_order_acquire);
    inside_.fetch_add(1, std::memory_order_seq_cst);
    Job* job = job_.load(std::memory_order_seq_cst);  // null when the caller already finished it
    if (job != nullptr) drain(*job, thread);
    inside_.fetch_sub(1, std::memory_order_release);
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
  Job job;
  job.fn = &fn;
  job.num_tasks = num_tasks;
  start_and_join(job);
}

void ThreadPool::run_on_every_thread(const std::function<void(int64_t, int)>& fn) {
  TE_CHECK(!t_in_pool_job, "run_on_every_thread: called inside a pool task");
  Job job;
  job.fn = &fn;
  job.num_tasks = size();
  job.one_per_thread = true;
  if (workers_.empty()) {
    drain(job, 0);
    if (job.error) std::rethrow_exception(job.error);
    return;
  }
  start_and_join(job);
}

void ThreadPool::start_and_join(Job& job) {
  std::lock_guard<std::mutex> one_job_at_a_time(run_mutex_);
  const int64_t num_tasks = job.num_tasks;
  job_.store(&job, std::memory_order_seq_cst);
  {
    std::lock_guard<std::mutex> lock(mutex_);
    generation_.fetch_add(1, std::memory_order_release);
  }
  wake_.notify_all();
  drain(job, 0);
  // Wait for the tasks others claimed (spinning first, as they finish quickly).
  for (int spin = 0; spin < kSpins && job.done.load(std::memory_order_acquire) != num_tasks; ++spin) cpu_relax();
  if (job.done.load(std::memory_order_acquire) != num_tasks) {
    std::unique_lock<std::mutex> lock(mutex_);
    done_.wait(lock, [&] { return job.done.load(std::memory_order_acquire) == num_tasks; });
  }
  // Retire the job; then wait out workers that picked up the pointer before that
  // (they find no task left and leave within a few instructions).
  job_.store(nullptr, std::memory_order_seq_cst);
  while (inside_.load(std::memory_order_seq_cst) != 0) std::this_thread::yield();
  if (job.error) std::rethrow_exception(job.error);
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
  if (t_current_pool != nullptr) return *t_current_pool;
  std::lock_guard<std::mutex> lock(g_pool_mutex);
  auto& pool = global_pool_slot();
  if (!pool) resize_pool_locked(0);
  return *pool;
}

void set_num_threads(int n) {
  std::lock_guard<std::mutex> lock(g_pool_mutex);
  resize_pool_locked(n);
}

ScopedThreadPool::ScopedThreadPool(ThreadPool* pool) : previous_(t_current_pool) { t_current_pool = pool; }
ScopedThreadPool::~ScopedThreadPool() { t_current_pool = previous_; }

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

namespace {

// One thread's range [front, back) in one word, so that its owner (taking from
// the front) and thieves (taking from the back) claim items with one CAS each.
struct alignas(64) StealableRange {
  std::atomic<uint64_t> bounds;
  static constexpr uint64_t pack(int64_t front, int64_t back) {
    return static_cast<uint64_t>(front) | static_cast<uint64_t>(back) << 32;
  }
  // The owner claims a quarter of what is left (at least `grain`): few claims,
  // each a locked instruction that stalls the loads in flight (measured: ~3 % of
  // a decode with one claim per 32 KiB), shrinking to `grain` near the end so
  // that a thief finds work until the last grain. Thieves claim `grain` from the
  // back. False when nothing is left.
  bool claim(int64_t grain, bool owner, int64_t* begin, int64_t* end) {
    uint64_t b = bounds.load(std::memory_order_relaxed);
    for (;;) {
      const int64_t front = static_cast<int64_t>(b & 0xffffffffu), back = static_cast<int64_t>(b >> 32);
      if (front >= back) return false;
      *begin = owner ? front : std::max(front, back - grain);
      *end = owner ? std::min(back, front + std::max(grain, (back - front) / 4)) : back;
      const uint64_t next = owner ? pack(*end, back) : pack(front, *begin);
      if (bounds.compare_exchange_weak(b, next, std::memory_order_relaxed)) return true;
    }
  }
  // Range r of n items split into `count`.
  static constexpr uint64_t share(int64_t n, int64_t r, int64_t count) {
    return pack(n * r / count, n * (r + 1) / count);
  }
};

// Runs fn on `own`'s range front to back, then on the others' from their backs;
// `open(r)` is called before range r is first touched.
template <class Open>
void drain_ranges(StealableRange* range, int64_t count, int64_t own, int64_t grain,
                  const std::function<void(int64_t, int64_t)>& fn, Open&& open) {
  int64_t begin, end;
  open(own);
  while (range[own].claim(grain, true, &begin, &end)) fn(begin, end);
  for (int64_t k = 1; k < count; ++k) {
    const int64_t other = (own + k) % count;
    open(other);
    while (range[other].claim(grain, false, &begin, &end)) fn(begin, end);
  }
}

}  // namespace

struct Team::State {
  explicit State(int size) : ranges(new StealableRange[2 * static_cast<size_t>(size)]) {
    for (int i = 0; i < 2 * size; ++i) ranges[i].bounds.store(kUnclaimed);
  }
  // for_each_piece's ranges, one per member in two slots used by alternate
  // calls: a member resets its slot for the call after next while the others
  // can only be in this call (calls are separated by barriers).
  static constexpr uint64_t kUnclaimed = StealableRange::pack(1, 0);  // empty until a member sets it
  std::unique_ptr<StealableRange[]> ranges;
  alignas(64) std::atomic<int> arrived{0};
  alignas(64) std::atomic<uint32_t> generation{0};
  std::atomic<bool> failed{false};
};

void Team::barrier() {
  if (size_ == 1) return;
  const uint32_t generation = state_->generation.load(std::memory_order_acquire);
  if (state_->arrived.fetch_add(1, std::memory_order_acq_rel) == size_ - 1) {
    state_->arrived.store(0, std::memory_order_relaxed);
    state_->generation.store(generation + 1, std::memory_order_release);
  } else {
    // Spins (the others arrive within microseconds in a decode step), then
    // yields: the OS sometimes wakes the team's worker on the caller's core,
    // and until it moves one of them the spinning member must give the core up
    // (team mat-vecs read 24-31 GB/s in those runs instead of ~45; docs/perf/kernels.md).
    for (int spin = 0; state_->generation.load(std::memory_order_acquire) == generation; ++spin) {
      if (state_->failed.load(std::memory_order_relaxed)) throw TeamAborted{};
      if (spin < kBarrierSpins) {
        cpu_relax();
      } else {
        std::this_thread::yield();
      }
    }
  }
  if (state_->failed.load(std::memory_order_relaxed)) throw TeamAborted{};
}

std::pair<int64_t, int64_t> Team::share(int64_t n, int64_t align) const {
  const int64_t units = (n + align - 1) / align;
  return {std::min(n, units * index_ / size_ * align), std::min(n, units * (index_ + 1) / size_ * align)};
}

void Team::for_each_piece(int64_t n, int64_t grain, const std::function<void(int64_t, int64_t)>& fn) {
  if (n <= 0) return;
  if (size_ == 1) {
    fn(0, n);
    return;
  }
  TE_CHECK(n < (int64_t{1} << 32), "Team::for_each_piece: {} items is more than it can split", n);
  grain = std::max<int64_t>(1, grain);
  StealableRange* range = state_->ranges.get() + (pieces_calls_ % 2) * size_;
  state_->ranges[((pieces_calls_ + 1) % 2) * size_ + index_].bounds.store(State::kUnclaimed, std::memory_order_relaxed);
  ++pieces_calls_;
  // Whoever reaches a range first this call (its owner or a thief) sets it.
  drain_ranges(range, size_, index_, grain, fn, [&](int64_t member) {
    uint64_t unclaimed = State::kUnclaimed;
    range[member].bounds.compare_exchange_strong(unclaimed, StealableRange::share(n, member, size_));
  });
}

void run_team(const std::function<void(Team&)>& fn) {
  if (in_parallel_region()) {
    Team alone(nullptr, 0, 1);
    fn(alone);
    return;
  }
  ThreadPool& pool = thread_pool();
  Team::State state(pool.size());
  pool.run_on_every_thread([&](int64_t, int thread) {
    Team team(&state, thread, pool.size());
    try {
      fn(team);
    } catch (const TeamAborted&) {
      // Another member failed; its exception is the one rethrown.
    } catch (...) {
      state.failed.store(true, std::memory_order_relaxed);
      throw;
    }
  });
}

void parallel_for_stealing(int64_t n, int64_t grain, const std::function<void(int64_t, int64_t)>& fn) {
  if (n <= 0) return;
  TE_CHECK(n < (int64_t{1} << 32), "parallel_for_stealing: {} items is more than it can split", n);
  ThreadPool& pool = thread_pool();
  grain = std::max<int64_t>(1, grain);
  const int64_t ranges = std::min<int64_t>(pool.size(), (n + grain - 1) / grain);
  if (ranges <= 1 || in_parallel_region()) {
    fn(0, n);
    return;
  }
  std::unique_ptr<StealableRange[]> range(new StealableRange[static_cast<size_t>(ranges)]);
  for (int64_t r = 0; r < ranges; ++r) range[r].bounds.store(StealableRange::share(n, r, ranges));
  pool.run(ranges, [&](int64_t own, int) { drain_ranges(range.get(), ranges, own, grain, fn, [](int64_t) {}); });
}

}  // namespace tinyemo
