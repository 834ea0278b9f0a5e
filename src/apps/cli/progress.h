// A one-line progress bar on stderr (count, rate, ETA), drawn only when
// stderr is a terminal; messages printed through it appear above the bar.
#pragma once

#include <cstdint>
#include <string>

namespace tinyemo::cli {

class ProgressBar {
 public:
  // `unit` names what is counted ("img").
  ProgressBar(std::string label, int64_t total, std::string unit);
  ~ProgressBar();
  ProgressBar(const ProgressBar&) = delete;
  ProgressBar& operator=(const ProgressBar&) = delete;

  bool enabled() const { return enabled_; }
  void advance(int64_t n = 1);
  // A line on stderr (the bar is redrawn below it).
  void message(const std::string& line);
  // Clears the bar (also done by the destructor).
  void finish();
  // Takes the bar off the line until the next advance() (before printing to
  // stdout on the same terminal).
  void clear();

 private:
  void draw(bool force);

  std::string label_, unit_;
  int64_t total_ = 0, done_ = 0;
  double start_ = 0.0, last_draw_ = 0.0;
  bool enabled_ = false, drawn_ = false;
};

// "1h02m", "3m05s", "42s".
std::string format_duration(double seconds);

}  // namespace tinyemo::cli
