// Each instruction-set variant's table of entry points (core/isa_kernels.h),
// compiled once per variant in a portable build (cmake/Isa.cmake); empty in a
// native build.
#if defined(TINYEMO_ISA_VARIANT)

#include "core/isa_kernels.h"

namespace tinyemo {
TINYEMO_ISA_BEGIN

const isa::Kernels& kernel_table() {
#define TINYEMO_ISA_ENTRY(field, name, ret, params, args) .field = &name,
  static constexpr isa::Kernels kTable{TINYEMO_ISA_ENTRY_POINTS(TINYEMO_ISA_ENTRY)};
#undef TINYEMO_ISA_ENTRY
  return kTable;
}

TINYEMO_ISA_END
}  // namespace tinyemo

#endif
