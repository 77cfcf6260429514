//===- LibraryKernels.h - parameters of the runtime's own kernels -*- C++
//-*-===//
//
/// \file
/// The CUDA library functions that neither cuBLASLt nor cuDNN computes with
/// the evaluator's semantics (pooling with its tie and padding rules,
/// scatter-add, fills) are kernels of the runtime itself
/// (LibraryKernels.cu), built by nvcc into a fat binary that is embedded in
/// the runtime and loaded with the driver API. This header is shared by the
/// kernels and the host code that launches them: plain structs passed by
/// value as the kernels' one parameter.
///
/// Every kernel gathers: one thread computes one output element from its
/// inputs, in the order the CPU library sums them, so a gradient that
/// several windows or indices feed is summed without atomics, the same way
/// on every run, in the order the CPU library uses.
//
//===----------------------------------------------------------------------===//

#ifndef TRAINOPT_LIB_RUNTIME_CUDA_LIBRARYKERNELS_H
#define TRAINOPT_LIB_RUNTIME_CUDA_LIBRARYKERNELS_H

namespace trainopt::rt::cuda {

/// A pool over `planes` (N * C) planes; the spatial window as three dims,
/// leading dims of a 1-D or 2-D pool being 1 (padding 0).
struct PoolParams {
  long long planes;
  long long in[3], k[3], out[3], stride[3], dil[3], padB[3], padE[3];
  long long includePad; // avg pools: count_include_pad
};

/// out[outer, outAxis, inner] = 0; out[o, idx[p], i] += updates[o, p, i].
struct ScatterAddParams {
  long long outer, axis, count, inner;
};

/// out = the k-th smallest of x's `count` elements (k one i64 on the
/// device); one block, a most-significant-digit radix select.
struct KthSmallestParams {
  long long count;
};

/// Fills `bytes` bytes with an 8-byte pattern (a 1-, 2- or 4-byte pattern
/// goes through cuMemsetD*).
struct FillParams {
  unsigned long long pattern;
  long long words; // 8-byte words
};

} // namespace trainopt::rt::cuda

#endif // TRAINOPT_LIB_RUNTIME_CUDA_LIBRARYKERNELS_H
