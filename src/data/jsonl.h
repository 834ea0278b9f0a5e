// A JSON Lines file that survives kill -9: every record is one line written
// with a single write() on an O_APPEND descriptor and then fdatasync'd, so the
// file only ever ends in a partial line when the process died inside that
// write; opening it again cuts such a tail off. Every complete line must be a
// JSON object with a string "id", which is what a resumed job skips.
#pragma once

#include <cstdint>
#include <filesystem>
#include <mutex>
#include <nlohmann/json.hpp>
#include <set>
#include <string>

namespace tinyemo::data {

class JsonlLog {
 public:
  // Creates `path` (and its folder) or opens it for appending. A last line
  // without its newline is truncated away (dropped_bytes says how much); a
  // complete line that is not a JSON object with a string "id" is an error
  // naming the file and line.
  explicit JsonlLog(std::filesystem::path path, bool sync = true);
  ~JsonlLog();
  JsonlLog(const JsonlLog&) = delete;
  JsonlLog& operator=(const JsonlLog&) = delete;

  const std::filesystem::path& path() const { return path_; }
  bool contains(const std::string& id) const;
  int64_t records() const;  // lines in the file (including repeated ids)
  int64_t dropped_bytes() const { return dropped_bytes_; }
  // Appends `record` (which must have a string "id") as one line; thread-safe.
  void append(const nlohmann::json& record);

 private:
  std::filesystem::path path_;
  bool sync_ = true;
  int fd_ = -1;
  int64_t dropped_bytes_ = 0, records_ = 0;
  std::set<std::string> ids_;
  mutable std::mutex mutex_;
};

// Every record of a JSON Lines file (a partial last line is ignored, not
// changed); errors name the file and line.
std::vector<nlohmann::json> read_jsonl(const std::filesystem::path& path);

}  // namespace tinyemo::data
