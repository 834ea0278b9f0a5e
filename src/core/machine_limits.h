// Physical limits of the machine, measured (not looked up): peak arithmetic
// throughput and memory bandwidth. Benchmarks and `tinyemo ... bench` report
// their speed as a fraction of these, measured in the same run.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>

namespace tinyemo {

// What one "operation" is for peak_gflops: an f32 FMA lane (2 flops), a
// bf16 pair-dot lane (vdpbf16ps: 4 flops) or an int8 quad-dot lane
// (vpdpbusd: 8 ops). Without the instruction the kind falls back to f32.
enum class PeakKind { F32Fma, Bf16Dot, Int8Dot };

// Best-of-several throughput of independent dependency chains of the widest
// FMA-class instruction the build targets, on `threads` threads (<= 0: the
// global pool's size). GFLOP/s (GOP/s for Int8Dot). Takes about 0.1 s.
double peak_gflops(PeakKind kind = PeakKind::F32Fma, int threads = 0);

// Streaming bandwidth in GB/s (1e9 bytes/s) over a buffer of non-zero data
// much larger than the last-level cache, split over `threads` threads: the
// best of a few passes, each pass timing both the plain loop (a sum; memcpy)
// and a non-temporal one (four prefetchnta streams per thread; streaming stores).
// read: bytes loaded per second (the bound for weight-streaming mat-vec);
// copy: bytes loaded + stored per second (STREAM "copy" convention).
double measure_read_bandwidth(int threads = 0);
double measure_copy_bandwidth(int threads = 0);

// The two bandwidth measurements above, repeatable without re-allocating and
// faulting in their buffers (512 MB, held until destruction): benchmarks probe
// several times interleaved with their timed work, because a shared VM's
// bandwidth drifts within a run (docs/perf/lm-decode.md).
class BandwidthProbe {
 public:
  explicit BandwidthProbe(int threads = 0);
  ~BandwidthProbe();
  BandwidthProbe(const BandwidthProbe&) = delete;
  BandwidthProbe& operator=(const BandwidthProbe&) = delete;

  double read();  // GB/s, as measure_read_bandwidth
  double copy();  // GB/s, as measure_copy_bandwidth

  struct FreeBuffer {
    void operator()(float* p) const;
  };

 private:
  int threads_;
  std::unique_ptr<float, FreeBuffer> src_, dst_;
};

namespace detail {
// The probes' streaming loops, exposed for tests. copy_streaming: memcpy with
// non-temporal stores where the build and the alignment (64 bytes) allow.
// sum_streams: the sum of n floats (n a multiple of 64 x streams) read as
// `streams` (1 or 4) parts side by side.
void copy_streaming(void* dst, const void* src, size_t bytes);
float sum_streams(const float* p, int64_t n, int streams);
}  // namespace detail

}  // namespace tinyemo
