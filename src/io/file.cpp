#include "io/file.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstring>

#include "core/error.h"

namespace tinyemo {

namespace fs = std::filesystem;

std::string_view file_kind_name(unsigned mode) {
  if (S_ISREG(mode)) return "a regular file";
  if (S_ISDIR(mode)) return "a folder";
  if (S_ISFIFO(mode)) return "a FIFO (named pipe)";
  if (S_ISSOCK(mode)) return "a socket";
  if (S_ISCHR(mode)) return "a character device";
  if (S_ISBLK(mode)) return "a block device";
  if (S_ISLNK(mode)) return "a symbolic link";
  return "a special file";
}

// ---- reading -------------------------------------------------------------------

InputFile InputFile::open(const fs::path& path) {
  // stat first, so that a device or FIFO is never opened at all (opening some
  // devices has effects); fstat after, on what was really opened.
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) fail("{}: cannot open: {}", path.string(), std::strerror(errno));
  TE_CHECK(S_ISREG(st.st_mode), "{}: is {}, not a regular file (only regular files are read)", path.string(),
           file_kind_name(st.st_mode));
  // O_NONBLOCK: should the path be swapped for a FIFO in between, open() must not wait for a writer.
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
  if (fd < 0) fail("{}: cannot open: {}", path.string(), std::strerror(errno));
  InputFile f;
  f.path_ = path;
  f.fd_ = fd;
  if (::fstat(fd, &st) != 0) fail("{}: cannot stat: {}", path.string(), std::strerror(errno));
  TE_CHECK(S_ISREG(st.st_mode), "{}: is {}, not a regular file (only regular files are read)", path.string(),
           file_kind_name(st.st_mode));
  const int flags = ::fcntl(fd, F_GETFL);
  if (flags >= 0) ::fcntl(fd, F_SETFL, flags & ~O_NONBLOCK);
  f.size_ = static_cast<uint64_t>(st.st_size);
  return f;
}

InputFile::~InputFile() {
  if (fd_ >= 0) ::close(fd_);
}

InputFile::InputFile(InputFile&& other) noexcept
    : path_(std::move(other.path_)), fd_(std::exchange(other.fd_, -1)), size_(other.size_) {}

InputFile& InputFile::operator=(InputFile&& other) noexcept {
  if (this != &other) {
    if (fd_ >= 0) ::close(fd_);
    path_ = std::move(other.path_);
    fd_ = std::exchange(other.fd_, -1);
    size_ = other.size_;
  }
  return *this;
}

void InputFile::read_at(uint64_t offset, void* out, size_t n) const {
  auto* p = static_cast<char*>(out);
  while (n > 0) {
    const ssize_t r = ::pread(fd_, p, n, static_cast<off_t>(offset));
    if (r < 0) {
      if (errno == EINTR) continue;
      fail("{}: read failed: {}", path_.string(), std::strerror(errno));
    }
    TE_CHECK(r > 0, "{}: the file ended early (it changed while being read?)", path_.string());
    p += r;
    n -= static_cast<size_t>(r);
    offset += static_cast<uint64_t>(r);
  }
}

std::shared_ptr<const MappedFile> MappedFile::open(const fs::path& path) {
  const InputFile in = InputFile::open(path);
  TE_CHECK(in.size() <= SIZE_MAX, "{}: too large to map", path.string());
  std::shared_ptr<MappedFile> f(new MappedFile());
  f->path_ = path;
  f->size_ = static_cast<size_t>(in.size());
  if (f->size_ > 0) {
    void* p = ::mmap(nullptr, f->size_, PROT_READ, MAP_PRIVATE, in.fd(), 0);
    if (p == MAP_FAILED) fail("{}: cannot map: {}", path.string(), std::strerror(errno));
    f->data_ = static_cast<const uint8_t*>(p);
  }
  return f;
}

MappedFile::~MappedFile() {
  if (data_ != nullptr) ::munmap(const_cast<uint8_t*>(data_), size_);
}

std::string read_file(const fs::path& path) {
  const InputFile in = InputFile::open(path);
  std::string bytes;
  try {
    bytes.resize(static_cast<size_t>(in.size()));
  } catch (const std::bad_alloc&) {
    fail("{}: out of memory reading {} bytes", path.string(), in.size());
  }
  in.read_at(0, bytes.data(), bytes.size());
  return bytes;
}

// ---- writing -------------------------------------------------------------------

namespace {

std::atomic<uint64_t> g_tmp_counter{0};

// The standard streams and terminals, under the names a user may give them.
bool is_standard_stream(const fs::path& p) {
  const std::string s = p.lexically_normal().string();
  if (s == "-" || s == "/dev/stdout" || s == "/dev/stderr" || s == "/dev/stdin" || s == "/dev/tty") return true;
  if (s.starts_with("/dev/fd/") || s.starts_with("/proc/self/fd/") || s.starts_with("/proc/thread-self/fd/")) {
    return true;
  }
  if (s.starts_with("/proc/")) {  // /proc/<pid>/fd/N
    const size_t slash = s.find('/', 6);
    return slash != std::string::npos && s.compare(slash, 4, "/fd/") == 0;
  }
  return false;
}

[[noreturn]] void refuse_stream(const fs::path& given) {
  fail("{}: writing to a standard stream, descriptor or terminal is not supported: give a file path (outputs are "
       "written whole, atomically)",
       given.string());
}

}  // namespace

fs::path resolve_output_path(const fs::path& path) {
  TE_CHECK(!path.empty(), "empty output path");
  fs::path p = path;
  for (int hops = 0;; ++hops) {
    if (is_standard_stream(p)) refuse_stream(path);
    struct stat st {};
    if (::lstat(p.c_str(), &st) != 0) {
      if (errno == ENOENT) return p;  // a new file (its folder may not exist yet either)
      if (errno == ENOTDIR) fail("{}: cannot be written: a part of its folder path is not a folder", path.string());
      if (p == path) fail("{}: cannot be written: {}", path.string(), std::strerror(errno));
      fail("{}: cannot be written: {}: {}", path.string(), p.string(), std::strerror(errno));
    }
    if (S_ISLNK(st.st_mode)) {
      TE_CHECK(hops < 40, "{}: too many levels of symbolic links", path.string());
      std::error_code ec;
      const fs::path target = fs::read_symlink(p, ec);
      TE_CHECK(!ec, "{}: cannot read the symbolic link {}: {}", path.string(), p.string(), ec.message());
      p = target.is_absolute() ? target : p.parent_path() / target;
      continue;
    }
    if (S_ISREG(st.st_mode)) return p;
    if (p == path) {
      fail("{}: is {}; outputs are written only as regular files", path.string(), file_kind_name(st.st_mode));
    }
    fail("{}: leads (through symbolic links) to {}, which is {}; outputs are written only as regular files",
         path.string(), p.string(), file_kind_name(st.st_mode));
  }
}

AtomicFile::AtomicFile(fs::path path) : path_(std::move(path)) {
  target_ = resolve_output_path(path_);
  const fs::path dir = target_.parent_path();
  if (!dir.empty()) {
    std::error_code ec;
    fs::create_directories(dir, ec);
    TE_CHECK(!ec, "{}: cannot create the folder {}: {}", path_.string(), dir.string(), ec.message());
  }
  // Keep the permission bits of a file that is replaced.
  mode_t mode = 0666;  // less the umask
  struct stat st {};
  const bool replacing = ::stat(target_.c_str(), &st) == 0 && S_ISREG(st.st_mode);
  tmp_ = target_;
  tmp_ += ".tmp." + std::to_string(::getpid()) + "." + std::to_string(g_tmp_counter++);
  fd_ = ::open(tmp_.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, mode);
  if (fd_ < 0) {
    fail("{}: cannot write: {} (creating a temporary file in {})", path_.string(), std::strerror(errno),
         dir.empty() ? std::string(".") : dir.string());
  }
  if (replacing) ::fchmod(fd_, st.st_mode & 07777);
}

AtomicFile::~AtomicFile() {
  if (fd_ >= 0) {
    ::close(fd_);
    ::unlink(tmp_.c_str());
  }
}

void AtomicFile::write(const void* data, size_t n) {
  TE_CHECK(fd_ >= 0, "{}: write after commit", path_.string());
  const char* p = static_cast<const char*>(data);
  while (n > 0) {
    const ssize_t w = ::write(fd_, p, n);
    if (w < 0) {
      if (errno == EINTR) continue;
      fail("{}: write failed: {}", path_.string(), std::strerror(errno));
    }
    p += w;
    n -= static_cast<size_t>(w);
  }
}

void AtomicFile::commit() {
  TE_CHECK(fd_ >= 0, "{}: already committed", path_.string());
  if (::fsync(fd_) != 0) fail("{}: fsync failed: {}", path_.string(), std::strerror(errno));
  const int fd = std::exchange(fd_, -1);
  if (::close(fd) != 0) {
    const int e = errno;
    ::unlink(tmp_.c_str());
    fail("{}: write failed: {}", path_.string(), std::strerror(e));
  }
  if (::rename(tmp_.c_str(), target_.c_str()) != 0) {
    const int e = errno;
    ::unlink(tmp_.c_str());
    fail("{}: cannot replace {}: {}", path_.string(), target_ == path_ ? std::string("it") : target_.string(),
         std::strerror(e));
  }
  // The rename itself reaches the disk with the folder (best effort: some
  // file systems refuse to fsync a folder).
  const fs::path dir = target_.parent_path().empty() ? fs::path(".") : target_.parent_path();
  const int dfd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd >= 0) {
    ::fsync(dfd);
    ::close(dfd);
  }
}

void write_file_atomic(const fs::path& path, std::string_view bytes) {
  AtomicFile f(path);
  f.write(bytes);
  f.commit();
}

void check_output_outside(const fs::path& output, const fs::path& input, std::string_view what) {
  std::error_code ec;
  // weakly_canonical follows the symbolic links of the part that exists (an
  // output folder, or the file an existing link points to).
  const fs::path out = fs::weakly_canonical(fs::absolute(output), ec);
  if (ec) return;  // nothing to compare with: the write reports its own error
  const fs::path in = fs::weakly_canonical(fs::absolute(input), ec);
  if (ec) return;
  if (fs::is_directory(in, ec)) {
    const auto [in_end, out_at] = std::mismatch(in.begin(), in.end(), out.begin(), out.end());
    (void)out_at;
    TE_CHECK(in_end != in.end(),
             "{}: is inside {} {} (a folder this command reads), so the next run would read it as input: write it "
             "elsewhere",
             output.string(), what, input.string());
  } else {
    TE_CHECK(out != in, "{}: is {} {} itself: the output would overwrite the input", output.string(), what,
             input.string());
  }
}

}  // namespace tinyemo
