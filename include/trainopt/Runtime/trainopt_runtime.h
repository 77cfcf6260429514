/*===- trainopt_runtime.h - the runtime's C API -------------------*- C -*-===*\
|*                                                                            *|
|* The stable C face of the runtime (DESIGN.md 3.4): load a compiled         *|
|* .trainopt artifact, run its entry points, read and write its values.      *|
|* Every function that can fail returns a status and, on failure, writes a   *|
|* NUL-terminated message into `error` (at most `error_size` bytes).         *|
|* Ownership: a program is owned by the caller from a successful load until  *|
|* trainopt_program_free; names and shapes from trainopt_program_value stay *|
|* valid until then. Storage pointers point into the program (no copies):   *|
|* persistent values' until the free; an input's until the next run of its  *|
|* entry point (on a GPU the inputs alternate between two buffers, so ask   *|
|* again after each run); an output's until the next run.                   *|
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

/* What a value is to the training loop (the artifact's value kind). */
typedef enum trainopt_role {
  TRAINOPT_ROLE_PARAMETER = 0,
  TRAINOPT_ROLE_OPTIMIZER_STATE = 1,
  TRAINOPT_ROLE_MODEL_STATE = 2,
  TRAINOPT_ROLE_STEP = 3,
  TRAINOPT_ROLE_INPUT = 4,
  TRAINOPT_ROLE_LABELS = 5,
  TRAINOPT_ROLE_METRIC = 6,
  TRAINOPT_ROLE_OUTPUT = 7,
  TRAINOPT_ROLE_LOSS = 8, /* the training loss (a metric) */
} trainopt_role;

/* Element types. */
typedef enum trainopt_dtype {
  TRAINOPT_F64 = 0,
  TRAINOPT_F32 = 1,
  TRAINOPT_F16 = 2,
  TRAINOPT_I64 = 3,
  TRAINOPT_I32 = 4,
  TRAINOPT_I16 = 5,
  TRAINOPT_I8 = 6,
  TRAINOPT_U8 = 7,
  TRAINOPT_BOOL = 8,
  TRAINOPT_BF16 = 9,
} trainopt_dtype;

/* Which values to list: the persistent ones (parameters, optimizer and
   model state, step; shared by all entry points), or an entry point's
   inputs (data and labels) or outputs (metrics and model outputs). */
typedef enum trainopt_value_set {
  TRAINOPT_VALUES_PERSISTENT = 0,
  TRAINOPT_VALUES_INPUTS = 1,
  TRAINOPT_VALUES_OUTPUTS = 2,
} trainopt_value_set;

typedef struct trainopt_value_info {
  const char *name;
  trainopt_role role;
  trainopt_dtype dtype;
  int32_t rank;
  const int64_t *shape; /* rank dims */
  size_t bytes;
} trainopt_value_info;

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

/* The number of values in `set` (`entry` names the entry point for inputs
   and outputs and is ignored for persistent values), or -1 when there is no
   such entry point. */
int64_t trainopt_program_num_values(const trainopt_program *program,
                                    const char *entry, trainopt_value_set set);

/* Value `index` (in [0, trainopt_program_num_values)) of `set`. */
trainopt_status trainopt_program_value(const trainopt_program *program,
                                       const char *entry,
                                       trainopt_value_set set, int64_t index,
                                       trainopt_value_info *out, char *error,
                                       size_t error_size);

/* The batch size the program was compiled for. */
int64_t trainopt_program_batch_size(const trainopt_program *program);

/* Threads for the CPU libraries (0: all cores). */
void trainopt_program_set_threads(trainopt_program *program, int threads);

/* Writes the program's ONNX model with its current values to `path`, as
   `trainopt-run --export-onnx` does (docs/cli.md): `dtype` is "fp32", "bf16"
   or "fp16"; `compact` removes channel-pruned channels. Fails for a program
   compiled from a trainopt graph or MLIR module (it holds no ONNX model).
   Defined by the trainer library. */
trainopt_status trainopt_program_export_onnx(trainopt_program *program,
                                             const char *path,
                                             const char *dtype, int compact,
                                             char *error, size_t error_size);

/* Where a training loop stands, as a checkpoint stores it. */
typedef struct trainopt_checkpoint_position {
  uint64_t step;  /* training steps completed */
  uint64_t epoch; /* batches of `epoch` before `batch` are consumed */
  int64_t batch;
  uint64_t seed;       /* shuffle seed */
  int shuffle;         /* whether batches are shuffled */
  uint64_t samples;    /* training samples per epoch */
  uint64_t batch_size; /* samples per step */
} trainopt_checkpoint_position;

/* Writes every persistent value and `position` as a checkpoint
   (docs/cli.md, Checkpoint.h) atomically into directory `dir` (created if
   missing) as ckpt-<step>.ckpt; `path` receives the file's path. The file
   resumes `trainopt-run --resume` too. Defined by the trainer library. */
trainopt_status
trainopt_program_save_checkpoint(trainopt_program *program, const char *dir,
                                 const trainopt_checkpoint_position *position,
                                 char *path, size_t path_size, char *error,
                                 size_t error_size);

/* Reads checkpoint `path` (a file, or the newest in a directory), checks it
   belongs to the program (model name, values, dtypes, shapes) and loads its
   values; `position` (may be null) receives where it stood. Nothing is
   changed on failure. Defined by the trainer library. */
trainopt_status
trainopt_program_load_checkpoint(trainopt_program *program, const char *path,
                                 trainopt_checkpoint_position *position,
                                 char *error, size_t error_size);

/* Trains as `trainopt-run ARGS...` does (docs/cli.md): `argv` holds the
   `argc` arguments without a program name (the model, --data, --steps, ...);
   progress and the summary go to stderr and stdout unless --quiet. Returns
   TRAINOPT_ERROR with the message in `error` for a bad flag or anything that
   fails while training. Defined by the trainer library
   (include/trainopt/Runtime/Trainer.h). */
trainopt_status trainopt_train(int argc, const char *const *argv, char *error,
                               size_t error_size);

#ifdef __cplusplus
}
#endif

#endif /* TRAINOPT_RUNTIME_TRAINOPT_RUNTIME_H */
