// fuzz-link: tinyemo_analysis
// Word lists of `tinyemo bias associations` (analysis/associations.h): any
// bytes are refused with an Error or give distinct, non-empty, trimmed terms,
// each with non-negative token ids when given as "ids:".
#include <set>
#include <string_view>

#include "analysis/associations.h"
#include "core/error.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  tinyemo::analysis::TermList list;
  try {
    list = tinyemo::analysis::parse_term_list(text, "fuzz/terms.txt", "terms");
  } catch (const tinyemo::Error&) {
    return 0;
  }
  if (list.terms.empty() || list.terms.size() != list.given_ids.size()) __builtin_trap();
  std::set<std::string> seen;
  for (size_t i = 0; i < list.terms.size(); ++i) {
    const std::string& t = list.terms[i];
    if (t.empty() || t[0] == '#' || t.front() == ' ' || t.back() == ' ' || !seen.insert(t).second) __builtin_trap();
    for (int32_t id : list.given_ids[i])
      if (id < 0) __builtin_trap();
  }
  return 0;
}
