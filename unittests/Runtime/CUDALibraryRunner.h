//===- CUDALibraryRunner.h - one library call on the GPU ---------*- C++
//-*-===//
//
/// \file
/// Runs one `cuda.*` library call through a CUDAProgram built by hand (an
/// arena holding the call's buffers, one entry point whose inputs and
/// outputs are all of them), so the CPU library's tests (CPULibraryTest.cpp)
/// run unchanged against the GPU library in TrainoptCUDALibraryTests.
//
//===----------------------------------------------------------------------===//

#ifndef TRAINOPT_UNITTESTS_RUNTIME_CUDALIBRARYRUNNER_H
#define TRAINOPT_UNITTESTS_RUNTIME_CUDALIBRARYRUNNER_H

#include <cstdint>
#include <string>
#include <vector>

namespace trainopt::rt {

/// Whether a GPU is usable here (why not, in `why`).
bool cudaAvailable(std::string &why);

/// Runs `function` twice on the GPU (eagerly, then replayed from a CUDA
/// graph), with TF32 off; `buffers` hold the inputs and receive the
/// outputs. Fails (`error`) when the call cannot be planned, the runs fail,
/// or the graph replay's bytes differ from the eager run's.
bool runCUDALibraryCall(const std::string &function,
                        const std::vector<int64_t> &ints,
                        std::vector<std::vector<unsigned char>> &buffers,
                        std::string &error);

} // namespace trainopt::rt

#endif // TRAINOPT_UNITTESTS_RUNTIME_CUDALIBRARYRUNNER_H
