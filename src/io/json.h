// JSON files (HF config.json and friends) with typed field access whose
// errors name the file and the field.
#pragma once

#include <cmath>
#include <cstdint>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <limits>
#include <optional>
#include <string>
#include <string_view>
#include <type_traits>

#include "core/error.h"

namespace tinyemo {

// Parses JSON text, refusing an object that names a key twice (anywhere in
// the document): nlohmann keeps the last value of a repeated key silently, so
// a file could say two things and be read as one. `where` names the text in
// errors ("config.json", "model.safetensors: header").
nlohmann::json parse_json_text(std::string_view text, const std::string& where);
nlohmann::ordered_json parse_ordered_json_text(std::string_view text, const std::string& where);

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
    const nlohmann::json& v = value_.at(key);
    if constexpr (std::is_integral_v<T> && !std::is_same_v<T, bool>) {
      // nlohmann converts 64.5 to 64 and -1 to 2^64 - 1 without a word: a
      // config value that must be an integer is refused unless it is one.
      if (v.is_number_float()) {
        const double d = v.get<double>();
        TE_CHECK(std::abs(d) < 9.0e15 && d == std::trunc(d),
                 "{}: field \"{}\" must be an integer, got {}", where_, key, v.dump());
        return checked_integer<T>(key, static_cast<int64_t>(d), v);
      }
      TE_CHECK(v.is_number_integer(), "{}: field \"{}\" has the wrong type ({}; an integer is expected)", where_, key,
               v.type_name());
      if (v.is_number_unsigned()) {
        const uint64_t u = v.get<uint64_t>();
        TE_CHECK(u <= static_cast<uint64_t>(std::numeric_limits<T>::max()), "{}: field \"{}\" = {} is out of range",
                 where_, key, u);
        return static_cast<T>(u);
      }
      return checked_integer<T>(key, v.get<int64_t>(), v);
    } else {
      try {
        return v.get<T>();
      } catch (const nlohmann::json::exception&) {
        fail("{}: field \"{}\" has the wrong type ({})", where_, key, v.type_name());
      }
    }
  }
  template <class T>
  T checked_integer(const std::string& key, int64_t i, const nlohmann::json& v) const {
    if constexpr (std::is_signed_v<T>) {
      TE_CHECK(i >= static_cast<int64_t>(std::numeric_limits<T>::min()) &&
                   i <= static_cast<int64_t>(std::numeric_limits<T>::max()),
               "{}: field \"{}\" = {} is out of range", where_, key, v.dump());
    } else {
      TE_CHECK(i >= 0 && static_cast<uint64_t>(i) <= static_cast<uint64_t>(std::numeric_limits<T>::max()),
               "{}: field \"{}\" = {} is out of range (must be non-negative)", where_, key, v.dump());
    }
    return static_cast<T>(i);
  }

  nlohmann::json value_;
  std::string where_;
};

}  // namespace tinyemo
