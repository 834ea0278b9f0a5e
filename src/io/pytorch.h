// PyTorch checkpoints (`torch.save` zip archives: .pt, pytorch_model.bin),
// read through a restricted unpickler that only rebuilds tensors and plain
// containers: any other global or opcode is refused, so loading never runs code.
// Also writes tensors/state dicts that `torch.load` reads back.
#pragma once

#include <filesystem>

#include "core/tensor.h"
#include "io/pickle.h"
#include "io/safetensors.h"

namespace tinyemo {

// Loads the pickled object of a torch.save archive.
PyValue load_pytorch(const std::filesystem::path& path);

// Every tensor in the object, keyed by its dotted path ("model.0.weight";
// nested dicts joined with ".", list/tuple items by index, a lone tensor as
// ""); file order kept; other values (numbers, strings) are skipped.
NamedTensors load_pytorch_tensors(const std::filesystem::path& path);

// The single tensor a file holds (TinyEmo's feature files); errors otherwise.
Tensor load_pytorch_tensor(const std::filesystem::path& path);

// Writes a torch.save-compatible zip archive (atomically) holding one tensor,
// or a state dict (OrderedDict of name -> tensor), that torch.load reads.
void save_pytorch_tensor(const std::filesystem::path& path, const Tensor& tensor);
void save_pytorch_state_dict(const std::filesystem::path& path, const NamedTensors& tensors);

}  // namespace tinyemo
