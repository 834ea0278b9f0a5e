#include "data/taxonomy.h"

#include <algorithm>
#include <cstdlib>
#include <nlohmann/json.hpp>
#include <set>

#include "core/error.h"
#include "io/file.h"

namespace tinyemo::data {

namespace {

struct BuiltinTaxonomy {
  const char* name;
  const char* json;
};
// Generated at configure time from data/taxonomies/*.json (src/CMakeLists.txt).
#include "data/builtin_taxonomies.inc"

constexpr size_t kMaxTaxonomyBytes = 1 << 20;

}  // namespace

std::optional<std::string> Taxonomy::resolve(const std::string& name) const {
  if (std::find(labels.begin(), labels.end(), name) != labels.end()) return name;
  const auto it = aliases.find(name);
  if (it != aliases.end()) return it->second;
  return std::nullopt;
}

std::vector<std::string> Taxonomy::level_labels(const std::string& level) const {
  if (level.empty()) return labels;
  std::vector<std::string> out;
  for (const auto& l : labels) {
    const std::string& coarse = at_level(l, level);
    if (std::find(out.begin(), out.end(), coarse) == out.end()) out.push_back(coarse);
  }
  return out;
}

const std::string& Taxonomy::at_level(const std::string& label, const std::string& level) const {
  if (level.empty()) return label;
  const auto lv = levels.find(level);
  if (lv == levels.end()) {
    std::string known;
    for (const auto& [k, v] : levels) known += (known.empty() ? "" : ", ") + k;
    fail("{}: taxonomy {} has no level \"{}\" (levels: {})", source, name, level, known.empty() ? "none" : known);
  }
  const auto it = lv->second.find(label);
  TE_CHECK(it != lv->second.end(), "{}: level \"{}\" does not map label \"{}\"", source, level, label);
  return it->second;
}

Taxonomy parse_taxonomy(const std::string& text, const std::string& source) {
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(text);
  } catch (const std::exception& e) {
    fail("{}: not JSON ({})", source, e.what());
  }
  TE_CHECK(j.is_object(), "{}: a taxonomy is a JSON object", source);
  Taxonomy t;
  t.source = source;
  try {
    t.name = j.at("name").get<std::string>();
    t.description = j.value("description", "");
    t.labels = j.at("labels").get<std::vector<std::string>>();
    if (j.contains("aliases")) t.aliases = j.at("aliases").get<std::map<std::string, std::string>>();
    if (j.contains("levels")) t.levels = j.at("levels").get<std::map<std::string, std::map<std::string, std::string>>>();
  } catch (const nlohmann::json::exception& e) {
    fail("{}: expected {{name, labels: [..], aliases: {{..}}, levels: {{..}}}} with strings ({})", source, e.what());
  }
  TE_CHECK(!t.name.empty(), "{}: empty taxonomy name", source);
  TE_CHECK(!t.labels.empty(), "{}: taxonomy {} has no labels", source, t.name);
  std::set<std::string> seen;
  for (const auto& l : t.labels) {
    TE_CHECK(!l.empty(), "{}: an empty label", source);
    TE_CHECK(seen.insert(l).second, "{}: label \"{}\" is listed twice", source, l);
  }
  for (const auto& [alias, label] : t.aliases) {
    TE_CHECK(seen.count(label), "{}: alias \"{}\" names \"{}\", which is not a label", source, alias, label);
    TE_CHECK(!seen.count(alias) || alias == label, "{}: alias \"{}\" is itself a label", source, alias);
  }
  for (const auto& [level, map] : t.levels) {
    for (const auto& [label, coarse] : map) {
      TE_CHECK(seen.count(label), "{}: level \"{}\" maps \"{}\", which is not a label", source, level, label);
      TE_CHECK(!coarse.empty(), "{}: level \"{}\" maps \"{}\" to an empty label", source, level, label);
    }
    for (const auto& l : t.labels) {
      TE_CHECK(map.count(l), "{}: level \"{}\" leaves label \"{}\" out", source, level, l);
    }
  }
  return t;
}

std::vector<std::string> builtin_taxonomy_names() {
  std::vector<std::string> out;
  for (const auto& b : kBuiltinTaxonomies) out.emplace_back(b.name);
  return out;
}

Taxonomy load_taxonomy(const std::string& name, const std::optional<std::filesystem::path>& override_dir) {
  namespace fs = std::filesystem;
  std::error_code ec;
  auto read_small = [](const fs::path& p) {
    TE_CHECK(fs::file_size(p) <= kMaxTaxonomyBytes, "{}: larger than 1 MB; not a taxonomy", p.string());
    return read_file(p);
  };
  if (name.size() > 5 && name.ends_with(".json")) {
    TE_CHECK(fs::is_regular_file(name, ec), "{}: no such taxonomy file", name);
    return parse_taxonomy(read_small(name), name);
  }
  std::vector<fs::path> dirs;
  if (override_dir) {
    TE_CHECK(fs::is_directory(*override_dir, ec), "{}: taxonomies folder not found", override_dir->string());
    dirs.push_back(*override_dir);
  }
  if (const char* env = std::getenv("TINYEMO_TAXONOMIES"); env != nullptr && *env != '\0') dirs.emplace_back(env);
  for (const fs::path& dir : dirs) {
    const fs::path file = dir / (name + ".json");
    if (fs::is_regular_file(file, ec)) {
      Taxonomy t = parse_taxonomy(read_small(file), file.string());
      TE_CHECK(t.name == name, "{}: names itself \"{}\", not \"{}\"", file.string(), t.name, name);
      return t;
    }
  }
  for (const auto& b : kBuiltinTaxonomies) {
    if (name == b.name) return parse_taxonomy(b.json, std::string("built-in data/taxonomies/") + b.name + ".json");
  }
  std::string known;
  for (const auto& n : builtin_taxonomy_names()) known += (known.empty() ? "" : ", ") + n;
  fail("no taxonomy \"{}\" (built-in: {}; or a .json file, or --taxonomies DIR / TINYEMO_TAXONOMIES with {}.json)", name,
       known, name);
}

}  // namespace tinyemo::data
