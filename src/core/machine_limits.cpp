#include "core/machine_limits.h"

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <thread>
#include <vector>

#include "core/error.h"
#include "core/rng.h"
#include "core/simd.h"
#include "core/tensor.h"
#include "core/thread_pool.h"

namespace tinyemo {

namespace {

double now_seconds() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

int resolve_threads(int threads) { return threads > 0 ? threads : num_threads(); }

// Runs body(thread) on `threads` fresh threads at once and returns the wall time
// of the slowest. Fresh threads (not the pool) so that each gets exactly one share.
template <class Body>
double time_on_threads(int threads, Body&& body) {
  std::vector<std::thread> pool;
  const double t0 = now_seconds();
  for (int t = 1; t < threads; ++t) pool.emplace_back([&body, t] { body(t); });
  body(0);
  for (auto& th : pool) th.join();
  return now_seconds() - t0;
}

// Twelve independent accumulator chains hide the FMA latency (4-6 cycles) at two
// issues per cycle. Each function returns a value so the loop is not removed, and
// the chains start from different values so the compiler cannot merge them.
constexpr int kChains = 12;

#if defined(__AVX512F__)
__attribute__((noinline)) float fma_chains(int64_t iters, int64_t* ops_per_iter) {
  __m512 acc[kChains];
  for (int j = 0; j < kChains; ++j) acc[j] = _mm512_set1_ps(1.0f + 0.01f * j);
  const __m512 m = _mm512_set1_ps(0.9999999f), c = _mm512_set1_ps(1e-7f);
  for (int64_t i = 0; i < iters; ++i) {
    for (auto& a : acc) a = _mm512_fmadd_ps(a, m, c);
  }
  __m512 s = acc[0];
  for (int j = 1; j < kChains; ++j) s = _mm512_add_ps(s, acc[j]);
  *ops_per_iter = kChains * 16 * 2;
  return simd::hsum(s);
}
#elif defined(__AVX2__) && defined(__FMA__)
__attribute__((noinline)) float fma_chains(int64_t iters, int64_t* ops_per_iter) {
  __m256 acc[kChains];
  for (int j = 0; j < kChains; ++j) acc[j] = _mm256_set1_ps(1.0f + 0.01f * j);
  const __m256 m = _mm256_set1_ps(0.9999999f), c = _mm256_set1_ps(1e-7f);
  for (int64_t i = 0; i < iters; ++i) {
    for (auto& a : acc) a = _mm256_fmadd_ps(a, m, c);
  }
  __m256 s = acc[0];
  for (int j = 1; j < kChains; ++j) s = _mm256_add_ps(s, acc[j]);
  float lanes[8];
  _mm256_storeu_ps(lanes, s);
  *ops_per_iter = kChains * 8 * 2;
  return lanes[0] + lanes[7];
}
#else
__attribute__((noinline)) float fma_chains(int64_t iters, int64_t* ops_per_iter) {
  float acc[kChains];
  for (int j = 0; j < kChains; ++j) acc[j] = 1.0f + 0.01f * j;
  for (int64_t i = 0; i < iters; ++i) {
    for (auto& a : acc) a = a * 0.9999999f + 1e-7f;
  }
  *ops_per_iter = kChains * 2;
  float s = 0.0f;
  for (float a : acc) s += a;
  return s;
}
#endif

#if defined(__AVX512BF16__)
__attribute__((noinline)) float bf16_chains(int64_t iters, int64_t* ops_per_iter) {
  __m512 acc[kChains];
  for (int j = 0; j < kChains; ++j) acc[j] = _mm512_set1_ps(0.01f * j);
  __m512bh x = (__m512bh)_mm512_set1_epi16(0x3c00);
  const __m512bh y = (__m512bh)_mm512_set1_epi16(0x3c00);
  for (int64_t i = 0; i < iters; ++i) {
    for (auto& a : acc) a = _mm512_dpbf16_ps(a, x, y);
    __asm__ volatile("" : "+v"(x));  // keeps the inputs opaque to the optimiser
  }
  __m512 s = acc[0];
  for (int j = 1; j < kChains; ++j) s = _mm512_add_ps(s, acc[j]);
  *ops_per_iter = kChains * 16 * 4;
  return simd::hsum(s);
}
#endif

#if defined(__AVX512VNNI__)
__attribute__((noinline)) float int8_chains(int64_t iters, int64_t* ops_per_iter) {
  __m512i acc[kChains];
  for (int j = 0; j < kChains; ++j) acc[j] = _mm512_set1_epi32(j);
  __m512i x = _mm512_set1_epi8(1);
  const __m512i y = _mm512_set1_epi8(2);
  for (int64_t i = 0; i < iters; ++i) {
    for (auto& a : acc) a = _mm512_dpbusd_epi32(a, x, y);
    __asm__ volatile("" : "+v"(x));
  }
  __m512i s = acc[0];
  for (int j = 1; j < kChains; ++j) s = _mm512_add_epi32(s, acc[j]);
  *ops_per_iter = kChains * 16 * 8;
  return simd::hsum(_mm512_cvtepi32_ps(s));
}
#endif

using ChainFn = float (*)(int64_t, int64_t*);

ChainFn chain_function(PeakKind kind) {
#if defined(__AVX512BF16__)
  if (kind == PeakKind::Bf16Dot) return bf16_chains;
#endif
#if defined(__AVX512VNNI__)
  if (kind == PeakKind::Int8Dot) return int8_chains;
#endif
  return fma_chains;
}

// Sums a float buffer with independent accumulators (one chain would be bound by
// the add latency, not by memory).
// kStreams > 1: the buffer is read as that many equal parts side by side, each
// line prefetched non-temporally 2 KiB ahead. On the Zen 5 VM (2 threads,
// random data, 12 paired passes) one such stream per thread read 0.83 of the
// streaming copy figure, two 0.87 and four 0.94 (medians); the plain loop is
// the faster one on other machines.
#if defined(__AVX512F__)
template <int kStreams>
__attribute__((noinline)) float sum_floats(const float* p, int64_t n) {
  __m512 a0 = _mm512_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
  const int64_t part = n / kStreams / 64 * 64;
  for (int64_t i = 0; i + 64 <= part; i += 64) {
    for (int stream = 0; stream < kStreams; ++stream) {
      const float* q = p + stream * part + i;
      if constexpr (kStreams > 1) {
        for (int line = 0; line < 4; ++line)
          _mm_prefetch(reinterpret_cast<const char*>(q + 512 + 16 * line), _MM_HINT_NTA);
      }
      a0 = _mm512_add_ps(a0, _mm512_load_ps(q));
      a1 = _mm512_add_ps(a1, _mm512_load_ps(q + 16));
      a2 = _mm512_add_ps(a2, _mm512_load_ps(q + 32));
      a3 = _mm512_add_ps(a3, _mm512_load_ps(q + 48));
    }
  }
  return simd::hsum(_mm512_add_ps(_mm512_add_ps(a0, a1), _mm512_add_ps(a2, a3)));
}

constexpr bool kHasStreamingProbes = true;
#else
template <int kStreams>
__attribute__((noinline)) float sum_floats(const float* p, int64_t n) {
  float a[64] = {};
  for (int64_t i = 0; i + 64 <= n; i += 64) {
    for (int j = 0; j < 64; ++j) a[j] += p[i + j];
  }
  float s = 0.0f;
  for (float v : a) s += v;
  return s;
}
constexpr bool kHasStreamingProbes = false;
#endif

// Large enough to defeat any last-level cache this code will meet (hundreds of MB
// of L3 are not a thing on the machines tinyemo targets).
constexpr size_t kBandwidthBytes = size_t{256} << 20;

using Buffer = std::unique_ptr<float, BandwidthProbe::FreeBuffer>;

Buffer filled_buffer(size_t bytes) {
  // The same allocation as tensors (huge pages where available), so the bound
  // is the copy bandwidth the weights' memory can have.
  Buffer b(static_cast<float*>(allocate_buffer(bytes)));
  TE_CHECK(b != nullptr, "cannot allocate {} bytes for the bandwidth measurement", bytes);
  // Faults the pages in before timing, with data like weights' rather than
  // zeros: on the Zen 5 VM memcpy copied a zero-filled buffer 1.06-1.11x
  // faster than a random one (4 paired passes).
  uint64_t state = 1;
  uint64_t* words = reinterpret_cast<uint64_t*>(b.get());
  for (size_t i = 0; i < bytes / sizeof(uint64_t); ++i)
    words[i] = splitmix64(state) & 0x3f7f3f7f3f7f3f7full;  // finite floats: the read probe sums them
  return b;
}

}  // namespace

namespace detail {

// Streaming (non-temporal) stores: no read-for-ownership of the destination,
// so every byte counted is a byte moved. glibc 2.36's memcpy on the Zen 5 VM
// (whose CPUID reports a 508 MB L3, which sets glibc's non-temporal threshold
// to 127 MB) copied random data 0.77-0.99x as fast (21 paired passes over
// three buffer pairs).
void copy_streaming(void* dst, const void* src, size_t bytes) {
  char* d = static_cast<char*>(dst);
  const char* s = static_cast<const char*>(src);
  size_t done = 0;
#if defined(__AVX512F__)
  if (reinterpret_cast<uintptr_t>(d) % 64 == 0 && reinterpret_cast<uintptr_t>(s) % 64 == 0) {
    for (; done + 256 <= bytes; done += 256) {
      for (int line = 0; line < 4; ++line) _mm_prefetch(s + done + 2048 + 64 * line, _MM_HINT_NTA);
      for (int line = 0; line < 4; ++line)
        _mm512_stream_si512(reinterpret_cast<__m512i*>(d + done + 64 * line),
                            _mm512_load_si512(reinterpret_cast<const __m512i*>(s + done + 64 * line)));
    }
    _mm_sfence();
  }
#endif
  std::memcpy(d + done, s + done, bytes - done);
}

float sum_streams(const float* p, int64_t n, int streams) {
  // The count first: the split check below divides by it.
  TE_CHECK(streams == 1 || streams == 4, "sum_streams: {} streams (1 or 4)", streams);
  TE_CHECK(n % (64 * streams) == 0, "sum_streams: {} floats do not split into {} streams of whole 64-float steps", n,
           streams);
  return streams == 1 ? sum_floats<1>(p, n) : sum_floats<4>(p, n);
}

}  // namespace detail

double peak_gflops(PeakKind kind, int threads) {
  threads = resolve_threads(threads);
  const ChainFn fn = chain_function(kind);
  int64_t ops_per_iter = 0;
  fn(1, &ops_per_iter);
  const int64_t iters = 4'000'000;
  double best = 0.0;
  for (int rep = 0; rep < 5; ++rep) {
    std::vector<float> sink(static_cast<size_t>(threads));
    const double t = time_on_threads(threads, [&](int th) {
      int64_t unused;
      sink[th] = fn(iters, &unused);
    });
    best = std::max(best, static_cast<double>(ops_per_iter) * iters * threads / t / 1e9);
  }
  return best;
}

void BandwidthProbe::FreeBuffer::operator()(float* p) const { std::free(p); }

BandwidthProbe::BandwidthProbe(int threads)
    : threads_(resolve_threads(threads)), src_(filled_buffer(kBandwidthBytes)), dst_(filled_buffer(kBandwidthBytes)) {}

BandwidthProbe::~BandwidthProbe() = default;

// Each probe is the best of several passes of two ways to stream: the plain
// loop, and the non-temporal one where the build has it. A bound must be what
// the machine can do, so whichever is faster here counts.
double BandwidthProbe::read() {
  const int threads = threads_;
  const float* buf = src_.get();
  const int64_t n = static_cast<int64_t>(kBandwidthBytes / sizeof(float));
  double best = 0.0;
  for (int rep = 0; rep < 6; ++rep) {
    for (const bool nta : {false, true}) {
      if (nta && !kHasStreamingProbes) continue;
      std::vector<float> sink(static_cast<size_t>(threads));
      const double t = time_on_threads(threads, [&](int th) {
        // Shares of whole steps of the 4-stream loop, so any thread count splits.
        const int64_t step = 64 * 4;
        const int64_t begin = n / step * th / threads * step, end = n / step * (th + 1) / threads * step;
        sink[th] = detail::sum_streams(buf + begin, end - begin, nta ? 4 : 1);
      });
      best = std::max(best, kBandwidthBytes / t / 1e9);
    }
  }
  return best;
}

double BandwidthProbe::copy() {
  const int threads = threads_;
  char* dst = reinterpret_cast<char*>(dst_.get());
  const char* src = reinterpret_cast<const char*>(src_.get());
  double best = 0.0;
  for (int rep = 0; rep < 6; ++rep) {
    for (const bool streaming : {false, true}) {
      if (streaming && !kHasStreamingProbes) continue;
      const double t = time_on_threads(threads, [&](int th) {
        const size_t begin = kBandwidthBytes * th / threads / 256 * 256;
        const size_t end = kBandwidthBytes * (th + 1) / threads / 256 * 256;
        if (streaming) {
          detail::copy_streaming(dst + begin, src + begin, end - begin);
        } else {
          std::memcpy(dst + begin, src + begin, end - begin);
        }
      });
      best = std::max(best, 2.0 * kBandwidthBytes / t / 1e9);
    }
  }
  return best;
}

double measure_read_bandwidth(int threads) {
  BandwidthProbe probe(threads);
  return probe.read();
}

double measure_copy_bandwidth(int threads) {
  BandwidthProbe probe(threads);
  return probe.copy();
}

}  // namespace tinyemo
