// SentencePiece `tokenizer.model` (the LLaMA-2 tokenizer of TinyLlama and
// OpenELM) through libsentencepiece, with Hugging Face LlamaTokenizer's
// conventions around it: add_special prepends BOS (add_bos_token=True,
// add_eos_token=False, unless SentencePieceOptions say otherwise), and control tokens written in the text ("</s>") are
// split out as their ids instead of being spelled with pieces.
#pragma once

#include <filesystem>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "models/lm/tokenizer.h"

namespace sentencepiece {
class SentencePieceProcessor;
}

namespace tinyemo::lm {

// What add_special puts around the text (Hugging Face LlamaTokenizer's
// add_bos_token / add_eos_token; llama.cpp's tokenizer.ggml.add_bos_token / add_eos_token).
struct SentencePieceOptions {
  bool add_bos = true;
  bool add_eos = false;
};

class SentencePieceTokenizer final : public Tokenizer {
 public:
  // The serialized ModelProto; `source` names it in errors.
  SentencePieceTokenizer(std::string_view model_bytes, const std::string& source,
                         SentencePieceOptions options = {});
  ~SentencePieceTokenizer() override;
  static std::unique_ptr<SentencePieceTokenizer> load(const std::filesystem::path& path);

  std::vector<int32_t> encode(std::string_view text, bool add_special) const override;
  std::string decode(const std::vector<int32_t>& ids, bool skip_special = true) const override;
  int32_t vocab_size() const override;
  int32_t bos_id() const override;
  int32_t eos_id() const override;
  int32_t token_to_id(std::string_view token) const override;
  std::string id_to_token(int32_t id) const override;

  // The serialized ModelProto (for writing it into another format).
  std::string model_proto() const;
  const SentencePieceOptions& options() const { return options_; }

 private:
  void check_id(int32_t id) const;
  void encode_segment(std::string_view text, std::vector<int32_t>& ids) const;

  std::string source_;
  SentencePieceOptions options_;
  std::unique_ptr<sentencepiece::SentencePieceProcessor> processor_;
  // Control and unknown pieces ("<s>", "</s>", "<unk>") by decreasing length.
  std::vector<std::pair<std::string, int32_t>> special_pieces_;
};

}  // namespace tinyemo::lm
