// fuzz-link: tinyemo_io
// The restricted unpickler alone (no zip around it): storages resolve to
// zero-filled buffers of the requested size, up to 1 MiB.
#include "fuzz_input.h"
#include "io/pickle.h"

namespace {

uint64_t touch_all(const tinyemo::PyValue& v) {
  uint64_t sum = v.s.size() + static_cast<uint64_t>(v.i);
  if (v.kind == tinyemo::PyValue::Kind::Tensor) sum += tinyemo::fuzz::touch(v.tensor);
  for (const auto& item : v.items) sum += touch_all(item);
  for (const auto& [key, value] : v.dict) sum += touch_all(key) + touch_all(value);
  return sum;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const tinyemo::StorageResolver storages = [](const std::string& key, tinyemo::DType dtype, int64_t numel) {
    TE_CHECK(numel <= (int64_t{1} << 20) / static_cast<int64_t>(tinyemo::dtype_size(dtype)), "storage '{}' too large",
             key);
    return tinyemo::Tensor::zeros(dtype, {numel});
  };
  try {
    const tinyemo::PyValue v =
        tinyemo::unpickle(std::string_view(reinterpret_cast<const char*>(data), size), storages, "fuzz");
    tinyemo::fuzz::consume(touch_all(v));
  } catch (const tinyemo::Error&) {
    // refused cleanly
  }
  return 0;
}
