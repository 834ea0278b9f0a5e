// The audit's group assignment: a CSV file with a header row naming the
// columns `file`, `group` and optionally `label` (any order, case-insensitive),
// one row per image: `file` relative to the features folder (`anger/12.pt`),
// `group` any non-empty text, `label` the image's true emotion (may be empty).
// RFC 4180 quoting; UTF-8 BOM and CRLF line ends accepted.
//
// Structural problems (no header, unknown or duplicate columns, a row with the
// wrong number of fields, unterminated quotes) are errors naming the file and
// line; problems with single rows (empty file or group cell, a file listed
// twice) skip that row and are reported as warnings.
#pragma once

#include <filesystem>
#include <string>
#include <string_view>
#include <vector>

namespace tinyemo::analysis {

struct GroupRow {
  std::string file;
  std::string group;
  std::string label;  // empty: unknown
  int line = 0;       // 1-based line of the row's start in the file
};

struct GroupsCsv {
  std::vector<GroupRow> rows;
  bool has_label_column = false;
  // One line per reason rows were skipped (an empty cell, a file listed
  // again), with the count and the first few lines: a CSV with hundreds of
  // repeats gives one warning, not hundreds.
  std::vector<std::string> warnings;
  size_t rows_skipped = 0;
};

// `where` names the source in messages (the file path).
GroupsCsv parse_groups_csv(std::string_view text, const std::string& where);
GroupsCsv load_groups_csv(const std::filesystem::path& path);

}  // namespace tinyemo::analysis
