#include "models/mm/emoreason.h"

#include <algorithm>
#include <chrono>
#include <cstring>
#include <set>

#include "core/error.h"
#include "models/clip/preprocess.h"
#include "models/lm/embeddings.h"
#include "models/projector/classify.h"

namespace tinyemo::mm {

namespace {

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

// Python's repr() of a str (quotes chosen as Python chooses them).
std::string python_repr(const std::string& s) {
  const bool has_single = s.find('\'') != std::string::npos, has_double = s.find('"') != std::string::npos;
  const char quote = has_single && !has_double ? '"' : '\'';
  std::string out(1, quote);
  for (const char ch : s) {
    const auto c = static_cast<unsigned char>(ch);
    if (ch == quote || ch == '\\') {
      out += '\\';
      out += ch;
    } else if (ch == '\n') {
      out += "\\n";
    } else if (ch == '\r') {
      out += "\\r";
    } else if (ch == '\t') {
      out += "\\t";
    } else if (c < 0x20 || c == 0x7F) {
      out += fmt::format("\\x{:02x}", c);
    } else {
      out += ch;
    }
  }
  return out + quote;
}

std::string lower(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return s;
}

bool same_tensor(const Tensor& a, const Tensor& b) {
  return a.dtype() == b.dtype() && a.shape() == b.shape() && a.nbytes() == b.nbytes() &&
         std::memcmp(a.raw(), b.raw(), a.nbytes()) == 0;
}

}  // namespace

std::string emoreason_question(const std::vector<std::string>& labels, const std::string& label) {
  std::string list = "[";
  for (size_t i = 0; i < labels.size(); ++i) list += (i ? ", " : "") + python_repr(labels[i]);
  list += "]";
  return "Provide emotional reasoning about the image, on what you feel and how is the depicted emotion. Also choose "
         "the emotion that best corresponds to the image from the following options:\n\nLabels: " +
         list + "\n\nImportant: note that the correct label is " + label + ".";
}

EmoReasonAnswer parse_emoreason_answer(const std::string& text, const std::vector<std::string>& labels) {
  EmoReasonAnswer a;
  const std::string low = lower(text);
  const std::string key = "predicted label:";
  const size_t at = low.rfind(key);
  std::string before = at == std::string::npos ? text : text.substr(0, at);
  if (at != std::string::npos) {
    std::string after = text.substr(at + key.size());
    after = after.substr(0, after.find('\n'));
    after = python_strip(after);
    // "Y." / "**Y**" / "'Y'": keep the label's own characters.
    while (!after.empty() && std::string(".*'\"[]").find(after.back()) != std::string::npos) after.pop_back();
    size_t lead = 0;
    while (lead < after.size() && std::string("*'\"[").find(after[lead]) != std::string::npos) ++lead;
    a.lm_label = python_strip(after.substr(lead));
    for (const auto& l : labels) {
      if (lower(l) == lower(a.lm_label)) a.lm_label = l;
    }
  }
  before = python_strip(before);
  if (lower(before).rfind("reasoning:", 0) == 0) before = before.substr(std::string("reasoning:").size());
  a.reasoning = python_strip(before);
  return a;
}

nlohmann::json EmoReasonResult::to_json() const {
  nlohmann::json s = nlohmann::json::object();
  for (const auto& [l, p] : scores) s[l] = p;
  return {{"label", label},         {"scores", s},         {"reasoning", reasoning},
          {"lm_label", lm_label},   {"agreement", agreement}, {"text", text},
          {"shared_forward", shared_forward}, {"timings", timings}};
}

bool same_vision_tower(const clip::VisionModel& a, const clip::VisionModel& b) {
  const clip::VisionConfig &x = a.config(), &y = b.config();
  if (x.family != y.family || x.hidden_size != y.hidden_size || x.intermediate_size != y.intermediate_size ||
      x.num_layers != y.num_layers || x.num_heads != y.num_heads || x.num_channels != y.num_channels ||
      x.image_size != y.image_size || x.patch_size != y.patch_size || x.layer_norm_eps != y.layer_norm_eps ||
      x.activation != y.activation)
    return false;
  const clip::VisionWeights &u = a.weights(), &v = b.weights();
  if (!same_tensor(u.patch, v.patch) || u.patch_bias != v.patch_bias || u.class_embedding != v.class_embedding ||
      u.position_embedding != v.position_embedding || u.pre_ln_weight != v.pre_ln_weight ||
      u.pre_ln_bias != v.pre_ln_bias)
    return false;
  for (size_t i = 0; i < u.layers.size(); ++i) {
    const clip::LayerWeights &p = u.layers[i], &q = v.layers[i];
    if (!same_tensor(p.q, q.q) || !same_tensor(p.k, q.k) || !same_tensor(p.v, q.v) || !same_tensor(p.out, q.out) ||
        !same_tensor(p.fc1, q.fc1) || !same_tensor(p.fc2, q.fc2) || p.q_bias != q.q_bias || p.k_bias != q.k_bias ||
        p.v_bias != q.v_bias || p.out_bias != q.out_bias || p.fc1_bias != q.fc1_bias || p.fc2_bias != q.fc2_bias ||
        p.ln1_weight != q.ln1_weight || p.ln1_bias != q.ln1_bias || p.ln2_weight != q.ln2_weight ||
        p.ln2_bias != q.ln2_bias)
      return false;
  }
  return true;
}

EmoReasoner::EmoReasoner(const TinyLlavaModel& model, projector::ProjectorModel projector,
                         std::unique_ptr<clip::VisionModel> projector_clip)
    : model_(model), projector_(std::move(projector)), clip_(std::move(projector_clip)), session_(model) {
  const clip::VisionModel& embeds_tower = clip_ ? *clip_ : model_.vision();
  TE_CHECK(embeds_tower.config().projection_dim > 0,
           "the projector takes {}-d CLIP image_embeds, and the TinyLLaVA vision tower has no visual projection: "
           "give the CLIP model the projector was trained on",
           projector_.input_dim());
  TE_CHECK(embeds_tower.config().projection_dim == projector_.input_dim(),
           "the CLIP model gives {}-d image_embeds, but the projector takes {}-d features",
           embeds_tower.config().projection_dim, projector_.input_dim());
  shared_ = !clip_ || same_vision_tower(*clip_, model_.vision());
}

void EmoReasoner::set_labels(const std::vector<std::string>& labels) {
  TE_CHECK(!labels.empty(), "no labels given");
  std::set<std::string> seen;
  for (const auto& l : labels) {
    TE_CHECK(!l.empty(), "an empty label in the label list");
    TE_CHECK(seen.insert(l).second, "label \"{}\" is given twice", l);
  }
  const auto& known = projector_.labels();
  const bool subset = std::all_of(labels.begin(), labels.end(),
                                  [&](const std::string& l) { return std::find(known.begin(), known.end(), l) != known.end(); });
  if (subset) {
    projector::restrict_labels(projector_, labels);
    return;
  }
  const lm::LmModel& lm = model_.lm();
  TE_CHECK(projector_.hidden_dim() == lm.config().hidden,
           "labels outside the projector's set need anchors: the projector maps into a {}-d space, but the language "
           "model's embeddings are {}-d (give --anchors built for the projector instead)",
           projector_.hidden_dim(), lm.config().hidden);
  const lm::Tokenizer& tokenizer = model_.require_tokenizer();
  std::vector<float> rows;
  for (const auto& l : labels) {
    const std::vector<float> row = label_anchor(lm, tokenizer, l).to_f32_vector();
    rows.insert(rows.end(), row.begin(), row.end());
  }
  projector_.set_anchors(labels, std::move(rows));
}

EmoReasonResult EmoReasoner::reason(const Image& image, const lm::GenerateOptions& options) {
  const auto t0 = std::chrono::steady_clock::now();
  EmoReasonResult r;
  r.shared_forward = shared_;
  const Tensor pixels = model_.preprocess(image);
  Tensor embeds, hidden;
  if (shared_) {
    const clip::VisionModel& tower = clip_ ? *clip_ : model_.vision();
    clip::VisionOutputs out = tower.forward(
        pixels, {.hidden_states = false},
        clip::FeatureRequest{.layer = model_.config().vision_feature_layer, .pooled = true});
    embeds = std::move(out.image_embeds);
    hidden = std::move(out.feature_hidden_state);
  } else {
    hidden = model_.vision_hidden_state(pixels);
    // The projector's own tower, with the OpenAI transform TinyEmo's features were computed with.
    const Tensor clip_pixels = clip::clip_preprocess(image, clip_->config().image_size);
    embeds = clip_->forward(clip_pixels, {.hidden_states = false}).image_embeds;
  }
  const std::vector<Tensor> features = model_.image_features_from_hidden(hidden);
  const double encoded = seconds_since(t0);

  const projector::Scores s = projector::classify(projector_, embeds.data<float>(), 1);
  const auto& labels = projector_.labels();
  r.label = labels[s.predicted[0]];
  for (int64_t l = 0; l < s.labels; ++l) r.scores.emplace_back(labels[l], s.probabilities[l]);
  const double projected = seconds_since(t0);

  const std::string question = std::string(kImageMarker) + "\n" + emoreason_question(labels, r.label);
  const std::vector<int32_t> ids = model_.prompt_ids({{question, std::nullopt}});
  const MmGenerateResult g = session_.generate(ids, features, options);
  r.text = g.answer;
  const EmoReasonAnswer a = parse_emoreason_answer(g.answer, labels);
  r.reasoning = a.reasoning;
  r.lm_label = a.lm_label;
  r.agreement = !a.lm_label.empty() && lower(a.lm_label) == lower(r.label);
  r.timings = {{"image_encode_s", encoded},
               {"projector_s", projected - encoded},
               {"prefill_s", g.prefill_s},
               {"decode_s", g.decode_s},
               {"time_to_first_token_s", projected + g.prefill_s},
               {"total_s", seconds_since(t0)},
               {"generated_tokens", g.generated.ids.size()},
               {"prompt_positions", g.prompt_positions},
               {"reused_positions", g.reused_positions},
               {"finish_reason", g.generated.finish_reason}};
  return r;
}

}  // namespace tinyemo::mm
