#include "models/mm/connector.h"

#include <cmath>

#include "core/error.h"
#include "core/matmul.h"
#include "core/ops.h"
#include "core/thread_pool.h"

namespace tinyemo::mm {

namespace {

// Checkpoint name of Linear layer k (nn.Sequential index 2k for the MLP, whose
// GELUs take the odd indices; the bare module for `linear`).
std::string layer_name(const ConnectorConfig& c, const std::string& prefix, int64_t k) {
  return c.kind == ConnectorKind::Mlp ? prefix + std::to_string(2 * k) + "." : prefix;
}

}  // namespace

Connector Connector::from_checkpoint(const ConnectorConfig& config, int64_t vision_width, int64_t lm_width,
                                     const clip::CheckpointTensors& tensors, const std::string& prefix,
                                     const std::string& config_where) {
  Connector m;
  m.config_ = config;
  m.in_ = vision_width;
  m.out_ = config.kind == ConnectorKind::Identity ? vision_width : lm_width;
  TE_CHECK(m.out_ == lm_width,
           "{}: the identity connector passes the vision tower's {}-wide rows, but the language model is {} wide "
           "(vision_config.hidden_size vs text_config hidden size)",
           config_where, vision_width, lm_width);
  for (int64_t k = 0; k < config.depth; ++k) {
    const std::string name = layer_name(config, prefix, k);
    const Tensor* w = tensors.find(name + "weight");
    const Tensor* b = tensors.find(name + "bias");
    TE_CHECK(w != nullptr, "{}: missing tensor {}weight (connector_type {} in {} has {} Linear layers)",
             tensors.file_of(name + "weight"), name, config.name, config_where, config.depth);
    TE_CHECK(b != nullptr, "{}: missing tensor {}bias", tensors.file_of(name + "bias"), name);
    TE_CHECK(w->ndim() == 2 && b->ndim() == 1 && b->dim(0) == w->dim(0),
             "{}: connector layer {}weight {} / bias {} is not a Linear layer", tensors.file_of(name + "weight"), name,
             shape_str(w->shape()), shape_str(b->shape()));
    const DType d = w->dtype();
    TE_CHECK(d == DType::F32 || d == DType::F16 || d == DType::BF16,
             "{}: tensor {}weight has dtype {}; connector weights must be F32, F16 or BF16",
             tensors.file_of(name + "weight"), name, dtype_name(d));
    const int64_t want_in = k == 0 ? vision_width : lm_width;
    if (k == 0) {
      TE_CHECK(w->dim(1) == vision_width,
               "{}: the connector's first layer {}weight takes {} inputs, but the vision tower gives {} "
               "(vision_config.hidden_size in {})",
               tensors.file_of(name + "weight"), name, w->dim(1), vision_width, config_where);
    } else {
      TE_CHECK(w->dim(1) == want_in, "{}: connector layer {}weight takes {} inputs, the layer before gives {}",
               tensors.file_of(name + "weight"), name, w->dim(1), want_in);
    }
    TE_CHECK(w->dim(0) == lm_width,
             "{}: the connector layer {}weight gives {} outputs, but the language model's hidden size is {} "
             "(text_config in {})",
             tensors.file_of(name + "weight"), name, w->dim(0), lm_width, config_where);
    m.layers_.push_back({*w, b->to_f32_vector()});
  }
  // A layer past the configured depth means the file and config.json disagree.
  const std::string extra = layer_name(config, prefix, config.depth) + "weight";
  const bool has_extra = config.kind == ConnectorKind::Mlp ? tensors.contains(extra)
                                                           : config.kind == ConnectorKind::Identity &&
                                                                 (tensors.contains(prefix + "weight") ||
                                                                  tensors.contains(prefix + "0.weight"));
  TE_CHECK(!has_extra, "{}: holds connector weights ({}) that connector_type {} in {} does not have",
           tensors.main_file(), config.kind == ConnectorKind::Mlp ? extra : prefix + "*", config.name, config_where);
  return m;
}

Connector Connector::random(const ConnectorConfig& config, int64_t vision_width, int64_t lm_width, uint64_t seed) {
  Connector m;
  m.config_ = config;
  m.in_ = vision_width;
  m.out_ = config.kind == ConnectorKind::Identity ? vision_width : lm_width;
  TE_CHECK(m.out_ == lm_width, "random connector: identity needs equal widths ({} vs {})", vision_width, lm_width);
  for (int64_t k = 0; k < config.depth; ++k) {
    const int64_t in = k == 0 ? vision_width : lm_width;
    Tensor w = Tensor::empty(DType::F32, {lm_width, in});
    float* p = w.mutable_data<float>();
    const float a = std::sqrt(3.0f / static_cast<float>(in));
    const uint64_t base = (seed * 0x9E3779B97F4A7C15ull) ^ (static_cast<uint64_t>(k + 1) * 0xD1B54A32D192ED03ull);
    parallel_for(w.numel(), 1 << 16, [&](int64_t b, int64_t e) {
      for (int64_t i = b; i < e; ++i) {
        uint64_t z = base + static_cast<uint64_t>(i) * 0xBF58476D1CE4E5B9ull;  // splitmix64 finaliser
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
        z ^= z >> 31;
        p[i] = a * (static_cast<float>(z >> 40) * 0x1.0p-23f - 1.0f);
      }
    });
    m.layers_.push_back({std::move(w), std::vector<float>(static_cast<size_t>(lm_width), 0.0f)});
  }
  return m;
}

Tensor Connector::forward(const Tensor& rows) const {
  TE_CHECK(rows.ndim() == 2 && rows.dim(1) == in_ && rows.dtype() == DType::F32,
           "connector input: expected F32 [n, {}], got {} {}", in_, dtype_name(rows.dtype()), shape_str(rows.shape()));
  Tensor x = rows;
  for (size_t k = 0; k < layers_.size(); ++k) {
    const Layer& l = layers_[k];
    Tensor y = Tensor::empty(DType::F32, {x.dim(0), l.weight.dim(0)});
    linear(x.data<float>(), x.dim(0), l.weight, l.bias.data(), y.mutable_data<float>());
    if (k + 1 < layers_.size()) {
      float* p = y.mutable_data<float>();
      const int64_t cols = y.dim(1);
      parallel_for(y.dim(0), std::max<int64_t>(1, 32768 / cols),
                   [&](int64_t r0, int64_t r1) { gelu_erf(p + r0 * cols, (r1 - r0) * cols); });
    }
    x = std::move(y);
  }
  return layers_.empty() ? rows.clone() : x;
}

std::vector<std::pair<std::string, Tensor>> Connector::named_tensors(const std::string& prefix) const {
  std::vector<std::pair<std::string, Tensor>> out;
  for (size_t k = 0; k < layers_.size(); ++k) {
    const std::string name = layer_name(config_, prefix, static_cast<int64_t>(k));
    out.emplace_back(name + "weight", layers_[k].weight);
    out.emplace_back(name + "bias", Tensor::from_vector<float>({static_cast<int64_t>(layers_[k].bias.size())},
                                                               layers_[k].bias));
  }
  return out;
}

}  // namespace tinyemo::mm
