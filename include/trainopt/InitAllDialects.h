//===- InitAllDialects.h - register trainopt's dialects ---------*- C++ -*-===//
//
/// \file
/// Registers the trainopt dialect and the upstream dialects that trainopt's
/// tools and pipelines work with.
//
//===----------------------------------------------------------------------===//

#ifndef TRAINOPT_INITALLDIALECTS_H
#define TRAINOPT_INITALLDIALECTS_H

#include "trainopt/Dialect/Trainopt/IR/TrainoptDialect.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/Dialect/Math/IR/Math.h"
#include "mlir/Dialect/Tensor/IR/Tensor.h"
#include "mlir/IR/DialectRegistry.h"

namespace mlir::trainopt {

/// Adds every dialect a trainopt tool may read or produce to `registry`.
inline void registerAllDialects(DialectRegistry &registry) {
  registry.insert<TrainoptDialect, func::FuncDialect, arith::ArithDialect,
                  math::MathDialect, tensor::TensorDialect>();
}

} // namespace mlir::trainopt

#endif // TRAINOPT_INITALLDIALECTS_H
