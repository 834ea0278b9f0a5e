// fuzz-link: tinyemo_lm
// tokenizer.json loader + byte-level BPE: the input is the JSON text, then
// optionally a NUL byte and a text to encode (seeds: fuzz/corpus/tokenizer_json,
// made by tools/gen_tokenizer_fuzz_seeds.py). A file is refused with an Error
// or loads; a loaded tokenizer encodes any bytes, and its ids decode back to
// exactly those bytes unless the file asks for changes (a prefix space,
// added tokens that strip whitespace).
#include <nlohmann/json.hpp>
#include <string_view>

#include "core/error.h"
#include "models/lm/bpe_tokenizer.h"

namespace {

bool alters_text(std::string_view json) {
  const auto doc = nlohmann::json::parse(json.begin(), json.end());
  const auto& pre = doc["pre_tokenizer"];
  if (pre.contains("add_prefix_space") && pre["add_prefix_space"] == true) return true;
  if (!doc.contains("added_tokens") || !doc["added_tokens"].is_array()) return false;
  for (const auto& t : doc["added_tokens"]) {
    if ((t.contains("lstrip") && t["lstrip"] == true) || (t.contains("rstrip") && t["rstrip"] == true)) return true;
  }
  return false;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view input(reinterpret_cast<const char*>(data), size);
  const size_t nul = input.find('\0');
  const std::string_view json = input.substr(0, nul);
  const std::string_view text = nul == std::string_view::npos ? "Hello world <|endoftext|> 2024" : input.substr(nul + 1);
  std::unique_ptr<tinyemo::lm::BpeTokenizer> tokenizer;
  try {
    tokenizer = tinyemo::lm::BpeTokenizer::from_tokenizer_json(json, "fuzz/tokenizer.json");
  } catch (const tinyemo::Error&) {
    return 0;  // refused cleanly: what the loader must do with bad input
  }
  tokenizer->decode(tokenizer->encode(text, true), false);
  const auto ids = tokenizer->encode(text, false);
  if (tokenizer->decode(ids, false) != text && !alters_text(json)) __builtin_trap();
  return 0;
}
