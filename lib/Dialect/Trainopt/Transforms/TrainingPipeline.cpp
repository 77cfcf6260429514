//===- TrainingPipeline.cpp - the training pipeline as data ---------------===//
//
/// \file
/// The stage list, and the options read from the stage passes themselves.
//
//===----------------------------------------------------------------------===//

#include "trainopt/Dialect/Trainopt/Transforms/TrainingPipeline.h"

#include "trainopt/Dialect/Trainopt/Transforms/Passes.h"

#include "mlir/Pass/PassRegistry.h"
#include "llvm/ADT/StringExtras.h"
#include "llvm/Support/CommandLine.h"

#include "llvm/Support/raw_ostream.h"

#include <algorithm>
#include <fcntl.h>
#include <unistd.h>

using namespace mlir;
using namespace mlir::trainopt;

namespace {

/// The training stages, in pipeline order.
struct Stage {
  const char *arg;
  std::vector<TrainingOption> (*options)();
};
const Stage stages[] = {
    {"trainopt-partition-model", stage_options::partitionModelOptions},
    {"trainopt-low-rank", stage_options::lowRankOptions},
    {"trainopt-quantize", stage_options::quantizeOptions},
    {"trainopt-prune", stage_options::pruneOptions},
    {"trainopt-attach-loss", stage_options::attachLossOptions},
    {"trainopt-distill", stage_options::distillOptions},
    {"trainopt-assign-precision", stage_options::assignPrecisionOptions},
    {"trainopt-split-pipeline", stage_options::splitPipelineOptions},
    {"trainopt-build-train-step", stage_options::buildTrainStepOptions},
    {"trainopt-transform-gradients", stage_options::transformGradientsOptions},
    {"trainopt-lr-schedule", stage_options::lrScheduleOptions},
    {"trainopt-apply-optimizer", stage_options::applyOptimizerOptions},
    {"trainopt-build-eval-step", stage_options::buildEvalStepOptions},
    {"trainopt-schedule-pipeline", stage_options::schedulePipelineOptions},
    {"trainopt-shard-step", stage_options::shardStepOptions},
};

} // namespace

const std::vector<TrainingOption> &mlir::trainopt::trainingOptions() {
  static const std::vector<TrainingOption> options = [] {
    std::vector<TrainingOption> all;
    for (const Stage &stage : stages) {
      std::vector<TrainingOption> own = stage.options();
      all.insert(all.end(), own.begin(), own.end());
    }
    return all;
  }();
  return options;
}

std::vector<TrainingOption>
mlir::trainopt::stage_options::passOptionsOf(const llvm::cl::Option &any,
                                      StringRef stage) {
  std::vector<TrainingOption> own;
  for (llvm::cl::SubCommand *sub : any.Subs)
    for (const auto &entry : sub->OptionsMap) {
      const llvm::cl::Option *o = entry.second;
      if (o->ArgStr == "func")
        continue;
      own.push_back({stage.str(), o->ArgStr.str(), o->HelpStr.str(),
                     (o->getMiscFlags() & llvm::cl::CommaSeparated) != 0 ||
                         o->getNumOccurrencesFlag() == llvm::cl::ZeroOrMore,
                     o->getValueExpectedFlag() == llvm::cl::ValueOptional});
    }
  std::sort(own.begin(), own.end(),
            [](const TrainingOption &a, const TrainingOption &b) {
              return a.name < b.name;
            });
  return own;
}

namespace {
/// Sends stderr to /dev/null while it lives. LLVM's option parsers print
/// their own complaint ("for the --lr option: 'abc' value invalid for
/// floating point argument!") straight to stderr before failing; the
/// message that names the flag is ours.
class QuietStderr {
public:
  QuietStderr() {
    llvm::errs().flush();
    saved = ::dup(2);
    int null = ::open("/dev/null", O_WRONLY | O_CLOEXEC);
    if (saved >= 0 && null >= 0)
      ::dup2(null, 2);
    if (null >= 0)
      ::close(null);
  }
  ~QuietStderr() {
    llvm::errs().flush();
    if (saved >= 0) {
      ::dup2(saved, 2);
      ::close(saved);
    }
  }

private:
  int saved = -1;
};
} // namespace

LogicalResult mlir::trainopt::buildTrainingPipeline(
    OpPassManager &pm, const TrainingPipelineOptions &options,
    function_ref<LogicalResult(const Twine &)> error) {
  llvm::StringMap<std::string> perStage;
  for (const auto &[name, value] : options.values) {
    auto it = llvm::find_if(trainingOptions(), [&, n = name](const TrainingOption &o) {
      return o.name == n;
    });
    if (it == trainingOptions().end())
      return error("'" + name + "' is no option of a training stage");
    if (value.empty() || value.find_first_of(" {}\"'") != std::string::npos)
      return error("--" + name + ": invalid value '" + value + "'");
    // Each value parsed alone first, so a bad one is named (the pass
    // option parser's own message does not say which flag of a stage).
    if (const PassInfo *info = PassInfo::lookup(it->stage)) {
      OpPassManager scratch(pm.getOpAnchorName(), pm.getNesting());
      LogicalResult parsed = failure();
      {
        QuietStderr quiet;
        parsed = info->addToPipeline(scratch, name + "=" + value,
                                     [](const Twine &) { return failure(); });
      }
      if (failed(parsed))
        return error("--" + name + ": invalid value '" + value + "'");
    }
    perStage[it->stage] += " " + name + "=" + value;
  }
  for (const Stage &stage : stages) {
    const PassInfo *info = PassInfo::lookup(stage.arg);
    if (!info)
      return error(Twine("the pass ") + stage.arg + " is not registered");
    if (failed(info->addToPipeline(pm, perStage.lookup(stage.arg), error)))
      return failure();
  }
  return success();
}

void mlir::trainopt::registerTrainingPipeline() {
  registerPassPipeline(
      "trainopt-training-pipeline",
      "The training stages, from a model function to @train_step and "
      "@eval_step; takes the options of every stage "
      "(trainopt-attach-loss ... trainopt-shard-step)",
      [](OpPassManager &pm, StringRef text,
         function_ref<LogicalResult(const Twine &)> error) {
        TrainingPipelineOptions options;
        SmallVector<StringRef> words;
        llvm::SplitString(text, words);
        for (StringRef word : words) {
          auto [name, value] = word.split('=');
          options.values.push_back({name.str(), value.str()});
        }
        return buildTrainingPipeline(pm, options, error);
      },
      [](function_ref<void(const mlir::detail::PassOptions &)>) {});
}
