//===- Trainer.h - the training loop as a library ----------------*- C++ -*-===//
//
/// \file
/// The trainer: loads a compiled artifact, feeds batches to `train_step` by
/// the program's signature (any number of inputs of any dtype, labels by
/// role), reports progress and per-step metrics, checkpoints and resumes
/// bit-identically, evaluates with `eval_step`, and saves the trained
/// values as `.npz` or an ONNX model. `trainopt-run` and the `--emit=exe`
/// executable are flags around it; the C API and the Python package will
/// call it too. No MLIR or LLVM.
///
/// Errors are thrown as `TrainerError` (a code and a message naming the
/// file, flag or value); nothing exits the process.
//
//===----------------------------------------------------------------------===//

#ifndef TRAINOPT_RUNTIME_TRAINER_H
#define TRAINOPT_RUNTIME_TRAINER_H

#include "trainopt/Runtime/Checkpoint.h"
#include "trainopt/Runtime/Program.h"

#include <cstdint>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

namespace trainopt::rt {

/// Exit codes of a failed run: 1 for anything that fails while running (a
/// file, the model, a checkpoint), 2 for a usage error (a bad flag or
/// value).
inline constexpr int kRuntimeError = 1;
inline constexpr int kUsageError = 2;

struct TrainerError : std::runtime_error {
  TrainerError(int code, const std::string &message)
      : std::runtime_error(message), code(code) {}
  int code;
};

[[noreturn]] void usageError(const std::string &message);
[[noreturn]] void runtimeError(const std::string &message);
/// Prints `error` as `trainopt-run: error: ...` (ending a progress bar's
/// line first), with a hint to --help for usage errors.
void reportTrainerError(const TrainerError &error);

/// What to train and how (trainopt-run's flags, docs/cli.md).
struct TrainerOptions {
  std::string model;
  std::string data, evalData;
  /// Bytes per token of a headerless token file (`--data=tokens:FILE`).
  unsigned tokenBytes = 2;
  std::optional<int64_t> epochs, steps;
  uint64_t seed = 0;
  bool seedGiven = false;
  bool shuffle = true;
  std::optional<double> scale;
  double mean = 0.0, std = 1.0;
  std::optional<int64_t> threads;
  /// --cpu-conv: auto, onednn or builtin (CPULibrary.h, ConvKernels).
  std::string cpuConv = "auto";
  std::optional<int64_t> logEvery;
  bool quiet = false;
  /// --export-dtype: fp32, bf16 or fp16.
  std::string exportDtype = "fp32";
  /// --compact: the export removes channel-pruned channels.
  bool compact = false;
  /// Name the first non-finite value of each skipped step (probes).
  bool explainOverflow = false;
  /// Stop at the first non-finite value of any step, naming it (probes).
  bool checkNumerics = false;
  /// Train on after a non-finite loss (by default the run stops).
  bool allowNan = false;
  bool profile = false;
  CUDAOptions cuda;
  bool cudaInfo = false;
  /// A sharded artifact's collectives (--collective-timeout,
  /// --reduce-order).
  CommunicatorOptions collectives;
  std::string metrics;
  bool trainEval = true, evalEveryEpoch = false;
  std::string checkpointDir;
  int64_t checkpointEvery = 0;
  int64_t keepCheckpoints = 3;
  bool resume = false;
  std::string resumePath;
  std::string saveParams, dumpEval, dumpStep, exportOnnx;
  /// --dump-eval's batches: the first N, or 0 for every full batch.
  int64_t dumpEvalBatches = 1;
  /// For an executable that carries its model: its name, for messages
  /// (`model` is then a temporary copy of the artifact).
  std::string embeddedName;
  /// --help was given: nothing else was parsed.
  bool help = false;
};

/// trainopt-run's flags (`args` without the program name; docs/cli.md).
/// `embedded`: the executable carries its model, so no MODEL is taken.
/// Throws TrainerError (kUsageError) on a bad flag or value.
TrainerOptions parseTrainerFlags(const std::vector<std::string> &args,
                                 bool embedded);
/// The text of --help.
const char *trainerHelp();

/// Runs the training `options` describe; returns 0 or throws TrainerError.
int train(const TrainerOptions &options);

/// What trainopt-run does around the loop, for other loops (the C API and
/// the Python package drive `train_step` themselves). Each fails with a
/// message naming what was wrong; sharded programs: every rank calls them.

/// Whether `program` can be exported as ONNX (--export-onnx) with its
/// values in `dtype` ("fp32", "bf16" or "fp16"), removing channel-pruned
/// channels when `compact`: checked before training.
/// `model` names the model in messages.
bool checkOnnxExport(const Program &program, const std::string &model,
                     const std::string &dtype, bool compact,
                     std::string &error);
/// Writes the program's ONNX model with its current values to `path`
/// (--export-onnx): derived weights decoded, pruning masks folded in, QDQ
/// pairs for quantized weights. `compacted` gets a line per compacted
/// weight. Rank 0 writes.
bool exportTrainedOnnx(Program &program, const std::string &path,
                       const std::string &dtype, bool compact,
                       std::vector<std::string> &compacted, std::string &error);
/// The identity (model name) and every persistent value, whole, of
/// `program` as a checkpoint; the caller sets the step and data position.
Checkpoint checkpointOf(Program &program);
/// Reads the checkpoint at `path`, checks that it belongs to `program`
/// (name, values, shapes) and loads its values into the program.
bool restoreCheckpoint(Program &program, const std::string &path,
                       Checkpoint &ckpt, std::string &error);

} // namespace trainopt::rt

#endif // TRAINOPT_RUNTIME_TRAINER_H
