#include "request_parsing.h"

#include <algorithm>
#include <array>
#include <cmath>
#include <set>

namespace tinyemo::server {

namespace {

using nlohmann::json;

// -1: not a base64 digit; -2: skipped (whitespace).
constexpr std::array<int8_t, 256> make_base64_table() {
  std::array<int8_t, 256> t{};
  for (auto& v : t) v = -1;
  const char* digits = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
  for (int i = 0; i < 62; ++i) t[static_cast<unsigned char>(digits[i])] = static_cast<int8_t>(i);
  t['+'] = t['-'] = 62;
  t['/'] = t['_'] = 63;
  t[' '] = t['\t'] = t['\n'] = t['\r'] = t['\f'] = t['\v'] = -2;
  return t;
}
constexpr std::array<int8_t, 256> kBase64 = make_base64_table();

bool starts_with_ci(std::string_view s, std::string_view prefix) {
  if (s.size() < prefix.size()) return false;
  for (size_t i = 0; i < prefix.size(); ++i) {
    if (std::tolower(static_cast<unsigned char>(s[i])) != prefix[i]) return false;
  }
  return true;
}

std::string lower(std::string_view s) {
  std::string out(s);
  std::transform(out.begin(), out.end(), out.begin(), [](unsigned char c) { return std::tolower(c); });
  return out;
}

std::string_view trim(std::string_view s) {
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.front()))) s.remove_prefix(1);
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back()))) s.remove_suffix(1);
  return s;
}

// The deepest nesting of arrays and objects, stopping early past `limit`
// (nlohmann builds a tree for any depth; a body of '[' would be refused only
// after allocating a node per byte).
size_t json_depth(std::string_view body, size_t limit) {
  size_t depth = 0, deepest = 0;
  bool in_string = false, escaped = false;
  for (const char c : body) {
    if (in_string) {
      if (escaped) {
        escaped = false;
      } else if (c == '\\') {
        escaped = true;
      } else if (c == '"') {
        in_string = false;
      }
      continue;
    }
    if (c == '"') {
      in_string = true;
    } else if (c == '[' || c == '{') {
      deepest = std::max(deepest, ++depth);
      if (deepest > limit) return deepest;
    } else if ((c == ']' || c == '}') && depth > 0) {
      --depth;
    }
  }
  return deepest;
}

std::string type_name(const json& v) { return v.type_name(); }

const json* field(const json& object, const char* name) {
  const auto it = object.find(name);
  return it == object.end() || it->is_null() ? nullptr : &*it;
}

bool get_bool(const json& object, const char* name, bool fallback) {
  const json* v = field(object, name);
  if (v == nullptr) return fallback;
  if (!v->is_boolean()) throw bad_request(std::string("\"") + name + "\" must be true or false", "invalid_value");
  return v->get<bool>();
}

double get_number(const json& object, const char* name, double lo, double hi, double fallback) {
  const json* v = field(object, name);
  if (v == nullptr) return fallback;
  if (!v->is_number()) {
    throw bad_request(std::string("\"") + name + "\" must be a number, not " + type_name(*v), "invalid_value");
  }
  const double x = v->get<double>();
  if (!std::isfinite(x) || x < lo || x > hi) {
    throw bad_request(std::string("\"") + name + "\" must be in [" + json(lo).dump() + ", " + json(hi).dump() + "]",
                      "invalid_value");
  }
  return x;
}

int64_t get_integer(const json& object, const char* name, int64_t lo, int64_t hi, int64_t fallback) {
  const json* v = field(object, name);
  if (v == nullptr) return fallback;
  if (!v->is_number_integer()) {
    throw bad_request(std::string("\"") + name + "\" must be an integer", "invalid_value");
  }
  // Unsigned values past int64 read as negative through get<int64_t>.
  if (v->is_number_unsigned() && v->get<uint64_t>() > static_cast<uint64_t>(hi)) {
    throw bad_request(std::string("\"") + name + "\" must be at most " + std::to_string(hi), "invalid_value");
  }
  const int64_t x = v->get<int64_t>();
  if (x < lo || x > hi) {
    throw bad_request(std::string("\"") + name + "\" must be in [" + std::to_string(lo) + ", " + std::to_string(hi) +
                          "]",
                      "invalid_value");
  }
  return x;
}

std::string get_string(const json& object, const char* name) {
  const json* v = field(object, name);
  if (v == nullptr) return "";
  if (!v->is_string()) throw bad_request(std::string("\"") + name + "\" must be a string", "invalid_value");
  return v->get<std::string>();
}

// An image given as a string, {"url": ...}, or OpenAI's {"image_url": {"url": ...}} / {"image_url": "..."}.
ImageInput image_from_json(const json& v, const std::string& name) {
  if (v.is_string()) return read_image_ref(v.get_ref<const std::string&>(), name);
  if (v.is_object()) {
    if (const json* url = field(v, "url"); url != nullptr && url->is_string()) {
      return read_image_ref(url->get_ref<const std::string&>(), name);
    }
    if (const json* inner = field(v, "image_url"); inner != nullptr) return image_from_json(*inner, name);
  }
  throw bad_request(name + " must be a data URI or base64 string (or {\"url\": ...})", "invalid_value");
}

void check_image_count(size_t n, const RequestLimits& limits) {
  if (n > limits.max_images) {
    throw HttpError(413, "too_many_images",
                    std::to_string(n) + " images in one request; this server takes at most " +
                        std::to_string(limits.max_images) + " (--max-images)");
  }
}

SamplingRequest parse_sampling(const json& body, const RequestLimits& limits) {
  SamplingRequest s;
  if (field(body, "temperature") != nullptr) s.temperature = get_number(body, "temperature", 0.0, 2.0, 1.0);
  s.top_p = get_number(body, "top_p", 0.0, 1.0, 1.0);
  if (s.top_p <= 0.0) throw bad_request("\"top_p\" must be in (0, 1]", "invalid_value");
  // OpenAI's newer name first; both mean the same.
  const char* name = field(body, "max_completion_tokens") != nullptr ? "max_completion_tokens" : "max_tokens";
  s.max_tokens = get_integer(body, name, 1, limits.max_tokens, 0);
  if (const json* stop = field(body, "stop")) {
    std::vector<json> items;
    if (stop->is_string()) {
      items.push_back(*stop);
    } else if (stop->is_array()) {
      items.assign(stop->begin(), stop->end());
    } else {
      throw bad_request("\"stop\" must be a string or an array of strings", "invalid_value");
    }
    if (items.size() > limits.max_stop) {
      throw bad_request("\"stop\" holds " + std::to_string(items.size()) + " strings, at most " +
                            std::to_string(limits.max_stop) + " are allowed",
                        "invalid_value");
    }
    for (const json& item : items) {
      if (!item.is_string() || item.get_ref<const std::string&>().empty() ||
          item.get_ref<const std::string&>().size() > limits.max_stop_bytes) {
        throw bad_request("\"stop\" entries must be non-empty strings of at most " +
                              std::to_string(limits.max_stop_bytes) + " bytes",
                          "invalid_value");
      }
      s.stop.push_back(item.get<std::string>());
    }
  }
  if (const json* seed = field(body, "seed")) {
    if (!seed->is_number_integer()) throw bad_request("\"seed\" must be an integer", "invalid_value");
    s.seed = seed->is_number_unsigned() ? seed->get<uint64_t>() : static_cast<uint64_t>(seed->get<int64_t>());
  }
  s.ignore_eos = get_bool(body, "ignore_eos", false);
  return s;
}

void check_single_choice(const json& body) {
  if (get_integer(body, "n", 1, 1'000'000, 1) != 1) {
    throw bad_request("\"n\": only one choice per request is supported", "unsupported_value");
  }
}

}  // namespace

// ---- base64 and data URIs

std::string base64_encode(std::string_view bytes) {
  static const char* digits = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  out.reserve((bytes.size() + 2) / 3 * 4);
  size_t i = 0;
  for (; i + 3 <= bytes.size(); i += 3) {
    const uint32_t v = static_cast<uint8_t>(bytes[i]) << 16 | static_cast<uint8_t>(bytes[i + 1]) << 8 |
                       static_cast<uint8_t>(bytes[i + 2]);
    out += digits[v >> 18];
    out += digits[(v >> 12) & 63];
    out += digits[(v >> 6) & 63];
    out += digits[v & 63];
  }
  if (i < bytes.size()) {
    const bool two = i + 1 < bytes.size();
    const uint32_t v = static_cast<uint8_t>(bytes[i]) << 16 | (two ? static_cast<uint8_t>(bytes[i + 1]) << 8 : 0);
    out += digits[v >> 18];
    out += digits[(v >> 12) & 63];
    out += two ? digits[(v >> 6) & 63] : '=';
    out += '=';
  }
  return out;
}

bool base64_decode(std::string_view text, std::string* out) {
  out->clear();
  out->reserve(text.size() / 4 * 3 + 3);
  uint32_t acc = 0;
  int bits = 0;
  size_t digits = 0, padding = 0;
  for (const char ch : text) {
    const int8_t v = kBase64[static_cast<unsigned char>(ch)];
    if (v == -2) continue;
    if (ch == '=') {
      ++padding;
      continue;
    }
    if (v < 0 || padding > 0) return false;  // a stray byte, or data after padding
    acc = (acc << 6) | static_cast<uint32_t>(v);
    bits += 6;
    ++digits;
    if (bits >= 8) {
      bits -= 8;
      out->push_back(static_cast<char>((acc >> bits) & 0xFF));
    }
  }
  // A lone digit in the last group carries no whole byte; padding must
  // complete the group when present.
  if (digits % 4 == 1) return false;
  if (padding > 0 && (digits + padding) % 4 != 0) return false;
  return digits > 0;
}

ImageInput read_image_ref(std::string_view ref, std::string name) {
  ImageInput in;
  in.name = std::move(name);
  const std::string_view trimmed = trim(ref);
  if (starts_with_ci(trimmed, "data:")) {
    const size_t comma = trimmed.find(',');
    if (comma == std::string_view::npos) {
      in.error = in.name + ": a data URI without ',' before its data";
      in.error_status = 400;
      return in;
    }
    const std::string header = lower(trimmed.substr(5, comma - 5));
    const std::string media_type(trim(header.substr(0, header.find(';'))));
    const bool is_base64 = header.size() >= 7 && header.compare(header.size() - 7, 7, ";base64") == 0;
    if (media_type.rfind("image/", 0) != 0) {
      in.error = in.name + ": the data URI's media type \"" + (media_type.empty() ? "text/plain" : media_type) +
                 "\" is not an image";
      in.error_status = 415;
      return in;
    }
    if (!is_base64) {
      in.error = in.name + ": the data URI is not base64 (\";base64,\" expected)";
      in.error_status = 400;
      return in;
    }
    if (!base64_decode(trimmed.substr(comma + 1), &in.bytes)) {
      in.bytes.clear();
      in.error = in.name + ": the data URI's data is not valid base64";
      in.error_status = 400;
    }
    return in;
  }
  const size_t scheme = trimmed.find("://");
  if (scheme != std::string_view::npos && scheme < 16) {
    throw HttpError(400, "remote_url",
                    in.name + ": remote image URLs are not fetched; send the image as a data URI "
                              "(data:image/jpeg;base64,...) or base64");
  }
  if (!base64_decode(trimmed, &in.bytes)) {
    in.bytes.clear();
    in.error = in.name + ": neither a data URI nor valid base64";
    in.error_status = 400;
  }
  return in;
}

// ---- JSON bodies

json parse_json_object(std::string_view body, const RequestLimits& limits) {
  if (json_depth(body, limits.max_json_depth) > limits.max_json_depth) {
    throw bad_request("the JSON body nests deeper than " + std::to_string(limits.max_json_depth) + " levels",
                      "invalid_json");
  }
  json j = json::parse(body.begin(), body.end(), nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) throw bad_request("the body is not valid JSON", "invalid_json");
  if (!j.is_object()) throw bad_request("the body must be a JSON object, not " + type_name(j), "invalid_json");
  return j;
}

std::vector<std::string> parse_label_list(const json& value, const std::string& name, const RequestLimits& limits) {
  if (value.is_string()) return parse_label_text(value.get_ref<const std::string&>(), name, limits);
  if (!value.is_array()) throw bad_request("\"" + name + "\" must be an array of strings", "invalid_value");
  std::vector<std::string> labels;
  for (const json& v : value) {
    if (!v.is_string()) throw bad_request("\"" + name + "\" must be an array of strings", "invalid_value");
    labels.push_back(v.get<std::string>());
    if (labels.size() > limits.max_labels) break;
  }
  if (labels.empty()) throw bad_request("\"" + name + "\" is empty", "invalid_value");
  if (labels.size() > limits.max_labels) {
    throw bad_request("\"" + name + "\" holds more than " + std::to_string(limits.max_labels) + " labels",
                      "invalid_value");
  }
  std::set<std::string> seen;
  for (const auto& l : labels) {
    if (trim(l).empty() || l.size() > limits.max_label_bytes) {
      throw bad_request("\"" + name + "\": labels must be non-empty and at most " +
                            std::to_string(limits.max_label_bytes) + " bytes",
                        "invalid_value");
    }
    if (!seen.insert(l).second) throw bad_request("\"" + name + "\": \"" + l + "\" is given twice", "invalid_value");
  }
  return labels;
}

std::vector<std::string> parse_label_text(std::string_view text, const std::string& name,
                                          const RequestLimits& limits) {
  const std::string_view t = trim(text);
  if (!t.empty() && t.front() == '[') {
    if (json_depth(t, 1) > 1) throw bad_request("\"" + name + "\" must be an array of strings", "invalid_value");
    const json list = json::parse(t.begin(), t.end(), nullptr, /*allow_exceptions=*/false);
    if (list.is_discarded()) throw bad_request("\"" + name + "\" is not a valid JSON array", "invalid_value");
    return parse_label_list(list, name, limits);
  }
  json list = json::array();
  size_t begin = 0;
  while (begin <= t.size()) {
    const size_t end = std::min(t.find(',', begin), t.size());
    const std::string_view item = trim(t.substr(begin, end - begin));
    if (!item.empty()) list.push_back(std::string(item));
    if (list.size() > limits.max_labels) break;
    begin = end + 1;
  }
  return parse_label_list(list, name, limits);
}

ClassifyRequest parse_classify_json(std::string_view text, const RequestLimits& limits) {
  const json body = parse_json_object(text, limits);
  ClassifyRequest r;
  const json* images = field(body, "images");
  if (images == nullptr) images = field(body, "image");
  if (images == nullptr) throw bad_request("\"images\" is missing: give an array of data URIs or base64 strings", "missing_field");
  if (images->is_array()) {
    if (images->empty()) throw bad_request("\"images\" is empty", "invalid_value");
    check_image_count(images->size(), limits);
    for (size_t i = 0; i < images->size(); ++i) {
      r.images.push_back(image_from_json((*images)[i], "images[" + std::to_string(i) + "]"));
    }
  } else {
    r.images.push_back(image_from_json(*images, "images[0]"));
  }
  if (const json* labels = field(body, "labels")) r.labels = parse_label_list(*labels, "labels", limits);
  r.top_k = get_integer(body, "top_k", 1, 1'000'000, 3);
  return r;
}

ClassifyRequest parse_classify_form(const std::vector<FormPart>& parts, const RequestLimits& limits) {
  ClassifyRequest r;
  size_t n_images = 0;
  for (const FormPart& part : parts) {
    const std::string name = lower(part.name);
    const bool is_image = !part.filename.empty() || name == "image" || name == "images" || name == "images[]" ||
                          name == "file" || name == "files" || name == "files[]";
    if (is_image) {
      check_image_count(++n_images, limits);
      ImageInput in;
      in.name = part.filename.empty() ? part.name + "[" + std::to_string(n_images - 1) + "]" : part.filename;
      in.bytes = part.content;
      if (in.bytes.empty()) {
        in.error = in.name + ": empty file";
        in.error_status = 400;
      }
      r.images.push_back(std::move(in));
    } else if (name == "labels") {
      r.labels = parse_label_text(part.content, "labels", limits);
    } else if (name == "top_k") {
      const std::string_view v = trim(part.content);
      int64_t k = 0;
      bool ok = !v.empty() && v.size() <= 9;
      for (const char c : v) ok = ok && c >= '0' && c <= '9';
      if (ok) k = std::stoll(std::string(v));
      if (!ok || k < 1) throw bad_request("\"top_k\" must be a positive integer", "invalid_value");
      r.top_k = k;
    }
  }
  if (r.images.empty()) {
    throw bad_request("the form holds no image: send files as parts with a file name (or named \"images\")",
                      "missing_field");
  }
  return r;
}

// An embeddings input string is text unless it is a data URI, a URL (refused
// as a remote image), or bare base64 of an image file (or too long to be text).
bool is_embedding_text(std::string_view s) {
  const std::string_view v = trim(s);
  if (starts_with_ci(v, "data:")) return false;
  if (const size_t scheme = v.find("://"); scheme != std::string_view::npos && scheme < 16) return false;
  std::string bytes;
  if (!base64_decode(v, &bytes)) return true;
  if (v.size() >= kBase64ImageMinChars) return false;
  const auto starts = [&](std::string_view magic) { return std::string_view(bytes).substr(0, magic.size()) == magic; };
  const bool webp = bytes.size() >= 12 && starts("RIFF") && std::string_view(bytes).substr(8, 4) == "WEBP";
  return !(starts("\xFF\xD8\xFF") || starts("\x89PNG\r\n\x1A\n") || webp || starts("GIF8"));
}

EmbeddingsRequest parse_embeddings_json(std::string_view text, const RequestLimits& limits) {
  const json body = parse_json_object(text, limits);
  EmbeddingsRequest r;
  const json* input = field(body, "input");
  if (input == nullptr) throw bad_request("\"input\" is missing: give images as data URIs or base64", "missing_field");
  std::vector<json> items;
  if (input->is_array()) {
    items.assign(input->begin(), input->end());
  } else {
    items.push_back(*input);
  }
  if (items.empty()) throw bad_request("\"input\" is empty", "invalid_value");
  check_image_count(items.size(), limits);
  for (size_t i = 0; i < items.size(); ++i) {
    const std::string name = "input[" + std::to_string(i) + "]";
    if (items[i].is_number_integer()) {
      throw HttpError(422, "token_arrays_unsupported",
                      name + ": token arrays are not embedded; send text as strings (CLIP's tokenizer reads them)");
    }
    if (items[i].is_string() && is_embedding_text(items[i].get_ref<const std::string&>())) {
      const std::string& text = items[i].get_ref<const std::string&>();
      if (text.size() > kMaxEmbeddingTextBytes) {
        throw bad_request(name + " is " + std::to_string(text.size()) + " bytes of text; at most " +
                              std::to_string(kMaxEmbeddingTextBytes) + " are embedded (CLIP reads 77 tokens)",
                          "invalid_value");
      }
      r.order.push_back({true, r.texts.size()});
      r.texts.push_back(text);
      continue;
    }
    r.order.push_back({false, r.images.size()});
    r.images.push_back(image_from_json(items[i], name));
  }
  const std::string format = get_string(body, "encoding_format");
  if (!format.empty() && format != "float" && format != "base64") {
    throw bad_request("\"encoding_format\" must be \"float\" or \"base64\"", "invalid_value");
  }
  r.base64 = format == "base64";
  return r;
}

size_t ChatMessage::image_count() const {
  return static_cast<size_t>(std::count_if(parts.begin(), parts.end(), [](const ChatPart& p) { return p.is_image; }));
}

size_t ChatRequest::image_count() const {
  size_t n = 0;
  for (const auto& m : messages) n += m.image_count();
  return n;
}

ChatRequest parse_chat_json(std::string_view text, const RequestLimits& limits) {
  const json body = parse_json_object(text, limits);
  ChatRequest r;
  r.model = get_string(body, "model");
  const json* messages = field(body, "messages");
  if (messages == nullptr || !messages->is_array() || messages->empty()) {
    throw bad_request("\"messages\" must be a non-empty array of {role, content}", "missing_field");
  }
  if (messages->size() > limits.max_messages) {
    throw bad_request("\"messages\" holds " + std::to_string(messages->size()) + " messages, at most " +
                          std::to_string(limits.max_messages) + " are allowed",
                      "invalid_value");
  }
  size_t n_images = 0;
  for (size_t i = 0; i < messages->size(); ++i) {
    const json& m = (*messages)[i];
    const std::string where = "messages[" + std::to_string(i) + "]";
    if (!m.is_object()) throw bad_request(where + " must be an object {role, content}", "invalid_value");
    ChatMessage msg;
    msg.role = get_string(m, "role");
    if (msg.role == "developer") msg.role = "system";
    if (msg.role != "system" && msg.role != "user" && msg.role != "assistant") {
      throw bad_request(where + ".role must be \"system\", \"user\" or \"assistant\"", "invalid_value");
    }
    const json* content = field(m, "content");
    if (content == nullptr) {
      if (msg.role != "assistant") throw bad_request(where + ".content is missing", "missing_field");
    } else if (content->is_string()) {
      msg.parts.push_back({false, content->get<std::string>(), {}});
    } else if (content->is_array()) {
      for (size_t k = 0; k < content->size(); ++k) {
        const json& part = (*content)[k];
        const std::string pwhere = where + ".content[" + std::to_string(k) + "]";
        if (!part.is_object()) throw bad_request(pwhere + " must be an object with a \"type\"", "invalid_value");
        const std::string type = get_string(part, "type");
        if (type == "text") {
          msg.parts.push_back({false, get_string(part, "text"), {}});
        } else if (type == "image_url" || type == "image") {
          const json* url = field(part, type == "image" ? "image" : "image_url");
          if (url == nullptr) throw bad_request(pwhere + "." + type + " is missing", "missing_field");
          check_image_count(++n_images, limits);
          msg.parts.push_back({true, "", image_from_json(*url, pwhere)});
        } else {
          throw bad_request(pwhere + ": content parts of type \"" + type + "\" are not supported (text, image_url)",
                            "unsupported_value");
        }
      }
    } else {
      throw bad_request(where + ".content must be a string or an array of parts", "invalid_value");
    }
    r.messages.push_back(std::move(msg));
  }
  r.stream = get_bool(body, "stream", false);
  if (const json* options = field(body, "stream_options")) {
    if (!options->is_object()) throw bad_request("\"stream_options\" must be an object", "invalid_value");
    r.include_usage = get_bool(*options, "include_usage", false);
  }
  check_single_choice(body);
  r.sampling = parse_sampling(body, limits);
  return r;
}

ReasonRequest parse_reason_json(std::string_view text, const RequestLimits& limits) {
  const json body = parse_json_object(text, limits);
  ReasonRequest r;
  const json* image = field(body, "image");
  if (image == nullptr) throw bad_request("\"image\" is missing: give a data URI or base64 string", "missing_field");
  r.image = image_from_json(*image, "image");
  if (const json* labels = field(body, "labels")) r.labels = parse_label_list(*labels, "labels", limits);
  r.stream = get_bool(body, "stream", false);
  r.sampling = parse_sampling(body, limits);
  return r;
}

}  // namespace tinyemo::server
