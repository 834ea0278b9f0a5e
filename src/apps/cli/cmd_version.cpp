// `tinyemo version`: version and build configuration.
#include "apps/cli/command.h"
#include "core/thread_pool.h"
#include "tinyemo.h"

namespace tinyemo::cli {
namespace {

const CommandRegistration kVersion("version", [](CLI::App& root) {
  auto* cmd = root.add_subcommand("version", "print the version and build configuration");
  auto json = std::make_shared<bool>(false);
  cmd->add_flag("--json", *json, "print JSON");
  cmd->callback([json] {
    nlohmann::json j = {{"version", version_string()}, {"threads", num_threads()},
#if defined(__AVX512F__)
                        {"avx512", true},
#else
                        {"avx512", false},
#endif
                        {"compiler", __VERSION__}};
    if (*json) {
      print_json(j);
    } else {
      std::printf("tinyemo %s (%d threads, %s)\n", j["version"].get<std::string>().c_str(), num_threads(), __VERSION__);
    }
  });
});

}  // namespace
}  // namespace tinyemo::cli
