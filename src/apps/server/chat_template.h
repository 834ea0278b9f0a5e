// OpenAI chat messages to one prompt for a text LM, in the format the model
// was tuned on (--chat-template): plain "User:/Assistant:" lines, Zephyr
// (TinyLlama-Chat) or ChatML. Each template names the strings that end an
// answer besides EOS.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "request_parsing.h"

namespace tinyemo::server {

enum class ChatTemplate { Plain, Zephyr, ChatMl };

// "plain", "zephyr", "chatml"; false for another name.
bool parse_chat_template(std::string_view name, ChatTemplate* out);
const char* chat_template_name(ChatTemplate t);

struct ChatPrompt {
  std::string text;               // ends with the assistant's turn opened
  std::vector<std::string> stop;  // the template's end-of-turn strings
};
// Text parts only (image parts are the multimodal model's business).
ChatPrompt render_chat(const std::vector<ChatMessage>& messages, ChatTemplate t);

// The same messages as the multimodal model's turns (te_mm_generate renders
// them in its own template): each user message's parts in order, an image as
// an "<image>" marker (TinyLLaVA's "<image>\nWhat is shown?"), consecutive
// user messages joined, an assistant message the answer of the turn before;
// system text goes in front of the first question. HttpError 400 when the
// messages do not end with a user's or an assistant's comes first.
struct MmTurnText {
  std::string question;
  std::optional<std::string> answer;
};
std::vector<MmTurnText> mm_turns(const std::vector<ChatMessage>& messages);

}  // namespace tinyemo::server
