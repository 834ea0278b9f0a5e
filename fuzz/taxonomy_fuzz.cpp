// fuzz-link: tinyemo_data
// Taxonomy files (data/taxonomy.h) on any bytes: parse_taxonomy accepts them
// or throws tinyemo::Error; an accepted taxonomy resolves each of its labels
// to itself and maps every label to a label of each of its levels.
#include <algorithm>
#include <string>

#include "core/error.h"
#include "data/taxonomy.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  try {
    const tinyemo::data::Taxonomy t = tinyemo::data::parse_taxonomy(text, "fuzz.json");
    for (const std::string& label : t.labels) {
      const auto r = t.resolve(label);
      if (!r || *r != label) __builtin_trap();
    }
    for (const auto& [level, mapping] : t.levels) {
      const std::vector<std::string> coarse = t.level_labels(level);
      for (const std::string& label : t.labels) {
        const std::string& to = t.at_level(label, level);
        if (std::find(coarse.begin(), coarse.end(), to) == coarse.end()) __builtin_trap();
      }
    }
  } catch (const tinyemo::Error&) {
  }
  return 0;
}
