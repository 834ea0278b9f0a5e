// JSON files (HF config.json and friends) with typed field access whose
// errors name the file and the field.
#pragma once

#include <filesystem>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>

#include "core/error.h"

namespace tinyemo {

// A JSON object plus where it came from ("config.json", "config.json: vision_config").
class JsonObject {
 public:
  JsonObject(nlohmann::json value, std::string where);
  static JsonObject load(const std::filesystem::path& path);

  const nlohmann::json& json() const { return value_; }
  const std::string& where() const { return where_; }
  bool has(const std::string& key) const { return value_.contains(key) && !value_.at(key).is_null(); }

  template <class T>
  T get(const std::string& key) const {
    TE_CHECK(has(key), "{}: missing field \"{}\"", where_, key);
    return convert<T>(key);
  }
  template <class T>
  T get_or(const std::string& key, T fallback) const {
    return has(key) ? convert<T>(key) : fallback;
  }
  JsonObject object(const std::string& key) const;

 private:
  template <class T>
  T convert(const std::string& key) const {
    try {
      return value_.at(key).get<T>();
    } catch (const nlohmann::json::exception&) {
      fail("{}: field \"{}\" has the wrong type ({})", where_, key, value_.at(key).type_name());
    }
  }

  nlohmann::json value_;
  std::string where_;
};

}  // namespace tinyemo
