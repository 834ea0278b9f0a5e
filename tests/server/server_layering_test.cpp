// The server is a frontend over the public C API: its objects reference no
// engine symbol (only te_* functions, its own tinyemo::server code, and the
// C++ and HTTP libraries). Its include path holds no engine header either
// (src/CMakeLists.txt), so this is a second lock on the same door.
#include <gtest/gtest.h>

#include <cstdio>
#include <sstream>
#include <string>

namespace {

TEST(ServerLayering, ReferencesOnlyThePublicCApi) {
  const std::string command = std::string("nm -C --undefined-only ") + TINYEMO_SERVER_LIBRARY;
  FILE* p = popen(command.c_str(), "r");
  ASSERT_NE(p, nullptr);
  std::string out;
  char buf[4096];
  for (size_t n; (n = std::fread(buf, 1, sizeof buf, p)) > 0;) out.append(buf, n);
  ASSERT_EQ(pclose(p), 0) << command;
  std::istringstream lines(out);
  int te_functions = 0;
  for (std::string line; std::getline(lines, line);) {
    const size_t at = line.find(" U ");
    if (at == std::string::npos) continue;
    const std::string name = line.substr(at + 3);
    if (name.rfind("te_", 0) == 0) ++te_functions;
    if (name.find("tinyemo::") != std::string::npos) {
      EXPECT_NE(name.find("tinyemo::server::"), std::string::npos) << "an engine symbol: " << name;
    }
  }
  EXPECT_GE(te_functions, 20) << out;
}

}  // namespace
