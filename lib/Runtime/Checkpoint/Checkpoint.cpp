//===- Checkpoint.cpp - training checkpoints for the runtime --------------===//
//
/// \file
/// A simple binary layout rather than protobuf: values are streamed from
/// and into their own buffers, so a checkpoint never needs a second copy of
/// the model in memory and has no 2 GiB message limit. The frame (magic,
/// version, length, CRC-32) is the artifact's, with another magic, so that
/// a checkpoint is never mistaken for an artifact or the reverse.
///
/// Crash safety comes from the write order: the file only gets its final
/// name once its bytes are on disk (fsync before rename), and the rename is
/// made durable by an fsync of the directory. A reader never sees a
/// half-written checkpoint under a checkpoint name.
//
//===----------------------------------------------------------------------===//

#include "trainopt/Runtime/Checkpoint.h"

#include <zlib.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

using namespace trainopt::rt;

static constexpr char kMagic[8] = {'T', 'O', 'P', 'T', 'C', 'K', 'P', 'T'};
static constexpr size_t kHeaderSize = 8 + 4 + 8 + 4;
static constexpr const char *kPrefix = "ckpt-";
static constexpr const char *kSuffix = ".ckpt";
static constexpr const char *kTempSuffix = ".tmp";

uint64_t Checkpoint::counter(const std::string &name, uint64_t fallback) const {
  for (const auto &[key, value] : counters)
    if (key == name)
      return value;
  return fallback;
}

double Checkpoint::metric(const std::string &name, double fallback) const {
  for (const auto &[key, value] : metrics)
    if (key == name)
      return value;
  return fallback;
}

//===----------------------------------------------------------------------===//
// Encoding
//===----------------------------------------------------------------------===//

/// Dtype codes of the file, fixed independently of the enum's order.
static uint8_t dtypeCode(DType t) {
  switch (t) {
  case DType::F64:
    return 1;
  case DType::F32:
    return 2;
  case DType::F16:
    return 3;
  case DType::I64:
    return 4;
  case DType::I32:
    return 5;
  case DType::I16:
    return 6;
  case DType::I8:
    return 7;
  case DType::U8:
    return 8;
  case DType::Bool:
    return 9;
  case DType::BF16:
    return 10;
  }
  return 0;
}

static bool dtypeFromCode(uint8_t code, DType &t) {
  static const DType types[] = {DType::F64, DType::F32, DType::F16,
                                DType::I64, DType::I32, DType::I16,
                                DType::I8,  DType::U8,  DType::Bool,
                                DType::BF16};
  if (code < 1 || code > 10)
    return false;
  t = types[code - 1];
  return true;
}

template <typename T> static void put(std::string &s, T v) {
  uint64_t bits = 0;
  std::memcpy(&bits, &v, sizeof(T));
  for (size_t i = 0; i < sizeof(T); ++i)
    s += static_cast<char>((bits >> (8 * i)) & 0xff);
}

static void putString(std::string &s, const std::string &v) {
  put<uint32_t>(s, static_cast<uint32_t>(v.size()));
  s += v;
}

/// A bounds-checked cursor over the metadata.
class Reader {
public:
  Reader(const std::string &data) : data_(data) {}
  template <typename T> bool get(T &v) {
    if (data_.size() - pos_ < sizeof(T))
      return false;
    uint64_t bits = 0;
    for (size_t i = 0; i < sizeof(T); ++i)
      bits |= uint64_t(static_cast<uint8_t>(data_[pos_ + i])) << (8 * i);
    std::memcpy(&v, &bits, sizeof(T));
    pos_ += sizeof(T);
    return true;
  }
  bool getString(std::string &v) {
    uint32_t n;
    if (!get(n) || data_.size() - pos_ < n)
      return false;
    v = data_.substr(pos_, n);
    pos_ += n;
    return true;
  }
  bool atEnd() const { return pos_ == data_.size(); }

private:
  const std::string &data_;
  size_t pos_ = 0;
};

static uint32_t crcUpdate(uint32_t crc, const void *data, size_t size) {
  const Bytef *p = static_cast<const Bytef *>(data);
  while (size > 0) {
    uInt n = static_cast<uInt>(std::min<size_t>(size, 1u << 30));
    crc = crc32(crc, p, n);
    p += n;
    size -= n;
  }
  return crc;
}

uint64_t
trainopt::rt::signatureFingerprint(const std::vector<ValueSignature> &values) {
  std::string canonical;
  put<uint64_t>(canonical, values.size());
  for (const ValueSignature &v : values) {
    putString(canonical, v.name);
    putString(canonical, v.kind);
    put<uint8_t>(canonical, dtypeCode(v.dtype));
    put<uint32_t>(canonical, static_cast<uint32_t>(v.shape.size()));
    for (int64_t d : v.shape)
      put<int64_t>(canonical, d);
  }
  uint64_t h = 14695981039346656037ull;
  for (char c : canonical) {
    h ^= static_cast<uint8_t>(c);
    h *= 1099511628211ull;
  }
  return h;
}

std::vector<ValueSignature> trainopt::rt::signaturesOf(const Checkpoint &ckpt) {
  std::vector<ValueSignature> out;
  out.reserve(ckpt.values.size());
  for (const CheckpointValue &v : ckpt.values)
    out.push_back(v.signature);
  return out;
}

std::string trainopt::rt::checkpointFileName(uint64_t step) {
  char buf[40];
  std::snprintf(buf, sizeof(buf), "%s%012llu%s", kPrefix,
                static_cast<unsigned long long>(step), kSuffix);
  return buf;
}

/// Bytes `shape` x `dtype` needs, or false on a negative dim or overflow.
static bool byteSize(const ValueSignature &v, uint64_t &bytes) {
  uint64_t n = dtypeSize(v.dtype);
  for (int64_t d : v.shape)
    if (d < 0 || __builtin_mul_overflow(n, static_cast<uint64_t>(d), &n))
      return false;
  bytes = n;
  return true;
}

static std::string joinPath(const std::string &dir, const std::string &name) {
  if (dir.empty())
    return name;
  return dir.back() == '/' ? dir + name : dir + "/" + name;
}

//===----------------------------------------------------------------------===//
// Writing
//===----------------------------------------------------------------------===//

static bool writeAll(int fd, const void *data, size_t size) {
  const char *p = static_cast<const char *>(data);
  while (size > 0) {
    ssize_t n = ::write(fd, p, std::min<size_t>(size, 1u << 30));
    if (n < 0 && errno == EINTR)
      continue;
    if (n <= 0)
      return false;
    p += n;
    size -= static_cast<size_t>(n);
  }
  return true;
}

bool trainopt::rt::writeCheckpoint(const std::string &dir,
                                   const Checkpoint &ckpt, std::string &path,
                                   std::string &error) {
  std::string name = checkpointFileName(ckpt.step);
  path = joinPath(dir, name);
  std::vector<ValueSignature> signatures = signaturesOf(ckpt);
  for (const CheckpointValue &v : ckpt.values) {
    uint64_t need;
    if (!byteSize(v.signature, need) || need != v.bytes.size()) {
      error = "cannot write '" + path + "': value '" + v.signature.name +
              "' has " + std::to_string(v.bytes.size()) +
              " bytes, its dtype and shape need " +
              std::to_string(byteSize(v.signature, need) ? need : 0);
      return false;
    }
  }

  std::string meta;
  putString(meta, ckpt.modelName);
  put<uint64_t>(meta, signatureFingerprint(signatures));
  put<uint64_t>(meta, ckpt.step);
  put<uint64_t>(meta, ckpt.epoch);
  put<int64_t>(meta, ckpt.batch);
  put<uint64_t>(meta, ckpt.seed);
  put<uint8_t>(meta, ckpt.shuffle ? 1 : 0);
  put<uint32_t>(meta, static_cast<uint32_t>(ckpt.counters.size()));
  for (const auto &[key, value] : ckpt.counters) {
    putString(meta, key);
    put<uint64_t>(meta, value);
  }
  put<uint32_t>(meta, static_cast<uint32_t>(ckpt.metrics.size()));
  for (const auto &[key, value] : ckpt.metrics) {
    putString(meta, key);
    put<double>(meta, value);
  }
  put<uint32_t>(meta, static_cast<uint32_t>(ckpt.values.size()));
  for (const CheckpointValue &v : ckpt.values) {
    putString(meta, v.signature.name);
    putString(meta, v.signature.kind);
    put<uint8_t>(meta, dtypeCode(v.signature.dtype));
    put<uint32_t>(meta, static_cast<uint32_t>(v.signature.shape.size()));
    for (int64_t d : v.signature.shape)
      put<int64_t>(meta, d);
    put<uint64_t>(meta, v.bytes.size());
  }
  uint64_t payload = 8 + meta.size();
  std::string metaLength;
  put<uint64_t>(metaLength, meta.size());
  uint32_t crc = crcUpdate(0, metaLength.data(), metaLength.size());
  crc = crcUpdate(crc, meta.data(), meta.size());
  for (const CheckpointValue &v : ckpt.values) {
    crc = crcUpdate(crc, v.bytes.data(), v.bytes.size());
    payload += v.bytes.size();
  }
  std::string header(kMagic, sizeof(kMagic));
  put<uint32_t>(header, kCheckpointVersion);
  put<uint64_t>(header, payload);
  put<uint32_t>(header, crc);

  // The temporary name starts with a dot and ends in ".tmp": it is never a
  // checkpoint name, so a reader cannot pick up a partial file.
  std::string tmp = joinPath(dir, "." + name + kTempSuffix);
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) {
    error = "cannot create '" + tmp + "': " + std::strerror(errno);
    return false;
  }
  bool ok = writeAll(fd, header.data(), header.size()) &&
            writeAll(fd, metaLength.data(), metaLength.size()) &&
            writeAll(fd, meta.data(), meta.size());
  for (const CheckpointValue &v : ckpt.values)
    ok = ok && writeAll(fd, v.bytes.data(), v.bytes.size());
  ok = ok && ::fsync(fd) == 0;
  int savedErrno = errno;
  ok = (::close(fd) == 0) && ok;
  if (!ok) {
    error = "cannot write '" + tmp + "': " + std::strerror(savedErrno);
    ::unlink(tmp.c_str());
    return false;
  }
  if (std::rename(tmp.c_str(), path.c_str()) != 0) {
    error = "cannot rename '" + tmp + "' to '" + path +
            "': " + std::strerror(errno);
    ::unlink(tmp.c_str());
    return false;
  }
  // Make the rename itself durable.
  int dfd = ::open(dir.empty() ? "." : dir.c_str(),
                   O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd < 0 || ::fsync(dfd) != 0) {
    error = "cannot sync directory '" + dir + "': " + std::strerror(errno);
    if (dfd >= 0)
      ::close(dfd);
    return false;
  }
  ::close(dfd);
  return true;
}

bool trainopt::rt::writeCheckpoint(const std::string &dir,
                                   const Checkpoint &ckpt, std::string &error) {
  std::string path;
  return writeCheckpoint(dir, ckpt, path, error);
}

//===----------------------------------------------------------------------===//
// Reading
//===----------------------------------------------------------------------===//

namespace {
/// An open file, closed on every return path.
struct File {
  int fd = -1;
  ~File() {
    if (fd >= 0)
      ::close(fd);
  }
  bool readAll(void *data, size_t size) {
    char *p = static_cast<char *>(data);
    while (size > 0) {
      ssize_t n = ::read(fd, p, std::min<size_t>(size, 1u << 30));
      if (n < 0 && errno == EINTR)
        continue;
      if (n <= 0)
        return false;
      p += n;
      size -= static_cast<size_t>(n);
    }
    return true;
  }
};
} // namespace

static std::string shapeString(const std::vector<int64_t> &shape) {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); ++i)
    s += (i ? ", " : "") + std::to_string(shape[i]);
  return s + "]";
}

bool trainopt::rt::readCheckpoint(const std::string &path, Checkpoint &ckpt,
                                  std::string &error) {
  auto fail = [&](const std::string &why) {
    error = "checkpoint '" + path + "' " + why;
    return false;
  };
  File file;
  file.fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (file.fd < 0)
    return fail(std::string("cannot be opened: ") + std::strerror(errno));
  struct stat st;
  if (::fstat(file.fd, &st) != 0 || !S_ISREG(st.st_mode))
    return fail("is not a regular file");
  uint64_t size = static_cast<uint64_t>(st.st_size);
  uint8_t header[kHeaderSize];
  if (size < kHeaderSize || !file.readAll(header, kHeaderSize) ||
      std::memcmp(header, kMagic, sizeof(kMagic)) != 0)
    return fail("is not a trainopt checkpoint (no TOPTCKPT header)");
  auto le = [&](size_t at, size_t n) {
    uint64_t v = 0;
    for (size_t i = 0; i < n; ++i)
      v |= uint64_t(header[at + i]) << (8 * i);
    return v;
  };
  uint32_t version = static_cast<uint32_t>(le(8, 4));
  if (version != kCheckpointVersion)
    return fail("has checkpoint format version " + std::to_string(version) +
                "; this runtime reads version " +
                std::to_string(kCheckpointVersion));
  uint64_t length = le(12, 8);
  uint32_t expectedCrc = static_cast<uint32_t>(le(20, 4));
  if (length != size - kHeaderSize)
    return fail("is truncated or has trailing bytes: the header declares " +
                std::to_string(length) + " payload bytes, the file has " +
                std::to_string(size - kHeaderSize));

  // A structural error in the metadata is reported as corruption when the
  // checksum says so: it is the more useful diagnosis.
  uint32_t crc = 0;
  auto failStructure = [&](const std::string &why, uint64_t consumed) {
    std::vector<char> chunk(1 << 20);
    uint64_t left = length - consumed;
    while (left > 0) {
      size_t n = static_cast<size_t>(std::min<uint64_t>(left, chunk.size()));
      if (!file.readAll(chunk.data(), n))
        return fail("cannot be read: " + std::string(std::strerror(errno)));
      crc = crcUpdate(crc, chunk.data(), n);
      left -= n;
    }
    if (crc != expectedCrc)
      return fail("is corrupt (payload checksum mismatch)");
    return fail(why);
  };

  uint8_t metaLengthBytes[8];
  if (length < 8 || !file.readAll(metaLengthBytes, 8))
    return fail("is corrupt (payload too short)");
  crc = crcUpdate(crc, metaLengthBytes, 8);
  uint64_t metaLength = 0;
  for (int i = 0; i < 8; ++i)
    metaLength |= uint64_t(metaLengthBytes[i]) << (8 * i);
  if (metaLength > length - 8)
    return failStructure("has a metadata length beyond the payload", 8);
  std::string meta(metaLength, '\0');
  if (!file.readAll(meta.data(), meta.size()))
    return fail("cannot be read: " + std::string(std::strerror(errno)));
  crc = crcUpdate(crc, meta.data(), meta.size());
  uint64_t consumed = 8 + metaLength;

  Checkpoint out;
  Reader r(meta);
  uint8_t shuffle = 0;
  uint32_t counters = 0, metrics = 0, values = 0;
  bool ok = r.getString(out.modelName) && r.get(out.fingerprint) &&
            r.get(out.step) && r.get(out.epoch) && r.get(out.batch) &&
            r.get(out.seed) && r.get(shuffle) && shuffle <= 1 &&
            r.get(counters);
  out.shuffle = shuffle == 1;
  for (uint32_t i = 0; ok && i < counters; ++i) {
    std::pair<std::string, uint64_t> c;
    ok = r.getString(c.first) && r.get(c.second);
    out.counters.push_back(std::move(c));
  }
  ok = ok && r.get(metrics);
  for (uint32_t i = 0; ok && i < metrics; ++i) {
    std::pair<std::string, double> m;
    ok = r.getString(m.first) && r.get(m.second);
    out.metrics.push_back(std::move(m));
  }
  ok = ok && r.get(values);
  std::vector<uint64_t> sizes;
  uint64_t dataBytes = 0;
  for (uint32_t i = 0; ok && i < values; ++i) {
    CheckpointValue v;
    uint8_t code = 0;
    uint32_t rank = 0;
    ok = r.getString(v.signature.name) && r.getString(v.signature.kind) &&
         r.get(code) && dtypeFromCode(code, v.signature.dtype) && r.get(rank) &&
         rank <= 64;
    for (uint32_t d = 0; ok && d < rank; ++d) {
      int64_t dim;
      ok = r.get(dim);
      v.signature.shape.push_back(dim);
    }
    uint64_t bytes = 0, need = 0;
    ok = ok && r.get(bytes) && byteSize(v.signature, need) && need == bytes &&
         !__builtin_add_overflow(dataBytes, bytes, &dataBytes);
    sizes.push_back(bytes);
    out.values.push_back(std::move(v));
  }
  if (!ok || !r.atEnd())
    return failStructure("has malformed metadata", consumed);
  if (dataBytes != length - consumed)
    return failStructure("describes " + std::to_string(dataBytes) +
                             " bytes of values, the payload holds " +
                             std::to_string(length - consumed),
                         consumed);
  // Sizes are now bounded by the file size: allocating them is safe.
  for (size_t i = 0; i < out.values.size(); ++i) {
    std::vector<uint8_t> &bytes = out.values[i].bytes;
    bytes.resize(sizes[i]);
    if (!file.readAll(bytes.data(), bytes.size()))
      return fail("cannot be read: " + std::string(std::strerror(errno)));
    crc = crcUpdate(crc, bytes.data(), bytes.size());
  }
  if (crc != expectedCrc)
    return fail("is corrupt (payload checksum mismatch)");
  if (signatureFingerprint(signaturesOf(out)) != out.fingerprint)
    return fail("is corrupt (its fingerprint does not match its values)");
  ckpt = std::move(out);
  return true;
}

static std::string describe(const ValueSignature &v) {
  return "'" + v.name + "' (" + v.kind + ", " + dtypeName(v.dtype) + " " +
         shapeString(v.shape) + ")";
}

bool trainopt::rt::checkCompatible(const Checkpoint &ckpt,
                                   const std::string &path,
                                   const std::string &modelName,
                                   const std::vector<ValueSignature> &expected,
                                   std::string &error) {
  auto fail = [&](const std::string &why) {
    error = "checkpoint '" + path + "' does not match the program: " + why;
    return false;
  };
  if (ckpt.modelName != modelName)
    return fail("it is a checkpoint of model '" + ckpt.modelName +
                "', the program is model '" + modelName + "'");
  if (ckpt.fingerprint == signatureFingerprint(expected))
    return true;
  const std::vector<ValueSignature> got = signaturesOf(ckpt);
  for (size_t i = 0; i < std::max(got.size(), expected.size()); ++i) {
    if (i >= got.size())
      return fail("the program has persistent value " + describe(expected[i]) +
                  ", the checkpoint does not");
    if (i >= expected.size())
      return fail("the checkpoint has persistent value " + describe(got[i]) +
                  ", the program does not");
    if (got[i] == expected[i])
      continue;
    if (got[i].name == expected[i].name)
      return fail("value " + describe(got[i]) + " in the checkpoint is " +
                  describe(expected[i]) + " in the program");
    return fail("value " + std::to_string(i) + " is " + describe(got[i]) +
                " in the checkpoint, " + describe(expected[i]) +
                " in the program");
  }
  return fail("fingerprint " + std::to_string(ckpt.fingerprint) +
              " differs from the program's");
}

//===----------------------------------------------------------------------===//
// Directories
//===----------------------------------------------------------------------===//

/// The step of a name "<prefix><digits><suffix>", or false.
static bool parseStep(const std::string &name, const std::string &prefix,
                      const std::string &suffix, uint64_t &step) {
  if (name.size() <= prefix.size() + suffix.size() ||
      name.compare(0, prefix.size(), prefix) != 0 ||
      name.compare(name.size() - suffix.size(), suffix.size(), suffix) != 0)
    return false;
  std::string digits =
      name.substr(prefix.size(), name.size() - prefix.size() - suffix.size());
  if (digits.size() > 19 ||
      !std::all_of(digits.begin(), digits.end(),
                   [](char c) { return c >= '0' && c <= '9'; }))
    return false;
  step = std::stoull(digits);
  return true;
}

bool trainopt::rt::listCheckpoints(
    const std::string &dir, std::vector<std::pair<uint64_t, std::string>> &out,
    std::string &error) {
  out.clear();
  DIR *d = ::opendir(dir.c_str());
  if (!d) {
    error = "cannot read checkpoint directory '" + dir +
            "': " + std::strerror(errno);
    return false;
  }
  while (struct dirent *entry = ::readdir(d)) {
    uint64_t step;
    if (parseStep(entry->d_name, kPrefix, kSuffix, step))
      out.push_back({step, joinPath(dir, entry->d_name)});
  }
  ::closedir(d);
  std::sort(out.begin(), out.end());
  return true;
}

bool trainopt::rt::findLatestCheckpoint(const std::string &dir,
                                        std::string &path, std::string &error) {
  std::vector<std::pair<uint64_t, std::string>> all;
  if (!listCheckpoints(dir, all, error))
    return false;
  if (all.empty()) {
    error = "no checkpoint (ckpt-<step>.ckpt) in '" + dir + "'";
    return false;
  }
  path = all.back().second;
  return true;
}

bool trainopt::rt::keepLast(const std::string &dir, size_t n,
                            std::string &error) {
  std::vector<std::pair<uint64_t, std::string>> all;
  if (!listCheckpoints(dir, all, error))
    return false;
  if (all.empty())
    return true;
  if (n > 0 && all.size() > n)
    for (size_t i = 0; i + n < all.size(); ++i)
      if (::unlink(all[i].second.c_str()) != 0 && errno != ENOENT) {
        error = "cannot delete old checkpoint '" + all[i].second +
                "': " + std::strerror(errno);
        return false;
      }
  // Temporary files of steps up to the newest checkpoint belong to writers
  // that were killed: steps only grow.
  uint64_t newest = all.back().first;
  DIR *d = ::opendir(dir.c_str());
  if (!d)
    return true;
  std::vector<std::string> stale;
  while (struct dirent *entry = ::readdir(d)) {
    uint64_t step;
    if (parseStep(entry->d_name, std::string(".") + kPrefix,
                  std::string(kSuffix) + kTempSuffix, step) &&
        step <= newest)
      stale.push_back(joinPath(dir, entry->d_name));
  }
  ::closedir(d);
  for (const std::string &path : stale)
    ::unlink(path.c_str());
  return true;
}
