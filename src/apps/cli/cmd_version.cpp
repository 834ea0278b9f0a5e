// `tinyemo version`: version and build configuration.
#include "apps/cli/command.h"
#include "core/isa.h"
#include "core/thread_pool.h"
#include "tinyemo.h"

namespace tinyemo::cli {
namespace {

const CommandRegistration kVersion("version", [](CLI::App& root) {
  auto* cmd = root.add_subcommand("version", "print the version and build configuration");
  auto json = std::make_shared<bool>(false);
  cmd->add_flag("--json", *json, "print JSON");
  cmd->callback([json] {
    // The kernels in use: "native" (compiled for the build machine) or, in a
    // portable build, the variant chosen for this CPU (core/isa.h).
    const std::string isa(isa::active_name());
#if defined(__AVX512F__)
    const bool avx512 = true;
#else
    const bool avx512 = isa == "avx512";
#endif
    nlohmann::json j = {{"version", version_string()}, {"threads", num_threads()}, {"isa", isa},
                        {"portable", isa::portable()}, {"avx512", avx512}, {"compiler", __VERSION__}};
    if (*json) {
      print_json(j);
    } else {
      std::printf("tinyemo %s (%d threads, kernels: %s%s, %s)\n", j["version"].get<std::string>().c_str(),
                  num_threads(), isa.c_str(), isa::portable() ? " [portable build]" : "", __VERSION__);
    }
  });
});

}  // namespace
}  // namespace tinyemo::cli
