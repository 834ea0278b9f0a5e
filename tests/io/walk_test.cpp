// The one folder walk every reader of input folders uses (io/walk.h): links
// followed once, loops and dangling links reported, special files never
// opened, folders named like files treated as folders, and a report of
// everything passed over.
#include "io/walk.h"

#include <sys/stat.h>

#include <gtest/gtest.h>

#include <algorithm>

#include "core/error.h"
#include "io/file.h"
#include "testing/testing.h"

namespace tinyemo {
namespace {

namespace fs = std::filesystem;

std::vector<std::string> relative(const std::vector<fs::path>& paths, const fs::path& root) {
  std::vector<std::string> out;
  for (const auto& p : paths) out.push_back(p.lexically_relative(root).generic_string());
  return out;
}

// The reason given for `name` (relative to root), or "" when it was not skipped.
std::string reason_for(const WalkResult& r, const fs::path& root, const std::string& name) {
  for (const auto& s : r.skipped) {
    if (s.path.lexically_relative(root).generic_string() == name) return s.reason;
  }
  return "";
}

bool is_png(const fs::path& p) { return p.extension() == ".png"; }

TEST(Walk, EveryKindOfEntryIsReadOnceOrReported) {
  testing::TempDir tmp;
  const fs::path root = tmp / "images", outside = tmp / "outside";
  fs::create_directories(root / "a");
  fs::create_directories(root / "dir.png");
  fs::create_directories(root / ".hidden");
  fs::create_directories(root / "c");
  fs::create_directories(outside / "b");
  write_file_atomic(root / "a/x.png", "x");
  write_file_atomic(root / "dir.png/z.png", "z");
  write_file_atomic(root / ".hidden/h.png", "h");
  write_file_atomic(root / "c/notes.txt", "n");
  write_file_atomic(outside / "b/y.png", "y");
  fs::create_directory_symlink(outside / "b", root / "b");  // a symlinked label folder: followed
  fs::create_directory_symlink(root, root / "a/loop");      // back to an enclosing folder
  fs::create_directory_symlink(root / "a", root / "d");     // the same folder a second time
  fs::create_symlink(root / "missing.png", root / "c/dangling.png");
  ASSERT_EQ(::mkfifo((root / "c/fifo.png").c_str(), 0644), 0);
  ASSERT_EQ(::mkfifo((root / "c/pipe.txt").c_str(), 0644), 0);

  const WalkResult r = walk_folder(root, {.max_depth = -1, .wanted = is_png});
  EXPECT_EQ(relative(r.files, root), (std::vector<std::string>{"a/x.png", "b/y.png", "dir.png/z.png"}));
  EXPECT_EQ(relative(r.folders, root), (std::vector<std::string>{"a", "b", "c", "dir.png"}));
  EXPECT_NE(reason_for(r, root, "a/loop").find("loop"), std::string::npos);
  EXPECT_NE(reason_for(r, root, "d").find("same folder"), std::string::npos);
  EXPECT_NE(reason_for(r, root, "c/dangling.png").find("missing target"), std::string::npos);
  EXPECT_NE(reason_for(r, root, "c/fifo.png").find("FIFO"), std::string::npos);
  EXPECT_EQ(r.skipped.size(), 4u);
  EXPECT_EQ(r.ignored, 2);  // notes.txt and the FIFO not named like an input
  for (const auto& s : r.skipped) EXPECT_NE(s.message().find(s.path.string()), std::string::npos);

  // The <label>/<file> layout: files one level down only; deeper folders reported.
  const WalkResult one = walk_folder(root, {.max_depth = 1, .wanted = is_png});
  EXPECT_EQ(relative(one.files, root), (std::vector<std::string>{"a/x.png", "b/y.png", "dir.png/z.png"}));
  EXPECT_NE(reason_for(one, root, "a/loop").find("below the levels"), std::string::npos);
  const WalkResult top = walk_folder(root, {.max_depth = 0, .wanted = is_png});
  EXPECT_TRUE(top.files.empty());
  EXPECT_NE(reason_for(top, root, "dir.png").find("folder named like an input file"), std::string::npos);
}

TEST(Walk, TheRootMustBeAFolder) {
  testing::TempDir tmp;
  write_file_atomic(tmp / "f.txt", "x");
  EXPECT_THROW(walk_folder(tmp / "f.txt"), Error);
  EXPECT_THROW(walk_folder(tmp / "missing"), Error);
  fs::create_directory_symlink(tmp.path(), tmp / "link");
  EXPECT_EQ(walk_folder(tmp / "link").files.size(), 1u);  // a linked root is followed
}

}  // namespace
}  // namespace tinyemo
