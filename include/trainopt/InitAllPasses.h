//===- InitAllPasses.h - register trainopt's passes -------------*- C++ -*-===//
//
/// \file
/// Registers trainopt's passes and the upstream passes its pipelines use, so
/// `trainopt-opt` can run each one alone.
//
//===----------------------------------------------------------------------===//

#ifndef TRAINOPT_INITALLPASSES_H
#define TRAINOPT_INITALLPASSES_H

#include "trainopt/Dialect/Trainopt/Transforms/Passes.h"

#include "mlir/Transforms/Passes.h"

namespace mlir::trainopt {

/// Registers the passes `trainopt-opt` exposes.
inline void registerAllPasses() {
  registerTrainoptPasses();
  // Upstream generic passes (canonicalize, cse, symbol-dce, ...).
  registerTransformsPasses();
}

} // namespace mlir::trainopt

#endif // TRAINOPT_INITALLPASSES_H
