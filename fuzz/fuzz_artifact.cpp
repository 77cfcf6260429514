//===- fuzz_artifact.cpp - libFuzzer: the artifact reader -----------------===//
//
/// \file
/// readArtifact (include/trainopt/Artifact/ArtifactFile.h) on a file made
/// from the input (FuzzSupport.h: raw, or a payload behind a valid TRAINOPT
/// header and CRC, so the protobuf parser behind the framing is reached):
/// an artifact or an error, never a crash. The plan's checks behind it are
/// fuzz_program's.
//
//===----------------------------------------------------------------------===//

#include "FuzzSupport.h"

#include "trainopt/Artifact/ArtifactFile.h"

extern "C" int LLVMFuzzerInitialize(int *, char ***) {
  trainopt::fuzz::quietProtobuf();
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  std::string path = trainopt::fuzz::stage(data, size, "TRAINOPT",
                                           trainopt::artifact::kFormatVersion);
  trainopt::artifact::Artifact artifact;
  std::string error;
  (void)trainopt::artifact::readArtifact(path, artifact, error);
  return 0;
}
