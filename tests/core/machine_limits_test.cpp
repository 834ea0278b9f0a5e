// The bandwidth probes' loops move and read every byte they are credited with.
#include "core/machine_limits.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <vector>

#include "core/error.h"
#include "core/tensor.h"

namespace tinyemo {
namespace {

TEST(MachineLimits, StreamingCopyCopiesEveryByte) {
  // Aligned buffers take the streaming-store path, with a tail past the last
  // 256-byte step; misaligned ones fall back to memcpy.
  const size_t bytes = 3 * 4096 + 200;
  std::vector<uint8_t> src(bytes + 64), dst(bytes + 64);
  for (size_t i = 0; i < src.size(); ++i) src[i] = static_cast<uint8_t>(i * 131 + 7);
  for (const size_t offset : {size_t{0}, size_t{1}}) {
    uint8_t* aligned_src = src.data() + (64 - reinterpret_cast<uintptr_t>(src.data()) % 64) % 64;
    uint8_t* aligned_dst = dst.data() + (64 - reinterpret_cast<uintptr_t>(dst.data()) % 64) % 64;
    std::fill(dst.begin(), dst.end(), 0);
    const size_t n = bytes - 64;
    detail::copy_streaming(aligned_dst + offset, aligned_src, n);
    EXPECT_TRUE(std::equal(aligned_src, aligned_src + n, aligned_dst + offset)) << "offset " << offset;
    EXPECT_EQ(aligned_dst[offset + n], 0) << "wrote past the end, offset " << offset;
  }
}

TEST(MachineLimits, StreamSumsReadEveryFloatOnce) {
  // Small integers: every order of summation gives the exact total.
  const int64_t n = 64 * 4 * 37;
  float* p = static_cast<float*>(allocate_buffer(n * sizeof(float)));
  for (int64_t i = 0; i < n; ++i) p[i] = static_cast<float>(i % 13);
  double want = 0.0;
  for (int64_t i = 0; i < n; ++i) want += p[i];
  EXPECT_EQ(detail::sum_streams(p, n, 1), want);
  EXPECT_EQ(detail::sum_streams(p, n, 4), want);
  EXPECT_THROW(detail::sum_streams(p, n - 64, 4), Error);
  EXPECT_THROW(detail::sum_streams(p, n, 3), Error);
  EXPECT_THROW(detail::sum_streams(p, n, 0), Error);
  std::free(p);
}

// The probes split their buffer for any thread count (an odd one once left a
// share that the 4-stream read refused).
TEST(MachineLimits, ProbesRunOnAnOddThreadCount) {
  BandwidthProbe probe(3);
  EXPECT_GT(probe.read(), 0.0);
  EXPECT_GT(probe.copy(), 0.0);
}

}  // namespace
}  // namespace tinyemo
