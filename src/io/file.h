// Files: opening for reading (regular files only), read-only memory maps,
// whole-file reads, and atomic writes (a temporary file in the same folder,
// fsync, rename), so an interrupted job never leaves a half-written output
// behind.
#pragma once

#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace tinyemo {

// A file open for reading. Every reader of the engine opens its input through
// this: only regular files are accepted (after following symbolic links), so
// a FIFO, socket, device or folder named like an input is refused by name
// instead of blocking or reading forever; the open itself never blocks.
class InputFile {
 public:
  // Throws tinyemo::Error naming the path and, for other kinds of file, what it is.
  static InputFile open(const std::filesystem::path& path);
  ~InputFile();
  InputFile(InputFile&& other) noexcept;
  InputFile& operator=(InputFile&& other) noexcept;
  InputFile(const InputFile&) = delete;
  InputFile& operator=(const InputFile&) = delete;

  int fd() const { return fd_; }
  uint64_t size() const { return size_; }
  const std::filesystem::path& path() const { return path_; }
  // Reads exactly n bytes at `offset` (throws naming the file when it ends early).
  void read_at(uint64_t offset, void* out, size_t n) const;

 private:
  InputFile() = default;
  std::filesystem::path path_;
  int fd_ = -1;
  uint64_t size_ = 0;
};

// "a FIFO (named pipe)", "a folder", ... for an st_mode; "a regular file".
std::string_view file_kind_name(unsigned mode);

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

// The whole file (a regular file: see InputFile).
std::string read_file(const std::filesystem::path& path);

// Writes `bytes` to `path` atomically (creating parent folders).
void write_file_atomic(const std::filesystem::path& path, std::string_view bytes);

// Streams a file into a temporary sibling and renames it over `path` on commit();
// destroying it without commit() removes the temporary. What `path` may be:
//  - a new file (its parent folders are created) or a regular file, replaced
//    atomically (keeping its permission bits);
//  - a symbolic link (or a chain of them) to either: the file it points to is
//    replaced, in the folder it really lives in, and the link stays a link;
//  - anything else is refused by name before anything is written: folders,
//    FIFOs, sockets, devices, and the standard streams (/dev/stdout,
//    /dev/stderr, /dev/fd/N, /proc/self/fd/N, "-"): outputs are binary or
//    whole documents written atomically, never streamed.
// Errors name `path` as the caller gave it, never the temporary file.
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
  std::filesystem::path path_;    // as given (for messages)
  std::filesystem::path target_;  // the file that is replaced (symbolic links followed)
  std::filesystem::path tmp_;
  int fd_ = -1;
};

// Where an output given as `path` really goes (AtomicFile's rules: symbolic
// links followed, the kinds of file it refuses refused). Exposed for checks
// that compare outputs with inputs.
std::filesystem::path resolve_output_path(const std::filesystem::path& path);

// Refuses an output (a file or a folder of outputs) that would land inside
// `input` when that is a folder read as input (writing into it changes what
// the next run reads), or that would overwrite `input` when it is a file. Paths are compared after resolving symbolic
// links and "..", so another spelling of the same place is caught too.
// `what` names the input in the message ("--features").
void check_output_outside(const std::filesystem::path& output, const std::filesystem::path& input,
                          std::string_view what);

}  // namespace tinyemo
