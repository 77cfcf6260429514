//===- CUDATarget.h - the CUDA backend's compiler side ----------*- C++ -*-===//
//
/// \file
/// Code generation for NVIDIA GPUs (`trainopt-compile --target=cuda`). The
/// kernels come from the same tensor-level kernel pipeline as the CPU's
/// (`buildCPUKernelPipeline`: inline, trainopt -> linalg, elementwise
/// fusion, outlining); each outlined kernel is bufferized, its loops folded
/// (KernelModule.h), its parallel loops put outermost, and every loop nest
/// becomes one GPU kernel: the parallel iterations folded into one index,
/// cut into blocks of `blockSize` threads, one thread per iteration (the
/// reductions run inside the thread), lowered gpu -> NVVM -> PTX through
/// LLVM's NVPTX back end.
///
/// So far this produces PTX (`--emit=ptx`); the artifact and the CUDA
/// runtime that launches it are the next steps of the CUDA issue.
//
//===----------------------------------------------------------------------===//

#ifndef TRAINOPT_TARGET_CUDA_CUDATARGET_H
#define TRAINOPT_TARGET_CUDA_CUDATARGET_H

#include "mlir/IR/BuiltinOps.h"

#include <string>
#include <vector>

namespace mlir::trainopt {

struct CUDATargetOptions {
  /// The GPU architecture, `sm_<major><minor>` (default: the H100's).
  std::string arch = "sm_90";
  /// The CUDA toolkit, for libdevice (`nvvm/libdevice/libdevice.10.bc`),
  /// which math functions (exp, log, tanh, ...) are linked from.
  std::string cudaPath = "/usr/local/cuda";
  /// Threads per block of the generated kernels.
  int64_t blockSize = 256;
  /// Where to leave the GPU module before PTX (empty: nowhere).
  std::string keepDir;
};

/// One GPU kernel launch of a trainopt kernel: the PTX entry, its grid and
/// block (1-D), and for each PTX parameter the trainopt kernel buffer it
/// takes (input index, then outputs after the inputs), or -1 for a scalar
/// the kernel was compiled with.
struct GPULaunch {
  std::string entry;
  int64_t grid = 0, block = 0;
  std::vector<int64_t> buffers;
};

struct GPUKernel {
  std::string name;              ///< the trainopt kernel
  std::vector<GPULaunch> launches; ///< in order
  std::string ptx;               ///< one PTX module for all its launches
};

/// Checks `arch` (sm_<digits>); otherwise sets `error`.
bool isValidCUDAArch(const std::string &arch, std::string &error);

/// Compiles every outlined kernel (`trainopt.kernel` function) of `module`,
/// which has been through the kernel pipeline, to PTX. Emits diagnostics
/// and fails on what it cannot compile.
FailureOr<std::vector<GPUKernel>>
compileKernelsToPTX(ModuleOp module, const CUDATargetOptions &options);

} // namespace mlir::trainopt

#endif // TRAINOPT_TARGET_CUDA_CUDATARGET_H
