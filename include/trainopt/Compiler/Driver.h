//===- Driver.h - the trainopt-compile command line as a library -*- C++
//-*-===//
//
/// \file
/// `trainopt-compile ARGS...` as a function: parses the flags
/// (docs/cli.md), compiles and writes what --emit asks for. The tool's main
/// and the C API (trainopt_compiler.h, used by the Python package) call it,
/// so a flag reaches the compiler the same way from both. Calls in one
/// process are independent (every flag starts from its default) but not
/// concurrent: the flags are LLVM command-line options, process globals.
//
//===----------------------------------------------------------------------===//

#ifndef TRAINOPT_COMPILER_DRIVER_H
#define TRAINOPT_COMPILER_DRIVER_H

#include "llvm/Support/raw_ostream.h"

#include <string>

namespace mlir::trainopt {

struct CompileDriverEnvironment {
  /// Where errors, warnings and notes go (null: stderr). --report, --list-*
  /// and `-o -` still write to stdout.
  llvm::raw_ostream *diagnostics = nullptr;
  /// The trainopt-run executable that --emit=exe copies.
  std::string runnerPath;
};

/// Runs `trainopt-compile` with `argv` (argv[0] is the program name).
/// Returns the exit status: 0 on success, 1 with the reasons written to
/// `env.diagnostics`. Never exits the process, except that --help and
/// --version print and exit as the tool does (the C API refuses them).
int runCompileDriver(int argc, const char *const *argv,
                     const CompileDriverEnvironment &env);

} // namespace mlir::trainopt

#endif // TRAINOPT_COMPILER_DRIVER_H
