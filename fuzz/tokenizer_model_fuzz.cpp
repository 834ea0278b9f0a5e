// fuzz-link: tinyemo_lm
// SentencePiece tokenizer.model loading (libsentencepiece parses the protobuf;
// it is not instrumented, so this mostly checks that no corrupt model crashes
// it or us) and, when a model loads, encoding and decoding a fixed text.
// Seed: fuzz/corpus/tokenizer_model/llama_like.model, made with
//   spm_train --input=tests/data/tokenizers/spm_corpus.txt --model_prefix=llama_like --model_type=bpe \
//     --vocab_size=400 --byte_fallback=true --split_digits=true --remove_extra_whitespaces=false \
//     --normalization_rule_name=identity --unk_id=0 --bos_id=1 --eos_id=2 --pad_id=-1 --num_threads=1
#include <string_view>

#include "core/error.h"
#include "models/lm/sentencepiece_tokenizer.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  try {
    const tinyemo::lm::SentencePieceTokenizer tokenizer(
        std::string_view(reinterpret_cast<const char*>(data), size), "fuzz/tokenizer.model");
    const auto ids = tokenizer.encode("Hello world </s> 2024 — 😀 naïve", true);
    tokenizer.decode(ids, false);
    tokenizer.decode(ids, true);
  } catch (const tinyemo::Error&) {
    // refused cleanly
  }
  return 0;
}
