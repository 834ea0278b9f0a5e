// The parts of SentencePiece's ModelProto (sentencepiece_model.proto) that a
// tokenizer moved between a `tokenizer.model` and llama.cpp's GGUF metadata
// needs: the pieces (text, score, type), the model type, byte fallback, the
// special pieces and the normalizer switches. A minimal protobuf reader and
// writer for those fields (Debian's libsentencepiece-dev ships no generated
// proto classes); other fields are skipped when reading, and the writer emits
// only these, which libsentencepiece loads as a complete model.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace tinyemo::lm {

struct SentencePieceModel {
  // SentencePiece's piece types, also llama.cpp's token types (tokenizer.ggml.token_type).
  enum Type : int32_t { kNormal = 1, kUnknown = 2, kControl = 3, kUserDefined = 4, kUnused = 5, kByte = 6 };
  enum ModelType : int32_t { kUnigram = 1, kBpe = 2, kWord = 3, kChar = 4 };
  struct Piece {
    std::string text;
    float score = 0.0f;
    int32_t type = kNormal;
  };
  std::vector<Piece> pieces;
  int32_t model_type = kUnigram;  // trainer_spec.model_type (the proto's default)
  bool byte_fallback = false;
  std::string unk_piece = "<unk>", bos_piece = "<s>", eos_piece = "</s>", pad_piece = "<pad>";
  // normalizer_spec (defaults as in the proto)
  std::string normalizer_name;
  bool has_precompiled_charsmap = false;  // a normalization table (nmt_nfkc, ...), not kept
  bool add_dummy_prefix = true;
  bool remove_extra_whitespaces = true;
  bool escape_whitespaces = true;
};

// Errors name `where` and the field.
SentencePieceModel parse_sentencepiece_model(std::string_view bytes, const std::string& where);
// A serialized ModelProto with those fields (normalizer "identity", no charsmap).
std::string serialize_sentencepiece_model(const SentencePieceModel& model);

}  // namespace tinyemo::lm
