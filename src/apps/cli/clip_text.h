// CLIP's text tower in the CLI: `tinyemo clip encode-text` (added to the
// `clip` group by cmd_clip.cpp) and the options other commands share to
// reach a text tower (`classify --zero-shot`, `projector anchors --clip-text`).
#pragma once

#include <CLI/CLI.hpp>
#include <optional>
#include <string>

namespace tinyemo::cli {

void add_clip_encode_text(CLI::App& clip);

// The BPE merges file for a text tower: --vocab, else the default beside the model.
inline std::optional<std::string> vocab_option(const std::string& vocab) {
  return vocab.empty() ? std::nullopt : std::optional<std::string>(vocab);
}

}  // namespace tinyemo::cli
