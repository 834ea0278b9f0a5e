// TinyLLaVA's connector: selected vision rows -> LM input rows. mlp{N}x_gelu
// is nn.Sequential(Linear, GELU, Linear, GELU, ...) whose Linear layers sit at
// _connector.0, .2, .4, ...; linear is one nn.Linear at _connector; identity
// has no weights. Matrices stay as stored (F32/F16/BF16), multiplied through
// core::linear; GELU is the exact (erf) one, as nn.GELU().
#pragma once

#include <string>
#include <vector>

#include "core/tensor.h"
#include "models/clip/checkpoint.h"
#include "models/mm/config.h"

namespace tinyemo::mm {

class Connector {
 public:
  struct Layer {
    Tensor weight;              // [out, in]
    std::vector<float> bias;    // [out]
  };

  // The connector under `prefix` ("connector._connector.") of `tensors`. The
  // first layer must take `vision_width` inputs and every layer give `lm_width`
  // outputs; a mismatch is refused naming both parts. Layers beyond the
  // configured depth are refused too (the config and the file disagree).
  static Connector from_checkpoint(const ConnectorConfig& config, int64_t vision_width, int64_t lm_width,
                                   const clip::CheckpointTensors& tensors, const std::string& prefix,
                                   const std::string& config_where);
  // Random weights (benchmarks, tests): uniform with variance 1 / fan_in, zero biases.
  static Connector random(const ConnectorConfig& config, int64_t vision_width, int64_t lm_width, uint64_t seed);

  const ConnectorConfig& config() const { return config_; }
  const std::vector<Layer>& layers() const { return layers_; }
  int64_t in_features() const { return in_; }
  int64_t out_features() const { return out_; }

  // rows: F32 [n, in_features] -> F32 [n, out_features].
  Tensor forward(const Tensor& rows) const;
  // The weights under their checkpoint names (prefix + "0.weight", ...).
  std::vector<std::pair<std::string, Tensor>> named_tensors(const std::string& prefix) const;

 private:
  ConnectorConfig config_;
  std::vector<Layer> layers_;
  int64_t in_ = 0, out_ = 0;
};

}  // namespace tinyemo::mm
