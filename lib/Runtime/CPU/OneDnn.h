//===- OneDnn.h - CPU convolutions on oneDNN, loaded at run time -*- C++
//-*-===//
//
/// \file
/// The f32 convolutions and their gradients of the CPU library (`cpu.conv`,
/// `cpu.conv_grad_input`, `cpu.conv_grad_filter`) on oneDNN's own kernels, for
/// the library's NCHW buffers: each call reorders its operands into the blocked
/// layouts oneDNN's kernels prefer and its result back. oneDNN is opened with
/// dlopen on first use, as OpenBLAS is, so the runtime starts without it and
/// then uses its own im2col convolutions. Private to lib/Runtime/CPU.
//
//===----------------------------------------------------------------------===//

#ifndef TRAINOPT_RUNTIME_CPU_ONEDNN_H
#define TRAINOPT_RUNTIME_CPU_ONEDNN_H

#include "trainopt/Artifact/LibraryCalls.h"

#include <string>

namespace trainopt::rt {

/// The directions oneDNN computes. Filter gradients run in fixed parts of
/// the output channels, one thread each (OneDnn.cpp, Plan), so their bits
/// do not depend on the thread count; only ungrouped ones.
enum class ConvDirection { Forward, GradInput, GradFilter };

/// Runs one f32 convolution direction on oneDNN with `threads` threads, over
/// the buffers that CPULibrary.h documents for it. Returns false when oneDNN
/// is not loaded, has no primitive for the call or fails; the caller then
/// computes the whole output itself.
bool oneDnnConv(ConvDirection direction, const calls::ConvCall &call,
                void *const *buffers, int threads);

/// Whether oneDNN could be loaded; if not, `why` says what failed.
bool oneDnnAvailable(std::string &why);

} // namespace trainopt::rt

#endif // TRAINOPT_RUNTIME_CPU_ONEDNN_H
