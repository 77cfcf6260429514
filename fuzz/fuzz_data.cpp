//===- fuzz_data.cpp - libFuzzer: the IDX, .npy and .npz readers ----------===//
//
/// \file
/// Bytes to parseIdx, parseNpy and parseNpz (include/trainopt/Runtime/
/// Data.h): any input must give an array or an error, never a crash, an
/// out-of-bounds access, undefined behaviour or an allocation beyond the
/// input's means.
//
//===----------------------------------------------------------------------===//

#include "trainopt/Runtime/Data.h"

#include <cstdint>
#include <string>
#include <vector>

using namespace trainopt::rt;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  std::vector<uint8_t> bytes(data, data + size);
  std::string error;
  Array a;
  (void)parseIdx(bytes, "input", a, error);
  (void)parseNpy(bytes.data(), bytes.size(), "input", a, error);
  std::vector<std::pair<std::string, Array>> arrays;
  (void)parseNpz(bytes, "input", arrays, error);
  return 0;
}
