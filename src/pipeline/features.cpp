#include "pipeline/features.h"

#include <algorithm>
#include <map>
#include <set>

#include "data/datasets.h"
#include "io/pytorch.h"
#include "io/safetensors.h"
#include "models/clip/embed_images.h"

namespace tinyemo::pipeline {
namespace {

namespace fs = std::filesystem;

struct ImageJob {
  fs::path path;
  std::string key;    // "<label>/<stem>" (relative path without extension, '/'-separated)
  std::string label;  // first folder of the relative path; "" for images at the top level
};

struct Scan {
  std::vector<ImageJob> jobs;
  std::vector<std::string> duplicate_errors;  // two images mapping to one output
  int64_t ignored = 0;                        // files without an image extension
};

Scan scan_images(const fs::path& root) {
  std::error_code ec;
  TE_CHECK(fs::is_directory(root, ec), "{}: not a directory", root.string());
  Scan scan;
  std::vector<fs::path> files;
  for (auto it = fs::recursive_directory_iterator(root, fs::directory_options::skip_permission_denied, ec);
       it != fs::recursive_directory_iterator(); it.increment(ec)) {
    TE_CHECK(!ec, "{}: cannot list: {}", root.string(), ec.message());
    const fs::path& p = it->path();
    if (p.filename().string().starts_with(".")) {  // hidden files and folders
      if (it->is_directory(ec)) it.disable_recursion_pending();
      continue;
    }
    if (!it->is_regular_file(ec)) continue;
    if (has_image_extension(p)) {
      files.push_back(p);
    } else {
      ++scan.ignored;
    }
  }
  std::sort(files.begin(), files.end());  // deterministic: the first of two same-named images wins
  std::map<std::string, fs::path> seen;
  for (const fs::path& p : files) {
    const fs::path rel = p.lexically_relative(root);
    ImageJob job{p, (rel.parent_path() / rel.stem()).generic_string(), ""};
    if (rel.has_parent_path()) job.label = rel.begin()->string();
    if (const auto [at, inserted] = seen.emplace(job.key, p); !inserted) {
      scan.duplicate_errors.push_back(fmt::format("{}: has the same output name ({}) as {}; skipped", p.string(),
                                                  job.key, at->second.string()));
      continue;
    }
    scan.jobs.push_back(std::move(job));
  }
  std::sort(scan.jobs.begin(), scan.jobs.end(), [](const ImageJob& a, const ImageJob& b) { return a.key < b.key; });
  return scan;
}

// Where finished embeddings go.
class FeatureSink {
 public:
  virtual ~FeatureSink() = default;
  virtual bool done(const ImageJob& job) const = 0;
  virtual void add(const ImageJob& job, const float* embedding) = 0;
  virtual void finish() = 0;
};

// TinyEmo's layout: <out>/<label>/<stem>.pt, each a torch.save'd fp16 [D] tensor.
class PtFolderSink : public FeatureSink {
 public:
  PtFolderSink(fs::path out, int64_t dim) : out_(std::move(out)), dim_(dim) {}
  bool done(const ImageJob& job) const override {
    std::error_code ec;
    return fs::is_regular_file(file(job), ec);
  }
  void add(const ImageJob& job, const float* embedding) override {
    const Tensor t = Tensor::from_vector<float>({dim_}, std::vector<float>(embedding, embedding + dim_));
    save_pytorch_tensor(file(job), t.to(DType::F16));
  }
  void finish() override {}

 private:
  fs::path file(const ImageJob& job) const { return out_ / (job.key + ".pt"); }
  fs::path out_;
  int64_t dim_;
};

// One safetensors shard (format in the team notes): features F16 [N, D],
// label_ids I64 [N], metadata labels / files / source. An existing shard is
// read back so an interrupted job resumes; the shard is rewritten atomically
// every few hundred images and at the end.
class ShardSink : public FeatureSink {
 public:
  ShardSink(fs::path path, int64_t dim, std::string source) : path_(std::move(path)), dim_(dim), source_(std::move(source)) {
    std::error_code ec;
    if (fs::exists(path_, ec)) load_existing();
  }
  bool done(const ImageJob& job) const override { return rows_.count(job.key) != 0; }
  void add(const ImageJob& job, const float* embedding) override {
    Row& row = rows_[job.key];
    row.label = job.label;
    row.values.resize(static_cast<size_t>(dim_));
    convert(DType::F32, embedding, DType::F16, row.values.data(), dim_);
    if (++unsaved_ >= kSaveEvery) save();
  }
  void finish() override {
    std::error_code ec;
    if (unsaved_ > 0 || !fs::exists(path_, ec)) save();
  }

 private:
  static constexpr int64_t kSaveEvery = 256;
  struct Row {
    std::string label;
    std::vector<uint16_t> values;  // f16 bits
  };

  void load_existing() {
    const SafetensorsFile f = SafetensorsFile::open(path_);
    const std::string where = path_.string();
    TE_CHECK(f.contains("features") && f.contains("label_ids"),
             "{}: exists but is not a feature shard (no features/label_ids); move it away or pick another --out", where);
    const Tensor features = f.get("features"), ids = f.get("label_ids");
    TE_CHECK(features.ndim() == 2 && features.dim(1) == dim_,
             "{}: holds features of shape {}, but this model gives {}-d embeddings", where,
             shape_str(features.shape()), dim_);
    nlohmann::json labels, files;
    try {
      labels = nlohmann::json::parse(f.metadata().at("labels"));
      files = nlohmann::json::parse(f.metadata().at("files"));
    } catch (const std::exception& e) {
      fail("{}: metadata labels/files missing or not JSON ({})", where, e.what());
    }
    const int64_t n = features.dim(0);
    TE_CHECK(files.is_array() && static_cast<int64_t>(files.size()) == n && labels.is_array() && ids.numel() == n &&
                 ids.dtype() == DType::I64,
             "{}: features, label_ids and files disagree in length", where);
    const std::vector<float> values = features.to_f32_vector();
    const int64_t* id = ids.data<int64_t>();
    for (int64_t i = 0; i < n; ++i) {
      TE_CHECK(id[i] >= -1 && id[i] < static_cast<int64_t>(labels.size()), "{}: label_ids[{}] = {} is out of range",
               where, i, id[i]);
      Row& row = rows_[files[i].get<std::string>()];
      row.label = id[i] < 0 ? "" : labels[id[i]].get<std::string>();
      row.values.resize(static_cast<size_t>(dim_));
      convert(DType::F32, values.data() + i * dim_, DType::F16, row.values.data(), dim_);
    }
  }

  void save() {
    std::set<std::string> label_set;
    for (const auto& [key, row] : rows_) {
      if (!row.label.empty()) label_set.insert(row.label);
    }
    const std::vector<std::string> labels(label_set.begin(), label_set.end());
    const auto n = static_cast<int64_t>(rows_.size());
    Tensor features = Tensor::empty(DType::F16, {n, dim_});
    Tensor ids = Tensor::empty(DType::I64, {n});
    auto* f = static_cast<uint16_t*>(features.raw_mut());
    int64_t* id = ids.mutable_data<int64_t>();
    nlohmann::json files = nlohmann::json::array();
    int64_t i = 0;
    for (const auto& [key, row] : rows_) {
      std::copy(row.values.begin(), row.values.end(), f + i * dim_);
      id[i] = row.label.empty() ? -1 : std::lower_bound(labels.begin(), labels.end(), row.label) - labels.begin();
      files.push_back(key);
      ++i;
    }
    write_safetensors(path_, {{"features", features}, {"label_ids", ids}},
                      {{"labels", nlohmann::json(labels).dump()}, {"files", files.dump()}, {"source", source_}});
    unsaved_ = 0;
  }

  fs::path path_;
  int64_t dim_;
  std::string source_;
  std::map<std::string, Row> rows_;
  int64_t unsaved_ = 0;
};

}  // namespace

FeaturesFormat parse_features_format(const std::string& name, const std::string& option) {
  if (name == "auto") return FeaturesFormat::Auto;
  if (name == "tinyemo-pt" || name == "folder") return FeaturesFormat::Folder;
  if (name == "safetensors" || name == "shard") return FeaturesFormat::Shard;
  if (data::is_dataset_format(name)) return FeaturesFormat::Dataset;
  fail("{}: expected tinyemo-pt, safetensors, auto or a dataset layout (emotion6, emotionroi, fi, artphoto, abstract, "
       "unbiasedemo, emoset, webemo), got \"{}\"", option, name);
}

namespace {

// Embeds the jobs `sink` has not done yet into it, counting into `p`; false
// when the callback stopped the run.
bool embed_jobs(const clip::VisionModel& model, const FeaturesOptions& o, const Scan& scan, FeatureSink& sink,
                FeaturesProgress& p, const FeaturesCallback& on_progress) {
  std::vector<const ImageJob*> pending;
  for (const ImageJob& job : scan.jobs) {
    if (!sink.done(job)) pending.push_back(&job);
  }
  p.split_total = static_cast<int64_t>(pending.size());
  p.total += p.split_total;
  p.existing += static_cast<int64_t>(scan.jobs.size() - pending.size());
  p.ignored += scan.ignored;
  p.start = true;
  bool go_on = on_progress(p, "");
  p.start = false;
  for (const auto& e : scan.duplicate_errors) {
    ++p.failed;
    go_on = go_on && on_progress(p, e);
  }
  if (go_on) {
    std::vector<fs::path> files;
    for (const ImageJob* job : pending) files.push_back(job->path);
    go_on = clip::embed_image_files(model, files, o.batch, o.limits,
                                    [&](size_t i, const float* embedding, const std::string& error) {
                                      if (embedding != nullptr) {
                                        sink.add(*pending[i], embedding);
                                        ++p.written;
                                      } else {
                                        ++p.failed;
                                      }
                                      return on_progress(p, error);
                                    });
  }
  sink.finish();
  return go_on;
}

// FeaturesFormat::Dataset: <out>/<split>.safetensors per split of the dataset.
FeaturesProgress extract_dataset_features(const clip::VisionModel& model, const FeaturesOptions& o,
                                          const FeaturesCallback& on_progress) {
  TE_CHECK(data::is_dataset_format(o.dataset), "features: \"{}\" is not a dataset format", o.dataset);
  TE_CHECK(o.out.extension() != ".safetensors",
           "{}: a dataset's features go to a folder (one <split>.safetensors each), not a .safetensors file",
           o.out.string());
  data::ScanOptions options;
  options.taxonomies = o.taxonomies;
  options.level = o.level;
  const data::DatasetScan dataset = data::scan_dataset(o.dataset, o.images, options);
  FeaturesProgress p;
  p.skipped_entries = static_cast<int64_t>(dataset.skipped.size());
  for (const auto& e : dataset.skipped) {
    if (!on_progress(p, fmt::format("skipped {}: {}", e.path, e.reason))) return p;
  }
  for (const std::string& split : dataset.splits()) {
    Scan scan;
    for (const data::DatasetItem* item : dataset.split(split)) scan.jobs.push_back({item->path, item->key, item->label});
    p.split = split;
    ShardSink sink(o.out / (split + ".safetensors"), model.config().projection_dim,
                   fmt::format("tinyemo features: {}; dataset {} {} split {}; taxonomy {}", model.description(),
                               o.dataset, o.images.string(), split, dataset.taxonomy.source));
    if (!embed_jobs(model, o, scan, sink, p, on_progress)) break;
  }
  return p;
}

}  // namespace

FeaturesProgress extract_features(const clip::VisionModel& model, const FeaturesOptions& o,
                                  const FeaturesCallback& on_progress) {
  const clip::VisionConfig& cfg = model.config();
  TE_CHECK(cfg.projection_dim > 0,
           "{}: this checkpoint has no visual projection (a CLIPVisionModel), so it gives no image_embeds",
           model.description());
  if (o.format == FeaturesFormat::Dataset) return extract_dataset_features(model, o, on_progress);
  const int64_t dim = cfg.projection_dim;
  const bool shard_path = o.out.extension() == ".safetensors";
  FeaturesFormat format = o.format;
  if (format == FeaturesFormat::Auto) format = shard_path ? FeaturesFormat::Shard : FeaturesFormat::Folder;
  TE_CHECK(format == FeaturesFormat::Shard || !shard_path,
           "{}: a feature folder cannot be named *.safetensors (ask for the shard format, or pick another name)",
           o.out.string());

  std::unique_ptr<FeatureSink> sink;
  if (format == FeaturesFormat::Folder) {
    sink = std::make_unique<PtFolderSink>(o.out, dim);
  } else {
    const fs::path shard = shard_path ? o.out : o.out / "features.safetensors";
    sink = std::make_unique<ShardSink>(shard, dim, fmt::format("tinyemo features: {}; images {}; CLIP transform {}",
                                                               model.description(), o.images.string(), cfg.image_size));
  }

  const Scan scan = scan_images(o.images);
  FeaturesProgress p;
  embed_jobs(model, o, scan, *sink, p, on_progress);
  return p;
}

}  // namespace tinyemo::pipeline
