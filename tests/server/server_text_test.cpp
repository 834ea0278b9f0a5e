// /v1/embeddings with CLIP's text tower (--clip-text): texts and images in one
// request, each row as the library gives it, the text rows as OpenAI's CLIP
// gives them (../shared/fixtures/clip-zeroshot-tiny), and the ways a text
// tower is refused at start.
#include <gtest/gtest.h>

#include "io/safetensors.h"
#include "server_fixtures.h"

namespace tinyemo::server_test {
namespace {

fs::path zero_shot_clip() { return fixture("clip-zeroshot-tiny"); }
fs::path vocab() { return testing::data("bpe_simple_vocab_16e6.txt.gz"); }

// The test's own base64 of a file, without the data URI's header.
std::string bare_base64(const fs::path& file) {
  const std::string uri = data_uri(file);
  return uri.substr(uri.find(',') + 1);
}

httplib::Result post(httplib::Client& c, const json& body) {
  return c.Post("/v1/embeddings", body.dump(), "application/json");
}

TEST(ServerTextEmbeddings, TextsAndImagesInOneRequest) {
  const Workspace& w = Workspace::get();
  testing::TempDir dir;
  const fs::path projector = dir.path() / "projector.safetensors";
  write_projector(projector, 8, {"anger", "joy"}, {}, /*input_dim=*/24);
  ServerProcess s({"--clip", zero_shot_clip().string(), "--projector", projector.string(), "--threads", "2",
                   "--clip-text", zero_shot_clip().string(), "--clip-vocab", vocab().string()});
  ASSERT_TRUE(s.wait_ready()) << s.log();
  auto c = s.client();

  const auto io = SafetensorsFile::open(zero_shot_clip() / "io.safetensors");
  const auto texts = json::parse(io.metadata().at("texts")).get<std::vector<std::string>>();
  const std::vector<float> want_text = io.get("text_embeds").to_f32_vector();
  const size_t dim = 24;
  ASSERT_GE(texts.size(), 2u);
  const auto r = post(c, {{"input", {texts[0], data_uri(w.images / "chelsea.png"), texts[1]}}});
  ASSERT_TRUE(r);
  ASSERT_EQ(r->status, 200) << r->body;
  const json got = json::parse(r->body);
  ASSERT_EQ(got["data"].size(), 3u);
  EXPECT_EQ(got["data"][0]["input_type"], "text");
  EXPECT_EQ(got["data"][1]["input_type"], "image");
  EXPECT_EQ(got["data"][2]["input_type"], "text");
  // Text rows: OpenAI's encode_text of the same strings, within the fixtures' 1e-4 relative.
  for (const auto& [entry, text] : {std::pair{0, 0}, std::pair{2, 1}}) {
    const auto row = got["data"][entry]["embedding"].get<std::vector<float>>();
    ASSERT_EQ(row.size(), dim);
    const std::vector<float> want(want_text.begin() + text * dim, want_text.begin() + (text + 1) * dim);
    EXPECT_LE(testing::rel_error(row, want), 1e-4) << "input " << entry;
  }
  // The image row: the library's te_clip_embed of the same file.
  te::Clip clip = te::Clip::load(zero_shot_clip().string());
  const te::Image image = te::Image::load((w.images / "chelsea.png").string());
  const std::vector<float> want_image = clip.embed({&image});
  const auto image_row = got["data"][1]["embedding"].get<std::vector<float>>();
  ASSERT_EQ(image_row.size(), dim);
  for (size_t k = 0; k < dim; ++k) EXPECT_NEAR(image_row[k], want_image[k], 1e-5f);

  // Bare base64 of an image file is an image; other base64-looking strings are text.
  const auto bare = post(c, {{"input", {bare_base64(w.images / "rocket.jpg"), "aGk="}}});
  ASSERT_TRUE(bare);
  ASSERT_EQ(bare->status, 200) << bare->body;
  EXPECT_EQ(json::parse(bare->body)["data"][0]["input_type"], "image");
  EXPECT_EQ(json::parse(bare->body)["data"][1]["input_type"], "text");
  const auto only_text = post(c, {{"input", "a photo evoking joy"}});
  ASSERT_TRUE(only_text);
  EXPECT_EQ(json::parse(only_text->body)["model"], "clip-zeroshot-tiny:text");

  // Bounded: one text of more than 4096 bytes is refused, as are token arrays.
  std::string long_text;
  while (long_text.size() <= 4096) long_text += "a photo evoking joy, ";
  auto refused = post(c, {{"input", long_text}});
  ASSERT_TRUE(refused);
  EXPECT_EQ(refused->status, 400) << refused->body;
  EXPECT_NE(refused->body.find("4096"), std::string::npos) << refused->body;
  refused = post(c, {{"input", {1, 2, 3}}});
  ASSERT_TRUE(refused);
  EXPECT_EQ(refused->status, 422) << refused->body;

  const auto models = c.Get("/v1/models");
  ASSERT_TRUE(models);
  const json m = json::parse(models->body);
  EXPECT_TRUE(m["capabilities"]["text_embeddings"].get<bool>());
  bool listed = false;
  for (const auto& model : m["data"]) listed = listed || (model["kind"] == "clip_text" && model["embedding_dim"] == 24);
  EXPECT_TRUE(listed) << models->body;
  EXPECT_EQ(s.stop(), 0) << s.log();
}

TEST(ServerTextEmbeddings, ATextTowerThatDoesNotFitIsRefusedAtStart) {
  const Workspace& w = Workspace::get();
  // clip-vision-small gives 48-d image embeddings, the zero-shot model's text tower 24-d.
  ServerProcess mismatched(base_args({"--clip-text", zero_shot_clip().string(), "--clip-vocab", vocab().string()}));
  EXPECT_FALSE(mismatched.wait_ready());
  EXPECT_NE(mismatched.stop(), 0);
  EXPECT_NE(mismatched.log().find("not one CLIP model's towers"), std::string::npos) << mismatched.log();
  // No vocabulary beside the model, none given.
  ServerProcess no_vocab(base_args({"--clip-text", zero_shot_clip().string()}));
  EXPECT_FALSE(no_vocab.wait_ready());
  EXPECT_NE(no_vocab.stop(), 0);
  EXPECT_NE(no_vocab.log().find("--clip-text"), std::string::npos) << no_vocab.log();
  EXPECT_NE(no_vocab.log().find("merges.txt"), std::string::npos) << no_vocab.log();
  (void)w;
}

}  // namespace
}  // namespace tinyemo::server_test
