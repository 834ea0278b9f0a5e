#include "io/gguf.h"

#include <algorithm>
#include <cstring>
#include <limits>

namespace tinyemo {

namespace {

constexpr uint32_t kMagic = 0x46554747;  // "GGUF" read as a little-endian u32
constexpr uint32_t kWriteVersion = 3;
constexpr uint64_t kDefaultAlignment = 32;
constexpr uint64_t kMaxAlignment = 1u << 16;
constexpr uint64_t kMaxKeyBytes = 65535;  // the spec's limit on key length
constexpr uint32_t kMaxDims = 4;          // GGML_MAX_DIMS

// ggml tensor type ids: the ones tinyemo computes with, and names for the rest
// so that a refusal can say what the file holds.
struct GgmlType {
  uint32_t id;
  const char* name;
  bool supported;
  DType dtype;
};
constexpr GgmlType kGgmlTypes[] = {
    {0, "F32", true, DType::F32},       {1, "F16", true, DType::F16},       {2, "Q4_0", true, DType::Q4_0},
    {3, "Q4_1", false, DType::F32},     {6, "Q5_0", false, DType::F32},     {7, "Q5_1", false, DType::F32},
    {8, "Q8_0", true, DType::Q8_0},     {9, "Q8_1", false, DType::F32},     {10, "Q2_K", false, DType::F32},
    {11, "Q3_K", false, DType::F32},    {12, "Q4_K", true, DType::Q4_K},    {13, "Q5_K", true, DType::Q5_K},
    {14, "Q6_K", true, DType::Q6_K},    {15, "Q8_K", false, DType::F32},    {16, "IQ2_XXS", false, DType::F32},
    {17, "IQ2_XS", false, DType::F32},  {18, "IQ3_XXS", false, DType::F32}, {19, "IQ1_S", false, DType::F32},
    {20, "IQ4_NL", false, DType::F32},  {21, "IQ3_S", false, DType::F32},   {22, "IQ2_S", false, DType::F32},
    {23, "IQ4_XS", false, DType::F32},  {24, "I8", false, DType::F32},      {25, "I16", false, DType::F32},
    {26, "I32", false, DType::F32},     {27, "I64", false, DType::F32},     {28, "F64", false, DType::F32},
    {29, "IQ1_M", false, DType::F32},   {30, "BF16", true, DType::BF16},
};

uint32_t ggml_type_of(DType t) {
  for (const GgmlType& g : kGgmlTypes) {
    if (g.supported && g.dtype == t) return g.id;
  }
  fail("GGUF: cannot store {} tensors (F32, F16, BF16, Q8_0, Q4_0, Q4_K, Q5_K and Q6_K only)", dtype_name(t));
}

// Bytes of one element of a fixed-size metadata type; 0 for String/Array.
size_t scalar_bytes(GgufType t) {
  switch (t) {
    case GgufType::U8:
    case GgufType::I8:
    case GgufType::Bool: return 1;
    case GgufType::U16:
    case GgufType::I16: return 2;
    case GgufType::U32:
    case GgufType::I32:
    case GgufType::F32: return 4;
    case GgufType::U64:
    case GgufType::I64:
    case GgufType::F64: return 8;
    default: return 0;
  }
}

bool known_type(uint32_t t) { return t <= static_cast<uint32_t>(GgufType::F64); }

bool is_signed(GgufType t) {
  return t == GgufType::I8 || t == GgufType::I16 || t == GgufType::I32 || t == GgufType::I64;
}
bool is_unsigned(GgufType t) {
  return t == GgufType::U8 || t == GgufType::U16 || t == GgufType::U32 || t == GgufType::U64;
}

// Sign- or zero-extends one little-endian element of a fixed-size type.
void decode_scalar(GgufType t, const uint8_t* p, GgufValue* v) {
  uint64_t raw = 0;
  std::memcpy(&raw, p, scalar_bytes(t));
  switch (t) {
    case GgufType::U8:
    case GgufType::U16:
    case GgufType::U32:
    case GgufType::U64: v->u = raw; break;
    case GgufType::Bool: v->u = raw != 0; break;
    case GgufType::I8: v->i = static_cast<int8_t>(raw); break;
    case GgufType::I16: v->i = static_cast<int16_t>(raw); break;
    case GgufType::I32: v->i = static_cast<int32_t>(raw); break;
    case GgufType::I64: v->i = static_cast<int64_t>(raw); break;
    case GgufType::F32: {
      float f;
      std::memcpy(&f, p, 4);
      v->f = f;
      break;
    }
    case GgufType::F64: std::memcpy(&v->f, p, 8); break;
    default: break;
  }
}

// Bounds-checked little-endian reader over the file bytes.
class Cursor {
 public:
  Cursor(const uint8_t* data, size_t size, const std::string& where) : data_(data), size_(size), where_(where) {}

  size_t pos() const { return pos_; }
  size_t remaining() const { return size_ - pos_; }

  const uint8_t* take(uint64_t n, const std::string& what) {
    TE_CHECK(n <= remaining(), "{}: truncated GGUF: {} needs {} bytes at offset {}, only {} left", where_, what, n,
             pos_, remaining());
    const uint8_t* p = data_ + pos_;
    pos_ += static_cast<size_t>(n);
    return p;
  }
  uint32_t u32(const std::string& what) {
    uint32_t v;
    std::memcpy(&v, take(4, what), 4);
    return v;
  }
  uint64_t u64(const std::string& what) {
    uint64_t v;
    std::memcpy(&v, take(8, what), 8);
    return v;
  }
  std::string str(const std::string& what) {
    const uint64_t n = u64(what + " length");
    const uint8_t* p = take(n, what);
    return std::string(reinterpret_cast<const char*>(p), static_cast<size_t>(n));
  }

 private:
  const uint8_t* data_;
  size_t size_;
  size_t pos_ = 0;
  const std::string& where_;
};

GgufValue read_value(Cursor& c, GgufType type, const std::string& what, const std::string& where) {
  GgufValue v;
  v.type = type;
  if (type == GgufType::String) {
    v.s = c.str(what);
    return v;
  }
  if (type != GgufType::Array) {
    decode_scalar(type, c.take(scalar_bytes(type), what), &v);
    return v;
  }
  const uint32_t elem = c.u32(what + " element type");
  TE_CHECK(known_type(elem), "{}: {}: unknown array element type {}", where, what, elem);
  v.array_type = static_cast<GgufType>(elem);
  TE_CHECK(v.array_type != GgufType::Array, "{}: {}: arrays of arrays are not supported", where, what);
  v.array_size = c.u64(what + " element count");
  if (v.array_type == GgufType::String) {
    // Every string needs at least its 8-byte length: bounds the count before reserving.
    TE_CHECK(v.array_size <= c.remaining() / 8, "{}: {}: {} strings cannot fit in the {} bytes left", where, what,
             v.array_size, c.remaining());
    v.strings.reserve(static_cast<size_t>(v.array_size));
    for (uint64_t k = 0; k < v.array_size; ++k) v.strings.push_back(c.str(what + " element"));
    return v;
  }
  const size_t each = scalar_bytes(v.array_type);
  TE_CHECK(v.array_size <= c.remaining() / each, "{}: {}: {} elements of {} cannot fit in the {} bytes left", where,
           what, v.array_size, gguf_type_name(v.array_type), c.remaining());
  const uint8_t* p = c.take(v.array_size * each, what);
  v.s.assign(reinterpret_cast<const char*>(p), static_cast<size_t>(v.array_size * each));
  return v;
}

// Natural alignment of a dtype's storage unit (block types start with an f16 scale).
size_t storage_alignment(DType t) {
  switch (t) {
    case DType::F32: return 4;
    case DType::F16:
    case DType::BF16:
    case DType::Q8_0:
    case DType::Q4_0:
    case DType::Q4_K:
    case DType::Q5_K:
    case DType::Q6_K: return 2;
    default: return 8;
  }
}

uint64_t align_up(uint64_t x, uint64_t a) { return (x + a - 1) / a * a; }

void append_u32(std::string& out, uint32_t v) { out.append(reinterpret_cast<const char*>(&v), 4); }
void append_u64(std::string& out, uint64_t v) { out.append(reinterpret_cast<const char*>(&v), 8); }
void append_str(std::string& out, std::string_view s) {
  append_u64(out, s.size());
  out.append(s);
}

void append_value(std::string& out, const GgufValue& v) {
  switch (v.type) {
    case GgufType::String: append_str(out, v.s); return;
    case GgufType::Array:
      append_u32(out, static_cast<uint32_t>(v.array_type));
      append_u64(out, v.array_size);
      if (v.array_type == GgufType::String) {
        for (const auto& s : v.strings) append_str(out, s);
      } else {
        out.append(v.s);
      }
      return;
    case GgufType::F32: {
      const float f = static_cast<float>(v.f);
      out.append(reinterpret_cast<const char*>(&f), 4);
      return;
    }
    case GgufType::F64: out.append(reinterpret_cast<const char*>(&v.f), 8); return;
    default: {
      const uint64_t raw = is_signed(v.type) ? static_cast<uint64_t>(v.i) : v.u;
      out.append(reinterpret_cast<const char*>(&raw), scalar_bytes(v.type));  // little-endian low bytes
      return;
    }
  }
}

}  // namespace

std::string_view gguf_type_name(GgufType t) {
  switch (t) {
    case GgufType::U8: return "uint8";
    case GgufType::I8: return "int8";
    case GgufType::U16: return "uint16";
    case GgufType::I16: return "int16";
    case GgufType::U32: return "uint32";
    case GgufType::I32: return "int32";
    case GgufType::F32: return "float32";
    case GgufType::Bool: return "bool";
    case GgufType::String: return "string";
    case GgufType::Array: return "array";
    case GgufType::U64: return "uint64";
    case GgufType::I64: return "int64";
    case GgufType::F64: return "float64";
  }
  return "unknown";
}

GgufValue GgufValue::u32(uint32_t v) { return {.type = GgufType::U32, .u = v}; }
GgufValue GgufValue::u64(uint64_t v) { return {.type = GgufType::U64, .u = v}; }
GgufValue GgufValue::i32(int32_t v) { return {.type = GgufType::I32, .i = v}; }
GgufValue GgufValue::f32(float v) { return {.type = GgufType::F32, .f = v}; }
GgufValue GgufValue::boolean(bool v) { return {.type = GgufType::Bool, .u = v ? 1u : 0u}; }
GgufValue GgufValue::string(std::string v) { return {.type = GgufType::String, .s = std::move(v)}; }
GgufValue GgufValue::u8_array(std::string_view bytes) {
  return {.type = GgufType::Array, .array_type = GgufType::U8, .array_size = bytes.size(), .s = std::string(bytes)};
}
GgufValue GgufValue::i32_array(const std::vector<int32_t>& v) {
  GgufValue g = u8_array({reinterpret_cast<const char*>(v.data()), v.size() * 4});
  g.array_type = GgufType::I32;
  g.array_size = v.size();
  return g;
}
GgufValue GgufValue::f32_array(const std::vector<float>& v) {
  GgufValue g = u8_array({reinterpret_cast<const char*>(v.data()), v.size() * 4});
  g.array_type = GgufType::F32;
  g.array_size = v.size();
  return g;
}
GgufValue GgufValue::string_array(std::vector<std::string> v) {
  return {.type = GgufType::Array, .array_type = GgufType::String, .array_size = v.size(), .strings = std::move(v)};
}

// ---------------------------------------------------------------------------
// Reader

GgufFile GgufFile::open(const std::filesystem::path& path) {
  auto file = MappedFile::open(path);
  const uint8_t* data = file->data();
  const size_t size = file->size();
  return parse(std::move(file), data, size, path.string());
}

GgufFile GgufFile::parse(std::shared_ptr<const void> owner, const uint8_t* data, size_t size, std::string where) {
  GgufFile g;
  g.owner_ = std::move(owner);
  g.data_ = data;
  g.size_ = size;
  g.where_ = std::move(where);
  const std::string& w = g.where_;
  Cursor c(data, size, w);

  TE_CHECK(size >= 4 && std::memcmp(data, "GGUF", 4) == 0, "{}: not a GGUF file (no \"GGUF\" magic)", w);
  c.take(4, "magic");
  g.version_ = c.u32("version");
  TE_CHECK(g.version_ != 1, "{}: GGUF version 1 is not supported (versions 2 and 3 are)", w);
  TE_CHECK(g.version_ == 2 || g.version_ == 3,
           "{}: GGUF version {} is not supported (versions 2 and 3 are; a big-endian file reads as a huge version)",
           w, g.version_);
  const uint64_t n_tensors = c.u64("tensor count");
  const uint64_t n_kv = c.u64("metadata count");
  // A key-value pair takes at least 8 (key length) + 4 (type) + 1 bytes; a
  // tensor info at least 8 + 4 + 8 + 4 + 8.
  TE_CHECK(n_kv <= c.remaining() / 13, "{}: {} metadata entries cannot fit in a {} byte file", w, n_kv, size);
  TE_CHECK(n_tensors <= c.remaining() / 32, "{}: {} tensors cannot fit in a {} byte file", w, n_tensors, size);

  for (uint64_t k = 0; k < n_kv; ++k) {
    const std::string key = c.str(fmt::format("metadata key #{}", k));
    TE_CHECK(!key.empty() && key.size() <= kMaxKeyBytes, "{}: metadata key #{} has an invalid length {}", w, k,
             key.size());
    const uint32_t type = c.u32("type of \"" + key + "\"");
    TE_CHECK(known_type(type), "{}: metadata \"{}\" has unknown type {}", w, key, type);
    GgufValue v = read_value(c, static_cast<GgufType>(type), "metadata \"" + key + "\"", w);
    TE_CHECK(g.metadata_.emplace(key, std::move(v)).second, "{}: metadata key \"{}\" appears twice", w, key);
  }

  if (g.has("general.alignment")) {
    const GgufValue& a = g.metadata_.at("general.alignment");
    TE_CHECK(a.type == GgufType::U32, "{}: general.alignment must be a uint32, found {}", w, gguf_type_name(a.type));
    TE_CHECK(a.u != 0 && (a.u & (a.u - 1)) == 0 && a.u <= kMaxAlignment,
             "{}: general.alignment = {} is not a power of two in [1, {}]", w, a.u, kMaxAlignment);
    g.alignment_ = a.u;
  }

  for (uint64_t t = 0; t < n_tensors; ++t) {
    GgufTensorInfo info;
    info.name = c.str(fmt::format("tensor #{} name", t));
    const std::string what = "tensor \"" + info.name + "\"";
    const uint32_t n_dims = c.u32(what + " dimension count");
    TE_CHECK(n_dims >= 1 && n_dims <= kMaxDims, "{}: {} has {} dimensions (1 to {} allowed)", w, what, n_dims,
             kMaxDims);
    std::vector<uint64_t> ne(n_dims);
    uint64_t numel = 1;
    for (uint32_t d = 0; d < n_dims; ++d) {
      ne[d] = c.u64(what + " dimension");
      TE_CHECK(ne[d] >= 1 && ne[d] <= static_cast<uint64_t>(std::numeric_limits<int64_t>::max()) / numel,
               "{}: {} has an invalid or too large dimension {}", w, what, ne[d]);
      numel *= ne[d];
    }
    const uint32_t type = c.u32(what + " type");
    const GgmlType* gt = nullptr;
    for (const GgmlType& x : kGgmlTypes) {
      if (x.id == type) gt = &x;
    }
    TE_CHECK(gt != nullptr, "{}: {} has unknown ggml type {}", w, what, type);
    TE_CHECK(gt->supported,
             "{}: {} has type {}, which tinyemo does not compute with (F32, F16, BF16, Q8_0, Q4_0, Q4_K, Q5_K, Q6_K)",
             w, what, gt->name);
    info.dtype = gt->dtype;
    const uint64_t block = static_cast<uint64_t>(dtype_block_elems(info.dtype));
    TE_CHECK(ne[0] % block == 0, "{}: {} is {} but its rows of {} are not a multiple of {}", w, what, gt->name, ne[0],
             block);
    const uint64_t unit = dtype_size(info.dtype);
    const uint64_t units = numel / block;
    TE_CHECK(units <= std::numeric_limits<uint64_t>::max() / unit, "{}: {} is too large", w, what);
    info.nbytes = units * unit;
    for (uint32_t d = n_dims; d-- > 0;) info.shape.push_back(static_cast<int64_t>(ne[d]));
    info.offset = c.u64(what + " offset");
    TE_CHECK(info.offset % g.alignment_ == 0, "{}: {} offset {} is not a multiple of the alignment {}", w, what,
             info.offset, g.alignment_);
    TE_CHECK(g.index_.emplace(info.name, g.tensors_.size()).second, "{}: tensor \"{}\" appears twice", w, info.name);
    g.tensors_.push_back(std::move(info));
  }

  const uint64_t data_start = align_up(c.pos(), g.alignment_);
  TE_CHECK(data_start <= size || g.tensors_.empty(), "{}: tensor data would start at {} past the end ({} bytes)", w,
           data_start, size);
  g.data_start_ = static_cast<size_t>(std::min<uint64_t>(data_start, size));
  const uint64_t data_size = size - g.data_start_;

  std::vector<const GgufTensorInfo*> by_offset;
  for (const auto& info : g.tensors_) {
    TE_CHECK(info.offset <= data_size && info.nbytes <= data_size - info.offset,
             "{}: tensor \"{}\" ({} bytes at offset {}) runs past the {} byte data section", w, info.name,
             info.nbytes, info.offset, data_size);
    by_offset.push_back(&info);
  }
  std::sort(by_offset.begin(), by_offset.end(), [](auto* a, auto* b) { return a->offset < b->offset; });
  for (size_t k = 1; k < by_offset.size(); ++k) {
    TE_CHECK(by_offset[k]->offset >= by_offset[k - 1]->offset + by_offset[k - 1]->nbytes,
             "{}: tensors \"{}\" and \"{}\" overlap", w, by_offset[k - 1]->name, by_offset[k]->name);
  }
  return g;
}

const GgufValue& GgufFile::value(const std::string& key) const {
  const auto it = metadata_.find(key);
  TE_CHECK(it != metadata_.end(), "{}: missing metadata \"{}\"", where_, key);
  return it->second;
}

uint64_t GgufFile::get_uint(const std::string& key) const {
  const GgufValue& v = value(key);
  if (is_unsigned(v.type)) return v.u;
  TE_CHECK(is_signed(v.type) && v.i >= 0, "{}: metadata \"{}\" must be a non-negative integer, found {}", where_, key,
           is_signed(v.type) ? std::to_string(v.i) : std::string(gguf_type_name(v.type)));
  return static_cast<uint64_t>(v.i);
}

int64_t GgufFile::get_int(const std::string& key) const {
  const GgufValue& v = value(key);
  if (is_signed(v.type)) return v.i;
  TE_CHECK(is_unsigned(v.type) && v.u <= static_cast<uint64_t>(std::numeric_limits<int64_t>::max()),
           "{}: metadata \"{}\" must be an integer, found {}", where_, key, gguf_type_name(v.type));
  return static_cast<int64_t>(v.u);
}

double GgufFile::get_float(const std::string& key) const {
  const GgufValue& v = value(key);
  if (v.type == GgufType::F32 || v.type == GgufType::F64) return v.f;
  if (is_signed(v.type)) return static_cast<double>(v.i);
  if (is_unsigned(v.type)) return static_cast<double>(v.u);
  fail("{}: metadata \"{}\" must be a number, found {}", where_, key, gguf_type_name(v.type));
}

bool GgufFile::get_bool(const std::string& key) const {
  const GgufValue& v = value(key);
  TE_CHECK(v.type == GgufType::Bool, "{}: metadata \"{}\" must be a bool, found {}", where_, key,
           gguf_type_name(v.type));
  return v.u != 0;
}

const std::string& GgufFile::get_string(const std::string& key) const {
  const GgufValue& v = value(key);
  TE_CHECK(v.type == GgufType::String, "{}: metadata \"{}\" must be a string, found {}", where_, key,
           gguf_type_name(v.type));
  return v.s;
}

std::vector<int64_t> GgufFile::get_int_array(const std::string& key) const {
  const GgufValue& v = value(key);
  TE_CHECK(v.type == GgufType::Array && (is_signed(v.array_type) || is_unsigned(v.array_type)),
           "{}: metadata \"{}\" must be an array of integers", where_, key);
  const size_t each = scalar_bytes(v.array_type);
  std::vector<int64_t> out;
  out.reserve(static_cast<size_t>(v.array_size));
  for (uint64_t k = 0; k < v.array_size; ++k) {
    GgufValue e;
    decode_scalar(v.array_type, reinterpret_cast<const uint8_t*>(v.s.data()) + k * each, &e);
    if (is_signed(v.array_type)) {
      out.push_back(e.i);
    } else {
      TE_CHECK(e.u <= static_cast<uint64_t>(std::numeric_limits<int64_t>::max()),
               "{}: metadata \"{}\"[{}] is out of range", where_, key, k);
      out.push_back(static_cast<int64_t>(e.u));
    }
  }
  return out;
}

std::vector<double> GgufFile::get_float_array(const std::string& key) const {
  const GgufValue& v = value(key);
  const bool floating = v.array_type == GgufType::F32 || v.array_type == GgufType::F64;
  TE_CHECK(v.type == GgufType::Array && (floating || is_signed(v.array_type) || is_unsigned(v.array_type)),
           "{}: metadata \"{}\" must be an array of numbers", where_, key);
  const size_t each = scalar_bytes(v.array_type);
  std::vector<double> out;
  out.reserve(static_cast<size_t>(v.array_size));
  for (uint64_t k = 0; k < v.array_size; ++k) {
    GgufValue e;
    decode_scalar(v.array_type, reinterpret_cast<const uint8_t*>(v.s.data()) + k * each, &e);
    out.push_back(floating ? e.f : is_signed(v.array_type) ? static_cast<double>(e.i) : static_cast<double>(e.u));
  }
  return out;
}

const std::vector<std::string>& GgufFile::get_string_array(const std::string& key) const {
  const GgufValue& v = value(key);
  TE_CHECK(v.type == GgufType::Array && v.array_type == GgufType::String,
           "{}: metadata \"{}\" must be an array of strings", where_, key);
  return v.strings;
}

const std::string& GgufFile::get_u8_array(const std::string& key) const {
  const GgufValue& v = value(key);
  TE_CHECK(v.type == GgufType::Array && (v.array_type == GgufType::U8 || v.array_type == GgufType::I8),
           "{}: metadata \"{}\" must be an array of bytes", where_, key);
  return v.s;
}

const GgufTensorInfo& GgufFile::info(const std::string& name) const {
  const auto it = index_.find(name);
  TE_CHECK(it != index_.end(), "{}: no tensor named \"{}\"", where_, name);
  return tensors_[it->second];
}

Tensor GgufFile::get(const std::string& name) const {
  const GgufTensorInfo& i = info(name);
  const uint8_t* p = data_ + data_start_ + i.offset;
  Tensor t = Tensor::view(i.dtype, i.shape, owner_, p);
  if (reinterpret_cast<uintptr_t>(p) % storage_alignment(i.dtype) != 0) return t.clone();
  return t;
}

// ---------------------------------------------------------------------------
// Writer

void GgufWriter::set(const std::string& key, GgufValue value) {
  TE_CHECK(!key.empty() && key.size() <= kMaxKeyBytes, "GGUF: invalid metadata key \"{}\"", key);
  if (key == "general.alignment") {
    TE_CHECK(value.type == GgufType::U32 && value.u != 0 && (value.u & (value.u - 1)) == 0 && value.u <= kMaxAlignment,
             "GGUF: general.alignment must be a uint32 power of two up to {}", kMaxAlignment);
  }
  for (auto& [k, v] : metadata_) {
    if (k == key) {
      v = std::move(value);
      return;
    }
  }
  metadata_.emplace_back(key, std::move(value));
}

bool GgufWriter::has(const std::string& key) const {
  return std::any_of(metadata_.begin(), metadata_.end(), [&](const auto& kv) { return kv.first == key; });
}

void GgufWriter::add_tensor(const std::string& name, const Tensor& tensor) {
  ggml_type_of(tensor.dtype());  // refuses types GGUF cannot hold here
  TE_CHECK(tensor.ndim() >= 1 && tensor.ndim() <= static_cast<int>(kMaxDims),
           "GGUF: tensor \"{}\" has {} dimensions (1 to {} allowed)", name, tensor.ndim(), kMaxDims);
  for (const auto& [n, t] : tensors_) TE_CHECK(n != name, "GGUF: tensor \"{}\" added twice", name);
  tensors_.emplace_back(name, tensor);
}

uint64_t GgufWriter::alignment() const {
  for (const auto& [k, v] : metadata_) {
    if (k == "general.alignment") return v.u;
  }
  return kDefaultAlignment;
}

std::string GgufWriter::header() const {
  const uint64_t align = alignment();
  std::string out;
  append_u32(out, kMagic);
  append_u32(out, kWriteVersion);
  append_u64(out, tensors_.size());
  const bool has_alignment = std::any_of(metadata_.begin(), metadata_.end(),
                                         [](const auto& kv) { return kv.first == "general.alignment"; });
  append_u64(out, metadata_.size() + (has_alignment ? 0 : 1));
  if (!has_alignment) {
    append_str(out, "general.alignment");
    append_u32(out, static_cast<uint32_t>(GgufType::U32));
    append_value(out, GgufValue::u32(static_cast<uint32_t>(align)));
  }
  for (const auto& [key, v] : metadata_) {
    append_str(out, key);
    append_u32(out, static_cast<uint32_t>(v.type));
    append_value(out, v);
  }
  uint64_t offset = 0;
  for (const auto& [name, t] : tensors_) {
    append_str(out, name);
    append_u32(out, static_cast<uint32_t>(t.ndim()));
    for (int d = t.ndim(); d-- > 0;) append_u64(out, static_cast<uint64_t>(t.dim(d)));
    append_u32(out, ggml_type_of(t.dtype()));
    append_u64(out, offset);
    offset = align_up(offset + t.nbytes(), align);
  }
  out.append(align_up(out.size(), align) - out.size(), '\0');
  return out;
}

std::string GgufWriter::bytes() const {
  const uint64_t align = alignment();
  std::string out = header();
  for (const auto& [name, t] : tensors_) {
    out.append(static_cast<const char*>(t.raw()), t.nbytes());
    out.append(align_up(out.size(), align) - out.size(), '\0');
  }
  return out;
}

void GgufWriter::write(const std::filesystem::path& path) const {
  const uint64_t align = alignment();
  AtomicFile f(path);
  const std::string head = header();
  f.write(head);
  uint64_t pos = head.size();
  const std::string zeros(align, '\0');
  for (const auto& [name, t] : tensors_) {
    f.write(t.raw(), t.nbytes());
    pos += t.nbytes();
    const uint64_t pad = align_up(pos, align) - pos;
    f.write(zeros.data(), pad);
    pos += pad;
  }
  f.commit();
}

}  // namespace tinyemo
