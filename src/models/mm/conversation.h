// TinyLLaVA Factory's conversation templates (tinyllava/data/template/*) and
// its prompt tokenisation (Template.tokenizer_image_token): the text a
// conversation becomes, and the ids of that text with the image placeholder
// (-200) where each <image> was. Reproduced as the reference does it, quirks
// included: the image is moved to the front of its question
// ("<image>\n{question}"), the last turn ends with "ASSISTANT:" (the
// formatter's rendering of a missing answer), the text is tokenised in chunks
// split at "<image>", and the first token of every chunk is dropped when the
// first chunk starts with BOS (one BOS remains, at the front).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "models/lm/tokenizer.h"

namespace tinyemo::mm {

inline constexpr std::string_view kImageMarker = "<image>";

// A Formatter: Empty returns its slot; String puts the content in for
// "{{content}}" (first occurrence), and without content returns the slot's
// text before its first ':' followed by ':' ("ASSISTANT: {{content}}</s>" ->
// "ASSISTANT:").
struct Formatter {
  enum class Kind { Empty, String };
  Kind kind = Kind::String;
  std::string slot;
  std::string apply(const std::optional<std::string>& content) const;
};

struct ConversationTemplate {
  std::string name;
  Formatter image;      // format_image_token
  Formatter user;       // format_user
  Formatter assistant;  // format_assistant
  std::string system;   // the system slot, as prepended (with its trailing space)
  std::string stop;     // separator[1]: generation stops at this text ("" for pretrain: none)
};

// "llama" (TinyLlama, OpenELM), "phi", "gemma", "qwen2_base", "qwen2_instruct",
// "pretrain"; others are refused naming the known ones.
const ConversationTemplate& conversation_template(std::string_view name);
const std::vector<std::string>& conversation_template_names();
// The template TinyLLaVA Factory's models use for an LM model_type (llama and
// openelm: llama; phi; gemma; qwen2: qwen2_base), for configs that name none.
std::string default_template_for(std::string_view lm_model_type);

struct Turn {
  std::string question;               // may hold <image>
  std::optional<std::string> answer;  // none for the turn the model answers
};

// Template._prompt: the system slot once, then per turn the user formatter on
// the question (with <image> moved to its front) and the assistant formatter.
std::string render_prompt(const ConversationTemplate& t, const std::vector<Turn>& turns);

// Template.tokenizer_image_token: ids with `image_token_index` where each
// <image> was.
std::vector<int32_t> tokenize_with_images(const lm::Tokenizer& tokenizer, std::string_view prompt,
                                          int32_t image_token_index);

// Python's str.strip() (whitespace as str.isspace defines it, UTF-8).
std::string python_strip(std::string_view s);

}  // namespace tinyemo::mm
