#include "models/lm/weights.h"

#include <map>
#include <vector>

#include "io/json.h"
#include "io/safetensors.h"

namespace tinyemo::lm {

namespace {

class SafetensorsWeights : public WeightSource {
 public:
  explicit SafetensorsWeights(const std::filesystem::path& file) {
    if (file.filename().string().ends_with(".index.json")) {
      open_index(file);
    } else {
      files_.push_back(SafetensorsFile::open(file));
      for (const auto& e : files_[0].entries()) owner_[e.name] = 0;
      describe_ = file.string();
    }
  }

  bool contains(const std::string& name) const override { return owner_.count(name) != 0; }

  Tensor get(const std::string& name) const override {
    const auto it = owner_.find(name);
    TE_CHECK(it != owner_.end(), "{}: missing tensor \"{}\"", describe_, name);
    return files_[it->second].get(name);
  }

  std::string where(const std::string& name) const override {
    const auto it = owner_.find(name);
    return it == owner_.end() ? describe_ : files_[it->second].path().string();
  }

 private:
  void open_index(const std::filesystem::path& index_path) {
    describe_ = index_path.string();
    const JsonObject index = JsonObject::load(index_path);
    const JsonObject map = index.object("weight_map");
    std::map<std::string, size_t> shard_of_file;
    for (const auto& [name, value] : map.json().items()) {
      TE_CHECK(value.is_string(), "{}: weight_map[\"{}\"] is not a file name", describe_, name);
      const std::string shard = value.get<std::string>();
      // Shards live beside the index: refuse paths that would leave the folder.
      TE_CHECK(!shard.empty() && shard.find('/') == std::string::npos && shard.find('\\') == std::string::npos &&
                   shard != "." && shard != "..",
               "{}: weight_map[\"{}\"] = \"{}\" is not a plain file name", describe_, name, shard);
      auto [it, inserted] = shard_of_file.emplace(shard, files_.size());
      if (inserted) files_.push_back(SafetensorsFile::open(index_path.parent_path() / shard));
      TE_CHECK(files_[it->second].contains(name), "{}: weight_map puts \"{}\" in {}, which does not hold it",
               describe_, name, shard);
      owner_[name] = it->second;
    }
  }

  std::vector<SafetensorsFile> files_;
  std::map<std::string, size_t> owner_;  // tensor name -> index in files_
  std::string describe_;
};

}  // namespace

std::unique_ptr<WeightSource> open_safetensors_weights(const std::filesystem::path& file) {
  return std::make_unique<SafetensorsWeights>(file);
}

}  // namespace tinyemo::lm
