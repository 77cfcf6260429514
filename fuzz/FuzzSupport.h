//===- FuzzSupport.h - what the libFuzzer targets share ----------*- C++ -*-===//
//
/// \file
/// The readers under fuzzing take paths, and their files carry a CRC-32
/// over the payload, so random bytes would only ever test the framing. A
/// target's input is therefore a mode byte and bytes: mode 0 writes the
/// bytes as the file; any other mode writes them as the payload behind a
/// valid header (magic, version, length, CRC), so the mutations reach the
/// parser behind it. Files go to a per-process path in /dev/shm.
//
//===----------------------------------------------------------------------===//

#ifndef TRAINOPT_FUZZ_FUZZSUPPORT_H
#define TRAINOPT_FUZZ_FUZZSUPPORT_H

#include <google/protobuf/stubs/logging.h>
#include <zlib.h>

#include <cstdint>
#include <cstdio>
#include <string>
#include <unistd.h>

namespace trainopt::fuzz {

/// Writes `data` as described above to a file and returns its path.
inline std::string stage(const uint8_t *data, size_t size, const char *magic,
                         uint32_t version) {
  static const std::string path =
      "/dev/shm/trainopt-fuzz-" + std::to_string(::getpid());
  std::FILE *f = std::fopen(path.c_str(), "wb");
  if (!f)
    return path;
  if (size > 0 && data[0] != 0) {
    uint8_t header[24];
    for (int i = 0; i < 8; ++i)
      header[i] = static_cast<uint8_t>(magic[i]);
    uint64_t length = size - 1;
    uint32_t crc = static_cast<uint32_t>(
        crc32(0L, data + 1, static_cast<uInt>(length)));
    for (int i = 0; i < 4; ++i)
      header[8 + i] = static_cast<uint8_t>(version >> (8 * i));
    for (int i = 0; i < 8; ++i)
      header[12 + i] = static_cast<uint8_t>(length >> (8 * i));
    for (int i = 0; i < 4; ++i)
      header[20 + i] = static_cast<uint8_t>(crc >> (8 * i));
    std::fwrite(header, 1, sizeof header, f);
    std::fwrite(data + 1, 1, length, f);
  } else if (size > 0) {
    std::fwrite(data + 1, 1, size - 1, f);
  }
  std::fclose(f);
  return path;
}

/// Discards libprotobuf's log: it reports each invalid UTF-8 string field
/// on stderr, which in a 10-million-input run of the artifact target made
/// 300 MB of log and the time to write it. For LLVMFuzzerInitialize.
inline void quietProtobuf() { google::protobuf::SetLogHandler(nullptr); }

} // namespace trainopt::fuzz

#endif // TRAINOPT_FUZZ_FUZZSUPPORT_H
