// tinyemo: command-line entry point. Subcommands live in cmd_*.cpp.
#include <cstdio>
#include <map>

#include "apps/cli/command.h"
#include "core/error.h"
#include "core/thread_pool.h"
#include "tinyemo.h"

namespace tinyemo::cli {

namespace {
std::map<std::string, CommandSetup>& registry() {
  static std::map<std::string, CommandSetup> commands;
  return commands;
}
}  // namespace

CommandRegistration::CommandRegistration(std::string name, CommandSetup setup) {
  registry().emplace(std::move(name), std::move(setup));
}

void print_json(const nlohmann::json& j) {
  std::fputs(j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace).c_str(), stdout);
  std::fputc('\n', stdout);
  std::fflush(stdout);
}

void print_report(const nlohmann::json& j, bool json) {
  if (json) return print_json(j);
  std::fputs(j.dump(2, ' ', false, nlohmann::json::error_handler_t::replace).c_str(), stdout);
  std::fputc('\n', stdout);
  std::fflush(stdout);
}

std::string version_string() {
  return std::to_string(TE_VERSION_MAJOR) + "." + std::to_string(TE_VERSION_MINOR) + "." +
         std::to_string(TE_VERSION_PATCH);
}

int& exit_code() {
  static int code = 0;
  return code;
}

}  // namespace tinyemo::cli

int main(int argc, char** argv) {
  CLI::App app{"tinyemo: visual emotion classification and emotional reasoning (TinyEmo), natively on CPU"};
  app.require_subcommand(1);
  app.set_version_flag("--version", tinyemo::cli::version_string());
  app.fallthrough();  // global options such as --threads may follow the subcommand
  app.add_option_function<int>("--threads", [](int n) { tinyemo::set_num_threads(n); },
                               "worker threads (default: all cores)")
      ->check(tinyemo::cli::at_least(0));
  for (auto& [name, setup] : tinyemo::cli::registry()) setup(app);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  } catch (const std::bad_alloc&) {
    // Sizes are checked before large allocations; this is the net under the rest.
    std::fprintf(stderr, "tinyemo: error: out of memory (a size given as an option or read from a file is too large "
                         "for this machine)\n");
    return 1;
  } catch (const tinyemo::Error& e) {
    std::fprintf(stderr, "tinyemo: error: %s\n", e.what());
    return 1;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "tinyemo: error: %s\n", e.what());
    return 1;
  }
  return tinyemo::cli::exit_code();
}
