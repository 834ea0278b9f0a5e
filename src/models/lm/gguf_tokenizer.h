// Tokenizers in llama.cpp's GGUF metadata (tokenizer.ggml.*), both ways.
//
// "llama" (SentencePiece): tokens, scores and token types (SentencePiece's
// piece types), unknown/bos/eos ids, add_bos_token / add_eos_token,
// add_space_prefix (default true) and remove_extra_whitespaces (default false):
// read into a SentencePiece ModelProto of type BPE (what llama.cpp's SPM
// tokenizer computes: pieces merged by score, byte fallback where the
// vocabulary has byte pieces) and run by libsentencepiece.
// "gpt2" with tokenizer.ggml.pre "gpt-2" or "phi-2" (GPT-2's pre-tokenizer
// regex): tokens in GPT-2's byte-level spelling (NORMAL), added tokens as text
// (CONTROL: special, USER_DEFINED: not), merges "a b", bos/eos ids,
// add_bos_token / add_eos_token: a BpeTokenizer. Other models and other
// pre-tokenizers (qwen2, llama-bpe, ...) are refused by name: tinyemo's
// byte-level BPE implements GPT-2's pre-tokenizer only. "none" / "no_vocab":
// no tokenizer.
#pragma once

#include <memory>
#include <string_view>

#include "io/gguf.h"
#include "models/lm/tokenizer.h"

namespace tinyemo::lm {

// Whether the file carries llama.cpp tokenizer metadata (tokenizer.ggml.model
// other than "none" / "no_vocab").
bool gguf_has_tokenizer(const GgufFile& file);
// The tokenizer the metadata describes; errors name the file and key.
std::unique_ptr<Tokenizer> tokenizer_from_gguf(const GgufFile& file);

// Writes `tokenizer` as llama.cpp's converter does, with the token list padded
// to `n_vocab` entries ("[PAD<i>]", unused) or cut to it (ids >= n_vocab, which
// the model cannot produce, are dropped). `pre`: tokenizer.ggml.pre for
// byte-level BPE ("gpt-2", "phi-2"). Refuses what llama.cpp would tokenize
// differently (a unigram or normalizing SentencePiece model, BPE with
// add_prefix_space, ignore_merges, stripping added tokens, other post-processors).
void write_gguf_tokenizer(const Tokenizer& tokenizer, int64_t n_vocab, std::string_view pre, GgufWriter& out);
// tokenizer.ggml.model "none" with the vocabulary size: llama.cpp loads such a
// model and runs it on token ids (for checkpoints that come without a tokenizer).
void write_gguf_no_tokenizer(int64_t n_vocab, GgufWriter& out);

}  // namespace tinyemo::lm
