// The eight emotion datasets TinyEmo evaluates on, read as they ship, each
// mapped to its taxonomy (taxonomy.h) with its split rules:
//   emotion6     images/<emotion>/<file>                                  split all
//   emotionroi   images/<emotion>/<file> + training_testing_split/{training,testing}.txt
//                ("<emotion>/<file>" lines)                               train, test
//   fi           <emotion>/<file>                                         all
//   artphoto     <prefix>_<anything>.<ext>, label = prefix ("sad" = sadness)  all
//   abstract     ABSTRACT_groundTruth.csv (image, votes per emotion) + the images beside it;
//                label = the column with the most votes, compared as numbers;
//                ties (and images without votes) dropped                  all
//   unbiasedemo  images/<emotion>/<subject>/<file>                        all
//   emoset       {train,val,test}.json, arrays of [label, relative path]  train, val, test
//   webemo       [partitioned_WEBEmo_fine/]{train,validation,test}/<emotion>/<file>
//                                                                         train, val, test
// Images are files with a .jpg/.jpeg/.png/.webp extension; hidden entries are
// ignored. Everything else that looks like part of the dataset but cannot be
// used is reported in `skipped` with the reason (unknown label, missing file,
// a tie, a malformed record...), never silently dropped.
#pragma once

#include <cstdint>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "data/taxonomy.h"

namespace tinyemo::data {

struct DatasetItem {
  std::string split;  // "all", "train", "val" or "test"
  std::string label;  // canonical label (at the chosen level)
  std::filesystem::path path;
  std::string key;    // path relative to the dataset root, without extension, '/'-separated: unique
};

struct SkippedEntry {
  std::string path;    // relative to the dataset root (or the record that named it)
  std::string reason;
};

struct ScanOptions {
  std::optional<std::filesystem::path> taxonomies;  // --taxonomies DIR
  std::string taxonomy;  // another taxonomy (name or .json file) instead of the format's own
  std::string level;     // a coarser level of the taxonomy ("" = its own labels; WEBEmo: "7", "2")
};

struct DatasetScan {
  std::string format;
  std::filesystem::path root;
  Taxonomy taxonomy;
  std::string level;
  std::vector<std::string> labels;    // the taxonomy's labels at `level`, in its order
  std::vector<DatasetItem> items;     // sorted by (split, key)
  std::vector<SkippedEntry> skipped;  // in the order found

  std::vector<std::string> splits() const;  // present, in the order all, train, val, test
  std::vector<const DatasetItem*> split(const std::string& name) const;
};

const std::vector<std::string>& dataset_formats();
bool is_dataset_format(const std::string& name);

// Reads the dataset at `root` in `format`. Throws (naming the path) when the
// layout's required files or folders are absent; problems with single images
// or records go to `skipped`.
DatasetScan scan_dataset(const std::string& format, const std::filesystem::path& root, const ScanOptions& options = {});

// {"format", "root", "taxonomy", "level", "labels", "splits": {SPLIT: {LABEL: COUNT}},
//  "skipped": [{"path", "reason"}]}
nlohmann::json scan_summary_json(const DatasetScan& scan);

}  // namespace tinyemo::data
