// Config values read through JsonObject: integers must be integers (nlohmann
// turns 64.5 into 64 and -1 into 2^64 - 1 without a word), and a key given
// twice is refused instead of read last-wins.
#include "io/json.h"

#include <gtest/gtest.h>

#include "io/file.h"
#include "testing/testing.h"

namespace tinyemo {
namespace {

using testing::error_of;

TEST(JsonConfig, IntegersMustBeIntegers) {
  const JsonObject c(nlohmann::json::parse(
                         R"({"hidden_size": 64.5, "layers": 12.0, "negative": -1, "huge": 1e30, "big": 3000000000,
                             "text": "12", "flag": true})"),
                     "config.json");
  EXPECT_NE(error_of([&] { c.get<int64_t>("hidden_size"); }).find("\"hidden_size\" must be an integer, got 64.5"),
            std::string::npos);
  EXPECT_EQ(c.get<int64_t>("layers"), 12);  // a whole number written with a point
  EXPECT_EQ(c.get<int64_t>("negative"), -1);
  EXPECT_NE(error_of([&] { c.get<uint64_t>("negative"); }).find("out of range"), std::string::npos);
  EXPECT_NE(error_of([&] { c.get<int64_t>("huge"); }).find("must be an integer"), std::string::npos);
  EXPECT_NE(error_of([&] { c.get<int32_t>("big"); }).find("out of range"), std::string::npos);
  EXPECT_EQ(c.get<int64_t>("big"), 3000000000);
  EXPECT_NE(error_of([&] { c.get<int64_t>("text"); }).find("wrong type"), std::string::npos);
  EXPECT_NE(error_of([&] { c.get<int64_t>("flag"); }).find("wrong type"), std::string::npos);
  EXPECT_NE(error_of([&] { c.get_or<int64_t>("hidden_size", 1); }).find("config.json"), std::string::npos);
  EXPECT_EQ(c.get<double>("hidden_size"), 64.5);
}

TEST(JsonConfig, RepeatedKeysAreRefused) {
  testing::TempDir tmp;
  write_file_atomic(tmp / "config.json", R"({"hidden_size": 64, "vision_config": {"a": 1, "a": 2}})");
  const std::string e = error_of([&] { JsonObject::load(tmp / "config.json"); });
  EXPECT_NE(e.find("config.json"), std::string::npos) << e;
  EXPECT_NE(e.find("key \"a\" appears twice"), std::string::npos) << e;
  write_file_atomic(tmp / "top.json", R"({"hidden_size": 64, "hidden_size": 32})");
  EXPECT_NE(error_of([&] { JsonObject::load(tmp / "top.json"); }).find("\"hidden_size\" appears twice"),
            std::string::npos);
  // Equal keys in sibling objects, and arrays of objects, are fine.
  write_file_atomic(tmp / "ok.json", R"({"x": {"a": 1}, "y": {"a": 2}, "z": [{"a": 1}, {"a": 2}]})");
  EXPECT_EQ(JsonObject::load(tmp / "ok.json").json()["y"]["a"], 2);
  EXPECT_NE(error_of([&] { parse_json_text("{\"a\": ", "t.json"); }).find("not valid JSON"), std::string::npos);
}

}  // namespace
}  // namespace tinyemo
