// Instruction-set variants of the kernels (docs/perf/kernels.md, "Portable build").
//
// A native build (TINYEMO_NATIVE=ON, the default) compiles every file once for
// the build machine's CPU: the macros below expand to nothing and the kernels
// are called directly.
//
// A portable build (TINYEMO_NATIVE=OFF) compiles the files that hold kernels
// (cmake/Isa.cmake: TINYEMO_ISA_SOURCES) once per variant -- avx512, avx2,
// baseline -- with TINYEMO_ISA_VARIANT naming the variant. Their functions, and
// the internal headers' inline helpers, are then declared and defined inside
// TINYEMO_ISA_BEGIN / TINYEMO_ISA_END, i.e. in tinyemo::isa_<variant>, so the
// variants link side by side; the types they share (Tensor, BOperand, ...)
// stay outside. core/dispatch.cpp defines the public entry points (core/matmul.h,
// core/ops.h, core/attention.h, convert) and forwards each call to the variant
// chosen at first use (this CPU's best, or TINYEMO_ISA).
#pragma once

#include <string_view>

#define TINYEMO_ISA_CAT_(a, b) a##b
#define TINYEMO_ISA_CAT(a, b) TINYEMO_ISA_CAT_(a, b)

#if defined(TINYEMO_ISA_VARIANT)
#define TINYEMO_ISA_NS TINYEMO_ISA_CAT(isa_, TINYEMO_ISA_VARIANT)
#define TINYEMO_ISA_BEGIN namespace TINYEMO_ISA_NS {
#define TINYEMO_ISA_END }
// The types of tinyemo::detail (BOperand, DotOutput, ...) seen from the
// variant's own detail namespace.
namespace tinyemo::detail {}
namespace tinyemo::TINYEMO_ISA_NS::detail {
using namespace ::tinyemo::detail;
}
#else
#define TINYEMO_ISA_BEGIN
#define TINYEMO_ISA_END
#endif

namespace tinyemo::isa {

// The variant in use: "native" in a native build (compiled for the build
// machine), else "avx512", "avx2" or "baseline". A portable build picks it at
// first use: TINYEMO_ISA when set (an unknown name, or a variant this CPU cannot
// run, is an error), else the best the CPU runs.
std::string_view active_name();

// Whether this is a portable build (one binary, variants chosen at run time).
bool portable();

// The variant a process with TINYEMO_ISA = `forced` (null or empty: unset)
// uses: the named one, or this CPU's best. Throws Error for an unknown name or
// a variant this CPU cannot run (a native build knows only "native").
std::string_view choose_variant(const char* forced);

}  // namespace tinyemo::isa
