#include "models/lm/sentencepiece_model.h"

#include <cstring>

#include "core/error.h"

namespace tinyemo::lm {

namespace {

// Field numbers of sentencepiece_model.proto.
namespace field {
constexpr uint32_t kPieces = 1, kTrainerSpec = 2, kNormalizerSpec = 3;
constexpr uint32_t kPieceText = 1, kPieceScore = 2, kPieceType = 3;
constexpr uint32_t kModelType = 3, kVocabSize = 4, kByteFallback = 35, kUnkId = 40, kBosId = 41, kEosId = 42,
                   kPadId = 43, kUnkPiece = 45, kBosPiece = 46, kEosPiece = 47, kPadPiece = 48;
constexpr uint32_t kNormName = 1, kCharsmap = 2, kAddDummyPrefix = 3, kRemoveExtraWhitespaces = 4,
                   kEscapeWhitespaces = 5;
}  // namespace field

enum WireType : uint32_t { kVarint = 0, kFixed64 = 1, kLength = 2, kFixed32 = 5 };

class Reader {
 public:
  Reader(std::string_view bytes, const std::string& where) : p_(bytes), where_(where) {}
  bool done() const { return pos_ == p_.size(); }

  uint64_t varint() {
    uint64_t v = 0;
    for (int shift = 0; shift < 64; shift += 7) {
      TE_CHECK(pos_ < p_.size(), "{}: truncated SentencePiece model (a varint runs past the end)", where_);
      const uint8_t b = static_cast<uint8_t>(p_[pos_++]);
      v |= static_cast<uint64_t>(b & 0x7f) << shift;
      if (!(b & 0x80)) return v;
    }
    fail("{}: malformed SentencePiece model (a varint longer than 10 bytes)", where_);
  }
  std::string_view bytes(uint64_t n) {
    TE_CHECK(n <= p_.size() - pos_, "{}: truncated SentencePiece model ({} bytes needed, {} left)", where_, n,
             p_.size() - pos_);
    const std::string_view s = p_.substr(pos_, static_cast<size_t>(n));
    pos_ += static_cast<size_t>(n);
    return s;
  }
  float fixed32_float() {
    const std::string_view b = bytes(4);
    float f;
    std::memcpy(&f, b.data(), 4);
    return f;
  }
  void skip(uint32_t wire) {
    switch (wire) {
      case kVarint: varint(); return;
      case kFixed64: bytes(8); return;
      case kLength: bytes(varint()); return;
      case kFixed32: bytes(4); return;
      default: fail("{}: malformed SentencePiece model (wire type {})", where_, wire);
    }
  }
  // The next field: its number and wire type.
  std::pair<uint32_t, uint32_t> tag() {
    const uint64_t t = varint();
    return {static_cast<uint32_t>(t >> 3), static_cast<uint32_t>(t & 7)};
  }
  void expect(uint32_t wire, uint32_t want, const char* what) {
    TE_CHECK(wire == want, "{}: malformed SentencePiece model ({} has wire type {})", where_, what, wire);
  }

 private:
  std::string_view p_;
  size_t pos_ = 0;
  const std::string& where_;
};

void put_varint(std::string& out, uint64_t v) {
  while (v >= 0x80) {
    out.push_back(static_cast<char>((v & 0x7f) | 0x80));
    v >>= 7;
  }
  out.push_back(static_cast<char>(v));
}
void put_tag(std::string& out, uint32_t number, WireType wire) { put_varint(out, (uint64_t{number} << 3) | wire); }
void put_int(std::string& out, uint32_t number, int64_t v) {  // int32/enum/bool: negative values sign-extended
  put_tag(out, number, kVarint);
  put_varint(out, static_cast<uint64_t>(v));
}
void put_bytes(std::string& out, uint32_t number, std::string_view s) {
  put_tag(out, number, kLength);
  put_varint(out, s.size());
  out.append(s);
}
void put_float(std::string& out, uint32_t number, float f) {
  put_tag(out, number, kFixed32);
  char b[4];
  std::memcpy(b, &f, 4);
  out.append(b, 4);
}

}  // namespace

SentencePieceModel parse_sentencepiece_model(std::string_view bytes, const std::string& where) {
  SentencePieceModel m;
  Reader r(bytes, where);
  while (!r.done()) {
    const auto [number, wire] = r.tag();
    if (number == field::kPieces) {
      r.expect(wire, kLength, "a piece");
      Reader p(r.bytes(r.varint()), where);
      SentencePieceModel::Piece piece;
      while (!p.done()) {
        const auto [n, w] = p.tag();
        if (n == field::kPieceText) {
          p.expect(w, kLength, "a piece's text");
          piece.text = std::string(p.bytes(p.varint()));
        } else if (n == field::kPieceScore) {
          p.expect(w, kFixed32, "a piece's score");
          piece.score = p.fixed32_float();
        } else if (n == field::kPieceType) {
          p.expect(w, kVarint, "a piece's type");
          piece.type = static_cast<int32_t>(p.varint());
          TE_CHECK(piece.type >= 1 && piece.type <= 6, "{}: piece {} has unknown type {}", where, m.pieces.size(),
                   piece.type);
        } else {
          p.skip(w);
        }
      }
      m.pieces.push_back(std::move(piece));
    } else if (number == field::kTrainerSpec) {
      r.expect(wire, kLength, "trainer_spec");
      Reader t(r.bytes(r.varint()), where);
      while (!t.done()) {
        const auto [n, wire_type] = t.tag();
        const auto w = wire_type;  // a plain variable: clang before 16 cannot capture structured bindings
        auto text = [&] {
          t.expect(w, kLength, "a trainer_spec string");
          return std::string(t.bytes(t.varint()));
        };
        if (n == field::kModelType) {
          t.expect(w, kVarint, "trainer_spec.model_type");
          m.model_type = static_cast<int32_t>(t.varint());
        } else if (n == field::kByteFallback) {
          t.expect(w, kVarint, "trainer_spec.byte_fallback");
          m.byte_fallback = t.varint() != 0;
        } else if (n == field::kUnkPiece) {
          m.unk_piece = text();
        } else if (n == field::kBosPiece) {
          m.bos_piece = text();
        } else if (n == field::kEosPiece) {
          m.eos_piece = text();
        } else if (n == field::kPadPiece) {
          m.pad_piece = text();
        } else {
          t.skip(w);
        }
      }
    } else if (number == field::kNormalizerSpec) {
      r.expect(wire, kLength, "normalizer_spec");
      Reader s(r.bytes(r.varint()), where);
      while (!s.done()) {
        const auto [n, wire_type] = s.tag();
        const auto w = wire_type;  // as above
        auto flag = [&] {
          s.expect(w, kVarint, "a normalizer_spec flag");
          return s.varint() != 0;
        };
        if (n == field::kNormName) {
          s.expect(w, kLength, "normalizer_spec.name");
          m.normalizer_name = std::string(s.bytes(s.varint()));
        } else if (n == field::kCharsmap) {
          s.expect(w, kLength, "normalizer_spec.precompiled_charsmap");
          m.has_precompiled_charsmap = !s.bytes(s.varint()).empty();
        } else if (n == field::kAddDummyPrefix) {
          m.add_dummy_prefix = flag();
        } else if (n == field::kRemoveExtraWhitespaces) {
          m.remove_extra_whitespaces = flag();
        } else if (n == field::kEscapeWhitespaces) {
          m.escape_whitespaces = flag();
        } else {
          s.skip(w);
        }
      }
    } else {
      r.skip(wire);
    }
  }
  TE_CHECK(!m.pieces.empty(), "{}: the SentencePiece model has no pieces", where);
  return m;
}

std::string serialize_sentencepiece_model(const SentencePieceModel& m) {
  std::string out;
  auto id_of = [&](const std::string& text) -> int64_t {
    for (size_t i = 0; i < m.pieces.size(); ++i)
      if (m.pieces[i].text == text) return static_cast<int64_t>(i);
    return -1;
  };
  for (const auto& p : m.pieces) {
    std::string piece;
    put_bytes(piece, field::kPieceText, p.text);
    put_float(piece, field::kPieceScore, p.score);
    put_int(piece, field::kPieceType, p.type);
    put_bytes(out, field::kPieces, piece);
  }
  std::string trainer;
  put_int(trainer, field::kModelType, m.model_type);
  put_int(trainer, field::kVocabSize, static_cast<int64_t>(m.pieces.size()));
  put_int(trainer, field::kByteFallback, m.byte_fallback);
  put_int(trainer, field::kUnkId, id_of(m.unk_piece));
  put_int(trainer, field::kBosId, id_of(m.bos_piece));
  put_int(trainer, field::kEosId, id_of(m.eos_piece));
  put_int(trainer, field::kPadId, id_of(m.pad_piece));
  put_bytes(trainer, field::kUnkPiece, m.unk_piece);
  put_bytes(trainer, field::kBosPiece, m.bos_piece);
  put_bytes(trainer, field::kEosPiece, m.eos_piece);
  put_bytes(trainer, field::kPadPiece, m.pad_piece);
  put_bytes(out, field::kTrainerSpec, trainer);
  std::string normalizer;
  put_bytes(normalizer, field::kNormName, "identity");
  put_int(normalizer, field::kAddDummyPrefix, m.add_dummy_prefix);
  put_int(normalizer, field::kRemoveExtraWhitespaces, m.remove_extra_whitespaces);
  put_int(normalizer, field::kEscapeWhitespaces, m.escape_whitespaces);
  put_bytes(out, field::kNormalizerSpec, normalizer);
  return out;
}

}  // namespace tinyemo::lm
