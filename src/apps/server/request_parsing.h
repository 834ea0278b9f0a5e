// Request bodies to typed requests, without sockets or models (so that the
// fuzzer and the unit tests call them directly): JSON bodies, multipart form
// parts, data URIs and base64. Every field is checked here and a bad one is an
// HttpError naming it; sizes are bounded by RequestLimits, never by what a
// request claims.
#pragma once

#include <cstddef>
#include <cstdint>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "http_error.h"

namespace tinyemo::server {

struct RequestLimits {
  size_t max_images = 32;        // images in one request
  size_t max_labels = 64;        // labels in one label set
  size_t max_label_bytes = 128;  // bytes of one label
  int64_t max_tokens = 4096;     // max_tokens a request may ask for
  size_t max_messages = 256;     // chat messages in one request
  size_t max_stop = 4;           // stop strings (OpenAI's limit)
  size_t max_stop_bytes = 256;   // bytes of one stop string
  size_t max_json_depth = 64;    // nesting of arrays and objects
};

// ---- base64 and data URIs

std::string base64_encode(std::string_view bytes);
// Standard or URL-safe alphabet, padding optional, ASCII whitespace skipped.
// False (and *out unspecified) when `text` is not base64.
bool base64_decode(std::string_view text, std::string* out);

// An image as a request carried it: its encoded bytes, or why they could not
// be read (the request goes on; the routes decide what an unreadable image means).
struct ImageInput {
  std::string name;   // what the errors call it: "images[2]", a form field's file name
  std::string bytes;  // the encoded file (JPEG, PNG, WebP: sniffed later, never trusted from a name)
  std::string error;  // non-empty: unreadable; `error_status` is 400 (bad data) or 415 (not an image type)
  int error_status = 0;
};

// "data:image/png;base64,..." or bare base64. A remote URL (http://, file://)
// is refused with HttpError 400 "remote_url": the server fetches nothing.
ImageInput read_image_ref(std::string_view ref, std::string name);

// ---- JSON bodies

// Parses a JSON body that must be an object; 400 "invalid_json" otherwise
// (also for nesting deeper than limits.max_json_depth).
nlohmann::json parse_json_object(std::string_view body, const RequestLimits& limits);

// A label set as a request names it; checked for size, emptiness and repeats.
std::vector<std::string> parse_label_list(const nlohmann::json& value, const std::string& field,
                                          const RequestLimits& limits);
// "a, b,c" (a form field) to the same.
std::vector<std::string> parse_label_text(std::string_view text, const std::string& field,
                                          const RequestLimits& limits);

// POST /v1/classify: {"images": [IMG, ...], "labels": [...], "top_k": K}.
struct ClassifyRequest {
  std::vector<ImageInput> images;
  std::optional<std::vector<std::string>> labels;
  int64_t top_k = 3;
};
ClassifyRequest parse_classify_json(std::string_view body, const RequestLimits& limits);

// A multipart/form-data part as the HTTP layer split it.
struct FormPart {
  std::string name, filename, content_type, content;
};
// Every part with a file name (or named image/images/file/files) is an image,
// in order; "labels" (comma-separated or a JSON array) and "top_k" are fields.
ClassifyRequest parse_classify_form(const std::vector<FormPart>& parts, const RequestLimits& limits);

// POST /v1/embeddings: {"input": IN | [IN, ...], "encoding_format": "float" | "base64"}
// where IN is an image (a data URI, {"url": ...}, or bare base64 of a JPEG,
// PNG, WebP or GIF file) or a text (any other string, for CLIP's text tower).
struct EmbeddingsRequest {
  struct Item {
    bool is_text = false;
    size_t index = 0;  // into `texts` or `images`
  };
  std::vector<ImageInput> images;
  std::vector<std::string> texts;
  std::vector<Item> order;  // the inputs in request order
  bool base64 = false;
};
// Bytes of one text input: CLIP reads 77 tokens, so nothing longer is useful,
// and tokenising one long word costs time quadratic in its length.
inline constexpr size_t kMaxEmbeddingTextBytes = 4096;
// A bare base64 string at least this long is taken for an image even when its
// bytes are not one (and refused as such): no useful text looks like that.
inline constexpr size_t kBase64ImageMinChars = 1024;
EmbeddingsRequest parse_embeddings_json(std::string_view body, const RequestLimits& limits);
// Whether an input string of /v1/embeddings is text (see EmbeddingsRequest).
bool is_embedding_text(std::string_view input);

// Sampling fields shared by chat and reasoning requests (OpenAI's names).
struct SamplingRequest {
  std::optional<double> temperature;  // [0, 2], 0: greedy; absent: the route's default
  double top_p = 1.0;                 // (0, 1]
  int64_t max_tokens = 0;             // 0: the route's default
  std::vector<std::string> stop;
  std::optional<uint64_t> seed;
  bool ignore_eos = false;  // llama-server's extension: generate past the end-of-sequence token
};

// POST /v1/chat/completions (OpenAI's schema).
struct ChatPart {
  bool is_image = false;
  std::string text;   // a text part
  ImageInput image;   // an image_url part
};
struct ChatMessage {
  std::string role;  // system, user, assistant ("developer" is read as system)
  std::vector<ChatPart> parts;
  size_t image_count() const;
};
struct ChatRequest {
  std::string model;
  std::vector<ChatMessage> messages;
  bool stream = false;
  bool include_usage = false;  // stream_options.include_usage
  SamplingRequest sampling;
  size_t image_count() const;
};
ChatRequest parse_chat_json(std::string_view body, const RequestLimits& limits);

// POST /v1/reason: {"image": IMG, "labels": [...], "stream": bool, sampling fields}.
struct ReasonRequest {
  ImageInput image;
  std::optional<std::vector<std::string>> labels;
  bool stream = false;
  SamplingRequest sampling;
};
ReasonRequest parse_reason_json(std::string_view body, const RequestLimits& limits);

}  // namespace tinyemo::server
