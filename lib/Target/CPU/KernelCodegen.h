//===- KernelCodegen.h - kernels to a native shared object ------*- C++ -*-===//
//
/// \file
/// Internal to the CPU target: compiles outlined kernels to the bytes of a
/// shared object whose `<kernel>_packed(void **buffers)` functions take the
/// kernel's input buffers, then its output buffers. A kernel whose rows are
/// independent also gets `<kernel>_range_packed(void **buffers, int64_t
/// begin, int64_t end)`, which computes rows [begin, end) of its first
/// loop, so the runtime can share the rows out over threads.
//
//===----------------------------------------------------------------------===//

#ifndef TRAINOPT_LIB_TARGET_CPU_KERNELCODEGEN_H
#define TRAINOPT_LIB_TARGET_CPU_KERNELCODEGEN_H

#include "trainopt/Target/CPU/CPUTarget.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "llvm/ADT/StringMap.h"

namespace mlir::trainopt {

/// A kernel whose first loop splits into independent rows.
struct ParallelKernel {
  int64_t rows = 0; ///< the trip count of the first loop
  int64_t work = 0; ///< iterations of the whole loop nest
};

struct CompiledKernels {
  std::string object; ///< the shared object's bytes
  llvm::StringMap<ParallelKernel> parallel;
  int64_t groups = 0; ///< kernel groups compiled side by side
};

/// Compiles `kernels` (functions of `module`), timing each phase under
/// `timing`.
FailureOr<CompiledKernels> compileKernels(ModuleOp module,
                                          ArrayRef<func::FuncOp> kernels,
                                          const CPUTargetOptions &options,
                                          TimingScope &timing);

} // namespace mlir::trainopt

#endif // TRAINOPT_LIB_TARGET_CPU_KERNELCODEGEN_H
