// The choice of kernel variant (core/isa.h). In a portable build ctest runs
// test_core once per variant with TINYEMO_ISA set (tests/CMakeLists.txt,
// label "isa"), so every other test here checks that variant's kernels.
#include <gtest/gtest.h>

#include <cstdlib>
#include <string>

#include "core/isa.h"
#include "core/matmul_internal.h"
#include "testing/testing.h"

namespace tinyemo {
namespace {

// Under a known TINYEMO_ISA this CPU cannot run, every test is skipped (a CI
// machine without AVX-512 runs the avx512 entry as skipped, not failed).
class ForcedVariantEnvironment : public ::testing::Environment {
 public:
  void SetUp() override {
    const char* forced = std::getenv("TINYEMO_ISA");
    if (forced == nullptr || *forced == '\0') return;
    const std::string name(forced);
    if (name != "avx512" && name != "avx2" && name != "baseline") return;  // an unknown name fails the tests
    try {
      isa::choose_variant(forced);
    } catch (const Error& e) {
      GTEST_SKIP() << e.what();
    }
  }
};
[[maybe_unused]] ::testing::Environment* const kEnvironment =
    ::testing::AddGlobalTestEnvironment(new ForcedVariantEnvironment);

TEST(Isa, ActiveVariantIsTheForcedOne) {
  const char* forced = std::getenv("TINYEMO_ISA");
  const std::string active(isa::active_name());
  if (forced != nullptr && *forced != '\0') {
    EXPECT_EQ(active, forced);
  } else if (isa::portable()) {
    EXPECT_EQ(active, isa::choose_variant(nullptr));  // this CPU's best
  } else {
    EXPECT_EQ(active, "native");
  }
}

TEST(Isa, UnknownNameIsRefusedByName) {
  const std::string err = testing::error_of([] { isa::choose_variant("sse9"); });
  EXPECT_NE(err.find("TINYEMO_ISA=sse9"), std::string::npos) << err;
}

TEST(Isa, EveryCpuRunsTheBaseline) {
  if (!isa::portable()) {
    EXPECT_EQ(isa::choose_variant(nullptr), "native");
    EXPECT_EQ(isa::choose_variant("native"), "native");
    EXPECT_NE(testing::error_of([] { isa::choose_variant("baseline"); }).find("TINYEMO_NATIVE=ON"),
              std::string::npos);
    return;
  }
  EXPECT_EQ(isa::choose_variant("baseline"), "baseline");
  const std::string best(isa::choose_variant(nullptr));
  EXPECT_TRUE(best == "avx512" || best == "avx2" || best == "baseline") << best;
  // The best variant is also accepted by name; "native" is no portable variant.
  EXPECT_EQ(isa::choose_variant(best.c_str()), best);
  EXPECT_NE(testing::error_of([] { isa::choose_variant("native"); }).find("unknown"), std::string::npos);
}

TEST(Isa, KernelsMatchTheVariant) {
  // Only the avx512 variant (and a native build on such a CPU) has the
  // interleaved quantised dot kernels; the others keep row-major weights.
  const std::string active(isa::active_name());
  if (active == "avx2" || active == "baseline") {
    EXPECT_FALSE(detail::has_interleaved_dot());
    EXPECT_FALSE(detail::has_kquant_dot());
  } else if (active == "avx512") {
    EXPECT_TRUE(detail::has_interleaved_dot());
    EXPECT_TRUE(detail::has_kquant_dot());
  }
}

}  // namespace
}  // namespace tinyemo
