#include "io/safetensors.h"

#include <algorithm>
#include <cstring>
#include <limits>
#include <nlohmann/json.hpp>

#include "io/json.h"

namespace tinyemo {

namespace {

constexpr size_t kMaxHeaderBytes = 100u << 20;  // the reference implementation's limit

bool safetensors_dtype(const std::string& s, DType* out) {
  static const std::pair<const char*, DType> kTypes[] = {
      {"F32", DType::F32}, {"F16", DType::F16}, {"BF16", DType::BF16}, {"F64", DType::F64},
      {"I64", DType::I64}, {"I32", DType::I32}, {"I16", DType::I16},   {"I8", DType::I8},
      {"U8", DType::U8},   {"BOOL", DType::Bool}};
  for (const auto& [name, t] : kTypes) {
    if (s == name) {
      *out = t;
      return true;
    }
  }
  return false;
}

const char* safetensors_dtype_name(DType t) {
  switch (t) {
    case DType::F32: return "F32";
    case DType::F16: return "F16";
    case DType::BF16: return "BF16";
    case DType::F64: return "F64";
    case DType::I64: return "I64";
    case DType::I32: return "I32";
    case DType::I16: return "I16";
    case DType::I8: return "I8";
    case DType::U8: return "U8";
    case DType::Bool: return "BOOL";
    default: fail("safetensors cannot store {} tensors", dtype_name(t));
  }
}

}  // namespace

SafetensorsFile SafetensorsFile::open(const std::filesystem::path& path) {
  SafetensorsFile f;
  f.file_ = MappedFile::open(path);
  const std::string where = path.string();
  const size_t size = f.file_->size();
  TE_CHECK(size >= 8, "{}: not a safetensors file (only {} bytes)", where, size);
  uint64_t header_len = 0;
  std::memcpy(&header_len, f.file_->data(), 8);
  TE_CHECK(header_len <= kMaxHeaderBytes, "{}: safetensors header size {} is over the {} byte limit", where,
           header_len, kMaxHeaderBytes);
  TE_CHECK(header_len <= size - 8, "{}: safetensors header size {} runs past the end of the file ({} bytes)", where,
           header_len, size);
  f.data_start_ = 8 + header_len;
  const size_t data_size = size - f.data_start_;

  // Strict: a tensor (or metadata key) named twice is refused, not resolved last-wins.
  const nlohmann::ordered_json header = parse_ordered_json_text(
      std::string_view(reinterpret_cast<const char*>(f.file_->data()) + 8, header_len), where + ": safetensors header");
  TE_CHECK(header.is_object(), "{}: safetensors header is not a JSON object", where);

  for (auto it = header.begin(); it != header.end(); ++it) {
    const std::string& name = it.key();
    const auto& v = it.value();
    if (name == "__metadata__") {
      TE_CHECK(v.is_object(), "{}: __metadata__ must be an object of strings", where);
      for (auto m = v.begin(); m != v.end(); ++m) {
        TE_CHECK(m.value().is_string(), "{}: __metadata__[\"{}\"] is not a string", where, m.key());
        f.metadata_[m.key()] = m.value().get<std::string>();
      }
      continue;
    }
    TE_CHECK(v.is_object(), "{}: tensor \"{}\": entry is not an object", where, name);
    SafetensorsEntry e;
    e.name = name;
    const auto dt = v.find("dtype");
    TE_CHECK(dt != v.end() && dt->is_string(), "{}: tensor \"{}\": missing dtype", where, name);
    TE_CHECK(safetensors_dtype(dt->get<std::string>(), &e.dtype), "{}: tensor \"{}\": unsupported dtype \"{}\"",
             where, name, dt->get<std::string>());
    const auto shape = v.find("shape");
    TE_CHECK(shape != v.end() && shape->is_array(), "{}: tensor \"{}\": missing shape", where, name);
    uint64_t numel = 1;
    for (const auto& d : *shape) {
      TE_CHECK(d.is_number_unsigned() || (d.is_number_integer() && d.get<int64_t>() >= 0),
               "{}: tensor \"{}\": shape entries must be non-negative integers", where, name);
      const uint64_t dim = d.get<uint64_t>();
      TE_CHECK(dim <= static_cast<uint64_t>(std::numeric_limits<int64_t>::max()) &&
                   (dim == 0 || numel <= static_cast<uint64_t>(std::numeric_limits<int64_t>::max()) / dim),
               "{}: tensor \"{}\": shape is too large", where, name);
      numel *= dim;
      e.shape.push_back(static_cast<int64_t>(dim));
    }
    const auto offs = v.find("data_offsets");
    TE_CHECK(offs != v.end() && offs->is_array() && offs->size() == 2 && (*offs)[0].is_number_unsigned() &&
                 (*offs)[1].is_number_unsigned(),
             "{}: tensor \"{}\": data_offsets must be two non-negative integers", where, name);
    const uint64_t begin = (*offs)[0].get<uint64_t>(), end = (*offs)[1].get<uint64_t>();
    TE_CHECK(begin <= end && end <= data_size,
             "{}: tensor \"{}\": data_offsets [{}, {}] fall outside the {} byte data section", where, name, begin,
             end, data_size);
    TE_CHECK(numel <= std::numeric_limits<uint64_t>::max() / dtype_size(e.dtype) &&
                 end - begin == numel * dtype_size(e.dtype),
             "{}: tensor \"{}\": {} bytes for a {} {} tensor (expected {})", where, name, end - begin,
             dtype_name(e.dtype), shape_str(e.shape), numel * dtype_size(e.dtype));
    e.begin = begin;
    e.end = end;
    f.entries_.push_back(std::move(e));
  }
  std::sort(f.entries_.begin(), f.entries_.end(), [](const auto& a, const auto& b) {
    return a.begin != b.begin ? a.begin < b.begin : a.end < b.end;
  });
  for (size_t i = 0; i < f.entries_.size(); ++i) {
    if (i > 0) {
      const auto& prev = f.entries_[i - 1];
      TE_CHECK(f.entries_[i].begin >= prev.end, "{}: tensors \"{}\" and \"{}\" overlap", where, prev.name,
               f.entries_[i].name);
    }
    TE_CHECK(f.index_.emplace(f.entries_[i].name, i).second, "{}: tensor \"{}\" appears twice", where,
             f.entries_[i].name);
  }
  return f;
}

const SafetensorsEntry& SafetensorsFile::entry(const std::string& name) const {
  const auto it = index_.find(name);
  TE_CHECK(it != index_.end(), "{}: no tensor named \"{}\"", path().string(), name);
  return entries_[it->second];
}

Tensor SafetensorsFile::get(const std::string& name) const {
  const SafetensorsEntry& e = entry(name);
  const uint8_t* p = file_->data() + data_start_ + e.begin;
  Tensor t = Tensor::view(e.dtype, e.shape, file_, p);
  if (reinterpret_cast<uintptr_t>(p) % dtype_size(e.dtype) != 0) return t.clone();
  return t;
}

namespace {
// The 8-byte length prefix and the JSON header, padded to 8 bytes.
std::string header_bytes(const NamedTensors& tensors, const std::map<std::string, std::string>& metadata) {
  nlohmann::ordered_json header = nlohmann::ordered_json::object();
  if (!metadata.empty()) header["__metadata__"] = metadata;
  size_t offset = 0;
  for (const auto& [name, t] : tensors) {
    TE_CHECK(name != "__metadata__", "a tensor cannot be named __metadata__");
    TE_CHECK(!header.contains(name), "tensor \"{}\" given twice", name);
    const size_t n = t.nbytes();
    header[name] = {{"dtype", safetensors_dtype_name(t.dtype())},
                    {"shape", t.shape()},
                    {"data_offsets", {offset, offset + n}}};
    offset += n;
  }
  std::string json = header.dump();
  json.append((8 - json.size() % 8) % 8, ' ');
  const uint64_t len = json.size();
  return std::string(reinterpret_cast<const char*>(&len), 8) + json;
}
}  // namespace

std::string safetensors_bytes(const NamedTensors& tensors, const std::map<std::string, std::string>& metadata) {
  std::string out = header_bytes(tensors, metadata);
  for (const auto& [name, t] : tensors) out.append(static_cast<const char*>(t.raw()), t.nbytes());
  return out;
}

void write_safetensors(const std::filesystem::path& path, const NamedTensors& tensors,
                       const std::map<std::string, std::string>& metadata) {
  AtomicFile f(path);
  f.write(header_bytes(tensors, metadata));
  for (const auto& [name, t] : tensors) f.write(t.raw(), t.nbytes());
  f.commit();
}

}  // namespace tinyemo
