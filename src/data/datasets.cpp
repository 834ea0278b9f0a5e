#include "data/datasets.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <map>
#include <set>
#include <sstream>

#include "core/error.h"
#include "io/file.h"
#include "io/image.h"

namespace tinyemo::data {

namespace fs = std::filesystem;

namespace {

constexpr const char* kSplitOrder[] = {"all", "train", "val", "test"};
// Index files (split lists, CSV, JSON) are small; refuse what is far larger.
constexpr uintmax_t kMaxIndexBytes = uintmax_t{256} << 20;

bool hidden(const fs::path& p) { return p.filename().string().starts_with("."); }

// Sorted non-hidden entries of `dir` (directories when `dirs`, else regular files).
std::vector<fs::path> list(const fs::path& dir, bool dirs) {
  std::error_code ec;
  std::vector<fs::path> out;
  for (auto it = fs::directory_iterator(dir, fs::directory_options::skip_permission_denied, ec);
       it != fs::directory_iterator(); it.increment(ec)) {
    TE_CHECK(!ec, "{}: cannot list: {}", dir.string(), ec.message());
    if (hidden(it->path())) continue;
    if (dirs ? it->is_directory(ec) : it->is_regular_file(ec)) out.push_back(it->path());
  }
  TE_CHECK(!ec, "{}: cannot list: {}", dir.string(), ec.message());
  std::sort(out.begin(), out.end());
  return out;
}

std::string read_index(const fs::path& p) {
  std::error_code ec;
  const uintmax_t size = fs::file_size(p, ec);
  TE_CHECK(!ec, "{}: cannot read: {}", p.string(), ec.message());
  TE_CHECK(size <= kMaxIndexBytes, "{}: {} bytes; too large for a dataset index file", p.string(), size);
  return read_file(p);
}

void require_dir(const fs::path& p, const std::string& format, const std::string& layout) {
  std::error_code ec;
  TE_CHECK(fs::is_directory(p, ec), "{}: not found; a {} dataset ships {}", p.string(), format, layout);
}

std::string trim(std::string_view s, std::string_view chars = " \t\r\n") {
  const size_t b = s.find_first_not_of(chars);
  if (b == std::string_view::npos) return "";
  const size_t e = s.find_last_not_of(chars);
  return std::string(s.substr(b, e - b + 1));
}

// One CSV line into fields (double-quoted fields may hold commas and "" escapes).
std::vector<std::string> csv_fields(std::string_view line) {
  std::vector<std::string> out(1);
  bool quoted = false;
  for (size_t i = 0; i < line.size(); ++i) {
    const char c = line[i];
    if (quoted) {
      if (c == '"' && i + 1 < line.size() && line[i + 1] == '"') {
        out.back().push_back('"');
        ++i;
      } else if (c == '"') {
        quoted = false;
      } else {
        out.back().push_back(c);
      }
    } else if (c == '"') {
      quoted = true;
    } else if (c == ',') {
      out.emplace_back();
    } else {
      out.back().push_back(c);
    }
  }
  return out;
}

// A CSV cell as TinyEmo's loader reads it: whitespace and single quotes stripped.
std::string cell(std::string_view s) { return trim(trim(s), "'"); }

class Builder {
 public:
  Builder(DatasetScan& scan) : scan_(scan) {}

  std::string rel(const fs::path& p) const { return p.lexically_relative(scan_.root).generic_string(); }

  void skip(const std::string& path, std::string reason) { scan_.skipped.push_back({path, std::move(reason)}); }

  // An image of `split` whose dataset spells its label `raw`.
  void add(const std::string& split, const std::string& raw, const fs::path& path) {
    const std::string r = rel(path);
    if (!has_image_extension(path)) {
      skip(r, "not an image file (.jpg, .jpeg, .png, .webp)");
      return;
    }
    const std::optional<std::string> label = scan_.taxonomy.resolve(raw);
    if (!label) {
      skip(r, fmt::format("label \"{}\" is not in taxonomy {} ({})", raw, scan_.taxonomy.name, scan_.taxonomy.source));
      return;
    }
    const fs::path relative = path.lexically_relative(scan_.root);
    std::string key = (relative.parent_path() / relative.stem()).generic_string();
    if (const auto [it, inserted] = keys_.emplace(key, r); !inserted) {
      skip(r, fmt::format("same name without extension as {} (already {})", it->second, split_of_.at(key)));
      return;
    }
    split_of_[key] = split;
    scan_.items.push_back({split, scan_.taxonomy.at_level(*label, scan_.level), path, std::move(key)});
  }

  // Every non-hidden file directly in `dir` as an image of `split` labelled `raw`.
  void add_folder(const std::string& split, const std::string& raw, const fs::path& dir) {
    for (const fs::path& f : list(dir, false)) add(split, raw, f);
  }

 private:
  DatasetScan& scan_;
  std::map<std::string, std::string> keys_;      // key -> first file
  std::map<std::string, std::string> split_of_;  // key -> its split
};

// <root>/<emotion>/<file> (FI), or the same under images/ (Emotion6).
void scan_class_folders(Builder& b, const fs::path& dir, const std::string& split) {
  for (const fs::path& cls : list(dir, true)) b.add_folder(split, cls.filename().string(), cls);
  for (const fs::path& f : list(dir, false)) b.skip(b.rel(f), "a file outside the class folders");
}

void scan_emotion6(Builder& b, const fs::path& root) {
  require_dir(root / "images", "emotion6", "images/<emotion>/*.jpg");
  scan_class_folders(b, root / "images", "all");
}

void scan_fi(Builder& b, const fs::path& root) {
  require_dir(root, "fi", "one folder per emotion");
  scan_class_folders(b, root, "all");
}

void scan_emotionroi(Builder& b, const fs::path& root) {
  const std::string layout = "images/<emotion>/ and training_testing_split/{training,testing}.txt";
  require_dir(root / "images", "emotionroi", layout);
  std::set<std::string> listed;  // "<emotion>/<file>" of every accepted line
  for (const auto& [file, split] : {std::pair{"training.txt", "train"}, std::pair{"testing.txt", "test"}}) {
    const fs::path list_file = root / "training_testing_split" / file;
    std::error_code ec;
    TE_CHECK(fs::is_regular_file(list_file, ec), "{}: not found; an emotionroi dataset ships {}", list_file.string(),
             layout);
    std::istringstream in(read_index(list_file));
    int64_t line_no = 0;
    for (std::string line; std::getline(in, line);) {
      ++line_no;
      const std::string entry = trim(line);
      if (entry.empty()) continue;
      const std::string where = fmt::format("training_testing_split/{}:{}", file, line_no);
      const size_t slash = entry.find('/');
      if (slash == std::string::npos || slash == 0 || slash + 1 == entry.size() ||
          entry.find('/', slash + 1) != std::string::npos || entry.find("..") != std::string::npos) {
        b.skip(where, fmt::format("\"{}\" is not <emotion>/<file>", entry));
        continue;
      }
      const fs::path image = root / "images" / entry;
      if (!fs::is_regular_file(image, ec)) {
        b.skip(b.rel(image), fmt::format("listed in {} but missing", file));
        continue;
      }
      if (!listed.insert(entry).second) {
        b.skip(b.rel(image), fmt::format("listed again in {} (line {})", file, line_no));
        continue;
      }
      b.add(split, entry.substr(0, slash), image);
    }
  }
  for (const fs::path& cls : list(root / "images", true)) {
    for (const fs::path& f : list(cls, false)) {
      const std::string entry = cls.filename().string() + "/" + f.filename().string();
      if (!listed.count(entry)) b.skip(b.rel(f), "in neither training.txt nor testing.txt");
    }
  }
}

void scan_artphoto(Builder& b, const fs::path& root) {
  require_dir(root, "artphoto", "<emotion>_<n>.jpg files");
  for (const fs::path& f : list(root, false)) {
    const std::string name = f.filename().string();
    const size_t underscore = name.find('_');
    if (!has_image_extension(f)) {
      b.skip(b.rel(f), "not an image file (.jpg, .jpeg, .png, .webp)");
    } else if (underscore == std::string::npos || underscore == 0) {
      b.skip(b.rel(f), "no <emotion>_ prefix in the file name");
    } else {
      b.add("all", name.substr(0, underscore), f);
    }
  }
}

void scan_abstract(Builder& b, const fs::path& root) {
  const fs::path csv = root / "ABSTRACT_groundTruth.csv";
  std::error_code ec;
  TE_CHECK(fs::is_regular_file(csv, ec), "{}: not found; an abstract dataset ships ABSTRACT_groundTruth.csv beside its images",
           csv.string());
  std::istringstream in(read_index(csv));
  std::string line;
  TE_CHECK(static_cast<bool>(std::getline(in, line)), "{}: empty", csv.string());
  std::vector<std::string> header = csv_fields(line);
  for (auto& h : header) h = cell(h);
  TE_CHECK(header.size() >= 3, "{}: header has {} columns; expected the image column and one per emotion", csv.string(),
           header.size());
  int64_t line_no = 1;
  while (std::getline(in, line)) {
    ++line_no;
    if (trim(line).empty()) continue;
    const std::string where = fmt::format("ABSTRACT_groundTruth.csv:{}", line_no);
    const std::vector<std::string> fields = csv_fields(line);
    if (fields.size() != header.size()) {
      b.skip(where, fmt::format("{} fields, the header has {}", fields.size(), header.size()));
      continue;
    }
    const std::string image = cell(fields[0]);
    if (image.empty() || image.find('/') != std::string::npos || image.find('\\') != std::string::npos) {
      b.skip(where, fmt::format("\"{}\" is not an image file name", image));
      continue;
    }
    // Votes as numbers (TinyEmo's loader compares the strings, so "10" < "9").
    std::vector<double> votes;
    std::string bad;
    for (size_t c = 1; c < fields.size(); ++c) {
      const std::string v = cell(fields[c]);
      double x = 0.0;
      const auto [ptr, err] = std::from_chars(v.data(), v.data() + v.size(), x);
      if (v.empty() || err != std::errc() || ptr != v.data() + v.size() || !std::isfinite(x) || x < 0) {
        bad = fmt::format("vote \"{}\" for {} is not a non-negative number", v, header[c]);
        break;
      }
      votes.push_back(x);
    }
    if (!bad.empty()) {
      b.skip(where + " (" + image + ")", bad);
      continue;
    }
    const double best = *std::max_element(votes.begin(), votes.end());
    std::vector<std::string> winners;
    for (size_t c = 0; c < votes.size(); ++c) {
      if (votes[c] == best) winners.push_back(header[c + 1]);
    }
    if (best <= 0.0) {
      b.skip(image, "no votes");
      continue;
    }
    if (winners.size() > 1) {
      std::string names;
      for (const auto& w : winners) names += (names.empty() ? "" : ", ") + w;
      b.skip(image, fmt::format("tie: {} with {} votes each", names, best));
      continue;
    }
    const fs::path path = root / image;
    if (!fs::is_regular_file(path, ec)) {
      b.skip(image, "listed in ABSTRACT_groundTruth.csv but missing");
      continue;
    }
    b.add("all", winners[0], path);
  }
}

void scan_unbiasedemo(Builder& b, const fs::path& root) {
  require_dir(root / "images", "unbiasedemo", "images/<emotion>/<subject>/*.jpg");
  for (const fs::path& cls : list(root / "images", true)) {
    for (const fs::path& subject : list(cls, true)) b.add_folder("all", cls.filename().string(), subject);
    for (const fs::path& f : list(cls, false)) b.skip(b.rel(f), "not in a <subject> folder");
  }
}

void scan_emoset(Builder& b, const fs::path& root) {
  require_dir(root, "emoset", "{train,val,test}.json and the images they list");
  int files = 0;
  std::error_code ec;
  for (const char* split : {"train", "val", "test"}) {
    const fs::path index = root / (std::string(split) + ".json");
    if (!fs::is_regular_file(index, ec)) continue;
    ++files;
    nlohmann::json j;
    try {
      j = nlohmann::json::parse(read_index(index));
    } catch (const nlohmann::json::exception& e) {
      fail("{}: not JSON ({})", index.string(), e.what());
    }
    TE_CHECK(j.is_array(), "{}: expected an array of [label, path] records", index.string());
    for (size_t i = 0; i < j.size(); ++i) {
      const std::string where = fmt::format("{}.json[{}]", split, i);
      const auto& r = j[i];
      if (!r.is_array() || r.size() < 2 || !r[0].is_string() || !r[1].is_string()) {
        b.skip(where, "not a [label, path] record");
        continue;
      }
      const fs::path rel = fs::path(r[1].get<std::string>()).lexically_normal();
      if (rel.empty() || rel.is_absolute() || rel.generic_string().starts_with("..")) {
        b.skip(where, fmt::format("path \"{}\" is not inside the dataset folder", r[1].get<std::string>()));
        continue;
      }
      const fs::path path = root / rel;
      if (!fs::is_regular_file(path, ec)) {
        b.skip(rel.generic_string(), fmt::format("listed in {}.json but missing", split));
        continue;
      }
      b.add(split, r[0].get<std::string>(), path);
    }
  }
  TE_CHECK(files > 0, "{}: no train.json, val.json or test.json (EmoSet's split files)", root.string());
}

void scan_webemo(Builder& b, const fs::path& root) {
  std::error_code ec;
  const fs::path base = fs::is_directory(root / "partitioned_WEBEmo_fine", ec) ? root / "partitioned_WEBEmo_fine" : root;
  int found = 0;
  for (const auto& [folder, split] :
       {std::pair{"train", "train"}, std::pair{"validation", "val"}, std::pair{"test", "test"}}) {
    if (!fs::is_directory(base / folder, ec)) continue;
    ++found;
    scan_class_folders(b, base / folder, split);
  }
  TE_CHECK(found > 0, "{}: no train/, validation/ or test/ folder (WEBEmo ships partitioned_WEBEmo_fine/{{train,"
           "validation,test}}/<emotion>/)", base.string());
}

}  // namespace

const std::vector<std::string>& dataset_formats() {
  static const std::vector<std::string> formats = {"emotion6", "emotionroi", "fi",     "artphoto",
                                                   "abstract", "unbiasedemo", "emoset", "webemo"};
  return formats;
}

bool is_dataset_format(const std::string& name) {
  const auto& f = dataset_formats();
  return std::find(f.begin(), f.end(), name) != f.end();
}

std::vector<std::string> DatasetScan::splits() const {
  std::vector<std::string> out;
  for (const char* s : kSplitOrder) {
    if (std::any_of(items.begin(), items.end(), [&](const DatasetItem& i) { return i.split == s; })) out.emplace_back(s);
  }
  return out;
}

std::vector<const DatasetItem*> DatasetScan::split(const std::string& name) const {
  std::vector<const DatasetItem*> out;
  for (const auto& i : items) {
    if (i.split == name) out.push_back(&i);
  }
  return out;
}

DatasetScan scan_dataset(const std::string& format, const fs::path& root, const ScanOptions& options) {
  if (!is_dataset_format(format)) {
    std::string known;
    for (const auto& f : dataset_formats()) known += (known.empty() ? "" : ", ") + f;
    fail("unknown dataset format \"{}\" ({})", format, known);
  }
  std::error_code ec;
  TE_CHECK(fs::is_directory(root, ec), "{}: not a directory (the {} dataset's root)", root.string(), format);
  DatasetScan scan;
  scan.format = format;
  scan.root = root;
  scan.taxonomy = load_taxonomy(options.taxonomy.empty() ? format : options.taxonomy, options.taxonomies);
  scan.level = options.level;
  scan.labels = scan.taxonomy.level_labels(options.level);  // also checks that the level exists
  Builder b(scan);
  if (format == "emotion6") scan_emotion6(b, root);
  if (format == "emotionroi") scan_emotionroi(b, root);
  if (format == "fi") scan_fi(b, root);
  if (format == "artphoto") scan_artphoto(b, root);
  if (format == "abstract") scan_abstract(b, root);
  if (format == "unbiasedemo") scan_unbiasedemo(b, root);
  if (format == "emoset") scan_emoset(b, root);
  if (format == "webemo") scan_webemo(b, root);
  auto rank = [](const std::string& split) {
    return std::find(std::begin(kSplitOrder), std::end(kSplitOrder), split) - std::begin(kSplitOrder);
  };
  std::sort(scan.items.begin(), scan.items.end(), [&](const DatasetItem& a, const DatasetItem& b) {
    return rank(a.split) != rank(b.split) ? rank(a.split) < rank(b.split) : a.key < b.key;
  });
  return scan;
}

nlohmann::json scan_summary_json(const DatasetScan& scan) {
  nlohmann::json splits = nlohmann::json::object();
  for (const std::string& s : scan.splits()) {
    nlohmann::json counts = nlohmann::json::object();
    for (const auto& label : scan.labels) {
      const auto n = std::count_if(scan.items.begin(), scan.items.end(),
                                   [&](const DatasetItem& i) { return i.split == s && i.label == label; });
      if (n > 0) counts[label] = n;
    }
    splits[s] = counts;
  }
  nlohmann::json skipped = nlohmann::json::array();
  for (const auto& e : scan.skipped) skipped.push_back({{"path", e.path}, {"reason", e.reason}});
  return {{"format", scan.format},     {"root", scan.root.string()}, {"taxonomy", scan.taxonomy.source},
          {"level", scan.level},       {"labels", scan.labels},      {"splits", splits},
          {"skipped", skipped}};
}

}  // namespace tinyemo::data
