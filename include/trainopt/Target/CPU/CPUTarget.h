//===- CPUTarget.h - the CPU backend ----------------------------*- C++ -*-===//
//
/// \file
/// The CPU backend: the tensor-level pipeline (inline, lower to linalg, fuse
/// elementwise chains, outline kernels), then the artifact emitter, which
/// plans memory (one arena, liveness-based offsets, in-place reuse and
/// buffer donation), turns each entry point into a command list (kernel
/// launches, BLAS/convolution library calls, copies) and compiles the
/// kernels through linalg -> loops -> LLVM into one native shared object.
//
//===----------------------------------------------------------------------===//

#ifndef TRAINOPT_TARGET_CPU_CPUTARGET_H
#define TRAINOPT_TARGET_CPU_CPUTARGET_H

#include "mlir/IR/BuiltinOps.h"
#include "mlir/Pass/PassManager.h"
#include "mlir/Support/Timing.h"
#include "llvm/Support/JSON.h"

#include <string>

namespace trainopt::artifact {
class Artifact;
} // namespace trainopt::artifact

namespace mlir::trainopt {

struct CPUTargetOptions {
  /// LLVM CPU name for the kernels ("x86-64-v3", ...); empty: this host.
  std::string cpu;
  /// LLVM optimization level of the kernels (0 to 3).
  unsigned optLevel = 3;
  /// The C compiler driver that links the kernel object into a shared
  /// object.
  std::string linker = "cc";
  /// Where to leave the kernel module, LLVM IR and object (empty: nowhere).
  std::string keepDir;
  /// The kernels are compiled in groups of at least this many operations,
  /// side by side on the context's threads (KernelCodegen.cpp).
  int64_t groupOps = 1500;
};

/// Adds the tensor-level CPU pipeline: inline the train step's calls, drop
/// the functions nothing calls any more, lower trainopt to linalg and fuse
/// elementwise chains (each entry point on its own thread), outline
/// kernels.
void buildCPUKernelPipeline(OpPassManager &pm);

/// Registers `trainopt-cpu-kernel-pipeline` with the pass registry.
void registerCPUPipelines();

/// Fills `artifact` (signature, initial values, memory plan, commands,
/// kernel binary) from `module`, which has been through the kernel
/// pipeline, and describes the decisions in `report`. Emits diagnostics and
/// fails on what it cannot compile. Its phases are timed under `timing`.
LogicalResult emitCPUArtifact(ModuleOp module, const CPUTargetOptions &options,
                              ::trainopt::artifact::Artifact &artifact,
                              llvm::json::Object &report, TimingScope &timing);

} // namespace mlir::trainopt

#endif // TRAINOPT_TARGET_CPU_CPUTARGET_H
