#include "models/projector/metadata.h"

#include <set>

#include "core/error.h"
#include "io/json.h"

namespace tinyemo::projector {

nlohmann::json parse_metadata_json(const std::string& text, const std::string& where) {
  return parse_json_text(text, where);
}

std::vector<std::string> parse_string_array(const std::string& text, const std::string& where) {
  const nlohmann::json j = parse_metadata_json(text, where);
  TE_CHECK(j.is_array(), "{} must be a JSON array of strings", where);
  std::vector<std::string> out;
  for (const auto& v : j) {
    TE_CHECK(v.is_string(), "{} must be a JSON array of strings", where);
    out.push_back(v.get<std::string>());
  }
  return out;
}

void check_unique_names(const std::vector<std::string>& names, const std::string& where) {
  std::set<std::string_view> seen;
  for (const auto& n : names) {
    TE_CHECK(seen.insert(n).second, "{}: \"{}\" is listed twice (names must be unique)", where, n);
  }
}

std::vector<std::string> parse_label_array(const std::string& text, const std::string& where) {
  std::vector<std::string> labels = parse_string_array(text, where);
  check_unique_names(labels, where);
  return labels;
}

}  // namespace tinyemo::projector
