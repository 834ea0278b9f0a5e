#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "testing/testing.h"

namespace tinyemo {
namespace {

TEST(Cli, VersionPrintsJson) {
  auto r = testing::run_cli({"version", "--json"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  auto j = nlohmann::json::parse(r.out);
  EXPECT_EQ(j["version"], "0.1.0");
}

TEST(Cli, ThreadsOptionAfterSubcommand) {
  auto r = testing::run_cli({"version", "--json", "--threads", "1"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(nlohmann::json::parse(r.out)["threads"], 1);
}

TEST(Cli, UnknownSubcommandFails) {
  auto r = testing::run_cli({"no-such-command"});
  EXPECT_NE(r.exit_code, 0);
}

}  // namespace
}  // namespace tinyemo
