#include "models/projector/dataset.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <map>
#include <nlohmann/json.hpp>

#include "io/file.h"
#include "io/pytorch.h"
#include "io/walk.h"
#include "io/safetensors.h"
#include "models/projector/metadata.h"

namespace tinyemo::projector {

namespace fs = std::filesystem;

namespace {

bool is_float_dtype(DType t) { return t == DType::F32 || t == DType::F16 || t == DType::BF16 || t == DType::F64; }

// Rethrows a loader error so that the message names `file` (once).
[[noreturn]] void rethrow_naming(const fs::path& file, const std::exception& e) {
  const std::string what = e.what();
  if (what.find(file.string()) != std::string::npos) throw Error(what);
  fail("{}: {}", file.string(), what);
}

// Index of the first NaN/Inf in v[0, n), or -1. A non-finite feature would
// train a NaN model or classify as whatever label comes first, silently.
int64_t first_non_finite(const float* v, int64_t n) {
  for (int64_t i = 0; i < n; ++i)
    if (!std::isfinite(v[i])) return i;
  return -1;
}

}  // namespace

FeatureSet FeatureSet::subset(const std::vector<int64_t>& indices) const {
  FeatureSet out;
  out.labels = labels;
  out.source = source;
  const int64_t D = dim();
  out.features = Tensor::empty(DType::F32, {static_cast<int64_t>(indices.size()), D});
  const float* src = features.data<float>();
  float* dst = out.features.mutable_data<float>();
  for (size_t k = 0; k < indices.size(); ++k) {
    const int64_t i = indices[k];
    TE_CHECK(i >= 0 && i < size(), "feature index {} out of range ({} features)", i, size());
    std::memcpy(dst + k * D, src + i * D, sizeof(float) * D);
    out.label_ids.push_back(label_ids[i]);
    out.files.push_back(files[i]);
  }
  return out;
}

std::vector<float> load_feature_file(const fs::path& file, int64_t expected_dim) {
  Tensor t;
  try {
    t = load_pytorch_tensor(file);
  } catch (const std::exception& e) {
    rethrow_naming(file, e);
  }
  TE_CHECK(is_float_dtype(t.dtype()), "{}: feature tensor has dtype {}, expected a float type", file.string(),
           dtype_name(t.dtype()));
  TE_CHECK(t.ndim() == 1 || (t.ndim() == 2 && t.dim(0) == 1), "{}: feature tensor has shape {}, expected [D] or [1, D]",
           file.string(), shape_str(t.shape()));
  const int64_t d = t.dim(-1);
  TE_CHECK(d > 0, "{}: empty feature tensor", file.string());
  TE_CHECK(expected_dim <= 0 || d == expected_dim, "{}: feature has {} dimensions, expected {}", file.string(), d,
           expected_dim);
  std::vector<float> v = t.to_f32_vector();
  const int64_t bad = first_non_finite(v.data(), d);
  TE_CHECK(bad < 0, "{}: feature value {} is {} (features must be finite)", file.string(), bad,
           bad < 0 ? 0.0f : v[bad]);
  return v;
}

FeatureSet load_feature_folder(const fs::path& dir, int64_t expected_dim) {
  // <label>/<name>.pt: label folders (symbolic links followed) and the .pt files directly in them.
  WalkOptions walk;
  walk.max_depth = 1;
  walk.wanted = [](const fs::path& p) { return p.extension() == ".pt" && p.filename().string().size() > 3; };
  const WalkResult found = walk_folder(dir, walk);
  std::vector<std::string> label_dirs;
  for (const fs::path& folder : found.folders) label_dirs.push_back(folder.filename().string());
  TE_CHECK(!label_dirs.empty(), "{}: no label folders (expected the layout <label>/<name>.pt)", dir.string());

  FeatureSet set;
  set.source = dir.string();
  set.labels = label_dirs;
  for (const WalkSkip& s : found.skipped) set.skipped.push_back(s.message());
  std::map<std::string, std::vector<fs::path>> by_label;
  for (const fs::path& file : found.files) {
    if (file.parent_path() == (dir.has_filename() ? dir : dir.parent_path())) {  // "feats/" gives "feats/x.pt"
      set.skipped.push_back(file.string() + ": a feature file outside the label folders (<label>/<name>.pt)");
      continue;
    }
    by_label[file.parent_path().filename().string()].push_back(file);
  }
  std::vector<float> data;
  int64_t D = expected_dim;
  for (size_t l = 0; l < label_dirs.size(); ++l) {
    const std::vector<fs::path>& files = by_label[label_dirs[l]];
    TE_CHECK(!files.empty(), "{}: empty label folder (no .pt feature files)", (dir / label_dirs[l]).string());
    for (const fs::path& file : files) {
      std::vector<float> f = load_feature_file(file, D);
      if (D <= 0) D = static_cast<int64_t>(f.size());
      data.insert(data.end(), f.begin(), f.end());
      set.label_ids.push_back(static_cast<int64_t>(l));
      set.files.push_back(label_dirs[l] + "/" + file.stem().string());
    }
  }
  set.features = Tensor::from_vector<float>({set.size(), D}, data);
  return set;
}

FeatureSet load_feature_shard(const fs::path& file, int64_t expected_dim) {
  const SafetensorsFile st = SafetensorsFile::open(file);
  const std::string where = file.string();
  TE_CHECK(st.contains("features"), "{}: feature shard has no tensor \"features\"", where);
  TE_CHECK(st.contains("label_ids"), "{}: feature shard has no tensor \"label_ids\"", where);
  const Tensor features = st.get("features");
  const Tensor ids = st.get("label_ids");
  TE_CHECK(features.ndim() == 2 && is_float_dtype(features.dtype()),
           "{}: \"features\" must be a 2-D float tensor, got {} {}", where, dtype_name(features.dtype()),
           shape_str(features.shape()));
  const int64_t N = features.dim(0), D = features.dim(1);
  TE_CHECK(D > 0, "{}: \"features\" has no columns", where);
  TE_CHECK(expected_dim <= 0 || D == expected_dim, "{}: features have {} dimensions, expected {}", where, D,
           expected_dim);
  TE_CHECK(ids.dtype() == DType::I64 && ids.ndim() == 1 && ids.dim(0) == N,
           "{}: \"label_ids\" must be I64 [{}], got {} {}", where, N, dtype_name(ids.dtype()),
           shape_str(ids.shape()));
  const auto& meta = st.metadata();
  TE_CHECK(meta.count("labels"), "{}: feature shard metadata has no \"labels\"", where);
  FeatureSet set;
  set.source = where;
  set.labels = parse_label_array(meta.at("labels"), where + ": metadata \"labels\"");
  const int64_t L = static_cast<int64_t>(set.labels.size());
  set.label_ids.assign(ids.data<int64_t>(), ids.data<int64_t>() + N);
  for (int64_t i = 0; i < N; ++i) {
    TE_CHECK(set.label_ids[i] >= -1 && set.label_ids[i] < L, "{}: label_ids[{}] = {} is not in [-1, {})", where, i,
             set.label_ids[i], L);
  }
  if (meta.count("files")) {
    set.files = parse_label_array(meta.at("files"), where + ": metadata \"files\"");
    TE_CHECK(static_cast<int64_t>(set.files.size()) == N, "{}: metadata \"files\" has {} entries for {} features",
             where, set.files.size(), N);
  } else {
    for (int64_t i = 0; i < N; ++i) set.files.push_back(fmt::format("#{}", i));
  }
  set.features = features.to(DType::F32);
  const int64_t bad = first_non_finite(set.features.data<float>(), N * D);
  TE_CHECK(bad < 0, "{}: features[{}, {}] ({}) is {} (features must be finite)", where, bad / D, bad % D,
           bad < 0 ? std::string() : set.files[bad / D], bad < 0 ? 0.0f : set.features.data<float>()[bad]);
  return set;
}

FeatureSet load_features(const fs::path& path, int64_t expected_dim) {
  TE_CHECK(fs::exists(path), "{}: no such file or folder", path.string());
  if (fs::is_directory(path)) return load_feature_folder(path, expected_dim);
  {
    // A shard is a safetensors file (8-byte header size, then '{'); anything
    // else (one .pt feature, a model) is named for what it is not, rather
    // than failing on a header size read from the wrong kind of file.
    const InputFile in = InputFile::open(path);
    char head[9] = {};
    uint64_t header = 0;
    if (in.size() >= 9) {
      in.read_at(0, head, 9);
      std::memcpy(&header, head, 8);
    }
    TE_CHECK(in.size() >= 9 && head[8] == '{' && header <= in.size() - 8,
             "{}: is not a feature shard (a safetensors file){}: give a folder of <label>/<name>.pt feature files "
             "or a feature shard",
             path.string(), path.extension() == ".pt" ? " but one .pt file" : "");
  }
  return load_feature_shard(path, expected_dim);
}

void save_feature_shard(const fs::path& file, const FeatureSet& set) {
  std::map<std::string, std::string> meta = {{"labels", nlohmann::json(set.labels).dump()},
                                             {"files", nlohmann::json(set.files).dump()},
                                             {"source", set.source}};
  write_safetensors(file,
                    {{"features", set.features.to(DType::F32)},
                     {"label_ids", Tensor::from_vector<int64_t>({set.size()}, set.label_ids)}},
                    meta);
}

void remap_labels(FeatureSet& set, const std::vector<std::string>& labels) {
  std::map<std::string, int64_t> index;
  for (size_t i = 0; i < labels.size(); ++i) index[labels[i]] = static_cast<int64_t>(i);
  std::vector<int64_t> mapping(set.labels.size(), -1);
  for (size_t l = 0; l < set.labels.size(); ++l) {
    const auto it = index.find(set.labels[l]);
    if (it != index.end()) mapping[l] = it->second;
  }
  for (int64_t i = 0; i < set.size(); ++i) {
    const int64_t l = set.label_ids[i];
    if (l < 0) continue;
    TE_CHECK(mapping[l] >= 0, "{}: label \"{}\" (of {}) is not one of the model's labels", set.source,
             set.labels[l], set.files[i]);
    set.label_ids[i] = mapping[l];
  }
  set.labels = labels;
}

}  // namespace tinyemo::projector
