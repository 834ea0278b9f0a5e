// Tensor: a dtype, a shape and a contiguous row-major buffer that is either
// owned (heap, 64-byte aligned) or borrowed from a longer-lived owner such as
// a memory-mapped checkpoint (kept alive by a shared_ptr).
#pragma once

#include <cstdint>
#include <initializer_list>
#include <memory>
#include <string>
#include <vector>

#include "core/dtype.h"
#include "core/error.h"
#include "core/memory.h"

namespace tinyemo {

using Shape = std::vector<int64_t>;

std::string shape_str(const Shape& shape);
int64_t shape_numel(const Shape& shape);

template <class T>
struct DTypeOf;
template <> struct DTypeOf<float> { static constexpr DType value = DType::F32; };
template <> struct DTypeOf<double> { static constexpr DType value = DType::F64; };
template <> struct DTypeOf<int64_t> { static constexpr DType value = DType::I64; };
template <> struct DTypeOf<int32_t> { static constexpr DType value = DType::I32; };
template <> struct DTypeOf<int16_t> { static constexpr DType value = DType::I16; };
template <> struct DTypeOf<int8_t> { static constexpr DType value = DType::I8; };
template <> struct DTypeOf<uint8_t> { static constexpr DType value = DType::U8; };


class Tensor {
 public:
  Tensor() = default;

  // Owned, uninitialised / zero-filled.
  static Tensor empty(DType dtype, Shape shape);
  static Tensor zeros(DType dtype, Shape shape);
  // Owned copy of typed values.
  template <class T>
  static Tensor from_vector(Shape shape, const std::vector<T>& values) {
    Tensor t = empty(DTypeOf<T>::value, std::move(shape));
    TE_CHECK(static_cast<int64_t>(values.size()) == t.numel(), "tensor of shape {} needs {} values, got {}",
             shape_str(t.shape()), t.numel(), values.size());
    std::copy(values.begin(), values.end(), t.mutable_data<T>());
    return t;
  }
  // Borrowed view of memory kept alive by `owner`; read-only unless `writable`.
  static Tensor view(DType dtype, Shape shape, std::shared_ptr<const void> owner, const void* data,
                     bool writable = false);

  bool defined() const { return data_ != nullptr || numel() == 0; }
  DType dtype() const { return dtype_; }
  const Shape& shape() const { return shape_; }
  int ndim() const { return static_cast<int>(shape_.size()); }
  // Size of dimension i; negative i counts from the end.
  int64_t dim(int i) const;
  int64_t numel() const { return shape_numel(shape_); }
  size_t nbytes() const { return dtype_bytes(dtype_, numel()); }
  bool writable() const { return writable_; }

  const void* raw() const { return data_; }
  void* raw_mut();
  template <class T>
  const T* data() const {
    check_type(DTypeOf<T>::value);
    return static_cast<const T*>(data_);
  }
  // Writable access; throws for read-only views (mapped files).
  template <class T>
  T* mutable_data() {
    check_type(DTypeOf<T>::value);
    return static_cast<T*>(raw_mut());
  }

  // Views sharing the buffer.
  Tensor reshape(Shape shape) const;
  // Slice of the first dimension (in whole panels for Q8_0x16/Q4_0x16 (16 rows), F32x32/BF16x32 (32)).
  Tensor rows(int64_t begin, int64_t end) const;
  Tensor row(int64_t i) const;  // index the first dimension (not for the panel layouts)

  // Copies. Converting to or from Q8_0x16/Q4_0x16 needs a [rows, cols] matrix
  // with rows % 16 == 0 (to: rows are block-quantised first when needed);
  // to or from F32x32/BF16x32 one with rows % 32 == 0 and cols % 2 == 0.
  Tensor to(DType dtype) const;
  Tensor clone() const { return to(dtype_); }
  std::vector<float> to_f32_vector() const;
  // Row i of a 2-D tensor as f32 (cols floats), for every dtype.
  void row_to_f32(int64_t i, float* out) const;

 private:
  void check_type(DType want) const;

  DType dtype_ = DType::F32;
  Shape shape_;
  std::shared_ptr<const void> owner_;
  void* data_ = nullptr;
  bool writable_ = false;
};

}  // namespace tinyemo
