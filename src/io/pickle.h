// A restricted unpickler for the pickles torch.save writes (protocols 2-5), and
// the matching writer. Only tensors and plain containers can be rebuilt: the
// few globals torch needs for them are allowlisted and every other global or
// opcode is refused, so unpickling never calls arbitrary code. Every length,
// index and offset is checked against the input and the storages.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "core/tensor.h"

namespace tinyemo {

struct PyItem;

// A value rebuilt by the restricted unpickler.
struct PyValue {
  enum class Kind { None, Bool, Int, Float, String, Bytes, List, Tuple, Dict, Tensor };
  Kind kind = Kind::None;
  bool b = false;
  int64_t i = 0;
  double f = 0.0;
  std::string s;                                  // String, Bytes
  std::vector<PyValue> items;                     // List, Tuple
  std::vector<PyItem> dict;                       // Dict / OrderedDict, in insertion order
  tinyemo::Tensor tensor;                         // Tensor (zero-copy view into the archive when possible)
};

struct PyItem {
  PyValue key, value;
};

// Resolves a storage reference of the pickle (persistent id ('storage',
// torch.<T>Storage, key, location, numel)) to a 1-D tensor of `numel`
// elements of `dtype`; throws tinyemo::Error when there is no such storage.
using StorageResolver = std::function<Tensor(const std::string& key, DType dtype, int64_t numel)>;

// Rebuilds the object pickled in `bytes`. `where` names the source in every
// error ("model.pt: archive/data.pkl"). Tensors are views of their storages
// when contiguous, copies otherwise.
PyValue unpickle(std::string_view bytes, const StorageResolver& storages, const std::string& where);

// Pickles, as torch.save does (protocol 2), one tensor (`state_dict` false,
// exactly one tensor given) or an OrderedDict of name -> tensor. Tensor i is
// stored in storage key "i", holding its elements contiguously.
std::string pickle_tensors(const std::vector<std::pair<std::string, Tensor>>& tensors, bool state_dict);

}  // namespace tinyemo
