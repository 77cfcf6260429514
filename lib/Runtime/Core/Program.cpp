//===- Program.cpp - load and run a compiled training program -------------===//
//
/// \file
/// Loads a .trainopt artifact: checks every buffer of the memory plan lies
/// inside the arena, every command names known buffers, kernels and library
/// functions with descriptors that fit their buffers. A CPU artifact then
/// gets its arena allocated once, its kernel shared object loaded (from
/// memory, through a memfd) and each command resolved to pointers, so `run`
/// is a loop of indirect calls with no lookups. A CUDA artifact is handed,
/// resolved to arena regions, to a CUDAProgram (CUDADevice.h), and the
/// values' host storage is its pinned mirrors.
//
//===----------------------------------------------------------------------===//

#include "trainopt/Runtime/Program.h"

#include "trainopt/Artifact/ArtifactFile.h"
#include "trainopt/Runtime/CPULibrary.h"
#include "trainopt/Runtime/CUDADevice.h"

#include <algorithm>
#include <chrono>
#include <climits>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <dlfcn.h>
#include <map>
#include <sys/mman.h>
#include <unistd.h>

using namespace trainopt;
using namespace trainopt::rt;
namespace art = trainopt::artifact;

int64_t ValueInfo::numElements() const {
  int64_t n = 1;
  for (int64_t d : shape)
    n *= d;
  return n;
}

namespace {

using PackedKernel = void (*)(void **);
using RangeKernel = void (*)(void **, int64_t, int64_t);

struct Command {
  enum Kind { Launch, Library, Copy, Fill } kind;
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
  double profileMs = 0;
  int64_t profileCount = 0;
};

struct Entry {
  size_t index = 0;
  std::vector<Command> commands;
  std::vector<ValueInfo> inputs, outputs;
  /// CPU: storage in the arena. CUDA: the value's index in inputs/outputs.
  std::map<std::string, void *> inputData, outputData;
  std::map<std::string, size_t> inputIndex, outputIndex;
  CUDAEntry cuda;
};

bool dtypeOf(art::ElementType t, DType &out) {
  switch (t) {
  case art::F64: out = DType::F64; return true;
  case art::F32: out = DType::F32; return true;
  case art::F16: out = DType::F16; return true;
  case art::BF16: out = DType::BF16; return true;
  case art::I64: out = DType::I64; return true;
  case art::I32: out = DType::I32; return true;
  case art::I8: out = DType::I8; return true;
  case art::I1: out = DType::Bool; return true;
  default: return false;
  }
}

ValueKind kindOf(art::Value::Kind k) {
  switch (k) {
  case art::Value::PARAMETER: return ValueKind::Parameter;
  case art::Value::OPTIMIZER_STATE: return ValueKind::OptimizerState;
  case art::Value::MODEL_STATE: return ValueKind::ModelState;
  case art::Value::STEP: return ValueKind::Step;
  case art::Value::INPUT: return ValueKind::Input;
  case art::Value::LABELS: return ValueKind::Labels;
  case art::Value::METRIC: return ValueKind::Metric;
  case art::Value::LOSS: return ValueKind::Loss;
  default: return ValueKind::Output;
  }
}

bool isPersistent(art::Value::Kind k) {
  return k == art::Value::PARAMETER || k == art::Value::OPTIMIZER_STATE ||
         k == art::Value::MODEL_STATE || k == art::Value::STEP;
}

} // namespace

struct Program::Impl {
  std::string path;
  art::Artifact artifact;
  bool cuda = false;
  CUDAOptions cudaOptions;
  std::unique_ptr<CUDAProgram> device;
  uint8_t *arena = nullptr; // CPU
  uint64_t arenaSize = 0;
  void *library = nullptr;
  std::map<std::string, ArenaRegion> buffers;
  std::map<std::string, Entry> entries;
  std::vector<ValueInfo> persistent;
  /// CPU: storage in the arena. CUDA: the value's index in `persistent`.
  std::map<std::string, void *> persistentData;
  std::map<std::string, size_t> persistentIndex;
  std::vector<std::pair<ArenaRegion, const std::string *>> initial;
  bool profile = false;

  ~Impl() {
    device.reset();
    if (library)
      dlclose(library);
    std::free(arena);
  }

  bool fail(std::string &error, const std::string &message) {
    error = path + ": " + message;
    return false;
  }

  bool region(const std::string &name, std::string &error, ArenaRegion &out) {
    auto it = buffers.find(name);
    if (it == buffers.end())
      return fail(error, "unknown buffer '" + name + "'");
    out = it->second;
    return true;
  }

  /// Host storage of a buffer (CPU artifacts; null for a GPU's).
  void *at(const ArenaRegion &r) { return arena ? arena + r.offset : nullptr; }

  bool describe(const art::Value &v, ValueInfo &info, std::string &error) {
    info.name = v.name();
    info.kind = kindOf(v.kind());
    info.trainable = v.trainable();
    info.stateOf = v.state_of();
    if (!dtypeOf(v.type().element_type(), info.dtype))
      return fail(error, "value '" + v.name() + "' has an unknown element type");
    info.shape.assign(v.type().shape().begin(), v.type().shape().end());
    uint64_t n = 1;
    for (int64_t d : info.shape) {
      if (d < 0 || (d && n > UINT64_MAX / uint64_t(d)))
        return fail(error, "value '" + v.name() + "' has an invalid shape");
      n *= d;
    }
    info.bytes = n * dtypeSize(info.dtype);
    auto it = buffers.find(v.buffer());
    if (it == buffers.end())
      return fail(error, "value '" + v.name() + "' has no buffer");
    if (it->second.size < info.bytes)
      return fail(error, "buffer of value '" + v.name() + "' is " +
                             std::to_string(it->second.size) +
                             " bytes, expected " + std::to_string(info.bytes));
    return true;
  }

  bool loadKernels(std::string &error) {
    for (const art::KernelBinary &k : artifact.kernels()) {
      if (k.format() != art::KernelBinary::CPU_SHARED_OBJECT)
        return fail(error, "kernel binary '" + k.name() +
                               "' is not for the CPU, but the artifact's "
                               "target is cpu");
      if (library)
        return fail(error, "more than one CPU kernel binary");
      int fd = memfd_create("trainopt-kernels", MFD_CLOEXEC);
      if (fd < 0)
        return fail(error, "memfd_create failed: " +
                               std::string(std::strerror(errno)));
      const std::string &bytes = k.binary();
      size_t done = 0;
      while (done < bytes.size()) {
        ssize_t n = ::write(fd, bytes.data() + done, bytes.size() - done);
        if (n <= 0) {
          ::close(fd);
          return fail(error, "cannot stage the kernel object");
        }
        done += n;
      }
      std::string fdPath = "/proc/self/fd/" + std::to_string(fd);
      library = dlopen(fdPath.c_str(), RTLD_NOW | RTLD_LOCAL);
      ::close(fd);
      if (!library)
        return fail(error, std::string("cannot load the kernel object: ") +
                               dlerror());
    }
    return true;
  }

  /// The GPU kernels: one PTX module and, optionally, its cubin.
  bool collectGPUKernels(CUDAProgramSpec &spec, std::string &error) {
    for (const art::KernelBinary &k : artifact.kernels()) {
      std::string *slot;
      if (k.format() == art::KernelBinary::PTX)
        slot = &spec.ptx;
      else if (k.format() == art::KernelBinary::CUBIN)
        slot = &spec.cubin;
      else
        return fail(error, "kernel binary '" + k.name() +
                               "' is not PTX or a cubin, but the artifact's "
                               "target is cuda");
      if (!slot->empty())
        return fail(error, "more than one GPU kernel binary of a format");
      if (!spec.arch.empty() && spec.arch != k.target())
        return fail(error, "the PTX and the cubin are for different GPUs");
      spec.arch = k.target();
      *slot = k.binary();
    }
    return true;
  }

  /// Checks command `c` of entry point `ep` and adds it to `entry`.
  bool addCommand(const art::EntryPoint &ep, const art::Command &c,
                  Entry &entry, std::string &error) {
    auto failIn = [&](const std::string &message) {
      return fail(error, "entry point '" + ep.name() + "': " + message);
    };
    Command cmd;
    CUDACommand gpu;
    auto regions = [&](const auto &names, std::vector<uint64_t> *sizes) {
      for (const std::string &b : names) {
        ArenaRegion r;
        if (!region(b, error, r))
          return false;
        gpu.buffers.push_back(r);
        cmd.buffers.push_back(at(r));
        if (sizes)
          sizes->push_back(r.size);
      }
      return true;
    };
    switch (c.command_case()) {
    case art::Command::kLaunch: {
      const art::KernelLaunch &l = c.launch();
      cmd.kind = Command::Launch;
      gpu.kind = CUDACommand::Launch;
      cmd.what = gpu.what = "kernel " + l.kernel();
      if (!regions(l.buffers(), nullptr))
        return false;
      if (cuda) {
        if (l.grid_size() < 1 || l.grid_size() > 3 ||
            l.block_size() != l.grid_size())
          return failIn("kernel '" + l.kernel() +
                        "' has no 1- to 3-D grid and block");
        gpu.kernel = l.kernel();
        for (int d = 0; d < l.grid_size(); ++d) {
          gpu.grid[d] = l.grid(d);
          gpu.block[d] = l.block(d);
        }
        gpu.sharedMemory = l.shared_memory();
        break;
      }
      std::string symbol = l.kernel() + "_packed";
      cmd.kernel = library ? reinterpret_cast<PackedKernel>(
                                 dlsym(library, symbol.c_str()))
                           : nullptr;
      if (!cmd.kernel)
        return failIn("kernel '" + l.kernel() + "' is not in the kernel object");
      if (l.parallel_rows() > 0) {
        std::string range = l.kernel() + "_range_packed";
        cmd.rangeKernel =
            reinterpret_cast<RangeKernel>(dlsym(library, range.c_str()));
        if (!cmd.rangeKernel || l.parallel_rows() > uint64_t(INT64_MAX) ||
            l.work() > uint64_t(INT64_MAX))
          return failIn("kernel '" + l.kernel() +
                        "' claims row ranges but the kernel object has no '" +
                        range + "'");
        cmd.rows = static_cast<int64_t>(l.parallel_rows());
        cmd.work = static_cast<int64_t>(l.work());
      }
      break;
    }
    case art::Command::kLibraryCall: {
      const art::LibraryCall &lc = c.library_call();
      cmd.kind = Command::Library;
      gpu.kind = CUDACommand::Library;
      cmd.what = "library call " + lc.function() + " [";
      for (int64_t v : lc.int_args())
        cmd.what += std::to_string(v) + " ";
      cmd.what.back() = ']';
      gpu.what = cmd.what;
      std::string prefix = cuda ? "cuda." : "cpu.";
      if (lc.function().compare(0, prefix.size(), prefix) != 0)
        return failIn("library function '" + lc.function() +
                      "' is not for this artifact's target (expected " +
                      prefix + "*)");
      if (!cuda) {
        cmd.library = findLibraryFunction(lc.function());
        if (!cmd.library)
          return failIn("unknown library function '" + lc.function() + "'");
      }
      std::vector<uint64_t> sizes;
      if (!regions(lc.buffers(), &sizes))
        return false;
      cmd.ints.assign(lc.int_args().begin(), lc.int_args().end());
      cmd.floats.assign(lc.float_args().begin(), lc.float_args().end());
      std::string why;
      if (!checkLibraryCall(lc.function(), cmd.ints.data(), cmd.ints.size(),
                            cmd.floats.data(), cmd.floats.size(), sizes.data(),
                            sizes.size(), why))
        return failIn(why);
      gpu.function = lc.function();
      gpu.ints = cmd.ints;
      gpu.floats = cmd.floats;
      break;
    }
    case art::Command::kCopy: {
      cmd.kind = Command::Copy;
      gpu.kind = CUDACommand::Copy;
      cmd.what = gpu.what = "copy " + c.copy().from() + " -> " + c.copy().to();
      if (!regions(std::vector<std::string>{c.copy().from(), c.copy().to()},
                   nullptr))
        return false;
      if (c.copy().size() > gpu.buffers[0].size ||
          c.copy().size() > gpu.buffers[1].size)
        return failIn(cmd.what + " copies more than its buffers hold");
      cmd.size = gpu.size = c.copy().size();
      break;
    }
    case art::Command::kFill: {
      cmd.kind = Command::Fill;
      gpu.kind = CUDACommand::Fill;
      cmd.what = gpu.what = "fill " + c.fill().buffer();
      if (!regions(std::vector<std::string>{c.fill().buffer()}, nullptr))
        return false;
      uint64_t size = gpu.buffers[0].size;
      if (c.fill().value().empty() || size % c.fill().value().size())
        return failIn(cmd.what + " has a pattern that does not tile it");
      cmd.size = size;
      cmd.fill = gpu.pattern = c.fill().value();
      break;
    }
    default:
      return failIn("has a command this runtime does not know (collectives "
                    "need a multi-device runtime)");
    }
    if (cuda)
      entry.cuda.commands.push_back(std::move(gpu));
    else
      entry.commands.push_back(std::move(cmd));
    return true;
  }

  bool load(std::string &error) {
    if (!art::readArtifact(path, artifact, error))
      return false;
    if (artifact.target() != "cpu" && artifact.target() != "cuda")
      return fail(error, "artifact is for target '" + artifact.target() +
                             "'; this runtime runs cpu and cuda artifacts");
    cuda = artifact.target() == "cuda";
    const art::MemoryPlan &plan = artifact.memory_plan();
    if (plan.arena_size_size() != 1)
      return fail(error, "memory plan must have exactly one arena");
    arenaSize = plan.arena_size(0);
    if (arenaSize > (uint64_t(1) << 46))
      return fail(error, "arena of " + std::to_string(arenaSize) +
                             " bytes is implausibly large");
    for (const art::Buffer &b : plan.buffers()) {
      if (b.device() != 0 || b.offset() > arenaSize ||
          b.size() > arenaSize - b.offset())
        return fail(error, "buffer '" + b.name() + "' lies outside the arena");
      if (!buffers.emplace(b.name(), ArenaRegion{b.offset(), b.size()}).second)
        return fail(error, "buffer '" + b.name() + "' is planned twice");
    }
    if (!cuda) {
      arena = static_cast<uint8_t *>(std::aligned_alloc(
          64, std::max<uint64_t>(64, (arenaSize + 63) / 64 * 64)));
      if (!arena)
        return fail(error, "cannot allocate an arena of " +
                               std::to_string(arenaSize) + " bytes");
      std::memset(arena, 0, arenaSize);
    }
    for (const art::InitialValue &init : artifact.initial_values()) {
      ArenaRegion r;
      if (!region(init.name(), error, r))
        return false;
      if (!init.side_file().empty())
        return fail(error, "initial value '" + init.name() +
                               "' is in a side file; side files are not "
                               "supported by this runtime yet");
      if (init.zeros()) {
        if (!init.data().empty())
          return fail(error, "initial value '" + init.name() +
                                 "' is marked all-zero but has data");
        initial.push_back({r, nullptr}); // cleared, not copied
        continue;
      }
      if (init.data().size() != r.size)
        return fail(error, "initial value '" + init.name() + "' has " +
                               std::to_string(init.data().size()) +
                               " bytes, its buffer " + std::to_string(r.size));
      initial.push_back({r, &init.data()});
    }
    CUDAProgramSpec spec;
    spec.source = path;
    spec.arenaSize = arenaSize;
    if (cuda ? !collectGPUKernels(spec, error) : !loadKernels(error))
      return false;

    std::vector<ArenaRegion> persistentRegions;
    for (const art::EntryPoint &ep : artifact.entry_points()) {
      if (entries.count(ep.name()))
        return fail(error, "entry point '" + ep.name() + "' appears twice");
      Entry &entry = entries[ep.name()];
      entry.index = entries.size() - 1;
      entry.cuda.name = ep.name();
      for (const art::Value &v : ep.arguments()) {
        ValueInfo info;
        ArenaRegion r;
        if (!describe(v, info, error) || !region(v.buffer(), error, r))
          return false;
        if (isPersistent(v.kind())) {
          if (!persistentIndex.count(v.name())) {
            persistentIndex[v.name()] = persistent.size();
            persistentData[v.name()] = at(r);
            persistent.push_back(info);
            persistentRegions.push_back(r);
          }
        } else {
          entry.inputIndex[v.name()] = entry.inputs.size();
          entry.inputData[v.name()] = at(r);
          entry.inputs.push_back(info);
          entry.cuda.inputs.push_back(r);
        }
      }
      for (const art::Value &v : ep.results()) {
        if (v.updates() >= 0)
          continue;
        ValueInfo info;
        ArenaRegion r;
        if (!describe(v, info, error) || !region(v.buffer(), error, r))
          return false;
        entry.outputIndex[v.name()] = entry.outputs.size();
        entry.outputData[v.name()] = at(r);
        entry.outputs.push_back(info);
        entry.cuda.outputs.push_back(r);
      }
      for (const art::Command &c : ep.commands())
        if (!addCommand(ep, c, entry, error))
          return false;
    }
    if (!cuda) {
      resetPersistentValues();
      return true;
    }
    // The entry points in index order, as the device numbers them.
    spec.entries.resize(entries.size());
    for (auto &[name, entry] : entries)
      spec.entries[entry.index] = std::move(entry.cuda);
    spec.persistent = std::move(persistentRegions);
    spec.initial = initial;
    device = CUDAProgram::create(spec, cudaOptions, error);
    return device != nullptr;
  }

  void resetPersistentValues() {
    for (auto &[r, bytes] : initial) {
      if (bytes)
        std::memcpy(at(r), bytes->data(), bytes->size());
      else
        std::memset(at(r), 0, r.size);
    }
  }
};

std::unique_ptr<Program> Program::load(const std::string &path,
                                       std::string &error) {
  return load(path, LoadOptions(), error);
}

std::unique_ptr<Program> Program::load(const std::string &path,
                                       const LoadOptions &options,
                                       std::string &error) {
  auto impl = std::make_unique<Impl>();
  impl->path = path;
  impl->cudaOptions = options.cuda;
  if (!impl->load(error))
    return nullptr;
  return std::unique_ptr<Program>(new Program(std::move(impl)));
}

Program::Program(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Program::~Program() = default;

const art::Artifact &Program::artifact() const { return impl_->artifact; }
const std::string &Program::modelName() const {
  return impl_->artifact.model_name();
}
const std::string &Program::target() const { return impl_->artifact.target(); }
int64_t Program::batchSize() const { return impl_->artifact.batch_size(); }
bool Program::hasEntryPoint(const std::string &entry) const {
  return impl_->entries.count(entry) != 0;
}
const std::vector<ValueInfo> &Program::persistentValues() const {
  return impl_->persistent;
}

static const std::vector<ValueInfo> kNoValues;

const std::vector<ValueInfo> &Program::inputs(const std::string &entry) const {
  auto it = impl_->entries.find(entry);
  return it == impl_->entries.end() ? kNoValues : it->second.inputs;
}
const std::vector<ValueInfo> &Program::outputs(const std::string &entry) const {
  auto it = impl_->entries.find(entry);
  return it == impl_->entries.end() ? kNoValues : it->second.outputs;
}
void *Program::persistent(const std::string &name) {
  if (impl_->device) {
    auto it = impl_->persistentIndex.find(name);
    return it == impl_->persistentIndex.end()
               ? nullptr
               : impl_->device->persistent(it->second);
  }
  auto it = impl_->persistentData.find(name);
  return it == impl_->persistentData.end() ? nullptr : it->second;
}
void *Program::input(const std::string &entry, const std::string &name) {
  auto it = impl_->entries.find(entry);
  if (it == impl_->entries.end())
    return nullptr;
  if (impl_->device) {
    auto v = it->second.inputIndex.find(name);
    return v == it->second.inputIndex.end()
               ? nullptr
               : impl_->device->input(it->second.index, v->second);
  }
  auto v = it->second.inputData.find(name);
  return v == it->second.inputData.end() ? nullptr : v->second;
}
const void *Program::output(const std::string &entry,
                            const std::string &name) const {
  auto it = impl_->entries.find(entry);
  if (it == impl_->entries.end())
    return nullptr;
  if (impl_->device) {
    auto v = it->second.outputIndex.find(name);
    return v == it->second.outputIndex.end()
               ? nullptr
               : impl_->device->output(it->second.index, v->second);
  }
  auto v = it->second.outputData.find(name);
  return v == it->second.outputData.end() ? nullptr : v->second;
}
bool Program::resetPersistent(std::string &error) {
  if (impl_->device)
    return impl_->device->resetPersistent(error);
  impl_->resetPersistentValues();
  return true;
}
void Program::setThreads(int threads) { setLibraryThreads(threads); }
uint64_t Program::arenaBytes() const { return impl_->arenaSize; }

bool Program::synchronize(std::string &error) {
  return !impl_->device || impl_->device->synchronize(error);
}
bool Program::stageInputs(const std::string &entry, std::string &error) {
  auto it = impl_->entries.find(entry);
  if (it == impl_->entries.end()) {
    error = impl_->path + ": no entry point '" + entry + "'";
    return false;
  }
  return !impl_->device || impl_->device->stageInputs(it->second.index, error);
}
std::string Program::lastError() const {
  return impl_->device ? impl_->device->lastError() : std::string();
}
std::string Program::deviceDescription() const {
  return impl_->device ? impl_->device->deviceDescription() : "CPU";
}
uint64_t Program::deviceBytes() const {
  return impl_->device ? impl_->device->deviceBytes() : impl_->arenaSize;
}

bool Program::run(const std::string &entryName, std::string &error) {
  auto it = impl_->entries.find(entryName);
  if (it == impl_->entries.end()) {
    error = impl_->path + ": no entry point '" + entryName + "'";
    return false;
  }
  if (impl_->device)
    return impl_->device->run(it->second.index, error);
  const bool profile = impl_->profile;
  for (Command &c : it->second.commands) {
    auto start = profile ? std::chrono::steady_clock::now()
                         : std::chrono::steady_clock::time_point();
    switch (c.kind) {
    case Command::Launch:
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
    case Command::Library:
      c.library(c.ints.data(), c.ints.size(), c.floats.data(), c.floats.size(),
                c.buffers.data());
      break;
    case Command::Copy:
      std::memmove(c.buffers[1], c.buffers[0], c.size);
      break;
    case Command::Fill:
      for (size_t off = 0; off < c.size; off += c.fill.size())
        std::memcpy(static_cast<char *>(c.buffers[0]) + off, c.fill.data(),
                    c.fill.size());
      break;
    }
    if (profile) {
      std::chrono::duration<double, std::milli> ms =
          std::chrono::steady_clock::now() - start;
      c.profileMs += ms.count();
      ++c.profileCount;
    }
  }
  return true;
}

std::string Program::profileReport() const {
  if (impl_->device)
    return impl_->device->profileReport();
  std::string out;
  for (const auto &[name, entry] : impl_->entries) {
    std::vector<const Command *> cmds;
    double total = 0;
    for (const Command &c : entry.commands) {
      cmds.push_back(&c);
      total += c.profileMs;
    }
    if (total == 0)
      continue;
    std::sort(cmds.begin(), cmds.end(), [](const Command *a, const Command *b) {
      return a->profileMs > b->profileMs;
    });
    char line[256];
    std::snprintf(line, sizeof line, "%s: %.3f ms per run over %zu commands\n",
                  name.c_str(), total / std::max<int64_t>(cmds[0]->profileCount, 1),
                  cmds.size());
    out += line;
    for (size_t i = 0; i < cmds.size() && i < 25; ++i) {
      std::snprintf(line, sizeof line, "  %6.1f%%  %8.3f ms  %s\n",
                    100.0 * cmds[i]->profileMs / total,
                    cmds[i]->profileMs / std::max<int64_t>(cmds[i]->profileCount, 1),
                    cmds[i]->what.c_str());
      out += line;
    }
  }
  return out;
}

void Program::setProfiling(bool on) { impl_->profile = on; }
