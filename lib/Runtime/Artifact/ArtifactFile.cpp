//===- ArtifactFile.cpp - reading and writing .trainopt files -------------===//
//
/// \file
/// The frame makes a damaged or foreign file fail with a clear message
/// instead of a protobuf that happens to parse: the magic identifies the
/// format, the version selects the reader, the length detects truncation and
/// the CRC-32 detects corruption before the payload is parsed.
//
//===----------------------------------------------------------------------===//

#include "trainopt/Artifact/ArtifactFile.h"
#include "trainopt/Support/Files.h"

#include <zlib.h>

#include <cerrno>
#include <climits>
#include <cstdio>
#include <cstring>
#include <fcntl.h>
#include <unistd.h>
#include <vector>

using namespace trainopt::artifact;

static constexpr char kMagic[8] = {'T', 'R', 'A', 'I', 'N', 'O', 'P', 'T'};
static constexpr size_t kHeaderSize = 8 + 4 + 8 + 4;

template <typename T> static void put(std::string &s, T v) {
  for (size_t i = 0; i < sizeof(T); ++i)
    s += static_cast<char>((static_cast<uint64_t>(v) >> (8 * i)) & 0xff);
}
template <typename T> static T get(const uint8_t *p) {
  uint64_t v = 0;
  for (size_t i = 0; i < sizeof(T); ++i)
    v |= uint64_t(p[i]) << (8 * i);
  return static_cast<T>(v);
}

bool trainopt::artifact::writeArtifact(const Artifact &artifact,
                                       const std::string &path,
                                       std::string &error) {
  if (!trainopt::mayReplace(path, error))
    return false;
  std::string payload;
  if (!artifact.SerializeToString(&payload)) {
    error = "cannot serialize the artifact for '" + path + "'";
    return false;
  }
  std::string frame(kMagic, sizeof(kMagic));
  put<uint32_t>(frame, kFormatVersion);
  put<uint64_t>(frame, payload.size());
  put<uint32_t>(frame, crc32(0, reinterpret_cast<const Bytef *>(payload.data()),
                             payload.size()));
  std::string tmp = path + ".tmp";
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  if (fd < 0) {
    error = "cannot create '" + tmp + "': " + std::strerror(errno);
    return false;
  }
  bool ok = true;
  for (const std::string *part : {&frame, &payload}) {
    const char *p = part->data();
    size_t left = part->size();
    while (ok && left > 0) {
      ssize_t n = ::write(fd, p, left);
      if (n < 0 && errno == EINTR)
        continue;
      ok = n > 0;
      p += n > 0 ? n : 0;
      left -= n > 0 ? n : 0;
    }
  }
  ok = ok && ::fsync(fd) == 0;
  ok = (::close(fd) == 0) && ok;
  if (!ok || std::rename(tmp.c_str(), path.c_str()) != 0) {
    error = "cannot write '" + path + "': " + std::strerror(errno);
    std::remove(tmp.c_str());
    return false;
  }
  return true;
}

bool trainopt::artifact::readArtifact(const std::string &path,
                                      Artifact &artifact, std::string &error) {
  std::vector<uint8_t> bytes;
  if (!trainopt::readWholeFile(path, bytes, error))
    return false;
  auto fail = [&](const std::string &why) {
    error = "'" + path + "' " + why;
    return false;
  };
  if (bytes.size() < kHeaderSize ||
      std::memcmp(bytes.data(), kMagic, sizeof(kMagic)) != 0)
    return fail("is not a trainopt artifact (no TRAINOPT header)");
  uint32_t version = get<uint32_t>(bytes.data() + 8);
  if (version != kFormatVersion)
    return fail("has artifact format version " + std::to_string(version) +
                "; this runtime reads version " +
                std::to_string(kFormatVersion) +
                " (recompile the model with this trainopt)");
  uint64_t length = get<uint64_t>(bytes.data() + 12);
  uint32_t crc = get<uint32_t>(bytes.data() + 20);
  if (length != bytes.size() - kHeaderSize)
    return fail("is truncated or has trailing bytes: the header declares " +
                std::to_string(length) + " payload bytes, the file has " +
                std::to_string(bytes.size() - kHeaderSize));
  if (length > static_cast<uint64_t>(INT_MAX))
    return fail("has a payload over 2 GiB; large weights belong in a side "
                "file");
  const uint8_t *payload = bytes.data() + kHeaderSize;
  if (crc32(0, payload, length) != crc)
    return fail("is corrupt (payload checksum mismatch)");
  if (!artifact.ParseFromArray(payload, static_cast<int>(length)))
    return fail("has a payload that is not a valid artifact message");
  return true;
}
