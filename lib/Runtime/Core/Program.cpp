//===- Program.cpp - load and run a compiled training program -------------===//
//
/// \file
/// Loads a .trainopt artifact: checks every buffer of the memory plan lies
/// inside the arena, every command names known buffers, kernels and library
/// functions with descriptors that fit their buffers, then allocates the
/// arena once, loads the kernel shared object (from memory, through a
/// memfd) and resolves each command to pointers, so `run` is a loop of
/// indirect calls with no lookups.
//
//===----------------------------------------------------------------------===//

#include "trainopt/Runtime/Program.h"

#include "trainopt/Artifact/ArtifactFile.h"
#include "trainopt/Runtime/CPULibrary.h"

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
  std::vector<Command> commands;
  std::vector<ValueInfo> inputs, outputs;
  std::map<std::string, void *> inputData, outputData;
};

bool dtypeOf(art::ElementType t, DType &out) {
  switch (t) {
  case art::F64: out = DType::F64; return true;
  case art::F32: out = DType::F32; return true;
  case art::F16: out = DType::F16; return true;
  case art::BF16: out = DType::I16; return true;
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
  uint8_t *arena = nullptr;
  uint64_t arenaSize = 0;
  void *library = nullptr;
  struct BufferRef {
    uint64_t offset, size;
  };
  std::map<std::string, BufferRef> buffers;
  std::map<std::string, Entry> entries;
  std::vector<ValueInfo> persistent;
  std::map<std::string, void *> persistentData;
  std::vector<std::pair<void *, const std::string *>> initial;
  bool profile = false;

  ~Impl() {
    if (library)
      dlclose(library);
    std::free(arena);
  }

  bool fail(std::string &error, const std::string &message) {
    error = path + ": " + message;
    return false;
  }

  bool resolve(const std::string &name, std::string &error, void *&out,
               uint64_t *size = nullptr) {
    auto it = buffers.find(name);
    if (it == buffers.end())
      return fail(error, "unknown buffer '" + name + "'");
    out = arena + it->second.offset;
    if (size)
      *size = it->second.size;
    return true;
  }

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
                               "' is not for the CPU; this runtime runs CPU "
                               "artifacts");
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

  bool load(std::string &error) {
    if (!art::readArtifact(path, artifact, error))
      return false;
    if (artifact.target() != "cpu")
      return fail(error, "artifact is for target '" + artifact.target() +
                             "'; this runtime runs cpu artifacts");
    const art::MemoryPlan &plan = artifact.memory_plan();
    if (plan.arena_size_size() != 1)
      return fail(error, "memory plan must have exactly one CPU arena");
    arenaSize = plan.arena_size(0);
    if (arenaSize > (uint64_t(1) << 46))
      return fail(error, "arena of " + std::to_string(arenaSize) +
                             " bytes is implausibly large");
    for (const art::Buffer &b : plan.buffers()) {
      if (b.device() != 0 || b.offset() > arenaSize ||
          b.size() > arenaSize - b.offset())
        return fail(error, "buffer '" + b.name() + "' lies outside the arena");
      if (!buffers.emplace(b.name(), BufferRef{b.offset(), b.size()}).second)
        return fail(error, "buffer '" + b.name() + "' is planned twice");
    }
    arena = static_cast<uint8_t *>(
        std::aligned_alloc(64, std::max<uint64_t>(64, (arenaSize + 63) / 64 * 64)));
    if (!arena)
      return fail(error, "cannot allocate an arena of " +
                             std::to_string(arenaSize) + " bytes");
    std::memset(arena, 0, arenaSize);
    for (const art::InitialValue &init : artifact.initial_values()) {
      void *data;
      uint64_t size;
      if (!resolve(init.name(), error, data, &size))
        return false;
      if (!init.side_file().empty())
        return fail(error, "initial value '" + init.name() +
                               "' is in a side file; side files are not "
                               "supported by this runtime yet");
      if (init.data().size() != size)
        return fail(error, "initial value '" + init.name() + "' has " +
                               std::to_string(init.data().size()) +
                               " bytes, its buffer " + std::to_string(size));
      initial.push_back({data, &init.data()});
    }
    if (!loadKernels(error))
      return false;

    for (const art::EntryPoint &ep : artifact.entry_points()) {
      Entry &entry = entries[ep.name()];
      for (const art::Value &v : ep.arguments()) {
        ValueInfo info;
        if (!describe(v, info, error))
          return false;
        void *data;
        if (!resolve(v.buffer(), error, data))
          return false;
        if (isPersistent(v.kind())) {
          if (!persistentData.count(v.name())) {
            persistent.push_back(info);
            persistentData[v.name()] = data;
          }
        } else {
          entry.inputs.push_back(info);
          entry.inputData[v.name()] = data;
        }
      }
      for (const art::Value &v : ep.results()) {
        if (v.updates() >= 0)
          continue;
        ValueInfo info;
        if (!describe(v, info, error))
          return false;
        void *data;
        if (!resolve(v.buffer(), error, data))
          return false;
        entry.outputs.push_back(info);
        entry.outputData[v.name()] = data;
      }
      for (const art::Command &c : ep.commands()) {
        Command cmd;
        switch (c.command_case()) {
        case art::Command::kLaunch: {
          cmd.kind = Command::Launch;
          cmd.what = "kernel " + c.launch().kernel();
          std::string symbol = c.launch().kernel() + "_packed";
          cmd.kernel = library ? reinterpret_cast<PackedKernel>(
                                     dlsym(library, symbol.c_str()))
                               : nullptr;
          if (!cmd.kernel)
            return fail(error, "entry point '" + ep.name() + "': kernel '" +
                                   c.launch().kernel() +
                                   "' is not in the kernel object");
          if (c.launch().parallel_rows() > 0) {
            std::string range = c.launch().kernel() + "_range_packed";
            cmd.rangeKernel = reinterpret_cast<RangeKernel>(
                dlsym(library, range.c_str()));
            if (!cmd.rangeKernel ||
                c.launch().parallel_rows() > uint64_t(INT64_MAX) ||
                c.launch().work() > uint64_t(INT64_MAX))
              return fail(error, "entry point '" + ep.name() + "': kernel '" +
                                     c.launch().kernel() +
                                     "' claims row ranges but the kernel "
                                     "object has no '" + range + "'");
            cmd.rows = static_cast<int64_t>(c.launch().parallel_rows());
            cmd.work = static_cast<int64_t>(c.launch().work());
          }
          for (const std::string &b : c.launch().buffers()) {
            void *p;
            if (!resolve(b, error, p))
              return false;
            cmd.buffers.push_back(p);
          }
          break;
        }
        case art::Command::kLibraryCall: {
          const art::LibraryCall &lc = c.library_call();
          cmd.kind = Command::Library;
          cmd.what = "library call " + lc.function() + " [";
          for (int64_t v : lc.int_args())
            cmd.what += std::to_string(v) + " ";
          cmd.what.back() = ']';
          cmd.library = findLibraryFunction(lc.function());
          if (!cmd.library)
            return fail(error, "entry point '" + ep.name() +
                                   "': unknown library function '" +
                                   lc.function() + "'");
          std::vector<uint64_t> sizes;
          for (const std::string &b : lc.buffers()) {
            void *p;
            uint64_t size;
            if (!resolve(b, error, p, &size))
              return false;
            cmd.buffers.push_back(p);
            sizes.push_back(size);
          }
          cmd.ints.assign(lc.int_args().begin(), lc.int_args().end());
          cmd.floats.assign(lc.float_args().begin(), lc.float_args().end());
          std::string why;
          if (!checkLibraryCall(lc.function(), cmd.ints.data(),
                                cmd.ints.size(), cmd.floats.data(),
                                cmd.floats.size(), sizes.data(), sizes.size(),
                                why))
            return fail(error, "entry point '" + ep.name() + "': " + why);
          break;
        }
        case art::Command::kCopy: {
          cmd.kind = Command::Copy;
          cmd.what = "copy " + c.copy().from() + " -> " + c.copy().to();
          void *from, *to;
          uint64_t fromSize, toSize;
          if (!resolve(c.copy().from(), error, from, &fromSize) ||
              !resolve(c.copy().to(), error, to, &toSize))
            return false;
          if (c.copy().size() > fromSize || c.copy().size() > toSize)
            return fail(error, "entry point '" + ep.name() + "': " + cmd.what +
                                   " copies more than its buffers hold");
          cmd.buffers = {from, to};
          cmd.size = c.copy().size();
          break;
        }
        case art::Command::kFill: {
          cmd.kind = Command::Fill;
          cmd.what = "fill " + c.fill().buffer();
          void *p;
          uint64_t size;
          if (!resolve(c.fill().buffer(), error, p, &size))
            return false;
          if (c.fill().value().empty() || size % c.fill().value().size())
            return fail(error, "entry point '" + ep.name() + "': " + cmd.what +
                                   " has a pattern that does not tile it");
          cmd.buffers = {p};
          cmd.size = size;
          cmd.fill = c.fill().value();
          break;
        }
        default:
          return fail(error, "entry point '" + ep.name() +
                                 "' has a command this runtime does not know "
                                 "(collectives need a multi-device runtime)");
        }
        entry.commands.push_back(std::move(cmd));
      }
    }
    resetPersistentValues();
    return true;
  }

  void resetPersistentValues() {
    for (auto &[data, bytes] : initial)
      std::memcpy(data, bytes->data(), bytes->size());
  }
};

std::unique_ptr<Program> Program::load(const std::string &path,
                                       std::string &error) {
  auto impl = std::make_unique<Impl>();
  impl->path = path;
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
  auto it = impl_->persistentData.find(name);
  return it == impl_->persistentData.end() ? nullptr : it->second;
}
void *Program::input(const std::string &entry, const std::string &name) {
  auto it = impl_->entries.find(entry);
  if (it == impl_->entries.end())
    return nullptr;
  auto v = it->second.inputData.find(name);
  return v == it->second.inputData.end() ? nullptr : v->second;
}
const void *Program::output(const std::string &entry,
                            const std::string &name) const {
  auto it = impl_->entries.find(entry);
  if (it == impl_->entries.end())
    return nullptr;
  auto v = it->second.outputData.find(name);
  return v == it->second.outputData.end() ? nullptr : v->second;
}
void Program::resetPersistent() { impl_->resetPersistentValues(); }
void Program::setThreads(int threads) { setLibraryThreads(threads); }
uint64_t Program::arenaBytes() const { return impl_->arenaSize; }

bool Program::run(const std::string &entryName, std::string &error) {
  auto it = impl_->entries.find(entryName);
  if (it == impl_->entries.end()) {
    error = impl_->path + ": no entry point '" + entryName + "'";
    return false;
  }
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
