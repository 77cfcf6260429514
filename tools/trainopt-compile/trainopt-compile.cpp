//===- trainopt-compile.cpp - the trainopt compiler driver ----------------===//
//
/// \file
/// `trainopt-compile MODEL -o OUT [--emit=...] [--target=cpu]`: the command
/// line of the compiler library (Compiler/Driver.h, docs/cli.md).
//
//===----------------------------------------------------------------------===//

#include "trainopt/Compiler/Driver.h"

#include "llvm/Support/FileSystem.h"
#include "llvm/Support/InitLLVM.h"
#include "llvm/Support/Path.h"

int main(int argc, char **argv) {
  llvm::InitLLVM init(argc, argv);
  mlir::trainopt::CompileDriverEnvironment env;
  llvm::SmallString<256> runner(llvm::sys::path::parent_path(
      llvm::sys::fs::getMainExecutable(argv[0], (void *)&main)));
  llvm::sys::path::append(runner, "trainopt-run");
  env.runnerPath = runner.str().str();
  return mlir::trainopt::runCompileDriver(argc, argv, env);
}
