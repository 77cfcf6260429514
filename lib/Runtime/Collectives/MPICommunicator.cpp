//===- MPICommunicator.cpp - collectives between ranks, over Open MPI -----===//
//
/// \file
/// The Communicator of Communicator.h on Open MPI. libmpi.so.40 is opened
/// with dlopen when the first communicator is created, and every MPI call
/// goes through a pointer looked up with dlsym: the runtime links no MPI,
/// so single-process artifacts run where Open MPI is not installed. <mpi.h>
/// gives only the types; its handle macros (MPI_COMM_WORLD, MPI_FLOAT,
/// MPI_SUM, ...) name Open MPI's exported globals, which are looked up too.
///
/// A started collective is a small state machine that `progress` and `wait`
/// advance with MPI_Test: Open MPI moves non-blocking collectives along
/// only inside MPI calls (it has no progress thread), and the rank-order
/// all-reduce needs this rank's own arithmetic between its all-to-all and
/// its all-gather. Nothing here blocks inside MPI, so every wait can give
/// up after the timeout with a message instead of hanging the job.
//
//===----------------------------------------------------------------------===//

#include "trainopt/Runtime/Communicator.h"

#include "trainopt/Runtime/NarrowFloat.h"

// The C++ bindings the header includes otherwise would need libmpi_cxx.
#define OMPI_SKIP_MPICXX 1
#include <mpi.h>

#include <algorithm>
#include <chrono>
#include <climits>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <dlfcn.h>
#include <exception>
#include <map>
#include <sched.h>
#include <thread>
#include <type_traits>
#include <unistd.h>

using namespace trainopt::rt;

namespace {

#define TRAINOPT_MPI_FUNCTIONS(X)                                              \
  X(MPI_Init_thread)                                                           \
  X(MPI_Initialized)                                                           \
  X(MPI_Finalized)                                                             \
  X(MPI_Finalize)                                                              \
  X(MPI_Abort)                                                                 \
  X(MPI_Error_string)                                                          \
  X(MPI_Comm_size)                                                             \
  X(MPI_Comm_rank)                                                             \
  X(MPI_Comm_split)                                                            \
  X(MPI_Comm_dup)                                                              \
  X(MPI_Comm_free)                                                             \
  X(MPI_Comm_set_errhandler)                                                   \
  X(MPI_Test)                                                                  \
  X(MPI_Iallreduce)                                                            \
  X(MPI_Ireduce_scatter_block)                                                 \
  X(MPI_Ialltoall)                                                             \
  X(MPI_Iallgather)                                                            \
  X(MPI_Ibcast)                                                                \
  X(MPI_Ibarrier)                                                              \
  X(MPI_Isend)                                                                 \
  X(MPI_Irecv)

/// The predefined handles in use: each is the address of the Open MPI
/// global that the <mpi.h> macro of the same meaning takes the address of.
#define TRAINOPT_MPI_HANDLES(X)                                                \
  X(MPI_Comm, ompi_mpi_comm_world)                                             \
  X(MPI_Errhandler, ompi_mpi_errors_return)                                    \
  X(MPI_Datatype, ompi_mpi_byte)                                               \
  X(MPI_Datatype, ompi_mpi_float)                                              \
  X(MPI_Datatype, ompi_mpi_double)                                             \
  X(MPI_Datatype, ompi_mpi_int32_t)                                            \
  X(MPI_Datatype, ompi_mpi_int64_t)                                            \
  X(MPI_Datatype, ompi_mpi_uint64_t)                                           \
  X(MPI_Op, ompi_mpi_op_sum)                                                   \
  X(MPI_Op, ompi_mpi_op_max)                                                   \
  X(MPI_Op, ompi_mpi_op_min)

/// Open MPI's functions and predefined handles, resolved once per process.
struct MPIApi {
#define TRAINOPT_MPI_DECLARE_FUNCTION(name) decltype(&::name) name = nullptr;
  TRAINOPT_MPI_FUNCTIONS(TRAINOPT_MPI_DECLARE_FUNCTION)
#undef TRAINOPT_MPI_DECLARE_FUNCTION
#define TRAINOPT_MPI_DECLARE_HANDLE(type, name) type name = nullptr;
  TRAINOPT_MPI_HANDLES(TRAINOPT_MPI_DECLARE_HANDLE)
#undef TRAINOPT_MPI_DECLARE_HANDLE
};

/// The library to open: libmpi.so.40 by its soname, or
/// $TRAINOPT_MPI_LIBRARY (a path, for an Open MPI outside the loader's
/// path, and for testing the message of a missing one).
std::string mpiLibraryName() {
  const char *chosen = std::getenv("TRAINOPT_MPI_LIBRARY");
  return chosen && *chosen ? chosen : "libmpi.so.40";
}

/// Opens Open MPI and resolves its functions, once per process; the
/// library stays open (MPI cannot be initialized again once finalized, and
/// its plugins keep pointers into it). RTLD_GLOBAL because those plugins,
/// opened by Open MPI itself, resolve their libmpi symbols globally.
const MPIApi *loadMPI(std::string &error) {
  static MPIApi api;
  static bool loaded = false;
  if (loaded)
    return &api;
  std::string name = mpiLibraryName();
  void *library = dlopen(name.c_str(), RTLD_NOW | RTLD_GLOBAL);
  if (!library) {
    error = "sharded artifacts need Open MPI, and " + name +
            " cannot be loaded (" + dlerror() +
            "); install it (Debian: apt-get install openmpi-bin "
            "libopenmpi-dev) and start the job with mpirun";
    return nullptr;
  }
  auto missing = [&](const char *symbol) {
    error = name + " has no symbol '" + symbol +
            "': the runtime needs Open MPI 4 or newer (the ABI of "
            "libmpi.so.40)";
    return nullptr;
  };
#define TRAINOPT_MPI_RESOLVE_FUNCTION(name)                                    \
  api.name = reinterpret_cast<decltype(api.name)>(dlsym(library, #name));      \
  if (!api.name)                                                               \
    return missing(#name);
  TRAINOPT_MPI_FUNCTIONS(TRAINOPT_MPI_RESOLVE_FUNCTION)
#undef TRAINOPT_MPI_RESOLVE_FUNCTION
#define TRAINOPT_MPI_RESOLVE_HANDLE(type, name)                                \
  api.name = static_cast<type>(dlsym(library, #name));                         \
  if (!api.name)                                                               \
    return missing(#name);
  TRAINOPT_MPI_HANDLES(TRAINOPT_MPI_RESOLVE_HANDLE)
#undef TRAINOPT_MPI_RESOLVE_HANDLE
  loaded = true;
  return &api;
}

/// MPI is initialized once per process and cannot be again after
/// MPI_Finalize: the communicators alive share it, and the last one
/// finalizes it if one of them initialized it.
struct ProcessMPI {
  int liveCommunicators = 0;
  bool initializedHere = false;
};
ProcessMPI &processMPI() {
  static ProcessMPI state;
  return state;
}

std::string describeMPIError(const MPIApi &mpi, int code) {
  char text[MPI_MAX_ERROR_STRING];
  int length = 0;
  if (mpi.MPI_Error_string(code, text, &length) == MPI_SUCCESS && length > 0)
    return std::string(text, length);
  return "MPI error " + std::to_string(code);
}

std::string describeMesh(const Mesh &mesh) {
  std::string out;
  for (const auto &[name, size] : mesh.axes)
    out += (out.empty() ? "" : ",") + name + "=" + std::to_string(size);
  return out.empty() ? "(no axes)" : out;
}

std::string plural(int64_t n, const char *noun) {
  return std::to_string(n) + " " + noun + (n == 1 ? "" : "s");
}

/// "2", "0.5", "300": seconds for messages.
std::string formatSeconds(double seconds) {
  if (seconds >= 10)
    return std::to_string(static_cast<long long>(seconds + 0.5));
  char text[32];
  std::snprintf(text, sizeof(text), "%.1f", seconds);
  std::string out = text;
  if (out.size() > 2 && out.compare(out.size() - 2, 2, ".0") == 0)
    out.resize(out.size() - 2);
  return out;
}

/// The CPUs this process may run on (the whole set however many the
/// machine has), or 0 when the count fails.
int countAffinity(pid_t pid) {
  for (int cpus = 1024; cpus <= (1 << 16); cpus *= 4) {
    cpu_set_t *set = CPU_ALLOC(cpus);
    size_t bytes = CPU_ALLOC_SIZE(cpus);
    CPU_ZERO_S(bytes, set);
    int count =
        sched_getaffinity(pid, bytes, set) == 0 ? CPU_COUNT_S(bytes, set) : 0;
    CPU_FREE(set);
    if (count > 0)
      return count;
  }
  return 0;
}

/// The non-negative integer in environment variable `name`, or `fallback`.
int envInt(const char *name, int fallback) {
  const char *text = std::getenv(name);
  if (!text || !*text)
    return fallback;
  char *end = nullptr;
  long value = std::strtol(text, &end, 10);
  return *end == '\0' && value >= 0 && value <= INT_MAX ? int(value) : fallback;
}

//===----------------------------------------------------------------------===//
// Rank-order reduction
//===----------------------------------------------------------------------===//

/// Max and min that return a NaN operand: a NaN in a gradient must reach
/// every rank's overflow check, whatever the order of the operands.
template <typename T> T maxOf(T a, T b) {
  if (a != a)
    return a;
  if (b != b)
    return b;
  return b > a ? b : a;
}
template <typename T> T minOf(T a, T b) {
  if (a != a)
    return a;
  if (b != b)
    return b;
  return b < a ? b : a;
}

template <ReduceKind Kind, typename T> T combine(T a, T b) {
  if constexpr (Kind == ReduceKind::Max)
    return maxOf(a, b);
  else if constexpr (Kind == ReduceKind::Min)
    return minOf(a, b);
  else if constexpr (std::is_integral_v<T>)
    // Two's-complement wrap-around, as MPI's integer sum, without the
    // undefined behaviour of signed overflow.
    return static_cast<T>(static_cast<std::make_unsigned_t<T>>(a) +
                          static_cast<std::make_unsigned_t<T>>(b));
  else
    return a + b;
}

/// acc[i] = acc[i] (op) in[i] for `n` elements stored as `T`; `Compute`
/// widens an element to the type the operation runs in, and `Store` rounds
/// the result back: a 16-bit float is combined as the compiled kernels
/// compute in it, widened to f32 exactly and rounded back to nearest even
/// after every operation.
template <ReduceKind Kind, typename T, typename Compute, typename Store>
void combineInto(uint8_t *acc, const uint8_t *in, int64_t n, Compute widen,
                 Store narrow) {
  for (int64_t i = 0; i < n; ++i) {
    T a, b;
    std::memcpy(&a, acc + i * sizeof(T), sizeof(T));
    std::memcpy(&b, in + i * sizeof(T), sizeof(T));
    a = narrow(combine<Kind>(widen(a), widen(b)));
    std::memcpy(acc + i * sizeof(T), &a, sizeof(T));
  }
}

template <ReduceKind Kind>
void combineChunk(uint8_t *acc, const uint8_t *in, int64_t n, DType dtype) {
  auto same = [](auto x) { return x; };
  switch (dtype) {
  case DType::F32:
    return combineInto<Kind, float>(acc, in, n, same, same);
  case DType::F64:
    return combineInto<Kind, double>(acc, in, n, same, same);
  case DType::I32:
    return combineInto<Kind, int32_t>(acc, in, n, same, same);
  case DType::I64:
    return combineInto<Kind, int64_t>(acc, in, n, same, same);
  case DType::BF16:
    return combineInto<Kind, uint16_t>(acc, in, n, bf16ToFloat, floatToBf16);
  case DType::F16:
    return combineInto<Kind, uint16_t>(acc, in, n, halfToFloat, floatToHalf);
  default:
    return;
  }
}

/// acc[i] = acc[i] (op) in[i] for `n` elements of `dtype`.
void combineChunk(uint8_t *acc, const uint8_t *in, int64_t n, DType dtype,
                  ReduceKind kind) {
  switch (kind) {
  case ReduceKind::Sum:
    return combineChunk<ReduceKind::Sum>(acc, in, n, dtype);
  case ReduceKind::Max:
    return combineChunk<ReduceKind::Max>(acc, in, n, dtype);
  case ReduceKind::Min:
    return combineChunk<ReduceKind::Min>(acc, in, n, dtype);
  }
}

bool canReduce(DType dtype) {
  return dtype == DType::F32 || dtype == DType::F64 || dtype == DType::I32 ||
         dtype == DType::I64 || dtype == DType::BF16 || dtype == DType::F16;
}

//===----------------------------------------------------------------------===//
// The communicator
//===----------------------------------------------------------------------===//

/// The world, or the ranks that differ from this one only along `axis`.
///
/// MPI matches the collectives of a communicator by the order each rank
/// starts them in. Everything but the all-gather of a rank-order
/// all-reduce starts in the program's order, in the start calls, on
/// `comm`; those all-gathers start whenever this rank finds the all-to-all
/// done, which differs between ranks, so they have a communicator of their
/// own, `gatherComm`, on which they start in the order of their
/// all-reduces (`progress`).
struct Group {
  std::string axis; // empty: the world
  MPI_Comm comm = nullptr, gatherComm = nullptr;
  int size = 1, rank = 0;
  std::string describe() const {
    return (axis.empty() ? std::string("the world") : axis) + " (" +
           plural(size, "rank") + ")";
  }
};

/// A started collective. `Plain` is one MPI request (MPI's own all-reduce,
/// a broadcast, ...); the rank-order all-reduce is `Exchange` (the
/// all-to-all of chunks), `Exchanged` (received, its all-gather waiting for
/// those of earlier all-reduces to start), then `Gather` (the all-gather of
/// the sums).
struct Collective {
  enum class Stage { Plain, Exchange, Exchanged, Gather, Done, Failed };
  Stage stage = Stage::Done;
  MPI_Request request = nullptr;
  std::string label; // "all-reduce 'bucket 0'"
  const Group *group = nullptr;
  std::string error;
  /// An all-reduce a program started (counted in the stats): when it
  /// started, and when it was first seen complete.
  bool counted = false;
  std::chrono::steady_clock::time_point startTime, doneTime;

  uint8_t *data = nullptr;
  /// A reduce-scatter's part: written when the all-to-all is summed, and
  /// the collective ends there (no all-gather).
  uint8_t *output = nullptr;
  int64_t count = 0, chunk = 0;
  unsigned elementSize = 0;
  DType dtype = DType::F32;
  ReduceKind kind = ReduceKind::Sum;
  /// The buffer padded to `chunk` elements per rank, when `count` is not a
  /// multiple of the group size (empty otherwise: `data` is used itself).
  std::vector<uint8_t> padded;
  /// Chunk `rank` of every rank's buffer, in rank order.
  std::vector<uint8_t> received;

  bool inFlight() const {
    return stage == Stage::Plain || stage == Stage::Exchange ||
           stage == Stage::Gather;
  }
};

class MPICommunicator final : public Communicator {
public:
  MPICommunicator(const MPIApi &mpi, const Mesh &mesh,
                  const CommunicatorOptions &options, int rank)
      : mpi(mpi), theMesh(mesh), options(options), worldRank(rank) {}
  ~MPICommunicator() override;

  /// Splits the world and one group per axis; false with `error` set.
  bool createGroups(std::string &error);

  int rank() const override { return worldRank; }
  int size() const override { return int(theMesh.size()); }
  const Mesh &mesh() const override { return theMesh; }
  int coordinate(const std::string &axis) const override {
    const Group *group = findGroup(axis);
    return group ? group->rank : -1;
  }
  int groupSize(const std::string &axis) const override {
    const Group *group = findGroup(axis);
    return group ? group->size : 0;
  }

  bool startAllReduce(void *data, int64_t count, DType dtype, ReduceKind kind,
                      const std::string &axis, const std::string &what,
                      Handle &handle, std::string &error) override;
  bool startReduceScatter(const void *input, void *output, int64_t count,
                          DType dtype, ReduceKind kind, const std::string &axis,
                          const std::string &what, Handle &handle,
                          std::string &error) override;
  bool startAllGather(const void *input, int64_t bytes, void *output,
                      const std::string &axis, const std::string &what,
                      Handle &handle, std::string &error) override;
  bool allGatherBytes(const void *input, int64_t bytes, void *output,
                      const std::string &axis, const std::string &what,
                      std::string &error) override;
  bool startBroadcast(void *data, int64_t bytes, int64_t root,
                      const std::string &axis, const std::string &what,
                      Handle &handle, std::string &error) override;
  bool startSend(const void *data, int64_t bytes, const std::string &axis,
                 int64_t offset, const std::string &what, Handle &handle,
                 std::string &error) override {
    return startPointToPoint(true, const_cast<void *>(data), bytes, axis,
                             offset, what, handle, error);
  }
  bool startRecv(void *data, int64_t bytes, const std::string &axis,
                 int64_t offset, const std::string &what, Handle &handle,
                 std::string &error) override {
    return startPointToPoint(false, data, bytes, axis, offset, what, handle,
                             error);
  }
  bool wait(Handle handle, std::string &error) override;
  void progress() override;
  const CollectiveStats &stats() const override { return statistics; }
  void countCollectives(bool on) override { counting = on; }

  bool allReduce(void *data, int64_t count, DType dtype, ReduceKind kind,
                 const std::string &axis, const std::string &what,
                 std::string &error) override;
  bool broadcast(void *data, int64_t bytes, int root, const std::string &what,
                 std::string &error) override;
  bool allGather(uint64_t value, std::vector<uint64_t> &values,
                 const std::string &what, std::string &error) override;
  bool barrier(const std::string &what, std::string &error,
               double timeoutSeconds = 0) override;
  [[noreturn]] void abort(int code) override;

private:
  const Group *findGroup(const std::string &axis) const;
  const Group *groupFor(const std::string &axis, const std::string &label,
                        std::string &error) const;
  std::string prefix() const { return "rank " + std::to_string(worldRank); }
  /// MPI's type for `dtype` (null for the 16-bit floats, which MPI lacks:
  /// those always reduce in rank order) and its operation for `kind`.
  MPI_Datatype mpiType(DType dtype) const {
    return dtype == DType::F32   ? mpi.ompi_mpi_float
           : dtype == DType::F64 ? mpi.ompi_mpi_double
           : dtype == DType::I32 ? mpi.ompi_mpi_int32_t
           : dtype == DType::I64 ? mpi.ompi_mpi_int64_t
                                 : nullptr;
  }
  MPI_Op mpiOp(ReduceKind kind) const {
    return kind == ReduceKind::Sum   ? mpi.ompi_mpi_op_sum
           : kind == ReduceKind::Max ? mpi.ompi_mpi_op_max
                                     : mpi.ompi_mpi_op_min;
  }
  /// A new collective of `kind` ("all-reduce") named `what` over the group
  /// of `axis`; null with `error` set when the mesh has no such axis.
  std::unique_ptr<Collective> begin(const char *kind, const std::string &what,
                                    const std::string &axis,
                                    std::string &error) const {
    auto op = std::make_unique<Collective>();
    op->label = std::string(kind) + " '" + what + "'";
    op->group = groupFor(axis, op->label, error);
    return op->group ? std::move(op) : nullptr;
  }
  /// Registers `op` as complete at its start (nothing to exchange).
  bool doneAtOnce(std::unique_ptr<Collective> op, Handle &handle) {
    op->doneTime = op->startTime;
    op->stage = Collective::Stage::Done;
    handle = add(std::move(op));
    return true;
  }
  /// Whether collective `op` can reduce `dtype`; `error` says why not.
  bool reducible(const Collective &op, DType dtype, std::string &error) const {
    if (canReduce(dtype))
      return true;
    error = prefix() + ": " + op.label + ": cannot reduce " + dtypeName(dtype) +
            " (float32, float64, bfloat16, float16, int32 and int64 can be)";
    return false;
  }
  /// A send (from a copy of `data`) or a receive (into `data`).
  bool startPointToPoint(bool send, void *data, int64_t bytes,
                         const std::string &axis, int64_t offset,
                         const std::string &what, Handle &handle,
                         std::string &error);
  /// Records a failed MPI call in `op`.
  void fail(Collective &op, const char *call, int code);
  /// Tests `op`'s request and moves it to its next stages when it is done;
  /// `mayGather`: no earlier all-reduce of its group waits to start its
  /// all-gather.
  void advance(Collective &op, bool mayGather);
  /// Registers a started collective.
  Handle add(std::unique_ptr<Collective> op);
  /// Registers `op` once its MPI call `call` returned `rc`; false with
  /// `error` set when the call failed.
  bool launched(std::unique_ptr<Collective> op, const char *call, int rc,
                Handle &handle, std::string &error);
  /// Stamps `op`'s start; the statistics it counts in (scratch ones for
  /// the trainer's own collectives).
  CollectiveStats &startCounting(Collective &op);
  /// Advances every started collective until `op` is done (true), fails
  /// or runs out of time.
  bool poll(Collective &op, std::string &error, double timeoutSeconds = 0);
  /// Runs `op`, a collective of one request that `start` makes, to its end;
  /// `finish` then reads the buffers `op` owns.
  template <typename Start, typename Finish>
  bool runPlain(std::unique_ptr<Collective> op, Start start, Finish finish,
                std::string &error, double timeoutSeconds = 0);

  const MPIApi &mpi;
  Mesh theMesh;
  CommunicatorOptions options;
  int worldRank;
  Group world;
  std::vector<Group> axes;
  std::map<Handle, std::unique_ptr<Collective>> started;
  Handle nextHandle = 1;
  CollectiveStats statistics;
  /// Whether started collectives count in `statistics`.
  bool counting = true;
};

bool MPICommunicator::createGroups(std::string &error) {
  // Every group, the world included, is a communicator of its own, so the
  // runtime's messages never match another MPI user's in this process;
  // errors return to the caller instead of aborting inside MPI.
  auto split = [&](Group &group, int color, int key) {
    int rc =
        mpi.MPI_Comm_split(mpi.ompi_mpi_comm_world, color, key, &group.comm);
    if (rc == MPI_SUCCESS)
      rc = mpi.MPI_Comm_set_errhandler(group.comm, mpi.ompi_mpi_errors_return);
    if (rc == MPI_SUCCESS) // inherits the error handler
      rc = mpi.MPI_Comm_dup(group.comm, &group.gatherComm);
    if (rc == MPI_SUCCESS)
      rc = mpi.MPI_Comm_size(group.comm, &group.size);
    if (rc == MPI_SUCCESS)
      rc = mpi.MPI_Comm_rank(group.comm, &group.rank);
    if (rc != MPI_SUCCESS)
      error = prefix() + ": cannot create the group of " +
              (group.axis.empty() ? std::string("the world")
                                  : "axis " + group.axis) +
              ": " + describeMPIError(mpi, rc);
    return rc == MPI_SUCCESS;
  };
  if (!split(world, 0, worldRank))
    return false;
  // Row-major: the last axis varies fastest, so axis i has stride
  // size(i+1) * ... * size(n-1). The ranks of one group share every other
  // coordinate, i.e. rank - coordinate * stride; the key orders them by
  // coordinate, so a group rank is the coordinate along the axis.
  axes.resize(theMesh.axes.size());
  int64_t stride = 1;
  for (size_t i = theMesh.axes.size(); i-- > 0;) {
    int64_t axisSize = theMesh.axes[i].second;
    int64_t coord = (worldRank / stride) % axisSize;
    axes[i].axis = theMesh.axes[i].first;
    if (!split(axes[i], int(worldRank - coord * stride), int(coord)))
      return false;
    stride *= axisSize;
  }
  return true;
}

MPICommunicator::~MPICommunicator() {
  // MPI_Finalize with requests outstanding would hang or crash; a job gets
  // here with some only after a failure, on its way out. An error thrown
  // through here must not wait in MPI_Finalize for ranks that will never
  // finalize: this process exits with its error, and mpirun ends the job.
  if (std::uncaught_exceptions() > 0)
    return;
  for (const auto &entry : started)
    if (entry.second->inFlight())
      return;
  auto release = [&](Group &group) {
    for (MPI_Comm *comm : {&group.comm, &group.gatherComm})
      if (*comm)
        mpi.MPI_Comm_free(comm);
  };
  for (Group &group : axes)
    release(group);
  release(world);
  ProcessMPI &process = processMPI();
  if (--process.liveCommunicators > 0 || !process.initializedHere)
    return;
  int finalized = 0;
  mpi.MPI_Finalized(&finalized);
  if (!finalized)
    mpi.MPI_Finalize();
}

const Group *MPICommunicator::findGroup(const std::string &axis) const {
  if (axis.empty())
    return &world;
  for (const Group &group : axes)
    if (group.axis == axis)
      return &group;
  return nullptr;
}

const Group *MPICommunicator::groupFor(const std::string &axis,
                                       const std::string &label,
                                       std::string &error) const {
  const Group *group = findGroup(axis);
  if (!group)
    error = prefix() + ": " + label + ": the mesh " + describeMesh(theMesh) +
            " has no axis '" + axis + "'";
  return group;
}

void MPICommunicator::fail(Collective &op, const char *call, int code) {
  op.stage = Collective::Stage::Failed;
  op.error = prefix() + ": " + op.label + " over " + op.group->describe() +
             ": " + call + " failed: " + describeMPIError(mpi, code);
}

Communicator::Handle MPICommunicator::add(std::unique_ptr<Collective> op) {
  Handle handle = nextHandle++;
  started.emplace(handle, std::move(op));
  return handle;
}

bool MPICommunicator::launched(std::unique_ptr<Collective> op, const char *call,
                               int rc, Handle &handle, std::string &error) {
  if (rc != MPI_SUCCESS) {
    fail(*op, call, rc);
    error = op->error;
    return false;
  }
  handle = add(std::move(op));
  return true;
}

CollectiveStats &MPICommunicator::startCounting(Collective &op) {
  static thread_local CollectiveStats ignored;
  op.counted = counting;
  op.startTime = std::chrono::steady_clock::now();
  CollectiveStats &stats = counting ? statistics : ignored;
  ++stats.collectives;
  return stats;
}

bool MPICommunicator::startAllReduce(void *data, int64_t count, DType dtype,
                                     ReduceKind kind, const std::string &axis,
                                     const std::string &what, Handle &handle,
                                     std::string &error) {
  std::unique_ptr<Collective> op = begin("all-reduce", what, axis, error);
  if (!op)
    return false;
  if (!reducible(*op, dtype, error))
    return false;
  if (count < 0) {
    error = prefix() + ": " + op->label + ": negative element count " +
            std::to_string(count);
    return false;
  }
  const Group &group = *op->group;
  op->data = static_cast<uint8_t *>(data);
  op->count = count;
  op->dtype = dtype;
  op->kind = kind;
  op->elementSize = dtypeSize(dtype);
  CollectiveStats &stats = startCounting(*op);
  stats.bytesReduced += uint64_t(count) * op->elementSize;
  if (count == 0 || group.size == 1) {
    return doneAtOnce(std::move(op), handle);
  }

  // MPI has no 16-bit float types: those always reduce in rank order.
  MPI_Datatype type = mpiType(dtype);
  if (!options.deterministic && type) {
    if (count > INT_MAX) {
      error = prefix() + ": " + op->label + ": " + std::to_string(count) +
              " elements are more than one MPI call takes (2^31 - 1)";
      return false;
    }
    MPI_Op reduce = mpiOp(kind);
    op->stage = Collective::Stage::Plain;
    // A ring's share; MPI picks its own algorithm.
    stats.bytesSent += uint64_t(count) * op->elementSize * 2 *
                       uint64_t(group.size - 1) / uint64_t(group.size);
    int rc = mpi.MPI_Iallreduce(MPI_IN_PLACE, data, int(count), type, reduce,
                                group.comm, &op->request);
    return launched(std::move(op), "MPI_Iallreduce", rc, handle, error);
  }

  // Rank order: chunk r of every rank goes to rank r (an all-to-all of
  // `chunk` elements each), which sums its N chunks in rank order.
  int64_t n = group.size;
  op->chunk = (count + n - 1) / n;
  int64_t chunkBytes = op->chunk * op->elementSize;
  if (chunkBytes > INT_MAX) {
    error = prefix() + ": " + op->label + ": chunks of " +
            std::to_string(chunkBytes) +
            " bytes are more than one MPI call takes (2^31 - 1)";
    return false;
  }
  const uint8_t *send = op->data;
  if (op->chunk * n != count) {
    op->padded.assign(size_t(op->chunk * n) * op->elementSize, 0);
    std::memcpy(op->padded.data(), data, size_t(count) * op->elementSize);
    send = op->padded.data();
  }
  op->received.resize(size_t(op->chunk * n) * op->elementSize);
  op->stage = Collective::Stage::Exchange;
  // N - 1 chunks out in the all-to-all, and again in the all-gather.
  stats.bytesSent += 2 * uint64_t(n - 1) * uint64_t(chunkBytes);
  int rc = mpi.MPI_Ialltoall(send, int(chunkBytes), mpi.ompi_mpi_byte,
                             op->received.data(), int(chunkBytes),
                             mpi.ompi_mpi_byte, group.comm, &op->request);
  return launched(std::move(op), "MPI_Ialltoall", rc, handle, error);
}

bool MPICommunicator::startReduceScatter(const void *input, void *output,
                                         int64_t count, DType dtype,
                                         ReduceKind kind,
                                         const std::string &axis,
                                         const std::string &what,
                                         Handle &handle, std::string &error) {
  std::unique_ptr<Collective> op = begin("reduce-scatter", what, axis, error);
  if (!op)
    return false;
  if (!reducible(*op, dtype, error))
    return false;
  const Group &group = *op->group;
  op->elementSize = dtypeSize(dtype);
  int64_t partBytes = count * op->elementSize;
  if (count < 0 || partBytes > INT_MAX) {
    error = prefix() + ": " + op->label + ": parts of " +
            std::to_string(count) +
            " elements are negative or more than one MPI call takes (2^31 - "
            "1 bytes)";
    return false;
  }
  op->data = static_cast<uint8_t *>(const_cast<void *>(input));
  op->output = static_cast<uint8_t *>(output);
  op->count = count * group.size;
  op->chunk = count;
  op->dtype = dtype;
  op->kind = kind;
  CollectiveStats &stats = startCounting(*op);
  stats.bytesReduced += uint64_t(count) * group.size * op->elementSize;
  // N - 1 parts out, in either algorithm.
  stats.bytesSent += uint64_t(group.size - 1) * uint64_t(partBytes);
  if (count == 0 || group.size == 1) {
    std::memcpy(output, input, size_t(partBytes));
    return doneAtOnce(std::move(op), handle);
  }
  MPI_Datatype type = mpiType(dtype);
  if (!options.deterministic && type) {
    MPI_Op reduce = mpiOp(kind);
    op->stage = Collective::Stage::Plain;
    int rc = mpi.MPI_Ireduce_scatter_block(input, output, int(count), type,
                                           reduce, group.comm, &op->request);
    return launched(std::move(op), "MPI_Ireduce_scatter_block", rc, handle,
                    error);
  }
  // Rank order: the all-to-all of the rank-order all-reduce, whose sum is
  // this rank's part.
  op->received.resize(size_t(op->count) * op->elementSize);
  op->stage = Collective::Stage::Exchange;
  int rc = mpi.MPI_Ialltoall(input, int(partBytes), mpi.ompi_mpi_byte,
                             op->received.data(), int(partBytes),
                             mpi.ompi_mpi_byte, group.comm, &op->request);
  return launched(std::move(op), "MPI_Ialltoall", rc, handle, error);
}

bool MPICommunicator::startAllGather(const void *input, int64_t bytes,
                                     void *output, const std::string &axis,
                                     const std::string &what, Handle &handle,
                                     std::string &error) {
  std::unique_ptr<Collective> op = begin("all-gather", what, axis, error);
  if (!op)
    return false;
  if (bytes < 0 || bytes > INT_MAX) {
    error = prefix() + ": " + op->label + ": " + std::to_string(bytes) +
            " bytes per rank are more than one MPI call takes (2^31 - 1)";
    return false;
  }
  const Group &group = *op->group;
  CollectiveStats &stats = startCounting(*op);
  stats.bytesGathered += uint64_t(bytes) * uint64_t(group.size);
  stats.bytesSent += uint64_t(bytes) * uint64_t(group.size - 1);
  // The input is copied, so the caller's buffer is free at once.
  op->received.assign(static_cast<const uint8_t *>(input),
                      static_cast<const uint8_t *>(input) + bytes);
  if (group.size == 1 || bytes == 0) {
    std::memcpy(output, input, size_t(bytes));
    op->stage = Collective::Stage::Done;
    op->doneTime = op->startTime;
    handle = add(std::move(op));
    return true;
  }
  op->stage = Collective::Stage::Plain;
  int rc = mpi.MPI_Iallgather(op->received.data(), int(bytes),
                              mpi.ompi_mpi_byte, output, int(bytes),
                              mpi.ompi_mpi_byte, group.comm, &op->request);
  return launched(std::move(op), "MPI_Iallgather", rc, handle, error);
}

bool MPICommunicator::startPointToPoint(bool send, void *data, int64_t bytes,
                                        const std::string &axis, int64_t offset,
                                        const std::string &what, Handle &handle,
                                        std::string &error) {
  std::unique_ptr<Collective> op =
      begin(send ? "send" : "receive", what, axis, error);
  if (!op)
    return false;
  const Group &group = *op->group;
  int64_t peer = int64_t(group.rank) + offset;
  if (offset == 0 || peer < 0 || peer >= group.size) {
    error = prefix() + ": " + op->label + ": no peer " +
            std::to_string(offset) + " places from coordinate " +
            std::to_string(group.rank) + " along " + group.describe();
    return false;
  }
  if (bytes < 0 || bytes > INT_MAX) {
    error = prefix() + ": " + op->label + ": " + std::to_string(bytes) +
            " bytes are more than one MPI call takes (2^31 - 1)";
    return false;
  }
  // Errors name the peer: a dead stage shows up as the receive it misses.
  op->label += std::string(send ? " to " : " from ") + group.axis + " " +
               std::to_string(peer);
  CollectiveStats &stats = startCounting(*op);
  if (send) {
    stats.bytesSent += uint64_t(bytes);
    op->received.assign(static_cast<const uint8_t *>(data),
                        static_cast<const uint8_t *>(data) + bytes);
  }
  op->stage = Collective::Stage::Plain;
  int rc =
      send ? mpi.MPI_Isend(op->received.data(), int(bytes), mpi.ompi_mpi_byte,
                           int(peer), 0, group.comm, &op->request)
           : mpi.MPI_Irecv(data, int(bytes), mpi.ompi_mpi_byte, int(peer), 0,
                           group.comm, &op->request);
  return launched(std::move(op), send ? "MPI_Isend" : "MPI_Irecv", rc, handle,
                  error);
}

bool MPICommunicator::startBroadcast(void *data, int64_t bytes, int64_t root,
                                     const std::string &axis,
                                     const std::string &what, Handle &handle,
                                     std::string &error) {
  std::unique_ptr<Collective> op = begin("broadcast", what, axis, error);
  if (!op)
    return false;
  const Group &group = *op->group;
  if (root < 0 || root >= group.size) {
    error = prefix() + ": " + op->label + ": root " + std::to_string(root) +
            " is not a coordinate of " + group.describe();
    return false;
  }
  if (bytes < 0 || bytes > INT_MAX) {
    error = prefix() + ": " + op->label + ": " + std::to_string(bytes) +
            " bytes are more than one MPI call takes (2^31 - 1)";
    return false;
  }
  CollectiveStats &stats = startCounting(*op);
  // A tree: the root's bytes reach N - 1 ranks; count them at the root.
  if (group.rank == root)
    stats.bytesSent += uint64_t(bytes) * uint64_t(group.size - 1);
  if (group.size == 1 || bytes == 0)
    return doneAtOnce(std::move(op), handle);
  op->stage = Collective::Stage::Plain;
  int rc = mpi.MPI_Ibcast(data, int(bytes), mpi.ompi_mpi_byte, int(root),
                          group.comm, &op->request);
  return launched(std::move(op), "MPI_Ibcast", rc, handle, error);
}

bool MPICommunicator::allGatherBytes(const void *input, int64_t bytes,
                                     void *output, const std::string &axis,
                                     const std::string &what,
                                     std::string &error) {
  // Into a buffer of its own, left allocated after a timeout (as
  // allReduce's).
  const Group *group = findGroup(axis);
  auto *owned = new std::vector<uint8_t>(size_t(std::max<int64_t>(bytes, 0)) *
                                         (group ? group->size : 1));
  Handle handle;
  bool was = counting;
  counting = false;
  bool ok =
      startAllGather(input, bytes, owned->data(), axis, what, handle, error);
  counting = was;
  if (!ok || !wait(handle, error))
    return false;
  std::memcpy(output, owned->data(), owned->size());
  delete owned;
  return true;
}

void MPICommunicator::advance(Collective &op, bool mayGather) {
  if (op.inFlight()) {
    int done = 0;
    int rc = mpi.MPI_Test(&op.request, &done, MPI_STATUS_IGNORE);
    if (rc != MPI_SUCCESS)
      return fail(op, "MPI_Test", rc);
    if (!done)
      return;
    switch (op.stage) {
    case Collective::Stage::Plain:
      op.stage = Collective::Stage::Done;
      op.doneTime = std::chrono::steady_clock::now();
      return;
    case Collective::Stage::Exchange:
      op.stage = Collective::Stage::Exchanged;
      break;
    case Collective::Stage::Gather:
      if (!op.padded.empty())
        std::memcpy(op.data, op.padded.data(),
                    size_t(op.count) * op.elementSize);
      op.padded = {};
      op.received = {};
      op.stage = Collective::Stage::Done;
      op.doneTime = std::chrono::steady_clock::now();
      return;
    default:
      return;
    }
  }
  // A reduce-scatter starts nothing more, so it need not wait its turn.
  if (op.stage != Collective::Stage::Exchanged || (!mayGather && !op.output))
    return;
  // ((c0 + c1) + c2) + ..., into chunk 0 of `received`.
  size_t chunkBytes = size_t(op.chunk) * op.elementSize;
  uint8_t *sum = op.received.data();
  for (int r = 1; r < op.group->size; ++r)
    combineChunk(sum, sum + r * chunkBytes, op.chunk, op.dtype, op.kind);
  if (op.output) {
    std::memcpy(op.output, sum, chunkBytes);
    op.received = {};
    op.stage = Collective::Stage::Done;
    op.doneTime = std::chrono::steady_clock::now();
    return;
  }
  uint8_t *target = op.padded.empty() ? op.data : op.padded.data();
  op.stage = Collective::Stage::Gather;
  int rc = mpi.MPI_Iallgather(sum, int(chunkBytes), mpi.ompi_mpi_byte, target,
                              int(chunkBytes), mpi.ompi_mpi_byte,
                              op.group->gatherComm, &op.request);
  if (rc != MPI_SUCCESS)
    fail(op, "MPI_Iallgather", rc);
}

void MPICommunicator::progress() {
  // In start order (handles increase), so each group's all-gathers start
  // in the order of their all-reduces on every rank.
  std::vector<const Group *> waiting;
  for (auto &entry : started) {
    Collective &op = *entry.second;
    bool mayGather =
        std::find(waiting.begin(), waiting.end(), op.group) == waiting.end();
    advance(op, mayGather);
    // (A reduce-scatter starts no all-gather: nothing waits for it.)
    if (!op.output && (op.stage == Collective::Stage::Exchange ||
                       op.stage == Collective::Stage::Exchanged))
      waiting.push_back(op.group);
  }
}

bool MPICommunicator::wait(Handle handle, std::string &error) {
  auto it = started.find(handle);
  if (it == started.end()) {
    error = prefix() + ": wait: no collective has handle " +
            std::to_string(handle) + " (never started, or already waited for)";
    return false;
  }
  auto begin = std::chrono::steady_clock::now();
  if (!poll(*it->second, error))
    return false;
  const Collective &op = *it->second;
  if (op.counted) {
    using Seconds = std::chrono::duration<double>;
    statistics.exposedSeconds +=
        Seconds(std::chrono::steady_clock::now() - begin).count();
    statistics.activeSeconds += Seconds(op.doneTime - op.startTime).count();
  }
  started.erase(it);
  return true;
}

bool MPICommunicator::poll(Collective &op, std::string &error,
                           double timeoutSeconds) {
  double limit = timeoutSeconds > 0 ? timeoutSeconds : options.timeoutSeconds;
  auto begin = std::chrono::steady_clock::now();
  for (;;) {
    // Every started collective, not only this one, so ranks may wait for
    // theirs in different orders: a rank's all-gather stage starts only
    // when that rank advances it.
    progress();
    if (op.stage == Collective::Stage::Done)
      return true;
    if (op.stage == Collective::Stage::Failed) {
      // Kept: MPI may still own its buffers; the caller ends the job.
      error = op.error;
      return false;
    }
    double waited =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - begin)
            .count();
    if (waited >= limit) {
      error = prefix() + ": " + op.label + " over " + op.group->describe() +
              " did not finish within " + formatSeconds(waited) +
              " s: another rank died, hung or runs a different program";
      return false;
    }
    // Polling gives the core away: with more ranks than cores (mpirun
    // --oversubscribe) the rank this one waits for may need it.
    if (waited < 1e-3)
      sched_yield();
    else
      std::this_thread::sleep_for(std::chrono::microseconds(50));
  }
}

bool MPICommunicator::allReduce(void *data, int64_t count, DType dtype,
                                ReduceKind kind, const std::string &axis,
                                const std::string &what, std::string &error) {
  // The trainer's own reductions stay out of the program's statistics. MPI
  // works on a copy: after a timeout it may still write to it, so the copy
  // is then left allocated rather than freed under it.
  auto *owned = new std::vector<uint8_t>(static_cast<const uint8_t *>(data),
                                         static_cast<const uint8_t *>(data) +
                                             std::max<int64_t>(count, 0) *
                                                 dtypeSize(dtype));
  Handle handle;
  bool was = counting;
  counting = false;
  bool ok = startAllReduce(owned->data(), count, dtype, kind, axis, what,
                           handle, error);
  counting = was;
  if (!ok || !wait(handle, error))
    return false;
  std::memcpy(data, owned->data(), owned->size());
  delete owned;
  return true;
}

template <typename Start, typename Finish>
bool MPICommunicator::runPlain(std::unique_ptr<Collective> op, Start start,
                               Finish finish, std::string &error,
                               double timeoutSeconds) {
  op->stage = Collective::Stage::Done;
  if (op->group->size > 1) {
    const char *call = nullptr;
    int rc = start(*op, call);
    if (rc != MPI_SUCCESS) {
      fail(*op, call, rc);
      error = op->error;
      return false;
    }
    op->stage = Collective::Stage::Plain;
  }
  Collective &running = *op;
  Handle handle = add(std::move(op));
  // On failure `op` stays registered: MPI may still write to its buffers.
  if (!poll(running, error, timeoutSeconds))
    return false;
  finish(running);
  started.erase(handle);
  return true;
}

bool MPICommunicator::broadcast(void *data, int64_t bytes, int root,
                                const std::string &what, std::string &error) {
  auto op = std::make_unique<Collective>();
  op->label = "broadcast '" + what + "'";
  op->group = &world;
  if (root < 0 || root >= world.size) {
    error = prefix() + ": " + op->label + ": root " + std::to_string(root) +
            " is not a rank of " + world.describe();
    return false;
  }
  if (bytes < 0 || bytes > INT_MAX) {
    error = prefix() + ": " + op->label + ": " + std::to_string(bytes) +
            " bytes are not what one MPI call takes (0 to 2^31 - 1)";
    return false;
  }
  return runPlain(
      std::move(op),
      [&](Collective &running, const char *&call) {
        call = "MPI_Ibcast";
        return mpi.MPI_Ibcast(data, int(bytes), mpi.ompi_mpi_byte, root,
                              world.comm, &running.request);
      },
      [](Collective &) {}, error);
}

bool MPICommunicator::allGather(uint64_t value, std::vector<uint64_t> &values,
                                const std::string &what, std::string &error) {
  // The buffers are the collective's, not the caller's: after a timeout
  // MPI may still write them.
  auto op = std::make_unique<Collective>();
  op->label = "all-gather '" + what + "'";
  op->group = &world;
  op->received.assign((world.size + 1) * sizeof(uint64_t), 0);
  std::memcpy(op->received.data() + world.size * sizeof(uint64_t), &value,
              sizeof(uint64_t));
  std::memcpy(op->received.data() + world.rank * sizeof(uint64_t), &value,
              sizeof(uint64_t));
  return runPlain(
      std::move(op),
      [&](Collective &running, const char *&call) {
        call = "MPI_Iallgather";
        uint8_t *buffer = running.received.data();
        return mpi.MPI_Iallgather(
            buffer + world.size * sizeof(uint64_t), 1, mpi.ompi_mpi_uint64_t,
            buffer, 1, mpi.ompi_mpi_uint64_t, world.comm, &running.request);
      },
      [&](Collective &running) {
        values.resize(world.size);
        std::memcpy(values.data(), running.received.data(),
                    world.size * sizeof(uint64_t));
      },
      error);
}

bool MPICommunicator::barrier(const std::string &what, std::string &error,
                              double timeoutSeconds) {
  auto op = std::make_unique<Collective>();
  op->label = "barrier '" + what + "'";
  op->group = &world;
  return runPlain(
      std::move(op),
      [&](Collective &running, const char *&call) {
        call = "MPI_Ibarrier";
        return mpi.MPI_Ibarrier(world.comm, &running.request);
      },
      [](Collective &) {}, error, timeoutSeconds);
}

void MPICommunicator::abort(int code) {
  mpi.MPI_Abort(mpi.ompi_mpi_comm_world, code);
  // MPI_Abort returns only if Open MPI could not end the job.
  std::_Exit(code);
}

} // namespace

//===----------------------------------------------------------------------===//
// Entry points
//===----------------------------------------------------------------------===//

LaunchInfo trainopt::rt::launchInfo() {
  LaunchInfo info;
  info.underMpirun = std::getenv("OMPI_COMM_WORLD_SIZE") != nullptr;
  info.size = std::max(1, envInt("OMPI_COMM_WORLD_SIZE", 1));
  info.rank = envInt("OMPI_COMM_WORLD_RANK", 0);
  int local = info.underMpirun
                  ? std::max(1, envInt("OMPI_COMM_WORLD_LOCAL_SIZE", info.size))
                  : 1;
  // mpirun binds each rank by default (to a core for up to 2 ranks, to a
  // socket beyond, to nothing when oversubscribed or with --bind-to none),
  // so this process's CPUs may be its own or shared with the other ranks
  // of the node. The launcher (mpirun or its daemon, our parent) is not
  // bound: its CPUs are the node's share of the job, and with ranks spread
  // evenly the ranks sharing our set are local * ours / the job's.
  int mine = countAffinity(0);
  if (mine <= 0) {
    long online = sysconf(_SC_NPROCESSORS_ONLN);
    mine = online > 0 ? int(online) : 1;
  }
  int job = info.underMpirun ? std::max(mine, countAffinity(getppid())) : mine;
  int64_t sharing = (int64_t(local) * mine + job - 1) / job;
  sharing = std::clamp<int64_t>(sharing, 1, local);
  info.coresPerRank = std::max<int>(1, int(mine / sharing));
  return info;
}

std::unique_ptr<Communicator> trainopt::rt::createMPICommunicator(
    const Mesh &mesh, const CommunicatorOptions &options, std::string &error) {
  for (size_t i = 0; i < mesh.axes.size(); ++i) {
    const auto &[name, size] = mesh.axes[i];
    bool repeated = false;
    for (size_t j = 0; j < i; ++j)
      repeated |= mesh.axes[j].first == name;
    if (name.empty() || repeated || size < 1 || size > INT_MAX) {
      error = "the mesh " + describeMesh(mesh) +
              " needs distinct, named axes of positive sizes";
      return nullptr;
    }
  }
  const MPIApi *mpi = loadMPI(error);
  if (!mpi)
    return nullptr;

  // A job of the wrong size fails here, on every rank alike, before MPI
  // starts: a rank that failed after MPI_Init would leave the others
  // waiting for it. Only a launcher other than mpirun leaves the size to
  // MPI (below).
  auto wrongSize = [&](int64_t ranks, bool fromMpirun) {
    error = "this job has " + plural(ranks, "rank") +
            " but the artifact's mesh " + describeMesh(mesh) + " needs " +
            std::to_string(mesh.size());
    if (!fromMpirun)
      error += ": start it with mpirun -np " + std::to_string(mesh.size());
    return nullptr;
  };
  LaunchInfo launch = launchInfo();
  bool otherLauncher = !launch.underMpirun && std::getenv("PMIX_RANK");
  if (!otherLauncher && launch.size != mesh.size())
    return wrongSize(launch.size, launch.underMpirun);

  ProcessMPI &process = processMPI();
  int initialized = 0, finalized = 0;
  mpi->MPI_Initialized(&initialized);
  mpi->MPI_Finalized(&finalized);
  if (finalized) {
    error = "MPI was already finalized in this process, and cannot start "
            "again: create one communicator per process";
    return nullptr;
  }
  if (!initialized) {
    // FUNNELED: every MPI call comes from the thread that created the
    // communicator (the trainer's), though the runtime has other threads.
    int provided = MPI_THREAD_SINGLE;
    int rc =
        mpi->MPI_Init_thread(nullptr, nullptr, MPI_THREAD_FUNNELED, &provided);
    if (rc != MPI_SUCCESS) {
      error = "MPI_Init_thread failed: " + describeMPIError(*mpi, rc);
      return nullptr;
    }
    process.initializedHere = true;
    if (provided < MPI_THREAD_FUNNELED) {
      error = "Open MPI does not support MPI_THREAD_FUNNELED";
      mpi->MPI_Finalize();
      return nullptr;
    }
  }
  int worldSize = 0, worldRank = 0;
  mpi->MPI_Comm_size(mpi->ompi_mpi_comm_world, &worldSize);
  mpi->MPI_Comm_rank(mpi->ompi_mpi_comm_world, &worldRank);
  if (worldSize != mesh.size()) {
    if (process.initializedHere && process.liveCommunicators == 0)
      mpi->MPI_Finalize();
    return wrongSize(worldSize, true);
  }

  auto communicator =
      std::make_unique<MPICommunicator>(*mpi, mesh, options, worldRank);
  ++process.liveCommunicators;
  if (!communicator->createGroups(error))
    return nullptr;
  return communicator;
}
