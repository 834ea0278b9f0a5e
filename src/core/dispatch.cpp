// The choice of instruction-set variant (core/isa.h). In a portable build this
// file defines the public kernel entry points (core/isa_kernels.h lists them)
// and forwards each call to the variant chosen at first use; in a native build
// the kernels are called directly and only the name is here.
#include <cstdlib>
#include <string_view>

#include "core/error.h"
#include "core/isa.h"

#if TINYEMO_PORTABLE
#include "core/isa_kernels.h"
#endif

namespace tinyemo {

#if TINYEMO_PORTABLE

namespace isa_avx512 {
const isa::Kernels& kernel_table();
}
namespace isa_avx2 {
const isa::Kernels& kernel_table();
}
namespace isa_baseline {
const isa::Kernels& kernel_table();
}

namespace isa {
namespace {

struct Variant {
  std::string_view name;
  std::string_view requires_;  // what the CPU must have, for the error message
  bool (*supported)();
  const Kernels& (*table)();
};

// The avx512 variant is compiled for x86-64-v4 (AVX-512 F, BW, CD, DQ, VL)
// plus VNNI, VBMI and BF16 (cmake/Isa.cmake); it runs only where all are
// present (Ice Lake / Zen 4 and later). __builtin_cpu_supports also checks that
// the OS saves the vector registers.
bool cpu_runs_avx512() {
  __builtin_cpu_init();
  return __builtin_cpu_supports("x86-64-v4") && __builtin_cpu_supports("avx512vnni") &&
         __builtin_cpu_supports("avx512vbmi") && __builtin_cpu_supports("avx512bf16");
}
bool cpu_runs_avx2() {
  __builtin_cpu_init();
  return __builtin_cpu_supports("x86-64-v3");
}
bool cpu_runs_baseline() { return true; }

// Best first.
constexpr Variant kVariants[] = {
    {"avx512", "x86-64-v4 (AVX-512 F/BW/CD/DQ/VL) with AVX512-VNNI, AVX512-VBMI and AVX512-BF16", cpu_runs_avx512,
     isa_avx512::kernel_table},
    {"avx2", "x86-64-v3 (AVX2, FMA, F16C, BMI2)", cpu_runs_avx2, isa_avx2::kernel_table},
    {"baseline", "x86-64", cpu_runs_baseline, isa_baseline::kernel_table},
};

const Variant& choose(const char* forced) {
  if (forced != nullptr && *forced != '\0') {
    for (const Variant& v : kVariants) {
      if (v.name != forced) continue;
      TE_CHECK(v.supported(), "TINYEMO_ISA={}: this CPU cannot run the {} kernels (they need {})", forced, v.name,
               v.requires_);
      return v;
    }
    fail("TINYEMO_ISA={}: unknown instruction set (known: avx512, avx2, baseline)", forced);
  }
  for (const Variant& v : kVariants)
    if (v.supported()) return v;
  return kVariants[std::size(kVariants) - 1];
}

// Chosen once; a refused TINYEMO_ISA throws at every use (no variant is cached).
const Variant& active() {
  static const Variant& variant = choose(std::getenv("TINYEMO_ISA"));
  return variant;
}

const Kernels& kernels() {
  static const Kernels& table = active().table();
  return table;
}

}  // namespace

std::string_view active_name() { return active().name; }
bool portable() { return true; }
std::string_view choose_variant(const char* forced) { return choose(forced).name; }

}  // namespace isa

#define TINYEMO_ISA_FORWARD(field, name, ret, params, args) \
  ret name params { return isa::kernels().field args; }
TINYEMO_ISA_ENTRY_POINTS(TINYEMO_ISA_FORWARD)
#undef TINYEMO_ISA_FORWARD

#else  // native build: one variant, compiled for the build machine

namespace isa {

std::string_view choose_variant(const char* forced) {
  TE_CHECK(forced == nullptr || *forced == '\0' || std::string_view(forced) == "native",
           "TINYEMO_ISA={}: this build has only its native kernels (built with TINYEMO_NATIVE=ON); "
           "build with -DTINYEMO_NATIVE=OFF to choose between avx512, avx2 and baseline",
           forced);
  return "native";
}
std::string_view active_name() { return choose_variant(std::getenv("TINYEMO_ISA")); }
bool portable() { return false; }

}  // namespace isa

#endif

}  // namespace tinyemo
