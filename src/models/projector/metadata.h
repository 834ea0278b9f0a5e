// Parsing the JSON strings that safetensors metadata holds (labels, files,
// config, split), with errors naming the file and the field.
#pragma once

#include <nlohmann/json.hpp>
#include <string>
#include <vector>

namespace tinyemo::projector {

// `where` names the file and field, e.g. "model.safetensors: metadata \"labels\"".
nlohmann::json parse_metadata_json(const std::string& text, const std::string& where);
std::vector<std::string> parse_string_array(const std::string& text, const std::string& where);
// The same, refusing a name given twice (labels, feature file keys): a label
// listed twice would score one class under two names, silently.
std::vector<std::string> parse_label_array(const std::string& text, const std::string& where);
// Refuses a repeated name; `where` says whose list it is.
void check_unique_names(const std::vector<std::string>& names, const std::string& where);

}  // namespace tinyemo::projector
