#include "models/mm/conversation.h"

#include <map>

#include "core/error.h"

namespace tinyemo::mm {

namespace {

constexpr std::string_view kSystem =
    "A chat between a curious user and an artificial intelligence assistant. The assistant gives helpful, detailed, "
    "and polite answers to the user's questions.";

// The chat templates differ only in the text that ends an answer.
ConversationTemplate chat(std::string name, const std::string& eos) {
  ConversationTemplate t;
  t.name = std::move(name);
  t.image = {Formatter::Kind::String, "<image>\n{{content}}"};
  t.user = {Formatter::Kind::String, "USER: {{content}} "};
  t.assistant = {Formatter::Kind::String, "ASSISTANT: {{content}}" + eos};
  t.system = std::string(kSystem) + " ";
  t.stop = eos;
  return t;
}

const std::map<std::string, ConversationTemplate>& templates() {
  static const std::map<std::string, ConversationTemplate> all = [] {
    std::map<std::string, ConversationTemplate> m;
    m["llama"] = chat("llama", "</s>");
    m["phi"] = chat("phi", "<|endoftext|>");
    m["gemma"] = chat("gemma", "<eos>");
    m["qwen2_base"] = chat("qwen2_base", "<|endoftext|>");
    m["qwen2_instruct"] = chat("qwen2_instruct", "<|im_end|>");
    ConversationTemplate pretrain;
    pretrain.name = "pretrain";
    pretrain.image = {Formatter::Kind::Empty, ""};
    pretrain.user = {Formatter::Kind::Empty, "<image>"};
    pretrain.assistant = {Formatter::Kind::String, "{{content}}\n"};
    m["pretrain"] = pretrain;
    return m;
  }();
  return all;
}

// Length of the UTF-8 whitespace character (as Python's str.isspace) at s[i], 0 if none.
size_t space_at(std::string_view s, size_t i) {
  const auto c = static_cast<unsigned char>(s[i]);
  if (c == ' ' || (c >= 0x09 && c <= 0x0D) || (c >= 0x1C && c <= 0x1F)) return 1;
  auto starts = [&](std::string_view seq) { return s.substr(i, seq.size()) == seq; };
  if (starts("\xC2\x85") || starts("\xC2\xA0")) return 2;  // U+0085, U+00A0
  for (std::string_view seq : {"\xE1\x9A\x80", "\xE2\x80\xA8", "\xE2\x80\xA9", "\xE2\x80\xAF", "\xE2\x81\x9F",
                               "\xE3\x80\x80"}) {  // U+1680, U+2028, U+2029, U+202F, U+205F, U+3000
    if (starts(seq)) return 3;
  }
  if (s.size() >= i + 3 && c == 0xE2 && static_cast<unsigned char>(s[i + 1]) == 0x80) {
    const auto d = static_cast<unsigned char>(s[i + 2]);
    if (d >= 0x80 && d <= 0x8A) return 3;  // U+2000 .. U+200A
  }
  return 0;
}

// Python's str.replace(old, new) (all occurrences; count=1 when `once`).
std::string replace(std::string_view s, std::string_view old, std::string_view repl, bool once) {
  std::string out;
  size_t at = 0;
  while (true) {
    const size_t hit = s.find(old, at);
    if (hit == std::string_view::npos || old.empty()) break;
    out.append(s.substr(at, hit - at)).append(repl);
    at = hit + old.size();
    if (once) break;
  }
  out.append(s.substr(at));
  return out;
}

}  // namespace

std::string python_strip(std::string_view s) {
  size_t begin = 0, end = s.size();
  while (begin < end) {
    const size_t n = space_at(s, begin);
    if (n == 0) break;
    begin += n;
  }
  // From the back: find the last non-space character by walking forward.
  size_t last_end = begin;
  for (size_t i = begin; i < end;) {
    const size_t n = space_at(s, i);
    if (n > 0) {
      i += n;
      continue;
    }
    const auto c = static_cast<unsigned char>(s[i]);
    const size_t len = c < 0x80 ? 1 : (c >> 5) == 0x6 ? 2 : (c >> 4) == 0xE ? 3 : (c >> 3) == 0x1E ? 4 : 1;
    i = std::min(end, i + len);
    last_end = i;
  }
  return std::string(s.substr(begin, last_end - begin));
}

std::string Formatter::apply(const std::optional<std::string>& content) const {
  if (kind == Kind::Empty) return slot;
  if (!content) return slot.substr(0, slot.find(':')) + ":";
  return replace(slot, "{{content}}", *content, /*once=*/true);
}

const ConversationTemplate& conversation_template(std::string_view name) {
  const auto it = templates().find(std::string(name));
  if (it == templates().end()) {
    std::string known;
    for (const auto& n : conversation_template_names()) known += (known.empty() ? "" : ", ") + n;
    fail("unknown conversation template \"{}\" (known: {})", name, known);
  }
  return it->second;
}

const std::vector<std::string>& conversation_template_names() {
  static const std::vector<std::string> names = [] {
    std::vector<std::string> v;
    for (const auto& [name, t] : templates()) v.push_back(name);
    return v;
  }();
  return names;
}

std::string default_template_for(std::string_view lm_model_type) {
  if (lm_model_type == "llama" || lm_model_type == "openelm") return "llama";
  if (lm_model_type == "phi") return "phi";
  if (lm_model_type == "gemma") return "gemma";
  if (lm_model_type == "qwen2") return "qwen2_base";
  return "";
}

std::string render_prompt(const ConversationTemplate& t, const std::vector<Turn>& turns) {
  std::string msg;
  for (size_t i = 0; i < turns.size(); ++i) {
    if (i == 0) msg += t.system;
    std::string question = turns[i].question;
    if (question.find(kImageMarker) != std::string::npos) {
      question = python_strip(replace(question, kImageMarker, "", /*once=*/false));
      question = python_strip(t.image.apply(question));
    }
    msg += t.user.apply(question);
    msg += t.assistant.apply(turns[i].answer);
  }
  return msg;
}

std::vector<int32_t> tokenize_with_images(const lm::Tokenizer& tokenizer, std::string_view prompt,
                                          int32_t image_token_index) {
  std::vector<std::vector<int32_t>> chunks;
  size_t at = 0;
  while (true) {  // Python's str.split("<image>"): n markers give n + 1 chunks
    const size_t hit = prompt.find(kImageMarker, at);
    chunks.push_back(tokenizer.encode(prompt.substr(at, hit == std::string_view::npos ? std::string_view::npos
                                                                                      : hit - at),
                                      /*add_special=*/true));
    if (hit == std::string_view::npos) break;
    at = hit + kImageMarker.size();
  }
  std::vector<int32_t> ids;
  size_t offset = 0;
  if (!chunks[0].empty() && chunks[0][0] == tokenizer.bos_id()) {
    offset = 1;
    ids.push_back(chunks[0][0]);
  }
  for (size_t k = 0; k < chunks.size(); ++k) {
    if (k > 0) ids.push_back(image_token_index);  // the separator [image] * (offset + 1), less its first `offset`
    for (size_t i = offset; i < chunks[k].size(); ++i) ids.push_back(chunks[k][i]);
  }
  return ids;
}

}  // namespace tinyemo::mm
