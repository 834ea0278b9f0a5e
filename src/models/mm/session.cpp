#include "models/mm/session.h"

#include <chrono>
#include <cstring>

#include "core/error.h"

namespace tinyemo::mm {

namespace {

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

}  // namespace

lm::GenerateOptions default_generate_options() {
  lm::GenerateOptions o;
  o.max_new_tokens = 512;
  o.sampling.greedy = false;
  o.sampling.temperature = 0.2f;
  o.sampling.top_k = 50;
  o.sampling.top_p = 1.0f;
  return o;
}

MmSession::MmSession(const TinyLlavaModel& model) : model_(model), lm_(model.lm()) {}

void MmSession::reset() {
  lm_.reset();
  entries_.clear();
  images_.clear();
}

std::vector<MmSession::Entry> MmSession::entries_of(std::span<const int32_t> ids, const std::vector<Tensor>& images,
                                                    int64_t limit) const {
  std::vector<Entry> out;
  int32_t image = 0;
  for (int32_t id : ids) {
    if (static_cast<int64_t>(out.size()) >= limit) break;
    if (id != model_.config().image_token_index) {
      out.push_back({id, -1, 0});
      continue;
    }
    for (int64_t r = 0; r < images.at(image).dim(0) && static_cast<int64_t>(out.size()) < limit; ++r) {
      out.push_back({0, image, r});
    }
    ++image;
  }
  return out;
}

int64_t MmSession::rewind_to_common_prefix(const std::vector<Entry>& entries, const std::vector<Tensor>& images) {
  const size_t held = std::min<size_t>(entries_.size(), static_cast<size_t>(lm_.length()));
  const size_t n = std::min(held, entries.size());
  const int64_t width = model_.lm().config().hidden;
  size_t i = 0;
  for (; i < n; ++i) {
    const Entry& a = entries_[i];
    const Entry& b = entries[i];
    if ((a.image < 0) != (b.image < 0)) break;
    if (a.image < 0) {
      if (a.id != b.id) break;
      continue;
    }
    // Image rows match when their values do (bit for bit).
    const float* ra = images_[a.image].data<float>() + a.row * width;
    const float* rb = images[b.image].data<float>() + b.row * width;
    if (std::memcmp(ra, rb, sizeof(float) * static_cast<size_t>(width)) != 0) break;
  }
  // Leave at least one position to feed: its logits start the generation.
  const int64_t common = std::min<int64_t>(static_cast<int64_t>(i), static_cast<int64_t>(entries.size()) - 1);
  lm_.truncate(common);
  return common;
}

Tensor MmSession::logits(std::span<const int32_t> ids, const std::vector<Tensor>& image_features, bool all_positions) {
  const SplicedInput in = model_.splice(ids, image_features);
  std::vector<Entry> entries = entries_of(ids, image_features, in.embeddings.dim(0));
  Tensor out;
  if (all_positions) {
    lm_.reset();
    out = lm_.forward(in.embeddings, /*all_positions=*/true);
  } else {
    const int64_t common = rewind_to_common_prefix(entries, image_features);
    out = lm_.forward(in.embeddings.rows(common, in.embeddings.dim(0)).clone(), /*all_positions=*/false);
  }
  entries_ = std::move(entries);
  images_ = image_features;
  return out;
}

MmGenerateResult MmSession::generate(std::span<const int32_t> ids, const std::vector<Tensor>& image_features,
                                     lm::GenerateOptions options) {
  const auto t0 = std::chrono::steady_clock::now();
  MmGenerateResult r;
  const SplicedInput in = model_.splice(ids, image_features);
  r.prompt_positions = in.embeddings.dim(0);
  r.truncated = in.truncated;
  std::vector<Entry> entries = entries_of(ids, image_features, in.embeddings.dim(0));
  const std::string stop = model_.conversation().stop;
  if (options.tokenizer == nullptr && model_.tokenizer() != nullptr) options.tokenizer = model_.tokenizer();
  if (options.stop_at_eos && options.stop_strings.empty() && options.tokenizer != nullptr && !stop.empty())
    options.stop_strings = {stop};

  // Feed from the first position the cache does not hold.
  entries_.resize(std::min<size_t>(entries_.size(), static_cast<size_t>(lm_.length())));
  const int64_t common = rewind_to_common_prefix(entries, image_features);
  r.reused_positions = common;
  entries_.clear();  // until the generation finishes, the session's content is the new prompt's
  const Tensor suffix = in.embeddings.rows(common, in.embeddings.dim(0)).clone();
  std::vector<int32_t> seen;
  for (int32_t id : ids) {
    if (id != model_.config().image_token_index) seen.push_back(id);
  }
  double first = -1.0;
  auto user_callback = options.on_token;
  options.on_token = [&](int32_t id, std::string_view text) {
    if (first < 0) first = seconds_since(t0);
    return user_callback ? user_callback(id, text) : true;
  };
  r.generated = lm::generate(lm_, suffix, seen, options);
  r.total_s = seconds_since(t0);
  r.prefill_s = first < 0 ? r.total_s : first;
  r.decode_s = r.total_s - r.prefill_s;

  // The session now holds the prompt and the generated ids but the last.
  entries_ = std::move(entries);
  images_ = image_features;
  for (int64_t j = 0; static_cast<int64_t>(entries_.size()) < lm_.length(); ++j) {
    entries_.push_back({r.generated.ids.at(static_cast<size_t>(j)), -1, 0});
  }
  std::string answer = python_strip(r.generated.text);
  if (!stop.empty() && answer.size() >= stop.size() && answer.compare(answer.size() - stop.size(), stop.size(), stop) == 0)
    answer.resize(answer.size() - stop.size());
  r.answer = python_strip(answer);
  return r;
}

Chat::Chat(const TinyLlavaModel& model) : session_(model) {}

void Chat::add_image(Tensor image_features) {
  TE_CHECK(pending_.empty(),
           "an image is already waiting for the next question (TinyLLaVA's templates put one image in a question)");
  pending_.push_back(std::move(image_features));
}

MmGenerateResult Chat::ask(const std::string& question, const lm::GenerateOptions& options) {
  std::string q = question;
  if (!pending_.empty()) q = std::string(kImageMarker) + "\n" + q;
  turns_.push_back({q, std::nullopt});
  const size_t images_before = images_.size();
  images_.insert(images_.end(), pending_.begin(), pending_.end());
  try {
    const std::vector<int32_t> ids = session_.model().prompt_ids(turns_);
    MmGenerateResult r = session_.generate(ids, images_, options);
    turns_.back().answer = r.answer;
    pending_.clear();
    return r;
  } catch (...) {
    turns_.pop_back();
    images_.resize(images_before);
    throw;
  }
}

void Chat::clear() {
  turns_.clear();
  images_.clear();
  pending_.clear();
  session_.reset();
}

}  // namespace tinyemo::mm
