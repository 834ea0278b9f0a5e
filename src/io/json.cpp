#include "io/json.h"

#include <unordered_set>
#include <vector>

#include "io/file.h"

namespace tinyemo {

namespace {

template <class Json>
Json parse_strict(std::string_view text, const std::string& where) {
  std::vector<std::unordered_set<std::string>> keys;  // one set per object being parsed
  const auto check = [&](int, typename Json::parse_event_t event, Json& parsed) {
    switch (event) {
      case Json::parse_event_t::object_start: keys.emplace_back(); break;
      case Json::parse_event_t::object_end: keys.pop_back(); break;
      case Json::parse_event_t::key: {
        const auto& key = parsed.template get_ref<const std::string&>();
        TE_CHECK(keys.back().insert(key).second, "{}: key \"{}\" appears twice in one object", where, key);
        break;
      }
      default: break;
    }
    return true;
  };
  try {
    return Json::parse(text.begin(), text.end(), check);
  } catch (const nlohmann::json::exception& e) {
    fail("{}: not valid JSON: {}", where, e.what());
  }
}

}  // namespace

nlohmann::json parse_json_text(std::string_view text, const std::string& where) {
  return parse_strict<nlohmann::json>(text, where);
}

nlohmann::ordered_json parse_ordered_json_text(std::string_view text, const std::string& where) {
  return parse_strict<nlohmann::ordered_json>(text, where);
}

JsonObject::JsonObject(nlohmann::json value, std::string where) : value_(std::move(value)), where_(std::move(where)) {
  TE_CHECK(value_.is_object(), "{}: expected a JSON object", where_);
}

JsonObject JsonObject::load(const std::filesystem::path& path) {
  return JsonObject(parse_json_text(read_file(path), path.string()), path.string());
}

JsonObject JsonObject::object(const std::string& key) const {
  TE_CHECK(has(key), "{}: missing field \"{}\"", where_, key);
  TE_CHECK(value_.at(key).is_object(), "{}: field \"{}\" is not an object", where_, key);
  return JsonObject(value_.at(key), where_ + ": " + key);
}

}  // namespace tinyemo
