//===- Program.cpp - load and run a compiled training program -------------===//
//
/// \file
/// Loads a .trainopt artifact: checks every buffer of the memory plan lies
/// inside the arena, every command names known buffers and kernels and
/// library functions of the artifact's target with descriptors that fit
/// their buffers, and every initial value's size; resolves it into a
/// DeviceProgramSpec and hands that to the target's Device (Device.h),
/// which `run` and the value accessors drive without knowing the target.
//
//===----------------------------------------------------------------------===//

#include "trainopt/Runtime/Program.h"

#include "trainopt/Artifact/ArtifactFile.h"
#include "trainopt/Runtime/CPULibrary.h"
#include "trainopt/Runtime/CUDADevice.h"
#include "trainopt/Runtime/Device.h"
#include "trainopt/Runtime/Sharding.h"

#include <algorithm>
#include <chrono>
#include <climits>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <dlfcn.h>
#include <map>
#include <set>
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

struct Entry {
  size_t index = 0;
  std::vector<ValueInfo> inputs, outputs;
  std::map<std::string, size_t> inputIndex, outputIndex;
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
  /// FNV-1a of the artifact as read (all stages of a pipeline).
  uint64_t fileHash = 1469598103934665603ull;
  bool cuda = false;
  CUDAOptions cudaOptions;
  std::unique_ptr<Device> device;
  uint64_t arenaSize = 0;
  /// Program::check: stop before connecting ranks and creating the device.
  bool checkOnly = false;
  std::map<std::string, ArenaRegion> buffers;
  std::map<std::string, Entry> entries;
  std::vector<ValueInfo> persistent;
  std::map<std::string, size_t> persistentIndex;
  /// A sharded artifact's mesh (no axes: one device) and the link to the
  /// other ranks (null for a mesh of one).
  Mesh mesh;
  CommunicatorOptions communicatorOptions;
  std::unique_ptr<Communicator> communicator;
  std::map<std::string, std::set<uint32_t>> startedCollectives;
  /// This rank's parts of the initial values of flat-sharded parameters.
  std::deque<std::string> initialParts;

  /// The split (AXIS:flat or AXIS:DIM) value stored in `buffer`, or null.
  const art::Value *shardedValue(const std::string &buffer) const {
    for (const art::EntryPoint &ep : artifact.entry_points())
      for (const art::Value &v : ep.arguments())
        if (v.buffer() == buffer && !v.sharding().empty() &&
            v.sharding().find(":mean") == std::string::npos &&
            v.kind() != art::Value::INPUT && v.kind() != art::Value::LABELS)
          return &v;
    return nullptr;
  }

  /// This rank's part of `v`'s whole initial value `whole`, `bytes` long,
  /// appended to initialParts: level by level of its sharding (Sharding.h;
  /// zero past the last element of a flat part).
  bool initialPart(const art::Value &v, const std::string &whole,
                   uint64_t bytes, std::string &error) {
    const std::string &s = v.sharding();
    std::string why;
    std::optional<Sharding> sharding = Sharding::parse(s, why);
    std::vector<int64_t> shape(v.global_type().shape().begin(),
                               v.global_type().shape().end());
    DType dtype = DType::F32;
    uint64_t wholeBytes = 0;
    if (sharding && dtypeOf(v.type().element_type(), dtype)) {
      wholeBytes = dtypeSize(dtype);
      for (int64_t d : shape)
        wholeBytes *= static_cast<uint64_t>(d);
    }
    if (!sharding || wholeBytes != whole.size())
      return fail(error, "initial value of '" + v.name() + "' has " +
                             std::to_string(whole.size()) +
                             " bytes, not the whole that its sharding '" + s +
                             "' splits");
    std::optional<std::vector<uint8_t>> part = partOfWhole(
        *sharding, std::vector<uint8_t>(whole.begin(), whole.end()), shape,
        dtype, [&](const std::string &axis) { return mesh.axisSize(axis); },
        [&](const std::string &axis) -> int64_t {
          return communicator ? communicator->coordinate(axis) : 0;
        },
        why);
    if (!part)
      return fail(error, "initial value of '" + v.name() +
                             "' does not split as its sharding '" + s +
                             "': " + why);
    std::vector<uint8_t> &value = *part;
    if (value.size() > bytes)
      return fail(error, "initial value of '" + v.name() + "' leaves " +
                             std::to_string(value.size()) +
                             " bytes per rank under its sharding '" + s +
                             "', more than its " + std::to_string(bytes));
    // The buffer may be longer (aligned): zeros after the part.
    value.resize(bytes, 0);
    initialParts.emplace_back(value.begin(), value.end());
    return true;
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
    if (!v.sharding().empty() && isPersistent(v.kind())) {
      // What the levels of its sharding leave of the global shape is the
      // local one.
      std::vector<int64_t> global(v.global_type().shape().begin(),
                                  v.global_type().shape().end());
      uint64_t whole = 1;
      for (int64_t d : global) {
        if (d < 0 || (d && whole > UINT64_MAX / uint64_t(d)))
          return fail(error,
                      "value '" + v.name() + "' has an invalid global shape");
        whole *= d;
      }
      std::string why;
      std::optional<Sharding> sharding = Sharding::parse(v.sharding(), why);
      std::optional<std::vector<int64_t>> local;
      if (sharding)
        local = sharding->shapeAt(
            sharding->levels.size(), global,
            [&](const std::string &axis) { return mesh.axisSize(axis); }, why);
      if (sharding && local && *local != info.shape)
        why = "it leaves a part of another shape";
      if (!sharding || !local || *local != info.shape)
        return fail(error, "value '" + v.name() + "' has sharding '" +
                               v.sharding() + "' that does not split its " +
                               std::to_string(whole) +
                               " elements over the mesh into its " +
                               std::to_string(n) + ": " + why);
      info.sharding = v.sharding();
      info.globalShape = std::move(global);
    }
    auto it = buffers.find(v.buffer());
    if (it == buffers.end())
      return fail(error, "value '" + v.name() + "' has no buffer");
    if (it->second.size < info.bytes)
      return fail(error, "buffer of value '" + v.name() + "' is " +
                             std::to_string(it->second.size) +
                             " bytes, expected " + std::to_string(info.bytes));
    return true;
  }

  /// The CPU kernels: one shared object.
  bool collectCPUKernels(DeviceProgramSpec &spec, std::string &error) {
    for (const art::KernelBinary &k : artifact.kernels()) {
      if (k.format() != art::KernelBinary::CPU_SHARED_OBJECT)
        return fail(error, "kernel binary '" + k.name() +
                               "' is not for the CPU, but the artifact's "
                               "target is cpu");
      if (!spec.cpuObject.empty())
        return fail(error, "more than one CPU kernel binary");
      spec.cpuObject = k.binary();
    }
    return true;
  }

  /// The GPU kernels: one PTX module and, optionally, its cubin.
  bool collectGPUKernels(DeviceProgramSpec &spec, std::string &error) {
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

  /// Checks command `c` of entry point `ep` and adds it to `out`.
  bool addCommand(const art::EntryPoint &ep, const art::Command &c,
                  DeviceEntry &out, std::string &error) {
    auto failIn = [&](const std::string &message) {
      return fail(error, "entry point '" + ep.name() + "': " + message);
    };
    DeviceCommand cmd;
    auto regions = [&](const auto &names, std::vector<uint64_t> *sizes) {
      for (const std::string &b : names) {
        ArenaRegion r;
        if (!region(b, error, r))
          return false;
        cmd.buffers.push_back(r);
        if (sizes)
          sizes->push_back(r.size);
      }
      return true;
    };
    switch (c.command_case()) {
    case art::Command::kLaunch: {
      const art::KernelLaunch &l = c.launch();
      cmd.kind = DeviceCommand::Launch;
      cmd.what = "kernel " + l.kernel();
      cmd.kernel = l.kernel();
      if (!regions(l.buffers(), nullptr))
        return false;
      if (cuda) {
        if (l.grid_size() < 1 || l.grid_size() > 3 ||
            l.block_size() != l.grid_size())
          return failIn("kernel '" + l.kernel() +
                        "' has no 1- to 3-D grid and block");
        for (int d = 0; d < l.grid_size(); ++d) {
          cmd.grid[d] = l.grid(d);
          cmd.block[d] = l.block(d);
        }
        cmd.sharedMemory = l.shared_memory();
        break;
      }
      if (l.parallel_rows() > uint64_t(INT64_MAX) ||
          l.work() > uint64_t(INT64_MAX))
        return failIn("kernel '" + l.kernel() +
                      "' has a row count or work beyond int64");
      cmd.rows = static_cast<int64_t>(l.parallel_rows());
      cmd.work = static_cast<int64_t>(l.work());
      break;
    }
    case art::Command::kLibraryCall: {
      const art::LibraryCall &lc = c.library_call();
      cmd.kind = DeviceCommand::Library;
      cmd.what = "library call " + lc.function() + " [";
      for (int64_t v : lc.int_args())
        cmd.what += std::to_string(v) + " ";
      cmd.what.back() = ']';
      std::string prefix = cuda ? "cuda." : "cpu.";
      if (lc.function().compare(0, prefix.size(), prefix) != 0)
        return failIn("library function '" + lc.function() +
                      "' is not for this artifact's target (expected " +
                      prefix + "*)");
      std::vector<uint64_t> sizes;
      if (!regions(lc.buffers(), &sizes))
        return false;
      cmd.function = lc.function();
      cmd.ints.assign(lc.int_args().begin(), lc.int_args().end());
      cmd.floats.assign(lc.float_args().begin(), lc.float_args().end());
      std::string why;
      if (!checkLibraryCall(lc.function(), cmd.ints.data(), cmd.ints.size(),
                            cmd.floats.data(), cmd.floats.size(), sizes.data(),
                            sizes.size(), why))
        return failIn(why);
      break;
    }
    case art::Command::kCopy: {
      cmd.kind = DeviceCommand::Copy;
      cmd.what = "copy " + c.copy().from() + " -> " + c.copy().to();
      if (!regions(std::vector<std::string>{c.copy().from(), c.copy().to()},
                   nullptr))
        return false;
      if (c.copy().size() > cmd.buffers[0].size ||
          c.copy().size() > cmd.buffers[1].size)
        return failIn(cmd.what + " copies more than its buffers hold");
      cmd.size = c.copy().size();
      break;
    }
    case art::Command::kFill: {
      cmd.kind = DeviceCommand::Fill;
      cmd.what = "fill " + c.fill().buffer();
      if (!regions(std::vector<std::string>{c.fill().buffer()}, nullptr))
        return false;
      uint64_t size = cmd.buffers[0].size;
      if (c.fill().value().empty() || size % c.fill().value().size())
        return failIn(cmd.what + " has a pattern that does not tile it");
      cmd.size = size;
      cmd.pattern = c.fill().value();
      break;
    }
    case art::Command::kCollective: {
      const art::Collective &col = c.collective();
      cmd.kind = DeviceCommand::Collective;
      cmd.collective = col.id();
      cmd.wait = col.wait();
      cmd.what = std::string(col.wait() ? "wait for " : "") + col.op() + " #" +
                 std::to_string(col.id());
      if (col.op() == "all_reduce")
        cmd.collectiveKind = DeviceCommand::AllReduce;
      else if (col.op() == "reduce_scatter")
        cmd.collectiveKind = DeviceCommand::ReduceScatter;
      else if (col.op() == "all_gather")
        cmd.collectiveKind = DeviceCommand::AllGather;
      else if (col.op() == "rank_slice" && !col.wait())
        cmd.collectiveKind = DeviceCommand::RankSlice;
      else if (col.op() == "broadcast")
        cmd.collectiveKind = DeviceCommand::Broadcast;
      else if (col.op() == "send")
        cmd.collectiveKind = DeviceCommand::Send;
      else if (col.op() == "recv")
        cmd.collectiveKind = DeviceCommand::Recv;
      else
        return failIn("collective '" + col.op() +
                      "' is not known to this runtime (expected all_reduce, "
                      "reduce_scatter, all_gather, rank_slice, broadcast, "
                      "send or recv)");
      std::set<uint32_t> &started = startedCollectives[ep.name()];
      if (col.wait()) {
        if (!col.buffers().empty() || !started.erase(col.id()))
          return failIn(cmd.what + " waits for a collective that was not "
                                   "started before it");
        break;
      }
      if (cmd.collectiveKind != DeviceCommand::RankSlice &&
          !started.insert(col.id()).second)
        return failIn(cmd.what + " is started twice");
      auto axis =
          std::find_if(mesh.axes.begin(), mesh.axes.end(),
                       [&](const auto &a) { return a.first == col.group(); });
      if (axis == mesh.axes.end())
        return failIn(cmd.what + " runs over '" + col.group() +
                      "', which is no axis of the artifact's mesh");
      cmd.group = col.group();
      bool reduces = cmd.collectiveKind == DeviceCommand::AllReduce ||
                     cmd.collectiveKind == DeviceCommand::ReduceScatter;
      if (!reduces && !col.reduction().empty())
        return failIn(cmd.what + " has a reduction, but does not reduce");
      if (!reduces)
        ;
      else if (col.reduction() == "sum")
        cmd.reduction = ReduceKind::Sum;
      else if (col.reduction() == "max")
        cmd.reduction = ReduceKind::Max;
      else if (col.reduction() == "min")
        cmd.reduction = ReduceKind::Min;
      else
        return failIn(cmd.what + " has an unknown reduction '" +
                      col.reduction() + "'");
      if (!dtypeOf(col.element_type(), cmd.dtype) ||
          (reduces && cmd.dtype == DType::Bool))
        return failIn(cmd.what + " has no numeric element type");
      std::vector<uint64_t> sizes;
      if (!regions(col.buffers(), &sizes))
        return false;
      if (cmd.collectiveKind == DeviceCommand::Send ||
          cmd.collectiveKind == DeviceCommand::Recv) {
        // {buffer}, and a peer inside the group.
        if (sizes.size() != 1 || col.peer_offset() == 0 ||
            std::abs(col.peer_offset()) >= axis->second)
          return failIn(cmd.what +
                        " needs one buffer and a peer offset "
                        "between -" +
                        std::to_string(axis->second - 1) + " and " +
                        std::to_string(axis->second - 1) + ", not 0");
        cmd.peerOffset = col.peer_offset();
        break;
      }
      if (cmd.collectiveKind == DeviceCommand::Broadcast) {
        // {input, output} of one size, and a root inside the group.
        if (sizes.size() != 2 || sizes[0] != sizes[1] || col.root() < 0 ||
            col.root() >= axis->second)
          return failIn(cmd.what +
                        " needs an input and an output of one "
                        "size and a root between 0 and " +
                        std::to_string(axis->second - 1));
        cmd.root = col.root();
        break;
      }
      if (!reduces) {
        // {part, whole} for an all-gather, {whole, part} for a slice.
        uint64_t group = static_cast<uint64_t>(axis->second);
        bool gather = cmd.collectiveKind == DeviceCommand::AllGather;
        if (sizes.size() != 2 ||
            sizes[gather ? 1 : 0] != sizes[gather ? 0 : 1] * group)
          return failIn(cmd.what + " needs an input and an output, one " +
                        std::to_string(group) + " times the other");
        break;
      }
      size_t n = sizes.size() / 2;
      if (sizes.empty() || sizes.size() % 2)
        return failIn(cmd.what + " needs inputs and as many outputs");
      // A reduce-scatter's output is its input over the group.
      uint64_t parts = cmd.collectiveKind == DeviceCommand::ReduceScatter
                           ? static_cast<uint64_t>(axis->second)
                           : 1;
      for (size_t i = 0; i < n; ++i)
        if (sizes[i] != sizes[n + i] * parts ||
            sizes[n + i] % dtypeSize(cmd.dtype))
          return failIn(cmd.what + " has an output that is not " +
                        (parts > 1 ? "1/" + std::to_string(parts) + " of "
                                   : std::string("like ")) +
                        "its input, or a buffer that is no whole number of "
                        "elements");
      break;
    }
    default:
      return failIn("has a command this runtime does not know");
    }
    out.commands.push_back(std::move(cmd));
    return true;
  }

  /// The mesh of a sharded artifact, and for more than one rank the
  /// communicator: the job must come from mpirun with as many ranks, and
  /// every rank must have loaded the same artifact.
  bool connect(std::string &error) {
    if (!artifact.has_mesh())
      return true;
    std::string text;
    for (const art::MeshAxis &a : artifact.mesh().axes()) {
      if (a.name().empty() || a.size() < 1 || a.size() > (1 << 20))
        return fail(error, "the mesh has an axis without a name or size");
      mesh.axes.push_back({a.name(), a.size()});
      text +=
          (text.empty() ? "" : ",") + a.name() + "=" + std::to_string(a.size());
    }
    if (mesh.axes.empty() || mesh.size() > (1 << 20))
      return fail(error, "the mesh has no axes, or too many ranks");
    if (mesh.size() == 1 || checkOnly)
      return true;
    std::string n = std::to_string(mesh.size());
    if (!launchInfo().underMpirun)
      return fail(error, "is sharded over " + n + " ranks (mesh " + text +
                             "); start it with mpirun, e.g. `mpirun -np " + n +
                             " trainopt-run " + path + " ...`");
    std::string why;
    communicator = createMPICommunicator(mesh, communicatorOptions, why);
    if (!communicator)
      return fail(error, why);
    // Ranks must run one program: compare a hash of the artifact.
    uint64_t hash = fileHash;
    std::vector<uint64_t> hashes;
    if (!communicator->allGather(hash, hashes, "artifact check", why))
      return fail(error, why);
    for (size_t r = 0; r < hashes.size(); ++r)
      if (hashes[r] != hashes[0])
        return fail(error, "rank " + std::to_string(r) +
                               " loaded a different artifact than rank 0; "
                               "every rank must run the same file");
    return true;
  }

  /// A pipeline-parallel artifact: this rank's stage becomes the program
  /// (the stage by this rank's pp coordinate on the bundle's mesh).
  bool selectStage(std::string &error) {
    if (artifact.pipeline_stages().empty())
      return true;
    int64_t rank = launchInfo().rank, stride = 1, stage = -1, stages = 0;
    const auto &axes = artifact.mesh().axes();
    for (int i = axes.size() - 1; i >= 0; --i) {
      if (axes[i].size() < 1)
        return fail(error, "the mesh has an axis without a size");
      if (axes[i].name() == "pp") {
        stage = (rank / stride) % axes[i].size();
        stages = axes[i].size();
      }
      stride *= axes[i].size();
    }
    if (stage < 0 || stages != artifact.pipeline_stages_size())
      return fail(error, "has " +
                             std::to_string(artifact.pipeline_stages_size()) +
                             " pipeline stages, but its mesh has no pp axis "
                             "of that size");
    art::Artifact mine;
    if (!mine.ParseFromString(artifact.pipeline_stages(int(stage))) ||
        !mine.pipeline_stages().empty() ||
        mine.mesh().SerializeAsString() != artifact.mesh().SerializeAsString())
      return fail(error, "pipeline stage " + std::to_string(stage) +
                             " is not a program of the artifact's mesh");
    *mine.mutable_onnx_model() = std::move(*artifact.mutable_onnx_model());
    artifact = std::move(mine);
    return true;
  }

  bool load(std::string &error) {
    if (!art::readArtifact(path, artifact, error))
      return false;
    // Every rank loads the same file, whichever stage it runs.
    std::string bytes = artifact.SerializeAsString();
    for (unsigned char ch : bytes)
      fileHash = (fileHash ^ ch) * 1099511628211ull;
    if (!selectStage(error))
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
    if (!connect(error))
      return false;
    DeviceProgramSpec spec;
    spec.source = path;
    spec.arenaSize = arenaSize;
    spec.communicator = communicator.get();
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
        spec.initial.push_back({r, nullptr}); // cleared, not copied
        continue;
      }
      if (const art::Value *v = shardedValue(init.name());
          v && init.data().size() > r.size) {
        // A split parameter's whole initial value: this rank's part of it.
        if (!initialPart(*v, init.data(), r.size, error))
          return false;
        spec.initial.push_back({r, &initialParts.back()});
        continue;
      }
      if (init.data().size() != r.size)
        return fail(error, "initial value '" + init.name() + "' has " +
                               std::to_string(init.data().size()) +
                               " bytes, its buffer " + std::to_string(r.size));
      spec.initial.push_back({r, &init.data()});
    }
    if (cuda ? !collectGPUKernels(spec, error)
             : !collectCPUKernels(spec, error))
      return false;

    for (const art::EntryPoint &ep : artifact.entry_points()) {
      if (entries.count(ep.name()))
        return fail(error, "entry point '" + ep.name() + "' appears twice");
      Entry &entry = entries[ep.name()];
      entry.index = spec.entries.size();
      DeviceEntry &out = spec.entries.emplace_back();
      out.name = ep.name();
      for (const art::Value &v : ep.arguments()) {
        ValueInfo info;
        ArenaRegion r;
        if (!describe(v, info, error) || !region(v.buffer(), error, r))
          return false;
        if (isPersistent(v.kind())) {
          if (!persistentIndex.count(v.name())) {
            persistentIndex[v.name()] = persistent.size();
            persistent.push_back(info);
            spec.persistent.push_back(r);
          }
        } else {
          entry.inputIndex[v.name()] = entry.inputs.size();
          entry.inputs.push_back(info);
          out.inputs.push_back(r);
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
        entry.outputs.push_back(info);
        out.outputs.push_back(r);
      }
      for (const art::Command &c : ep.commands())
        if (!addCommand(ep, c, out, error))
          return false;
      if (!startedCollectives[ep.name()].empty())
        return fail(error, "entry point '" + ep.name() +
                               "' starts a collective it never waits for");
    }
    if (checkOnly)
      return true;
    device = createDevice(artifact.target(), spec, cudaOptions, error);
    return device != nullptr;
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
  impl->communicatorOptions = options.collectives;
  if (!impl->load(error))
    return nullptr;
  return std::unique_ptr<Program>(new Program(std::move(impl)));
}

bool Program::check(const std::string &path, std::string &error) {
  Impl impl;
  impl.path = path;
  impl.checkOnly = true;
  return impl.load(error);
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
  auto it = impl_->persistentIndex.find(name);
  return it == impl_->persistentIndex.end()
             ? nullptr
             : impl_->device->persistent(it->second);
}
void *Program::input(const std::string &entry, const std::string &name) {
  auto it = impl_->entries.find(entry);
  if (it == impl_->entries.end())
    return nullptr;
  auto v = it->second.inputIndex.find(name);
  return v == it->second.inputIndex.end()
             ? nullptr
             : impl_->device->input(it->second.index, v->second);
}
const void *Program::output(const std::string &entry,
                            const std::string &name) const {
  auto it = impl_->entries.find(entry);
  if (it == impl_->entries.end())
    return nullptr;
  auto v = it->second.outputIndex.find(name);
  return v == it->second.outputIndex.end()
             ? nullptr
             : impl_->device->output(it->second.index, v->second);
}
bool Program::resetPersistent(std::string &error) {
  return impl_->device->resetPersistent(error);
}
void Program::setThreads(int threads) { setLibraryThreads(threads); }
uint64_t Program::arenaBytes() const { return impl_->arenaSize; }
Communicator *Program::communicator() const {
  return impl_->communicator.get();
}
const Mesh &Program::mesh() const { return impl_->mesh; }

bool Program::synchronize(std::string &error) {
  return impl_->device->synchronize(error);
}
bool Program::stageInputs(const std::string &entry, std::string &error) {
  auto it = impl_->entries.find(entry);
  if (it == impl_->entries.end()) {
    error = impl_->path + ": no entry point '" + entry + "'";
    return false;
  }
  return impl_->device->stageInputs(it->second.index, error);
}
std::string Program::lastError() const { return impl_->device->lastError(); }
std::string Program::deviceDescription() const {
  return impl_->device->deviceDescription();
}
uint64_t Program::deviceBytes() const { return impl_->device->deviceBytes(); }

bool Program::run(const std::string &entryName, std::string &error) {
  auto it = impl_->entries.find(entryName);
  if (it == impl_->entries.end()) {
    error = impl_->path + ": no entry point '" + entryName + "'";
    return false;
  }
  return impl_->device->run(it->second.index, error);
}

std::string Program::profileReport() const {
  return impl_->device->profileReport();
}

void Program::setProfiling(bool on) { impl_->device->setProfiling(on); }
