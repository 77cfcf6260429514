//===- KernelModule.h - outlined kernels as bufferized functions -*- C++ -*-===//
//
/// \file
/// What every target's kernel code generation starts from (CPU: a native
/// shared object; CUDA: PTX): the outlined tensor kernels of the kernel
/// pipeline (`trainopt.kernel` functions), rewritten in destination-passing
/// style over memrefs (inputs, then outputs; no results) and bufferized in
/// place, in a module of their own; and the loop folding both targets
/// want before lowering.
//
//===----------------------------------------------------------------------===//

#ifndef TRAINOPT_TARGET_KERNELMODULE_H
#define TRAINOPT_TARGET_KERNELMODULE_H

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/IR/BuiltinOps.h"
#include "mlir/IR/OwningOpRef.h"

namespace mlir::trainopt {

/// A new module (in `module`'s context) with one memref function per
/// kernel, same name, taking the kernel's inputs then its outputs, after
/// eliminate-empty-tensors, one-shot-bufferize and canonicalize. Emits a
/// diagnostic on `module` and fails when bufferization fails.
FailureOr<OwningOpRef<ModuleOp>>
buildBufferizedKernels(ModuleOp module, ArrayRef<func::FuncOp> kernels);

/// Drops unit dims and folds consecutive loops that every operand walks
/// contiguously into one (upstream populateFoldUnitExtentDimsPatterns and
/// populateCollapseDimensions), then marks the float additions of
/// reduction bodies `reassoc` so that they may be computed as several
/// partial sums (the order is fixed by the generated code, so results stay
/// the same run to run).
LogicalResult foldKernelLoops(ModuleOp kernelModule);

} // namespace mlir::trainopt

#endif // TRAINOPT_TARGET_KERNELMODULE_H
