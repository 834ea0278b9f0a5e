// GGUF reader and writer: round trips of every metadata and tensor type, and
// refusal (a tinyemo::Error, never a crash) of truncated, mutated and
// hand-built hostile files.
#include <gtest/gtest.h>

#include <cstring>
#include <random>

#include "io/gguf.h"
#include "io/safetensors.h"
#include "models/lm/gguf_model.h"
#include "testing/testing.h"

namespace tinyemo {
namespace {

GgufFile parse_bytes(const std::string& bytes) {
  auto owner = std::make_shared<std::string>(bytes);
  return GgufFile::parse(owner, reinterpret_cast<const uint8_t*>(owner->data()), owner->size(), "test.gguf");
}

// Parses and reads every tensor; returns the error message ("" when accepted).
std::string try_parse(const std::string& bytes) {
  try {
    const GgufFile g = parse_bytes(bytes);
    for (const auto& t : g.tensors()) {
      const Tensor v = g.get(t.name);
      volatile float sink = v.to_f32_vector().empty() ? 0.0f : v.to_f32_vector().back();
      (void)sink;
    }
    for (const auto& [key, value] : g.metadata()) (void)g.value(key);
    return "";
  } catch (const Error& e) {
    return e.what();
  }
}

Tensor ramp(DType dtype, Shape shape) {
  Tensor f = Tensor::empty(DType::F32, shape);
  for (int64_t i = 0; i < f.numel(); ++i) f.mutable_data<float>()[i] = 0.25f * static_cast<float>(i % 17) - 2.0f;
  return f.to(dtype);
}

GgufWriter sample_writer() {
  GgufWriter w;
  w.set("general.architecture", GgufValue::string("llama"));
  w.set("test.u32", GgufValue::u32(4000000000u));
  w.set("test.u64", GgufValue::u64(1ull << 40));
  w.set("test.i32", GgufValue::i32(-7));
  w.set("test.f32", GgufValue::f32(0.5f));
  w.set("test.bool", GgufValue::boolean(true));
  w.set("test.i32s", GgufValue::i32_array({1, -2, 3}));
  w.set("test.f32s", GgufValue::f32_array({1.5f, 2.5f}));
  w.set("test.strings", GgufValue::string_array({"a", "", "ccc"}));
  w.set("test.bytes", GgufValue::u8_array(std::string("\0\x01\xff", 3)));
  w.add_tensor("f32", ramp(DType::F32, {3, 32}));
  w.add_tensor("f16", ramp(DType::F16, {2, 64}));
  w.add_tensor("bf16", ramp(DType::BF16, {5}));
  w.add_tensor("q8", ramp(DType::Q8_0, {2, 64}));
  w.add_tensor("q4", ramp(DType::Q4_0, {4, 32}));
  return w;
}

TEST(Gguf, RoundTripsMetadataAndTensors) {
  const GgufWriter w = sample_writer();
  const std::string bytes = w.bytes();
  const GgufFile g = parse_bytes(bytes);
  EXPECT_EQ(g.version(), 3u);
  EXPECT_EQ(g.alignment(), 32u);
  EXPECT_EQ(g.get_string("general.architecture"), "llama");
  EXPECT_EQ(g.get_uint("test.u32"), 4000000000u);
  EXPECT_EQ(g.get_uint("test.u64"), 1ull << 40);
  EXPECT_EQ(g.get_int("test.i32"), -7);
  EXPECT_EQ(g.get_float("test.f32"), 0.5);
  EXPECT_TRUE(g.get_bool("test.bool"));
  EXPECT_EQ(g.get_int_array("test.i32s"), (std::vector<int64_t>{1, -2, 3}));
  EXPECT_EQ(g.get_string_array("test.strings"), (std::vector<std::string>{"a", "", "ccc"}));
  EXPECT_EQ(g.get_u8_array("test.bytes"), std::string("\0\x01\xff", 3));
  ASSERT_EQ(g.tensors().size(), 5u);
  for (const auto& [name, dtype, shape] : std::vector<std::tuple<std::string, DType, Shape>>{
           {"f32", DType::F32, {3, 32}}, {"f16", DType::F16, {2, 64}}, {"bf16", DType::BF16, {5}},
           {"q8", DType::Q8_0, {2, 64}}, {"q4", DType::Q4_0, {4, 32}}}) {
    const Tensor t = g.get(name);
    EXPECT_EQ(t.dtype(), dtype) << name;
    EXPECT_EQ(t.shape(), shape) << name;
    EXPECT_EQ(g.info(name).offset % 32, 0u) << name;
    const Tensor want = ramp(dtype, shape);
    EXPECT_EQ(std::memcmp(t.raw(), want.raw(), want.nbytes()), 0) << name;
  }
  // Type errors name the key.
  try {
    g.get_string("test.u32");
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("test.u32"), std::string::npos);
  }
}

TEST(Gguf, WritesAtomicallyToDisk) {
  testing::TempDir tmp;
  sample_writer().write(tmp / "x.gguf");
  const GgufFile g = GgufFile::open(tmp / "x.gguf");
  EXPECT_EQ(g.tensors().size(), 5u);
  EXPECT_EQ(read_file(tmp / "x.gguf"), sample_writer().bytes());
}

// The interleaved Q8_0x16/Q4_0x16 layouts are in-memory compute layouts: the
// file writers refuse them by name (save_lm_gguf converts them back to rows).
TEST(Gguf, WritersRefuseInterleavedLayouts) {
  for (DType t : {DType::Q8_0x16, DType::Q4_0x16}) {
    const Tensor w = Tensor::zeros(DType::F32, {16, 32}).to(t);
    for (int writer = 0; writer < 2; ++writer) {
      try {
        if (writer == 0) {
          GgufWriter g;
          g.add_tensor("w", w);
          (void)g.bytes();
        } else {
          (void)safetensors_bytes({{"w", w}});
        }
        ADD_FAILURE() << dtype_name(t) << " written by writer " << writer;
      } catch (const Error& e) {
        EXPECT_NE(std::string(e.what()).find(dtype_name(t)), std::string::npos) << e.what();
      }
    }
  }
}

TEST(Gguf, EveryTruncationIsRefused) {
  const std::string bytes = sample_writer().bytes();
  const GgufFile g = parse_bytes(bytes);
  // Up to the end of the last tensor's data (its trailing padding may be cut harmlessly).
  size_t last = 0;
  for (const auto& t : g.tensors()) last = std::max<size_t>(last, g.data_start() + t.offset + t.nbytes);
  for (size_t n = 0; n < last; ++n) {
    EXPECT_NE(try_parse(bytes.substr(0, n)), "") << "prefix of " << n << " bytes accepted";
  }
  EXPECT_EQ(try_parse(bytes.substr(0, last)), "");
}

TEST(Gguf, RandomMutationsNeverCrash) {
  const std::string bytes = sample_writer().bytes();
  std::mt19937 rng(7);
  int refused = 0;
  for (int i = 0; i < 3000; ++i) {
    std::string m = bytes;
    const int flips = 1 + static_cast<int>(rng() % 4);
    for (int f = 0; f < flips; ++f) m[rng() % m.size()] = static_cast<char>(rng());
    refused += !try_parse(m).empty();
  }
  EXPECT_GT(refused, 0);
}

// Builds GGUF headers by hand, field by field.
struct Builder {
  std::string b;
  Builder& u32(uint32_t v) { return raw(&v, 4); }
  Builder& u64(uint64_t v) { return raw(&v, 8); }
  Builder& str(const std::string& s) {
    u64(s.size());
    b += s;
    return *this;
  }
  Builder& raw(const void* p, size_t n) {
    b.append(static_cast<const char*>(p), n);
    return *this;
  }
  Builder& header(uint64_t tensors, uint64_t kvs, uint32_t version = 3) {
    b += "GGUF";
    return u32(version).u64(tensors).u64(kvs);
  }
  // One tensor info: name, dims (ggml order), type, offset.
  Builder& tensor(const std::string& name, std::vector<uint64_t> ne, uint32_t type, uint64_t offset) {
    str(name).u32(static_cast<uint32_t>(ne.size()));
    for (uint64_t d : ne) u64(d);
    return u32(type).u64(offset);
  }
  std::string padded(size_t data_bytes) const {
    std::string out = b;
    out.append((32 - out.size() % 32) % 32, '\0');
    out.append(data_bytes, '\0');
    return out;
  }
};

void expect_refused(const std::string& bytes, const std::string& needle) {
  const std::string err = try_parse(bytes);
  EXPECT_NE(err, "") << "accepted; expected an error about " << needle;
  EXPECT_NE(err.find(needle), std::string::npos) << err;
  EXPECT_NE(err.find("test.gguf"), std::string::npos) << err;
}

TEST(Gguf, HostileHeadersAreRefusedClearly) {
  expect_refused("GGUX" + std::string(20, '\0'), "magic");
  expect_refused(Builder().header(0, 0, 1).b, "version 1");
  expect_refused(Builder().header(0, 0, 0x03000000).b, "big-endian");
  expect_refused(Builder().header(0, 1ull << 60).b, "metadata entries cannot fit");
  expect_refused(Builder().header(1ull << 60, 0).b, "tensors cannot fit");
  // Key and string lengths past the end.
  expect_refused(Builder().header(0, 1).u64(~0ull).b + std::string(16, 'x'), "truncated");
  expect_refused(Builder().header(0, 1).str("k").u32(8).u64(1ull << 62).b + std::string(16, 'x'), "truncated");
  // Unknown value type, nested and oversized arrays.
  expect_refused(Builder().header(0, 1).str("k").u32(13).u32(0).b, "unknown type 13");
  expect_refused(Builder().header(0, 1).str("k").u32(9).u32(9).u64(1).b + std::string(16, 'x'), "arrays of arrays");
  expect_refused(Builder().header(0, 1).str("k").u32(9).u32(4).u64(1ull << 61).b + std::string(16, 'x'),
                 "cannot fit");
  expect_refused(Builder().header(0, 1).str("k").u32(9).u32(8).u64(1ull << 61).b + std::string(16, 'x'),
                 "cannot fit");
  // Duplicate keys; bad alignment values and types.
  expect_refused(Builder().header(0, 2).str("k").u32(4).u32(1).str("k").u32(4).u32(1).b, "appears twice");
  expect_refused(Builder().header(0, 1).str("general.alignment").u32(4).u32(0).b, "power of two");
  expect_refused(Builder().header(0, 1).str("general.alignment").u32(4).u32(48).b, "power of two");
  expect_refused(Builder().header(0, 1).str("general.alignment").u32(10).u64(32).b, "uint32");
}

TEST(Gguf, HostileTensorInfosAreRefusedClearly) {
  auto one = [](std::vector<uint64_t> ne, uint32_t type, uint64_t offset, size_t data) {
    return Builder().header(1, 0).tensor("w", std::move(ne), type, offset).padded(data);
  };
  EXPECT_EQ(try_parse(one({32, 2}, 0, 0, 256)), "");  // the well-formed base case
  expect_refused(one({}, 0, 0, 64), "dimensions");
  expect_refused(one({1, 1, 1, 1, 1}, 0, 0, 64), "dimensions");
  expect_refused(one({0, 4}, 0, 0, 64), "dimension");
  expect_refused(one({1ull << 32, 1ull << 32}, 0, 0, 64), "too large");
  expect_refused(one({32}, 12, 0, 64), "Q4_K");
  expect_refused(one({32}, 99, 0, 64), "unknown ggml type 99");
  expect_refused(one({16, 2}, 8, 0, 64), "multiple of 32");
  expect_refused(one({32}, 0, 8, 256), "alignment");
  expect_refused(one({32, 2}, 0, 0, 100), "runs past");
  expect_refused(one({32}, 0, 1ull << 62, 64), "runs past");
  const std::string dup = Builder().header(2, 0).tensor("w", {8}, 0, 0).tensor("w", {8}, 0, 32).padded(64);
  expect_refused(dup, "appears twice");
  const std::string adjacent = Builder().header(2, 0).tensor("a", {8}, 0, 0).tensor("b", {8}, 0, 32).padded(64);
  EXPECT_EQ(try_parse(adjacent), "");
  expect_refused(Builder().header(2, 0).tensor("a", {16}, 0, 0).tensor("b", {8}, 0, 32).padded(96), "overlap");
}

// Without tinyemo.config_json a file is read in llama.cpp's layout, whose keys
// it must then have (tests/lm/gguf_llamacpp_test.cpp has the rest).
TEST(GgufModel, FilesWithoutTinyemoConfigNeedLlamaCppKeys) {
  testing::TempDir tmp;
  GgufWriter w;
  w.set("general.architecture", GgufValue::string("llama"));
  w.add_tensor("token_embd.weight", ramp(DType::F32, {4, 32}));
  w.write(tmp / "foreign.gguf");
  try {
    lm::LmModel::load(tmp / "foreign.gguf");
    FAIL() << "a file without hyper-parameters was accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("llama.block_count"), std::string::npos) << e.what();
  }
}

TEST(GgufModel, RefusesHyperparametersThatDisagreeWithTheConfig) {
  testing::TempDir tmp;
  lm::LoadOptions o;
  o.weight_dtype = DType::Q8_0;
  save_lm_gguf(lm::LmModel::load(testing::fixture("llama-tiny"), o), tmp / "m.gguf", lm::GgufLayout::Tinyemo);
  // Rewrite block_count: same length, so patch the u32 value after its key.
  std::string bytes = read_file(tmp / "m.gguf");
  const std::string key = "llama.block_count";
  const size_t at = bytes.find(key);
  ASSERT_NE(at, std::string::npos);
  const uint32_t bad = 3;
  std::memcpy(&bytes[at + key.size() + 4], &bad, 4);
  write_file_atomic(tmp / "bad.gguf", bytes);
  try {
    lm::LmModel::load(tmp / "bad.gguf");
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("llama.block_count"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace tinyemo
