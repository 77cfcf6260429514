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

#include "mlir/IR/AsmState.h"
#include "mlir/IR/Diagnostics.h"
#include "mlir/IR/MLIRContext.h"
#include "mlir/Support/FileUtilities.h"
#include "llvm/Support/CommandLine.h"
#include "llvm/Support/InitLLVM.h"
#include "llvm/Support/ToolOutputFile.h"
#include "llvm/Support/WithColor.h"

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
         cl::desc("What to write: 'mlir' stops after import (the only stage "
                  "available in this build)"),
         cl::init("mlir"), cl::cat(category));
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
  if (emit != "mlir")
    return error("--emit=" + emit +
                 " is not available; this build supports --emit=mlir");
  if (batchSize.getNumOccurrences() && batchSize <= 0)
    return error("--batch-size must be a positive integer, got " +
                 Twine(batchSize));

  mlir::DialectRegistry registry;
  mlir::trainopt::registerAllDialects(registry);
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
