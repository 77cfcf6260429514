//===- Device.h - a training program on one device ---------------*- C++
//-*-===//
//
/// \file
/// The device interface `Program` (Program.h) drives without knowing the
/// target. `Program` checks an artifact once for every target and resolves
/// it into a `DeviceProgramSpec`: the arena size, the kernel binaries, each
/// entry point's commands with their buffers as arena regions, the
/// persistent values and the initial bytes. `createDevice` hands the spec
/// to the target's device: the CPU (CPUDevice.cpp: one host arena, the
/// kernel object loaded from memory, commands resolved to function
/// pointers) or a GPU (CUDADevice.h). A sharded program's collectives are
/// commands too, run through the spec's communicator (Communicator.h).
//
//===----------------------------------------------------------------------===//

#ifndef TRAINOPT_RUNTIME_DEVICE_H
#define TRAINOPT_RUNTIME_DEVICE_H

#include "trainopt/Runtime/Communicator.h"

#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

namespace trainopt::rt {

/// A byte range of the arena.
struct ArenaRegion {
  uint64_t offset = 0, size = 0;
};

/// One command of an entry point, its buffers resolved to arena regions.
struct DeviceCommand {
  enum Kind { Launch, Library, Copy, Fill, Collective } kind = Launch;
  std::string what; ///< for messages: "kernel k", "library call f [...]"
  // Launch
  std::string kernel;
  uint32_t grid[3] = {1, 1, 1}, block[3] = {1, 1, 1}; ///< GPU
  uint32_t sharedMemory = 0;                          ///< GPU
  /// CPU: the kernel may be run over row ranges [0, rows) on the library's
  /// threads (0: no), with `work` element operations in all.
  int64_t rows = 0, work = 0;
  // Library
  std::string function; ///< "cpu.matmul", "cuda.matmul", ...
  std::vector<int64_t> ints;
  std::vector<double> floats;
  /// Launch and library buffers; Copy: {from, to}; Fill: {buffer}.
  std::vector<ArenaRegion> buffers;
  uint64_t size = 0;   ///< Copy: bytes
  std::string pattern; ///< Fill: the repeated bytes
  // Collective: an all-reduce's and a reduce-scatter's start has
  // `buffers` = inputs, then one output per input; an all-gather's and a
  // rank slice's and a broadcast's {input, output}; a send's {input} and a
  // receive's {output}; a wait (same `collective`) has none. A rank slice
  // has no wait.
  enum CollectiveKind {
    AllReduce,
    ReduceScatter,
    AllGather,
    RankSlice,
    Broadcast,
    Send,
    Recv
  };
  CollectiveKind collectiveKind = AllReduce;
  uint32_t collective = 0;
  bool wait = false;
  std::string group; ///< the mesh axis
  int64_t peerOffset = 0; ///< Send, Recv: the peer's coordinate - this rank's
  int64_t root = 0;       ///< Broadcast: the root's coordinate
  ReduceKind reduction = ReduceKind::Sum;
  DType dtype = DType::F32;
};

struct DeviceEntry {
  std::string name;
  std::vector<DeviceCommand> commands;
  /// The regions the host writes before a run and reads after it.
  std::vector<ArenaRegion> inputs, outputs;
};

/// Everything a device needs from the artifact, already checked.
struct DeviceProgramSpec {
  std::string source; ///< the artifact's path, for messages
  uint64_t arenaSize = 0;
  /// CPU: the kernels' shared object. GPU: PTX, the cubin, and their sm_XY.
  std::string cpuObject;
  std::string arch;
  std::string ptx, cubin;
  std::vector<DeviceEntry> entries;
  /// The persistent values' regions, and the initial bytes of buffers
  /// (null: all zero).
  std::vector<ArenaRegion> persistent;
  std::vector<std::pair<ArenaRegion, const std::string *>> initial;
  /// A sharded program's link to the other ranks (null: one device).
  Communicator *communicator = nullptr;
};

class Device {
public:
  virtual ~Device() = default;

  /// Host storage of input `index` of entry `entry` for its next run, to
  /// write before `run` (a GPU alternates two sets between runs).
  virtual void *input(size_t entry, size_t index) = 0;
  /// Starts moving the written inputs of `entry`'s next run to the device
  /// now (a GPU overlaps it with queued runs; the CPU has nothing to do).
  virtual bool stageInputs(size_t entry, std::string &error) = 0;
  /// Host storage of output `index`, valid after the last `run` of `entry`
  /// (waits for it). Null when a run failed (see `lastError`).
  virtual const void *output(size_t entry, size_t index) = 0;
  /// Host storage of persistent value `index`, up to date; it may be
  /// written, and the device sees it at the next run.
  virtual void *persistent(size_t index) = 0;
  /// Every persistent value back to its initial bytes.
  virtual bool resetPersistent(std::string &error) = 0;
  /// Runs (a GPU: queues) entry `entry`.
  virtual bool run(size_t entry, std::string &error) = 0;
  /// Waits for all queued work; reports an asynchronous failure.
  virtual bool synchronize(std::string &error) = 0;
  /// The error of the last failed wait inside input/output/persistent.
  virtual const std::string &lastError() const = 0;
  /// "CPU", or the GPU: "NVIDIA H100 80GB HBM3 (sm_90, 132 SMs, 79.1 GiB)".
  virtual std::string deviceDescription() const = 0;
  /// Device memory the program holds: the arena (a GPU adds its library
  /// workspace and input landing buffers).
  virtual uint64_t deviceBytes() const = 0;
  /// Times every command from now on (a GPU chooses at creation).
  virtual void setProfiling(bool on) {}
  /// Per entry, time per run and the most expensive commands.
  virtual std::string profileReport() const = 0;
};

struct CUDAOptions;

/// The device of artifact target `target` ("cpu", "cuda") for `spec`; null
/// with `error` set when it cannot be created.
std::unique_ptr<Device> createDevice(const std::string &target,
                                     const DeviceProgramSpec &spec,
                                     const CUDAOptions &cuda,
                                     std::string &error);

/// The CPU device (CPUDevice.cpp).
std::unique_ptr<Device> createCPUDevice(const DeviceProgramSpec &spec,
                                        std::string &error);

} // namespace trainopt::rt

#endif // TRAINOPT_RUNTIME_DEVICE_H
