// The web page in headless Chromium (Debian's chromium, puppeteer-core from
// npm installed by scripts/install-deps.sh into BUILD_DIR/npm): an uploaded
// image shows the API's label with its bars, a non-image shows an error.
// Skipped, saying why, where node, chromium or puppeteer-core is missing.
// TINYEMO_PAGE_SCREENSHOT=FILE.png saves the page (without a reasoning
// model) after both uploads: docs/server-page.png was made so.
#include <cstdlib>

#include "server_fixtures.h"

namespace tinyemo::server_test {
namespace {

std::string which(const std::string& program) {
  const char* path = std::getenv("PATH");
  std::istringstream dirs(path ? path : "");
  for (std::string dir; std::getline(dirs, dir, ':');) {
    const fs::path p = fs::path(dir) / program;
    if (!dir.empty() && access(p.c_str(), X_OK) == 0) return p.string();
  }
  return "";
}

std::string quote(const std::string& s) { return "'" + s + "'"; }

// Runs page_test.cjs against a server started with `args`; `reason`: the
// server has a reasoning model and the explanation must stream in.
void drive_page(const std::vector<std::string>& args, bool reason, size_t min_checks) {
  const std::string node = which("node");
  if (node.empty()) GTEST_SKIP() << "node is not installed (scripts/install-deps.sh installs it)";
  const char* chromium_env = std::getenv("TINYEMO_CHROMIUM");
  const std::string chromium = chromium_env ? chromium_env : which("chromium");
  if (chromium.empty()) GTEST_SKIP() << "chromium is not installed (scripts/install-deps.sh installs Debian's)";
  const fs::path npm = fs::path(TINYEMO_BINARY_DIR) / "npm";
  if (!fs::exists(npm / "node_modules/puppeteer-core/package.json")) {
    GTEST_SKIP() << "puppeteer-core is not in " << npm << " (scripts/install-deps.sh installs it)";
  }

  const Workspace& w = Workspace::get();
  ServerProcess s(args);
  ASSERT_TRUE(s.wait_ready()) << s.log();
  // The API's answer for the image the page will get.
  const fs::path image = w.images / "chelsea.png";
  auto c = s.client();
  const auto r = c.Post("/v1/classify", json({{"images", {data_uri(image)}}}).dump(), "application/json");
  ASSERT_TRUE(r);
  ASSERT_EQ(r->status, 200) << r->body;
  const std::string expected = json::parse(r->body)["results"][0]["predicted"];

  testing::TempDir dir;
  const fs::path not_image = dir / "notes.txt";
  std::ofstream(not_image) << "this is not an image\n";
  const char* screenshot = std::getenv("TINYEMO_PAGE_SCREENSHOT");
  const std::string command =
      quote(node) + " " + quote((testing::source_dir() / "tests/server/web/page_test.cjs").string()) + " " +
      quote(npm.string()) + " " + quote(chromium) + " " + quote("http://127.0.0.1:" + std::to_string(s.port()) + "/") +
      " " + quote(image.string()) + " " + quote(not_image.string()) + " " + quote(expected) +
      (reason ? " --reason" : "") + (screenshot && !reason ? " " + quote(std::string("--screenshot=") + screenshot) : "") +
      " 2>&1";
  FILE* p = popen(command.c_str(), "r");
  ASSERT_NE(p, nullptr);
  std::string out;
  char buf[4096];
  for (size_t n; (n = std::fread(buf, 1, sizeof buf, p)) > 0;) out.append(buf, n);
  const int status = pclose(p);
  EXPECT_EQ(WIFEXITED(status) ? WEXITSTATUS(status) : -1, 0) << out;
  const size_t brace = out.rfind("{\"checks\"");
  ASSERT_NE(brace, std::string::npos) << out;
  const json result = json::parse(out.substr(brace), nullptr, false);
  ASSERT_TRUE(result.is_object()) << out;
  EXPECT_EQ(result["failed"], 0) << result.dump(2);
  EXPECT_GE(result["checks"].size(), min_checks) << result.dump(2);
  EXPECT_EQ(s.stop(), 0) << s.log();
}

TEST(ServerPage, UploadShowsTheApiLabelAndNonImagesAnError) { drive_page(base_args(), false, 8); }

TEST(ServerPage, ExplanationStreamsInWithAReasoningModel) {
  const Workspace& w = Workspace::get();
  // tinyllava-tiny with the LM tokenizer beside it.
  const fs::path mm = w.dir / "tinyllava-page";
  fs::create_directories(mm);
  for (const char* f : {"config.json", "model.safetensors"}) {
    fs::copy_file(fixture(std::string("tinyllava-tiny/") + f), mm / f, fs::copy_options::overwrite_existing);
  }
  fs::copy_file(w.lm / "tokenizer.model", mm / "tokenizer.model", fs::copy_options::overwrite_existing);
  drive_page({"--clip", w.clip.string(), "--projector", w.projector_lm.string(), "--mm", mm.string(), "--threads", "2",
              "--max-tokens", "24"},
             true, 10);
}

}  // namespace
}  // namespace tinyemo::server_test
