// `tinyemo mm logits | generate | bench`, `tinyemo reason` and `tinyemo chat`
// end to end on the TinyLLaVA fixtures (with a SentencePiece tokenizer of the
// fixture's vocabulary trained here), including the refusals of bad inputs.
#include <gtest/gtest.h>

#include <algorithm>
#include <nlohmann/json.hpp>
#include <set>

#include "io/file.h"
#include "io/safetensors.h"
#include "mm/mm_fixtures.h"
#include "models/mm/model.h"
#include "testing/testing.h"

namespace tinyemo {
namespace {

using testing::fixture_ids;
using testing::run_cli;

void expect_failure(const testing::CliResult& r, const std::vector<std::string>& needles) {
  EXPECT_NE(r.exit_code, 0) << r.out;
  EXPECT_NE(r.err.find("tinyemo: error: "), std::string::npos) << r.err;
  for (const auto& n : needles) EXPECT_NE(r.err.find(n), std::string::npos) << r.err << " lacks " << n;
}

const std::string kImage = testing::fixture("clip-preprocess/chelsea.png").string();

// A TinyLLaVA-tiny folder with a tokenizer, its CLIP with a projection, a projector.
class MmCliModel : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    tmp_ = new testing::TempDir();
    testing::copy_tinyllava_fixture("tinyllava-tiny", *tmp_ / "model");
    testing::write_clip_of_fixture("tinyllava-tiny", *tmp_ / "clip", 32);
    testing::write_projector(*tmp_ / "projector.safetensors", 32, 64, {"anger", "joy", "fear"});
  }
  static void TearDownTestSuite() { delete tmp_; }
  static std::string path(const std::string& name) { return (*tmp_ / name).string(); }
  static testing::TempDir* tmp_;
};
testing::TempDir* MmCliModel::tmp_ = nullptr;

TEST(MmCli, LogitsMatchTheFixtures) {
  testing::TempDir tmp;
  for (const std::string m :
       {"tinyllava-tiny", "tinyllava-openelm-tiny", "tinyllava-phi-tiny", "tinyllava-siglip-qwen2-tiny"}) {
    const auto dir = testing::fixture(m).string();
    const auto out = (tmp / "out.safetensors").string();
    auto r = run_cli({"mm", "logits", "--model", dir, "--inputs", dir + "/io.safetensors", "--out", out});
    ASSERT_EQ(r.exit_code, 0) << r.err;
    const auto got = SafetensorsFile::open(out);
    const auto want = SafetensorsFile::open(testing::fixture(m + "/io.safetensors"));
    EXPECT_EQ(got.get("logits").dtype(), DType::F32);
    EXPECT_LE(testing::rel_error(got.get("image_features"), want.get("image_features")), 1e-4) << m;
    EXPECT_LE(testing::rel_error(got.get("logits"), want.get("logits")), 1e-4) << m;
  }
}

TEST(MmCli, GreedyGenerationMatchesTheFixtures) {
  for (const std::string m :
       {"tinyllava-tiny", "tinyllava-openelm-tiny", "tinyllava-phi-tiny", "tinyllava-siglip-qwen2-tiny"}) {
    const auto dir = testing::fixture(m).string();
    auto r = run_cli({"mm", "generate", "--model", dir, "--inputs", dir + "/io.safetensors", "--max-new-tokens", "6",
                      "--greedy", "--json"});
    ASSERT_EQ(r.exit_code, 0) << r.err;
    const auto j = nlohmann::json::parse(r.out);
    EXPECT_EQ(j["ids"].get<std::vector<int64_t>>(), fixture_ids(m, "greedy_ids")) << m;
    EXPECT_TRUE(j["text"].is_null());  // the fixtures ship no tokenizer
  }
}

TEST_F(MmCliModel, ImageAndPromptInTheTemplate) {
  auto r = run_cli({"mm", "generate", "--model", path("model"), "--image", kImage, "--prompt", "What do you feel?",
                    "--max-new-tokens", "5", "--greedy", "--json"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const auto j = nlohmann::json::parse(r.out);
  EXPECT_LE(j["ids"].size(), 5u);
  EXPECT_TRUE(j["text"].is_string());
  // The prompt as the library renders it: llama template, one image of 4 rows.
  const auto model = mm::TinyLlavaModel::load(path("model"));
  const auto ids = model.prompt_ids({{"<image>\nWhat do you feel?", std::nullopt}});
  EXPECT_EQ(j["prompt_positions"].get<int64_t>(), static_cast<int64_t>(ids.size()) - 1 + 4);
  // Streaming prints the same text.
  auto s = run_cli({"mm", "generate", "--model", path("model"), "--image", kImage, "--prompt", "What do you feel?",
                    "--max-new-tokens", "5", "--greedy"});
  ASSERT_EQ(s.exit_code, 0) << s.err;
  EXPECT_EQ(s.out, j["text"].get<std::string>() + "\n");
  // Sampling (the default, temperature 0.2) is seeded.
  auto a = run_cli({"mm", "generate", "--model", path("model"), "--image", kImage, "--prompt", "Hi", "--max-new-tokens",
                    "6", "--seed", "3", "--json"});
  auto b = run_cli({"mm", "generate", "--model", path("model"), "--image", kImage, "--prompt", "Hi", "--max-new-tokens",
                    "6", "--seed", "3", "--json"});
  ASSERT_EQ(a.exit_code, 0) << a.err;
  EXPECT_EQ(nlohmann::json::parse(a.out)["ids"], nlohmann::json::parse(b.out)["ids"]);
}

TEST_F(MmCliModel, BadInputsAreClearErrors) {
  testing::TempDir tmp;
  // <image> markers and images disagree.
  {
    const auto io = SafetensorsFile::open(testing::fixture("tinyllava-tiny/io.safetensors"));
    const auto in = (tmp / "two_markers.safetensors").string();
    write_safetensors(in, {{"pixel_values", io.get("pixel_values")},
                           {"input_ids", Tensor::from_vector<int64_t>({5}, {1, -200, 45, -200, 7})}});
    expect_failure(run_cli({"mm", "logits", "--model", path("model"), "--inputs", in, "--out", (tmp / "o").string()}),
                   {"2 image placeholder", "1 image"});
    expect_failure(run_cli({"mm", "generate", "--model", path("model"), "--prompt", "look at <image> this",
                            "--max-new-tokens", "3"}),
                   {"1 image placeholder", "0 image"});
    expect_failure(run_cli({"mm", "generate", "--model", path("model"), "--prompt", "two", "--image", kImage, "--image",
                            kImage, "--max-new-tokens", "3"}),
                   {"1 image placeholder", "2 image"});
  }
  // An image missing.
  expect_failure(run_cli({"mm", "generate", "--model", path("model"), "--prompt", "hi", "--image",
                          (tmp / "nowhere.png").string(), "--max-new-tokens", "3"}),
                 {"nowhere.png"});
  // Unknown template or connector.
  expect_failure(run_cli({"mm", "generate", "--model", path("model"), "--prompt", "hi", "--image", kImage, "--template",
                          "vicuna_v1", "--max-new-tokens", "3"}),
                 {"vicuna_v1", "llama"});
  testing::copy_tinyllava_fixture("tinyllava-tiny", tmp / "qformer",
                                  [](nlohmann::json& c) { c["connector_type"] = "qformer"; }, false);
  expect_failure(run_cli({"mm", "generate", "--model", (tmp / "qformer").string(), "--inputs",
                          testing::fixture("tinyllava-tiny/io.safetensors").string(), "--max-new-tokens", "3"}),
                 {"connector_type \"qformer\"", "config.json"});
  // Parts that disagree: a connector wider than the LM.
  testing::copy_tinyllava_fixture("tinyllava-tiny", tmp / "wide", nullptr, false);
  testing::edit_tensors(tmp / "wide", [](NamedTensors& t) {
    for (auto& [name, tensor] : t) {
      if (name == "connector._connector.2.weight") tensor = Tensor::zeros(DType::F32, {80, 64});
      if (name == "connector._connector.2.bias") tensor = Tensor::zeros(DType::F32, {80});
    }
  });
  expect_failure(run_cli({"mm", "logits", "--model", (tmp / "wide").string(), "--inputs",
                          testing::fixture("tinyllava-tiny/io.safetensors").string(), "--out", (tmp / "o").string()}),
                 {"connector", "80 outputs", "hidden size is 64"});
  // A prompt past the context (generation that would run past it ends there
  // with finish_reason "length"; a prompt that does not fit is refused).
  testing::copy_tinyllava_fixture("tinyllava-tiny", tmp / "short", [](nlohmann::json& c) {
    c["text_config"]["max_position_embeddings"] = 4;
  }, false);
  expect_failure(run_cli({"mm", "generate", "--model", (tmp / "short").string(), "--inputs",
                          testing::fixture("tinyllava-tiny/io.safetensors").string(), "--max-new-tokens", "4",
                          "--greedy"}),
                 {"more than the model's context of 4", "max_position_embeddings"});
  // Not a TinyLLaVA folder; no tokenizer for a text prompt.
  expect_failure(run_cli({"mm", "generate", "--model", testing::fixture("llama-tiny").string(), "--inputs",
                          testing::fixture("tinyllava-tiny/io.safetensors").string(), "--max-new-tokens", "3"}),
                 {"model_type"});
  expect_failure(run_cli({"mm", "generate", "--model", testing::fixture("tinyllava-tiny").string(), "--prompt", "hi",
                          "--image", kImage, "--max-new-tokens", "3"}),
                 {"no tokenizer"});
}

TEST_F(MmCliModel, ReasonJsonAndLabels) {
  const std::vector<std::string> base = {"reason", "--model", path("model"), "--projector", path("projector.safetensors"),
                                         "--clip", path("clip"), "--image", kImage, "--greedy", "--max-new-tokens", "8",
                                         "--json"};
  auto r = run_cli(base);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  auto j = nlohmann::json::parse(r.out);
  const std::set<std::string> labels = {"anger", "joy", "fear"};
  EXPECT_TRUE(labels.count(j["label"].get<std::string>())) << j.dump();
  EXPECT_EQ(j["scores"].size(), 3u);
  EXPECT_TRUE(j["reasoning"].is_string());
  EXPECT_TRUE(j["lm_label"].is_string());
  EXPECT_TRUE(j["shared_forward"].get<bool>());  // the projector's CLIP is the model's tower
  for (const char* t : {"image_encode_s", "prefill_s", "time_to_first_token_s", "total_s"}) {
    EXPECT_GE(j["timings"][t].get<double>(), 0.0) << t;
  }
  // A subset of the projector's labels, and labels it never saw (LM anchors).
  auto args = base;
  args.insert(args.end(), {"--labels", "anger,joy"});
  r = run_cli(args);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(nlohmann::json::parse(r.out)["scores"].size(), 2u);
  args = base;
  args.insert(args.end(), {"--labels", "calm,excited,bored,tense"});
  r = run_cli(args);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  j = nlohmann::json::parse(r.out);
  EXPECT_EQ(j["scores"].size(), 4u);
  EXPECT_TRUE(j["scores"].contains("tense"));
  args = base;
  args.insert(args.end(), {"--labels", "calm,calm"});
  expect_failure(run_cli(args), {"\"calm\" is given twice"});
  // Streaming to a terminal-like stdout prints the explanation and both labels.
  r = run_cli({"reason", "--model", path("model"), "--projector", path("projector.safetensors"), "--clip", path("clip"),
               "--image", kImage, "--greedy", "--max-new-tokens", "4"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("label (projector): "), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("label (language model): "), std::string::npos) << r.out;
  // Without the projector's CLIP the tower has no projection to feed it.
  expect_failure(run_cli({"reason", "--model", path("model"), "--projector", path("projector.safetensors"), "--image",
                          kImage, "--max-new-tokens", "4"}),
                 {"no visual projection", "give the CLIP model"});
}

TEST_F(MmCliModel, ChatIsMultiTurnWithImages) {
  const std::string script = "/image " + kImage + "\nWhat is in the picture?\nAnd how does it feel?\n/reset\nHello\n";
  auto r = testing::run_cli_with_input({"chat", "--model", path("model"), "--projector", path("projector.safetensors"),
                                        "--clip", path("clip"), "--greedy", "--max-new-tokens", "4"},
                                       script);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("[" + kImage + ": "), std::string::npos) << r.out;
  // Three answers, one per question.
  EXPECT_GE(std::count(r.out.begin(), r.out.end(), '\n'), 4) << r.out;
  // A bad image is reported and the chat goes on.
  r = testing::run_cli_with_input({"chat", "--model", path("model"), "--greedy", "--max-new-tokens", "3"},
                                  "/image /no/such.png\nHi\n");
  EXPECT_NE(r.err.find("/no/such.png"), std::string::npos) << r.err;
  EXPECT_EQ(r.exit_code, 0);
}

TEST(MmCli, BenchPrintsJson) {
  testing::TempDir tmp;
  // A small random TinyLLaVA saved and benchmarked back (the path the PyTorch peer shares).
  testing::write_variant({"clip-tower", -2, "patch", "mlp2x_gelu", 32}, tmp / "m");
  auto r = run_cli({"mm", "bench", "--model", (tmp / "m").string(), "--dtype", "f32", "--gen-tokens", "4", "--runs",
                    "2", "--prefix-tokens", "5", "--question-tokens", "6", "--threads", "1", "--json"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const auto j = nlohmann::json::parse(r.out);
  for (const char* k : {"time_to_first_token_s", "total_s", "image_encode_s", "prefill_s", "decode_tokens_per_s"}) {
    EXPECT_GT(j[k].get<double>(), 0.0) << k;
  }
  EXPECT_EQ(j["threads"], 1);
  EXPECT_EQ(j["shapes"]["image_rows"], 4);          // 5 CLIP tokens, the class token dropped
  EXPECT_EQ(j["shapes"]["prompt_positions"], 15);   // 5 + 4 + 6
  EXPECT_EQ(j["reused_positions"], 5);              // the second image reuses the text before it
  expect_failure(run_cli({"mm", "bench", "--preset", "llava-7b", "--random-weights", "--json"}), {"llava-7b"});
}

}  // namespace
}  // namespace tinyemo
