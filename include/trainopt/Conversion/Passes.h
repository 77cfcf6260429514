//===- Passes.h - trainopt conversion passes --------------------*- C++ -*-===//
//
/// \file
/// Lowering from the trainopt dialect to linalg on tensors and the outlining
/// of kernels, the first half of the backends' pipeline.
//
//===----------------------------------------------------------------------===//

#ifndef TRAINOPT_CONVERSION_PASSES_H
#define TRAINOPT_CONVERSION_PASSES_H

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/Dialect/Linalg/IR/Linalg.h"
#include "mlir/Dialect/Math/IR/Math.h"
#include "mlir/Dialect/Tensor/IR/Tensor.h"
#include "mlir/IR/BuiltinOps.h"
#include "mlir/IR/PatternMatch.h"
#include "mlir/Pass/Pass.h"

namespace mlir::trainopt {

#define GEN_PASS_DECL
#include "trainopt/Conversion/Passes.h.inc"

/// Patterns that lower every non-library trainopt op to linalg on tensors.
void populateTrainoptToLinalgPatterns(RewritePatternSet &patterns);

/// True for the ops the backends implement with a library call.
bool isLibraryOp(Operation *op);

/// True for the ops the runtime runs between ranks (all_reduce, all_gather,
/// rank_slice): they stay in the step program as commands.
bool isCollectiveOp(Operation *op);

#define GEN_PASS_REGISTRATION
#include "trainopt/Conversion/Passes.h.inc"

} // namespace mlir::trainopt

#endif // TRAINOPT_CONVERSION_PASSES_H
