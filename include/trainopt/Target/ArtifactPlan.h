//===- ArtifactPlan.h - the target-independent part of an artifact -*- C++ -*-===//
//
/// \file
/// What every target writes into a `.trainopt` artifact from a module that
/// has been through the kernel pipeline: the signature of `@train_step` and
/// `@eval_step`, initial values, the memory plan (one arena: persistent
/// buffers, then scratch shared by the entry points; the plan of each entry
/// point is the analysis of MemoryPlan.h, serialized here) and the
/// command lists (kernel launches by outlined-kernel name with their
/// buffers, library calls `<prefix>.<function>` with the integer
/// descriptors of include/trainopt/Runtime/CPULibrary.h, copies). The target
/// then adds its kernel binaries and may rewrite the launches (the CUDA
/// target expands each into its GPU launches).
//
//===----------------------------------------------------------------------===//

#ifndef TRAINOPT_TARGET_ARTIFACTPLAN_H
#define TRAINOPT_TARGET_ARTIFACTPLAN_H

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/IR/BuiltinOps.h"
#include "llvm/Support/JSON.h"

namespace trainopt::artifact {
class Artifact;
} // namespace trainopt::artifact

namespace mlir::trainopt {

/// Fills `artifact` (target name, signature, initial values, memory plan,
/// commands) and the target-independent fields of `report`; library calls
/// are named `<libraryPrefix>.<function>` ("cpu.matmul", "cuda.conv").
/// Returns the kernels the commands launch, in first-launch order. Emits
/// diagnostics and fails on what it cannot compile.
FailureOr<SmallVector<func::FuncOp>>
emitArtifactPlan(ModuleOp module, StringRef target, StringRef libraryPrefix,
                 ::trainopt::artifact::Artifact &artifact,
                 llvm::json::Object &report);

} // namespace mlir::trainopt

#endif // TRAINOPT_TARGET_ARTIFACTPLAN_H
