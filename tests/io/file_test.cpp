// Reading only regular files (a FIFO named like an input must be refused, not
// waited on) and writing outputs safely wherever they are aimed: through
// symbolic links (the target replaced atomically, the link kept), never into
// FIFOs, devices or the standard streams, errors naming the user's path, no
// temporary file left behind on any failure.
#include <fcntl.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <chrono>
#include <functional>
#include <future>

#include "io/file.h"
#include "io/gguf.h"
#include "io/image.h"
#include "io/json.h"
#include "io/pytorch.h"
#include "io/safetensors.h"
#include "testing/testing.h"

namespace tinyemo {
namespace {

namespace fs = std::filesystem;

// Calls `read` on a FIFO; it must throw an Error naming the path and saying
// what the file is, within seconds. Should it block (waiting for a writer, as
// open(2) does on a FIFO), a writer is attached so the test ends, and fails.
void expect_fifo_refused(const fs::path& fifo, const std::function<void()>& read, const std::string& what) {
  auto done = std::async(std::launch::async, [&]() -> std::string {
    try {
      read();
      return "accepted";
    } catch (const Error& e) {
      return e.what();
    } catch (const std::exception& e) {
      return std::string("not a tinyemo::Error: ") + e.what();
    }
  });
  if (done.wait_for(std::chrono::seconds(5)) != std::future_status::ready) {
    ADD_FAILURE() << what << ": still blocked on the FIFO after 5 s";
    const int fd = ::open(fifo.c_str(), O_WRONLY | O_NONBLOCK);  // release the reader
    if (fd >= 0) ::close(fd);
  }
  const std::string msg = done.get();
  EXPECT_NE(msg.find(fifo.string()), std::string::npos) << what << ": " << msg;
  EXPECT_NE(msg.find("FIFO"), std::string::npos) << what << ": " << msg;
}

TEST(InputFiles, FifosAreRefusedByEveryReaderWithoutBlocking) {
  testing::TempDir tmp;
  const fs::path fifo = tmp / "x.png";
  ASSERT_EQ(::mkfifo(fifo.c_str(), 0644), 0);
  expect_fifo_refused(fifo, [&] { read_file(fifo); }, "read_file");
  expect_fifo_refused(fifo, [&] { MappedFile::open(fifo); }, "MappedFile");
  expect_fifo_refused(fifo, [&] { load_image(fifo); }, "load_image");
  expect_fifo_refused(fifo, [&] { SafetensorsFile::open(fifo); }, "safetensors");
  expect_fifo_refused(fifo, [&] { load_pytorch(fifo); }, "pytorch");
  expect_fifo_refused(fifo, [&] { JsonObject::load(fifo); }, "json");
  expect_fifo_refused(fifo, [&] { GgufFile::open(fifo); }, "gguf");
  EXPECT_TRUE(fs::is_fifo(fifo));
}

TEST(InputFiles, FoldersAndDevicesAreNamedForWhatTheyAre) {
  testing::TempDir tmp;
  fs::create_directories(tmp / "dir.png");
  try {
    read_file(tmp / "dir.png");
    ADD_FAILURE() << "a folder was read";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("is a folder"), std::string::npos) << e.what();
  }
  try {
    read_file("/dev/null");
    ADD_FAILURE() << "a device was read";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("character device"), std::string::npos) << e.what();
  }
  EXPECT_THROW(read_file(tmp / "missing"), Error);
  // A symbolic link to a regular file is read through.
  write_file_atomic(tmp / "real.txt", "abc");
  fs::create_symlink(tmp / "real.txt", tmp / "link.txt");
  EXPECT_EQ(read_file(tmp / "link.txt"), "abc");
}

// Every entry of `dir` whose name holds ".tmp." (AtomicFile's temporaries).
std::vector<std::string> temporaries(const fs::path& dir) {
  std::vector<std::string> out;
  for (const auto& e : fs::directory_iterator(dir)) {
    if (e.path().filename().string().find(".tmp.") != std::string::npos) out.push_back(e.path().string());
  }
  return out;
}

TEST(AtomicOutputs, ASymlinkKeepsPointingAtItsTargetWhichIsReplaced) {
  testing::TempDir tmp;
  fs::create_directories(tmp / "real");
  fs::create_directories(tmp / "links");
  write_file_atomic(tmp / "real/model.bin", "old");
  ::chmod((tmp / "real/model.bin").c_str(), 0600);
  fs::create_symlink("../real/model.bin", tmp / "links/model.bin");  // relative, as users make them
  write_file_atomic(tmp / "links/model.bin", "new contents");
  EXPECT_TRUE(fs::is_symlink(tmp / "links/model.bin"));
  EXPECT_EQ(fs::read_symlink(tmp / "links/model.bin"), fs::path("../real/model.bin"));
  EXPECT_EQ(read_file(tmp / "real/model.bin"), "new contents");
  EXPECT_EQ(fs::status(tmp / "real/model.bin").permissions() & fs::perms::all,
            fs::perms::owner_read | fs::perms::owner_write);  // permission bits kept
  EXPECT_TRUE(temporaries(tmp / "real").empty());
  EXPECT_TRUE(temporaries(tmp / "links").empty());
  // A chain of links, and a link to a file that does not exist yet (created where it points).
  fs::create_symlink(tmp / "links/model.bin", tmp / "chain.bin");
  write_file_atomic(tmp / "chain.bin", "via chain");
  EXPECT_EQ(read_file(tmp / "real/model.bin"), "via chain");
  EXPECT_TRUE(fs::is_symlink(tmp / "chain.bin"));
  fs::create_symlink(tmp / "real/new.bin", tmp / "dangling.bin");
  write_file_atomic(tmp / "dangling.bin", "created");
  EXPECT_EQ(read_file(tmp / "real/new.bin"), "created");
  EXPECT_TRUE(fs::is_symlink(tmp / "dangling.bin"));
}

void expect_output_refused(const fs::path& path, const std::string& needle) {
  try {
    write_file_atomic(path, "data");
    ADD_FAILURE() << path << " was written; expected: " << needle;
  } catch (const Error& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find(path.string()), std::string::npos) << msg;
    EXPECT_NE(msg.find(needle), std::string::npos) << msg;
    EXPECT_EQ(msg.find(".tmp."), std::string::npos) << "names the temporary file: " << msg;
  }
}

// Everything here is made inside the test's folder: a writer that regressed
// must not be able to replace the machine's /dev/null, /dev/full or
// /dev/stdout (as root it did), so devices and streams are reached through
// nodes and links made here.
TEST(AtomicOutputs, SpecialFilesAndStandardStreamsAreRefused) {
  testing::TempDir tmp;
  const fs::path fifo = tmp / "out.fifo";
  ASSERT_EQ(::mkfifo(fifo.c_str(), 0644), 0);
  expect_output_refused(fifo, "FIFO");
  EXPECT_TRUE(fs::is_fifo(fifo));  // still a FIFO, not replaced by a regular file
  fs::create_symlink(fifo, tmp / "to_fifo");
  expect_output_refused(tmp / "to_fifo", "FIFO");
  EXPECT_TRUE(fs::is_fifo(fifo));
  fs::create_directories(tmp / "folder");
  expect_output_refused(tmp / "folder", "folder");
  // A character device like /dev/full (1, 7), where the process may make one (root).
  const fs::path device = tmp / "full";
  if (::mknod(device.c_str(), S_IFCHR | 0666, makedev(1, 7)) == 0) {
    expect_output_refused(device, "character device");
    EXPECT_TRUE(fs::is_character_file(device));
  }
  // The standard streams, named through links (the writer follows them to the name it refuses).
  for (const char* stream : {"/dev/stdout", "/dev/stderr", "/dev/fd/1", "/proc/self/fd/2"}) {
    const fs::path link = tmp / ("to_" + fs::path(stream).filename().string());
    fs::remove(link);
    fs::create_symlink(stream, link);
    expect_output_refused(link, "standard stream");
    EXPECT_TRUE(fs::is_symlink(link));
  }
  EXPECT_TRUE(temporaries(tmp.path()).empty());
}

TEST(AtomicOutputs, FailuresNameTheUsersPathAndLeaveNoTemporary) {
  testing::TempDir tmp;
  // The parent "folder" is a regular file.
  write_file_atomic(tmp / "file.txt", "x");
  expect_output_refused(tmp / "file.txt/out.bin", "not a folder");
  expect_output_refused(tmp / "file.txt/sub/out.bin", "not a folder");
  // A write that fails half way (the file size limit of the process).
  struct rlimit old {};
  ::getrlimit(RLIMIT_FSIZE, &old);
  const auto old_handler = ::signal(SIGXFSZ, SIG_IGN);
  struct rlimit small = old;
  small.rlim_cur = 1000;
  ASSERT_EQ(::setrlimit(RLIMIT_FSIZE, &small), 0);
  std::string message;
  try {
    write_file_atomic(tmp / "big.bin", std::string(5000, 'b'));
  } catch (const Error& e) {
    message = e.what();
  }
  ::setrlimit(RLIMIT_FSIZE, &old);
  ::signal(SIGXFSZ, old_handler);
  EXPECT_NE(message.find((tmp / "big.bin").string()), std::string::npos) << message;
  EXPECT_NE(message.find("write failed"), std::string::npos) << message;
  EXPECT_EQ(message.find(".tmp."), std::string::npos) << message;
  EXPECT_FALSE(fs::exists(tmp / "big.bin"));
  // An abandoned writer (an exception between write and commit).
  {
    AtomicFile f(tmp / "abandoned.bin");
    f.write("partial");
  }
  EXPECT_FALSE(fs::exists(tmp / "abandoned.bin"));
  EXPECT_TRUE(temporaries(tmp.path()).empty());
}

TEST(AtomicOutputs, OutputsInsideTheirInputFolderAreRefused) {
  testing::TempDir tmp;
  fs::create_directories(tmp / "features/happy");
  fs::create_directories(tmp / "elsewhere");
  fs::create_symlink(tmp / "features", tmp / "features_link");
  auto refused = [&](const fs::path& out, const fs::path& in) {
    try {
      check_output_outside(out, in, "--features");
      return std::string();
    } catch (const Error& e) {
      return std::string(e.what());
    }
  };
  EXPECT_NE(refused(tmp / "features/happy/model.pt", tmp / "features").find("--features"), std::string::npos);
  EXPECT_NE(refused(tmp / "elsewhere/../features/m.safetensors", tmp / "features"), "");  // another spelling
  EXPECT_NE(refused(tmp / "features_link/happy/m.pt", tmp / "features"), "");           // through a link
  EXPECT_NE(refused(tmp / "features/happy/m.pt", tmp / "features_link"), "");
  EXPECT_NE(refused(tmp / "features/new/deeper/m.pt", tmp / "features"), "");           // folders not made yet
  EXPECT_EQ(refused(tmp / "elsewhere/model.safetensors", tmp / "features"), "");
  EXPECT_EQ(refused(tmp / "features2/model.safetensors", tmp / "features"), "");  // a sibling sharing a prefix
  // An input file: only the file itself is refused.
  write_file_atomic(tmp / "shard.safetensors", "x");
  EXPECT_NE(refused(tmp / "shard.safetensors", tmp / "shard.safetensors").find("overwrite"), std::string::npos);
  EXPECT_EQ(refused(tmp / "model.safetensors", tmp / "shard.safetensors"), "");
}

}  // namespace
}  // namespace tinyemo
