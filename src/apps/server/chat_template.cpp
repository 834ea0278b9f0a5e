#include "chat_template.h"

#include "http_error.h"

namespace tinyemo::server {

namespace {
std::string text_of(const ChatMessage& m) {
  std::string out;
  for (const auto& p : m.parts) {
    if (p.is_image) continue;
    if (!out.empty()) out += "\n";
    out += p.text;
  }
  return out;
}
}  // namespace

bool parse_chat_template(std::string_view name, ChatTemplate* out) {
  if (name == "plain") {
    *out = ChatTemplate::Plain;
  } else if (name == "zephyr") {
    *out = ChatTemplate::Zephyr;
  } else if (name == "chatml") {
    *out = ChatTemplate::ChatMl;
  } else {
    return false;
  }
  return true;
}

const char* chat_template_name(ChatTemplate t) {
  switch (t) {
    case ChatTemplate::Plain: return "plain";
    case ChatTemplate::Zephyr: return "zephyr";
    case ChatTemplate::ChatMl: return "chatml";
  }
  return "plain";
}

ChatPrompt render_chat(const std::vector<ChatMessage>& messages, ChatTemplate t) {
  ChatPrompt p;
  switch (t) {
    case ChatTemplate::Plain:
      for (const auto& m : messages) {
        const std::string text = text_of(m);
        if (m.role == "system") {
          p.text += text + "\n\n";
        } else {
          p.text += (m.role == "user" ? "User: " : "Assistant: ") + text + "\n";
        }
      }
      p.text += "Assistant:";
      p.stop = {"\nUser:"};
      break;
    case ChatTemplate::Zephyr:
      for (const auto& m : messages) p.text += "<|" + m.role + "|>\n" + text_of(m) + "</s>\n";
      p.text += "<|assistant|>\n";
      p.stop = {"</s>", "<|user|>"};
      break;
    case ChatTemplate::ChatMl:
      for (const auto& m : messages) p.text += "<|im_start|>" + m.role + "\n" + text_of(m) + "<|im_end|>\n";
      p.text += "<|im_start|>assistant\n";
      p.stop = {"<|im_end|>"};
      break;
  }
  return p;
}

std::vector<MmTurnText> mm_turns(const std::vector<ChatMessage>& messages) {
  std::vector<MmTurnText> turns;
  std::string system;
  bool open = false;  // the last turn has a question and no answer yet
  for (size_t i = 0; i < messages.size(); ++i) {
    const ChatMessage& m = messages[i];
    std::string text;
    for (const auto& p : m.parts) {
      if (p.is_image && m.role != "user") {
        throw bad_request("messages[" + std::to_string(i) + "]: images go in user messages", "invalid_value");
      }
      if (!text.empty()) text += "\n";
      text += p.is_image ? "<image>" : p.text;
    }
    if (m.role == "system") {
      system += (system.empty() ? "" : "\n") + text;
    } else if (m.role == "user") {
      if (open) {
        turns.back().question += "\n" + text;
      } else {
        turns.push_back({text, std::nullopt});
        open = true;
      }
    } else {
      if (!open) {
        throw bad_request("messages[" + std::to_string(i) + "]: an assistant message must follow a user message",
                          "invalid_value");
      }
      turns.back().answer = text;
      open = false;
    }
  }
  if (!open) throw bad_request("the last message must be the user's (the turn to answer)", "invalid_value");
  if (!system.empty()) turns.front().question = system + "\n\n" + turns.front().question;
  return turns;
}

}  // namespace tinyemo::server
