// PyTorch checkpoints (`torch.save` zip archives: .pt, pytorch_model.bin),
// read through a restricted unpickler that only rebuilds tensors and plain
// containers: any other global or opcode is refused, so loading never runs code.
// Also writes tensors/state dicts that `torch.load` reads back.
#pragma once

#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>
#include <utility>
#include <variant>
#include <vector>

#include "core/tensor.h"
#include "io/safetensors.h"

namespace tinyemo {

// A value rebuilt by the restricted unpickler.
struct PyValue {
  enum class Kind { None, Bool, Int, Float, String, Bytes, List, Tuple, Dict, Tensor };
  Kind kind = Kind::None;
  bool b = false;
  int64_t i = 0;
  double f = 0.0;
  std::string s;                                        // String, Bytes
  std::vector<PyValue> items;                           // List, Tuple
  std::vector<std::pair<PyValue, PyValue>> dict;        // Dict / OrderedDict, in insertion order
  tinyemo::Tensor tensor;                               // Tensor (zero-copy view into the archive when possible)
};

// Loads the pickled object of a torch.save archive.
PyValue load_pytorch(const std::filesystem::path& path);

// Every tensor in the object, keyed by its dotted path ("model.0.weight";
// nested dicts joined with ".", list/tuple items by index); file order kept.
NamedTensors load_pytorch_tensors(const std::filesystem::path& path);

// The single tensor a file holds (TinyEmo's feature files); errors otherwise.
Tensor load_pytorch_tensor(const std::filesystem::path& path);

// Writes a torch.save-compatible zip archive (atomically) holding one tensor,
// or a state dict (OrderedDict of name -> tensor).
void save_pytorch_tensor(const std::filesystem::path& path, const Tensor& tensor);
void save_pytorch_state_dict(const std::filesystem::path& path, const NamedTensors& tensors);

}  // namespace tinyemo
