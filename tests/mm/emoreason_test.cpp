// TinyEmo's reasoning pipeline on the TinyLLaVA fixture: the projector's label
// from the same tower forward as the LM's image rows (checked against the
// pieces run one by one), the system prompt reused across images, separate
// towers when the projector's CLIP differs, and label sets (subset, LM anchors,
// refusals).
#include <gtest/gtest.h>

#include "io/image.h"
#include "mm/mm_fixtures.h"
#include "models/clip/preprocess.h"
#include "models/lm/embeddings.h"
#include "models/mm/emoreason.h"
#include "models/projector/classify.h"

namespace tinyemo {
namespace {

class EmoReason : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    tmp_ = new testing::TempDir();
    testing::copy_tinyllava_fixture("tinyllava-tiny", *tmp_ / "model");
    testing::write_clip_of_fixture("tinyllava-tiny", *tmp_ / "clip", 32);
    testing::write_projector(*tmp_ / "projector.safetensors", 32, 64, {"anger", "joy", "fear"});
    model_ = new mm::TinyLlavaModel(mm::TinyLlavaModel::load(*tmp_ / "model"));
  }
  static void TearDownTestSuite() {
    delete model_;
    delete tmp_;
  }
  static std::unique_ptr<clip::VisionModel> clip() {
    return std::make_unique<clip::VisionModel>(clip::VisionModel::load(*tmp_ / "clip"));
  }
  static projector::ProjectorModel projector() { return projector::ProjectorModel::load(*tmp_ / "projector.safetensors"); }
  static lm::GenerateOptions greedy(int64_t n) {
    lm::GenerateOptions g;
    g.max_new_tokens = n;
    g.sampling.greedy = true;
    return g;
  }
  static testing::TempDir* tmp_;
  static mm::TinyLlavaModel* model_;
};
testing::TempDir* EmoReason::tmp_ = nullptr;
mm::TinyLlavaModel* EmoReason::model_ = nullptr;

TEST_F(EmoReason, OneForwardServesBothHeads) {
  mm::EmoReasoner reasoner(*model_, projector(), clip());
  ASSERT_TRUE(reasoner.shared_forward());
  const Image image = load_image(testing::fixture("clip-preprocess/chelsea.png"));
  const mm::EmoReasonResult r = reasoner.reason(image, greedy(6));

  // The pieces one by one: the projector on the CLIP's image_embeds of the
  // model's pixels, the LM on the EmoReason prompt with the connector's rows.
  const auto clip_model = clip();
  const Tensor pixels = model_->preprocess(image);
  const Tensor embeds = clip_model->forward(pixels, {.hidden_states = false}).image_embeds;
  projector::ProjectorModel p = projector();
  const projector::Scores s = projector::classify(p, embeds.data<float>(), 1);
  EXPECT_EQ(r.label, p.labels()[s.predicted[0]]);
  ASSERT_EQ(r.scores.size(), 3u);
  for (int64_t l = 0; l < 3; ++l) EXPECT_NEAR(r.scores[l].second, s.probabilities[l], 1e-5);
  const std::string question = "<image>\n" + mm::emoreason_question(p.labels(), r.label);
  mm::MmSession session(*model_);
  const auto direct = session.generate(model_->prompt_ids({{question, std::nullopt}}),
                                       model_->encode_images(pixels), greedy(6));
  EXPECT_EQ(r.text, direct.answer);
  EXPECT_EQ(r.timings["reused_positions"], 0);

  // A second image reuses the system prompt's positions (BOS, system, "USER: ").
  Image other = image;
  for (auto& px : other.pixels) px = static_cast<uint8_t>(255 - px);
  const mm::EmoReasonResult r2 = reasoner.reason(other, greedy(6));
  const auto prefix = model_->prompt_ids({{"<image>\nx", std::nullopt}});
  const int64_t before_image = std::find(prefix.begin(), prefix.end(), -200) - prefix.begin();
  EXPECT_EQ(r2.timings["reused_positions"].get<int64_t>(), before_image);
  mm::EmoReasoner fresh(*model_, projector(), clip());
  EXPECT_EQ(fresh.reason(other, greedy(6)).text, r2.text);
}

TEST_F(EmoReason, ADifferentProjectorTowerRunsSeparately) {
  testing::TempDir dir;
  testing::write_clip_of_fixture("tinyllava-tiny", dir / "clip", 32);
  testing::edit_tensors(dir / "clip", [](NamedTensors& t) {
    for (auto& [name, tensor] : t) {
      if (name == "vision_model.encoder.layers.0.mlp.fc1.bias") tensor = testing::wavy(tensor.shape(), 0.1f, 1.0f);
    }
  });
  auto other_clip = std::make_unique<clip::VisionModel>(clip::VisionModel::load(dir / "clip"));
  const clip::VisionModel& tower = *other_clip;
  mm::EmoReasoner reasoner(*model_, projector(), std::move(other_clip));
  EXPECT_FALSE(reasoner.shared_forward());
  const Image image = load_image(testing::fixture("clip-preprocess/coffee.png"));
  const mm::EmoReasonResult r = reasoner.reason(image, greedy(3));
  // The projector's tower gets OpenAI's transform, as TinyEmo's features were computed.
  const Tensor embeds =
      tower.forward(clip::clip_preprocess(image, tower.config().image_size), {.hidden_states = false}).image_embeds;
  projector::ProjectorModel p = projector();
  EXPECT_EQ(r.label, p.labels()[projector::classify(p, embeds.data<float>(), 1).predicted[0]]);
  EXPECT_FALSE(r.shared_forward);
}

TEST_F(EmoReason, LabelSets) {
  mm::EmoReasoner reasoner(*model_, projector(), clip());
  reasoner.set_labels({"joy", "anger"});
  EXPECT_EQ(reasoner.labels(), (std::vector<std::string>{"joy", "anger"}));
  // Labels the projector never saw: the LM's anchors (its width is the projector's 64).
  reasoner.set_labels({"calm", "tense", "joy"});
  EXPECT_EQ(reasoner.labels().size(), 3u);
  const Image image = load_image(testing::fixture("clip-preprocess/rocket.jpg"));
  const auto r = reasoner.reason(image, greedy(2));
  EXPECT_TRUE(r.label == "calm" || r.label == "tense" || r.label == "joy") << r.label;
  EXPECT_THROW(reasoner.set_labels({"calm", "calm"}), Error);
  EXPECT_THROW(reasoner.set_labels({}), Error);
  // A projector mapping into another space cannot anchor new labels in the LM's.
  testing::TempDir dir;
  testing::write_projector(dir / "p16.safetensors", 32, 16, {"anger", "joy"});
  mm::EmoReasoner narrow(*model_, projector::ProjectorModel::load(dir / "p16.safetensors"), clip());
  try {
    narrow.set_labels({"calm"});
    ADD_FAILURE() << "anchored a 16-d projector in 64-d embeddings";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("16-d"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("64-d"), std::string::npos) << e.what();
  }
  // The projector's input must be the CLIP's image_embeds.
  testing::write_projector(dir / "p48.safetensors", 48, 64, {"anger", "joy"});
  EXPECT_THROW(mm::EmoReasoner(*model_, projector::ProjectorModel::load(dir / "p48.safetensors"), clip()), Error);
}

}  // namespace
}  // namespace tinyemo
