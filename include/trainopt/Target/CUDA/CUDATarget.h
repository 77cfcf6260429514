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
/// All GPU kernels go into one PTX module (and a cubin, through ptxas, when
/// the toolkit has it). The CUDA runtime that launches them is the next
/// step of the CUDA issue.
//
//===----------------------------------------------------------------------===//

#ifndef TRAINOPT_TARGET_CUDA_CUDATARGET_H
#define TRAINOPT_TARGET_CUDA_CUDATARGET_H

#include "mlir/IR/BuiltinOps.h"
#include "llvm/Support/JSON.h"

#include <string>
#include <vector>

namespace trainopt::artifact {
class Artifact;
} // namespace trainopt::artifact

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
/// takes (an index into the kernel's inputs, then its outputs).
struct GPULaunch {
  std::string entry;
  int64_t grid = 0, block = 0;
  std::vector<int64_t> buffers;
};

struct GPUKernel {
  std::string name;                ///< the trainopt kernel
  std::vector<GPULaunch> launches; ///< in order
};

/// All kernels of a module: one PTX module holds every entry.
struct GPUKernels {
  std::vector<GPUKernel> kernels;
  std::string ptx;
};

/// Checks `arch` (sm_<digits>); otherwise sets `error`.
bool isValidCUDAArch(const std::string &arch, std::string &error);

/// Compiles every outlined kernel (`trainopt.kernel` function) of `module`,
/// which has been through the kernel pipeline, to PTX. Emits diagnostics
/// and fails on what it cannot compile.
FailureOr<GPUKernels> compileKernelsToPTX(ModuleOp module,
                                          const CUDATargetOptions &options);

/// Assembles `ptx` for `options.arch` with the toolkit's ptxas into a
/// cubin; fails (with a diagnostic on `module`) when ptxas rejects it.
/// Returns an empty string when there is no ptxas.
FailureOr<std::string> assemblePTX(ModuleOp module, const std::string &ptx,
                                   const CUDATargetOptions &options);

/// Fills `artifact` for --target=cuda: the target-independent plan
/// (ArtifactPlan.h) with `cuda.*` library calls, every kernel launch
/// expanded into its GPU launches (entry, grid, block, buffers), and the
/// kernels as one PTX binary plus, when ptxas is present, its cubin for
/// `options.arch`.
LogicalResult emitCUDAArtifact(ModuleOp module,
                               const CUDATargetOptions &options,
                               ::trainopt::artifact::Artifact &artifact,
                               llvm::json::Object &report);

} // namespace mlir::trainopt

#endif // TRAINOPT_TARGET_CUDA_CUDATARGET_H
