// Walking input folders, one way everywhere (`features` over image folders,
// the projector's <label>/<name>.pt feature folders): the same rules for
// symbolic links, special files and folders named like files, and a list of
// everything that was passed over and why, so that callers count and report
// it instead of silently reading less than the user gave them.
//
// The rules:
//  - entries whose name starts with '.' (hidden) are not walked nor reported;
//  - symbolic links are followed, to files and to folders; a link whose
//    target is missing, and a link that leads back into a folder being walked
//    (a loop), are skipped and reported; a folder reached a second time
//    through another link is walked once (and the repeat reported), so the
//    work stays bounded by what is on disk;
//  - FIFOs, sockets and devices are never opened: reported when their name is
//    one the caller wants (a FIFO named x.png), else counted as ignored;
//  - a folder is a folder whatever its name (a folder named x.png is walked,
//    or, below the deepest level the caller reads, reported);
//  - a folder that cannot be listed (permissions) is reported.
// Files come out in a deterministic order: depth first, names sorted by bytes
// within each folder.
#pragma once

#include <cstdint>
#include <filesystem>
#include <functional>
#include <string>
#include <vector>

namespace tinyemo {

struct WalkOptions {
  // Deepest level of files read: 0 = files directly in the root, 1 = files in
  // the root's folders (<label>/<file>), -1 = any depth.
  int max_depth = -1;
  // Files the caller reads, by path (e.g. by extension); other regular files
  // are counted in `ignored`. Null: every regular file.
  std::function<bool(const std::filesystem::path&)> wanted;
};

struct WalkSkip {
  std::filesystem::path path;
  std::string reason;  // "a FIFO (named pipe), not a regular file", ...
  std::string message() const { return path.string() + ": " + reason; }
};

struct WalkResult {
  std::vector<std::filesystem::path> files;    // root / relative path (links not resolved)
  std::vector<std::filesystem::path> folders;  // every folder walked below the root, same form
  std::vector<WalkSkip> skipped;               // passed over, with why
  int64_t ignored = 0;                         // regular files (and special files) not wanted
};

// Throws tinyemo::Error when `root` is not a folder (or cannot be listed).
WalkResult walk_folder(const std::filesystem::path& root, const WalkOptions& options = {});

}  // namespace tinyemo
