// fuzz-link: tinyemo_server
// The server's request parsing without sockets (src/apps/server/request_parsing.h):
// the first byte picks the parser (classify / embeddings / chat / reason JSON,
// a multipart form's parts, a label list, an image reference, base64), the
// rest is its input. A bad request is an HttpError with a 4xx status naming
// the field; anything else escaping, a 5xx, or a read out of bounds is a bug.
// Decoded base64 must encode back to the same bytes.
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

#include "chat_template.h"
#include "request_parsing.h"

using namespace tinyemo::server;

namespace {

// Parts of a form: "\n--\n" separates parts, "\n" a part's name, file name,
// content type and content.
std::vector<FormPart> split_parts(std::string_view s) {
  std::vector<FormPart> parts;
  while (!s.empty()) {
    const size_t end = std::min(s.find("\n--\n"), s.size());
    std::string_view p = s.substr(0, end);
    FormPart part;
    std::string* fields[] = {&part.name, &part.filename, &part.content_type};
    for (std::string* f : fields) {
      const size_t nl = std::min(p.find('\n'), p.size());
      *f = std::string(p.substr(0, nl));
      p.remove_prefix(std::min(nl + 1, p.size()));
    }
    part.content = std::string(p);
    parts.push_back(std::move(part));
    s.remove_prefix(std::min(end + 4, s.size()));
  }
  return parts;
}

void check_images(const std::vector<ImageInput>& images) {
  for (const auto& i : images) {
    if (!i.error.empty() && i.error_status != 400 && i.error_status != 415) std::abort();
    if (i.error.empty() && i.bytes.empty()) std::abort();
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const std::string_view input(reinterpret_cast<const char*>(data) + 1, size - 1);
  RequestLimits limits;
  limits.max_images = 8;
  limits.max_labels = 8;
  try {
    switch (data[0] % 8) {
      case 0: {
        const ClassifyRequest r = parse_classify_json(input, limits);
        check_images(r.images);
        if (r.images.empty() || r.images.size() > limits.max_images || r.top_k < 1) std::abort();
        break;
      }
      case 1: {
        const ClassifyRequest r = parse_classify_form(split_parts(input), limits);
        check_images(r.images);
        if (r.images.empty() || r.images.size() > limits.max_images) std::abort();
        break;
      }
      case 2:
        check_images(parse_embeddings_json(input, limits).images);
        break;
      case 3: {
        ChatRequest r = parse_chat_json(input, limits);
        for (const auto& m : r.messages) {
          for (const auto& p : m.parts) {
            if (p.is_image) check_images({p.image});
          }
        }
        if (r.sampling.stop.size() > limits.max_stop) std::abort();
        for (const char* t : {"plain", "zephyr", "chatml"}) {
          ChatTemplate tmpl;
          if (!parse_chat_template(t, &tmpl)) std::abort();
          (void)render_chat(r.messages, tmpl);
        }
        (void)mm_turns(r.messages);
        break;
      }
      case 4:
        check_images({parse_reason_json(input, limits).image});
        break;
      case 5: {
        const auto labels = parse_label_text(input, "labels", limits);
        if (labels.empty() || labels.size() > limits.max_labels) std::abort();
        break;
      }
      case 6:
        check_images({read_image_ref(input, "x")});
        break;
      default: {
        std::string bytes;
        if (base64_decode(input, &bytes)) {
          std::string again;
          if (!base64_decode(base64_encode(bytes), &again) || again != bytes) std::abort();
        }
      }
    }
  } catch (const HttpError& e) {
    if (e.status < 400 || e.status >= 500 || std::string(e.what()).empty()) std::abort();
  }
  return 0;
}
