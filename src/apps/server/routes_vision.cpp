// POST /v1/classify and POST /v1/embeddings: images to emotion scores (CLIP ->
// Metric Projector -> the nearest label anchor) and to CLIP embeddings.
#include <algorithm>
#include <numeric>

#include "routes.h"

namespace tinyemo::server {

using httplib::Request;
using httplib::Response;
using nlohmann::json;

namespace {

// One image's result as `tinyemo classify --json` prints it: {"predicted",
// "scores": {label: probability}, "top": [{label, probability, cosine,
// distance}] (the top_k nearest anchors, nearest first)}.
json classification_json(const VisionService::Output& out, size_t i, const LabelSet& set, int64_t top_k) {
  const size_t L = set.labels.size();
  const float* p = out.probabilities.data() + i * L;
  const float* c = out.cosines.data() + i * L;
  const float* d = out.distances.data() + i * L;
  json scores = json::object();
  for (size_t l = 0; l < L; ++l) scores[set.labels[l]] = p[l];
  std::vector<size_t> order(L);
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(), [d](size_t a, size_t b) { return d[a] < d[b]; });
  order.resize(std::min<size_t>(L, static_cast<size_t>(top_k)));
  json top = json::array();
  for (const size_t l : order) {
    top.push_back({{"label", set.labels[l]}, {"probability", p[l]}, {"cosine", c[l]}, {"distance", d[l]}});
  }
  return {{"predicted", set.labels[static_cast<size_t>(out.predicted[i])]}, {"scores", scores}, {"top", top}};
}

// The body through httplib's reader: whole for JSON, part by part (in the
// order sent) for a form.
ClassifyRequest read_classify_request(const Request& req, Response& res, const httplib::ContentReader& reader,
                                      const RequestLimits& limits) {
  const BodyKind kind = body_kind(req, /*multipart_ok=*/true);
  bool ok = true;
  if (kind == BodyKind::Multipart) {
    std::vector<FormPart> parts;
    const size_t max_parts = limits.max_images + 16;
    ok = reader(
        [&](const httplib::MultipartFormData& file) {
          if (parts.size() >= max_parts) return false;
          parts.push_back({file.name, file.filename, file.content_type, ""});
          return true;
        },
        [&](const char* data, size_t size) {
          if (parts.empty()) return false;
          parts.back().content.append(data, size);
          return true;
        });
    if (parts.size() >= max_parts) {
      throw HttpError(413, "too_many_images",
                      "the form has more than " + std::to_string(max_parts) + " parts (--max-images " +
                          std::to_string(limits.max_images) + ")");
    }
    if (ok) return parse_classify_form(parts, limits);
  } else {
    std::string body;
    ok = reader([&](const char* data, size_t size) {
      body.append(data, size);
      return true;
    });
    if (ok) return parse_classify_json(body, limits);
  }
  // httplib sets 413 when the body passed --max-body-mb.
  if (res.status == 413) throw HttpError(413, "body_too_large", "the request body is larger than --max-body-mb");
  throw bad_request("the request body could not be read (a malformed multipart body?)", "invalid_body");
}

}  // namespace

void handle_classify(ServerState& state, const Request& req, Response& res, const httplib::ContentReader& reader) {
  ClassifyRequest request = read_classify_request(req, res, reader, state.limits);
  require_ready(state);
  const Clock::time_point deadline = state.deadline();
  LoadedModels& models = state.models;
  const std::shared_ptr<const LabelSet> labels =
      request.labels ? models.label_sets->resolve(*request.labels) : models.label_sets->model_set();

  DecodedImages decoded(&state.pixels);
  decoded.decode(request.images, state.options.max_pixels, deadline);
  std::vector<te::image_ptr> images;
  for (auto& d : decoded.images) {
    if (d.image) images.push_back(std::move(d.image));
  }
  VisionService::Output out;
  if (!images.empty()) out = models.vision->run(std::move(images), labels, deadline);

  json results = json::array();
  size_t k = 0;  // index among the decoded images
  for (size_t i = 0; i < request.images.size(); ++i) {
    const std::string& name = request.images[i].name;
    if (!decoded.images[i].error.empty()) {
      results.push_back({{"image", name}, {"error", decoded.images[i].error}});
      continue;
    }
    if (!out.errors[k].empty()) {
      results.push_back({{"image", name}, {"error", name + ": " + out.errors[k]}});
    } else {
      json r = {{"image", name}};
      r.update(classification_json(out, k, *labels, request.top_k));
      results.push_back(std::move(r));
    }
    ++k;
  }
  send_json(res, 200,
            {{"clip", te_clip_description(models.clip.get())},
             {"projector", models.projector_id},
             {"labels", labels->labels},
             {"results", results}});
}

namespace {

// Text rows through CLIP's text tower, one request at a time (a handle is
// used by one thread at a time), waiting no longer than the request may.
std::vector<float> embed_texts(ServerState& state, const std::vector<std::string>& texts,
                               Clock::time_point deadline) {
  std::unique_lock<std::timed_mutex> turn(*state.models.clip_text_turn, std::defer_lock);
  if (!turn.try_lock_until(deadline)) {
    throw HttpError(503, "timeout", "the text tower stayed busy past the server's time limit (--timeout-s)", 1);
  }
  std::vector<const char*> list;
  for (const std::string& t : texts) list.push_back(t.c_str());
  const size_t dim = static_cast<size_t>(te_clip_text_embedding_dim(state.models.clip_text.get()));
  std::vector<float> rows(texts.size() * dim);
  const te_status status =
      te_clip_text_embed(state.models.clip_text.get(), list.data(), list.size(), rows.data(), rows.size());
  if (status == TE_ERROR_OUT_OF_MEMORY) throw HttpError(503, "out_of_memory", te_last_error(), 1);
  if (status == TE_ERROR_INTERNAL) throw HttpError(500, "internal_error", te_last_error());
  if (status != TE_OK) throw HttpError(400, "invalid_text", te_last_error());
  return rows;
}

}  // namespace

void handle_embeddings(ServerState& state, const Request& req, Response& res) {
  body_kind(req, /*multipart_ok=*/false);
  EmbeddingsRequest request = parse_embeddings_json(req.body, state.limits);
  require_ready(state);
  if (!request.texts.empty() && !state.models.clip_text) {
    const auto first = std::find_if(request.order.begin(), request.order.end(), [](const auto& o) { return o.is_text; });
    throw HttpError(422, "text_embeddings_unsupported",
                    "input[" + std::to_string(first - request.order.begin()) +
                        "] is text (not a data URI or base64 of an image): text embeddings need CLIP's text tower; "
                        "start the server with --clip-text");
  }
  const Clock::time_point deadline = state.deadline();
  const size_t dim = state.models.vision->embedding_dim();
  VisionService::Output images;
  if (!request.images.empty()) {
    DecodedImages decoded(&state.pixels);
    decoded.decode(request.images, state.options.max_pixels, deadline);
    std::vector<te::image_ptr> list;
    for (auto& d : decoded.images) {
      // Unlike classify (one entry per image), an embedding request fails as a whole.
      if (!d.error.empty()) {
        throw HttpError(d.error_status, d.error_status == 415 ? "unsupported_media_type" : "invalid_image", d.error);
      }
      list.push_back(std::move(d.image));
    }
    images = state.models.vision->run(std::move(list), nullptr, deadline);
    for (size_t i = 0; i < request.images.size(); ++i) {
      if (!images.errors[i].empty()) {
        throw HttpError(400, "invalid_image", request.images[i].name + ": " + images.errors[i]);
      }
    }
  }
  const std::vector<float> texts = request.texts.empty() ? std::vector<float>() : embed_texts(state, request.texts, deadline);
  json data = json::array();
  for (size_t i = 0; i < request.order.size(); ++i) {
    const EmbeddingsRequest::Item& item = request.order[i];
    const float* row = (item.is_text ? texts.data() : images.embeddings.data()) + item.index * dim;
    json entry = {{"object", "embedding"}, {"index", i}, {"input_type", item.is_text ? "text" : "image"}};
    if (request.base64) {
      entry["embedding"] = base64_encode(std::string_view(reinterpret_cast<const char*>(row), dim * sizeof(float)));
    } else {
      entry["embedding"] = std::vector<float>(row, row + dim);
    }
    data.push_back(std::move(entry));
  }
  const bool only_text = request.images.empty();
  send_json(res, 200,
            {{"object", "list"},
             {"data", data},
             {"model", only_text ? state.models.clip_text_id : state.models.clip_id},
             {"usage", {{"prompt_tokens", 0}, {"total_tokens", 0}}}});
}

}  // namespace tinyemo::server
