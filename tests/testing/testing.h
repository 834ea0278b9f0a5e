// Test helpers: fixture paths, error metrics, temporary folders and running
// the built CLI.
#pragma once

#include <gtest/gtest.h>

#include <filesystem>
#include <functional>
#include <string>
#include <vector>

#include "core/tensor.h"

namespace tinyemo::testing {

// ../shared beside the checkout (fixtures/, data/).
std::filesystem::path shared_dir();
std::filesystem::path fixture(const std::string& relative);  // shared/fixtures/<relative>
std::filesystem::path data(const std::string& relative);     // shared/data/<relative>
std::filesystem::path source_dir();

// ||a - b|| / ||b|| over all elements (any float dtypes; shapes must match).
double rel_error(const Tensor& a, const Tensor& b);
double rel_error(const std::vector<float>& a, const std::vector<float>& b);
double max_abs_diff(const std::vector<float>& a, const std::vector<float>& b);

// The message of the tinyemo::Error that `fn` throws; "" when it throws none.
std::string error_of(const std::function<void()>& fn);

// A fresh folder under the system temp dir, removed with the object.
class TempDir {
 public:
  TempDir();
  ~TempDir();
  const std::filesystem::path& path() const { return path_; }
  std::filesystem::path operator/(const std::string& name) const { return path_ / name; }

 private:
  std::filesystem::path path_;
};

struct CliResult {
  int exit_code = -1;
  std::string out;  // stdout
  std::string err;  // stderr
  bool timed_out = false;
};
// Runs the built tinyemo binary with `args` (no shell; arguments passed as is)
// and an empty stdin.
CliResult run_cli(const std::vector<std::string>& args);
// The same with `input` on stdin.
CliResult run_cli_with_input(const std::vector<std::string>& args, const std::string& input);

// run_cli killed after `timeout_seconds` (timed_out set): for inputs that
// could make the binary hang (a FIFO named like an input).
CliResult run_cli(const std::vector<std::string>& args, double timeout_seconds);

// Runs `fn` in a forked child and reports its peak memory growth and outcome,
// so a test can bound what a hostile input costs. `fn` must not use the
// thread pool (a forked child has none of the parent's threads).
struct ChildRun {
  int64_t peak_growth_bytes = 0;  // peak resident set of the child less its resident set at the fork
  double seconds = 0.0;
  bool threw_error = false;       // fn threw tinyemo::Error
  bool crashed = false;           // anything else (another exception, a signal)
  std::string error;              // the Error's message
};
ChildRun run_in_child(const std::function<void()>& fn);

}  // namespace tinyemo::testing
