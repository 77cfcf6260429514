//===- Communicator.h - collectives between the ranks of a job --*- C++ -*-===//
//
/// \file
/// The processes of one `mpirun` job, and the collectives a sharded program
/// runs between them (DESIGN.md 3.7; docs/distributed.md). A communicator
/// is the world of ranks plus one group per mesh axis: on a mesh
/// `dp=2,tp=2` (row-major, the last axis fastest) the `dp` group of a rank
/// is the ranks that differ from it only in their `dp` coordinate.
///
/// The CPU implementation is Open MPI, opened with dlopen (libmpi.so.40)
/// when a sharded artifact loads, so the runtime starts and runs
/// single-process artifacts on a machine without MPI. Its handles are Open
/// MPI's exported globals (`ompi_mpi_comm_world`, ...): the runtime is tied
/// to Open MPI's ABI, as Debian ships it.
///
/// Collectives are started and waited for separately, so a program can
/// issue an all-reduce as soon as its input is ready and compute while it
/// runs; `progress` lets MPI move started collectives along between
/// commands (Open MPI has no progress thread). Every wait gives up after
/// the communicator's timeout with an error naming the collective, the
/// group and this rank; the trainer then aborts the job (`abort`).
///
/// Deterministic mode (the default) reduces in rank order, independently of
/// MPI's algorithm: an all-to-all hands rank r the r-th chunk of every
/// rank's buffer, rank r sums its chunk as ((c0 + c1) + c2) + ..., and an
/// all-gather returns the sums. It moves 2(N-1)/N of the buffer per rank,
/// as a ring all-reduce does, and gives every rank the same bits, equal to
/// summing the N contributions one after another in one process.
//
//===----------------------------------------------------------------------===//

#ifndef TRAINOPT_RUNTIME_COMMUNICATOR_H
#define TRAINOPT_RUNTIME_COMMUNICATOR_H

#include "trainopt/Runtime/Data.h"

#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

namespace trainopt::rt {

/// A mesh: named axes and their sizes, row-major (the last axis fastest).
struct Mesh {
  std::vector<std::pair<std::string, int64_t>> axes;
  int64_t size() const {
    int64_t n = 1;
    for (const auto &a : axes)
      n *= a.second;
    return n;
  }
  /// The size of axis `name` (0 when the mesh has no such axis).
  int64_t axisSize(const std::string &name) const {
    for (const auto &a : axes)
      if (a.first == name)
        return a.second;
    return 0;
  }
};

enum class ReduceKind { Sum, Max, Min };

/// How the job was launched, from the environment mpirun sets
/// (OMPI_COMM_WORLD_SIZE/RANK): world size 1 and rank 0 without mpirun.
struct LaunchInfo {
  bool underMpirun = false;
  int rank = 0, size = 1;
  /// Cores per rank: the cores this process may use, divided by the ranks
  /// on this node (OMPI_COMM_WORLD_LOCAL_SIZE) that share them. mpirun binds
  /// each rank by default (a core each for up to 2 ranks, a socket beyond,
  /// nothing when oversubscribed): a rank bound to one core gets 1 whatever
  /// the machine; `mpirun --bind-to none` or `--map-by slot:PE=n` gives more.
  int coresPerRank = 1;
};
LaunchInfo launchInfo();

struct CommunicatorOptions {
  /// Every wait fails after this many seconds.
  double timeoutSeconds = 300;
  /// Rank-order reductions (above); false: MPI's own all-reduce.
  bool deterministic = true;
};

/// What the all-reduces a program started (startAllReduce) have cost this
/// rank, from timestamps: `activeSeconds` sums each one's time from its
/// start to the moment it was seen complete, `exposedSeconds` the time
/// spent blocked in `wait` for them. Their ratio is the share of
/// communication compute did not hide.
struct CollectiveStats {
  int64_t collectives = 0;
  /// Bytes this rank sent (an all-reduce in rank order: its N - 1 chunks in
  /// the all-to-all and in the all-gather; MPI's own: a ring's 2(N-1)/N of
  /// the buffer; an all-gather: its part to N - 1 ranks), the all-reduced
  /// buffers' bytes and the all-gathered results' bytes.
  uint64_t bytesSent = 0, bytesReduced = 0, bytesGathered = 0;
  double activeSeconds = 0, exposedSeconds = 0;
};

class Communicator {
public:
  /// A started collective.
  using Handle = int64_t;

  virtual ~Communicator() = default;
  virtual int rank() const = 0;
  virtual int size() const = 0;
  virtual const Mesh &mesh() const = 0;
  /// This rank's coordinate along `axis`, and the size of its group.
  virtual int coordinate(const std::string &axis) const = 0;
  virtual int groupSize(const std::string &axis) const = 0;

  /// Starts an in-place all-reduce of `count` elements of `dtype` at `data`
  /// over the group of `axis`. `data` must stay untouched until `wait`.
  /// `what` names the collective in errors.
  virtual bool startAllReduce(void *data, int64_t count, DType dtype,
                              ReduceKind kind, const std::string &axis,
                              const std::string &what, Handle &handle,
                              std::string &error) = 0;
  /// Starts a reduce-scatter over the group of `axis` (N ranks): `input`
  /// holds N parts of `count` elements of `dtype`; rank r receives in
  /// `output` the elementwise reduction of every rank's part r (in rank
  /// order when deterministic, bit for bit that part of the all-reduce).
  /// Both must stay untouched until `wait`.
  virtual bool startReduceScatter(const void *input, void *output,
                                  int64_t count, DType dtype, ReduceKind kind,
                                  const std::string &axis,
                                  const std::string &what, Handle &handle,
                                  std::string &error) = 0;
  /// Starts an all-gather: `bytes` from `input` (copied at once: the caller
  /// may reuse it) of every rank of `axis`'s group, in group-rank order,
  /// into `output` (group size x `bytes`), which must stay untouched until
  /// `wait`.
  virtual bool startAllGather(const void *input, int64_t bytes, void *output,
                              const std::string &axis, const std::string &what,
                              Handle &handle, std::string &error) = 0;
  /// Starts a broadcast over the group of `axis`: every rank's `bytes` at
  /// `data` become those of the rank at coordinate `root` (the root's are
  /// read, the others' written; untouched until `wait`).
  virtual bool startBroadcast(void *data, int64_t bytes, int64_t root,
                              const std::string &axis, const std::string &what,
                              Handle &handle, std::string &error) = 0;
  /// Starts sending `bytes` from `data` (copied at once) to the rank whose
  /// coordinate along `axis` is this rank's plus `offset`; it receives them
  /// with `startRecv` and the opposite offset. Messages between two ranks
  /// arrive in the order they were sent (pipeline stages).
  virtual bool startSend(const void *data, int64_t bytes,
                         const std::string &axis, int64_t offset,
                         const std::string &what, Handle &handle,
                         std::string &error) = 0;
  /// Starts receiving `bytes` into `data` (untouched until `wait`) from the
  /// rank `offset` places along `axis`.
  virtual bool startRecv(void *data, int64_t bytes, const std::string &axis,
                         int64_t offset, const std::string &what,
                         Handle &handle, std::string &error) = 0;
  /// Waits for a started collective (polling, up to the timeout).
  virtual bool wait(Handle handle, std::string &error) = 0;
  /// Lets started collectives advance; cheap, called between commands.
  virtual void progress() = 0;
  /// The started collectives' costs so far.
  virtual const CollectiveStats &stats() const = 0;
  /// Whether the collectives started from now on count in `stats` (the
  /// trainer counts train_step's, not evaluation's).
  virtual void countCollectives(bool on) = 0;

  /// Blocking helpers for the trainer (host memory, world group unless an
  /// axis is given), each bounded by the timeout.
  virtual bool allReduce(void *data, int64_t count, DType dtype,
                         ReduceKind kind, const std::string &axis,
                         const std::string &what, std::string &error) = 0;
  virtual bool broadcast(void *data, int64_t bytes, int root,
                         const std::string &what, std::string &error) = 0;
  /// The blocking all-gather of `bytes` per rank of `axis`'s group.
  virtual bool allGatherBytes(const void *input, int64_t bytes, void *output,
                              const std::string &axis, const std::string &what,
                              std::string &error) = 0;
  /// Every rank's `value`, in rank order.
  virtual bool allGather(uint64_t value, std::vector<uint64_t> &values,
                         const std::string &what, std::string &error) = 0;
  /// `timeoutSeconds` > 0 replaces the communicator's timeout (a barrier
  /// that waits for rank 0 to write a checkpoint may need longer).
  virtual bool barrier(const std::string &what, std::string &error,
                       double timeoutSeconds = 0) = 0;
  /// Ends the whole job (MPI_Abort) after a fatal error on this rank.
  [[noreturn]] virtual void abort(int code) = 0;
};

/// The communicator of this process for `mesh`: opens Open MPI,
/// initializes it, checks that the world size equals the mesh's, and
/// splits one group per axis. Null with `error` set when MPI cannot be
/// opened or the sizes differ.
std::unique_ptr<Communicator>
createMPICommunicator(const Mesh &mesh, const CommunicatorOptions &options,
                      std::string &error);

} // namespace trainopt::rt

#endif // TRAINOPT_RUNTIME_COMMUNICATOR_H
