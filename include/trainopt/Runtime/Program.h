//===- Program.h - a loaded training program --------------------*- C++ -*-===//
//
/// \file
/// The C++ face of the runtime: loads a .trainopt artifact, allocates its
/// arena (one per device, sized by the compiler's memory plan), loads the
/// kernel binaries, and runs entry points (`train_step`, `eval_step`) as
/// their command lists, on the CPU or, for a `cuda` artifact, on a GPU
/// (CUDADevice.h). Values are reached by name: persistent values
/// (parameters, optimizer and model state, the step counter) live in the
/// arena across steps and are updated in place; the inputs and outputs of
/// an entry point are read and written around `run`. No MLIR or LLVM.
///
/// On a GPU the pointers are host copies: `run` only queues the step, an
/// input's storage is handed out once the previous run has copied it to the
/// device, an output's once the run has finished, and a persistent value's
/// is brought up from the device when asked for and sent back before the
/// next run. Re-fetch pointers after each `run` rather than keeping them.
//
//===----------------------------------------------------------------------===//

#ifndef TRAINOPT_RUNTIME_PROGRAM_H
#define TRAINOPT_RUNTIME_PROGRAM_H

#include "trainopt/Runtime/CUDADevice.h"
#include "trainopt/Runtime/Communicator.h"
#include "trainopt/Runtime/Data.h"

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace trainopt::artifact {
class Artifact;
} // namespace trainopt::artifact

namespace trainopt::rt {

/// What a value of a program's signature is.
enum class ValueKind {
  Parameter,
  OptimizerState,
  ModelState,
  Step,
  Input,
  Labels,
  Metric,
  Output,
  /// The training loss (a metric; the gradients are of it).
  Loss,
};

/// A named value of the program and where it lives.
struct ValueInfo {
  std::string name;
  ValueKind kind = ValueKind::Input;
  DType dtype = DType::F32;
  std::vector<int64_t> shape;
  bool trainable = false;
  /// For optimizer state: the parameter it belongs to.
  std::string stateOf;
  size_t bytes = 0;
  /// A sharded value: how the whole splits, "dp:flat" (ZeRO's optimizer
  /// state: flattened, zero-padded to a multiple of the axis size, split
  /// evenly; `shape` is this rank's part) or "dp:mean" (each rank's own
  /// value, the whole their mean: accumulated gradients), and the whole's
  /// shape. Empty for a value every rank holds whole.
  std::string sharding;
  std::vector<int64_t> globalShape;
  int64_t numElements() const;
};

struct LoadOptions {
  /// For cuda artifacts.
  CUDAOptions cuda;
  /// For sharded artifacts run by mpirun.
  CommunicatorOptions collectives;
};

class Program {
public:
  /// Reads and checks `path` (framing, schema, plan bounds, kernel
  /// symbols), allocates the arena and loads initial values. Returns null
  /// and sets `error` (naming the file) on failure.
  static std::unique_ptr<Program> load(const std::string &path,
                                       std::string &error);
  static std::unique_ptr<Program> load(const std::string &path,
                                       const LoadOptions &options,
                                       std::string &error);
  /// Reads and checks `path` as `load` does (framing, schema, plan bounds,
  /// initial values, commands), but stops before the device: no arena is
  /// allocated and no kernel object is loaded, so kernel symbols are not
  /// checked. For tools that inspect artifacts, and for the plan's fuzzer.
  static bool check(const std::string &path, std::string &error);
  ~Program();

  const artifact::Artifact &artifact() const;
  const std::string &modelName() const;
  /// "cpu" or "cuda".
  const std::string &target() const;
  int64_t batchSize() const;
  bool hasEntryPoint(const std::string &entry) const;

  /// Parameters, optimizer state, model state and the step counter: what a
  /// checkpoint saves. Their storage survives `run` and is updated in place.
  const std::vector<ValueInfo> &persistentValues() const;
  /// Inputs (batch inputs and labels) and outputs (metrics and model
  /// outputs) of `entry`.
  const std::vector<ValueInfo> &inputs(const std::string &entry) const;
  const std::vector<ValueInfo> &outputs(const std::string &entry) const;

  /// Storage of a persistent value, or null when there is none by that name
  /// (or, on a GPU, when the copy from the device failed: `lastError`).
  void *persistent(const std::string &name);
  /// Storage of an input of `entry`, written before `run`.
  void *input(const std::string &entry, const std::string &name);
  /// Storage of an output of `entry`, valid after `run` until the next one
  /// (null on a GPU when the run failed: `lastError`).
  const void *output(const std::string &entry, const std::string &name) const;

  /// Restores every persistent value to its initial value from the artifact.
  bool resetPersistent(std::string &error);

  /// Runs (on a GPU: queues) the command list of `entry`. Fails with a
  /// message naming the entry point and the command.
  bool run(const std::string &entry, std::string &error);
  /// Waits until every queued run has finished (a no-op on the CPU).
  bool synchronize(std::string &error);
  /// On a GPU: starts copying the inputs written for `entry`'s next run
  /// while earlier runs still compute (`run` does it otherwise). A no-op on
  /// the CPU.
  bool stageInputs(const std::string &entry, std::string &error);
  /// Why the last null from persistent/input/output on a GPU.
  std::string lastError() const;
  /// "CPU", or the GPU's name, architecture and memory.
  std::string deviceDescription() const;
  /// Device memory the program holds: the arena, plus on a GPU the library
  /// workspace.
  uint64_t deviceBytes() const;

  /// Threads the CPU kernels and libraries may use (0: all cores).
  void setThreads(int threads);

  /// Times every command of every run from now on (`profileReport`). On a
  /// GPU, profiling is chosen when loading (CUDAOptions::profile).
  void setProfiling(bool on);
  /// Per entry point: time per run and the most expensive commands.
  std::string profileReport() const;

  /// Size in bytes of the arena of device 0.
  uint64_t arenaBytes() const;

  /// A sharded artifact's mesh (no axes: one device), and the communicator
  /// with the other ranks of the job (null unless the mesh has more than
  /// one rank). `load` creates it: the job must be started by mpirun with
  /// the mesh's number of ranks, all loading the same artifact.
  const Mesh &mesh() const;
  Communicator *communicator() const;

  struct Impl;

private:
  explicit Program(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

} // namespace trainopt::rt

#endif // TRAINOPT_RUNTIME_PROGRAM_H
