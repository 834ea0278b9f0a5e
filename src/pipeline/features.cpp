#include "pipeline/features.h"

#include <algorithm>
#include <cstring>
#include <map>
#include <set>

#include "data/datasets.h"
#include "io/file.h"
#include "io/json.h"
#include "io/pytorch.h"
#include "io/safetensors.h"
#include "io/walk.h"
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
  std::vector<std::string> walk_skipped;      // "path: why" for entries the walk passed over
  int64_t ignored = 0;                        // files without an image extension
};

Scan scan_images(const fs::path& root) {
  // io/walk.h's rules, as the projector's dataset walks feature folders.
  WalkResult found =
      walk_folder(root, {.max_depth = -1, .wanted = [](const fs::path& p) { return has_image_extension(p); }});
  Scan scan;
  scan.ignored = found.ignored;
  for (const WalkSkip& s : found.skipped) scan.walk_skipped.push_back(s.message());
  std::vector<fs::path> files = std::move(found.files);
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

// Digest of bytes, 8 at a time (a multiply-rotate mix; not cryptographic:
// it tells models apart, it does not defend against forgery).
class Digest {
 public:
  void add(const void* data, size_t n) {
    const auto* p = static_cast<const uint8_t*>(data);
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
      uint64_t w;
      std::memcpy(&w, p + i, 8);
      mix(w);
    }
    uint64_t tail = 0;
    if (n > i) std::memcpy(&tail, p + i, n - i);  // an empty vector's data() may be null
    mix(tail ^ (static_cast<uint64_t>(n) << 56));
  }
  void add(const std::string& s) { add(s.data(), s.size()); }
  void add(const std::vector<float>& v) { add(v.data(), v.size() * sizeof(float)); }
  void add(const Tensor& t) {
    if (!t.defined()) return add(std::string("undefined"));
    // Weights packed for the GEMM digest as their row-major values: packing at
    // load (F32x32) gives the same features as the stored matrix, so the same
    // identity; bf16 compute's rounded weights give another.
    if (dtype_is_gemm_panels(t.dtype())) return add(t.to(dtype_of_rows(t.dtype())));
    add(fmt::format("{}{}", dtype_name(t.dtype()), shape_str(t.shape())));
    add(t.raw(), t.nbytes());
  }
  uint64_t value() const { return h_ ^ (h_ >> 29); }

 private:
  void mix(uint64_t w) {
    h_ = (h_ ^ (w * 0x9E3779B97F4A7C15ull)) * 0xBF58476D1CE4E5B9ull;
    h_ = (h_ << 27) | (h_ >> 37);
  }
  uint64_t h_ = 0x243F6A8885A308D3ull;
};

// The identity of the features a tower gives: its configuration and a digest
// of every weight as loaded (so the same checkpoint in another dtype differs).
std::string model_identity(const clip::VisionModel& model) {
  Digest d;
  const clip::VisionWeights& w = model.weights();
  d.add(w.patch);
  for (const auto* v : {&w.patch_bias, &w.class_embedding, &w.position_embedding, &w.pre_ln_weight, &w.pre_ln_bias,
                        &w.post_ln_weight, &w.post_ln_bias}) {
    d.add(*v);
  }
  for (const clip::LayerWeights& l : w.layers) {
    for (const Tensor* t : {&l.q, &l.k, &l.v, &l.out, &l.fc1, &l.fc2}) d.add(*t);
    for (const auto* v : {&l.q_bias, &l.k_bias, &l.v_bias, &l.out_bias, &l.fc1_bias, &l.fc2_bias, &l.ln1_weight,
                          &l.ln1_bias, &l.ln2_weight, &l.ln2_bias}) {
      d.add(*v);
    }
  }
  d.add(w.projection);
  const clip::VisionConfig& c = model.config();
  d.add(c.to_json().dump());
  return fmt::format("{} layers x {} wide, {} px, {}-d embeddings, weights {}, digest {:016x}", c.num_layers,
                     c.hidden_size, c.image_size, c.projection_dim, dtype_name(model.weight_dtype()), d.value());
}

// Refuses to add features of `identity` to an output holding those of another
// model (or of an unknown one: written before identities were recorded).
void check_same_model(const std::string& where, const std::string& recorded, const std::string& identity) {
  TE_CHECK(!recorded.empty(),
           "{}: holds features but records no CLIP model identity (written by an older tinyemo), so features of "
           "this model cannot be added safely: move it away or pick another output",
           where);
  TE_CHECK(recorded == identity,
           "{}: holds features of another CLIP model (or the same one in another dtype): recorded {}, this one is {}; "
           "features of two models cannot be mixed: pick another output",
           where, recorded, identity);
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
  PtFolderSink(fs::path out, int64_t dim, std::string identity)
      : out_(std::move(out)), dim_(dim), identity_(std::move(identity)) {}
  // The model's identity sits in a hidden file beside the label folders (readers skip hidden entries).
  static constexpr const char* kIdentityFile = ".tinyemo-features.json";
  void check_model(int64_t existing) const {
    std::error_code ec;
    const fs::path marker = out_ / kIdentityFile;
    std::string recorded;
    if (fs::exists(marker, ec)) {
      const nlohmann::json j = parse_json_text(read_file(marker), marker.string());
      TE_CHECK(j.is_object() && j.contains("model") && j["model"].is_string(), "{}: no \"model\" string",
               marker.string());
      recorded = j["model"].get<std::string>();
    } else if (existing == 0) {
      return;
    }
    check_same_model(out_.string(), recorded, identity_);
  }
  void start() const {
    write_file_atomic(out_ / kIdentityFile, nlohmann::json({{"model", identity_}}).dump() + "\n");
  }
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
  std::string identity_;
};

// One safetensors shard (format in the team notes): features F16 [N, D],
// label_ids I64 [N], metadata labels / files / source. An existing shard is
// read back so an interrupted job resumes; the shard is rewritten atomically
// every few hundred images and at the end.
class ShardSink : public FeatureSink {
 public:
  ShardSink(fs::path path, int64_t dim, std::string source, std::string identity)
      : path_(std::move(path)), dim_(dim), source_(std::move(source)), identity_(std::move(identity)) {
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
    // Features of another model (or dtype) must not be mixed with this one's.
    const auto model = f.metadata().find("model");
    check_same_model(where, model == f.metadata().end() ? std::string() : model->second, identity_);
    // The shard keeps the source it was started with.
    if (const auto source = f.metadata().find("source"); source != f.metadata().end()) source_ = source->second;
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
                      {{"labels", nlohmann::json(labels).dump()},
                       {"files", files.dump()},
                       {"source", source_},
                       {"model", identity_}});
    unsaved_ = 0;
  }

  fs::path path_;
  int64_t dim_;
  std::string source_, identity_;
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
// when the callback stopped the run. `folder` (a .pt folder output) checks
// that what it holds came from the same model before anything is added.
bool embed_jobs(const clip::VisionModel& model, const FeaturesOptions& o, const Scan& scan, FeatureSink& sink,
                FeaturesProgress& p, const FeaturesCallback& on_progress, PtFolderSink* folder = nullptr) {
  std::vector<const ImageJob*> pending;
  for (const ImageJob& job : scan.jobs) {
    if (!sink.done(job)) pending.push_back(&job);
  }
  const auto existing = static_cast<int64_t>(scan.jobs.size() - pending.size());
  if (folder != nullptr) {
    folder->check_model(existing);
    if (!pending.empty()) folder->start();
  }
  p.split_total = static_cast<int64_t>(pending.size());
  p.total += p.split_total;
  p.existing += existing;
  p.ignored += scan.ignored;
  p.start = true;
  bool go_on = on_progress(p, "");
  p.start = false;
  for (const auto& e : scan.walk_skipped) {
    ++p.skipped;
    go_on = go_on && on_progress(p, e);
  }
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
  // An output inside the dataset would be read as part of it by the next run.
  check_output_outside(o.out, o.images, "the dataset folder");
  data::ScanOptions options;
  options.taxonomies = o.taxonomies;
  options.level = o.level;
  const data::DatasetScan dataset = data::scan_dataset(o.dataset, o.images, options);
  const std::string identity = model_identity(model);
  FeaturesProgress p;
  for (const auto& e : dataset.skipped) {
    ++p.skipped;
    if (!on_progress(p, fmt::format("{}: {}", e.path, e.reason))) return p;
  }
  for (const std::string& split : dataset.splits()) {
    Scan scan;
    for (const data::DatasetItem* item : dataset.split(split)) scan.jobs.push_back({item->path, item->key, item->label});
    p.split = split;
    ShardSink sink(o.out / (split + ".safetensors"), model.config().projection_dim,
                   fmt::format("tinyemo features: {}; dataset {} {} split {}; taxonomy {}", model.description(),
                               o.dataset, o.images.string(), split, dataset.taxonomy.source),
                   identity);
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

  // An output inside the image folder would be walked as images by the next run.
  check_output_outside(o.out, o.images, "the image folder");

  const std::string identity = model_identity(model);
  std::unique_ptr<FeatureSink> sink;
  PtFolderSink* folder = nullptr;
  if (format == FeaturesFormat::Folder) {
    auto f = std::make_unique<PtFolderSink>(o.out, dim, identity);
    folder = f.get();
    sink = std::move(f);
  } else {
    const fs::path shard = shard_path ? o.out : o.out / "features.safetensors";
    sink = std::make_unique<ShardSink>(shard, dim,
                                       fmt::format("tinyemo features: {}; images {}; CLIP transform {}",
                                                   model.description(), o.images.string(), cfg.image_size),
                                       identity);
  }

  const Scan scan = scan_images(o.images);
  FeaturesProgress p;
  embed_jobs(model, o, scan, *sink, p, on_progress, folder);
  return p;
}

}  // namespace tinyemo::pipeline
