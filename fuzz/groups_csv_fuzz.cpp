// fuzz-link: tinyemo_analysis
// The bias audit's groups CSV (analysis/groups_csv.h): any bytes are refused
// with an Error or parse into rows that each have a file and a group, name no
// file twice, and start on increasing lines after the header.
#include <set>
#include <string_view>

#include "analysis/groups_csv.h"
#include "core/error.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  tinyemo::analysis::GroupsCsv csv;
  try {
    csv = tinyemo::analysis::parse_groups_csv(text, "fuzz/groups.csv");
  } catch (const tinyemo::Error&) {
    return 0;
  }
  std::set<std::string> files;
  int last_line = 1;
  for (const auto& row : csv.rows) {
    if (row.file.empty() || row.group.empty() || !files.insert(row.file).second || row.line <= last_line)
      __builtin_trap();
    if (!csv.has_label_column && !row.label.empty()) __builtin_trap();
    last_line = row.line;
  }
  return 0;
}
