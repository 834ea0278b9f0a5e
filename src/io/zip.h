// Zip archives, as far as PyTorch checkpoints need them: a reader over the
// memory-mapped (or, when small, read) file (stored entries are zero-copy views, deflated ones are
// inflated with zlib; ZIP64 for archives over 4 GiB) that checks every offset
// and size against the file and refuses overlapping entries, and a writer of
// stored entries whose data starts on 64-byte boundaries (as torch.save writes).
#pragma once

#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "io/file.h"

namespace tinyemo {

struct ZipEntry {
  std::string name;
  uint16_t method = 0;            // 0 stored, 8 deflated
  uint32_t crc32 = 0;
  uint64_t header_offset = 0;     // local header
  uint64_t data_offset = 0;       // first byte of the (compressed) data
  uint64_t compressed_size = 0;
  uint64_t size = 0;              // uncompressed
};

// An entry's bytes, kept alive by `owner` (the mapping, or an inflated copy).
struct ZipBytes {
  std::shared_ptr<const void> owner;
  const uint8_t* data = nullptr;
  size_t size = 0;
  std::string_view view() const { return {reinterpret_cast<const char*>(data), size}; }
};

class ZipArchive {
 public:
  // Maps and validates the central directory and every local header; throws
  // tinyemo::Error naming the file (and the entry) on anything malformed.
  static ZipArchive open(const std::filesystem::path& path);

  const std::filesystem::path& path() const { return path_; }
  const std::vector<ZipEntry>& entries() const { return entries_; }  // central-directory order
  const ZipEntry* find(std::string_view name) const;                 // nullptr when absent
  // Stored entries are views of the mapping. The CRC check reads every byte,
  // so callers skip it for multi-gigabyte tensor data they map lazily.
  ZipBytes read(const ZipEntry& entry, bool verify_crc = true) const;

 private:
  std::filesystem::path path_;
  std::shared_ptr<const void> owner_;  // the mapping, or the whole file read into memory
  const uint8_t* data_ = nullptr;
  size_t size_ = 0;
  std::vector<ZipEntry> entries_;
  std::map<std::string, size_t, std::less<>> index_;
};

// Writes stored (uncompressed) entries through an AtomicFile. ZIP64 records are
// used where sizes/offsets need them, or everywhere with `force_zip64` (tests).
class ZipWriter {
 public:
  explicit ZipWriter(const std::filesystem::path& path, bool force_zip64 = false);
  void add(std::string_view name, const void* data, size_t size);
  void add(std::string_view name, std::string_view bytes) { add(name, bytes.data(), bytes.size()); }
  // Writes the central directory and renames the file into place.
  void commit();

 private:
  struct Record {
    std::string name;
    uint64_t offset, size;
    uint32_t crc32;
  };
  void put(std::string_view bytes);
  AtomicFile file_;
  bool force_zip64_;
  uint64_t pos_ = 0;
  std::vector<Record> records_;
};

}  // namespace tinyemo
