#include "analysis/groups_csv.h"

#include <algorithm>
#include <map>

#include "core/error.h"
#include "io/file.h"

namespace tinyemo::analysis {
namespace {

struct Record {
  std::vector<std::string> fields;
  int line = 0;
};

std::string trim(std::string_view s) {
  const auto not_space = [](char c) { return c != ' ' && c != '\t'; };
  const auto b = std::find_if(s.begin(), s.end(), not_space);
  const auto e = std::find_if(s.rbegin(), s.rend(), not_space).base();
  return b < e ? std::string(b, e) : std::string();
}

// RFC 4180 records; blank lines are skipped.
std::vector<Record> split_records(std::string_view text, const std::string& where) {
  if (text.substr(0, 3) == "\xEF\xBB\xBF") text.remove_prefix(3);
  std::vector<Record> records;
  Record current;
  std::string field;
  bool quoted = false, field_was_quoted = false, record_has_content = false;
  int line = 1, quote_line = 0;
  current.line = 1;
  const auto end_field = [&] {
    current.fields.push_back(field_was_quoted ? field : trim(field));
    field.clear();
    field_was_quoted = false;
  };
  const auto end_record = [&] {
    end_field();
    if (record_has_content) records.push_back(std::move(current));
    current = Record{};
    record_has_content = false;
  };
  for (size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    if (quoted) {
      if (c == '"') {
        if (i + 1 < text.size() && text[i + 1] == '"') {
          field += '"';
          ++i;
        } else {
          quoted = false;
        }
      } else {
        if (c == '\n') ++line;
        field += c;
      }
      continue;
    }
    if (c == '"') {
      TE_CHECK(trim(field).empty(), "{}: line {}: a quote inside an unquoted field", where, line);
      field.clear();
      quoted = field_was_quoted = record_has_content = true;
      quote_line = line;
    } else if (c == ',') {
      end_field();
      record_has_content = true;
    } else if (c == '\n' || c == '\r') {
      if (c == '\r' && i + 1 < text.size() && text[i + 1] == '\n') ++i;
      end_record();
      current.line = ++line;
    } else {
      TE_CHECK(!field_was_quoted, "{}: line {}: text after a closing quote", where, line);
      if (c == '\0') fail("{}: line {}: NUL byte (not a text CSV file?)", where, line);
      field += c;
      if (c != ' ' && c != '\t') record_has_content = true;
    }
  }
  TE_CHECK(!quoted, "{}: line {}: quoted field is not closed", where, quote_line);
  end_record();
  return records;
}

std::string lower(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return s;
}

}  // namespace

GroupsCsv parse_groups_csv(std::string_view text, const std::string& where) {
  const std::vector<Record> records = split_records(text, where);
  TE_CHECK(!records.empty(), "{}: empty file (expected a header row: file,group[,label])", where);
  const Record& header = records[0];
  int file_col = -1, group_col = -1, label_col = -1;
  for (size_t c = 0; c < header.fields.size(); ++c) {
    const std::string name = lower(header.fields[c]);
    int* slot = name == "file" ? &file_col : name == "group" ? &group_col : name == "label" ? &label_col : nullptr;
    TE_CHECK(slot != nullptr, "{}: line {}: unknown column \"{}\" (the columns are file, group and optionally label)",
             where, header.line, header.fields[c]);
    TE_CHECK(*slot < 0, "{}: line {}: column \"{}\" appears twice", where, header.line, name);
    *slot = static_cast<int>(c);
  }
  TE_CHECK(file_col >= 0, "{}: line {}: no \"file\" column in the header", where, header.line);
  TE_CHECK(group_col >= 0, "{}: line {}: no \"group\" column in the header", where, header.line);

  GroupsCsv csv;
  csv.has_label_column = label_col >= 0;
  std::map<std::string, int> seen;  // file -> line of its first row
  // Skipped rows by reason, in the order the reasons first occur: the example text of each.
  std::vector<std::pair<std::string, std::vector<std::string>>> skipped;
  auto skip = [&](const std::string& reason, std::string example) {
    auto it = std::find_if(skipped.begin(), skipped.end(), [&](const auto& s) { return s.first == reason; });
    if (it == skipped.end()) it = skipped.insert(skipped.end(), {reason, {}});
    it->second.push_back(std::move(example));
    ++csv.rows_skipped;
  };
  for (size_t r = 1; r < records.size(); ++r) {
    const Record& rec = records[r];
    TE_CHECK(rec.fields.size() == header.fields.size(), "{}: line {}: {} fields, the header has {}", where, rec.line,
             rec.fields.size(), header.fields.size());
    GroupRow row{rec.fields[file_col], rec.fields[group_col], label_col >= 0 ? rec.fields[label_col] : "", rec.line};
    if (row.file.empty() || row.group.empty()) {
      skip(fmt::format("empty {} cell", row.file.empty() ? "file" : "group"), fmt::format("line {}", rec.line));
      continue;
    }
    const auto [it, inserted] = seen.emplace(row.file, rec.line);
    if (!inserted) {
      skip("a file already listed on an earlier line (the first row is used)",
           fmt::format("line {} (\"{}\", first on line {})", rec.line, row.file, it->second));
      continue;
    }
    csv.rows.push_back(std::move(row));
  }
  constexpr size_t kNamed = 5;
  for (const auto& [reason, examples] : skipped) {
    std::string named;
    for (size_t i = 0; i < std::min(examples.size(), kNamed); ++i) named += (i ? ", " : "") + examples[i];
    if (examples.size() > kNamed) named += fmt::format(", ... ({} more)", examples.size() - kNamed);
    csv.warnings.push_back(fmt::format("{}: {} row{} skipped: {}: {}", where, examples.size(),
                                       examples.size() == 1 ? "" : "s", reason, named));
  }
  if (csv.rows.empty()) fail("{}: no usable rows (expected file,group[,label] after the header)", where);
  return csv;
}

GroupsCsv load_groups_csv(const std::filesystem::path& path) {
  return parse_groups_csv(read_file(path), path.string());
}

}  // namespace tinyemo::analysis
