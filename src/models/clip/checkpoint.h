// The tensors of a CLIP checkpoint, whatever file layout holds them, and how
// `--model` finds the files: a directory (config.json plus one weights file)
// or a weights file path (with a config.json beside it when there is one).
#pragma once

#include <filesystem>
#include <map>
#include <optional>
#include <string>

#include "core/tensor.h"

namespace tinyemo::clip {

// Every tensor of a checkpoint, each as a view of its mapped file (no copy),
// with the file it came from for error messages.
class CheckpointTensors {
 public:
  // A .safetensors file, a sharded *.safetensors.index.json, or a PyTorch
  // archive (.pt/.pth/.bin: torch.save zip, read by the restricted unpickler).
  static CheckpointTensors read(const std::filesystem::path& weights_file);

  void add(const std::string& name, Tensor tensor, const std::string& file);
  bool contains(const std::string& name) const { return tensors_.count(name) != 0; }
  const Tensor* find(const std::string& name) const;
  // The file holding `name` (or the checkpoint's main file when absent).
  const std::string& file_of(const std::string& name) const;
  const std::map<std::string, Tensor>& tensors() const { return tensors_; }
  const std::string& main_file() const { return main_file_; }

 private:
  std::map<std::string, Tensor> tensors_;
  std::map<std::string, std::string> files_;
  std::string main_file_;
};

struct ModelFiles {
  std::filesystem::path weights;
  std::optional<std::filesystem::path> config;  // config.json, when present
};

// Resolves `--model`: for a directory, its config.json (optional) and its
// weights file: model.safetensors, model.safetensors.index.json,
// pytorch_model.bin, else the only *.safetensors/*.pt/*.pth/*.bin in it.
// For a file: that file, and config.json from the same directory if present.
ModelFiles resolve_model_files(const std::filesystem::path& model);

}  // namespace tinyemo::clip
