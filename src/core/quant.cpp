#include "core/quant.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

#include "core/dtype.h"

namespace tinyemo {

void quantize_q8_0(const float* x, BlockQ8_0* out, int64_t n) {
  for (int64_t b = 0; b < n / 32; ++b) {
    const float* xb = x + b * 32;
    float amax = 0.0f;
    for (int j = 0; j < 32; ++j) amax = std::max(amax, std::fabs(xb[j]));
    const float d = amax / 127.0f;
    const float id = d != 0.0f ? 1.0f / d : 0.0f;
    out[b].scale = f32_to_f16(d);
    for (int j = 0; j < 32; ++j) out[b].q[j] = static_cast<int8_t>(std::lround(xb[j] * id));
  }
}

void quantize_q4_0(const float* x, BlockQ4_0* out, int64_t n) {
  for (int64_t b = 0; b < n / 32; ++b) {
    const float* xb = x + b * 32;
    float amax = 0.0f, max = 0.0f;  // max: the signed value of largest magnitude
    for (int j = 0; j < 32; ++j) {
      if (std::fabs(xb[j]) > amax) {
        amax = std::fabs(xb[j]);
        max = xb[j];
      }
    }
    const float d = max / -8.0f;
    const float id = d != 0.0f ? 1.0f / d : 0.0f;
    out[b].scale = f32_to_f16(d);
    for (int j = 0; j < 16; ++j) {
      const int lo = std::min(15, static_cast<int>(xb[j] * id + 8.5f));
      const int hi = std::min(15, static_cast<int>(xb[j + 16] * id + 8.5f));
      out[b].q[j] = static_cast<uint8_t>(lo | (hi << 4));
    }
  }
}

void dequantize_q8_0(const BlockQ8_0* in, float* x, int64_t n) {
  for (int64_t b = 0; b < n / 32; ++b) {
    const float d = f16_to_f32(in[b].scale);
    for (int j = 0; j < 32; ++j) x[b * 32 + j] = d * in[b].q[j];
  }
}

void dequantize_q4_0(const BlockQ4_0* in, float* x, int64_t n) {
  for (int64_t b = 0; b < n / 32; ++b) {
    const float d = f16_to_f32(in[b].scale);
    for (int j = 0; j < 16; ++j) {
      x[b * 32 + j] = d * ((in[b].q[j] & 0x0f) - 8);
      x[b * 32 + j + 16] = d * ((in[b].q[j] >> 4) - 8);
    }
  }
}

namespace {

// Byte offsets from the matrix start of row `row`'s block b in the interleaved
// layout: its scale, and its first code (code byte i at codes + 64 (i / 4) + i % 4).
struct BlockSlots {
  int64_t scale, codes;
};

template <class Block>
BlockSlots interleaved_slots(int64_t nb, int64_t row, int64_t b) {
  constexpr int64_t kCodeBytes = sizeof(Block::q);
  const int64_t panel = row / kInterleavedRows, r = row % kInterleavedRows;
  const int64_t base = panel * nb * kInterleavedRows * static_cast<int64_t>(sizeof(Block));
  const InterleavedOffsets o = interleaved_offsets(b, nb, kInterleavedRows * kCodeBytes);
  return {base + o.scales + 2 * r, base + o.codes + 4 * r};
}

template <class Block>
constexpr uint8_t kCodeFlip = sizeof(Block::q) == 32 ? 0x80 : 0x00;  // q8_0 codes stored unsigned

template <class Block>
void interleave(const Block* in, void* out, int64_t rows, int64_t nb) {
  uint8_t* dst = static_cast<uint8_t*>(out);
  for (int64_t row = 0; row < rows; ++row) {
    for (int64_t b = 0; b < nb; ++b) {
      const Block& blk = in[row * nb + b];
      const BlockSlots slots = interleaved_slots<Block>(nb, row, b);
      std::memcpy(dst + slots.scale, &blk.scale, sizeof(blk.scale));
      for (size_t i = 0; i < sizeof(blk.q); ++i)
        dst[slots.codes + 64 * (i / 4) + i % 4] = static_cast<uint8_t>(blk.q[i]) ^ kCodeFlip<Block>;
    }
  }
}

template <class Block>
void interleaved_row(const void* in, int64_t nb, int64_t row, int64_t b0, int64_t b1, Block* out) {
  const uint8_t* src = static_cast<const uint8_t*>(in);
  for (int64_t b = b0; b < b1; ++b, ++out) {
    const BlockSlots slots = interleaved_slots<Block>(nb, row, b);
    std::memcpy(&out->scale, src + slots.scale, sizeof(out->scale));
    for (size_t i = 0; i < sizeof(out->q); ++i) {
      const uint8_t code = src[slots.codes + 64 * (i / 4) + i % 4] ^ kCodeFlip<Block>;
      std::memcpy(&out->q[i], &code, 1);
    }
  }
}

}  // namespace

void interleave_rows(DType interleaved, const void* in, void* out, int64_t rows, int64_t nb) {
  if (interleaved == DType::Q8_0x16) return interleave(static_cast<const BlockQ8_0*>(in), out, rows, nb);
  interleave(static_cast<const BlockQ4_0*>(in), out, rows, nb);
}

void interleaved_row_blocks(DType interleaved, const void* in, int64_t nb, int64_t row, int64_t b0, int64_t b1,
                            void* out) {
  if (interleaved == DType::Q8_0x16) return interleaved_row(in, nb, row, b0, b1, static_cast<BlockQ8_0*>(out));
  interleaved_row(in, nb, row, b0, b1, static_cast<BlockQ4_0*>(out));
}

void dequantize_interleaved_row(DType interleaved, const void* in, int64_t nb, int64_t row, int64_t b0, int64_t b1,
                                float* out) {
  if (interleaved == DType::Q8_0x16) {
    std::vector<BlockQ8_0> blocks(static_cast<size_t>(b1 - b0));
    interleaved_row(in, nb, row, b0, b1, blocks.data());
    return dequantize_q8_0(blocks.data(), out, 32 * (b1 - b0));
  }
  std::vector<BlockQ4_0> blocks(static_cast<size_t>(b1 - b0));
  interleaved_row(in, nb, row, b0, b1, blocks.data());
  dequantize_q4_0(blocks.data(), out, 32 * (b1 - b0));
}

}  // namespace tinyemo
