#include "core/tensor.h"

#include <cstdlib>
#include <cstring>
#include <limits>
#include <vector>

#include "core/panels.h"
#include "core/quant.h"

namespace tinyemo {

std::string shape_str(const Shape& shape) {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); ++i) {
    if (i) s += ", ";
    s += std::to_string(shape[i]);
  }
  return s + "]";
}

int64_t shape_numel(const Shape& shape) {
  int64_t n = 1;
  for (int64_t d : shape) {
    TE_CHECK(d >= 0, "negative dimension in shape {}", shape_str(shape));
    TE_CHECK(d == 0 || n <= std::numeric_limits<int64_t>::max() / d, "shape {} is too large",
             shape_str(shape));
    n *= d;
  }
  return n;
}

Tensor Tensor::empty(DType dtype, Shape shape) {
  Tensor t;
  t.dtype_ = dtype;
  t.shape_ = std::move(shape);
  const size_t bytes = t.nbytes();
  void* p = allocate_buffer(bytes + 64);
  if (p == nullptr) fail("out of memory allocating a {} {} tensor ({} bytes)", dtype_name(dtype), shape_str(t.shape_), bytes);
  t.owner_ = std::shared_ptr<const void>(p, [](const void* q) { std::free(const_cast<void*>(q)); });
  t.data_ = p;
  t.writable_ = true;
  return t;
}

Tensor Tensor::zeros(DType dtype, Shape shape) {
  Tensor t = empty(dtype, std::move(shape));
  std::memset(t.data_, 0, t.nbytes());
  return t;
}

Tensor Tensor::view(DType dtype, Shape shape, std::shared_ptr<const void> owner, const void* data, bool writable) {
  Tensor t;
  t.dtype_ = dtype;
  t.shape_ = std::move(shape);
  t.owner_ = std::move(owner);
  t.data_ = const_cast<void*>(data);
  t.writable_ = writable;
  return t;
}

int64_t Tensor::dim(int i) const {
  const int n = ndim();
  const int j = i < 0 ? i + n : i;
  TE_CHECK(j >= 0 && j < n, "dimension {} out of range for shape {}", i, shape_str(shape_));
  return shape_[j];
}

void* Tensor::raw_mut() {
  TE_CHECK(writable_, "tensor is read-only (a view of a mapped file); clone it to modify");
  return data_;
}

void Tensor::check_type(DType want) const {
  TE_CHECK(dtype_ == want, "tensor has dtype {}, accessed as {}", dtype_name(dtype_), dtype_name(want));
}

Tensor Tensor::reshape(Shape shape) const {
  int64_t known = 1;
  int infer = -1;
  for (size_t i = 0; i < shape.size(); ++i) {
    if (shape[i] == -1) {
      TE_CHECK(infer < 0, "reshape to {}: more than one -1", shape_str(shape));
      infer = static_cast<int>(i);
    } else {
      known *= shape[i];
    }
  }
  if (infer >= 0) {
    TE_CHECK(known > 0 && numel() % known == 0, "cannot reshape {} to {}", shape_str(shape_), shape_str(shape));
    shape[infer] = numel() / known;
  }
  TE_CHECK(shape_numel(shape) == numel(), "cannot reshape {} to {}", shape_str(shape_), shape_str(shape));
  Tensor t = *this;
  t.shape_ = std::move(shape);
  return t;
}

Tensor Tensor::rows(int64_t begin, int64_t end) const {
  TE_CHECK(ndim() >= 1, "cannot slice a scalar");
  TE_CHECK(0 <= begin && begin <= end && end <= shape_[0], "rows [{}, {}) out of range for shape {}", begin, end,
           shape_str(shape_));
  const int64_t panel = dtype_panel_rows(dtype_);
  TE_CHECK(begin % panel == 0 && end % panel == 0,
           "rows [{}, {}) of a {} tensor: interleaved rows are sliced in whole panels of {}", begin, end,
           dtype_name(dtype_), panel);
  Tensor t = *this;
  t.shape_[0] = end - begin;
  Shape row_shape(shape_.begin() + 1, shape_.end());
  const size_t row_bytes = dtype_bytes(dtype_, shape_numel(row_shape));
  t.data_ = static_cast<char*>(data_) + begin * row_bytes;
  return t;
}

Tensor Tensor::row(int64_t i) const {
  Tensor t = rows(i, i + 1);
  t.shape_.erase(t.shape_.begin());
  return t;
}

Tensor Tensor::to(DType dtype) const {
  if ((dtype_is_gemm_panels(dtype_) || dtype_is_gemm_panels(dtype)) && dtype != dtype_) {
    TE_CHECK(ndim() == 2 && shape_[0] % 32 == 0 && shape_[1] % 2 == 0,
             "cannot convert a {} tensor of shape {} to {}: GEMM panels need [rows, cols] with rows % 32 == 0 and "
             "cols % 2 == 0",
             dtype_name(dtype_), shape_str(shape_), dtype_name(dtype));
    if (dtype_is_gemm_panels(dtype_)) {
      Tensor rows_major = empty(DType::F32, shape_);
      for (int64_t r = 0; r < shape_[0]; ++r)
        gemm_panel_row_to_f32(dtype_, data_, shape_[1], r, rows_major.mutable_data<float>() + r * shape_[1]);
      return rows_major.to(dtype);
    }
    const Tensor elements = dtype_ == dtype_of_rows(dtype) ? *this : to(dtype_of_rows(dtype));
    Tensor t = empty(dtype, shape_);
    pack_gemm_panels(dtype, elements.data_, shape_[0], shape_[1], t.data_);
    return t;
  }
  const bool from_interleaved = dtype_of_rows(dtype_) != dtype_, to_interleaved = dtype_of_rows(dtype) != dtype;
  if ((from_interleaved || to_interleaved) && dtype != dtype_) {
    TE_CHECK(ndim() == 2 && shape_[0] % kInterleavedRows == 0 && shape_[1] % kQuantBlock == 0,
             "cannot convert a {} tensor of shape {} to {}: interleaved layouts need [rows, cols] with rows % {} == 0 "
             "and cols % {} == 0",
             dtype_name(dtype_), shape_str(shape_), dtype_name(dtype), kInterleavedRows, kQuantBlock);
    const int64_t nb = shape_[1] / kQuantBlock;
    if (from_interleaved) {
      Tensor rows_major = empty(dtype_of_rows(dtype_), shape_);
      char* dst = static_cast<char*>(rows_major.data_);
      const size_t row_bytes = dtype_bytes(rows_major.dtype_, shape_[1]);
      for (int64_t r = 0; r < shape_[0]; ++r) interleaved_row_blocks(dtype_, data_, nb, r, 0, nb, dst + r * row_bytes);
      return rows_major.to(dtype);
    }
    const Tensor blocks = dtype_ == dtype_of_rows(dtype) ? *this : to(dtype_of_rows(dtype));
    Tensor t = empty(dtype, shape_);
    interleave_rows(dtype, blocks.data_, t.data_, shape_[0], nb);
    return t;
  }
  Tensor t = empty(dtype, shape_);
  convert(dtype_, data_, dtype, t.data_, numel());
  return t;
}

std::vector<float> Tensor::to_f32_vector() const {
  if (dtype_of_rows(dtype_) != dtype_) return to(DType::F32).to_f32_vector();
  std::vector<float> v(static_cast<size_t>(numel()));
  convert(dtype_, data_, DType::F32, v.data(), numel());
  return v;
}

void Tensor::row_to_f32(int64_t i, float* out) const {
  TE_CHECK(ndim() == 2 && 0 <= i && i < shape_[0], "row {} of a tensor of shape {}", i, shape_str(shape_));
  const int64_t cols = shape_[1];
  if (dtype_of_rows(dtype_) == dtype_) {
    convert(dtype_, static_cast<const char*>(data_) + i * dtype_bytes(dtype_, cols), DType::F32, out, cols);
  } else if (dtype_is_gemm_panels(dtype_)) {
    gemm_panel_row_to_f32(dtype_, data_, cols, i, out);
  } else {
    dequantize_interleaved_row(dtype_, data_, cols / kQuantBlock, i, 0, cols / kQuantBlock, out);
  }
}

}  // namespace tinyemo
