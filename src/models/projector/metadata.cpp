#include "models/projector/metadata.h"

#include "core/error.h"

namespace tinyemo::projector {

nlohmann::json parse_metadata_json(const std::string& text, const std::string& where) {
  try {
    return nlohmann::json::parse(text);
  } catch (const nlohmann::json::exception& e) {
    fail("{} is not valid JSON: {}", where, e.what());
  }
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

}  // namespace tinyemo::projector
