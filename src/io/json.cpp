#include "io/json.h"

#include "io/file.h"

namespace tinyemo {

JsonObject::JsonObject(nlohmann::json value, std::string where) : value_(std::move(value)), where_(std::move(where)) {
  TE_CHECK(value_.is_object(), "{}: expected a JSON object", where_);
}

JsonObject JsonObject::load(const std::filesystem::path& path) {
  const std::string text = read_file(path);
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(text);
  } catch (const nlohmann::json::exception& e) {
    fail("{}: not valid JSON: {}", path.string(), e.what());
  }
  return JsonObject(std::move(j), path.string());
}

JsonObject JsonObject::object(const std::string& key) const {
  TE_CHECK(has(key), "{}: missing field \"{}\"", where_, key);
  TE_CHECK(value_.at(key).is_object(), "{}: field \"{}\" is not an object", where_, key);
  return JsonObject(value_.at(key), where_ + ": " + key);
}

}  // namespace tinyemo
