//===- Disabled.cpp - the CUDA runtime, when built without CUDA -----------===//
//
/// \file
/// A build with TRAINOPT_ENABLE_CUDA=OFF (no CUDA toolkit at configure
/// time) runs CPU artifacts only; a CUDA artifact gets this explanation.
//
//===----------------------------------------------------------------------===//

#include "trainopt/Runtime/CUDADevice.h"

using namespace trainopt::rt;

CUDAProgram::~CUDAProgram() = default;

std::unique_ptr<CUDAProgram> CUDAProgram::create(const CUDAProgramSpec &spec,
                                                 const CUDAOptions &,
                                                 std::string &error) {
  error = spec.source + ": this runtime was built without CUDA support "
                        "(configure with the CUDA toolkit and "
                        "-DTRAINOPT_ENABLE_CUDA=ON to run cuda artifacts)";
  return nullptr;
}

bool trainopt::rt::probeCUDA(std::string &, std::string &error) {
  error = "this runtime was built without CUDA support";
  return false;
}
