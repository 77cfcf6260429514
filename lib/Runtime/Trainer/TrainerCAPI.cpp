//===- TrainerCAPI.cpp - the trainer's part of the C API
//-------------------===//
//
/// \file
/// trainopt_train, checkpoints and the ONNX export behind the C API
/// (trainopt_runtime.h), over the trainer library (Trainer.h).
//
//===----------------------------------------------------------------------===//

#include "trainopt/Runtime/CAPISupport.h"
#include "trainopt/Runtime/Checkpoint.h"
#include "trainopt/Runtime/Trainer.h"
#include "trainopt/Runtime/trainopt_runtime.h"

#include <cerrno>
#include <sys/stat.h>

using namespace trainopt::rt;

extern "C" trainopt_status trainopt_train(int argc, const char *const *argv,
                                          char *error, size_t error_size) {
  if (argc < 0 || (argc > 0 && !argv))
    return failWith("trainopt_train: null argument", error, error_size);
  std::vector<std::string> args;
  for (int i = 0; i < argc; ++i) {
    if (!argv[i])
      return failWith("trainopt_train: argument " + std::to_string(i) +
                          " is null",
                      error, error_size);
    args.push_back(argv[i]);
  }
  try {
    TrainerOptions options = parseTrainerFlags(args, /*embedded=*/false);
    if (options.help)
      return failWith("trainopt_train: --help is for trainopt-run", error,
                      error_size);
    return train(options) == 0
               ? TRAINOPT_OK
               : failWith("trainopt_train: training failed", error, error_size);
  } catch (const TrainerError &e) {
    return failWith(e.what(), error, error_size);
  }
}

extern "C" trainopt_status
trainopt_program_export_onnx(trainopt_program *program, const char *path,
                             const char *dtype, int compact, char *error,
                             size_t error_size) {
  if (!program || !path || !dtype)
    return failWith("trainopt_program_export_onnx: null argument", error,
                    error_size);
  std::string message;
  std::vector<std::string> compacted;
  if (!checkOnnxExport(*program->program,
                       "model '" + program->program->modelName() + "'", dtype,
                       compact != 0, message) ||
      !exportTrainedOnnx(*program->program, path, dtype, compact != 0,
                         compacted, message))
    return failWith(message, error, error_size);
  return TRAINOPT_OK;
}

extern "C" trainopt_status
trainopt_program_save_checkpoint(trainopt_program *program, const char *dir,
                                 const trainopt_checkpoint_position *position,
                                 char *path, size_t path_size, char *error,
                                 size_t error_size) {
  if (!program || !dir || !position)
    return failWith("trainopt_program_save_checkpoint: null argument", error,
                    error_size);
  // The directory is created (one level, as --checkpoint-dir).
  struct stat st;
  if (::stat(dir, &st) != 0 && ::mkdir(dir, 0777) != 0)
    return failWith(std::string("cannot create the checkpoint directory '") +
                        dir + "': " + std::strerror(errno),
                    error, error_size);
  Checkpoint ckpt = checkpointOf(*program->program);
  ckpt.step = position->step;
  ckpt.epoch = position->epoch;
  ckpt.batch = position->batch;
  ckpt.seed = position->seed;
  ckpt.shuffle = position->shuffle != 0;
  ckpt.counters = {{"train_samples", position->samples},
                   {"batch_size", position->batch_size}};
  std::string written, message;
  if (!writeCheckpoint(dir, ckpt, written, message))
    return failWith(message, error, error_size);
  copyMessage(written, path, path_size);
  return TRAINOPT_OK;
}

extern "C" trainopt_status
trainopt_program_load_checkpoint(trainopt_program *program, const char *path,
                                 trainopt_checkpoint_position *position,
                                 char *error, size_t error_size) {
  if (!program || !path)
    return failWith("trainopt_program_load_checkpoint: null argument", error,
                    error_size);
  std::string file = path, message;
  struct stat st;
  if (::stat(path, &st) == 0 && S_ISDIR(st.st_mode) &&
      !findLatestCheckpoint(path, file, message))
    return failWith(message, error, error_size);
  Checkpoint ckpt;
  if (!restoreCheckpoint(*program->program, file, ckpt, message))
    return failWith(message, error, error_size);
  if (position) {
    position->step = ckpt.step;
    position->epoch = ckpt.epoch;
    position->batch = ckpt.batch;
    position->seed = ckpt.seed;
    position->shuffle = ckpt.shuffle ? 1 : 0;
    position->samples = ckpt.counter("train_samples");
    position->batch_size = ckpt.counter("batch_size");
  }
  return TRAINOPT_OK;
}
