// `tinyemo features`: CLIP image embeddings for a folder of <label>/<image>
// files, written in TinyEmo's layout (<label>/<stem>.pt, fp16 [D]) or as one
// safetensors feature shard. Resumable (finished outputs are skipped), every
// write atomic; unreadable images are reported by name and counted, and the
// job goes on (exit code 2 when any failed).
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <map>
#include <set>

#include "apps/cli/command.h"
#include "apps/cli/progress.h"
#include "data/datasets.h"
#include "io/image.h"
#include "io/pytorch.h"
#include "io/safetensors.h"
#include "models/clip/embed_images.h"

namespace tinyemo::cli {
namespace {

namespace fs = std::filesystem;

// Exit code of a run in which some images failed (1 stays for fatal errors).
constexpr int kSomeImagesFailed = 2;

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

struct Opts {
  std::string model, images, out, format = "tinyemo-pt";
  int64_t batch = 8;
  int64_t max_pixels = ImageLimits{}.max_pixels;
  std::string taxonomies, level;  // dataset formats (--format emotion6, ...)
};

struct JobCounts {
  int64_t total = 0, written = 0, skipped = 0, failed = 0;
};

// Embeds the jobs `sink` has not done yet; unreadable images are reported and counted.
JobCounts embed_jobs(const clip::VisionModel& model, const Opts& o, const Scan& scan, FeatureSink& sink,
                     const std::string& label) {
  std::vector<const ImageJob*> pending;
  for (const ImageJob& job : scan.jobs) {
    if (!sink.done(job)) pending.push_back(&job);
  }
  JobCounts c;
  c.total = static_cast<int64_t>(scan.jobs.size() + scan.duplicate_errors.size());
  c.skipped = static_cast<int64_t>(scan.jobs.size() - pending.size());
  c.failed = static_cast<int64_t>(scan.duplicate_errors.size());
  ProgressBar bar(label, static_cast<int64_t>(pending.size()), "img");
  for (const auto& e : scan.duplicate_errors) bar.message("tinyemo: error: " + e);
  std::vector<std::filesystem::path> files;
  for (const ImageJob* job : pending) files.push_back(job->path);
  clip::embed_image_files(model, files, o.batch, ImageLimits{o.max_pixels},
                          [&](size_t i, const float* embedding, const std::string& error) {
                            if (embedding != nullptr) {
                              sink.add(*pending[i], embedding);
                              ++c.written;
                            } else {
                              bar.message("tinyemo: error: " + error);
                              ++c.failed;
                            }
                            bar.advance();
                          });
  sink.finish();
  bar.finish();
  return c;
}

// --format <dataset> (src/data/datasets.h): the dataset as it ships, one shard
// per split, <out>/<split>.safetensors, labels mapped through its taxonomy.
void run_dataset_features(const Opts& o, const clip::VisionModel& model) {
  data::ScanOptions options;
  if (!o.taxonomies.empty()) options.taxonomies = o.taxonomies;
  options.level = o.level;
  const data::DatasetScan dataset = data::scan_dataset(o.format, o.images, options);
  for (const auto& e : dataset.skipped) std::fprintf(stderr, "features: skipped %s: %s\n", e.path.c_str(), e.reason.c_str());
  JobCounts all;
  for (const std::string& split : dataset.splits()) {
    Scan scan;
    for (const data::DatasetItem* item : dataset.split(split)) scan.jobs.push_back({item->path, item->key, item->label});
    ShardSink sink(fs::path(o.out) / (split + ".safetensors"), model.config().projection_dim,
                   fmt::format("tinyemo features: {}; dataset {} {} split {}; taxonomy {}", model.description(),
                               o.format, o.images, split, dataset.taxonomy.source));
    const JobCounts c = embed_jobs(model, o, scan, sink, "features " + split);
    all.total += c.total, all.written += c.written, all.skipped += c.skipped, all.failed += c.failed;
  }
  std::fprintf(stderr, "features: %lld images in %zu splits: %lld written, %lld already done (skipped), %lld failed; "
               "%zu dataset entries skipped\n",
               static_cast<long long>(all.total), dataset.splits().size(), static_cast<long long>(all.written),
               static_cast<long long>(all.skipped), static_cast<long long>(all.failed), dataset.skipped.size());
  if (all.failed > 0) exit_code() = kSomeImagesFailed;
}

void run_features(const Opts& o) {
  const auto model = clip::VisionModel::load(o.model);
  const clip::VisionConfig& cfg = model.config();
  TE_CHECK(cfg.projection_dim > 0,
           "{}: this checkpoint has no visual projection (a CLIPVisionModel), so it gives no image_embeds", o.model);
  const int64_t dim = cfg.projection_dim;
  if (data::is_dataset_format(o.format)) return run_dataset_features(o, model);

  std::unique_ptr<FeatureSink> sink;
  if (o.format == "tinyemo-pt") {
    sink = std::make_unique<PtFolderSink>(o.out, dim);
  } else if (o.format == "safetensors") {
    const fs::path shard = o.out.ends_with(".safetensors") ? fs::path(o.out) : fs::path(o.out) / "features.safetensors";
    sink = std::make_unique<ShardSink>(shard, dim, fmt::format("tinyemo features: {}; images {}; CLIP transform {}",
                                                               model.description(), o.images, cfg.image_size));
  } else {
    fail("--format: expected tinyemo-pt, safetensors or a dataset layout (emotion6, emotionroi, fi, artphoto, abstract, "
         "unbiasedemo, emoset, webemo), got \"{}\"", o.format);
  }

  const Scan scan = scan_images(o.images);
  const JobCounts c = embed_jobs(model, o, scan, *sink, "features");
  std::fprintf(stderr, "features: %lld images: %lld written, %lld already done (skipped), %lld failed",
               static_cast<long long>(c.total), static_cast<long long>(c.written), static_cast<long long>(c.skipped),
               static_cast<long long>(c.failed));
  if (scan.ignored > 0) std::fprintf(stderr, "; %lld non-image files ignored", static_cast<long long>(scan.ignored));
  std::fputc('\n', stderr);
  if (c.failed > 0) exit_code() = kSomeImagesFailed;
}

const CommandRegistration kFeatures("features", [](CLI::App& root) {
  auto o = std::make_shared<Opts>();
  auto* cmd = root.add_subcommand("features", "CLIP image embeddings for a <label>/<image> folder (TinyEmo layout)");
  cmd->add_option("--model", o->model, "CLIP model directory or weights file")->required();
  cmd->add_option("--images", o->images, "folder of <label>/<image> files (JPEG, PNG, WebP)")->required();
  cmd->add_option("--out", o->out, "output folder (or .safetensors file with --format safetensors)")->required();
  cmd->add_option("--format", o->format,
                  "tinyemo-pt (<label>/<stem>.pt, fp16), safetensors (one shard), or a dataset as it ships "
                  "(emotion6, emotionroi, fi, artphoto, abstract, unbiasedemo, emoset, webemo: --images is its root, "
                  "one shard per split <out>/<split>.safetensors)");
  cmd->add_option("--taxonomies", o->taxonomies, "dataset formats: folder of <name>.json taxonomies overriding the built-in ones");
  cmd->add_option("--level", o->level, "dataset formats: a coarser level of the taxonomy (WEBEmo: 7 or 2)");
  cmd->add_option("--batch", o->batch, "images per forward pass")->check(CLI::PositiveNumber);
  cmd->add_option("--max-pixels", o->max_pixels, "refuse images declaring more pixels than this")
      ->check(CLI::PositiveNumber);
  cmd->callback([o] { run_features(*o); });
});

}  // namespace
}  // namespace tinyemo::cli
