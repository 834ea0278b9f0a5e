#include "io/zip.h"

#include <zlib.h>

#include <algorithm>
#include <bit>
#include <cstdlib>
#include <cstring>

#include "core/error.h"

namespace tinyemo {

static_assert(std::endian::native == std::endian::little, "the zip reader/writer assume a little-endian host");

namespace {

constexpr uint32_t kLocalSig = 0x04034b50, kCentralSig = 0x02014b50, kEndSig = 0x06054b50;
constexpr uint32_t kZip64EndSig = 0x06064b50, kZip64LocatorSig = 0x07064b50;
constexpr size_t kLocalSize = 30, kCentralSize = 46, kEndSize = 22, kZip64EndSize = 56, kZip64LocatorSize = 20;
constexpr uint16_t kZip64ExtraId = 0x0001, kPaddingExtraId = 0x4246;  // "FB": PyTorch's alignment padding
constexpr uint32_t kMax32 = 0xffffffffu;
constexpr uint16_t kMax16 = 0xffff;
constexpr uint64_t kDataAlignment = 64;
constexpr uint64_t kReadWholeBelow = uint64_t{1} << 20;  // smaller files are read, larger ones mapped
// Deflate cannot expand data by more than ~1032x; a larger claimed ratio is a lie.
constexpr uint64_t kMaxDeflateRatio = 1032;
// A torch.save archive written before PyTorch 1.6: a bare pickle starting with its magic number.
constexpr std::string_view kLegacyTorchMagic("\x80\x02\x8a\x0a\x6c\xfc\x9c\x46\xf9\x20\x6a\xa8\x50\x19", 14);

template <class T>
T load(const uint8_t* p) {
  T v;
  std::memcpy(&v, p, sizeof v);
  return v;
}

template <class T>
void store(std::string& out, T v) {
  out.append(reinterpret_cast<const char*>(&v), sizeof v);
}

uint32_t crc32_of(const void* data, size_t n) {
  return static_cast<uint32_t>(::crc32_z(0, static_cast<const Bytef*>(data), n));
}

}  // namespace

ZipArchive ZipArchive::open(const std::filesystem::path& path) {
  ZipArchive z;
  z.path_ = path;
  const std::string where = path.string();
  // Unmapping costs a TLB shootdown (0.4-1 ms here, 10x a read), and TinyEmo's
  // feature folders hold thousands of 2 KB archives: small files are read.
  const InputFile in = InputFile::open(path);  // regular files only: a FIFO or device is refused by name
  if (in.size() < kReadWholeBelow) {
    const uint64_t file_size = in.size();
    std::shared_ptr<uint8_t> buffer(static_cast<uint8_t*>(std::aligned_alloc(64, (file_size / 64 + 1) * 64)), std::free);
    TE_CHECK(buffer != nullptr, "{}: out of memory reading {} bytes", where, file_size);
    in.read_at(0, buffer.get(), static_cast<size_t>(file_size));
    z.data_ = buffer.get();
    z.owner_ = std::move(buffer);
    z.size_ = file_size;
  } else {
    auto file = MappedFile::open(path);
    z.data_ = file->data();
    z.size_ = file->size();
    z.owner_ = std::move(file);
  }
  const uint8_t* d = z.data_;
  const uint64_t size = z.size_;
  const std::string_view head(reinterpret_cast<const char*>(d), std::min<uint64_t>(size, kLegacyTorchMagic.size()));
  TE_CHECK(head != kLegacyTorchMagic,
           "{}: legacy (PyTorch < 1.6) torch.save format, which is not supported: re-save it with a newer torch",
           where);

  // End of central directory record: the last record, followed only by its comment.
  TE_CHECK(size >= kEndSize, "{}: not a zip archive ({} bytes)", where, size);
  uint64_t end = size;
  const uint64_t lowest = size - kEndSize > kMax16 ? size - kEndSize - kMax16 : 0;
  for (uint64_t p = size - kEndSize + 1; p-- > lowest;) {
    if (load<uint32_t>(d + p) == kEndSig && p + kEndSize + load<uint16_t>(d + p + 20) == size) {
      end = p;
      break;
    }
  }
  TE_CHECK(end != size, "{}: not a zip archive, or truncated: no end-of-central-directory record", where);
  TE_CHECK(load<uint16_t>(d + end + 4) == 0 && load<uint16_t>(d + end + 6) == 0,
           "{}: multi-volume zip archives are not supported", where);
  uint64_t count = load<uint16_t>(d + end + 10), cd_size = load<uint32_t>(d + end + 12),
           cd_offset = load<uint32_t>(d + end + 16);
  uint64_t cd_limit = end;  // the central directory ends before this
  if (end >= kZip64LocatorSize && load<uint32_t>(d + end - kZip64LocatorSize) == kZip64LocatorSig) {
    const uint64_t locator = end - kZip64LocatorSize;
    const uint64_t record = load<uint64_t>(d + locator + 8);
    TE_CHECK(record <= locator && locator - record >= kZip64EndSize && load<uint32_t>(d + record) == kZip64EndSig,
             "{}: ZIP64 end-of-central-directory record is missing or out of bounds", where);
    TE_CHECK(load<uint32_t>(d + record + 16) == 0 && load<uint32_t>(d + record + 20) == 0,
             "{}: multi-volume zip archives are not supported", where);
    count = load<uint64_t>(d + record + 32);
    cd_size = load<uint64_t>(d + record + 40);
    cd_offset = load<uint64_t>(d + record + 48);
    cd_limit = record;
  } else {
    TE_CHECK(count != kMax16 && cd_size != kMax32 && cd_offset != kMax32,
             "{}: ZIP64 sizes without a ZIP64 end-of-central-directory record", where);
  }
  TE_CHECK(cd_offset <= cd_limit && cd_size <= cd_limit - cd_offset,
           "{}: central directory (offset {}, {} bytes) lies outside the file", where, cd_offset, cd_size);
  TE_CHECK(count <= cd_size / kCentralSize, "{}: central directory of {} bytes cannot hold {} entries", where,
           cd_size, count);

  const uint64_t cd_end = cd_offset + cd_size;
  uint64_t p = cd_offset;
  z.entries_.reserve(count);
  for (uint64_t i = 0; i < count; ++i) {
    TE_CHECK(cd_end - p >= kCentralSize && load<uint32_t>(d + p) == kCentralSig,
             "{}: central directory entry {} is malformed", where, i);
    const uint16_t flags = load<uint16_t>(d + p + 8);
    const uint64_t name_len = load<uint16_t>(d + p + 28), extra_len = load<uint16_t>(d + p + 30),
                   comment_len = load<uint16_t>(d + p + 32);
    TE_CHECK(cd_end - p - kCentralSize >= name_len + extra_len + comment_len,
             "{}: central directory entry {} runs past the directory", where, i);
    ZipEntry e;
    e.name.assign(reinterpret_cast<const char*>(d + p + kCentralSize), name_len);
    e.method = load<uint16_t>(d + p + 10);
    e.crc32 = load<uint32_t>(d + p + 16);
    e.compressed_size = load<uint32_t>(d + p + 20);
    e.size = load<uint32_t>(d + p + 24);
    e.header_offset = load<uint32_t>(d + p + 42);
    // ZIP64 extra field: 8-byte values for exactly the fields saturated at 0xffffffff, in this order.
    const uint8_t* x = d + p + kCentralSize + name_len;
    for (uint64_t off = 0; off + 4 <= extra_len;) {
      const uint16_t id = load<uint16_t>(x + off), len = load<uint16_t>(x + off + 2);
      TE_CHECK(off + 4 + len <= extra_len, "{}: entry '{}': extra field runs past its end", where, e.name);
      if (id == kZip64ExtraId) {
        uint64_t q = off + 4;
        for (uint64_t* field : {&e.size, &e.compressed_size, &e.header_offset}) {
          if (*field != kMax32) continue;
          TE_CHECK(q + 8 <= off + 4 + len, "{}: entry '{}': ZIP64 extra field is too short", where, e.name);
          *field = load<uint64_t>(x + q);
          q += 8;
        }
      }
      off += 4 + len;
    }
    p += kCentralSize + name_len + extra_len + comment_len;

    TE_CHECK((flags & 1) == 0, "{}: entry '{}' is encrypted", where, e.name);
    TE_CHECK(e.method == 0 || e.method == 8,
             "{}: entry '{}' uses compression method {} (only stored and deflated are supported)", where, e.name,
             e.method);
    TE_CHECK(e.method != 0 || e.compressed_size == e.size,
             "{}: entry '{}' is stored but its sizes differ ({} vs {})", where, e.name, e.compressed_size, e.size);
    // Entries live before the central directory; sizes in the local header may be
    // zero (streamed with a data descriptor), so the central directory's are used.
    const uint64_t h = e.header_offset;
    TE_CHECK(h <= cd_offset && cd_offset - h >= kLocalSize && load<uint32_t>(d + h) == kLocalSig,
             "{}: entry '{}': local header at offset {} is missing or out of bounds", where, e.name, h);
    const uint64_t local_name_len = load<uint16_t>(d + h + 26), local_extra_len = load<uint16_t>(d + h + 28);
    e.data_offset = h + kLocalSize + local_name_len + local_extra_len;
    TE_CHECK(e.data_offset <= cd_offset && e.compressed_size <= cd_offset - e.data_offset,
             "{}: entry '{}': {} bytes at offset {} run past the entries' end (offset {})", where, e.name,
             e.compressed_size, e.data_offset, cd_offset);
    TE_CHECK(std::string_view(reinterpret_cast<const char*>(d + h + kLocalSize), local_name_len) == e.name,
             "{}: entry '{}': local header names a different file", where, e.name);
    TE_CHECK(load<uint16_t>(d + h + 8) == e.method, "{}: entry '{}': local header disagrees on the compression",
             where, e.name);
    TE_CHECK(z.index_.emplace(e.name, z.entries_.size()).second, "{}: entry '{}' appears twice", where, e.name);
    z.entries_.push_back(std::move(e));
  }

  // No two entries may share bytes (a classic trick to hide data or build zip bombs).
  std::vector<const ZipEntry*> by_offset;
  for (const ZipEntry& e : z.entries_) by_offset.push_back(&e);
  std::sort(by_offset.begin(), by_offset.end(),
            [](const ZipEntry* a, const ZipEntry* b) { return a->header_offset < b->header_offset; });
  for (size_t i = 1; i < by_offset.size(); ++i) {
    const ZipEntry& prev = *by_offset[i - 1];
    TE_CHECK(by_offset[i]->header_offset >= prev.data_offset + prev.compressed_size,
             "{}: entries '{}' and '{}' overlap", where, prev.name, by_offset[i]->name);
  }
  return z;
}

const ZipEntry* ZipArchive::find(std::string_view name) const {
  const auto it = index_.find(name);
  return it == index_.end() ? nullptr : &entries_[it->second];
}

ZipBytes ZipArchive::read(const ZipEntry& e, bool verify_crc) const {
  const std::string where = path().string();
  const uint8_t* src = data_ + e.data_offset;
  ZipBytes out{owner_, src, static_cast<size_t>(e.size)};
  if (e.method == 8) {
    TE_CHECK(e.size <= kMaxDeflateRatio * e.compressed_size + 64,
             "{}: entry '{}' claims to inflate {} bytes to {} (impossible for deflate)", where, e.name,
             e.compressed_size, e.size);
    std::shared_ptr<uint8_t[]> buffer(new uint8_t[e.size]);
    z_stream zs{};
    TE_CHECK(inflateInit2(&zs, -MAX_WBITS) == Z_OK, "{}: entry '{}': cannot start zlib", where, e.name);
    // zlib counts in 32-bit units: feed and drain in chunks.
    constexpr uint64_t kChunk = 1u << 30;
    uint64_t in_left = e.compressed_size, out_left = e.size;
    int rc = Z_OK;
    zs.next_in = const_cast<Bytef*>(src);
    zs.next_out = buffer.get();
    while (rc == Z_OK) {
      if (zs.avail_in == 0 && in_left > 0) {
        zs.avail_in = static_cast<uInt>(std::min(in_left, kChunk));
        in_left -= zs.avail_in;
      }
      if (zs.avail_out == 0 && out_left > 0) {
        zs.avail_out = static_cast<uInt>(std::min(out_left, kChunk));
        out_left -= zs.avail_out;
      }
      rc = inflate(&zs, Z_NO_FLUSH);
      if (rc == Z_BUF_ERROR && zs.avail_in == 0 && in_left == 0) break;  // input exhausted early
      if (rc == Z_BUF_ERROR && zs.avail_out == 0 && out_left == 0) break;  // output longer than declared
    }
    const uint64_t produced = zs.total_out;
    inflateEnd(&zs);
    TE_CHECK(rc == Z_STREAM_END && produced == e.size,
             "{}: entry '{}' is corrupt: inflating gave {} of the {} declared bytes ({})", where, e.name, produced,
             e.size, rc == Z_DATA_ERROR ? "invalid deflate data" : rc == Z_STREAM_END ? "size mismatch" : "truncated");
    out = ZipBytes{buffer, buffer.get(), static_cast<size_t>(e.size)};
  }
  if (verify_crc) {
    TE_CHECK(crc32_of(out.data, out.size) == e.crc32, "{}: entry '{}' is corrupt (CRC-32 mismatch)", where,
             e.name);
  }
  return out;
}

ZipWriter::ZipWriter(const std::filesystem::path& path, bool force_zip64) : file_(path), force_zip64_(force_zip64) {}

void ZipWriter::put(std::string_view bytes) {
  file_.write(bytes);
  pos_ += bytes.size();
}

void ZipWriter::add(std::string_view name, const void* data, size_t size) {
  TE_CHECK(name.size() < kMax16, "zip entry name is too long ({} bytes)", name.size());
  const bool zip64 = force_zip64_ || size >= kMax32;
  const Record r{std::string(name), pos_, size, crc32_of(data, size)};
  std::string extra;
  if (zip64) {
    store<uint16_t>(extra, kZip64ExtraId);
    store<uint16_t>(extra, 16);
    store<uint64_t>(extra, size);
    store<uint64_t>(extra, size);
  }
  // Pad with an extra field so the data starts on a 64-byte boundary (tensors map aligned).
  const uint64_t unpadded = pos_ + kLocalSize + name.size() + extra.size() + 4;
  const uint16_t padding = static_cast<uint16_t>((kDataAlignment - unpadded % kDataAlignment) % kDataAlignment);
  store<uint16_t>(extra, kPaddingExtraId);
  store<uint16_t>(extra, padding);
  extra.append(padding, 'Z');

  std::string h;
  store<uint32_t>(h, kLocalSig);
  store<uint16_t>(h, zip64 ? 45 : 20);  // version needed
  store<uint16_t>(h, 0x0800);           // UTF-8 names
  store<uint16_t>(h, 0);                // stored
  store<uint32_t>(h, 0);                // DOS time and date
  store<uint32_t>(h, r.crc32);
  store<uint32_t>(h, zip64 ? kMax32 : static_cast<uint32_t>(size));
  store<uint32_t>(h, zip64 ? kMax32 : static_cast<uint32_t>(size));
  store<uint16_t>(h, static_cast<uint16_t>(name.size()));
  store<uint16_t>(h, static_cast<uint16_t>(extra.size()));
  put(h + std::string(name) + extra);
  file_.write(data, size);
  pos_ += size;
  records_.push_back(r);
}

void ZipWriter::commit() {
  const uint64_t cd_offset = pos_;
  for (const Record& r : records_) {
    const bool big_size = force_zip64_ || r.size >= kMax32, big_offset = force_zip64_ || r.offset >= kMax32;
    std::string extra;
    if (big_size || big_offset) {
      store<uint16_t>(extra, kZip64ExtraId);
      store<uint16_t>(extra, static_cast<uint16_t>(8 * (2 * big_size + big_offset)));
      if (big_size) {
        store<uint64_t>(extra, r.size);
        store<uint64_t>(extra, r.size);
      }
      if (big_offset) store<uint64_t>(extra, r.offset);
    }
    std::string c;
    store<uint32_t>(c, kCentralSig);
    store<uint16_t>(c, extra.empty() ? 20 : 45);  // version made by
    store<uint16_t>(c, extra.empty() ? 20 : 45);  // version needed
    store<uint16_t>(c, 0x0800);
    store<uint16_t>(c, 0);
    store<uint32_t>(c, 0);
    store<uint32_t>(c, r.crc32);
    store<uint32_t>(c, big_size ? kMax32 : static_cast<uint32_t>(r.size));
    store<uint32_t>(c, big_size ? kMax32 : static_cast<uint32_t>(r.size));
    store<uint16_t>(c, static_cast<uint16_t>(r.name.size()));
    store<uint16_t>(c, static_cast<uint16_t>(extra.size()));
    store<uint16_t>(c, 0);  // comment length
    store<uint16_t>(c, 0);  // disk
    store<uint16_t>(c, 0);  // internal attributes
    store<uint32_t>(c, 0);  // external attributes
    store<uint32_t>(c, big_offset ? kMax32 : static_cast<uint32_t>(r.offset));
    put(c + r.name + extra);
  }
  const uint64_t cd_size = pos_ - cd_offset, count = records_.size();
  const bool zip64 = force_zip64_ || count >= kMax16 || cd_size >= kMax32 || cd_offset >= kMax32;
  std::string end;
  if (zip64) {
    const uint64_t record = pos_;
    store<uint32_t>(end, kZip64EndSig);
    store<uint64_t>(end, kZip64EndSize - 12);  // size of the rest of the record
    store<uint16_t>(end, 45);
    store<uint16_t>(end, 45);
    store<uint32_t>(end, 0);
    store<uint32_t>(end, 0);
    store<uint64_t>(end, count);
    store<uint64_t>(end, count);
    store<uint64_t>(end, cd_size);
    store<uint64_t>(end, cd_offset);
    store<uint32_t>(end, kZip64LocatorSig);
    store<uint32_t>(end, 0);
    store<uint64_t>(end, record);
    store<uint32_t>(end, 1);  // number of disks
  }
  store<uint32_t>(end, kEndSig);
  store<uint32_t>(end, 0);  // disk numbers
  store<uint16_t>(end, zip64 ? kMax16 : static_cast<uint16_t>(count));
  store<uint16_t>(end, zip64 ? kMax16 : static_cast<uint16_t>(count));
  store<uint32_t>(end, zip64 ? kMax32 : static_cast<uint32_t>(cd_size));
  store<uint32_t>(end, zip64 ? kMax32 : static_cast<uint32_t>(cd_offset));
  store<uint16_t>(end, 0);  // comment length
  put(end);
  file_.commit();
}

}  // namespace tinyemo
