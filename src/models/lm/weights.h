// Where an LM's tensors come from: a safetensors checkpoint (one file or a
// sharded model.safetensors.index.json), a GGUF file, or generated weights.
// Tensors are handed out as stored: views of the mapped files, never copies.
#pragma once

#include <filesystem>
#include <memory>
#include <string>

#include "core/tensor.h"

namespace tinyemo::lm {

class WeightSource {
 public:
  virtual ~WeightSource() = default;
  virtual bool contains(const std::string& name) const = 0;
  virtual Tensor get(const std::string& name) const = 0;
  // The file that holds (or should hold) `name`, for error messages.
  virtual std::string where(const std::string& name) const = 0;
};

// `file` is a .safetensors file or a model.safetensors.index.json naming shards
// in the same folder (shard names must be plain file names).
std::unique_ptr<WeightSource> open_safetensors_weights(const std::filesystem::path& file);

}  // namespace tinyemo::lm
