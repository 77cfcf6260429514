//===- CUDALibraryPlan.h - how library calls map onto cuBLASLt/cuDNN -*- C++
//-*-===//
//
/// \file
/// The host-side arithmetic of the CUDA library (lib/Runtime/CUDA), kept
/// free of CUDA types so it is unit-tested on machines without a GPU.
///
/// `cuda.*` library calls take the same descriptors as their `cpu.*`
/// counterparts (CPULibrary.h); checkLibraryCall validates both.
//
//===----------------------------------------------------------------------===//

#ifndef TRAINOPT_RUNTIME_CUDALIBRARYPLAN_H
#define TRAINOPT_RUNTIME_CUDALIBRARYPLAN_H

#include "trainopt/Artifact/LibraryCalls.h"

#include <array>
#include <cstdint>
#include <string>
#include <vector>

namespace trainopt::rt {

/// A `cuda.matmul` as strided-batched GEMMs: `batch` GEMMs per call with
/// element strides (0: the operand is broadcast), one call per entry of
/// `offsets` (element offsets of out, lhs and rhs), for batch dims whose
/// broadcasting no single stride describes.
struct MatmulBatchPlan {
  int64_t batch = 1;
  int64_t strideOut = 0, strideLhs = 0, strideRhs = 0;
  std::vector<std::array<int64_t, 3>> offsets;
};

/// Plans the batch dims of a checked `cuda.matmul` descriptor (the ints).
MatmulBatchPlan planMatmulBatches(const calls::MatmulCall &call);

/// A checked `cuda.conv*` descriptor as cuDNN sees it: 2 or 3 spatial dims
/// (a 1-D conv gets a leading unit dim) and one symmetric padding.
struct ConvPlan {
  int dims = 2; ///< spatial dims given to cuDNN
  int64_t n = 0, cin = 0, cout = 0, groups = 1;
  bool hasBias = false;
  std::array<int, 3> in{}, kernel{}, out{}, stride{}, dilation{}, pad{};
};

/// Fails (with the reason) when cuDNN's output size formula, with the begin
/// padding on both sides, does not give the descriptor's output size, or a
/// size does not fit cuDNN's int.
bool planConv(const calls::ConvCall &call, ConvPlan &plan, std::string &error);

} // namespace trainopt::rt

#endif // TRAINOPT_RUNTIME_CUDALIBRARYPLAN_H
