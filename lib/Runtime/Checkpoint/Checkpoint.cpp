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
#include "trainopt/Runtime/Sharding.h"

#include <zlib.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <dirent.h>
#include <fcntl.h>
#include <functional>
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

/// Writes `ckpt` atomically as `dir`/`name`; `path` is set to it.
static bool writeFile(const std::string &dir, const std::string &name,
                      const Checkpoint &ckpt, std::string &path,
                      std::string &error) {
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
                                   const Checkpoint &ckpt, std::string &path,
                                   std::string &error) {
  return writeFile(dir, checkpointFileName(ckpt.step), ckpt, path, error);
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

static bool readShardedCheckpoint(const std::string &path, Checkpoint &ckpt,
                                  std::string &error);

bool trainopt::rt::readCheckpoint(const std::string &path, Checkpoint &ckpt,
                                  std::string &error) {
  struct stat dirStat;
  if (::stat(path.c_str(), &dirStat) == 0 && S_ISDIR(dirStat.st_mode))
    return readShardedCheckpoint(path, ckpt, error);
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
    uint64_t left = length - consumed;
    // Sized to what is left: most malformed files are small.
    std::vector<char> chunk(std::min<uint64_t>(left, 1 << 20));
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
  // Values are matched by name: another order (a pipeline's stages one
  // after another) is the same model.
  auto byName = [](std::vector<ValueSignature> v) {
    std::sort(v.begin(), v.end(),
              [](const ValueSignature &x, const ValueSignature &y) {
                return x.name < y.name;
              });
    return v;
  };
  if (byName(signaturesOf(ckpt)) == byName(expected))
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

/// Removes a checkpoint file, or a sharded checkpoint's directory and the
/// files in it; false (errno set) when it cannot.
static bool removeCheckpoint(const std::string &path) {
  struct stat st;
  if (::lstat(path.c_str(), &st) != 0)
    return false;
  if (!S_ISDIR(st.st_mode))
    return ::unlink(path.c_str()) == 0;
  if (DIR *d = ::opendir(path.c_str())) {
    while (struct dirent *entry = ::readdir(d))
      if (std::strcmp(entry->d_name, ".") && std::strcmp(entry->d_name, ".."))
        ::unlink(joinPath(path, entry->d_name).c_str());
    ::closedir(d);
  }
  return ::rmdir(path.c_str()) == 0;
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
      if (!removeCheckpoint(all[i].second) && errno != ENOENT) {
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
    removeCheckpoint(path);
  return true;
}

//===----------------------------------------------------------------------===//
// Sharded checkpoints
//===----------------------------------------------------------------------===//

static constexpr const char *kManifestName = "MANIFEST";
static constexpr const char *kManifestMagic = "trainopt sharded checkpoint 1";

std::string trainopt::rt::shardFileName(int64_t rank) {
  char buf[40];
  std::snprintf(buf, sizeof(buf), "rank-%05lld.ckpt",
                static_cast<long long>(rank));
  return buf;
}

/// The temporary directory of a sharded checkpoint of `step`.
static std::string shardTempDir(const std::string &dir, uint64_t step) {
  return joinPath(dir, "." + checkpointFileName(step) + kTempSuffix);
}

bool trainopt::rt::beginShardedCheckpoint(const std::string &dir,
                                          uint64_t step, std::string &error) {
  std::string tmp = shardTempDir(dir, step);
  removeCheckpoint(tmp); // a killed writer's
  if (::mkdir(tmp.c_str(), 0755) != 0) {
    error = "cannot create '" + tmp + "': " + std::strerror(errno);
    return false;
  }
  return true;
}

bool trainopt::rt::writeCheckpointShard(const std::string &dir, int64_t rank,
                                        const Checkpoint &shard,
                                        std::string &error) {
  std::string path;
  return writeFile(shardTempDir(dir, shard.step), shardFileName(rank), shard,
                   path, error);
}

/// Names go into the manifest's lines with `%`, space and control bytes as
/// %XX.
static std::string escapeName(const std::string &name) {
  std::string out;
  for (unsigned char c : name) {
    if (c == '%' || c <= ' ' || c == 0x7f) {
      char buf[4];
      std::snprintf(buf, sizeof(buf), "%%%02X", c);
      out += buf;
    } else {
      out += static_cast<char>(c);
    }
  }
  return out;
}

static bool unescapeName(const std::string &text, std::string &name) {
  name.clear();
  for (size_t i = 0; i < text.size(); ++i) {
    if (text[i] != '%') {
      name += text[i];
      continue;
    }
    if (i + 2 >= text.size() || !std::isxdigit(uint8_t(text[i + 1])) ||
        !std::isxdigit(uint8_t(text[i + 2])))
      return false;
    name += static_cast<char>(std::stoi(text.substr(i + 1, 2), nullptr, 16));
    i += 2;
  }
  return true;
}

bool trainopt::rt::commitShardedCheckpoint(const std::string &dir,
                                           uint64_t step,
                                           const ShardManifest &manifest,
                                           std::string &path,
                                           std::string &error) {
  std::string tmp = shardTempDir(dir, step);
  path = joinPath(dir, checkpointFileName(step));
  std::string text = std::string(kManifestMagic) + "\nstep " +
                     std::to_string(step) + "\nmesh";
  for (const auto &[axis, size] : manifest.mesh)
    text += " " + escapeName(axis) + "=" + std::to_string(size);
  text += "\n";
  for (size_t r = 0; r < manifest.coordinates.size(); ++r) {
    text += "file " + shardFileName(static_cast<int64_t>(r));
    for (int64_t c : manifest.coordinates[r])
      text += " " + std::to_string(c);
    text += "\n";
  }
  for (const ShardManifest::Value &v : manifest.values) {
    text += "value " + escapeName(v.whole.name) + " " +
            escapeName(v.whole.kind) + " " + dtypeName(v.whole.dtype) + " " +
            (v.sharding.empty() ? "-" : escapeName(v.sharding)) + " [";
    for (size_t i = 0; i < v.whole.shape.size(); ++i)
      text += (i ? "," : "") + std::to_string(v.whole.shape[i]);
    text += "]\n";
  }
  std::string manifestPath = joinPath(tmp, kManifestName);
  int fd = ::open(manifestPath.c_str(),
                  O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  bool ok = fd >= 0 && writeAll(fd, text.data(), text.size()) &&
            ::fsync(fd) == 0;
  int savedErrno = errno;
  if (fd >= 0)
    ok = (::close(fd) == 0) && ok;
  auto syncDir = [](const std::string &d) {
    int dfd = ::open(d.empty() ? "." : d.c_str(),
                     O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    bool synced = dfd >= 0 && ::fsync(dfd) == 0;
    if (dfd >= 0)
      ::close(dfd);
    return synced;
  };
  if (!ok || !syncDir(tmp)) {
    error = "cannot write '" + manifestPath + "': " + std::strerror(savedErrno);
    return false;
  }
  // The one rename that commits it (over an older checkpoint of the same
  // step, which is removed first: a rename cannot replace a directory
  // that has files).
  removeCheckpoint(path);
  if (std::rename(tmp.c_str(), path.c_str()) != 0 || !syncDir(dir)) {
    error = "cannot commit '" + tmp + "' as '" + path +
            "': " + std::strerror(errno);
    return false;
  }
  return true;
}

/// Reads the manifest of the sharded checkpoint `path`.
static bool dtypeFromName(const std::string &name, DType &t) {
  for (DType d : {DType::F64, DType::F32, DType::F16, DType::I64, DType::I32,
                  DType::I16, DType::I8, DType::U8, DType::Bool, DType::BF16})
    if (name == dtypeName(d)) {
      t = d;
      return true;
    }
  return false;
}

static bool readManifest(const std::string &path, uint64_t &step,
                         ShardManifest &manifest, std::string &error) {
  std::string file = joinPath(path, kManifestName);
  FILE *f = std::fopen(file.c_str(), "rb");
  if (!f) {
    error = "checkpoint '" + path +
            "' is not a regular file, and as a sharded checkpoint's "
            "directory it has no readable " +
            kManifestName + ": " + std::strerror(errno);
    return false;
  }
  std::string text;
  char buf[4096];
  for (size_t n; (n = std::fread(buf, 1, sizeof buf, f)) > 0;)
    text.append(buf, n);
  std::fclose(f);
  auto bad = [&](size_t line, const std::string &why) {
    error = "'" + file + "' line " + std::to_string(line) + ": " + why;
    return false;
  };
  std::vector<std::string> lines;
  for (size_t at = 0; at < text.size();) {
    size_t nl = text.find('\n', at);
    lines.push_back(text.substr(at, nl - at));
    at = nl == std::string::npos ? text.size() : nl + 1;
  }
  if (lines.empty() || lines[0] != kManifestMagic)
    return bad(1, std::string("expected '") + kManifestMagic + "'");
  auto words = [](const std::string &line) {
    std::vector<std::string> out;
    for (size_t at = 0; at < line.size();) {
      size_t sp = line.find(' ', at);
      out.push_back(line.substr(at, sp - at));
      at = sp == std::string::npos ? line.size() : sp + 1;
    }
    return out;
  };
  auto integer = [](const std::string &w, int64_t &v) {
    if (w.empty() || w.size() > 18 ||
        !std::all_of(w.begin() + (w[0] == '-'), w.end(),
                     [](char c) { return c >= '0' && c <= '9'; }))
      return false;
    v = std::stoll(w);
    return true;
  };
  bool sawStep = false, sawMesh = false;
  for (size_t i = 1; i < lines.size(); ++i) {
    std::vector<std::string> w = words(lines[i]);
    if (w.empty() || (w.size() == 1 && w[0].empty()))
      continue;
    int64_t v = 0;
    if (w[0] == "step" && w.size() == 2 && integer(w[1], v) && v >= 0) {
      step = static_cast<uint64_t>(v);
      sawStep = true;
    } else if (w[0] == "mesh") {
      for (size_t k = 1; k < w.size(); ++k) {
        size_t eq = w[k].find('=');
        std::string axis;
        if (eq == std::string::npos || !unescapeName(w[k].substr(0, eq), axis) ||
            !integer(w[k].substr(eq + 1), v) || v < 1 || v > (1 << 20))
          return bad(i + 1, "expected 'mesh AXIS=N ...'");
        manifest.mesh.push_back({axis, v});
      }
      sawMesh = !manifest.mesh.empty();
    } else if (w[0] == "file" && sawMesh &&
               w.size() == 2 + manifest.mesh.size() &&
               w[1] == shardFileName(
                           static_cast<int64_t>(manifest.coordinates.size()))) {
      std::vector<int64_t> coords;
      for (size_t k = 0; k < manifest.mesh.size(); ++k) {
        if (!integer(w[2 + k], v) || v < 0 || v >= manifest.mesh[k].second)
          return bad(i + 1, "a coordinate outside the mesh");
        coords.push_back(v);
      }
      manifest.coordinates.push_back(std::move(coords));
    } else if (w[0] == "value" && w.size() == 6) {
      ShardManifest::Value value;
      std::string dims = w[5];
      if (!unescapeName(w[1], value.whole.name) ||
          !unescapeName(w[2], value.whole.kind) ||
          !dtypeFromName(w[3], value.whole.dtype) ||
          (w[4] != "-" && !unescapeName(w[4], value.sharding)) ||
          dims.size() < 2 || dims.front() != '[' || dims.back() != ']')
        return bad(i + 1, "expected 'value NAME KIND DTYPE SHARDING [DIMS]'");
      dims = dims.substr(1, dims.size() - 2);
      for (size_t at = 0; !dims.empty() && at <= dims.size();) {
        size_t comma = dims.find(',', at);
        if (!integer(dims.substr(at, comma - at), v) || v < 0)
          return bad(i + 1, "a dimension that is no size");
        value.whole.shape.push_back(v);
        at = comma == std::string::npos ? dims.size() + 1 : comma + 1;
      }
      manifest.values.push_back(std::move(value));
    } else {
      return bad(i + 1, "unexpected '" + lines[i].substr(0, 60) + "'");
    }
  }
  if (!sawStep || !sawMesh || manifest.coordinates.empty())
    return bad(lines.size(), "the step, the mesh or the files are missing");
  int64_t ranks = 1;
  for (const auto &a : manifest.mesh)
    ranks *= a.second;
  if (static_cast<int64_t>(manifest.coordinates.size()) != ranks)
    return bad(lines.size(), "the mesh has " + std::to_string(ranks) +
                                 " ranks, the manifest lists " +
                                 std::to_string(manifest.coordinates.size()) +
                                 " files");
  return true;
}

/// Reads every rank's file of the sharded checkpoint `path` and puts the
/// whole values together, as a single-file checkpoint holds them, level by
/// level of their shardings (Sharding.h), innermost first: a replicated
/// value from rank 0's file, a stage's from its first rank's, parts along
/// a dim or flat (padding dropped) in coordinate order, AXIS:mean values
/// averaged (in double); a level's parts come from the ranks whose
/// coordinates on the axes no level names are 0.
static bool readShardedCheckpoint(const std::string &path, Checkpoint &ckpt,
                                  std::string &error) {
  uint64_t step = 0;
  ShardManifest manifest;
  if (!readManifest(path, step, manifest, error))
    return false;
  std::vector<Checkpoint> shards(manifest.coordinates.size());
  for (size_t r = 0; r < shards.size(); ++r) {
    if (!readCheckpoint(joinPath(path, shardFileName(int64_t(r))), shards[r],
                        error))
      return false;
    if (shards[r].step != step || shards[r].modelName != shards[0].modelName) {
      error = "sharded checkpoint '" + path + "': " + shardFileName(int64_t(r)) +
              " is of another step or model than its manifest";
      return false;
    }
  }
  auto find = [](const Checkpoint &c,
                 const std::string &name) -> const CheckpointValue * {
    for (const CheckpointValue &v : c.values)
      if (v.signature.name == name)
        return &v;
    return nullptr;
  };
  ckpt = shards[0];
  ckpt.values.clear();
  auto axisIndex = [&](const std::string &axis) {
    size_t a = 0;
    while (a < manifest.mesh.size() && manifest.mesh[a].first != axis)
      ++a;
    return a;
  };
  auto axisSize = [&](const std::string &axis) -> int64_t {
    size_t a = axisIndex(axis);
    return a < manifest.mesh.size() ? manifest.mesh[a].second : 0;
  };
  for (const ShardManifest::Value &mv : manifest.values) {
    auto fail = [&](const std::string &why) {
      error = "sharded checkpoint '" + path + "': value '" + mv.whole.name +
              "' " + why;
      return false;
    };
    uint64_t wholeBytes;
    if (!byteSize(mv.whole, wholeBytes))
      return fail("has an invalid shape");
    std::string why;
    std::optional<Sharding> sharding = Sharding::parse(mv.sharding, why);
    if (!sharding)
      return fail("has sharding '" + mv.sharding + "': " + why);
    // The value as levels [k, end) leave it, put together from the files
    // of the ranks at `coords` (-1: any; the file at 0 is read).
    std::vector<int64_t> coords(manifest.mesh.size(), -1);
    std::function<bool(size_t, std::vector<uint8_t> &)> assemble =
        [&](size_t k, std::vector<uint8_t> &out) {
          if (k == sharding->levels.size()) {
            for (size_t r = 0; r < shards.size(); ++r) {
              const std::vector<int64_t> &c = manifest.coordinates[r];
              bool here = true;
              for (size_t a = 0; a < c.size(); ++a)
                here = here && c[a] == std::max<int64_t>(coords[a], 0);
              if (!here)
                continue;
              const CheckpointValue *v = find(shards[r], mv.whole.name);
              if (!v || v->signature.dtype != mv.whole.dtype)
                return fail("is missing from " + shardFileName(int64_t(r)) +
                            ", or of another type");
              out = v->bytes;
              return true;
            }
            return fail("has no file for its coordinates");
          }
          const ShardLevel &level = sharding->levels[k];
          size_t a = axisIndex(level.axis);
          if (a == manifest.mesh.size())
            return fail("has sharding '" + mv.sharding +
                        "' over an axis the mesh does not have");
          std::optional<std::vector<int64_t>> shape =
              sharding->shapeAt(k, mv.whole.shape, axisSize, why);
          if (!shape)
            return fail("has sharding '" + mv.sharding + "': " + why);
          if (level.kind == ShardLevel::Kind::Stage) {
            if (level.stage >= manifest.mesh[a].second)
              return fail("has sharding '" + mv.sharding + "': no stage " +
                          std::to_string(level.stage));
            coords[a] = level.stage;
            bool ok = assemble(k + 1, out);
            coords[a] = -1;
            return ok;
          }
          std::vector<std::vector<uint8_t>> parts(manifest.mesh[a].second);
          std::vector<const uint8_t *> data;
          std::vector<uint64_t> sizes;
          for (size_t r = 0; r < parts.size(); ++r) {
            coords[a] = static_cast<int64_t>(r);
            if (!assemble(k + 1, parts[r]))
              return false;
            data.push_back(parts[r].data());
            sizes.push_back(parts[r].size());
          }
          coords[a] = -1;
          if (!joinParts(level, *shape, mv.whole.dtype, data, sizes, out, why))
            return fail("(sharding '" + mv.sharding + "') has " + why);
          return true;
        };
    CheckpointValue out{mv.whole, {}};
    if (!assemble(0, out.bytes))
      return false;
    if (out.bytes.size() != wholeBytes)
      return fail("is of " + std::to_string(out.bytes.size()) +
                  " bytes put together, not " + std::to_string(wholeBytes));
    ckpt.values.push_back(std::move(out));
  }
  ckpt.fingerprint = signatureFingerprint(signaturesOf(ckpt));
  return true;
}
