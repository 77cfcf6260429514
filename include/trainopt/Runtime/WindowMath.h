//===- WindowMath.h - the taps of a conv/pool window, host and device -*- C++
//-*-===//
//
/// \file
/// Which kernel taps of one spatial dim of a convolution or pooling window
/// land inside the input, and how many land inside the input or its end
/// padding (count_include_pad), as the evaluator defines them. Shared by
/// the CPU library (lib/Runtime/CPU/Library.cpp) and the CUDA library's
/// kernels (lib/Runtime/CUDA/LibraryKernels.cu), so both compute the same
/// windows. No dependencies; compiles as host C++ and as CUDA device code.
//
//===----------------------------------------------------------------------===//

#ifndef TRAINOPT_RUNTIME_WINDOWMATH_H
#define TRAINOPT_RUNTIME_WINDOWMATH_H

#ifdef __CUDACC__
#define TRAINOPT_HOST_DEVICE __host__ __device__
#else
#define TRAINOPT_HOST_DEVICE
#endif

namespace trainopt::rt {

/// The taps [lo, hi) of a dim with input size `in`, kernel `k`, `stride`,
/// `dil`ation and begin padding `padB` that land inside the input for
/// output position `o`.
template <typename I>
TRAINOPT_HOST_DEVICE inline void windowTaps(I o, I in, I k, I stride, I dil,
                                            I padB, I &lo, I &hi) {
  I base = o * stride - padB;
  lo = base >= 0 ? 0 : (-base + dil - 1) / dil;
  I room = in - base; // taps need k * dil < room
  hi =
      room <= 0 ? 0 : (k < (room + dil - 1) / dil ? k : (room + dil - 1) / dil);
  if (hi < lo)
    hi = lo;
}

/// The taps of that dim inside the input or its end padding `padE`: the
/// evaluator counts a tap whose position is below in + padE.
template <typename I>
TRAINOPT_HOST_DEVICE inline I windowPaddedTaps(I o, I in, I k, I stride, I dil,
                                               I padB, I padE) {
  I room = in + padE - (o * stride - padB);
  I n = (room + dil - 1) / dil;
  return room <= 0 ? 0 : (k < n ? k : n);
}

} // namespace trainopt::rt

#endif // TRAINOPT_RUNTIME_WINDOWMATH_H
