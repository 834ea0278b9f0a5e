// `tinyemo convert --mmproj-out` writes a TinyLLaVA folder as llama.cpp's pair
// (LM .gguf + mmproj .gguf); `tinyemo mm logits | generate --model LM.gguf
// --mmproj MMPROJ.gguf` runs it: the fixtures' logits and greedy ids, the
// same answer as the folder for an image and a prompt, and refusals by name.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "io/safetensors.h"
#include "mm/mm_fixtures.h"
#include "testing/testing.h"

namespace tinyemo {
namespace {

using testing::fixture_ids;
using testing::run_cli;

TEST(MmprojCli, ConvertedPairMatchesTheFixtures) {
  for (const std::string m : {"tinyllava-tiny", "tinyllava-phi-tiny"}) {
    testing::TempDir tmp;
    const auto dir = testing::fixture(m).string();
    const auto lm = (tmp / "lm.gguf").string(), mmproj = (tmp / "mmproj.gguf").string();
    auto c = run_cli({"convert", "--to", "gguf", "--quant", "f32", "--model", dir, "--out", lm, "--mmproj-out", mmproj});
    ASSERT_EQ(c.exit_code, 0) << c.err;
    EXPECT_NE(c.out.find("wrote " + lm + " (llama.cpp layout"), std::string::npos) << c.out;
    EXPECT_NE(c.out.find("wrote " + mmproj + " (llama.cpp mmproj, projector mlp, f32, 41 tensors"), std::string::npos)
        << c.out;

    const auto out = (tmp / "out.safetensors").string();
    auto r = run_cli({"mm", "logits", "--model", lm, "--mmproj", mmproj, "--inputs", dir + "/io.safetensors", "--out", out});
    ASSERT_EQ(r.exit_code, 0) << r.err;
    const auto got = SafetensorsFile::open(out);
    const auto want = SafetensorsFile::open(testing::fixture(m + "/io.safetensors"));
    EXPECT_LE(testing::rel_error(got.get("image_features"), want.get("image_features")), 1e-4) << m;
    EXPECT_LE(testing::rel_error(got.get("logits"), want.get("logits")), 1e-4) << m;

    auto g = run_cli({"mm", "generate", "--model", lm, "--mmproj", mmproj, "--inputs", dir + "/io.safetensors",
                      "--max-new-tokens", "6", "--greedy", "--json"});
    ASSERT_EQ(g.exit_code, 0) << g.err;
    EXPECT_EQ(nlohmann::json::parse(g.out)["ids"].get<std::vector<int64_t>>(), fixture_ids(m, "greedy_ids")) << m;
  }
}

// A folder with a tokenizer: the pair carries it in the LM .gguf, and an image
// with a prompt gives the folder's answer (same template named on both).
TEST(MmprojCli, ImageAndPromptGiveTheFoldersAnswer) {
  testing::TempDir tmp;
  testing::copy_tinyllava_fixture("tinyllava-tiny", tmp / "model");
  const auto lm = (tmp / "lm.gguf").string(), mmproj = (tmp / "mmproj.gguf").string();
  auto c = run_cli({"convert", "--to", "gguf", "--quant", "f32", "--model", (tmp / "model").string(), "--out", lm,
                    "--mmproj-out", mmproj, "--json"});
  ASSERT_EQ(c.exit_code, 0) << c.err;
  const auto summary = nlohmann::json::parse(c.out);
  EXPECT_EQ(summary["mmproj_tensors"], 41);
  EXPECT_EQ(summary["mmproj_dtype"], "f32");
  const std::string image = testing::fixture("clip-preprocess/chelsea.png").string();
  // The fixture is "square"; the mmproj records it (clip.vision.image_aspect_ratio).
  auto folder = run_cli({"mm", "generate", "--model", (tmp / "model").string(), "--image", image, "--prompt",
                         "What do you feel?", "--max-new-tokens", "6", "--greedy", "--json"});
  auto pair = run_cli({"mm", "generate", "--model", lm, "--mmproj", mmproj, "--template", "llama", "--image", image,
                       "--prompt", "What do you feel?", "--max-new-tokens", "6", "--greedy", "--json"});
  ASSERT_EQ(folder.exit_code, 0) << folder.err;
  ASSERT_EQ(pair.exit_code, 0) << pair.err;
  const auto a = nlohmann::json::parse(folder.out), b = nlohmann::json::parse(pair.out);
  EXPECT_EQ(a["ids"], b["ids"]);
  EXPECT_EQ(a["text"], b["text"]);
  EXPECT_TRUE(b["text"].is_string());
  EXPECT_EQ(a["prompt_positions"], b["prompt_positions"]);
}

TEST(MmprojCli, Refusals) {
  testing::TempDir tmp;
  const auto siglip = testing::fixture("tinyllava-siglip-qwen2-tiny").string();
  const auto lm = (tmp / "lm.gguf").string(), mmproj = (tmp / "mmproj.gguf").string();
  // TinyLLaVA's patch selection on SigLIP drops a patch llama.cpp keeps: nothing written.
  auto s = run_cli({"convert", "--to", "gguf", "--quant", "f32", "--model", siglip, "--out", lm, "--mmproj-out", mmproj});
  EXPECT_NE(s.exit_code, 0);
  EXPECT_NE(s.err.find("\"patch\" on a SigLIP tower"), std::string::npos) << s.err;
  EXPECT_FALSE(std::filesystem::exists(lm));
  EXPECT_FALSE(std::filesystem::exists(mmproj));
  // An LM llama.cpp's layout refuses (llama3 RoPE scaling): no mmproj left behind either.
  testing::copy_tinyllava_fixture("tinyllava-tiny", tmp / "llama3", [](nlohmann::json& c) {
    c["text_config"]["rope_scaling"] = {{"rope_type", "llama3"},
                                        {"factor", 8.0},
                                        {"low_freq_factor", 1.0},
                                        {"high_freq_factor", 4.0},
                                        {"original_max_position_embeddings", 1024}};
  }, false);
  auto rope = run_cli({"convert", "--to", "gguf", "--quant", "f32", "--model", (tmp / "llama3").string(), "--out", lm,
                       "--mmproj-out", mmproj});
  EXPECT_NE(rope.exit_code, 0);
  EXPECT_NE(rope.err.find("llama3"), std::string::npos) << rope.err;
  EXPECT_FALSE(std::filesystem::exists(lm));
  EXPECT_FALSE(std::filesystem::exists(mmproj));
  EXPECT_FALSE(std::filesystem::exists(mmproj + ".tmp.pair"));
  const auto tiny = testing::fixture("tinyllava-tiny").string();
  auto layout = run_cli({"convert", "--to", "gguf", "--quant", "f32", "--layout", "tinyemo", "--model", tiny, "--out",
                         lm, "--mmproj-out", mmproj});
  EXPECT_NE(layout.exit_code, 0);
  EXPECT_NE(layout.err.find("--layout must be llama.cpp"), std::string::npos) << layout.err;
  auto same = run_cli({"convert", "--to", "gguf", "--quant", "f32", "--model", tiny, "--out", lm, "--mmproj-out", lm});
  EXPECT_NE(same.exit_code, 0);
  EXPECT_NE(same.err.find("same file"), std::string::npos) << same.err;
  // An LM .gguf given as the mmproj.
  const auto llama = testing::fixture("llama-tiny").string();
  ASSERT_EQ(run_cli({"convert", "--to", "gguf", "--quant", "f32", "--model", llama, "--out", lm}).exit_code, 0);
  auto r = run_cli({"mm", "logits", "--model", lm, "--mmproj", lm, "--inputs", tiny + "/io.safetensors", "--out",
                    (tmp / "o.safetensors").string()});
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.err.find("tinyemo: error: "), std::string::npos) << r.err;
  EXPECT_NE(r.err.find(lm), std::string::npos) << r.err;
}

}  // namespace
}  // namespace tinyemo
