#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "testing/testing.h"
#include "tinyemo.h"

namespace tinyemo {
namespace {

TEST(Cli, VersionPrintsJson) {
  auto r = testing::run_cli({"version", "--json"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  auto j = nlohmann::json::parse(r.out);
  EXPECT_EQ(j["version"], std::to_string(TE_VERSION_MAJOR) + "." + std::to_string(TE_VERSION_MINOR) + "." +
                             std::to_string(TE_VERSION_PATCH));
  // --version on the root prints the same.
  r = testing::run_cli({"--version"});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find(j["version"].get<std::string>()), std::string::npos) << r.out;
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
