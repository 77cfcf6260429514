//===- InitAllPasses.h - register trainopt's passes -------------*- C++ -*-===//
//
/// \file
/// Registers trainopt's passes and the upstream passes its pipelines use, so
/// `trainopt-opt` can run each one alone.
//
//===----------------------------------------------------------------------===//

#ifndef TRAINOPT_INITALLPASSES_H
#define TRAINOPT_INITALLPASSES_H

#include "trainopt/Conversion/Passes.h"
#include "trainopt/Dialect/Trainopt/Transforms/Passes.h"
#include "trainopt/Dialect/Trainopt/Transforms/TrainingPipeline.h"
#include "trainopt/Target/CPU/CPUTarget.h"
#include "trainopt/Target/TargetPasses.h"

#include "mlir/InitAllPasses.h"

namespace mlir::trainopt {

/// Registers the passes `trainopt-opt` exposes.
inline void registerAllPasses() {
  registerTrainoptPasses();
  registerTrainingPipeline();
  registerTrainoptConversionPasses();
  registerTrainoptTargetPasses();
  registerCPUPipelines();
  // Upstream passes, so every step of the backend pipelines can be run alone.
  mlir::registerAllPasses();
}

} // namespace mlir::trainopt

#endif // TRAINOPT_INITALLPASSES_H
