#include "io/safetensors.h"

#include <gtest/gtest.h>

#include <cstring>

#include "io/file.h"
#include "testing/testing.h"

namespace tinyemo {
namespace {

std::string with_header(const std::string& json, size_t data_bytes) {
  std::string out(8, '\0');
  const uint64_t n = json.size();
  std::memcpy(out.data(), &n, 8);
  return out + json + std::string(data_bytes, '\0');
}

TEST(Safetensors, RoundTripKeepsDtypesShapesValuesAndMetadata) {
  testing::TempDir tmp;
  NamedTensors tensors = {{"a", Tensor::from_vector<float>({2, 3}, {1, 2, 3, 4, 5, 6})},
                          {"ids", Tensor::from_vector<int64_t>({3}, {7, -1, 1 << 30})},
                          {"h", Tensor::from_vector<float>({2}, {0.5f, -3.0f}).to(DType::BF16)}};
  write_safetensors(tmp / "x.safetensors", tensors, {{"labels", "joy,fear"}});
  auto f = SafetensorsFile::open(tmp / "x.safetensors");
  EXPECT_EQ(f.metadata().at("labels"), "joy,fear");
  ASSERT_EQ(f.entries().size(), 3u);
  EXPECT_EQ(f.get("a").shape(), Shape({2, 3}));
  EXPECT_EQ(f.get("a").data<float>()[5], 6.0f);
  EXPECT_EQ(f.get("ids").data<int64_t>()[2], 1 << 30);
  EXPECT_EQ(f.get("h").to_f32_vector()[1], -3.0f);
  EXPECT_THROW(f.get("missing"), Error);
  EXPECT_FALSE(f.get("a").writable());
}

void expect_refused(const std::string& bytes, const std::string& needle) {
  testing::TempDir tmp;
  write_file_atomic(tmp / "bad.safetensors", bytes);
  try {
    SafetensorsFile::open(tmp / "bad.safetensors");
    ADD_FAILURE() << "accepted: " << needle;
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("bad.safetensors"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
  }
}

TEST(Safetensors, RefusesMalformedHeaders) {
  expect_refused("abc", "not a safetensors file");
  expect_refused(std::string("\xff\xff\xff\xff\xff\xff\xff\x7f", 8) + "{}", "limit");
  expect_refused(with_header("{\"a\":", 0), "not valid JSON");
  expect_refused(with_header("[]", 0), "not a JSON object");
  expect_refused(with_header(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,16]}})", 8), "outside");
  expect_refused(with_header(R"({"a":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}})", 8), "expected 12");
  expect_refused(with_header(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},)"
                             R"("b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}})",
                             12),
                 "overlap");
  expect_refused(with_header(R"({"a":{"dtype":"X9","shape":[2],"data_offsets":[0,8]}})", 8), "unsupported dtype");
  expect_refused(with_header(R"({"a":{"dtype":"F32","shape":[-2],"data_offsets":[0,8]}})", 8), "non-negative");
  expect_refused(with_header(R"({"a":{"dtype":"F32","shape":[4611686018427387904,4],"data_offsets":[0,8]}})", 8),
                 "too large");
  expect_refused(with_header(R"({"__metadata__":{"k":1}})", 0), "not a string");
}

TEST(Safetensors, ReadsFixtureWithPositionIdsBuffer) {
  auto f = SafetensorsFile::open(testing::fixture("clip-vision-tiny/model.safetensors"));
  EXPECT_TRUE(f.contains("vision_model.embeddings.position_ids"));
  EXPECT_EQ(f.entry("vision_model.embeddings.position_ids").dtype, DType::I64);
}

}  // namespace
}  // namespace tinyemo

namespace tinyemo {
namespace {

// nlohmann keeps the last of two equal keys; a header naming a tensor twice
// says two things about one name and must be refused, not read last-wins.
TEST(Safetensors, RefusesATensorOrMetadataKeyNamedTwice) {
  expect_refused(with_header(R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},)"
                             R"("a":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}})",
                             8),
                 "key \"a\" appears twice");
  expect_refused(with_header(R"({"__metadata__":{"labels":"[\"joy\"]","labels":"[\"fear\"]"}})", 0),
                 "key \"labels\" appears twice");
  expect_refused(with_header(R"({"a":{"dtype":"F32","dtype":"F16","shape":[1],"data_offsets":[0,4]}})", 4),
                 "key \"dtype\" appears twice");
  // The same key in different objects is fine.
  testing::TempDir tmp;
  write_file_atomic(tmp / "ok.safetensors",
                    with_header(R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},)"
                                R"("b":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}})",
                                8));
  EXPECT_EQ(SafetensorsFile::open(tmp / "ok.safetensors").entries().size(), 2u);
}

}  // namespace
}  // namespace tinyemo
