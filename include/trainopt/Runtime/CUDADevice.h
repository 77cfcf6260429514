//===- CUDADevice.h - a training program on one NVIDIA GPU -------*- C++
//-*-===//
//
/// \file
/// The CUDA half of the runtime (lib/Runtime/CUDA). `Program` (Program.h)
/// checks an artifact once for every target, resolves each buffer name to
/// an arena region, and hands a `cuda` artifact to a `CUDAProgram`, which:
///
/// - loads the CUDA driver, cuBLASLt and cuDNN with dlopen (a machine
///   without them runs CPU artifacts and is told what is missing);
/// - makes one device allocation for the arena, sized by the memory plan,
///   plus the library workspaces, and pinned host mirrors of the values the
///   host reads or writes (inputs, outputs, persistent values);
/// - loads the kernel module (the cubin when it matches the GPU, else the
///   PTX, JIT-compiled by the driver) and the runtime's own library kernels;
/// - plans every library call once (cuBLASLt layouts and algorithm, cuDNN
///   descriptors and algorithm);
/// - runs an entry point as: its inputs copied host -> device on an upload
///   stream (into one of two landing buffers), then on the compute stream a
///   device copy into the arena, the commands and the outputs device ->
///   host. The second run of an entry point captures the commands and
///   output copies as a CUDA graph; later runs replay it with one launch
///   (`graphs = false` launches the commands one by one).
///
/// `run` returns once the work is queued. Reading an output waits for it.
/// Inputs alternate between two host/landing buffer sets, so the host can
/// write the next batch, and `stageInputs` upload it, while the GPU is
/// still computing the current step.
//
//===----------------------------------------------------------------------===//

#ifndef TRAINOPT_RUNTIME_CUDADEVICE_H
#define TRAINOPT_RUNTIME_CUDADEVICE_H

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace trainopt::rt {

struct CUDAOptions {
  /// Capture each entry point as a CUDA graph and replay it.
  bool graphs = true;
  /// Let float32 matmuls and convolutions use TF32 tensor cores (PyTorch's
  /// `allow_tf32`); off: full float32 arithmetic.
  bool tf32 = true;
  /// Synchronize after every command, so an asynchronous fault names its
  /// command (slow; implies graphs = false).
  bool syncEachCommand = false;
  /// Time every command with CUDA events (implies graphs = false).
  bool profile = false;
  /// The GPU, by CUDA ordinal.
  int device = 0;
};

/// A byte range of the arena.
struct ArenaRegion {
  uint64_t offset = 0, size = 0;
};

/// One command of an entry point, its buffers resolved to arena regions.
struct CUDACommand {
  enum Kind { Launch, Library, Copy, Fill } kind = Launch;
  std::string what; ///< for messages: "kernel k", "library call f [...]"
  // Launch
  std::string kernel;
  uint32_t grid[3] = {1, 1, 1}, block[3] = {1, 1, 1};
  uint32_t sharedMemory = 0;
  // Library
  std::string function; ///< "cuda.matmul", ...
  std::vector<int64_t> ints;
  std::vector<double> floats;
  /// Launch and library buffers; Copy: {from, to}; Fill: {buffer}.
  std::vector<ArenaRegion> buffers;
  uint64_t size = 0;   ///< Copy: bytes
  std::string pattern; ///< Fill: the repeated bytes
};

struct CUDAEntry {
  std::string name;
  std::vector<CUDACommand> commands;
  /// Copied host -> device before the commands and device -> host after.
  std::vector<ArenaRegion> inputs, outputs;
};

/// Everything a CUDAProgram needs from the artifact, already checked.
struct CUDAProgramSpec {
  std::string source; ///< the artifact's path, for messages
  uint64_t arenaSize = 0;
  std::string arch; ///< the kernels' sm_XY
  std::string ptx, cubin;
  std::vector<CUDAEntry> entries;
  /// The persistent values' regions, and the initial bytes of buffers
  /// (null: all zero).
  std::vector<ArenaRegion> persistent;
  std::vector<std::pair<ArenaRegion, const std::string *>> initial;
};

class CUDAProgram {
public:
  /// Opens the GPU and prepares `spec`; null with `error` set on failure
  /// (naming the library, the kernel or the command).
  static std::unique_ptr<CUDAProgram> create(const CUDAProgramSpec &spec,
                                             const CUDAOptions &options,
                                             std::string &error);
  virtual ~CUDAProgram();

  /// Host buffer of input `index` of entry `entry` for its next run, to
  /// write before `run`. Each entry has two sets, used by alternate runs,
  /// so the host writes one while a run reads the other.
  virtual void *input(size_t entry, size_t index) = 0;
  /// Starts copying the written inputs of `entry`'s next run to the GPU
  /// now, on a second stream, overlapping the runs still queued (`run`
  /// does it otherwise).
  virtual bool stageInputs(size_t entry, std::string &error) = 0;
  /// Host copy of output `index`, valid after the last `run` of `entry`
  /// (waits for it). Null when a run failed (see `lastError`).
  virtual const void *output(size_t entry, size_t index) = 0;
  /// Host copy of persistent value `index`, brought up to date from the
  /// device; it may be written, and is copied back before the next run.
  virtual void *persistent(size_t index) = 0;
  /// Copies every persistent value's initial bytes to the device.
  virtual bool resetPersistent(std::string &error) = 0;
  /// Queues a run of entry `entry`.
  virtual bool run(size_t entry, std::string &error) = 0;
  /// Waits for all queued work; reports an asynchronous failure.
  virtual bool synchronize(std::string &error) = 0;
  /// The error of the last failed wait inside input/output/persistent.
  virtual const std::string &lastError() const = 0;

  /// "NVIDIA H100 80GB HBM3 (sm_90, 132 SMs, 79.1 GiB)".
  virtual std::string deviceDescription() const = 0;
  /// Device memory this program allocated: the arena, the library
  /// workspace, the two sets of input landing buffers.
  virtual uint64_t deviceBytes() const = 0;
  /// With options.profile: per entry, GPU time per run and the most
  /// expensive commands.
  virtual std::string profileReport() const = 0;
};

/// Whether a CUDA device can be opened here, and which; for `trainopt-run
/// --cuda-info` and the test suite's `cuda` feature.
bool probeCUDA(std::string &description, std::string &error);

} // namespace trainopt::rt

#endif // TRAINOPT_RUNTIME_CUDADEVICE_H
