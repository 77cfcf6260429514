//===- fuzz_onnx.cpp - libFuzzer: the ONNX importer -----------------------===//
//
/// \file
/// importONNXModel (include/trainopt/Import/ONNX/ONNXImporter.h) on the
/// input as a model file, then what `trainopt-compile --emit=mlir` does
/// with the result: verify it and print it. An imported, valid module or
/// one error, never a crash, a hang, a sanitizer report or a module that
/// fails the verifier. The model sits
/// alone in a per-process directory under /dev/shm, so external data can
/// only name the model itself or missing files.
///
/// One MLIRContext serves kInputsPerContext inputs, then a fresh one takes
/// its place. Loading the dialects into a context cost more than most
/// imports, and its coverage, the same on every input, made libFuzzer's
/// feature bookkeeping most of the rest (805 inputs/s with a context per
/// input). Replacing the context bounds what uniqued attributes and types
/// accumulate. A crash found mid-context reproduces from its input alone
/// (the first input of a fresh context) unless it depends on what earlier
/// inputs left in the context; that would be a finding too.
//
//===----------------------------------------------------------------------===//

#include "trainopt/Import/ONNX/ONNXImporter.h"

#include "mlir/IR/Diagnostics.h"
#include "mlir/IR/Verifier.h"
#include "llvm/Support/raw_ostream.h"

#include <cerrno>
#include <cstdio>
#include <memory>
#include <string>
#include <sys/stat.h>
#include <unistd.h>

/// Inputs imported in one MLIRContext before it is replaced.
constexpr unsigned kInputsPerContext = 64;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  static const std::string dir =
      "/dev/shm/trainopt-fuzz-onnx-" + std::to_string(::getpid());
  static const bool made = ::mkdir(dir.c_str(), 0700) == 0 || errno == EEXIST;
  if (!made)
    return 0;
  const std::string path = dir + "/model.onnx";
  std::FILE *f = std::fopen(path.c_str(), "wb");
  if (!f)
    return 0;
  if (size)
    std::fwrite(data, 1, size, f);
  std::fclose(f);

  static std::unique_ptr<mlir::MLIRContext> context;
  static unsigned served = 0;
  if (!context || served++ == kInputsPerContext) {
    context.reset(); // before the new one: one context's memory at a time
    context = std::make_unique<mlir::MLIRContext>(
        mlir::MLIRContext::Threading::DISABLED);
    // Errors are the expected outcome for most inputs; keep them quiet.
    context->getDiagEngine().registerHandler(
        [](mlir::Diagnostic &) { return mlir::success(); });
    served = 1;
  }
  mlir::trainopt::ONNXImportOptions options;
  options.batchSize = 2;
  mlir::OwningOpRef<mlir::ModuleOp> module =
      mlir::trainopt::importONNXModel(context.get(), path, options);
  if (!module)
    return 0;
  // A module the importer returns must verify: an invalid one is an
  // importer bug, reported as a crash.
  if (mlir::failed(mlir::verify(*module))) {
    std::fprintf(stderr,
                 "fuzz_onnx: the importer returned an invalid module\n");
    __builtin_trap();
  }
  std::string text;
  llvm::raw_string_ostream os(text);
  module->print(os);
  return 0;
}
