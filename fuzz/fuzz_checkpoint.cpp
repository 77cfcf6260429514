//===- fuzz_checkpoint.cpp - libFuzzer: the checkpoint reader -------------===//
//
/// \file
/// readCheckpoint (include/trainopt/Runtime/Checkpoint.h) on a file made
/// from the input (FuzzSupport.h: raw, or a payload behind a valid
/// TOPTCKPT header and CRC): a checkpoint or an error, never a crash.
//
//===----------------------------------------------------------------------===//

#include "FuzzSupport.h"

#include "trainopt/Runtime/Checkpoint.h"

using namespace trainopt::rt;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  std::string path =
      trainopt::fuzz::stage(data, size, "TOPTCKPT", kCheckpointVersion);
  Checkpoint ckpt;
  std::string error;
  if (readCheckpoint(path, ckpt, error)) {
    std::vector<ValueSignature> sigs = signaturesOf(ckpt);
    (void)checkCompatible(ckpt, path, ckpt.modelName, sigs, error);
  }
  return 0;
}
