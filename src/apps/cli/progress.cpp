#include "apps/cli/progress.h"

#include <unistd.h>

#include <chrono>
#include <cmath>
#include <cstdio>

#include <fmt/format.h>

namespace tinyemo::cli {

namespace {
double now() { return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count(); }
constexpr int kBarWidth = 30;
}  // namespace

std::string format_duration(double seconds) {
  if (!std::isfinite(seconds) || seconds < 0) return "?";
  const auto s = static_cast<int64_t>(std::llround(seconds));
  if (s >= 3600) return fmt::format("{}h{:02}m", s / 3600, s % 3600 / 60);
  if (s >= 60) return fmt::format("{}m{:02}s", s / 60, s % 60);
  return fmt::format("{}s", s);
}

ProgressBar::ProgressBar(std::string label, int64_t total, std::string unit)
    : label_(std::move(label)), unit_(std::move(unit)), total_(total), start_(now()),
      enabled_(::isatty(STDERR_FILENO) == 1 && total > 0) {
  draw(true);
}

ProgressBar::~ProgressBar() { finish(); }

void ProgressBar::advance(int64_t n) {
  done_ += n;
  draw(done_ >= total_);
}

void ProgressBar::message(const std::string& line) {
  clear();
  std::fprintf(stderr, "%s\n", line.c_str());
  draw(true);
}

void ProgressBar::finish() {
  clear();
  enabled_ = false;
}

void ProgressBar::clear() {
  if (!enabled_ || !drawn_) return;
  std::fputs("\r\033[2K", stderr);
  std::fflush(stderr);
  drawn_ = false;
}

void ProgressBar::draw(bool force) {
  if (!enabled_) return;
  const double t = now();
  if (!force && t - last_draw_ < 0.1) return;
  last_draw_ = t;
  const double elapsed = t - start_;
  const double rate = elapsed > 0 ? static_cast<double>(done_) / elapsed : 0.0;
  const double eta = rate > 0 ? static_cast<double>(total_ - done_) / rate : NAN;
  const int filled = static_cast<int>(kBarWidth * std::min<int64_t>(done_, total_) / total_);
  const std::string bar = std::string(filled, '=') + (filled < kBarWidth ? ">" : "") +
                          std::string(std::max(0, kBarWidth - filled - 1), ' ');
  std::fprintf(stderr, "\r\033[2K%s [%s] %lld/%lld %.2f %s/s ETA %s", label_.c_str(), bar.c_str(),
               static_cast<long long>(done_), static_cast<long long>(total_), rate, unit_.c_str(),
               format_duration(eta).c_str());
  std::fflush(stderr);
  drawn_ = true;
}

}  // namespace tinyemo::cli
