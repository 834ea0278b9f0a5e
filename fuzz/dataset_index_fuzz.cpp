// fuzz-link: tinyemo_data
// The dataset readers' index files (data/datasets.h) on any bytes: the first
// byte picks the file, the rest is its content, written into a small dataset
// whose images exist: Abstract's ABSTRACT_groundTruth.csv (votes per image),
// EmoSet's train.json ([label, path] records) or EmotionROI's
// training_testing_split/testing.txt ("<emotion>/<file>" lines). The reader
// must accept it or throw tinyemo::Error, and everything it returns must name
// an existing image inside the dataset under a label of its taxonomy.
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <string>

#include "core/error.h"
#include "data/datasets.h"

namespace {

namespace fs = std::filesystem;

void write(const fs::path& p, const std::string& bytes) {
  fs::create_directories(p.parent_path());
  std::ofstream(p, std::ios::binary | std::ios::trunc) << bytes;
}

// One dataset root per format, built once in this process's own folder.
const fs::path& root() {
  static const fs::path r = [] {
    const fs::path d = fs::temp_directory_path() / ("tinyemo-dataset-fuzz-" + std::to_string(::getpid()));
    for (const char* f : {"abstract/abstract_1.jpg", "abstract/abstract_2.jpg", "emoset/image/amusement/a_1.jpg",
                          "emoset/image/fear/f_1.jpg", "emotionroi/images/joy/1.jpg",
                          "emotionroi/images/anger/2.jpg"}) {
      write(d / f, "x");
    }
    write(d / "emotionroi/training_testing_split/training.txt", "joy/1.jpg\n");
    return d;
  }();
  return r;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1) return 0;
  static const char* kFormats[] = {"abstract", "emoset", "emotionroi"};
  const std::string format = kFormats[data[0] % 3];
  const std::string content(reinterpret_cast<const char*>(data + 1), size - 1);
  const fs::path dir = root() / format;
  if (format == "abstract") write(dir / "ABSTRACT_groundTruth.csv", content);
  if (format == "emoset") write(dir / "train.json", content);
  if (format == "emotionroi") write(dir / "training_testing_split/testing.txt", content);
  try {
    const tinyemo::data::DatasetScan scan = tinyemo::data::scan_dataset(format, dir);
    for (const auto& item : scan.items) {
      const std::string rel = fs::relative(item.path, dir).generic_string();
      if (rel.empty() || rel.starts_with("..") || !fs::is_regular_file(item.path)) __builtin_trap();
      if (std::find(scan.labels.begin(), scan.labels.end(), item.label) == scan.labels.end()) __builtin_trap();
    }
    // Names and reasons carry the file's bytes, valid UTF-8 or not: printed as
    // the CLI prints them (invalid bytes replaced).
    (void)tinyemo::data::scan_summary_json(scan).dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  } catch (const tinyemo::Error&) {
  }
  return 0;
}
