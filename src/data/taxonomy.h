// Label taxonomies: which labels a dataset's images carry, under which names
// its files spell them, and coarser levels of them. They are data files
// (data/taxonomies/<name>.json, embedded in the binary at build time); a user
// edits or adds taxonomies by putting <name>.json files in a folder given by
// --taxonomies DIR or the environment variable TINYEMO_TAXONOMIES, which take
// precedence over the built-in ones. Format:
//   {"name": "emotion6", "description": "...",
//    "labels": ["anger", ...],                    canonical labels, unique
//    "aliases": {"Anger": "anger", "sad": ...},   other spellings in the dataset (optional)
//    "levels": {"7": {"affection": "love", ...}}} coarser label sets (optional;
//                                                 every label mapped)
#pragma once

#include <filesystem>
#include <map>
#include <optional>
#include <string>
#include <vector>

namespace tinyemo::data {

struct Taxonomy {
  std::string name, description;
  std::string source;  // "built-in data/taxonomies/emotion6.json" or the file read
  std::vector<std::string> labels;
  std::map<std::string, std::string> aliases;
  std::map<std::string, std::map<std::string, std::string>> levels;

  // The canonical label a dataset's spelling means, or nullopt.
  std::optional<std::string> resolve(const std::string& name) const;
  // The labels of `level` ("" = the taxonomy's own), in first-seen order of `labels`.
  std::vector<std::string> level_labels(const std::string& level) const;
  // A canonical label at `level` ("" = unchanged); errors name the level.
  const std::string& at_level(const std::string& label, const std::string& level) const;
};

// Parses and validates a taxonomy (duplicate labels, aliases or levels that
// name no label, labels a level leaves out are refused, naming `source`).
Taxonomy parse_taxonomy(const std::string& json_text, const std::string& source);

// `name`: a file path (ends in .json) or a taxonomy name looked up in
// `override_dir` (when given), then $TINYEMO_TAXONOMIES, then the built-in set.
Taxonomy load_taxonomy(const std::string& name, const std::optional<std::filesystem::path>& override_dir = {});

// Names of the built-in taxonomies.
std::vector<std::string> builtin_taxonomy_names();

}  // namespace tinyemo::data
