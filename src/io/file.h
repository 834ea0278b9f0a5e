// Files: read-only memory maps, whole-file reads, and atomic writes (a
// temporary file in the same folder, fsync, rename), so an interrupted job
// never leaves a half-written output behind.
#pragma once

#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>
#include <string_view>

namespace tinyemo {

class MappedFile {
 public:
  // Maps the whole file read-only; throws tinyemo::Error naming the path.
  static std::shared_ptr<const MappedFile> open(const std::filesystem::path& path);
  ~MappedFile();
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;

  const uint8_t* data() const { return data_; }
  size_t size() const { return size_; }
  const std::filesystem::path& path() const { return path_; }

 private:
  MappedFile() = default;
  std::filesystem::path path_;
  const uint8_t* data_ = nullptr;
  size_t size_ = 0;
};

std::string read_file(const std::filesystem::path& path);

// Writes `bytes` to `path` atomically (creating parent folders).
void write_file_atomic(const std::filesystem::path& path, std::string_view bytes);

// Streams a file into a temporary sibling and renames it over `path` on commit();
// destroying it without commit() removes the temporary.
class AtomicFile {
 public:
  explicit AtomicFile(std::filesystem::path path);
  ~AtomicFile();
  AtomicFile(const AtomicFile&) = delete;
  AtomicFile& operator=(const AtomicFile&) = delete;
  void write(const void* data, size_t n);
  void write(std::string_view s) { write(s.data(), s.size()); }
  void commit();

 private:
  std::filesystem::path path_, tmp_;
  int fd_ = -1;
};

}  // namespace tinyemo
