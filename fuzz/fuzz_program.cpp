//===- fuzz_program.cpp - libFuzzer: the artifact's plan checks -----------===//
//
/// \file
/// Program::check (include/trainopt/Runtime/Program.h) on a file made from
/// the input (FuzzSupport.h: raw, or a payload behind a valid TRAINOPT
/// header and CRC): everything `Program::load` checks before it allocates
/// the arena and loads the kernel object (the memory plan's bounds, the
/// initial values, the entry points, every command's buffers and
/// collectives, pipeline stages, the mesh). It passes or names what is
/// wrong, never crashes. The kernel object is not loaded: dlopen of fuzzed
/// machine code tests the dynamic loader, not trainopt.
//
//===----------------------------------------------------------------------===//

#include "FuzzSupport.h"

#include "trainopt/Artifact/ArtifactFile.h"
#include "trainopt/Runtime/Program.h"

extern "C" int LLVMFuzzerInitialize(int *, char ***) {
  trainopt::fuzz::quietProtobuf();
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  std::string path = trainopt::fuzz::stage(data, size, "TRAINOPT",
                                           trainopt::artifact::kFormatVersion);
  std::string error;
  (void)trainopt::rt::Program::check(path, error);
  return 0;
}
