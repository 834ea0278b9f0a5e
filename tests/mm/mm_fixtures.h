// Model folders the multimodal tests (library and CLI) build from the shared
// fixtures: a TinyLLaVA fixture with a SentencePiece tokenizer of its
// vocabulary size trained here (the fixtures carry none), a CLIP folder holding
// the fixture's own tower plus a visual projection (TinyEmo's projector input),
// a Metric Projector, and TinyLLaVA checkpoints of unseen shapes (another
// vision_feature_layer, cls_patch, other connectors) with random weights.
#pragma once

#include <sentencepiece_trainer.h>

#include <cmath>
#include <filesystem>
#include <functional>
#include <nlohmann/json.hpp>
#include <ostream>
#include <string>
#include <vector>

#include "io/file.h"
#include "io/safetensors.h"
#include "models/lm/presets.h"
#include "models/mm/connector.h"
#include "models/projector/model.h"
#include "testing/testing.h"

namespace tinyemo::testing {

inline std::filesystem::path mm_data(const std::string& name) { return source_dir() / "tests/data/mm" / name; }

// A LLaMA-style SentencePiece model of `vocab_size` pieces (byte fallback
// needs 259 of them) trained on the tokenizer test corpus; serialized bytes.
inline std::string train_spm_model(int vocab_size) {
  const auto corpus = source_dir() / "tests/data/tokenizers/spm_corpus.txt";
  const std::string args = "--input=" + corpus.string() + " --model_type=bpe --vocab_size=" +
                           std::to_string(vocab_size) +
                           " --byte_fallback=true --split_digits=true --add_dummy_prefix=true"
                           " --remove_extra_whitespaces=false --normalization_rule_name=identity"
                           " --allow_whitespace_only_pieces=true --character_coverage=1.0 --num_threads=1"
                           " --unk_id=0 --bos_id=1 --eos_id=2 --pad_id=-1 --minloglevel=2";
  std::string serialized;
  const auto status = sentencepiece::SentencePieceTrainer::Train(args, nullptr, &serialized);
  if (!status.ok()) ADD_FAILURE() << "SentencePiece training failed: " << status.ToString();
  return serialized;
}

// `dir` := the fixture's config.json and weights, plus a tokenizer.model of
// the LM's vocabulary size (and `config_edit` applied to config.json).
inline void copy_tinyllava_fixture(const std::string& fixture_name, const std::filesystem::path& dir,
                                   const std::function<void(nlohmann::json&)>& config_edit = nullptr,
                                   bool with_tokenizer = true) {
  std::filesystem::create_directories(dir);
  auto config = nlohmann::json::parse(read_file(fixture(fixture_name + "/config.json")));
  if (config_edit) config_edit(config);
  write_file_atomic(dir / "config.json", config.dump(2));
  std::filesystem::copy_file(fixture(fixture_name + "/model.safetensors"), dir / "model.safetensors",
                             std::filesystem::copy_options::overwrite_existing);
  if (with_tokenizer) {
    write_file_atomic(dir / "tokenizer.model", train_spm_model(config["text_config"]["vocab_size"].get<int>()));
  }
}

// Rewrites `dir`/model.safetensors with `edit` applied to its tensors.
inline void edit_tensors(const std::filesystem::path& dir, const std::function<void(NamedTensors&)>& edit) {
  NamedTensors t;
  {
    const auto src = SafetensorsFile::open(dir / "model.safetensors");
    for (const auto& e : src.entries()) t.emplace_back(e.name, src.get(e.name).clone());
  }
  edit(t);
  write_safetensors(dir / "model.safetensors", t);
}

// A fixture's io.safetensors tensor `key` (token ids) as int64 values.
inline std::vector<int64_t> fixture_ids(const std::string& model, const std::string& key) {
  const auto io = SafetensorsFile::open(fixture(model + "/io.safetensors"));
  const Tensor t = io.get(key).to(DType::I64);
  return std::vector<int64_t>(t.data<int64_t>(), t.data<int64_t>() + t.numel());
}

// A tensor of token ids (any integer dtype) as int32 ids.
inline std::vector<int32_t> ids_of(const Tensor& t) {
  std::vector<int32_t> ids;
  const Tensor wide = t.to(DType::I64);
  for (int64_t i = 0; i < wide.numel(); ++i) ids.push_back(static_cast<int32_t>(wide.data<int64_t>()[i]));
  return ids;
}

// Deterministic non-trivial values in [-a, a].
inline Tensor wavy(Shape shape, float a, float phase) {
  Tensor t = Tensor::empty(DType::F32, std::move(shape));
  for (int64_t i = 0; i < t.numel(); ++i) t.mutable_data<float>()[i] = a * std::sin(0.37f * static_cast<float>(i) + phase);
  return t;
}

// A CLIPModel-style folder with the TinyLLaVA fixture's vision tower and a
// visual projection to `projection_dim` (the projector's CLIP: same tower).
inline void write_clip_of_fixture(const std::string& fixture_name, const std::filesystem::path& dir,
                                  int64_t projection_dim) {
  std::filesystem::create_directories(dir);
  const auto src = SafetensorsFile::open(fixture(fixture_name + "/model.safetensors"));
  const std::string prefix = "vision_tower._vision_tower.";
  NamedTensors t;
  int64_t width = 0;
  for (const auto& e : src.entries()) {
    if (e.name.rfind(prefix, 0) != 0) continue;
    t.emplace_back(e.name.substr(prefix.size()), src.get(e.name));
    if (e.name == prefix + "vision_model.post_layernorm.weight") width = e.shape[0];
  }
  t.emplace_back("visual_projection.weight", wavy({projection_dim, width}, 0.3f, 0.2f));
  write_safetensors(dir / "model.safetensors", t);
  const auto config = nlohmann::json::parse(read_file(fixture(fixture_name + "/config.json")));
  nlohmann::json clip = {{"architectures", {"CLIPModel"}},
                         {"model_type", "clip"},
                         {"projection_dim", projection_dim},
                         {"vision_config", config["vision_config"]}};
  write_file_atomic(dir / "config.json", clip.dump(2));
}

// A Metric Projector input -> hidden with deterministic weights and anchors.
inline std::filesystem::path write_projector(const std::filesystem::path& path, int64_t input, int64_t hidden,
                                             const std::vector<std::string>& labels) {
  projector::ProjectorConfig config;
  config.dims = {input, hidden};
  projector::ProjectorModel model(config, labels);
  projector::MlpWeights w(model.layout());
  for (size_t i = 0; i < w.params.size(); ++i) w.params[i] = 0.3f * std::sin(0.7f * static_cast<float>(i) + 0.1f);
  model.set_members({w});
  std::vector<float> anchors(labels.size() * static_cast<size_t>(hidden));
  for (size_t i = 0; i < anchors.size(); ++i) anchors[i] = std::cos(1.3f * static_cast<float>(i));
  model.set_anchors(labels, anchors);
  model.save(path);
  return path;
}

// A TinyLLaVA shape no fixture has: the vision tower of tests/data/mm/<tower>
// (whose io.safetensors holds every hidden state), a random connector, a
// random LLaMA LM `lm_hidden` wide; config values as given.
struct Variant {
  std::string tower;  // "clip-tower" or "siglip-tower"
  int64_t feature_layer = -2;
  std::string select = "patch";
  std::string connector = "mlp2x_gelu";
  int64_t lm_hidden = 32;
  std::string lm = "llama";  // or "qwen2", "gemma" (inserted rows scaled by sqrt(hidden) inside the LM)
};
// Names a variant in test output and ctest's test names (gtest would print the
// struct's bytes, heap pointers included, so the names would change per run).
inline void PrintTo(const Variant& v, std::ostream* os) {
  *os << v.tower << " layer " << v.feature_layer << " " << v.select << " " << v.connector << " hidden "
      << v.lm_hidden << " " << v.lm;
}

inline nlohmann::json variant_text_config(int64_t hidden, const std::string& lm = "llama") {
  nlohmann::json c = {{"architectures", {"LlamaForCausalLM"}},
          {"model_type", "llama"},
          {"hidden_act", "silu"},
          {"hidden_size", hidden},
          {"intermediate_size", 40},
          {"num_hidden_layers", 2},
          {"num_attention_heads", hidden / 8},
          {"num_key_value_heads", hidden / 8},
          {"rms_norm_eps", 1e-5},
          {"rope_theta", 10000.0},
          {"vocab_size", 96},
          {"max_position_embeddings", 128},
          {"tie_word_embeddings", false},
          {"bos_token_id", 1},
          {"eos_token_id", 2}};
  if (lm == "qwen2") {
    c["architectures"] = {"Qwen2ForCausalLM"};
    c["model_type"] = "qwen2";
    c["use_sliding_window"] = false;
    c["tie_word_embeddings"] = true;
  } else if (lm == "gemma") {
    c["architectures"] = {"GemmaForCausalLM"};
    c["model_type"] = "gemma";
    c["hidden_act"] = c["hidden_activation"] = "gelu_pytorch_tanh";
    c["head_dim"] = 12;
    c["num_key_value_heads"] = 1;
    c["tie_word_embeddings"] = true;
  }
  return c;
}

// Writes the folder; returns the connector it holds (for reference computations).
inline mm::Connector write_variant(const Variant& v, const std::filesystem::path& dir) {
  std::filesystem::create_directories(dir);
  NamedTensors t;
  const auto vision = SafetensorsFile::open(mm_data(v.tower) / "model.safetensors");
  for (const auto& e : vision.entries()) t.emplace_back("vision_tower._vision_tower." + e.name, vision.get(e.name));
  const auto vision_config = nlohmann::json::parse(read_file(mm_data(v.tower) / "config.json"));
  const int64_t vision_width = vision_config["hidden_size"];
  const nlohmann::json text = variant_text_config(v.lm_hidden, v.lm);
  const lm::LmModel lm = lm::random_lm(text, DType::F32, 5);
  for (const auto& [name, tensor] : lm.tensors()) t.emplace_back("language_model." + name, tensor);
  mm::Connector connector = mm::Connector::random(mm::parse_connector_type(v.connector, "variant"), vision_width,
                                                  v.lm_hidden, 11);
  for (auto& [name, tensor] : connector.named_tensors("connector._connector.")) t.emplace_back(name, tensor);
  write_safetensors(dir / "model.safetensors", t);
  const nlohmann::json config = {{"architectures", {"TinyLlavaForConditionalGeneration"}},
                                 {"model_type", "tinyllava"},
                                 {"connector_type", v.connector},
                                 {"hidden_size", v.lm_hidden},
                                 {"vision_hidden_size", vision_width},
                                 {"vision_feature_layer", v.feature_layer},
                                 {"vision_feature_select_strategy", v.select},
                                 {"image_token_index", -200},
                                 {"image_aspect_ratio", "square"},
                                 {"conv_version", "llama"},
                                 {"text_config", text},
                                 {"vision_config", vision_config}};
  write_file_atomic(dir / "config.json", config.dump(2));
  return connector;
}

}  // namespace tinyemo::testing
