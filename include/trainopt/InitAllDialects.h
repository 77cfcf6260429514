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

#include "mlir/IR/DialectRegistry.h"
#include "mlir/InitAllDialects.h"
#include "mlir/InitAllExtensions.h"

namespace mlir::trainopt {

/// Adds every dialect a trainopt tool may read or produce to `registry`.
inline void registerAllDialects(DialectRegistry &registry) {
  registry.insert<TrainoptDialect>();
  // The upstream dialects the backends lower through (linalg, bufferization,
  // scf, memref, llvm, gpu, nvvm, ...), with their interface models.
  mlir::registerAllDialects(registry);
  mlir::registerAllExtensions(registry);
}

} // namespace mlir::trainopt

#endif // TRAINOPT_INITALLDIALECTS_H
