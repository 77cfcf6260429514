//===- Compile.h - the compiler as a library ---------------------*- C++ -*-===//
//
/// \file
/// Import -> training pipeline -> backend pipeline -> artifact, as
/// functions: what `trainopt-compile` calls (the tool keeps argument
/// handling and file writing) and what the Python package will call.
/// Diagnostics go to the context's handlers; nothing is written to disk.
//
//===----------------------------------------------------------------------===//

#ifndef TRAINOPT_COMPILER_COMPILE_H
#define TRAINOPT_COMPILER_COMPILE_H

#include "trainopt/Dialect/Trainopt/Transforms/TrainingPipeline.h"
#include "trainopt/Import/ONNX/ONNXImporter.h"
#include "trainopt/Target/CPU/CPUTarget.h"
#include "trainopt/Target/CUDA/CUDATarget.h"

#include "mlir/IR/BuiltinOps.h"
#include "mlir/IR/OwningOpRef.h"
#include "mlir/Support/Timing.h"
#include "llvm/Support/JSON.h"

#include <string>

namespace trainopt::artifact {
class Artifact;
} // namespace trainopt::artifact

namespace mlir::trainopt {

/// How far `compileModule` goes.
enum class CompileStage {
  Import,  ///< the model function `@forward` (--emit=mlir)
  Train,   ///< plus @train_step and @eval_step (--emit=train-mlir)
  Kernels, ///< plus the backend's kernel pipeline (--emit=kernel-mlir)
};

struct CompileOptions {
  /// An ONNX model, or a trainopt MLIR module (recognized by content).
  std::string inputPath;
  /// ONNX only: an MLIR input with any of these set is an error.
  ONNXImportOptions import;
  /// A distillation teacher (ONNX or a trainopt MLIR module), imported at
  /// the same batch size into the student's module (Distill.h).
  std::string teacherPath;
  TrainingPipelineOptions training;
  /// Also return every intermediate value of @train_step (difftest).
  bool probeValues = false;
  /// "cpu" or "cuda".
  std::string target = "cpu";
  CPUTargetOptions cpu;
  CUDATargetOptions cuda;
  /// Where each stage and pass records its time (--time-report); null:
  /// nothing is timed.
  TimingScope *timing = nullptr;
  /// Under --amp: also plan the same model without mixed precision and
  /// report its arena (`fp32_arena_bytes`, --report). Costs a second pass
  /// through the training and kernel pipelines, no code generation.
  bool reportFp32Arena = false;
};

/// `trainopt-compile --prune-compact`: with `--prune=channel:l1:F` chosen
/// at step 0 (`--prune-schedule=oneshot`), removes the channels trainopt-prune
/// would mask from the ONNX model itself before training, so the compiled
/// step computes a smaller model (pruneAndCompactChannels, OnnxExport.h).
/// Writes the compacted model to `compactedPath` (the caller removes it; its
/// file name becomes the model's name, so give it the input's) and points
/// `options.inputPath` at it; the weights compacted lose their masks, the
/// others (kept whole, e.g. before a residual Add) keep them. `report` gets
/// a line per pruned weight.
LogicalResult compactPrunedChannels(MLIRContext &context,
                                    CompileOptions &options,
                                    const std::string &compactedPath,
                                    std::vector<std::string> &report);

/// Whether `path` holds a trainopt MLIR module rather than ONNX: its first
/// non-blank text starts an MLIR module.
bool isMLIRFile(llvm::StringRef path);

/// Imports `options.inputPath` and runs the pipelines up to `stopAfter`.
/// Null on failure (the reasons were reported to the context).
OwningOpRef<ModuleOp> compileModule(MLIRContext &context,
                                    const CompileOptions &options,
                                    CompileStage stopAfter);

/// The artifact of `module` (compiled to `CompileStage::Kernels`) for
/// `options.target`, with what the compiler decided in `report` (also
/// stored in the artifact). The ONNX input, less parameter data, is kept
/// for `--export-onnx`.
LogicalResult buildArtifact(ModuleOp module, const CompileOptions &options,
                            ::trainopt::artifact::Artifact &artifact,
                            llvm::json::Object &report);

/// The pp axis of the mesh in `options` (1 without one).
int64_t pipelineStages(const CompileOptions &options);

/// A pipeline-parallel artifact: every stage compiled (`pipeline-stage` =
/// 0 .. K-1) into an artifact of its own, bundled in `artifact`
/// (`pipeline_stages`); `report` gets each stage's report under "stages".
LogicalResult buildPipelineArtifact(MLIRContext &context,
                                    const CompileOptions &options,
                                    ::trainopt::artifact::Artifact &artifact,
                                    llvm::json::Object &report);

} // namespace mlir::trainopt

#endif // TRAINOPT_COMPILER_COMPILE_H
