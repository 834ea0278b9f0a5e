#include "io/pytorch.h"

#include <set>

#include "io/zip.h"

namespace tinyemo {

namespace {

constexpr std::string_view kPickleName = "data.pkl";
// What our writer names the archive's folder (as torch >= 2.1 does; torch reads any name).
constexpr std::string_view kArchiveFolder = "archive";

// The archive's "<folder>/data.pkl": its folder name varies ("archive", the file's stem, ...).
const ZipEntry& find_pickle(const ZipArchive& zip) {
  const ZipEntry* found = nullptr;
  for (const ZipEntry& e : zip.entries()) {
    const size_t slash = e.name.find('/');
    if (slash == std::string::npos || slash == 0 || e.name.substr(slash + 1) != kPickleName) continue;
    TE_CHECK(found == nullptr, "{}: two pickles in one archive ('{}' and '{}')", zip.path().string(), found->name,
             e.name);
    found = &e;
  }
  TE_CHECK(found != nullptr, "{}: not a torch.save archive (no <folder>/data.pkl entry)", zip.path().string());
  return *found;
}

void flatten(const PyValue& v, const std::string& name, NamedTensors& out, std::set<std::string>& seen,
             const std::string& where) {
  const auto join = [&](const std::string& key) { return name.empty() ? key : name + "." + key; };
  switch (v.kind) {
    case PyValue::Kind::Tensor:
      TE_CHECK(seen.insert(name).second, "{}: tensor name '{}' occurs twice", where, name);
      out.emplace_back(name, v.tensor);
      break;
    case PyValue::Kind::List:
    case PyValue::Kind::Tuple:
      for (size_t k = 0; k < v.items.size(); ++k) flatten(v.items[k], join(std::to_string(k)), out, seen, where);
      break;
    case PyValue::Kind::Dict:
      for (const auto& [key, value] : v.dict) {
        TE_CHECK(key.kind == PyValue::Kind::String || key.kind == PyValue::Kind::Int,
                 "{}: a dict under '{}' has a key that is neither a string nor an integer", where, name);
        flatten(value, join(key.kind == PyValue::Kind::String ? key.s : std::to_string(key.i)), out, seen, where);
      }
      break;
    default:
      break;
  }
}

void save_archive(const std::filesystem::path& path, const NamedTensors& tensors, bool state_dict) {
  const std::string folder = std::string(kArchiveFolder) + "/";
  ZipWriter zip(path);
  zip.add(folder + std::string(kPickleName), pickle_tensors(tensors, state_dict));
  zip.add(folder + "byteorder", "little");
  for (size_t i = 0; i < tensors.size(); ++i) {
    const Tensor& t = tensors[i].second;
    zip.add(folder + "data/" + std::to_string(i), t.raw(), t.nbytes());
  }
  zip.add(folder + "version", "3\n");
  zip.commit();
}

}  // namespace

PyValue load_pytorch(const std::filesystem::path& path) {
  const ZipArchive zip = ZipArchive::open(path);
  const std::string where = path.string();
  const ZipEntry& pickle = find_pickle(zip);
  const std::string folder = pickle.name.substr(0, pickle.name.size() - kPickleName.size());
  if (const ZipEntry* order = zip.find(folder + "byteorder")) {
    const std::string_view value = zip.read(*order).view();
    TE_CHECK(value.starts_with("little"),
             "{}: tensors are stored {}-endian; only little-endian archives are supported", where,
             value.substr(0, 16));
  }
  const StorageResolver storages = [&](const std::string& key, DType dtype, int64_t numel) {
    const std::string name = folder + "data/" + key;
    const ZipEntry* e = zip.find(name);
    TE_CHECK(e != nullptr, "{}: the pickle refers to storage '{}' but the archive has no entry '{}'", where, key,
             name);
    const uint64_t es = dtype_size(dtype);
    TE_CHECK(static_cast<uint64_t>(numel) <= e->size / es && static_cast<uint64_t>(numel) * es == e->size,
             "{}: entry '{}' holds {} bytes, not the {} {} elements ({} bytes each) the pickle expects", where, name,
             e->size, numel, dtype_name(dtype), es);
    const ZipBytes bytes = zip.read(*e, /*verify_crc=*/false);
    return Tensor::view(dtype, {numel}, bytes.owner, bytes.data);
  };
  return unpickle(zip.read(pickle).view(), storages, where + ": " + pickle.name);
}

NamedTensors load_pytorch_tensors(const std::filesystem::path& path) {
  NamedTensors out;
  std::set<std::string> seen;
  flatten(load_pytorch(path), "", out, seen, path.string());
  return out;
}

Tensor load_pytorch_tensor(const std::filesystem::path& path) {
  NamedTensors tensors = load_pytorch_tensors(path);
  TE_CHECK(tensors.size() == 1, "{}: holds {} tensors, expected exactly one", path.string(), tensors.size());
  return std::move(tensors[0].second);
}

void save_pytorch_tensor(const std::filesystem::path& path, const Tensor& tensor) {
  save_archive(path, {{"", tensor}}, /*state_dict=*/false);
}

void save_pytorch_state_dict(const std::filesystem::path& path, const NamedTensors& tensors) {
  save_archive(path, tensors, /*state_dict=*/true);
}

}  // namespace tinyemo
