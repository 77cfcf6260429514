//===- CompilerCAPI.cpp - trainopt_compile
//---------------------------------===//
//
/// \file
/// The compiler's C API (trainopt_compiler.h) over the driver library.
//
//===----------------------------------------------------------------------===//

#include "trainopt/Compiler/trainopt_compiler.h"

#include "trainopt/Compiler/Driver.h"
#include "trainopt/Runtime/CAPISupport.h"

#include "llvm/ADT/SmallString.h"
#include "llvm/Support/FileSystem.h"
#include "llvm/Support/Path.h"
#include "llvm/Support/raw_ostream.h"

#include <dlfcn.h>
#include <mutex>
#include <vector>

/// trainopt-run for --emit=exe: beside this library (an installed Python
/// package) or in the build tree's bin/ beside lib/.
static std::string runnerPath() {
  Dl_info info;
  if (!dladdr(reinterpret_cast<void *>(&trainopt_compile), &info) ||
      !info.dli_fname)
    return "trainopt-run";
  llvm::StringRef dir = llvm::sys::path::parent_path(info.dli_fname);
  llvm::SmallString<256> beside(dir), bin(llvm::sys::path::parent_path(dir));
  llvm::sys::path::append(beside, "trainopt-run");
  llvm::sys::path::append(bin, "bin", "trainopt-run");
  return llvm::sys::path::filename(dir) == "lib" &&
                 !llvm::sys::fs::exists(beside)
             ? bin.str().str()
             : beside.str().str();
}

extern "C" trainopt_status trainopt_compile(int argc, const char *const *argv,
                                            char *diagnostics,
                                            size_t diagnostics_size) {
  using trainopt::rt::failWith;
  trainopt::rt::copyMessage("", diagnostics, diagnostics_size);
  if (argc < 0 || (argc > 0 && !argv))
    return failWith("trainopt_compile: null argument", diagnostics,
                    diagnostics_size);
  std::vector<const char *> args{"trainopt-compile"};
  for (int i = 0; i < argc; ++i) {
    if (!argv[i])
      return failWith("trainopt_compile: argument " + std::to_string(i) +
                          " is null",
                      diagnostics, diagnostics_size);
    llvm::StringRef arg(argv[i]);
    if (arg.ltrim('-') == "help" || arg.ltrim('-').starts_with("help-") ||
        arg.ltrim('-') == "version")
      return failWith("trainopt_compile: " + arg.str() +
                          " is for the trainopt-compile tool",
                      diagnostics, diagnostics_size);
    args.push_back(argv[i]);
  }
  // The flags are process globals: one compilation at a time.
  static std::mutex oneAtATime;
  std::lock_guard<std::mutex> lock(oneAtATime);
  std::string text;
  llvm::raw_string_ostream os(text);
  mlir::trainopt::CompileDriverEnvironment env;
  env.diagnostics = &os;
  env.runnerPath = runnerPath();
  int rc = mlir::trainopt::runCompileDriver(static_cast<int>(args.size()),
                                            args.data(), env);
  os.flush();
  trainopt::rt::copyMessage(text, diagnostics, diagnostics_size);
  return rc == 0 ? TRAINOPT_OK : TRAINOPT_ERROR;
}
