// The public C API as a program sees it: the C test program (c_api_test.c,
// linked to libtinyemo.so) run on the fixtures, the shared library's exported
// symbols, and the examples built against an installed tree.
#include <gtest/gtest.h>
#include <sentencepiece_trainer.h>

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "io/file.h"
#include "models/projector/model.h"
#include "testing/testing.h"

namespace tinyemo {
namespace {

using testing::fixture;
namespace fs = std::filesystem;

// Runs a shell command; returns its exit status and standard output.
std::pair<int, std::string> shell(const std::string& command) {
  std::string out;
  FILE* p = popen(command.c_str(), "r");
  if (p == nullptr) return {-1, out};
  char buf[4096];
  for (size_t n; (n = std::fread(buf, 1, sizeof buf, p)) > 0;) out.append(buf, n);
  const int status = pclose(p);
  return {WIFEXITED(status) ? WEXITSTATUS(status) : -1, out};
}

std::string quote(const fs::path& p) { return "'" + p.string() + "'"; }

// The fixtures a program needs: CLIP (48-d embeddings), a projector for it,
// three images, and llama-tiny with a SentencePiece tokenizer of its vocabulary.
struct Workspace {
  testing::TempDir dir;
  fs::path clip = fixture("clip-vision-small"), projector, images, lm = fixture("llama-tiny"), tokenizer, work, mm;

  Workspace() {
    projector::ProjectorConfig config;
    config.dims = {48, 16};
    projector::ProjectorModel model(config, {"anger", "joy", "fear"});
    projector::MlpWeights w(model.layout());
    for (size_t i = 0; i < w.params.size(); ++i) w.params[i] = 0.3f * std::sin(0.7f * static_cast<float>(i) + 0.1f);
    model.set_members({w});
    std::vector<float> anchors(3 * 16);
    for (size_t i = 0; i < anchors.size(); ++i) anchors[i] = std::cos(1.3f * static_cast<float>(i));
    model.set_anchors({"anger", "joy", "fear"}, anchors);
    projector = dir / "projector.safetensors";
    model.save(projector);

    images = dir / "images";
    fs::create_directories(images);
    for (const char* f : {"rocket.jpg", "chelsea.png", "camera.png"}) {
      fs::copy_file(fixture(std::string("clip-preprocess/") + f), images / f);
    }
    // llama-tiny has 320 tokens: a byte-fallback BPE of as many.
    const auto corpus = testing::source_dir() / "tests/data/tokenizers/spm_corpus.txt";
    std::string serialized;
    const auto status = sentencepiece::SentencePieceTrainer::Train(
        "--input=" + corpus.string() +
            " --model_type=bpe --vocab_size=320 --byte_fallback=true --character_coverage=0.98 --num_threads=1"
            " --unk_id=0 --bos_id=1 --eos_id=2 --pad_id=-1 --minloglevel=2",
        nullptr, &serialized);
    EXPECT_TRUE(status.ok()) << status.ToString();
    tokenizer = dir / "tokenizer.model";
    write_file_atomic(tokenizer, serialized);
    work = dir / "work";
    fs::create_directories(work);
    // tinyllava-tiny (a 320-token LLaMA inside) with the same tokenizer beside it.
    mm = dir / "tinyllava";
    fs::create_directories(mm);
    for (const char* f : {"config.json", "model.safetensors"}) fs::copy_file(fixture(std::string("tinyllava-tiny/") + f), mm / f);
    fs::copy_file(tokenizer, mm / "tokenizer.model");
  }
};

TEST(CApi, EveryEntryPointFromC) {
  Workspace w;
  const auto [code, out] = shell(std::string(TINYEMO_C_API_TEST) + " " + quote(w.clip) + " " + quote(w.projector) +
                                 " " + quote(w.images) + " " + quote(w.lm) + " " + quote(w.tokenizer) + " " +
                                 quote(w.work) + " " + quote(w.mm) + " " + quote(fixture("clip-zeroshot-tiny")) + " " +
                                 quote(testing::data("bpe_simple_vocab_16e6.txt.gz")) + " 2>&1");
  EXPECT_EQ(code, 0) << out;
  EXPECT_NE(out.find(" checks, 0 failed"), std::string::npos) << out;
}

TEST(CApi, SharedLibraryExportsOnlyTePrefixedSymbols) {
  const auto [code, out] = shell(std::string("nm -D --defined-only ") + TINYEMO_SHARED_LIBRARY);
  ASSERT_EQ(code, 0) << out;
  std::istringstream lines(out);
  int exported = 0;
  for (std::string line; std::getline(lines, line);) {
    std::istringstream fields(line);
    std::string address, type, name;
    fields >> address >> type >> name;
    if (name.empty()) continue;
    EXPECT_EQ(name.rfind("te_", 0), 0u) << "exported: " << line;
    ++exported;
  }
  EXPECT_GE(exported, 40);
  const auto [soname_code, dynamic] = shell(std::string("objdump -p ") + TINYEMO_SHARED_LIBRARY);
  EXPECT_NE(dynamic.find("SONAME               libtinyemo.so.0.2"), std::string::npos) << dynamic;
}

// `cmake --install` into a prefix, the examples built against it with
// find_package and with pkg-config, and their predictions equal the CLI's.
TEST(CApi, InstalledExamplesMatchTheCli) {
  // The examples are built as a user builds them: without the sanitizers an
  // instrumented libtinyemo.so would need loaded first.
  if (TINYEMO_SANITIZED) GTEST_SKIP() << "the library is built with sanitizers";
  Workspace w;
  const fs::path prefix = w.dir / "prefix";
  auto [code, out] = shell(std::string(TINYEMO_CMAKE) + " --install " + quote(TINYEMO_BINARY_DIR) + " --prefix " +
                           quote(prefix) + " 2>&1");
  ASSERT_EQ(code, 0) << out;
  EXPECT_TRUE(fs::exists(prefix / "include/tinyemo.h"));
  EXPECT_TRUE(fs::exists(prefix / "lib/libtinyemo.a"));

  const auto cli = testing::run_cli({"classify", "--clip", w.clip.string(), "--projector", w.projector.string(),
                                     (w.images / "rocket.jpg").string(), (w.images / "chelsea.png").string(),
                                     (w.images / "camera.png").string(), "--json"});
  ASSERT_EQ(cli.exit_code, 0) << cli.err;
  const auto want = nlohmann::json::parse(cli.out)["results"];

  const fs::path examples = testing::source_dir() / "examples";
  for (const bool pkg_config : {false, true}) {
    const fs::path build = w.dir / (pkg_config ? "build-pkg-config" : "build-find-package");
    const std::string env = pkg_config ? "PKG_CONFIG_PATH=" + quote(prefix / "lib/pkgconfig") + " " : "";
    std::tie(code, out) = shell(env + TINYEMO_CMAKE + " -S " + quote(examples) + " -B " + quote(build) +
                                " -DCMAKE_BUILD_TYPE=Release" + (pkg_config ? " -DUSE_PKG_CONFIG=ON" : "") +
                                " -DCMAKE_PREFIX_PATH=" + quote(prefix) + " 2>&1 && " + TINYEMO_CMAKE + " --build " +
                                quote(build) + " 2>&1");
    ASSERT_EQ(code, 0) << out;
    std::tie(code, out) = shell(quote(build / "classify") + " " + quote(w.clip) + " " + quote(w.projector) + " " +
                                quote(w.images / "rocket.jpg") + " " + quote(w.images / "chelsea.png") + " " +
                                quote(w.images / "camera.png"));
    ASSERT_EQ(code, 0) << out;
    std::istringstream lines(out);
    size_t i = 0;
    for (std::string line; std::getline(lines, line); ++i) {
      ASSERT_LT(i, want.size());
      const auto got = nlohmann::json::parse(line);
      EXPECT_EQ(got["predicted"], want[i]["predicted"]) << line;
      for (const auto& [label, p] : want[i]["scores"].items()) {
        EXPECT_NEAR(got["scores"][label].get<double>(), p.get<double>(), 1e-6) << label;
      }
    }
    EXPECT_EQ(i, want.size());

    // The C++ example streams text from llama-tiny.
    std::tie(code, out) = shell(quote(build / "generate") + " " + quote(w.lm) + " 'the happy dog' 8 --tokenizer " +
                                quote(w.tokenizer) + " 2>/dev/null");
    EXPECT_EQ(code, 0) << out;
    EXPECT_FALSE(out.empty());
  }
}

}  // namespace
}  // namespace tinyemo
