//===- trainopt-compile.cpp - the trainopt compiler driver ----------------===//
//
/// \file
/// `trainopt-compile MODEL.onnx --emit=mlir -o OUT.mlir [--batch-size N]`
/// imports an ONNX model and writes the trainopt module. Later stages
/// (training passes, code generation, the artifact) hang off `--emit`.
//
//===----------------------------------------------------------------------===//

#include "trainopt/Import/ONNX/ONNXImporter.h"
#include "trainopt/InitAllDialects.h"
#include "trainopt/InitAllPasses.h"

#include "mlir/IR/AsmState.h"
#include "mlir/IR/Diagnostics.h"
#include "mlir/IR/MLIRContext.h"
#include "mlir/Pass/PassManager.h"
#include "mlir/Pass/PassRegistry.h"
#include "mlir/Support/FileUtilities.h"
#include "llvm/Support/CommandLine.h"
#include "llvm/Support/InitLLVM.h"
#include "llvm/Support/ToolOutputFile.h"
#include "llvm/Support/WithColor.h"

#include <map>

using namespace llvm;

static cl::OptionCategory category("trainopt-compile options");

static cl::opt<std::string> inputPath(cl::Positional, cl::desc("<model.onnx>"),
                                      cl::cat(category));
static cl::opt<std::string> outputPath("o",
                                       cl::desc("Output file ('-' for stdout)"),
                                       cl::value_desc("file"),
                                       cl::cat(category));
static cl::opt<bool> listONNXOps(
    "list-onnx-ops",
    cl::desc("Print the supported ONNX ops as 'OP_TYPE SINCE_VERSION' lines "
             "and exit"),
    cl::init(false), cl::cat(category));
static cl::opt<std::string>
    emit("emit",
         cl::desc("What to write: 'mlir' stops after import, 'train-mlir' "
                  "after the training passes (@train_step, @eval_step)"),
         cl::init("mlir"), cl::cat(category));

namespace {
/// A training flag forwarded verbatim to the pass option of the same name.
struct PassFlag {
  const char *pass;
  std::unique_ptr<cl::opt<std::string>> opt;
};
} // namespace

/// The training flags: each is the option of the same name of
/// trainopt-attach-loss or trainopt-build-train-step (docs/cli.md).
static std::vector<PassFlag> &trainingFlags() {
  static std::vector<PassFlag> flags = [] {
    std::vector<PassFlag> f;
    auto add = [&](const char *pass, const char *name, const char *help) {
      f.push_back({pass, std::make_unique<cl::opt<std::string>>(
                             StringRef(name), cl::desc(help),
                             cl::value_desc("value"), cl::cat(category))});
    };
    const char *loss = "trainopt-attach-loss";
    add(loss, "loss", "Loss to attach: cross_entropy, nll or mse");
    add(loss, "labels", "Name of the labels input (default: labels)");
    add(loss, "loss-input", "Output the loss applies to");
    add(loss, "class-axis", "Class axis of the scores: 1 or -1");
    add(loss, "loss-reduction", "mean or sum");
    add(loss, "label-smoothing", "Label smoothing of cross_entropy");
    add(loss, "ignore-index", "Label value that does not count");
    const char *step = "trainopt-build-train-step";
    add(step, "optimizer", "sgd, adam, adamw, adagrad, rmsprop or lamb");
    add(step, "lr", "Learning rate");
    add(step, "momentum", "Momentum (sgd, rmsprop)");
    add(step, "dampening", "Dampening (sgd)");
    add(step, "nesterov", "Nesterov momentum (sgd): true or false");
    add(step, "weight-decay", "Weight decay");
    add(step, "beta1", "First-moment decay (adam, adamw, lamb)");
    add(step, "beta2", "Second-moment decay (adam, adamw, lamb)");
    add(step, "eps", "Denominator term");
    add(step, "alpha", "Smoothing constant (rmsprop)");
    add(step, "lr-decay", "Learning-rate decay (adagrad)");
    add(step, "lr-schedule",
        "constant, step, multistep, exponential, cosine, "
        "linear-warmup or one-cycle");
    add(step, "warmup-steps", "Warmup steps (cosine, linear-warmup)");
    add(step, "total-steps", "Steps of the run (cosine, one-cycle)");
    add(step, "step-size", "Steps between decays (step)");
    add(step, "gamma", "Decay factor (step, multistep, exponential)");
    add(step, "milestones", "Comma-separated decay steps (multistep)");
    add(step, "min-lr", "Final learning rate (cosine)");
    add(step, "pct-start", "Rising fraction of the run (one-cycle)");
    add(step, "div-factor", "Initial rate divisor (one-cycle)");
    add(step, "final-div-factor", "Final rate divisor (one-cycle)");
    add(step, "clip-grad-norm", "Clip gradients to this global L2 norm");
    add(step, "clip-grad-value", "Clamp gradients to [-v, v]");
    add(step, "no-weight-decay",
        "Comma-separated globs of parameters "
        "without weight decay");
    add(step, "bn-momentum", "BatchNorm momentum (PyTorch convention)");
    add(step, "grad-accum", "Micro-batches per optimizer update");
    return f;
  }();
  return flags;
}
static cl::opt<int64_t>
    batchSize("batch-size",
              cl::desc("Binds a symbolic batch dim (dim 0) of every input"),
              cl::init(0), cl::cat(category));
static cl::list<std::string>
    freeze("freeze",
           cl::desc("Comma-separated initializers that stay frozen "
                    "(not trained)"),
           cl::CommaSeparated, cl::cat(category));
static cl::list<std::string> constInputs(
    "const-input",
    cl::desc("NAME=FILE.pb binds graph input NAME to the serialized "
             "TensorProto in FILE.pb (repeatable)"),
    cl::cat(category));
static cl::opt<bool> elideWeights(
    "elide-weights",
    cl::desc("Print parameter values as '...' (smaller, not re-parsable)"),
    cl::init(false), cl::cat(category));

int main(int argc, char **argv) {
  InitLLVM init(argc, argv);
  (void)trainingFlags(); // registers the flags before parsing
  cl::HideUnrelatedOptions(category);
  cl::ParseCommandLineOptions(argc, argv, "trainopt compiler\n");

  auto error = [](const Twine &message) {
    WithColor::error(errs(), "trainopt-compile") << message << "\n";
    return 1;
  };
  if (listONNXOps) {
    for (const mlir::trainopt::ONNXOpSupport &op :
         mlir::trainopt::getSupportedONNXOps())
      outs() << op.opType << " " << op.sinceVersion << "\n";
    return 0;
  }
  if (inputPath.empty())
    return error("no input model; usage: trainopt-compile MODEL.onnx -o OUT");
  if (outputPath.empty())
    return error("no output; pass -o FILE (or -o - for stdout)");
  if (emit != "mlir" && emit != "train-mlir")
    return error("--emit=" + emit +
                 " is not available; this build supports "
                 "--emit=mlir and --emit=train-mlir");
  // The pass pipeline from the flags the user gave (unset flags keep the
  // passes' defaults, so "not given" stays distinguishable).
  std::map<std::string, std::string> passOptions;
  for (PassFlag &flag : trainingFlags()) {
    if (!flag.opt->getNumOccurrences())
      continue;
    if (emit != "train-mlir")
      return error("--" + flag.opt->ArgStr + " needs --emit=train-mlir");
    std::string value = *flag.opt;
    if (value.find_first_of(" {}") != std::string::npos)
      return error("--" + flag.opt->ArgStr + ": invalid value '" + value + "'");
    passOptions[flag.pass] += " " + flag.opt->ArgStr.str() + "=" + value;
  }
  if (batchSize.getNumOccurrences() && batchSize <= 0)
    return error("--batch-size must be a positive integer, got " +
                 Twine(batchSize));

  mlir::DialectRegistry registry;
  mlir::trainopt::registerAllDialects(registry);
  mlir::trainopt::registerAllPasses();
  mlir::MLIRContext context(registry);
  // Import errors name the file, node and op themselves; print them plainly.
  mlir::ScopedDiagnosticHandler diagnostics(&context, [](mlir::Diagnostic &d) {
    raw_ostream &os = d.getSeverity() == mlir::DiagnosticSeverity::Error
                          ? WithColor::error(errs(), "trainopt-compile")
                          : WithColor::note(errs(), "trainopt-compile");
    os << d.str() << "\n";
    return mlir::success();
  });
  mlir::trainopt::ONNXImportOptions options;
  if (batchSize.getNumOccurrences())
    options.batchSize = batchSize;
  options.frozen.assign(freeze.begin(), freeze.end());
  for (const std::string &spec : constInputs) {
    auto [name, file] = StringRef(spec).split('=');
    if (name.empty() || file.empty())
      return error("--const-input expects NAME=FILE.pb, got '" + spec + "'");
    options.constantInputs.push_back({name.str(), file.str()});
  }

  mlir::OwningOpRef<mlir::ModuleOp> module =
      mlir::trainopt::importONNXModel(&context, inputPath, options);
  if (!module)
    return 1;
  if (emit == "train-mlir") {
    mlir::PassManager pm(&context, mlir::ModuleOp::getOperationName());
    std::string pipeline = "trainopt-attach-loss{" +
                           passOptions["trainopt-attach-loss"] +
                           "},trainopt-build-train-step{" +
                           passOptions["trainopt-build-train-step"] + "}";
    if (failed(mlir::parsePassPipeline(pipeline, pm, errs())))
      return error("invalid training options");
    if (failed(pm.run(*module)))
      return 1;
  }

  std::string openError;
  std::unique_ptr<ToolOutputFile> out =
      mlir::openOutputFile(outputPath, &openError);
  if (!out)
    return error("cannot open output '" + outputPath + "': " + openError);
  mlir::OpPrintingFlags flags;
  if (elideWeights)
    flags.elideLargeResourceString(0);
  module->print(out->os(), flags);
  out->os() << "\n";
  if (out->os().has_error())
    return error("cannot write '" + outputPath + "'");
  out->keep();
  return 0;
}
