//===- CUDAProgram.cpp - a training program on one NVIDIA GPU -------------===//
//
/// \file
/// Implements CUDAProgram (CUDADevice.h): device arena, pinned host
/// mirrors, kernel modules, planned library calls, and runs as one stream of
/// work captured into a CUDA graph per entry point.
//
//===----------------------------------------------------------------------===//

#include "trainopt/Runtime/CUDADevice.h"
#include "trainopt/Runtime/ProfileReport.h"

#include "CUDAApi.h"
#include "Library.h"
#include "LibraryKernels.h"

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <map>

using namespace trainopt::rt;
using namespace trainopt::rt::cuda;

/// The runtime's own kernels as a fat binary (generated at build time from
/// LibraryKernels.cu; empty when nvcc was missing).
extern "C" const unsigned char trainoptCUDALibraryKernels[];
extern "C" const unsigned long long trainoptCUDALibraryKernelsSize;

namespace {

/// A pinned host buffer.
struct HostBuffer {
  void *data = nullptr;
  uint64_t size = 0;
};

struct Command {
  CUDACommand::Kind kind;
  std::string what;
  // Launch
  CUfunction function = nullptr;
  uint32_t grid[3], block[3], sharedMemory = 0;
  std::vector<CUdeviceptr> args;
  std::vector<void *> params;
  // Library
  std::unique_ptr<LibraryCall> call;
  // Copy (from, to) and Fill (to)
  CUdeviceptr from = 0, to = 0;
  uint64_t size = 0;
  unsigned fillWidth = 0; ///< 1, 2, 4: cuMemsetD*; 8: the fill kernel
  uint64_t fillValue = 0;
  // Profile
  double profileMs = 0;
  int64_t profileRuns = 0;
};

/// One of an entry point's two sets of input buffers: the host writes one
/// while the other is uploaded or read by a run.
struct InputSlot {
  std::vector<HostBuffer> staging;  ///< pinned, written by the host
  std::vector<CUdeviceptr> landing; ///< device, filled by the upload stream
  CUevent uploaded = nullptr;       ///< staging -> landing done
  CUevent landed = nullptr;         ///< landing -> arena done (reusable)
  bool staged = false;              ///< uploaded for the next run
  bool used = false;                ///< `uploaded` has been recorded
};

struct Entry {
  std::string name;
  std::vector<Command> commands;
  std::vector<CUdeviceptr> inputs; ///< the inputs' arena buffers
  std::vector<uint64_t> inputBytes;
  InputSlot slots[2];
  int next = 0; ///< the slot of the next run
  std::vector<std::pair<CUdeviceptr, HostBuffer>> outputs;
  CUgraphExec graph = nullptr;
  bool graphFailed = false;
  int64_t runs = 0;
  CUevent done = nullptr;
  bool pending = false;       ///< a run was queued and not yet waited for
  std::vector<CUevent> marks; ///< profile: one before each command, one after
};

/// Where the current copy of a persistent value is.
enum class Fresh { Both, Device, Host };

struct Persistent {
  ArenaRegion region;
  HostBuffer host;
  Fresh fresh = Fresh::Device;
};

class Impl final : public CUDAProgram {
public:
  explicit Impl(const CUDAOptions &options) : options_(options) {
    if (options_.syncEachCommand || options_.profile)
      options_.graphs = false;
  }
  ~Impl() override;

  bool open(std::string &error);
  bool prepare(const CUDAProgramSpec &spec, std::string &error);

  void *input(size_t entry, size_t index) override {
    Entry &e = entries_[entry];
    InputSlot &slot = e.slots[e.next];
    // Wait until the slot's last upload (two runs ago, or a stageInputs
    // for this run) has read the staging buffers; a staged slot written
    // again is uploaded again.
    if (!bind(lastError_) ||
        (slot.used && !wait(slot.uploaded, e.name, lastError_)))
      return nullptr;
    slot.staged = false;
    return slot.staging[index].data;
  }
  bool stageInputs(size_t entry, std::string &error) override;
  const void *output(size_t entry, size_t index) override {
    Entry &e = entries_[entry];
    if (!bind(lastError_) || (e.pending && !finish(e, lastError_)))
      return nullptr;
    return e.outputs[index].second.data;
  }
  void *persistent(size_t index) override;
  bool resetPersistent(std::string &error) override;
  bool run(size_t entry, std::string &error) override;
  bool synchronize(std::string &error) override;
  const std::string &lastError() const override { return lastError_; }
  std::string deviceDescription() const override { return description_; }
  uint64_t deviceBytes() const override {
    return arenaSize_ + workspaceSize_ + landingBytes_;
  }
  std::string profileReport() const override;

private:
  bool check(CUresult r, const std::string &what, std::string &error) {
    if (r == CUDA_SUCCESS)
      return true;
    error = source_ + ": " + what + ": " + driver_.describe(r);
    return false;
  }
  bool allocHost(uint64_t size, HostBuffer &out, std::string &error);
  bool loadModules(const CUDAProgramSpec &spec, std::string &error);
  bool prepareCommand(const CUDACommand &c, const std::string &entry,
                      Command &out, std::string &error);
  bool stage(Entry &e, std::string &error);
  bool enqueueInputs(Entry &e, std::string &error);
  bool enqueueCommands(Entry &e, std::string &error);
  /// Makes the program's context current on the calling thread.
  bool bind(std::string &error) {
    return check(driver_.cuCtxSetCurrent(context_), "cuCtxSetCurrent", error);
  }
  bool enqueueCommand(Command &c, const std::string &entry, std::string &error);
  bool enqueueRun(Entry &e, std::string &error);
  bool wait(CUevent event, const std::string &entry, std::string &error);
  bool finish(Entry &e, std::string &error);
  bool pushPersistent(std::string &error);

  CUDAOptions options_;
  std::string source_, description_, lastError_;
  Driver driver_;
  LibraryContext library_;
  CUdevice device_ = 0;
  CUcontext context_ = nullptr;
  CUstream stream_ = nullptr;
  CUstream upload_ = nullptr; ///< input copies, overlapping the compute
  /// Some persistent value was handed to the host (copy it back before the
  /// next run); every persistent value's newest copy is on the device.
  bool hostTouched_ = false, allOnDevice_ = true;
  uint64_t landingBytes_ = 0;
  CUmodule kernels_ = nullptr;
  CUdeviceptr arena_ = 0, workspace_ = 0;
  uint64_t arenaSize_ = 0, workspaceSize_ = 0;
  CUfunction fill64_ = nullptr;
  std::vector<Entry> entries_;
  std::vector<Persistent> persistent_;
  std::vector<std::pair<ArenaRegion, const std::string *>> initial_;
  std::vector<HostBuffer> hostBuffers_;
};

Impl::~Impl() {
  if (!context_)
    return;
  driver_.cuCtxSetCurrent(context_);
  if (stream_)
    driver_.cuStreamSynchronize(stream_);
  for (Entry &e : entries_) {
    if (e.graph)
      driver_.cuGraphExecDestroy(e.graph);
    for (InputSlot &slot : e.slots) {
      for (CUevent ev : {slot.uploaded, slot.landed})
        if (ev)
          driver_.cuEventDestroy(ev);
      for (CUdeviceptr p : slot.landing)
        if (p)
          driver_.cuMemFree(p);
    }
    if (e.done)
      driver_.cuEventDestroy(e.done);
    for (CUevent ev : e.marks)
      driver_.cuEventDestroy(ev);
    e.commands.clear(); // library calls release their descriptors
  }
  library_.release();
  for (HostBuffer &h : hostBuffers_)
    driver_.cuMemFreeHost(h.data);
  if (arena_)
    driver_.cuMemFree(arena_);
  if (workspace_)
    driver_.cuMemFree(workspace_);
  if (kernels_)
    driver_.cuModuleUnload(kernels_);
  if (library_.kernels)
    driver_.cuModuleUnload(library_.kernels);
  for (CUstream s : {stream_, upload_})
    if (s)
      driver_.cuStreamDestroy(s);
  driver_.cuDevicePrimaryCtxRelease(device_);
}

bool Impl::open(std::string &error) {
  if (!driver_.load(error)) {
    error = source_ + ": " + error;
    return false;
  }
  int count = 0;
  if (!check(driver_.cuInit(0), "cannot initialize the CUDA driver", error) ||
      !check(driver_.cuDeviceGetCount(&count), "cannot count GPUs", error))
    return false;
  if (options_.device < 0 || options_.device >= count) {
    error = source_ + ": no CUDA device " + std::to_string(options_.device) +
            " (this machine has " + std::to_string(count) + ")";
    return false;
  }
  if (!check(driver_.cuDeviceGet(&device_, options_.device), "cuDeviceGet",
             error) ||
      !check(driver_.cuDevicePrimaryCtxRetain(&context_, device_),
             "cannot create a CUDA context", error) ||
      !check(driver_.cuCtxSetCurrent(context_), "cuCtxSetCurrent", error) ||
      !check(driver_.cuStreamCreate(&stream_, CU_STREAM_NON_BLOCKING),
             "cannot create a stream", error) ||
      !check(driver_.cuStreamCreate(&upload_, CU_STREAM_NON_BLOCKING),
             "cannot create a stream", error))
    return false;
  char name[256] = {};
  int major = 0, minor = 0, sms = 0;
  size_t total = 0;
  driver_.cuDeviceGetName(name, sizeof name, device_);
  driver_.cuDeviceGetAttribute(
      &major, CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR, device_);
  driver_.cuDeviceGetAttribute(
      &minor, CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR, device_);
  driver_.cuDeviceGetAttribute(&sms, CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT,
                               device_);
  driver_.cuDeviceTotalMem(&total, device_);
  char text[400];
  std::snprintf(text, sizeof text, "%s (sm_%d%d, %d SMs, %.1f GiB)", name,
                major, minor, sms, total / double(1 << 30));
  description_ = text;
  library_.driver = &driver_;
  library_.tf32 = options_.tf32;
  return true;
}

bool Impl::allocHost(uint64_t size, HostBuffer &out, std::string &error) {
  out.size = size;
  if (!check(driver_.cuMemHostAlloc(&out.data, std::max<uint64_t>(size, 1), 0),
             "cannot allocate " + std::to_string(size) +
                 " bytes of pinned host memory",
             error))
    return false;
  std::memset(out.data, 0, size);
  hostBuffers_.push_back(out);
  return true;
}

bool Impl::loadModules(const CUDAProgramSpec &spec, std::string &error) {
  int major = 0, minor = 0;
  driver_.cuDeviceGetAttribute(
      &major, CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR, device_);
  driver_.cuDeviceGetAttribute(
      &minor, CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR, device_);
  std::string arch = "sm_" + std::to_string(major) + std::to_string(minor);
  // A cubin runs only on its own architecture; the PTX is JIT-compiled by
  // the driver for a newer one.
  bool cubinFits =
      !spec.cubin.empty() && (spec.arch == arch || spec.arch == arch + "a");
  if (!spec.ptx.empty() || !spec.cubin.empty()) {
    char log[4096] = {};
    CUjit_option opts[] = {CU_JIT_ERROR_LOG_BUFFER,
                           CU_JIT_ERROR_LOG_BUFFER_SIZE_BYTES};
    void *values[] = {log, reinterpret_cast<void *>(uintptr_t(sizeof log))};
    std::string ptx = spec.ptx; // NUL-terminated for the JIT
    const void *image =
        cubinFits ? static_cast<const void *>(spec.cubin.data()) : ptx.c_str();
    CUresult r = driver_.cuModuleLoadDataEx(&kernels_, image, 2, opts, values);
    if (r != CUDA_SUCCESS) {
      error = source_ + ": cannot load the kernels (" +
              (cubinFits ? "cubin for " + spec.arch
                         : "PTX for " + spec.arch + " on " + arch) +
              "): " + driver_.describe(r) +
              (log[0] ? std::string(": ") + log : "");
      return false;
    }
  }
  // Without them (a GPU the fat binary has no code for), only the calls
  // that need them fail, naming the kernel.
  if (trainoptCUDALibraryKernelsSize > 0 &&
      driver_.cuModuleLoadDataEx(&library_.kernels, trainoptCUDALibraryKernels,
                                 0, nullptr, nullptr) != CUDA_SUCCESS)
    library_.kernels = nullptr;
  if (library_.kernels)
    driver_.cuModuleGetFunction(&fill64_, library_.kernels, "trainopt_fill64");
  return true;
}

bool Impl::prepareCommand(const CUDACommand &c, const std::string &entry,
                          Command &out, std::string &error) {
  auto fail = [&](const std::string &why) {
    error = source_ + ": entry point '" + entry + "': " + c.what + ": " + why;
    return false;
  };
  auto at = [&](const ArenaRegion &r) { return arena_ + r.offset; };
  out.kind = c.kind;
  out.what = c.what;
  switch (c.kind) {
  case CUDACommand::Launch: {
    if (!kernels_)
      return fail("the artifact has no kernel binary");
    CUresult r =
        driver_.cuModuleGetFunction(&out.function, kernels_, c.kernel.c_str());
    if (r != CUDA_SUCCESS)
      return fail("not in the kernel binary: " + driver_.describe(r));
    // The kernel takes exactly one pointer per buffer.
    size_t offset = 0, size = 0;
    if (!c.buffers.empty() &&
        driver_.cuFuncGetParamInfo(out.function, c.buffers.size() - 1, &offset,
                                   &size) != CUDA_SUCCESS)
      return fail("the kernel takes fewer than " +
                  std::to_string(c.buffers.size()) + " parameters");
    if (driver_.cuFuncGetParamInfo(out.function, c.buffers.size(), &offset,
                                   &size) == CUDA_SUCCESS)
      return fail("the kernel takes more than " +
                  std::to_string(c.buffers.size()) + " parameters");
    int maxThreads = 0;
    driver_.cuFuncGetAttribute(
        &maxThreads, CU_FUNC_ATTRIBUTE_MAX_THREADS_PER_BLOCK, out.function);
    uint64_t threads = uint64_t(c.block[0]) * c.block[1] * c.block[2];
    if (threads == 0 || threads > uint64_t(maxThreads) || c.grid[0] == 0 ||
        c.grid[1] == 0 || c.grid[1] > 65535 || c.grid[2] == 0 ||
        c.grid[2] > 65535 || c.grid[0] > 0x7fffffffu)
      return fail("launch shape " + std::to_string(c.grid[0]) + "x" +
                  std::to_string(c.grid[1]) + "x" + std::to_string(c.grid[2]) +
                  " blocks of " + std::to_string(threads) +
                  " threads is not launchable (at most " +
                  std::to_string(maxThreads) + " threads a block)");
    std::copy(c.grid, c.grid + 3, out.grid);
    std::copy(c.block, c.block + 3, out.block);
    out.sharedMemory = c.sharedMemory;
    for (const ArenaRegion &b : c.buffers)
      out.args.push_back(at(b));
    for (CUdeviceptr &p : out.args)
      out.params.push_back(&p);
    return true;
  }
  case CUDACommand::Library: {
    std::vector<CUdeviceptr> buffers;
    for (const ArenaRegion &b : c.buffers)
      buffers.push_back(at(b));
    std::string why;
    out.call =
        planLibraryCall(library_, stream_, c.function, c.ints, buffers, why);
    if (!out.call)
      return fail(why);
    workspaceSize_ = std::max(workspaceSize_, out.call->workspaceBytes());
    return true;
  }
  case CUDACommand::Copy:
    out.from = at(c.buffers[0]);
    out.to = at(c.buffers[1]);
    out.size = c.size;
    return true;
  case CUDACommand::Fill: {
    out.to = at(c.buffers[0]);
    out.size = c.buffers[0].size;
    std::string pattern = c.pattern;
    // Reduce the pattern to its shortest period among 1, 2, 4, 8 bytes.
    for (size_t width : {1u, 2u, 4u, 8u}) {
      if (pattern.size() % width || pattern.size() <= width)
        continue;
      bool periodic = true;
      for (size_t i = width; i < pattern.size() && periodic; ++i)
        periodic = pattern[i] == pattern[i - width];
      if (periodic) {
        pattern.resize(width);
        break;
      }
    }
    if (pattern.size() != 1 && pattern.size() != 2 && pattern.size() != 4 &&
        pattern.size() != 8)
      return fail("a fill pattern of " + std::to_string(pattern.size()) +
                  " bytes (expected 1, 2, 4 or 8)");
    if (out.size % pattern.size() || out.to % pattern.size())
      return fail("the fill pattern does not tile the buffer");
    if (pattern.size() == 8 && !fill64_)
      return fail("an 8-byte fill needs the runtime's library kernels");
    out.fillWidth = static_cast<unsigned>(pattern.size());
    std::memcpy(&out.fillValue, pattern.data(), pattern.size());
    return true;
  }
  case CUDACommand::Collective:
    // The compiler refuses sharded CUDA programs until NCCL is wired in.
    return fail("collectives need NCCL, which this GPU runtime does not "
                "drive yet; sharded programs run on the CPU");
  }
  return fail("unknown command kind");
}

bool Impl::prepare(const CUDAProgramSpec &spec, std::string &error) {
  source_ = spec.source;
  if (!open(error) || !loadModules(spec, error))
    return false;
  arenaSize_ = spec.arenaSize;
  size_t freeBytes = 0, totalBytes = 0;
  driver_.cuMemGetInfo(&freeBytes, &totalBytes);
  if (!check(driver_.cuMemAlloc(&arena_, std::max<uint64_t>(arenaSize_, 256)),
             "cannot allocate the arena of " + std::to_string(arenaSize_) +
                 " bytes (" + std::to_string(freeBytes) + " free)",
             error))
    return false;
  // Library workspaces come out of what the arena left.
  driver_.cuMemGetInfo(&freeBytes, &totalBytes);
  library_.workspaceLimit =
      std::min<uint64_t>(library_.workspaceLimit, freeBytes / 4);

  for (const CUDAEntry &e : spec.entries) {
    Entry entry;
    entry.name = e.name;
    for (const CUDACommand &c : e.commands) {
      Command cmd;
      if (!prepareCommand(c, e.name, cmd, error))
        return false;
      entry.commands.push_back(std::move(cmd));
    }
    for (const ArenaRegion &r : e.inputs) {
      entry.inputs.push_back(arena_ + r.offset);
      entry.inputBytes.push_back(r.size);
    }
    for (InputSlot &slot : entry.slots) {
      for (const ArenaRegion &r : e.inputs) {
        HostBuffer h;
        CUdeviceptr landing = 0;
        if (!allocHost(r.size, h, error) ||
            (r.size && !check(driver_.cuMemAlloc(&landing, r.size),
                              "cannot allocate an input buffer", error)))
          return false;
        slot.staging.push_back(h);
        slot.landing.push_back(landing);
        landingBytes_ += r.size;
      }
      if (!check(driver_.cuEventCreate(&slot.uploaded, CU_EVENT_DISABLE_TIMING),
                 "cuEventCreate", error) ||
          !check(driver_.cuEventCreate(&slot.landed, CU_EVENT_DISABLE_TIMING),
                 "cuEventCreate", error))
        return false;
    }
    for (const ArenaRegion &r : e.outputs) {
      HostBuffer h;
      if (!allocHost(r.size, h, error))
        return false;
      entry.outputs.push_back({arena_ + r.offset, h});
    }
    if (!check(driver_.cuEventCreate(&entry.done, CU_EVENT_DISABLE_TIMING),
               "cuEventCreate", error))
      return false;
    if (options_.profile) {
      entry.marks.resize(entry.commands.size() + 1);
      for (CUevent &ev : entry.marks)
        if (!check(driver_.cuEventCreate(&ev, CU_EVENT_DEFAULT),
                   "cuEventCreate", error))
          return false;
    }
    entries_.push_back(std::move(entry));
  }
  if (workspaceSize_ && !check(driver_.cuMemAlloc(&workspace_, workspaceSize_),
                               "cannot allocate the library workspace of " +
                                   std::to_string(workspaceSize_) + " bytes",
                               error))
    return false;
  for (const ArenaRegion &r : spec.persistent) {
    Persistent p;
    p.region = r;
    if (!allocHost(r.size, p.host, error))
      return false;
    persistent_.push_back(p);
  }
  initial_ = spec.initial;
  return resetPersistent(error);
}

bool Impl::resetPersistent(std::string &error) {
  if (!bind(error) || !synchronize(error))
    return false;
  // The arena starts zeroed, like the CPU runtime's.
  if (arenaSize_ &&
      !check(driver_.cuMemsetD8Async(arena_, 0, arenaSize_, stream_),
             "cannot clear the arena", error))
    return false;
  for (auto &[region, bytes] : initial_) // null: all zero
    if (bytes &&
        !check(driver_.cuMemcpyHtoDAsync(arena_ + region.offset, bytes->data(),
                                         bytes->size(), stream_),
               "cannot copy initial values to the GPU", error))
      return false;
  if (!check(driver_.cuStreamSynchronize(stream_),
             "copying initial values to the GPU", error))
    return false;
  for (Persistent &p : persistent_)
    p.fresh = Fresh::Device;
  hostTouched_ = false;
  allOnDevice_ = true;
  return true;
}

void *Impl::persistent(size_t index) {
  Persistent &p = persistent_[index];
  if (!bind(lastError_))
    return nullptr;
  if (p.fresh == Fresh::Device) {
    if (!synchronize(lastError_) ||
        !check(driver_.cuMemcpyDtoH(p.host.data, arena_ + p.region.offset,
                                    p.host.size),
               "cannot copy a persistent value from the GPU", lastError_))
      return nullptr;
  }
  // The caller may write through the pointer: copy back before a run.
  p.fresh = Fresh::Host;
  hostTouched_ = true;
  allOnDevice_ = false;
  return p.host.data;
}

bool Impl::pushPersistent(std::string &error) {
  // Nothing to do on the steps between checkpoints (the common case).
  if (!hostTouched_)
    return true;
  hostTouched_ = false;
  for (Persistent &p : persistent_) {
    if (p.fresh != Fresh::Host)
      continue;
    if (!check(driver_.cuMemcpyHtoDAsync(arena_ + p.region.offset, p.host.data,
                                         p.host.size, stream_),
               "cannot copy a persistent value to the GPU", error))
      return false;
    p.fresh = Fresh::Both;
  }
  return true;
}

bool Impl::enqueueCommand(Command &c, const std::string &entry,
                          std::string &error) {
  std::string why;
  CUresult r = CUDA_SUCCESS;
  if ((c.kind == CUDACommand::Copy || c.kind == CUDACommand::Fill) &&
      c.size == 0)
    return true;
  switch (c.kind) {
  case CUDACommand::Launch:
    r = driver_.cuLaunchKernel(
        c.function, c.grid[0], c.grid[1], c.grid[2], c.block[0], c.block[1],
        c.block[2], c.sharedMemory, stream_, c.params.data(), nullptr);
    break;
  case CUDACommand::Library:
    if (!c.call->enqueue(stream_, workspace_, workspaceSize_, why)) {
      error = source_ + ": entry point '" + entry + "': " + c.what + ": " + why;
      return false;
    }
    break;
  case CUDACommand::Copy:
    r = driver_.cuMemcpyDtoDAsync(c.to, c.from, c.size, stream_);
    break;
  case CUDACommand::Fill:
    switch (c.fillWidth) {
    case 1:
      r = driver_.cuMemsetD8Async(c.to, uint8_t(c.fillValue), c.size, stream_);
      break;
    case 2:
      r = driver_.cuMemsetD16Async(c.to, uint16_t(c.fillValue), c.size / 2,
                                   stream_);
      break;
    case 4:
      r = driver_.cuMemsetD32Async(c.to, uint32_t(c.fillValue), c.size / 4,
                                   stream_);
      break;
    default: {
      FillParams p = {c.fillValue, static_cast<long long>(c.size / 8)};
      CUdeviceptr to = c.to;
      void *args[] = {&p, &to};
      unsigned blocks = static_cast<unsigned>(
          std::clamp<uint64_t>((p.words + 255) / 256, 1, 1 << 20));
      r = driver_.cuLaunchKernel(fill64_, blocks, 1, 1, 256, 1, 1, 0, stream_,
                                 args, nullptr);
    }
    }
    break;
  case CUDACommand::Collective: // refused by prepareCommand
    break;
  }
  if (r != CUDA_SUCCESS) {
    error = source_ + ": entry point '" + entry + "': " + c.what + ": " +
            driver_.describe(r);
    return false;
  }
  if (options_.syncEachCommand &&
      !check(driver_.cuStreamSynchronize(stream_),
             "entry point '" + entry + "': " + c.what + " failed on the GPU",
             error))
    return false;
  return true;
}

bool Impl::stage(Entry &e, std::string &error) {
  InputSlot &slot = e.slots[e.next];
  if (slot.staged)
    return true;
  // The landing buffers may still be read by the run that used this slot
  // two runs ago (a wait on a never-recorded event is a no-op).
  if (!check(driver_.cuStreamWaitEvent(upload_, slot.landed, 0),
             "cuStreamWaitEvent", error))
    return false;
  for (size_t i = 0; i < e.inputs.size(); ++i)
    if (e.inputBytes[i] &&
        !check(driver_.cuMemcpyHtoDAsync(slot.landing[i], slot.staging[i].data,
                                         e.inputBytes[i], upload_),
               "entry point '" + e.name + "': copying an input to the GPU",
               error))
      return false;
  if (!check(driver_.cuEventRecord(slot.uploaded, upload_), "cuEventRecord",
             error))
    return false;
  slot.staged = slot.used = true;
  return true;
}

bool Impl::stageInputs(size_t entry, std::string &error) {
  return bind(error) && stage(entries_[entry], error);
}

bool Impl::enqueueInputs(Entry &e, std::string &error) {
  // Outside any graph (an event recorded during a capture is never
  // signalled by the graph's launches): the upload, then a device copy into
  // the arena, which frees the slot's landing buffers for the next upload.
  InputSlot &slot = e.slots[e.next];
  if (!stage(e, error) ||
      !check(driver_.cuStreamWaitEvent(stream_, slot.uploaded, 0),
             "cuStreamWaitEvent", error))
    return false;
  for (size_t i = 0; i < e.inputs.size(); ++i)
    if (e.inputBytes[i] &&
        !check(driver_.cuMemcpyDtoDAsync(e.inputs[i], slot.landing[i],
                                         e.inputBytes[i], stream_),
               "entry point '" + e.name + "': copying an input", error))
      return false;
  if (!check(driver_.cuEventRecord(slot.landed, stream_), "cuEventRecord",
             error))
    return false;
  slot.staged = false;
  e.next ^= 1;
  return true;
}

bool Impl::enqueueCommands(Entry &e, std::string &error) {
  // (Empty copies are skipped: a graph refuses a zero-byte copy node.)
  for (size_t i = 0; i < e.commands.size(); ++i) {
    if (options_.profile && !check(driver_.cuEventRecord(e.marks[i], stream_),
                                   "cuEventRecord", error))
      return false;
    if (!enqueueCommand(e.commands[i], e.name, error))
      return false;
  }
  if (options_.profile && !check(driver_.cuEventRecord(e.marks.back(), stream_),
                                 "cuEventRecord", error))
    return false;
  for (auto &[device, host] : e.outputs)
    if (host.size &&
        !check(driver_.cuMemcpyDtoHAsync(host.data, device, host.size, stream_),
               "entry point '" + e.name + "': copying an output from the GPU",
               error))
      return false;
  return true;
}

bool Impl::enqueueRun(Entry &e, std::string &error) {
  // The first run goes eagerly: libraries initialize lazily, which a
  // capture does not allow. The second is captured, then replayed.
  if (!enqueueInputs(e, error))
    return false;
  if (!options_.graphs || e.graphFailed || e.runs == 0)
    return enqueueCommands(e, error);
  if (!e.graph) {
    CUgraph graph = nullptr;
    std::string why;
    CUresult r = driver_.cuStreamBeginCapture(
        stream_, CU_STREAM_CAPTURE_MODE_THREAD_LOCAL);
    bool enqueued = r == CUDA_SUCCESS && enqueueCommands(e, why);
    CUresult end =
        r == CUDA_SUCCESS ? driver_.cuStreamEndCapture(stream_, &graph) : r;
    if (enqueued && end == CUDA_SUCCESS)
      end = driver_.cuGraphInstantiate(&e.graph, graph, 0);
    if (graph)
      driver_.cuGraphDestroy(graph);
    if (!enqueued || end != CUDA_SUCCESS) {
      std::fprintf(stderr,
                   "trainopt: warning: capturing entry point '%s' as a CUDA "
                   "graph failed (%s); launching its commands one by one\n",
                   e.name.c_str(),
                   !why.empty() ? why.c_str() : driver_.describe(end).c_str());
      e.graphFailed = true;
      if (e.graph)
        driver_.cuGraphExecDestroy(e.graph);
      e.graph = nullptr;
      return enqueueCommands(e, error);
    }
  }
  return check(driver_.cuGraphLaunch(e.graph, stream_),
               "entry point '" + e.name + "': cannot launch its CUDA graph",
               error);
}

bool Impl::run(size_t entry, std::string &error) {
  Entry &e = entries_[entry];
  if (!bind(error) || !pushPersistent(error) || !enqueueRun(e, error) ||
      !check(driver_.cuEventRecord(e.done, stream_), "cuEventRecord", error))
    return false;
  ++e.runs;
  e.pending = true;
  if (!allOnDevice_) {
    for (Persistent &p : persistent_)
      p.fresh = Fresh::Device;
    allOnDevice_ = true;
  }
  if (options_.profile || options_.syncEachCommand)
    return finish(e, error);
  return true;
}

bool Impl::wait(CUevent event, const std::string &entry, std::string &error) {
  CUresult r = driver_.cuEventSynchronize(event);
  if (r == CUDA_SUCCESS)
    return true;
  error = source_ + ": entry point '" + entry +
          "' failed on the GPU: " + driver_.describe(r) +
          (options_.syncEachCommand
               ? std::string()
               : "; run again with --cuda-sync to name the failing command");
  return false;
}

bool Impl::finish(Entry &e, std::string &error) {
  if (!wait(e.done, e.name, error))
    return false;
  e.pending = false;
  if (options_.profile) {
    for (size_t i = 0; i < e.commands.size(); ++i) {
      float ms = 0;
      if (driver_.cuEventElapsedTime(&ms, e.marks[i], e.marks[i + 1]) ==
          CUDA_SUCCESS) {
        e.commands[i].profileMs += ms;
        ++e.commands[i].profileRuns;
      }
    }
  }
  return true;
}

bool Impl::synchronize(std::string &error) {
  if (!bind(error))
    return false;
  for (Entry &e : entries_)
    if (e.pending && !finish(e, error))
      return false;
  return check(driver_.cuStreamSynchronize(stream_), "synchronizing the GPU",
               error);
}

std::string Impl::profileReport() const {
  std::string out;
  for (const Entry &e : entries_) {
    std::vector<ProfiledCommand> cmds;
    double total = 0;
    int64_t runs = 0;
    for (const Command &c : e.commands) {
      cmds.push_back({&c.what, c.profileMs});
      total += c.profileMs;
      runs = std::max(runs, c.profileRuns);
    }
    if (total == 0 || runs == 0)
      continue;
    char line[512];
    std::snprintf(line, sizeof line,
                  "%s: %.3f ms of GPU time per run over %zu commands\n",
                  e.name.c_str(), total / runs, cmds.size());
    out += line;
    out += profileTable(std::move(cmds), total, runs);
  }
  return out;
}

} // namespace

CUDAProgram::~CUDAProgram() = default;

std::unique_ptr<CUDAProgram> CUDAProgram::create(const CUDAProgramSpec &spec,
                                                 const CUDAOptions &options,
                                                 std::string &error) {
  auto impl = std::make_unique<Impl>(options);
  if (!impl->prepare(spec, error))
    return nullptr;
  return impl;
}

bool trainopt::rt::probeCUDA(std::string &description, std::string &error) {
  Impl probe(CUDAOptions{});
  CUDAProgramSpec empty;
  empty.source = "CUDA";
  if (!probe.prepare(empty, error))
    return false;
  description = probe.deviceDescription();
  return true;
}
