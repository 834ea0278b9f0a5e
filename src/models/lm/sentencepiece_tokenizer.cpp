#include "models/lm/sentencepiece_tokenizer.h"

#include <sentencepiece_processor.h>

#include <algorithm>

#include "core/error.h"
#include "io/file.h"

namespace tinyemo::lm {

SentencePieceTokenizer::SentencePieceTokenizer(std::string_view model_bytes, const std::string& source,
                                               SentencePieceOptions options)
    : source_(source), options_(options), processor_(std::make_unique<sentencepiece::SentencePieceProcessor>()) {
  sentencepiece::util::Status status;
  try {
    status = processor_->LoadFromSerializedProto(model_bytes);
  } catch (const std::exception& e) {
    // The library reports some corrupt models by throwing (e.g. darts-clone's
    // trie builder on an empty piece) rather than through its status.
    fail("{}: not a valid SentencePiece model ({})", source_, e.what());
  }
  TE_CHECK(status.ok(), "{}: not a valid SentencePiece model ({})", source_, status.ToString());
  TE_CHECK(processor_->GetPieceSize() > 0, "{}: the SentencePiece model has no pieces", source_);
  for (int id = 0; id < processor_->GetPieceSize(); ++id) {
    if (processor_->IsControl(id) || processor_->IsUnknown(id)) {
      const std::string& piece = processor_->IdToPiece(id);
      if (!piece.empty()) special_pieces_.emplace_back(piece, id);
    }
  }
  // Longest first: the first piece matching at a position is the longest.
  std::stable_sort(special_pieces_.begin(), special_pieces_.end(),
                   [](const auto& a, const auto& b) { return a.first.size() > b.first.size(); });
}

SentencePieceTokenizer::~SentencePieceTokenizer() = default;

std::unique_ptr<SentencePieceTokenizer> SentencePieceTokenizer::load(const std::filesystem::path& path) {
  return std::make_unique<SentencePieceTokenizer>(read_file(path), path.string());
}

void SentencePieceTokenizer::encode_segment(std::string_view text, std::vector<int32_t>& ids) const {
  if (text.empty()) return;
  std::vector<int> piece_ids;
  const auto status = processor_->Encode(text, &piece_ids);
  TE_CHECK(status.ok(), "{}: encoding failed ({})", source_, status.ToString());
  ids.insert(ids.end(), piece_ids.begin(), piece_ids.end());
}

std::vector<int32_t> SentencePieceTokenizer::encode(std::string_view text, bool add_special) const {
  std::vector<int32_t> ids;
  if (add_special && options_.add_bos && bos_id() >= 0) ids.push_back(bos_id());
  // As Hugging Face's Llama tokenizers do, "<s>" / "</s>" / "<unk>" in the text
  // are those tokens, and each stretch of text between them is encoded on its
  // own (so it gets its own dummy-prefix "▁").
  size_t segment_start = 0;
  for (size_t pos = 0; pos < text.size();) {
    auto match = std::find_if(special_pieces_.begin(), special_pieces_.end(),
                              [&](const auto& p) { return text.compare(pos, p.first.size(), p.first) == 0; });
    if (match == special_pieces_.end()) {
      ++pos;
      continue;
    }
    encode_segment(text.substr(segment_start, pos - segment_start), ids);
    ids.push_back(match->second);
    pos += match->first.size();
    segment_start = pos;
  }
  encode_segment(text.substr(segment_start), ids);
  if (add_special && options_.add_eos && eos_id() >= 0) ids.push_back(eos_id());
  return ids;
}

std::string SentencePieceTokenizer::model_proto() const { return std::string(processor_->serialized_model_proto()); }

void SentencePieceTokenizer::check_id(int32_t id) const {
  TE_CHECK(id >= 0 && id < vocab_size(), "{}: token id {} out of range [0, {})", source_, id, vocab_size());
}

std::string SentencePieceTokenizer::decode(const std::vector<int32_t>& ids, bool skip_special) const {
  std::string text;
  std::vector<int> run;  // ordinary pieces, decoded together so byte pieces combine
  auto flush = [&] {
    if (run.empty()) return;
    std::string piece_text;
    const auto status = processor_->Decode(run, &piece_text);
    TE_CHECK(status.ok(), "{}: decoding failed ({})", source_, status.ToString());
    text += piece_text;
    run.clear();
  };
  for (int32_t id : ids) {
    check_id(id);
    if (processor_->IsControl(id) || processor_->IsUnknown(id)) {
      if (skip_special) continue;
      flush();
      text += processor_->IdToPiece(id);
    } else {
      run.push_back(id);
    }
  }
  flush();
  return text;
}

int32_t SentencePieceTokenizer::vocab_size() const { return processor_->GetPieceSize(); }
int32_t SentencePieceTokenizer::bos_id() const { return processor_->bos_id(); }
int32_t SentencePieceTokenizer::eos_id() const { return processor_->eos_id(); }

int32_t SentencePieceTokenizer::token_to_id(std::string_view token) const {
  const int id = processor_->PieceToId(token);
  return id >= 0 && id < vocab_size() && processor_->IdToPiece(id) == token ? id : -1;
}

std::string SentencePieceTokenizer::id_to_token(int32_t id) const {
  check_id(id);
  return processor_->IdToPiece(id);
}

}  // namespace tinyemo::lm
