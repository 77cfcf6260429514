//===- ArtifactFile.h - reading and writing .trainopt files -----*- C++ -*-===//
//
/// \file
/// The framing of a .trainopt file, shared by the compiler (writer) and the
/// runtime (reader), with no MLIR: an 8-byte magic "TRAINOPT", a
/// little-endian uint32 format version, a uint64 payload length, the CRC-32
/// of the payload, then the payload, a serialized trainopt.artifact.Artifact.
/// The reader rejects a foreign file, an unknown version, a truncated or
/// corrupt payload, each with a message naming the file.
//
//===----------------------------------------------------------------------===//

#ifndef TRAINOPT_ARTIFACT_ARTIFACTFILE_H
#define TRAINOPT_ARTIFACT_ARTIFACTFILE_H

#include "trainopt/Artifact/artifact.pb.h"

#include <cstdint>
#include <string>

namespace trainopt::artifact {

/// The format version this code reads and writes. 2: library-call
/// descriptors carry the accumulate type (LibraryCalls.h).
inline constexpr uint32_t kFormatVersion = 2;

/// Writes `artifact` to `path` atomically (temporary file, fsync, rename).
bool writeArtifact(const Artifact &artifact, const std::string &path,
                   std::string &error);

/// Reads and checks `path`.
bool readArtifact(const std::string &path, Artifact &artifact,
                  std::string &error);

} // namespace trainopt::artifact

#endif // TRAINOPT_ARTIFACT_ARTIFACTFILE_H
