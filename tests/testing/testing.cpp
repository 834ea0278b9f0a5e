#include "testing/testing.h"

#include <fcntl.h>
#include <spawn.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <csignal>
#include <cmath>
#include <cstdio>
#include <thread>
#include <cstdlib>
#include <random>

#include "core/error.h"
#include "io/file.h"

extern char** environ;

namespace tinyemo::testing {

std::filesystem::path shared_dir() {
  if (const char* env = std::getenv("TINYEMO_SHARED_DIR")) return env;
  return TINYEMO_SHARED_DIR;
}
std::filesystem::path fixture(const std::string& relative) { return shared_dir() / "fixtures" / relative; }
std::filesystem::path data(const std::string& relative) { return shared_dir() / "data" / relative; }
std::filesystem::path source_dir() { return TINYEMO_SOURCE_DIR; }

std::string error_of(const std::function<void()>& fn) {
  try {
    fn();
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

double rel_error(const std::vector<float>& a, const std::vector<float>& b) {
  EXPECT_EQ(a.size(), b.size());
  if (a.size() != b.size()) return INFINITY;
  double num = 0.0, den = 0.0;
  for (size_t i = 0; i < a.size(); ++i) {
    const double d = static_cast<double>(a[i]) - b[i];
    num += d * d;
    den += static_cast<double>(b[i]) * b[i];
  }
  if (den == 0.0) return num == 0.0 ? 0.0 : INFINITY;
  return std::sqrt(num / den);
}

double rel_error(const Tensor& a, const Tensor& b) {
  EXPECT_EQ(shape_str(a.shape()), shape_str(b.shape()));
  if (a.shape() != b.shape()) return INFINITY;
  return rel_error(a.to_f32_vector(), b.to_f32_vector());
}

double max_abs_diff(const std::vector<float>& a, const std::vector<float>& b) {
  EXPECT_EQ(a.size(), b.size());
  double m = 0.0;
  for (size_t i = 0; i < std::min(a.size(), b.size()); ++i) m = std::max(m, std::fabs(static_cast<double>(a[i]) - b[i]));
  return m;
}

TempDir::TempDir() {
  std::random_device rd;
  path_ = std::filesystem::temp_directory_path() / ("tinyemo-test-" + std::to_string(rd()) + std::to_string(::getpid()));
  std::filesystem::create_directories(path_);
}
TempDir::~TempDir() {
  std::error_code ec;
  std::filesystem::remove_all(path_, ec);
}

namespace {
CliResult run_cli_impl(const std::vector<std::string>& args, const std::string& input, double timeout_seconds);
}  // namespace

CliResult run_cli(const std::vector<std::string>& args) { return run_cli_impl(args, "", -1.0); }
CliResult run_cli(const std::vector<std::string>& args, double timeout_seconds) {
  return run_cli_impl(args, "", timeout_seconds);
}
CliResult run_cli_with_input(const std::vector<std::string>& args, const std::string& input) {
  return run_cli_impl(args, input, -1.0);
}

namespace {
CliResult run_cli_impl(const std::vector<std::string>& args, const std::string& input, double timeout_seconds) {
  TempDir tmp;
  const auto out_path = tmp / "stdout", err_path = tmp / "stderr", in_path = tmp / "stdin";
  write_file_atomic(in_path, input);
  std::vector<std::string> argv_s = {TINYEMO_CLI_PATH};
  argv_s.insert(argv_s.end(), args.begin(), args.end());
  std::vector<char*> argv;
  for (auto& s : argv_s) argv.push_back(s.data());
  argv.push_back(nullptr);
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, 0, in_path.c_str(), O_RDONLY, 0);
  posix_spawn_file_actions_addopen(&actions, 1, out_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  posix_spawn_file_actions_addopen(&actions, 2, err_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  pid_t pid = 0;
  CliResult r;
  if (posix_spawn(&pid, argv[0], &actions, nullptr, argv.data(), environ) != 0) {
    posix_spawn_file_actions_destroy(&actions);
    ADD_FAILURE() << "cannot start " << argv[0];
    return r;
  }
  posix_spawn_file_actions_destroy(&actions);
  int status = 0;
  if (timeout_seconds < 0) {
    waitpid(pid, &status, 0);
  } else {
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::duration<double>(timeout_seconds);
    while (waitpid(pid, &status, WNOHANG) == 0) {
      if (std::chrono::steady_clock::now() > deadline) {
        ::kill(pid, SIGKILL);
        waitpid(pid, &status, 0);
        r.timed_out = true;
        break;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
  }
  r.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  r.out = read_file(out_path);
  r.err = read_file(err_path);
  return r;
}

int64_t resident_bytes() {
  long pages = 0, resident = 0;
  FILE* f = std::fopen("/proc/self/statm", "r");
  if (f != nullptr) {
    if (std::fscanf(f, "%ld %ld", &pages, &resident) != 2) resident = 0;
    std::fclose(f);
  }
  return static_cast<int64_t>(resident) * ::sysconf(_SC_PAGESIZE);
}
}  // namespace

ChildRun run_in_child(const std::function<void()>& fn) {
  ChildRun run;
  int pipe_fd[2];
  if (::pipe(pipe_fd) != 0) {
    ADD_FAILURE() << "pipe failed";
    return run;
  }
  std::fflush(nullptr);
  const int64_t at_fork = resident_bytes();
  const auto t0 = std::chrono::steady_clock::now();
  const pid_t pid = ::fork();
  if (pid == 0) {
    ::close(pipe_fd[0]);
    std::string message;
    int code = 0;
    try {
      fn();
    } catch (const Error& e) {
      code = 1;
      message = e.what();
    } catch (...) {
      code = 2;
    }
    if (!message.empty() && ::write(pipe_fd[1], message.data(), message.size()) < 0) code = 2;
    ::close(pipe_fd[1]);
    ::_exit(code);
  }
  ::close(pipe_fd[1]);
  char buffer[4096];
  for (ssize_t n; (n = ::read(pipe_fd[0], buffer, sizeof buffer)) > 0;) run.error.append(buffer, static_cast<size_t>(n));
  ::close(pipe_fd[0]);
  int status = 0;
  struct rusage usage {};
  ::wait4(pid, &status, 0, &usage);
  run.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  run.peak_growth_bytes = static_cast<int64_t>(usage.ru_maxrss) * 1024 - at_fork;
  run.threw_error = WIFEXITED(status) && WEXITSTATUS(status) == 1;
  run.crashed = !WIFEXITED(status) || WEXITSTATUS(status) == 2;
  return run;
}

}  // namespace tinyemo::testing
