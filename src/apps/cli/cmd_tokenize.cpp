// `tinyemo tokenize --tokenizer PATH --text TEXT [--add-special] [--json]`:
// the token ids of a text (a tokenizer.json, a tokenizer.model, a folder with
// vocab.json + merges.txt, a model folder holding one of these, or a .gguf).
#include <cstdio>

#include "apps/cli/command.h"
#include "models/lm/gguf_model.h"
#include "models/lm/tokenizer.h"

namespace tinyemo::cli {
namespace {

struct TokenizeOptions {
  std::string tokenizer, text;
  bool add_special = false;
  bool json = false;
};

const CommandRegistration kTokenize("tokenize", [](CLI::App& root) {
  auto opts = std::make_shared<TokenizeOptions>();
  auto* cmd = root.add_subcommand("tokenize", "print the token ids of a text");
  cmd->add_option("--tokenizer", opts->tokenizer,
                  "tokenizer.json, tokenizer.model, a folder with vocab.json + merges.txt, a model folder, or a "
                  ".gguf (its embedded files or llama.cpp tokenizer metadata)")
      ->required();
  cmd->add_option("--text", opts->text, "the text to encode")->required();
  cmd->add_flag("--add-special", opts->add_special, "add the special tokens the tokenizer adds (LLaMA: BOS)");
  cmd->add_flag("--json", opts->json, "print {\"ids\": [...]}");
  cmd->callback([opts] {
    const std::filesystem::path path = opts->tokenizer;
    const auto tokenizer = path.extension() == ".gguf" ? load_lm_tokenizer(path) : Tokenizer::load(path);
    const auto ids = tokenizer->encode(opts->text, opts->add_special);
    if (opts->json) {
      print_json({{"ids", ids}});
      return;
    }
    for (size_t i = 0; i < ids.size(); ++i) std::printf(i ? " %d" : "%d", ids[i]);
    std::printf("\n");
  });
});

}  // namespace
}  // namespace tinyemo::cli
