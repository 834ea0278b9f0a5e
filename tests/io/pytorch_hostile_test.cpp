// Hostile and broken PyTorch archives: each is refused with an error naming
// the file and what is wrong, and nothing in them runs.
#include <gtest/gtest.h>

#include <cstring>
#include <map>

#include "io/file.h"
#include "io/pytorch.h"
#include "io/zip.h"
#include "testing/testing.h"

namespace tinyemo {
namespace {

// Pickle pieces, written out opcode by opcode.
std::string u32(uint32_t v) { return std::string(reinterpret_cast<const char*>(&v), 4); }
std::string str(const std::string& s) { return "X" + u32(static_cast<uint32_t>(s.size())) + s; }
std::string integer(int64_t v) {
  if (v >= INT32_MIN && v <= INT32_MAX) return "J" + u32(static_cast<uint32_t>(v));
  return std::string("\x8a\x08", 2) + std::string(reinterpret_cast<const char*>(&v), 8);
}
std::string global(const std::string& module, const std::string& name) { return "c" + module + "\n" + name + "\n"; }
std::string int_tuple(const std::vector<int64_t>& v) {
  std::string s = "(";
  for (int64_t x : v) s += integer(x);
  return s + "t";
}
const std::string kProto("\x80\x02", 2);
std::string storage(const std::string& key, int64_t numel, const std::string& type = "FloatStorage") {
  return "(" + str("storage") + global("torch", type) + str(key) + str("cpu") + integer(numel) + "tQ";
}
std::string tensor(const std::string& storage_ref, int64_t offset, const std::vector<int64_t>& size,
                   const std::vector<int64_t>& stride) {
  return global("torch._utils", "_rebuild_tensor_v2") + "(" + storage_ref + integer(offset) + int_tuple(size) +
         int_tuple(stride) + "\x89}tR";
}

class Hostile : public ::testing::Test {
 protected:
  // An archive holding `pickle` and float storages given as key -> element count.
  std::filesystem::path archive(const std::string& name, const std::string& pickle,
                                const std::map<std::string, int>& storages = {}, const std::string& byteorder = "") {
    const auto path = tmp_ / name;
    ZipWriter zip(path);
    zip.add("archive/data.pkl", pickle);
    if (!byteorder.empty()) zip.add("archive/byteorder", byteorder);
    for (const auto& [key, n] : storages) zip.add("archive/data/" + key, std::string(4 * n, '\0'));
    zip.add("archive/version", "3\n");
    zip.commit();
    return path;
  }
  std::filesystem::path file(const std::string& name, const std::string& bytes) {
    write_file_atomic(tmp_ / name, bytes);
    return tmp_ / name;
  }
  static void expect_refused(const std::filesystem::path& path, const std::string& needle) {
    try {
      load_pytorch(path);
      ADD_FAILURE() << path << " was accepted; expected an error about: " << needle;
    } catch (const Error& e) {
      const std::string msg = e.what();
      EXPECT_NE(msg.find(path.string()), std::string::npos) << "error does not name the file: " << msg;
      EXPECT_NE(msg.find(needle), std::string::npos) << "error does not mention '" << needle << "': " << msg;
    }
  }
  testing::TempDir tmp_;
};

TEST_F(Hostile, SharedFixturesAreRefusedAndNothingRuns) {
  const std::filesystem::path pwned = "/tmp/tinyemo_pwned";  // what os_system.pt would `touch`
  const bool existed = std::filesystem::exists(pwned);
  expect_refused(testing::fixture("hostile/os_system.pt"), "global 'posix.system' is not allowed");
  EXPECT_EQ(std::filesystem::exists(pwned), existed);
  expect_refused(testing::fixture("hostile/truncated.bin"), "truncated");
}

TEST_F(Hostile, DisallowedGlobalsAndOpcodes) {
  expect_refused(archive("eval.pt", kProto + global("builtins", "eval") + str("1") + "\x85R."), "'builtins.eval'");
  expect_refused(archive("stack_global.pt", std::string("\x80\x04\x8c\x02os\x8c\x06system\x93.", 15)), "'os.system'");
  expect_refused(archive("numpy.pt", kProto + global("numpy.core.multiarray", "_reconstruct") + "."),
                 "numpy.core.multiarray._reconstruct");
  expect_refused(archive("inst.pt", kProto + "(ios\nsystem\n."), "INST (0x69)");
  expect_refused(archive("unknown.pt", kProto + "\xff."), "unknown opcode 0xff");
  expect_refused(archive("newobj.pt", kProto + global("collections", "OrderedDict") + ")\x81."), "NEWOBJ");
  expect_refused(archive("protocol.pt", std::string("\x80\x01N.", 4)), "protocol 1");
  expect_refused(archive("call_storage.pt", kProto + global("torch", "FloatStorage") + ")R."), "cannot be called");
  expect_refused(archive("call_list.pt", kProto + "])R."), "REDUCE calls a list");
  expect_refused(archive("bare_global.pt", kProto + global("collections", "OrderedDict") + "."),
                 "neither a tensor nor a plain value");
  expect_refused(archive("complex.pt", kProto + global("torch", "ComplexFloatStorage") + "."),
                 "torch.ComplexFloatStorage");
  expect_refused(archive("build_list.pt", kProto + "]}b."), "BUILD target must be a dict");
  expect_refused(archive("from_type.pt", kProto + global("torch._tensor", "_rebuild_from_type_v2") + "(" +
                                             global("collections", "OrderedDict") + global("torch", "Tensor") +
                                             ")}tR."),
                 "does not rebuild a tensor");
}

TEST_F(Hostile, MalformedPickles) {
  expect_refused(archive("memo.pt", kProto + "h\x05."), "memo entry 5 is read before it is written");
  expect_refused(archive("underflow.pt", kProto + "R."), "stack underflow in REDUCE");
  expect_refused(archive("under_mark.pt", kProto + "N(a."), "stack underflow in APPEND");
  expect_refused(archive("no_mark.pt", kProto + "Nt."), "TUPLE (0x74) without a MARK");
  expect_refused(archive("no_stop.pt", kProto + "]"), "truncated");
  expect_refused(archive("empty_stop.pt", kProto + "."), "stack underflow in STOP");
  expect_refused(archive("huge_str.pt", kProto + "X\xff\xff\xff\xff" + "abc."), "needs 4294967295 bytes");
  expect_refused(archive("huge_str8.pt", kProto + "\x8d" + std::string(7, '\xff') + "\x7f" + "abc."),
                 "needs 9223372036854775807 bytes");
  expect_refused(archive("long.pt", kProto + "\x8a\x09" + std::string(9, '\x01') + "."), "integer of 9 bytes");
  expect_refused(archive("global_eol.pt", kProto + "cos" + std::string(300, 'x')), "GLOBAL name is unterminated");
  expect_refused(archive("odd_setitems.pt", kProto + "}(Nu."), "SETITEMS with an odd number");
  expect_refused(archive("append_dict.pt", kProto + "}Na."), "APPEND target must be a list");
  // Nesting deeper than any checkpoint, a list holding itself, and shared references doubling 64 times.
  std::string deep = kProto;
  deep.append(100000, ']').append(99999, 'a').append(".");
  expect_refused(archive("deep.pt", deep), "nested more than");
  expect_refused(archive("cycle.pt", kProto + std::string("]q\0h\0a.", 7)), "self-referential");
  std::string laughs = kProto + std::string("]q\0", 3);
  for (char k = 0; k < 64; ++k) laughs.append({'h', k, 'h', k, '\x86', 'q', static_cast<char>(k + 1)});
  expect_refused(archive("laughs.pt", laughs + "."), "expands to more than");
}

TEST_F(Hostile, StorageReferencesAreChecked) {
  const auto one = [](const std::string& t) { return kProto + t + "."; };
  expect_refused(archive("key.pt", one(tensor(storage("7", 2), 0, {2}, {1})), {{"0", 2}}),
                 "no entry 'archive/data/7'");
  expect_refused(archive("size.pt", one(tensor(storage("0", 3), 0, {3}, {1})), {{"0", 2}}),
                 "holds 8 bytes, not the 3 f32 elements");
  expect_refused(archive("offset.pt", one(tensor(storage("0", 4), 2, {3}, {1})), {{"0", 4}}), "reaches past");
  expect_refused(archive("stride.pt", one(tensor(storage("0", 4), 0, {2, 2}, {3, 1})), {{"0", 4}}),
                 "reaches past the 4 elements of storage '0'");
  expect_refused(archive("numel.pt", one(tensor(storage("0", 4), 0, {int64_t{1} << 40, int64_t{1} << 40}, {1, 1})),
                         {{"0", 4}}),
                 "too many elements");
  expect_refused(archive("extent.pt", one(tensor(storage("0", 4), 0, {2, 2}, {int64_t{1} << 62, 1})), {{"0", 4}}),
                 "reaches past");
  expect_refused(archive("negative.pt", one(tensor(storage("0", 4), -1, {2}, {1})), {{"0", 4}}),
                 "negative storage offset");
  expect_refused(archive("negative_size.pt", one(storage("0", -4))), "negative size");
  expect_refused(archive("pid.pt", one("(" + str("storage") + "tQ")), "not a torch storage reference");
  expect_refused(archive("pid_type.pt", one("(" + str("storage") + "N" + str("0") + str("cpu") + integer(1) + "tQ")),
                 "storage type must be");
  expect_refused(archive("retype.pt", one("(" + tensor(storage("0", 4), 0, {4}, {1}) +
                                          tensor(storage("0", 2, "DoubleStorage"), 0, {2}, {1}) + "t"),
                         {{"0", 4}}),
                 "storage '0' is referenced as 4 f32 and as 2 f64");
  expect_refused(archive("big_endian.pt", one(tensor(storage("0", 1), 0, {1}, {1})), {{"0", 1}}, "big"),
                 "stored big-endian");
  // A copy of a 1-element storage expanded to 2^40 elements would exhaust memory.
  expect_refused(archive("expand.pt", one(tensor(storage("0", 1), 0, {int64_t{1} << 20, int64_t{1} << 20}, {0, 0})),
                         {{"0", 1}}),
                 "copying non-contiguous tensors");
}

TEST_F(Hostile, BrokenArchives) {
  expect_refused(file("empty.pt", ""), "not a zip archive");
  expect_refused(file("text.pt", std::string(100, 'x')), "no end-of-central-directory record");
  expect_refused(file("legacy.pt", std::string("\x80\x02\x8a\x0a\x6c\xfc\x9c\x46\xf9\x20\x6a\xa8\x50\x19\x2e", 15)),
                 "legacy (PyTorch < 1.6)");
  {
    ZipWriter zip(tmp_ / "no_pickle.pt");
    zip.add("archive/version", "3\n");
    zip.commit();
    expect_refused(tmp_ / "no_pickle.pt", "no <folder>/data.pkl");
  }
  {
    ZipWriter zip(tmp_ / "two.pt");
    zip.add("a/data.pkl", kProto + "N.");
    zip.add("b/data.pkl", kProto + "N.");
    zip.commit();
    expect_refused(tmp_ / "two.pt", "two pickles");
  }
  {
    ZipWriter zip(tmp_ / "twice.pt");
    zip.add("archive/data.pkl", kProto + "N.");
    zip.add("archive/data.pkl", kProto + "N.");
    zip.commit();
    expect_refused(tmp_ / "twice.pt", "'archive/data.pkl' appears twice");
  }

  // Byte patches of a valid archive (data.pkl is its first entry).
  const std::string valid = read_file(archive("valid.pt", kProto + tensor(storage("0", 2), 0, {2}, {1}) + ".", {{"0", 2}}));
  const size_t central = valid.find("PK\x01\x02");  // data.pkl's central directory record
  const size_t eocd = valid.rfind("PK\x05\x06");
  const auto patched = [&](const std::string& name, size_t at, const std::string& bytes) {
    std::string b = valid;
    b.replace(at, bytes.size(), bytes);
    return file(name, b);
  };
  const auto u16 = [](uint16_t v) { return std::string(reinterpret_cast<const char*>(&v), 2); };
  const uint32_t pickle_size = static_cast<uint32_t>(ZipArchive::open(tmp_ / "valid.pt").entries()[0].size);
  expect_refused(patched("overlap.pt", central + 20, u32(pickle_size + 8) + u32(pickle_size + 8)),
                 "entries 'archive/data.pkl' and 'archive/data/0' overlap");
  expect_refused(patched("past_end.pt", central + 20, u32(0x7fffffff) + u32(0x7fffffff)), "run past");
  expect_refused(patched("encrypted.pt", central + 8, u16(1)), "is encrypted");
  expect_refused(patched("bzip2.pt", central + 10, u16(12)), "compression method 12");
  expect_refused(patched("sizes.pt", central + 20, u32(1)), "stored but its sizes differ");
  expect_refused(patched("header.pt", central + 42, u32(7)), "local header at offset 7");
  expect_refused(patched("rename.pt", 30, "b"), "local header names a different file");
  expect_refused(patched("crc.pt", central + 16, u32(0)), "CRC-32 mismatch");
  expect_refused(patched("count.pt", eocd + 10, u16(500)), "cannot hold 500 entries");
  expect_refused(patched("cd_offset.pt", eocd + 16, u32(0x7ffffff0)), "central directory");
  expect_refused(patched("multi_disk.pt", eocd + 4, u16(1)), "multi-volume");
  for (size_t cut = 0; cut < valid.size(); cut += 13) {  // every truncation is refused cleanly
    EXPECT_THROW(load_pytorch(file("cut.pt", valid.substr(0, cut))), Error) << cut;
  }

  // A deflated entry that claims an impossible size, and one whose data is corrupt.
  const std::string deflated = read_file(testing::source_dir() / "tests/data/pytorch/deflated.pt");
  const size_t deflated_central = deflated.find("PK\x01\x02");
  std::string bomb = deflated;
  bomb.replace(deflated_central + 24, 4, u32(0x7fffffff));
  expect_refused(file("bomb.pt", bomb), "impossible for deflate");
  std::string corrupt = deflated;
  const size_t data = ZipArchive::open(testing::source_dir() / "tests/data/pytorch/deflated.pt").entries()[0].data_offset;
  for (size_t k = 0; k < 16; ++k) corrupt[data + k] = '\xff';
  expect_refused(file("corrupt.pt", corrupt), "is corrupt");
}

}  // namespace
}  // namespace tinyemo
