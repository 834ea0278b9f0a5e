// GGUF (versions 2 and 3, little-endian; spec: ggml-org/ggml docs/gguf.md):
// a memory-mapped reader that validates every count, length, type, offset and
// alignment before trusting it, and an atomic writer.
//
// Tensor shapes are given in PyTorch order: GGUF lists dimensions innermost
// first (ne[0] = elements per row), so a [N, K] weight is stored as (K, N).
#pragma once

#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "core/tensor.h"
#include "io/file.h"

namespace tinyemo {

// Metadata value types (the numbers are the file's).
enum class GgufType : uint32_t {
  U8 = 0,
  I8 = 1,
  U16 = 2,
  I16 = 3,
  U32 = 4,
  I32 = 5,
  F32 = 6,
  Bool = 7,
  String = 8,
  Array = 9,
  U64 = 10,
  I64 = 11,
  F64 = 12,
};
std::string_view gguf_type_name(GgufType t);

// One metadata value: a scalar, a string, or an array of scalars or strings
// (arrays of arrays are refused by the reader). Arrays are stored compactly:
// fixed-size elements as their little-endian bytes in `s`, strings in `strings`.
struct GgufValue {
  GgufType type = GgufType::U32;
  GgufType array_type = GgufType::U32;  // element type when type == Array
  uint64_t array_size = 0;              // element count when type == Array
  uint64_t u = 0;                       // unsigned integers and Bool
  int64_t i = 0;                        // signed integers
  double f = 0.0;                       // F32, F64
  std::string s{};                      // String, or the bytes of a fixed-size array
  std::vector<std::string> strings{};   // array of strings

  static GgufValue u32(uint32_t v);
  static GgufValue u64(uint64_t v);
  static GgufValue i32(int32_t v);
  static GgufValue f32(float v);
  static GgufValue boolean(bool v);
  static GgufValue string(std::string v);
  static GgufValue i32_array(const std::vector<int32_t>& v);
  static GgufValue f32_array(const std::vector<float>& v);
  static GgufValue string_array(std::vector<std::string> v);
  static GgufValue u8_array(std::string_view bytes);
};

struct GgufTensorInfo {
  std::string name;
  DType dtype = DType::F32;
  Shape shape;          // PyTorch order
  uint64_t offset = 0;  // into the data section
  uint64_t nbytes = 0;
};

class GgufFile {
 public:
  // Maps and validates the file; throws tinyemo::Error naming the path and the
  // offending key / tensor.
  static GgufFile open(const std::filesystem::path& path);
  // Validates bytes kept alive by `owner` (`where` names them in errors).
  static GgufFile parse(std::shared_ptr<const void> owner, const uint8_t* data, size_t size, std::string where);

  const std::string& where() const { return where_; }
  uint32_t version() const { return version_; }
  uint64_t alignment() const { return alignment_; }
  // Byte offset of the tensor data section in the file.
  size_t data_start() const { return data_start_; }

  const std::map<std::string, GgufValue>& metadata() const { return metadata_; }
  bool has(const std::string& key) const { return metadata_.count(key) != 0; }
  const GgufValue& value(const std::string& key) const;
  // Typed access; errors name the file, the key and the type found.
  uint64_t get_uint(const std::string& key) const;  // any integer type holding a value >= 0
  int64_t get_int(const std::string& key) const;    // any integer type
  double get_float(const std::string& key) const;   // F32, F64 or an integer
  bool get_bool(const std::string& key) const;
  const std::string& get_string(const std::string& key) const;
  std::vector<int64_t> get_int_array(const std::string& key) const;
  std::vector<double> get_float_array(const std::string& key) const;  // F32/F64 (or integer) elements
  const std::vector<std::string>& get_string_array(const std::string& key) const;
  const std::string& get_u8_array(const std::string& key) const;  // U8/I8 array as bytes

  // Tensors in file order.
  const std::vector<GgufTensorInfo>& tensors() const { return tensors_; }
  bool contains(const std::string& name) const { return index_.count(name) != 0; }
  const GgufTensorInfo& info(const std::string& name) const;
  // Zero-copy read-only view (copied when the bytes are not aligned for the dtype).
  Tensor get(const std::string& name) const;

 private:
  std::shared_ptr<const void> owner_;
  const uint8_t* data_ = nullptr;
  size_t size_ = 0;
  std::string where_;
  uint32_t version_ = 0;
  uint64_t alignment_ = 32;
  size_t data_start_ = 0;
  std::map<std::string, GgufValue> metadata_;
  std::vector<GgufTensorInfo> tensors_;
  std::map<std::string, size_t> index_;
};

// Collects metadata and tensors, then writes a GGUF v3 file (tensor data
// aligned to general.alignment, 32 unless set otherwise).
class GgufWriter {
 public:
  // Sets (or replaces) a metadata key.
  void set(const std::string& key, GgufValue value);
  bool has(const std::string& key) const;
  // Tensor of dtype F32, F16, BF16, Q8_0, Q4_0, Q4_K, Q5_K or Q6_K (its buffer is shared until written).
  void add_tensor(const std::string& name, const Tensor& tensor);

  std::string bytes() const;
  void write(const std::filesystem::path& path) const;  // atomically

 private:
  std::string header() const;
  uint64_t alignment() const;

  std::vector<std::pair<std::string, GgufValue>> metadata_;
  std::vector<std::pair<std::string, Tensor>> tensors_;
};

}  // namespace tinyemo
