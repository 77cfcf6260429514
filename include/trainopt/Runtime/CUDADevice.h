//===- CUDADevice.h - a training program on one NVIDIA GPU -------*- C++
//-*-===//
//
/// \file
/// The CUDA half of the runtime (lib/Runtime/CUDA). `Program` (Program.h)
/// checks an artifact once for every target, resolves each buffer name to
/// an arena region, and hands a `cuda` artifact to a `CUDAProgram`, which:
///
/// - loads the CUDA driver, cuBLASLt and cuDNN with dlopen (a machine
///   without them runs CPU artifacts and is told what is missing);
/// - makes one device allocation for the arena, sized by the memory plan,
///   plus the library workspaces, and pinned host mirrors of the values the
///   host reads or writes (inputs, outputs, persistent values);
/// - loads the kernel module (the cubin when it matches the GPU, else the
///   PTX, JIT-compiled by the driver) and the runtime's own library kernels;
/// - plans every library call once (cuBLASLt layouts and algorithm, cuDNN
///   descriptors and algorithm);
/// - runs an entry point as: its inputs copied host -> device on an upload
///   stream (into one of two landing buffers), then on the compute stream a
///   device copy into the arena, the commands and the outputs device ->
///   host. The second run of an entry point captures the commands and
///   output copies as a CUDA graph; later runs replay it with one launch
///   (`graphs = false` launches the commands one by one).
///
/// `run` returns once the work is queued. Reading an output waits for it.
/// Inputs alternate between two host/landing buffer sets, so the host can
/// write the next batch, and `stageInputs` upload it, while the GPU is
/// still computing the current step.
//
//===----------------------------------------------------------------------===//

#ifndef TRAINOPT_RUNTIME_CUDADEVICE_H
#define TRAINOPT_RUNTIME_CUDADEVICE_H

#include "trainopt/Runtime/Device.h"

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace trainopt::rt {

struct CUDAOptions {
  /// Capture each entry point as a CUDA graph and replay it.
  bool graphs = true;
  /// Let float32 matmuls and convolutions use TF32 tensor cores (PyTorch's
  /// `allow_tf32`); off: full float32 arithmetic.
  bool tf32 = true;
  /// Synchronize after every command, so an asynchronous fault names its
  /// command (slow; implies graphs = false).
  bool syncEachCommand = false;
  /// Time every command with CUDA events (implies graphs = false).
  bool profile = false;
  /// The GPU, by CUDA ordinal.
  int device = 0;
};

/// The CUDA names of the device structures (Device.h).
using CUDACommand = DeviceCommand;
using CUDAEntry = DeviceEntry;
using CUDAProgramSpec = DeviceProgramSpec;

class CUDAProgram : public Device {
public:
  /// Opens the GPU and prepares `spec`; null with `error` set on failure
  /// (naming the library, the kernel or the command).
  static std::unique_ptr<CUDAProgram> create(const CUDAProgramSpec &spec,
                                             const CUDAOptions &options,
                                             std::string &error);
  ~CUDAProgram() override;
};

/// Whether a CUDA device can be opened here, and which; for `trainopt-run
/// --cuda-info` and the test suite's `cuda` feature.
bool probeCUDA(std::string &description, std::string &error);

} // namespace trainopt::rt

#endif // TRAINOPT_RUNTIME_CUDADEVICE_H
