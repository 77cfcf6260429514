//===- TargetPasses.h - trainopt target passes ------------------*- C++ -*-===//
//
/// \file
/// Passes over the kernel-level module that the targets share (generated
/// from TargetPasses.td).
//
//===----------------------------------------------------------------------===//

#ifndef TRAINOPT_TARGET_TARGETPASSES_H
#define TRAINOPT_TARGET_TARGETPASSES_H

#include "mlir/IR/BuiltinOps.h"
#include "mlir/Pass/Pass.h"

namespace mlir::trainopt {

#define GEN_PASS_DECL
#include "trainopt/Target/TargetPasses.h.inc"

#define GEN_PASS_REGISTRATION
#include "trainopt/Target/TargetPasses.h.inc"

} // namespace mlir::trainopt

#endif // TRAINOPT_TARGET_TARGETPASSES_H
