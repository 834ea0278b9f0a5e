// `tinyemo tokenize --tokenizer PATH (--text TEXT [--add-special] | --ids 1,2,3) [--json]`:
// the token ids and token strings of a text, or the text of ids (a
// tokenizer.json, a tokenizer.model, a folder with vocab.json + merges.txt, a
// model folder holding one of these, or a .gguf: its embedded files or
// llama.cpp tokenizer metadata).
#include <cstdio>

#include "apps/cli/command.h"
#include "models/lm/gguf_model.h"
#include "models/lm/tokenizer.h"

namespace tinyemo::cli {
namespace {

struct TokenizeOptions {
  std::string tokenizer, text, ids;
  bool add_special = false;
  bool json = false;
};

// "1, 2,3" -> {1, 2, 3}; errors name the item.
std::vector<int32_t> parse_ids(const std::string& list, int32_t vocab) {
  std::vector<int32_t> ids;
  size_t begin = 0;
  while (begin <= list.size()) {
    const size_t end = std::min(list.find(',', begin), list.size());
    std::string item = list.substr(begin, end - begin);
    item.erase(0, item.find_first_not_of(' '));
    item.erase(item.find_last_not_of(' ') + 1);
    if (!item.empty()) {
      size_t used = 0;
      long long v = -1;
      try {
        v = std::stoll(item, &used);
      } catch (const std::exception&) {
        used = 0;
      }
      TE_CHECK(used == item.size() && v >= 0 && v < vocab, "--ids: \"{}\" is not a token id (0 .. {})", item,
               vocab - 1);
      ids.push_back(static_cast<int32_t>(v));
    }
    begin = end + 1;
  }
  return ids;
}

const CommandRegistration kTokenize("tokenize", [](CLI::App& root) {
  auto opts = std::make_shared<TokenizeOptions>();
  auto* cmd = root.add_subcommand("tokenize", "print the token ids and strings of a text, or the text of ids");
  cmd->add_option("--tokenizer", opts->tokenizer,
                  "tokenizer.json, tokenizer.model, a folder with vocab.json + merges.txt, a model folder, or a "
                  ".gguf (its embedded files or llama.cpp tokenizer metadata)")
      ->required();
  auto* text = cmd->add_option("--text", opts->text, "the text to encode");
  auto* ids = cmd->add_option("--ids", opts->ids, "comma-separated token ids to decode");
  text->excludes(ids);
  cmd->add_flag("--add-special", opts->add_special, "add the special tokens the tokenizer adds (LLaMA: BOS)");
  cmd->add_flag("--json", opts->json,
                "print {\"ids\": [...], \"tokens\": [...]} (with --ids: {\"ids\": [...], \"text\": ...})");
  cmd->callback([opts, text, ids] {
    TE_CHECK(text->count() + ids->count() == 1, "tokenize needs --text TEXT or --ids 1,2,3");
    const auto tokenizer = lm::load_lm_tokenizer({}, opts->tokenizer);
    if (ids->count() > 0) {
      const std::vector<int32_t> list = parse_ids(opts->ids, tokenizer->vocab_size());
      const std::string decoded = tokenizer->decode(list, /*skip_special=*/false);
      if (opts->json) {
        print_json({{"ids", list}, {"text", decoded}});
      } else {
        std::printf("%s\n", decoded.c_str());
      }
      return;
    }
    const auto encoded = tokenizer->encode(opts->text, opts->add_special);
    std::vector<std::string> tokens;
    for (int32_t id : encoded) tokens.push_back(tokenizer->id_to_token(id));
    if (opts->json) {
      print_json({{"ids", encoded}, {"tokens", tokens}});
      return;
    }
    for (size_t i = 0; i < encoded.size(); ++i) std::printf(i ? " %d" : "%d", encoded[i]);
    std::printf("\n");
  });
});

}  // namespace
}  // namespace tinyemo::cli
