//===- CPUDevice.cpp - a training program on the CPU ----------------------===//
//
/// \file
/// The CPU device (Device.h): the arena allocated once on the host, the
/// kernel shared object loaded from memory (memfd_create + dlopen), and
/// every command resolved to pointers, so `run` is a loop of indirect calls
/// with no lookups. Also `createDevice`, the one place that picks a device
/// by the artifact's target.
//
//===----------------------------------------------------------------------===//

#include "trainopt/Runtime/Device.h"

#include "trainopt/Runtime/CPULibrary.h"
#include "trainopt/Runtime/CUDADevice.h"
#include "trainopt/Runtime/ProfileReport.h"

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <climits>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <dlfcn.h>
#include <map>
#include <sys/mman.h>
#include <unistd.h>

using namespace trainopt::rt;


namespace {

using PackedKernel = void (*)(void **);
using RangeKernel = void (*)(void **, int64_t, int64_t);

struct Command {
  DeviceCommand::Kind kind;
  std::string what; // for messages
  PackedKernel kernel = nullptr;
  RangeKernel rangeKernel = nullptr; // rows [begin, end) of `kernel`
  int64_t rows = 0, work = 0;
  LibraryFunction library = nullptr;
  std::vector<void *> buffers;
  std::vector<int64_t> ints;
  std::vector<double> floats;
  size_t size = 0;
  std::string fill;
  // Collective: the start packs its inputs into `staging`, hands it to the
  // communicator and keeps the handle; the wait (`start` is its start's
  // index) unpacks into the start's outputs.
  DeviceCommand::CollectiveKind collectiveKind = DeviceCommand::AllReduce;
  bool wait = false;
  size_t start = 0;
  std::string group;
  int64_t peerOffset = 0; // Send, Recv
  int64_t root = 0;       // Broadcast
  ReduceKind reduction = ReduceKind::Sum;
  DType dtype = DType::F32;
  std::vector<uint64_t> sizes;
  std::vector<uint8_t> staging;
  Communicator::Handle handle = 0;
  double profileMs = 0;
  int64_t profileCount = 0;
};

struct Entry {
  std::string name;
  std::vector<Command> commands;
  std::vector<void *> inputs, outputs;
};

class CPUDevice final : public Device {
public:
  ~CPUDevice() override {
    if (library)
      dlclose(library);
    if (libraryFd >= 0)
      ::close(libraryFd);
    std::free(arena);
  }

  bool prepare(const DeviceProgramSpec &spec, std::string &error);

  void *input(size_t entry, size_t index) override {
    return entries[entry].inputs[index];
  }
  bool stageInputs(size_t, std::string &) override { return true; }
  const void *output(size_t entry, size_t index) override {
    return entries[entry].outputs[index];
  }
  void *persistent(size_t index) override { return persistentData[index]; }
  bool resetPersistent(std::string &) override {
    for (auto &[r, bytes] : initial) {
      if (bytes)
        std::memcpy(at(r), bytes->data(), bytes->size());
      else
        std::memset(at(r), 0, r.size);
    }
    return true;
  }
  bool run(size_t entry, std::string &error) override;
  bool synchronize(std::string &) override { return true; }
  const std::string &lastError() const override { return noError; }
  std::string deviceDescription() const override { return "CPU"; }
  uint64_t deviceBytes() const override { return arenaSize; }
  void setProfiling(bool on) override { profile = on; }
  std::string profileReport() const override;

private:
  void *at(const ArenaRegion &r) { return arena + r.offset; }
  bool loadKernels(const std::string &object, std::string &error);
  bool resolve(const DeviceCommand &c, Command &cmd, std::string &error);
  bool runCollective(std::vector<Command> &commands, Command &c,
                     std::string &error);

  std::string source;
  uint8_t *arena = nullptr;
  uint64_t arenaSize = 0;
  void *library = nullptr;
  /// The memfd the kernel object was loaded from, open while it is loaded:
  /// dlopen knows a library by its path, /proc/self/fd/N, so a second
  /// program loaded after the fd was closed and N reused would get this
  /// program's kernels instead of its own.
  int libraryFd = -1;
  std::vector<Entry> entries;
  std::vector<void *> persistentData;
  std::vector<std::pair<ArenaRegion, const std::string *>> initial;
  Communicator *communicator = nullptr;
  /// Collectives started and not yet waited for.
  int64_t inFlight = 0;
  bool profile = false;
  std::string noError;
};

bool CPUDevice::loadKernels(const std::string &bytes, std::string &error) {
  if (bytes.empty())
    return true;
  auto fail = [&](const std::string &message) {
    error = source + ": " + message;
    return false;
  };
  int fd = memfd_create("trainopt-kernels", MFD_CLOEXEC);
  if (fd < 0)
    return fail("memfd_create failed: " + std::string(std::strerror(errno)));
  size_t done = 0;
  while (done < bytes.size()) {
    ssize_t n = ::write(fd, bytes.data() + done, bytes.size() - done);
    if (n <= 0) {
      ::close(fd);
      return fail("cannot stage the kernel object");
    }
    done += n;
  }
  std::string fdPath = "/proc/self/fd/" + std::to_string(fd);
  library = dlopen(fdPath.c_str(), RTLD_NOW | RTLD_LOCAL);
  if (!library) {
    ::close(fd);
    return fail(std::string("cannot load the kernel object: ") + dlerror());
  }
  libraryFd = fd;
  return true;
}

bool CPUDevice::resolve(const DeviceCommand &c, Command &cmd,
                        std::string &error) {
  cmd.kind = c.kind;
  cmd.what = c.what;
  for (const ArenaRegion &r : c.buffers)
    cmd.buffers.push_back(at(r));
  switch (c.kind) {
  case DeviceCommand::Launch: {
    std::string symbol = c.kernel + "_packed";
    cmd.kernel = library ? reinterpret_cast<PackedKernel>(
                               dlsym(library, symbol.c_str()))
                         : nullptr;
    if (!cmd.kernel) {
      error = "kernel '" + c.kernel + "' is not in the kernel object";
      return false;
    }
    if (c.rows > 0) {
      std::string range = c.kernel + "_range_packed";
      cmd.rangeKernel =
          reinterpret_cast<RangeKernel>(dlsym(library, range.c_str()));
      if (!cmd.rangeKernel) {
        error = "kernel '" + c.kernel +
                "' claims row ranges but the kernel object has no '" + range +
                "'";
        return false;
      }
      cmd.rows = c.rows;
      cmd.work = c.work;
    }
    return true;
  }
  case DeviceCommand::Library:
    cmd.library = findLibraryFunction(c.function);
    if (!cmd.library) {
      error = "unknown library function '" + c.function + "'";
      return false;
    }
    cmd.ints = c.ints;
    cmd.floats = c.floats;
    return true;
  case DeviceCommand::Copy:
    cmd.size = c.size;
    return true;
  case DeviceCommand::Fill:
    cmd.size = c.buffers[0].size;
    cmd.fill = c.pattern;
    return true;
  case DeviceCommand::Collective: {
    cmd.collectiveKind = c.collectiveKind;
    cmd.wait = c.wait;
    cmd.group = c.group;
    cmd.peerOffset = c.peerOffset;
    cmd.root = c.root;
    cmd.reduction = c.reduction;
    cmd.dtype = c.dtype;
    // A reduction's input sizes; an all-gather's or a slice's both.
    bool reduce = c.collectiveKind == DeviceCommand::AllReduce ||
                  c.collectiveKind == DeviceCommand::ReduceScatter;
    uint64_t total = 0;
    for (size_t i = 0; i < (reduce ? c.buffers.size() / 2 : c.buffers.size());
         ++i) {
      cmd.sizes.push_back(c.buffers[i].size);
      total += c.buffers[i].size;
    }
    // A reduce-scatter's staging holds the packed inputs, then this
    // rank's part of their reduction.
    uint64_t group =
        communicator ? std::max(communicator->groupSize(c.group), 1) : 1;
    if (!c.wait && reduce)
      cmd.staging.resize(
          total + (c.collectiveKind == DeviceCommand::ReduceScatter
                       ? total / group
                       : 0));
    return true;
  }
  }
  return false;
}

bool CPUDevice::prepare(const DeviceProgramSpec &spec, std::string &error) {
  source = spec.source;
  arenaSize = spec.arenaSize;
  arena = static_cast<uint8_t *>(std::aligned_alloc(
      64, std::max<uint64_t>(64, (arenaSize + 63) / 64 * 64)));
  if (!arena) {
    error = source + ": cannot allocate an arena of " +
            std::to_string(arenaSize) + " bytes";
    return false;
  }
  std::memset(arena, 0, arenaSize);
  if (!loadKernels(spec.cpuObject, error))
    return false;
  for (const DeviceEntry &e : spec.entries) {
    Entry entry;
    entry.name = e.name;
    std::map<uint32_t, size_t> started;
    for (const DeviceCommand &c : e.commands) {
      Command cmd;
      std::string why;
      if (!resolve(c, cmd, why)) {
        error = source + ": entry point '" + e.name + "': " + why;
        return false;
      }
      if (c.kind == DeviceCommand::Collective) {
        // Program checked the pairing: each wait follows its start.
        if (c.wait)
          cmd.start = started[c.collective];
        else
          started[c.collective] = entry.commands.size();
      }
      entry.commands.push_back(std::move(cmd));
    }
    for (const ArenaRegion &r : e.inputs)
      entry.inputs.push_back(at(r));
    for (const ArenaRegion &r : e.outputs)
      entry.outputs.push_back(at(r));
    entries.push_back(std::move(entry));
  }
  for (const ArenaRegion &r : spec.persistent)
    persistentData.push_back(at(r));
  initial = spec.initial;
  communicator = spec.communicator;
  std::string unused;
  return resetPersistent(unused);
}

bool CPUDevice::run(size_t entryIndex, std::string &error) {
  std::vector<Command> &commands = entries[entryIndex].commands;
  for (Command &c : commands) {
    auto start = profile ? std::chrono::steady_clock::now()
                         : std::chrono::steady_clock::time_point();
    switch (c.kind) {
    case DeviceCommand::Launch:
      if (c.rangeKernel) {
        void **buffers = c.buffers.data();
        RangeKernel kernel = c.rangeKernel;
        parallelRows(c.rows, c.work, [=](int64_t begin, int64_t end) {
          kernel(buffers, begin, end);
        });
      } else {
        c.kernel(c.buffers.data());
      }
      break;
    case DeviceCommand::Library:
      c.library(c.ints.data(), c.ints.size(), c.floats.data(), c.floats.size(),
                c.buffers.data());
      break;
    case DeviceCommand::Copy:
      std::memmove(c.buffers[1], c.buffers[0], c.size);
      break;
    case DeviceCommand::Fill:
      for (size_t off = 0; off < c.size; off += c.fill.size())
        std::memcpy(static_cast<char *>(c.buffers[0]) + off, c.fill.data(),
                    c.fill.size());
      break;
    case DeviceCommand::Collective:
      if (!runCollective(commands, c, error)) {
        error = source + ": entry point '" + entries[entryIndex].name +
                "': " + error;
        return false;
      }
      break;
    }
    // Open MPI moves started collectives along only inside MPI calls.
    if (inFlight && communicator)
      communicator->progress();
    if (profile) {
      std::chrono::duration<double, std::milli> ms =
          std::chrono::steady_clock::now() - start;
      c.profileMs += ms.count();
      ++c.profileCount;
    }
  }
  return true;
}

bool CPUDevice::runCollective(std::vector<Command> &commands, Command &c,
                              std::string &error) {
  if (c.collectiveKind == DeviceCommand::RankSlice) {
    // buffers: {whole, part}; this rank's part of the whole.
    uint64_t part = c.sizes[1];
    int64_t coordinate = communicator ? communicator->coordinate(c.group) : 0;
    std::memcpy(c.buffers[1],
                static_cast<const uint8_t *>(c.buffers[0]) + coordinate * part,
                part);
    return true;
  }
  if (!c.wait && (c.collectiveKind == DeviceCommand::Send ||
                  c.collectiveKind == DeviceCommand::Recv)) {
    // A pipeline transfer needs a peer: a sharded artifact always has a
    // communicator (Program refuses one without mpirun).
    if (!communicator) {
      error = c.what + ": a send or receive needs the ranks of mpirun";
      return false;
    }
    ++inFlight;
    auto bytes = static_cast<int64_t>(c.sizes[0]);
    return c.collectiveKind == DeviceCommand::Send
               ? communicator->startSend(c.buffers[0], bytes, c.group,
                                         c.peerOffset, c.what, c.handle, error)
               : communicator->startRecv(c.buffers[0], bytes, c.group,
                                         c.peerOffset, c.what, c.handle, error);
  }
  if (c.collectiveKind == DeviceCommand::Broadcast && !c.wait) {
    // buffers: {input, output}; the root's input, in place in every
    // rank's output (a mesh of one rank: the input).
    ++inFlight;
    if (c.buffers[1] != c.buffers[0])
      std::memcpy(c.buffers[1], c.buffers[0], c.sizes[0]);
    if (!communicator)
      return true;
    return communicator->startBroadcast(
        c.buffers[1], static_cast<int64_t>(c.sizes[0]), c.root, c.group, c.what,
        c.handle, error);
  }
  if (c.collectiveKind == DeviceCommand::AllGather && !c.wait) {
    ++inFlight;
    // buffers: {part, whole}; a mesh of one rank: the whole is the part.
    if (!communicator) {
      std::memcpy(c.buffers[1], c.buffers[0], c.sizes[0]);
      return true;
    }
    return communicator->startAllGather(
        c.buffers[0], static_cast<int64_t>(c.sizes[0]), c.buffers[1], c.group,
        c.what, c.handle, error);
  }
  if (!c.wait && c.collectiveKind == DeviceCommand::ReduceScatter) {
    // Packed rank-major: part r of every input, for r = 0, 1, ..., so the
    // communicator's part r is rank r's parts of all of them.
    int64_t group = communicator ? communicator->groupSize(c.group) : 1;
    size_t n = c.sizes.size();
    uint64_t total = 0, offset = 0;
    for (uint64_t size : c.sizes)
      total += size;
    for (int64_t r = 0; r < group; ++r)
      for (size_t i = 0; i < n; ++i) {
        uint64_t part = c.sizes[i] / group;
        std::memcpy(c.staging.data() + offset,
                    static_cast<const uint8_t *>(c.buffers[i]) + r * part,
                    part);
        offset += part;
      }
    ++inFlight;
    // A mesh of one rank: the part is the whole.
    if (!communicator) {
      std::memcpy(c.staging.data() + total, c.staging.data(), total);
      return true;
    }
    return communicator->startReduceScatter(
        c.staging.data(), c.staging.data() + total,
        static_cast<int64_t>(total / group / dtypeSize(c.dtype)), c.dtype,
        c.reduction, c.group, c.what, c.handle, error);
  }
  if (!c.wait) {
    size_t n = c.sizes.size();
    uint64_t offset = 0;
    for (size_t i = 0; i < n; ++i) {
      std::memcpy(c.staging.data() + offset, c.buffers[i], c.sizes[i]);
      offset += c.sizes[i];
    }
    ++inFlight;
    // A mesh of one rank has no communicator: the sum is the input.
    if (!communicator)
      return true;
    return communicator->startAllReduce(
        c.staging.data(),
        static_cast<int64_t>(c.staging.size() / dtypeSize(c.dtype)), c.dtype,
        c.reduction, c.group, c.what, c.handle, error);
  }
  Command &start = commands[c.start];
  --inFlight;
  if (communicator && !communicator->wait(start.handle, error))
    return false;
  if (start.collectiveKind == DeviceCommand::AllGather ||
      start.collectiveKind == DeviceCommand::Broadcast ||
      start.collectiveKind == DeviceCommand::Send ||
      start.collectiveKind == DeviceCommand::Recv)
    return true; // gathered or received in place; a send's copy is sent
  size_t n = start.sizes.size();
  uint64_t offset = 0, parts = 1;
  if (start.collectiveKind == DeviceCommand::ReduceScatter) {
    // This rank's parts follow the packed inputs.
    parts = communicator ? communicator->groupSize(start.group) : 1;
    for (uint64_t size : start.sizes)
      offset += size;
  }
  for (size_t i = 0; i < n; ++i) {
    std::memcpy(start.buffers[n + i], start.staging.data() + offset,
                start.sizes[i] / parts);
    offset += start.sizes[i] / parts;
  }
  return true;
}

std::string CPUDevice::profileReport() const {
  std::string out;
  for (const Entry &entry : entries) {
    std::vector<ProfiledCommand> cmds;
    double total = 0;
    int64_t runs = 0;
    for (const Command &c : entry.commands) {
      cmds.push_back({&c.what, c.profileMs});
      total += c.profileMs;
      runs = std::max(runs, c.profileCount);
    }
    if (total == 0 || runs == 0)
      continue;
    char line[256];
    std::snprintf(line, sizeof line, "%s: %.3f ms per run over %zu commands\n",
                  entry.name.c_str(), total / runs, cmds.size());
    out += line;
    out += profileTable(std::move(cmds), total, runs);
  }
  return out;
}

} // namespace

std::unique_ptr<Device>
trainopt::rt::createCPUDevice(const DeviceProgramSpec &spec,
                              std::string &error) {
  auto device = std::make_unique<CPUDevice>();
  if (!device->prepare(spec, error))
    return nullptr;
  return device;
}

std::unique_ptr<Device> trainopt::rt::createDevice(
    const std::string &target, const DeviceProgramSpec &spec,
    const CUDAOptions &cuda, std::string &error) {
  if (target == "cuda")
    return CUDAProgram::create(spec, cuda, error);
  if (target == "cpu")
    return createCPUDevice(spec, error);
  error = spec.source + ": no device runs target '" + target + "'";
  return nullptr;
}
