//===- TrainingPipeline.h - the training pipeline as data -------*- C++ -*-===//
//
/// \file
/// The training pipeline: loss attachment, precision assignment, the
/// gradient-form step, gradient transforms, schedule, optimizer, eval step.
/// Its options are the
/// stage passes' own options (Passes.td is their one source of names,
/// defaults and help): `trainingOptions()` lists them, `trainopt-compile`
/// makes its training flags from that list, and `buildTrainingPipeline`
/// gives each `name=value` to the stage that declares `name`. Registered
/// in `trainopt-opt` as `trainopt-training-pipeline`.
//
//===----------------------------------------------------------------------===//

#ifndef TRAINOPT_DIALECT_TRAINOPT_TRANSFORMS_TRAININGPIPELINE_H
#define TRAINOPT_DIALECT_TRAINOPT_TRANSFORMS_TRAININGPIPELINE_H

#include "mlir/Pass/PassManager.h"
#include "llvm/Support/CommandLine.h"

#include <string>
#include <utility>
#include <vector>

namespace mlir::trainopt {

/// One option of a training stage, as the stage pass declares it.
struct TrainingOption {
  std::string stage; ///< the pass argument, e.g. trainopt-apply-optimizer
  std::string name;  ///< the option (and trainopt-compile flag) name
  std::string help;
  bool isList = false;
  /// A boolean: `--name` alone means true.
  bool isFlag = false;
};

/// Every option of every training stage, in pipeline order, except the
/// internal `func` options.
const std::vector<TrainingOption> &trainingOptions();

struct TrainingPipelineOptions {
  /// `name=value` pairs, each an option of one stage (list values
  /// comma-separated).
  std::vector<std::pair<std::string, std::string>> values;
};

/// Adds the training stages to `pm` (anchored on the module), each with the
/// values of its options. Fails through `error` on a name no stage
/// declares or a value its stage rejects.
LogicalResult
buildTrainingPipeline(OpPassManager &pm, const TrainingPipelineOptions &options,
                      function_ref<LogicalResult(const Twine &)> error);

/// Registers `trainopt-training-pipeline` (options: any stage option).
void registerTrainingPipeline();

namespace stage_options {
/// Every option of the pass that declares `any` (a pass's options share one
/// llvm::cl::SubCommand), sorted by name, without `func`.
std::vector<TrainingOption> passOptionsOf(const llvm::cl::Option &any,
                                          StringRef stage);
/// The options of each stage, defined beside the stage pass (its options
/// are protected members only the pass class can name).
std::vector<TrainingOption> partitionModelOptions();
std::vector<TrainingOption> lowRankOptions();
std::vector<TrainingOption> quantizeOptions();
std::vector<TrainingOption> pruneOptions();
std::vector<TrainingOption> distillOptions();
std::vector<TrainingOption> attachLossOptions();
std::vector<TrainingOption> assignPrecisionOptions();
std::vector<TrainingOption> splitPipelineOptions();
std::vector<TrainingOption> buildTrainStepOptions();
std::vector<TrainingOption> transformGradientsOptions();
std::vector<TrainingOption> lrScheduleOptions();
std::vector<TrainingOption> applyOptimizerOptions();
std::vector<TrainingOption> buildEvalStepOptions();
std::vector<TrainingOption> schedulePipelineOptions();
std::vector<TrainingOption> shardStepOptions();
} // namespace stage_options

} // namespace mlir::trainopt

#endif // TRAINOPT_DIALECT_TRAINOPT_TRANSFORMS_TRAININGPIPELINE_H
