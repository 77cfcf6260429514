//===- Passes.h - trainopt transformation passes ----------------*- C++ -*-===//
//
/// \file
/// Declarations of the trainopt passes (generated from Passes.td).
//
//===----------------------------------------------------------------------===//

#ifndef TRAINOPT_DIALECT_TRAINOPT_TRANSFORMS_PASSES_H
#define TRAINOPT_DIALECT_TRAINOPT_TRANSFORMS_PASSES_H

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/IR/BuiltinOps.h"
#include "mlir/Pass/Pass.h"

namespace mlir::trainopt {

#define GEN_PASS_DECL
#include "trainopt/Dialect/Trainopt/Transforms/Passes.h.inc"

/// Which arguments `differentiate` produces gradients for.
enum class GradientArguments { Trainable, Float };

/// Adds `@<func>_grad` returning the loss (result `lossIndex` of `func`),
/// or with `keepResults` every result of `func`, followed by the gradients
/// with respect to the selected arguments. Reports every op without a VJP
/// in one error and fails.
FailureOr<func::FuncOp> differentiate(func::FuncOp func, unsigned lossIndex,
                                      GradientArguments wrt,
                                      bool keepResults = false);

#define GEN_PASS_REGISTRATION
#include "trainopt/Dialect/Trainopt/Transforms/Passes.h.inc"

} // namespace mlir::trainopt

#endif // TRAINOPT_DIALECT_TRAINOPT_TRANSFORMS_PASSES_H
