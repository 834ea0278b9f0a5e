#include "data/jsonl.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>

#include "core/error.h"

namespace tinyemo::data {

namespace fs = std::filesystem;

namespace {

// Calls `fn(line, line_number)` for every complete line; returns the byte
// length of the complete lines (where a partial last line starts).
template <class Fn>
int64_t for_each_line(const fs::path& path, Fn&& fn) {
  std::ifstream in(path, std::ios::binary);
  TE_CHECK(in.good(), "{}: cannot open: {}", path.string(), std::strerror(errno));
  int64_t complete = 0, line_no = 0;
  std::string line;
  while (std::getline(in, line)) {
    if (in.eof()) break;  // no newline after it: a partial last line
    ++line_no;
    complete += static_cast<int64_t>(line.size()) + 1;
    fn(line, line_no);
  }
  return complete;
}

std::string id_of(const std::string& line, const fs::path& path, int64_t line_no, nlohmann::json* out = nullptr) {
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(line);
  } catch (const std::exception& e) {
    fail("{}: line {} is not JSON ({}); repair or remove it before resuming", path.string(), line_no, e.what());
  }
  TE_CHECK(j.is_object() && j.contains("id") && j["id"].is_string(), "{}: line {} is not a record with a string \"id\"",
           path.string(), line_no);
  std::string id = j["id"].get<std::string>();
  if (out != nullptr) *out = std::move(j);
  return id;
}

}  // namespace

JsonlLog::JsonlLog(fs::path path, bool sync) : path_(std::move(path)), sync_(sync) {
  std::error_code ec;
  if (path_.has_parent_path()) fs::create_directories(path_.parent_path(), ec);
  if (fs::exists(path_, ec)) {
    const int64_t size = static_cast<int64_t>(fs::file_size(path_, ec));
    const int64_t complete = for_each_line(path_, [&](const std::string& line, int64_t n) {
      if (line.empty()) return;
      ids_.insert(id_of(line, path_, n));
      ++records_;
    });
    if (complete < size) {
      fs::resize_file(path_, static_cast<uintmax_t>(complete), ec);
      TE_CHECK(!ec, "{}: cannot cut off the partial last line: {}", path_.string(), ec.message());
      dropped_bytes_ = size - complete;
    }
  }
  fd_ = ::open(path_.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  TE_CHECK(fd_ >= 0, "{}: cannot open for appending: {}", path_.string(), std::strerror(errno));
}

JsonlLog::~JsonlLog() {
  if (fd_ >= 0) ::close(fd_);
}

bool JsonlLog::contains(const std::string& id) const {
  std::lock_guard<std::mutex> lock(mutex_);
  return ids_.count(id) != 0;
}

int64_t JsonlLog::records() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return records_;
}

void JsonlLog::append(const nlohmann::json& record) {
  TE_CHECK(record.is_object() && record.contains("id") && record["id"].is_string(), "{}: a record without a string id",
           path_.string());
  const std::string line = record.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) + "\n";
  std::lock_guard<std::mutex> lock(mutex_);
  size_t done = 0;
  while (done < line.size()) {
    const ssize_t n = ::write(fd_, line.data() + done, line.size() - done);
    if (n < 0 && errno == EINTR) continue;
    TE_CHECK(n > 0, "{}: write failed: {}", path_.string(), std::strerror(errno));
    done += static_cast<size_t>(n);
  }
  if (sync_) TE_CHECK(::fdatasync(fd_) == 0, "{}: fdatasync failed: {}", path_.string(), std::strerror(errno));
  ids_.insert(record["id"].get<std::string>());
  ++records_;
}

std::vector<nlohmann::json> read_jsonl(const fs::path& path) {
  std::vector<nlohmann::json> out;
  for_each_line(path, [&](const std::string& line, int64_t n) {
    if (line.empty()) return;
    nlohmann::json j;
    id_of(line, path, n, &j);
    out.push_back(std::move(j));
  });
  return out;
}

}  // namespace tinyemo::data
