//===- KernelCodegen.h - kernels to a native shared object ------*- C++ -*-===//
//
/// \file
/// Internal to the CPU target: compiles outlined kernels to the bytes of a
/// shared object whose `<kernel>_packed(void **buffers)` functions take the
/// kernel's input buffers, then its output buffers.
//
//===----------------------------------------------------------------------===//

#ifndef TRAINOPT_LIB_TARGET_CPU_KERNELCODEGEN_H
#define TRAINOPT_LIB_TARGET_CPU_KERNELCODEGEN_H

#include "trainopt/Target/CPU/CPUTarget.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"

namespace mlir::trainopt {

FailureOr<std::string> compileKernels(ModuleOp module,
                                      ArrayRef<func::FuncOp> kernels,
                                      const CPUTargetOptions &options);

} // namespace mlir::trainopt

#endif // TRAINOPT_LIB_TARGET_CPU_KERNELCODEGEN_H
