/*===- trainopt_compiler.h - the compiler's C API -----------------*- C -*-===*\
|*                                                                            *|
|* trainopt-compile as a function, for hosts that are not C++ (the Python    *|
|* package loads it from libtrainopt.so with ctypes). Same flags, same      *|
|* meaning (docs/cli.md): the command-line tool and this function both run  *|
|* Compiler/Driver.h. Calls are independent (each starts from the flags'    *|
|* defaults) but must not overlap: the flags are process globals.           *|
\*===----------------------------------------------------------------------===*/

#ifndef TRAINOPT_COMPILER_TRAINOPT_COMPILER_H
#define TRAINOPT_COMPILER_TRAINOPT_COMPILER_H

#include "trainopt/Runtime/trainopt_runtime.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Compiles as `trainopt-compile ARGS...` does: `argv` holds the `argc`
   arguments without a program name (the model, -o FILE, --emit, training
   flags). The compiler's errors, warnings and notes, one per line, go to
   `diagnostics` (at most `diagnostics_size` bytes, NUL-terminated; empty
   when there were none), on success too; --report and --list-* print to
   stdout. Returns TRAINOPT_ERROR when the compilation failed, wrote
   nothing, and said why in `diagnostics`. --help and --version are refused
   (they would exit the process). */
trainopt_status trainopt_compile(int argc, const char *const *argv,
                                 char *diagnostics, size_t diagnostics_size);

#ifdef __cplusplus
}
#endif

#endif /* TRAINOPT_COMPILER_TRAINOPT_COMPILER_H */
