// Test helpers: fixture paths, error metrics, temporary folders and running
// the built CLI.
#pragma once

#include <gtest/gtest.h>

#include <filesystem>
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
};
// Runs the built tinyemo binary with `args` (no shell; arguments passed as is)
// and an empty stdin.
CliResult run_cli(const std::vector<std::string>& args);
// The same with `input` on stdin.
CliResult run_cli_with_input(const std::vector<std::string>& args, const std::string& input);

}  // namespace tinyemo::testing
