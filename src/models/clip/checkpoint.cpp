#include "models/clip/checkpoint.h"

#include <algorithm>
#include <set>
#include <vector>

#include "core/error.h"
#include "io/file.h"
#include "io/json.h"
#include "io/pytorch.h"
#include "io/safetensors.h"

namespace tinyemo::clip {

namespace {

bool starts_with_zip_magic(const std::filesystem::path& path) {
  const auto file = MappedFile::open(path);
  return file->size() >= 4 && std::equal(file->data(), file->data() + 4, "PK\x03\x04");
}

void add_safetensors(CheckpointTensors& out, const std::filesystem::path& path) {
  const SafetensorsFile file = SafetensorsFile::open(path);
  for (const auto& e : file.entries()) out.add(e.name, file.get(e.name), path.string());
}

void add_sharded(CheckpointTensors& out, const std::filesystem::path& index_path) {
  const JsonObject index = JsonObject::load(index_path);
  const JsonObject map = index.object("weight_map");
  std::map<std::string, std::vector<std::string>> by_shard;
  for (const auto& [name, shard] : map.json().items()) {
    TE_CHECK(shard.is_string(), "{}: weight_map[\"{}\"] is not a file name", index_path.string(), name);
    const std::string shard_name = shard.get<std::string>();
    // Shards must sit beside the index: no paths that climb out of the folder.
    TE_CHECK(!shard_name.empty() && std::filesystem::path(shard_name).filename() == shard_name,
             "{}: shard \"{}\" for {} is not a plain file name", index_path.string(), shard_name, name);
    by_shard[shard_name].push_back(name);
  }
  for (const auto& [shard_name, names] : by_shard) {
    const auto shard_path = index_path.parent_path() / shard_name;
    const SafetensorsFile shard = SafetensorsFile::open(shard_path);
    for (const auto& name : names) {
      TE_CHECK(shard.contains(name), "{}: missing tensor {} (listed for it in {})", shard_path.string(), name,
               index_path.string());
      out.add(name, shard.get(name), shard_path.string());
    }
  }
}

}  // namespace

CheckpointTensors CheckpointTensors::read(const std::filesystem::path& weights_file) {
  CheckpointTensors out;
  out.main_file_ = weights_file.string();
  const std::string ext = weights_file.extension().string();
  if (ext == ".json") {
    add_sharded(out, weights_file);
  } else if (starts_with_zip_magic(weights_file)) {
    for (auto& [name, tensor] : load_pytorch_tensors(weights_file)) out.add(name, std::move(tensor), out.main_file_);
  } else {
    add_safetensors(out, weights_file);
  }
  return out;
}

void CheckpointTensors::add(const std::string& name, Tensor tensor, const std::string& file) {
  TE_CHECK(tensors_.count(name) == 0, "{}: tensor {} appears twice (also in {})", file, name, file_of(name));
  tensors_.emplace(name, std::move(tensor));
  files_.emplace(name, file);
}

const Tensor* CheckpointTensors::find(const std::string& name) const {
  const auto it = tensors_.find(name);
  return it == tensors_.end() ? nullptr : &it->second;
}

const std::string& CheckpointTensors::file_of(const std::string& name) const {
  const auto it = files_.find(name);
  return it == files_.end() ? main_file_ : it->second;
}

ModelFiles resolve_model_files(const std::filesystem::path& model) {
  std::error_code ec;
  ModelFiles files;
  if (std::filesystem::is_directory(model, ec)) {
    if (std::filesystem::is_regular_file(model / "config.json", ec)) files.config = model / "config.json";
    for (const char* name : {"model.safetensors", "model.safetensors.index.json", "pytorch_model.bin"}) {
      if (std::filesystem::is_regular_file(model / name, ec)) {
        files.weights = model / name;
        return files;
      }
    }
    std::set<std::filesystem::path> candidates;
    for (const auto& entry : std::filesystem::directory_iterator(model, ec)) {
      const std::string ext = entry.path().extension().string();
      if (entry.is_regular_file(ec) && (ext == ".safetensors" || ext == ".pt" || ext == ".pth" || ext == ".bin")) {
        candidates.insert(entry.path());
      }
    }
    TE_CHECK(!candidates.empty(), "{}: no weights file (model.safetensors, model.safetensors.index.json, "
             "pytorch_model.bin, *.safetensors, *.pt, *.bin)", model.string());
    if (candidates.size() > 1) {
      std::string names;
      for (const auto& c : candidates) names += (names.empty() ? "" : ", ") + c.filename().string();
      fail("{}: several weights files ({}); give the one to use instead of the folder (--model, or --clip for "
           "classify)",
           model.string(), names);
    }
    files.weights = *candidates.begin();
    return files;
  }
  TE_CHECK(std::filesystem::is_regular_file(model, ec), "{}: no such model file or directory", model.string());
  files.weights = model;
  const auto beside = model.parent_path() / "config.json";
  if (model.filename() != "config.json" && std::filesystem::is_regular_file(beside, ec)) files.config = beside;
  return files;
}

}  // namespace tinyemo::clip
