/*===- trainopt_runtime.h - the runtime's C API -------------------*- C -*-===*\
|*                                                                            *|
|* The stable C face of the runtime (DESIGN.md 3.4): load a compiled         *|
|* .trainopt artifact, run its entry points, read and write its values.      *|
|* Every function that can fail returns a status and, on failure, writes a   *|
|* NUL-terminated message into `error` (at most `error_size` bytes).         *|
|* Ownership: a program is owned by the caller from a successful load until  *|
|* trainopt_program_free; pointers to value storage stay valid until then    *|
|* and point into the program's arena (no copies).                           *|
\*===----------------------------------------------------------------------===*/

#ifndef TRAINOPT_RUNTIME_TRAINOPT_RUNTIME_H
#define TRAINOPT_RUNTIME_TRAINOPT_RUNTIME_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct trainopt_program trainopt_program;

typedef enum trainopt_status {
  TRAINOPT_OK = 0,
  TRAINOPT_ERROR = 1,
} trainopt_status;

/* Loads and checks `path`; on success `*out` owns the program. */
trainopt_status trainopt_program_load(const char *path, trainopt_program **out,
                                      char *error, size_t error_size);

/* Frees a program (null is allowed). */
void trainopt_program_free(trainopt_program *program);

/* Runs entry point `entry` ("train_step", "eval_step"). */
trainopt_status trainopt_program_run(trainopt_program *program,
                                     const char *entry, char *error,
                                     size_t error_size);

/* Storage of a persistent value (parameter, optimizer or model state, step),
   or null; `*bytes` receives its size when `bytes` is not null. */
void *trainopt_program_persistent(trainopt_program *program, const char *name,
                                  size_t *bytes);

/* Storage of an input of `entry`, written before trainopt_program_run. */
void *trainopt_program_input(trainopt_program *program, const char *entry,
                             const char *name, size_t *bytes);

/* Storage of an output of `entry`, valid after trainopt_program_run. */
const void *trainopt_program_output(trainopt_program *program,
                                    const char *entry, const char *name,
                                    size_t *bytes);

/* The batch size the program was compiled for. */
int64_t trainopt_program_batch_size(const trainopt_program *program);

/* Threads for the CPU libraries (0: all cores). */
void trainopt_program_set_threads(trainopt_program *program, int threads);

#ifdef __cplusplus
}
#endif

#endif /* TRAINOPT_RUNTIME_TRAINOPT_RUNTIME_H */
