#include "io/walk.h"

#include <sys/stat.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <map>
#include <utility>

#include "core/error.h"
#include "io/file.h"

namespace tinyemo {

namespace fs = std::filesystem;

namespace {

using FolderId = std::pair<dev_t, ino_t>;

class Walker {
 public:
  Walker(const WalkOptions& options, WalkResult& out) : o_(options), out_(out) {}

  void folder(const fs::path& dir, const FolderId& id, int depth) {
    walked_.emplace(id, dir);
    ancestors_.push_back(id);
    std::vector<std::string> names;
    std::error_code ec;
    for (fs::directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec)) {
      std::string name = it->path().filename().string();
      if (!name.empty() && name[0] != '.') names.push_back(std::move(name));
    }
    if (ec) {
      if (depth == 0) fail("{}: cannot list: {}", dir.string(), ec.message());
      skip(dir, "cannot list the folder: " + ec.message());
      names.clear();
    }
    std::sort(names.begin(), names.end());
    for (const std::string& name : names) entry(dir / name, depth);
    ancestors_.pop_back();
  }

 private:
  void entry(const fs::path& p, int depth) {
    struct stat st {};
    if (::lstat(p.c_str(), &st) != 0) {
      skip(p, std::string("cannot inspect: ") + std::strerror(errno));  // removed while walking
      return;
    }
    const bool link = S_ISLNK(st.st_mode);
    if (link && ::stat(p.c_str(), &st) != 0) {
      const int e = errno;
      skip(p, e == ELOOP    ? "a symbolic link loop"
              : e == ENOENT ? "a symbolic link to a missing target"
                            : std::string("a symbolic link that cannot be followed: ") + std::strerror(e));
      return;
    }
    const bool wanted = !o_.wanted || o_.wanted(p);
    if (S_ISDIR(st.st_mode)) {
      if (o_.max_depth >= 0 && depth + 1 > o_.max_depth) {
        skip(p, wanted ? "a folder named like an input file" : "a folder below the levels that are read");
        return;
      }
      const FolderId id{st.st_dev, st.st_ino};
      if (std::find(ancestors_.begin(), ancestors_.end(), id) != ancestors_.end()) {
        skip(p, "a link back to a folder that contains it (a loop)");
        return;
      }
      if (const auto seen = walked_.find(id); seen != walked_.end()) {
        skip(p, "the same folder as " + seen->second.string() + ", already read");
        return;
      }
      out_.folders.push_back(p);
      folder(p, id, depth + 1);
      return;
    }
    if (S_ISREG(st.st_mode)) {
      if (wanted) {
        out_.files.push_back(p);
      } else {
        ++out_.ignored;
      }
      return;
    }
    if (wanted) {
      skip(p, std::string(file_kind_name(st.st_mode)) + ", not a regular file");
    } else {
      ++out_.ignored;
    }
  }

  void skip(const fs::path& p, std::string reason) { out_.skipped.push_back({p, std::move(reason)}); }

  const WalkOptions& o_;
  WalkResult& out_;
  std::vector<FolderId> ancestors_;
  std::map<FolderId, fs::path> walked_;
};

}  // namespace

WalkResult walk_folder(const fs::path& root, const WalkOptions& options) {
  struct stat st {};
  if (::stat(root.c_str(), &st) != 0) fail("{}: cannot open the folder: {}", root.string(), std::strerror(errno));
  TE_CHECK(S_ISDIR(st.st_mode), "{}: is {}, not a folder", root.string(), file_kind_name(st.st_mode));
  WalkResult out;
  Walker(options, out).folder(root, {st.st_dev, st.st_ino}, 0);
  return out;
}

}  // namespace tinyemo
