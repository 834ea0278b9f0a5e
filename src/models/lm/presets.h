// The LMs TinyEmo builds on, as their Hugging Face config.json (shapes only:
// hidden sizes, layers, heads, vocabularies), and models of those shapes with
// random weights, for benchmarks without checkpoints.
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <vector>

#include "models/lm/model.h"

namespace tinyemo::lm {

// "openelm-270m", "openelm-450m", "tinyllama-1.1b", "phi-2".
const std::vector<std::string>& lm_preset_names();
nlohmann::json lm_preset_config(std::string_view name);

// A model of `hf_config`'s shapes with deterministic random weights in `dtype`
// (generated tensor by tensor, so at most one F32 matrix exists beside the
// converted ones): matrices uniform with variance 1/fan_in, norm weights 1, biases 0.
LmModel random_lm(const nlohmann::json& hf_config, DType dtype, uint64_t seed = 0);

}  // namespace tinyemo::lm
