#include "models/projector/model.h"

#include <cmath>
#include <map>

#include "core/finite.h"
#include "io/json.h"
#include "models/projector/metadata.h"
#include "io/pytorch.h"
#include "io/safetensors.h"

namespace tinyemo::projector {

namespace fs = std::filesystem;

namespace {

constexpr const char* kFormat = "tinyemo-projector";

Tensor f32_tensor(Shape shape, const float* data) {
  Tensor t = Tensor::empty(DType::F32, std::move(shape));
  std::copy(data, data + t.numel(), t.mutable_data<float>());
  return t;
}

// Looks up state-dict tensors by name and copies them out as f32 with the
// expected shape; errors name the file and the tensor.
class TensorSource {
 public:
  TensorSource(std::string where, std::map<std::string, Tensor> tensors)
      : where_(std::move(where)), tensors_(std::move(tensors)) {}

  const Tensor& get(const std::string& name) const {
    const auto it = tensors_.find(name);
    TE_CHECK(it != tensors_.end(), "{}: missing tensor \"{}\"", where_, name);
    return it->second;
  }
  bool has(const std::string& name) const { return tensors_.count(name) != 0; }
  void copy(const std::string& name, const Shape& shape, float* dst) const {
    const Tensor& t = get(name);
    TE_CHECK(t.shape() == shape, "{}: tensor \"{}\" has shape {}, expected {}", where_, name, shape_str(t.shape()),
             shape_str(shape));
    TE_CHECK(t.dtype() == DType::F32 || t.dtype() == DType::F16 || t.dtype() == DType::BF16 ||
                 t.dtype() == DType::F64,
             "{}: tensor \"{}\" has dtype {}, expected a float type", where_, name, dtype_name(t.dtype()));
    const std::vector<float> v = t.to_f32_vector();
    const int64_t bad = first_non_finite(v.data(), static_cast<int64_t>(v.size()));
    TE_CHECK(bad < 0, "{}: tensor \"{}\" holds {} at flat index {} (weights must be finite)", where_, name,
             bad < 0 ? 0.0f : v[bad], bad);
    std::copy(v.begin(), v.end(), dst);
  }
  const std::string& where() const { return where_; }

 private:
  std::string where_;
  std::map<std::string, Tensor> tensors_;
};

// Tensor name prefix of ensemble member k (member 0: TinyEmo's own names).
std::string member_prefix(size_t k) { return k == 0 ? "" : fmt::format("members.{}.", k); }

// One MLP and its BN statistics from TinyEmo state-dict names under `prefix`.
MlpWeights read_state_dict(const TensorSource& src, const MlpLayout& layout, const std::string& prefix) {
  const int64_t D = layout.dims.input, H = layout.dims.hidden;
  MlpWeights w(layout);
  const auto p = MlpParamsView<float>::at(w.params.data(), layout);
  src.copy(prefix + "model.0.weight", {H, D}, p.w1);
  src.copy(prefix + "model.0.bias", {H}, p.b1);
  src.copy(prefix + "model.1.weight", {H}, p.gamma);
  src.copy(prefix + "model.1.bias", {H}, p.beta);
  src.copy(prefix + "model.1.running_mean", {H}, w.running_mean.data());
  src.copy(prefix + "model.1.running_var", {H}, w.running_var.data());
  // A variance below zero is no state BatchNorm can reach: the file is damaged
  // (or edited), and the normalisation would divide by a negative number or
  // take the square root of one. Zero is a unit that never varied: var + eps > 0.
  for (int64_t h = 0; h < H; ++h) {
    TE_CHECK(w.running_var[h] >= 0.0f, "{}: tensor \"{}model.1.running_var\"[{}] = {} is negative (a variance)",
             src.where(), prefix, h, w.running_var[h]);
  }
  src.copy(prefix + "model.4.weight", {H, H}, p.w2);
  src.copy(prefix + "model.4.bias", {H}, p.b2);
  if (src.has(prefix + "model.1.num_batches_tracked")) {
    const Tensor& t = src.get(prefix + "model.1.num_batches_tracked");
    if (t.dtype() == DType::I64 && t.numel() == 1) w.num_batches_tracked = t.data<int64_t>()[0];
  }
  return w;
}

MlpDims dims_from_first_linear(const TensorSource& src, const std::string& where) {
  const Tensor& w1 = src.get("model.0.weight");
  TE_CHECK(w1.ndim() == 2, "{}: tensor \"model.0.weight\" must be 2-D, got {}", where, shape_str(w1.shape()));
  return MlpDims{w1.dim(1), w1.dim(0)};
}

nlohmann::json config_json(const ProjectorConfig& c, size_t members) {
  return {{"input_dim", c.dims.input},
          {"members", members},
          {"hidden_dim", c.dims.hidden},
          {"bn_eps", c.bn_eps},
          {"bn_momentum", c.bn_momentum},
          {"dropout", c.dropout},
          {"input_norm", input_norm_name(c.input_norm)},
          {"temperature", c.temperature},
          {"training", c.training}};
}

}  // namespace

std::string_view input_norm_name(InputNorm n) { return n == InputNorm::L2 ? "l2" : "none"; }

InputNorm parse_input_norm(std::string_view name) {
  if (name == "none") return InputNorm::None;
  if (name == "l2") return InputNorm::L2;
  fail("unknown input normalisation \"{}\" (expected none or l2)", name);
}

MlpWeights::MlpWeights(const MlpLayout& layout)
    : params(static_cast<size_t>(layout.size), 0.0f),
      running_mean(static_cast<size_t>(layout.dims.hidden), 0.0f),
      running_var(static_cast<size_t>(layout.dims.hidden), 1.0f) {}

ProjectorModel::ProjectorModel(const ProjectorConfig& config, std::vector<std::string> labels)
    : config_(config),
      layout_(config.dims),
      labels_(std::move(labels)),
      anchors_(labels_.size() * static_cast<size_t>(config.dims.hidden), 0.0f) {
  check_unique_names(labels_, "projector labels");
}

void ProjectorModel::set_members(std::vector<MlpWeights> members) {
  TE_CHECK(!members.empty(), "a projector needs at least one MLP");
  for (const auto& m : members) {
    TE_CHECK(static_cast<int64_t>(m.params.size()) == layout_.size &&
                 static_cast<int64_t>(m.running_mean.size()) == hidden_dim() &&
                 static_cast<int64_t>(m.running_var.size()) == hidden_dim(),
             "ensemble member does not match the projector's dimensions");
  }
  members_ = std::move(members);
}

void ProjectorModel::set_anchors(std::vector<std::string> labels, std::vector<float> anchors) {
  TE_CHECK(!labels.empty(), "a projector needs at least one label");
  check_unique_names(labels, "projector labels");
  TE_CHECK(anchors.size() == labels.size() * static_cast<size_t>(hidden_dim()),
           "anchors: {} values for {} labels of dimension {}", anchors.size(), labels.size(), hidden_dim());
  labels_ = std::move(labels);
  anchors_ = std::move(anchors);
}

void normalize_inputs(InputNorm norm, const float* x, int64_t n, int64_t D, float* out) {
  if (norm == InputNorm::None) {
    std::copy(x, x + n * D, out);
    return;
  }
  normalize_rows<float>(x, n, D, out);
  const float scale = std::sqrt(static_cast<float>(D));
  for (int64_t i = 0; i < n * D; ++i) out[i] *= scale;
}

void ProjectorModel::project(const float* x, int64_t n, float* out) const {
  const int64_t D = input_dim(), H = hidden_dim();
  TE_CHECK(!members_.empty(), "projector has no weights");
  std::vector<float> normed;
  if (config_.input_norm != InputNorm::None) {
    normed.resize(static_cast<size_t>(n * D));
    normalize_inputs(config_.input_norm, x, n, D, normed.data());
    x = normed.data();
  }
  const auto eps = static_cast<float>(config_.bn_eps);
  if (members_.size() == 1) {
    const MlpWeights& w = members_[0];
    mlp_forward_eval<float>(layout_, w.params.data(), w.running_mean.data(), w.running_var.data(), eps, x, n, out);
    return;
  }
  std::vector<float> z(static_cast<size_t>(n * H));
  std::fill(out, out + n * H, 0.0f);
  const float inv_k = 1.0f / static_cast<float>(members_.size());
  for (const MlpWeights& w : members_) {
    mlp_forward_eval<float>(layout_, w.params.data(), w.running_mean.data(), w.running_var.data(), eps, x, n,
                            z.data());
    normalize_rows<float>(z.data(), n, H, z.data());
    for (int64_t i = 0; i < n * H; ++i) out[i] += z[i] * inv_k;
  }
}

void ProjectorModel::save(const fs::path& path) const {
  const int64_t D = input_dim(), H = hidden_dim(), L = static_cast<int64_t>(labels_.size());
  NamedTensors tensors;
  for (size_t k = 0; k < members_.size(); ++k) {
    const MlpWeights& w = members_[k];
    const std::string pre = member_prefix(k);
    const auto p = MlpParamsView<const float>::at(w.params.data(), layout_);
    tensors.emplace_back(pre + "model.0.weight", f32_tensor({H, D}, p.w1));
    tensors.emplace_back(pre + "model.0.bias", f32_tensor({H}, p.b1));
    tensors.emplace_back(pre + "model.1.weight", f32_tensor({H}, p.gamma));
    tensors.emplace_back(pre + "model.1.bias", f32_tensor({H}, p.beta));
    tensors.emplace_back(pre + "model.1.running_mean", f32_tensor({H}, w.running_mean.data()));
    tensors.emplace_back(pre + "model.1.running_var", f32_tensor({H}, w.running_var.data()));
    tensors.emplace_back(pre + "model.1.num_batches_tracked",
                         Tensor::from_vector<int64_t>({}, {w.num_batches_tracked}));
    tensors.emplace_back(pre + "model.4.weight", f32_tensor({H, H}, p.w2));
    tensors.emplace_back(pre + "model.4.bias", f32_tensor({H}, p.b2));
  }
  tensors.emplace_back("anchors", f32_tensor({L, H}, anchors_.data()));
  const nlohmann::json split_json = {
      {"features", split.features}, {"fraction", split.fraction}, {"seed", split.seed}, {"val_files", split.files}};
  write_safetensors(path, tensors,
                    {{"format", kFormat},
                     {"labels", nlohmann::json(labels_).dump()},
                     {"config", config_json(config_, members_.size()).dump()},
                     {"split", split_json.dump()}});
}

ProjectorModel ProjectorModel::load(const fs::path& path) {
  const SafetensorsFile st = SafetensorsFile::open(path);
  const std::string where = path.string();
  const auto& meta = st.metadata();
  TE_CHECK(meta.count("labels"), "{}: metadata has no \"labels\" (not a tinyemo projector model?)", where);
  std::map<std::string, Tensor> tensors;
  for (const auto& e : st.entries()) tensors[e.name] = st.get(e.name);
  const TensorSource src(where, std::move(tensors));

  ProjectorConfig config;
  config.dims = dims_from_first_linear(src, where);
  int64_t members = 1;
  // The softmax temperature decides every probability the model reports; a
  // file without it would be read with a guessed one, so it is refused.
  TE_CHECK(meta.count("config"),
           "{}: metadata has no \"config\" (dimensions, BatchNorm eps, softmax temperature): not a model written by "
           "tinyemo projector train/import",
           where);
  {
    const nlohmann::json j = parse_metadata_json(meta.at("config"), where + ": metadata \"config\"");
    const JsonObject c(j, where + ": metadata config");
    config.bn_eps = c.get_or<double>("bn_eps", config.bn_eps);
    config.bn_momentum = c.get_or<double>("bn_momentum", config.bn_momentum);
    config.dropout = c.get_or<double>("dropout", config.dropout);
    config.input_norm = parse_input_norm(c.get_or<std::string>("input_norm", "none"));
    TE_CHECK(c.has("temperature"),
             "{}: metadata config has no \"temperature\" (the softmax temperature of the probabilities; tinyemo "
             "writes 0.1 for TinyEmo's models)",
             where);
    config.temperature = c.get<double>("temperature");
    if (c.has("training")) config.training = j.at("training");
    members = c.get_or<int64_t>("members", 1);
    TE_CHECK(members >= 1 && members <= 1024, "{}: metadata config: members = {} is not in [1, 1024]", where, members);
    TE_CHECK(c.get_or<int64_t>("input_dim", config.dims.input) == config.dims.input &&
                 c.get_or<int64_t>("hidden_dim", config.dims.hidden) == config.dims.hidden,
             "{}: metadata config dimensions do not match tensor \"model.0.weight\" {}", where,
             shape_str(src.get("model.0.weight").shape()));
    TE_CHECK(config.bn_eps > 0.0 && std::isfinite(config.bn_eps) && config.temperature > 0.0 &&
                 std::isfinite(config.temperature),
             "{}: metadata config: bn_eps ({}) and temperature ({}) must be positive and finite", where, config.bn_eps,
             config.temperature);
  }
  std::vector<std::string> labels = parse_label_array(meta.at("labels"), where + ": metadata \"labels\"");
  ProjectorModel m(config, labels);
  std::vector<MlpWeights> weights;
  for (int64_t k = 0; k < members; ++k) weights.push_back(read_state_dict(src, m.layout(), member_prefix(k)));
  m.set_members(std::move(weights));

  const Tensor& anchors = src.get("anchors");
  const int64_t L = static_cast<int64_t>(labels.size()), H = m.hidden_dim();
  TE_CHECK(L > 0, "{}: metadata \"labels\" is empty", where);
  std::vector<float> rows(static_cast<size_t>(L * H));
  TE_CHECK(anchors.shape() == Shape({L, H}), "{}: tensor \"anchors\" has shape {}, expected [{}, {}] ({} labels)",
           where, shape_str(anchors.shape()), L, H, L);
  src.copy("anchors", {L, H}, rows.data());
  m.set_anchors(std::move(labels), std::move(rows));

  if (meta.count("split")) {
    const nlohmann::json j = parse_metadata_json(meta.at("split"), where + ": metadata \"split\"");
    const JsonObject s(j, where + ": metadata split");
    m.split.features = s.get_or<std::string>("features", "");
    m.split.fraction = s.get_or<double>("fraction", 0.0);
    m.split.seed = s.get_or<uint64_t>("seed", 0);
    m.split.files = s.get_or<std::vector<std::string>>("val_files", {});
  }
  return m;
}

ProjectorModel ProjectorModel::import_tinyemo(const fs::path& bin, const fs::path& anchors_path) {
  std::map<std::string, Tensor> tensors;
  for (auto& [name, t] : load_pytorch_tensors(bin)) tensors[name] = std::move(t);
  const TensorSource src(bin.string(), std::move(tensors));
  ProjectorConfig config;
  config.dims = dims_from_first_linear(src, bin.string());
  config.training = {{"imported_from", bin.string()}};
  const AnchorSet anchors = load_anchors(anchors_path, config.dims.hidden);
  ProjectorModel m(config, anchors.labels);
  m.set_members({read_state_dict(src, m.layout(), "")});
  m.set_anchors(anchors.labels, anchors.rows);
  return m;
}

AnchorSet load_anchors(const fs::path& path, int64_t expected_hidden) {
  const SafetensorsFile st = SafetensorsFile::open(path);
  const std::string where = path.string();
  std::string name = "anchors";
  if (!st.contains(name)) {
    TE_CHECK(st.entries().size() == 1, "{}: no tensor \"anchors\" (and not a single-tensor file)", where);
    name = st.entries()[0].name;
  }
  const Tensor t = st.get(name);
  TE_CHECK(t.ndim() == 2 && t.dim(0) > 0 && t.dim(1) > 0, "{}: tensor \"{}\" must be [labels, hidden], got {}", where,
           name, shape_str(t.shape()));
  TE_CHECK(t.dtype() == DType::F32 || t.dtype() == DType::F16 || t.dtype() == DType::BF16 || t.dtype() == DType::F64,
           "{}: tensor \"{}\" has dtype {}, expected a float type", where, name, dtype_name(t.dtype()));
  TE_CHECK(expected_hidden <= 0 || t.dim(1) == expected_hidden,
           "{}: anchors have dimension {}, the projector's output has {}", where, t.dim(1), expected_hidden);
  AnchorSet a;
  TE_CHECK(st.metadata().count("labels"), "{}: metadata has no \"labels\" (one name per anchor row)", where);
  a.labels = parse_label_array(st.metadata().at("labels"), where + ": metadata \"labels\"");
  TE_CHECK(static_cast<int64_t>(a.labels.size()) == t.dim(0), "{}: {} label names for {} anchor rows", where,
           a.labels.size(), t.dim(0));
  a.hidden = t.dim(1);
  a.rows = t.to_f32_vector();
  const int64_t bad = first_non_finite(a.rows.data(), static_cast<int64_t>(a.rows.size()));
  TE_CHECK(bad < 0, "{}: anchor of \"{}\" holds {} (anchors must be finite)", where,
           bad < 0 ? std::string() : a.labels[bad / a.hidden], bad < 0 ? 0.0f : a.rows[bad]);
  return a;
}

void save_anchors(const fs::path& path, const AnchorSet& anchors) {
  const int64_t L = static_cast<int64_t>(anchors.labels.size());
  check_unique_names(anchors.labels, path.string() + ": anchor labels");
  write_safetensors(path, {{"anchors", f32_tensor({L, anchors.hidden}, anchors.rows.data())}},
                    {{"labels", nlohmann::json(anchors.labels).dump()}});
}

}  // namespace tinyemo::projector
