#include "models/mm/inputs.h"

#include <climits>

#include "core/error.h"
#include "io/safetensors.h"

namespace tinyemo::mm {

MmInputs read_mm_inputs(const std::filesystem::path& path, int32_t image_token_index) {
  const SafetensorsFile f = SafetensorsFile::open(path);
  const std::string where = path.string();
  TE_CHECK(f.contains("input_ids"), "{}: no tensor \"input_ids\"", where);
  const Tensor ids = f.get("input_ids");
  TE_CHECK(ids.dtype() == DType::I64 || ids.dtype() == DType::I32 || ids.dtype() == DType::I16,
           "{}: \"input_ids\" has dtype {}, expected signed integer token ids", where, dtype_name(ids.dtype()));
  TE_CHECK(ids.ndim() == 1 || (ids.ndim() == 2 && ids.dim(0) == 1), "{}: \"input_ids\" has shape {}, expected [T] or [1, T]",
           where, shape_str(ids.shape()));
  TE_CHECK(ids.numel() > 0, "{}: \"input_ids\" holds no ids", where);
  MmInputs in;
  const Tensor wide = ids.to(DType::I64);
  int64_t markers = 0;
  for (int64_t i = 0; i < wide.numel(); ++i) {
    const int64_t v = wide.data<int64_t>()[i];
    TE_CHECK(v == image_token_index || (v >= 0 && v <= INT32_MAX),
             "{}: input_ids[{}] = {} is neither a token id nor the image placeholder {}", where, i, v, image_token_index);
    markers += v == image_token_index ? 1 : 0;
    in.input_ids.push_back(static_cast<int32_t>(v));
  }
  if (f.contains("pixel_values")) {
    in.pixel_values = f.get("pixel_values");
    const Tensor& p = in.pixel_values;
    TE_CHECK(p.dtype() == DType::F32 || p.dtype() == DType::F16 || p.dtype() == DType::BF16,
             "{}: \"pixel_values\" has dtype {}, expected F32, F16 or BF16", where, dtype_name(p.dtype()));
    TE_CHECK(p.ndim() == 3 || p.ndim() == 4, "{}: \"pixel_values\" has shape {}, expected [B, 3, N, N] or [3, N, N]",
             where, shape_str(p.shape()));
    const int64_t images = p.ndim() == 4 ? p.dim(0) : 1;
    TE_CHECK(images == markers, "{}: input_ids hold {} image placeholder(s) ({}), but pixel_values holds {} image(s)",
             where, markers, image_token_index, images);
  } else {
    TE_CHECK(markers == 0, "{}: input_ids hold {} image placeholder(s) ({}) but the file has no \"pixel_values\"", where,
             markers, image_token_index);
  }
  return in;
}

Tensor stack_rows(const std::vector<Tensor>& parts) {
  TE_CHECK(!parts.empty(), "stack_rows: nothing to stack");
  int64_t rows = 0;
  for (const auto& p : parts) {
    TE_CHECK(p.ndim() == 2 && p.dim(1) == parts[0].dim(1), "stack_rows: shapes {} and {} differ in width",
             shape_str(p.shape()), shape_str(parts[0].shape()));
    rows += p.dim(0);
  }
  Tensor out = Tensor::empty(DType::F32, {rows, parts[0].dim(1)});
  float* dst = out.mutable_data<float>();
  for (const auto& p : parts) {
    const Tensor f = p.dtype() == DType::F32 ? p : p.to(DType::F32);
    dst = std::copy(f.data<float>(), f.data<float>() + f.numel(), dst);
  }
  return out;
}

}  // namespace tinyemo::mm
