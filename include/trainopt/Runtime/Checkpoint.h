//===- Checkpoint.h - training checkpoints for the runtime ------*- C++ -*-===//
//
/// \file
/// A checkpoint is everything trainopt-run needs to continue a run as if it
/// had never stopped: the identity of the program (model name and a
/// fingerprint of the persistent values' names, kinds, dtypes and shapes),
/// the step count, the bytes of every persistent value, the data position
/// and shuffle seed, the runner's counters and the metrics its summary
/// accumulates.
///
/// File layout (all integers little-endian):
///
///   header   8-byte magic "TOPTCKPT", uint32 format version, uint64 payload
///            length, uint32 CRC-32 of the payload
///   payload  uint64 length of the metadata, the metadata (identity, step,
///            position, counters, metrics, one descriptor per value), then
///            the values' bytes in descriptor order
///
/// Files are named `ckpt-<step, 12 digits>.ckpt` and written atomically: a
/// temporary file in the same directory (`.ckpt-<step>.ckpt.tmp`, which no
/// reader looks at), fsync, rename, fsync of the directory. A process killed
/// at any moment therefore leaves the previous checkpoints intact. Reading
/// refuses a foreign, truncated, corrupt or mismatched file with a message
/// naming it; nothing is silently skipped. No MLIR: part of the runtime.
//
//===----------------------------------------------------------------------===//

#ifndef TRAINOPT_RUNTIME_CHECKPOINT_H
#define TRAINOPT_RUNTIME_CHECKPOINT_H

#include "trainopt/Runtime/Data.h"

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

namespace trainopt::rt {

/// The format version this code reads and writes.
inline constexpr uint32_t kCheckpointVersion = 1;

/// What identifies a persistent value for compatibility: a checkpoint only
/// loads into a program whose values match it in name, kind, dtype and
/// shape, in order.
struct ValueSignature {
  std::string name;
  /// The value's kind as a word ("parameter", "optimizer_state", ...).
  std::string kind;
  DType dtype = DType::F32;
  std::vector<int64_t> shape;

  bool operator==(const ValueSignature &o) const {
    return name == o.name && kind == o.kind && dtype == o.dtype &&
           shape == o.shape;
  }
};

/// A persistent value and its bytes (little-endian, row-major; exactly
/// dtypeSize(dtype) * number of elements of shape).
struct CheckpointValue {
  ValueSignature signature;
  std::vector<uint8_t> bytes;
};

struct Checkpoint {
  /// Identity of the program.
  std::string modelName;
  /// signatureFingerprint() of the values; computed by writeCheckpoint,
  /// checked by readCheckpoint.
  uint64_t fingerprint = 0;
  /// Training steps completed.
  uint64_t step = 0;
  /// Data position: batches of `epoch` before `batch` are consumed.
  uint64_t epoch = 0;
  int64_t batch = 0;
  /// Shuffle seed and whether batches are shuffled at all.
  uint64_t seed = 0;
  bool shuffle = true;
  /// The runner's own integer state (RNG state, counters, data sizes), by
  /// name.
  std::vector<std::pair<std::string, uint64_t>> counters;
  /// Metrics the runner accumulates for its summary, by name.
  std::vector<std::pair<std::string, double>> metrics;
  /// Every persistent value, in the program's order.
  std::vector<CheckpointValue> values;

  /// The counter or metric named `name`, or `fallback` when there is none.
  uint64_t counter(const std::string &name, uint64_t fallback = 0) const;
  double metric(const std::string &name, double fallback = 0.0) const;
};

/// A 64-bit fingerprint (FNV-1a) of the signatures, in order.
uint64_t signatureFingerprint(const std::vector<ValueSignature> &values);
/// The signatures of `ckpt`'s values.
std::vector<ValueSignature> signaturesOf(const Checkpoint &ckpt);

/// The file name of the checkpoint of `step`: "ckpt-000000001000.ckpt".
std::string checkpointFileName(uint64_t step);

/// Writes `ckpt` (its fingerprint recomputed) atomically to
/// `dir`/checkpointFileName(ckpt.step), replacing a checkpoint of the same
/// step. Sets `path` to the file written. Fails with a message naming the
/// file.
bool writeCheckpoint(const std::string &dir, const Checkpoint &ckpt,
                     std::string &path, std::string &error);
bool writeCheckpoint(const std::string &dir, const Checkpoint &ckpt,
                     std::string &error);

/// Reads and checks `path`: magic, version, length, CRC-32, the metadata's
/// structure and the fingerprint of the values it describes.
bool readCheckpoint(const std::string &path, Checkpoint &ckpt,
                    std::string &error);

/// Checks that `ckpt` (read from `path`) belongs to the program named
/// `modelName` with persistent values `expected`. The message names the
/// file and the first difference (a missing, extra or reshaped value).
bool checkCompatible(const Checkpoint &ckpt, const std::string &path,
                     const std::string &modelName,
                     const std::vector<ValueSignature> &expected,
                     std::string &error);

/// Sets `path` to the checkpoint of the highest step in `dir`, by file name
/// (temporary files are not checkpoints). Fails when `dir` cannot be read
/// or holds no checkpoint; the content is checked by readCheckpoint.
bool findLatestCheckpoint(const std::string &dir, std::string &path,
                          std::string &error);

/// The checkpoints in `dir` as (step, path), by increasing step.
bool listCheckpoints(const std::string &dir,
                     std::vector<std::pair<uint64_t, std::string>> &out,
                     std::string &error);

/// Deletes all but the `n` checkpoints of the highest steps in `dir` (n = 0
/// keeps all), and temporary files left by killed writers of steps no
/// greater than the newest checkpoint.
bool keepLast(const std::string &dir, size_t n, std::string &error);

/// Sharded checkpoints (docs/distributed.md). A job of several ranks
/// writes a checkpoint as a directory under the checkpoint name
/// (`ckpt-<step>.ckpt/`) holding one file per rank (`rank-<r>.ckpt`, the
/// single-file format: rank 0's has every value, each other rank's only
/// its sharded ones, all of this rank's size) and a `MANIFEST` (text: the
/// step, the mesh, each file's coordinates, and each value's whole shape
/// and sharding). It is committed across ranks in one rename: rank 0
/// creates `.ckpt-<step>.ckpt.tmp/` (beginShardedCheckpoint), every rank
/// writes its file there (writeCheckpointShard), and after a barrier rank
/// 0 writes the manifest and renames the directory
/// (commitShardedCheckpoint). A job killed at any point leaves only a
/// temporary directory, which no reader looks at and keepLast removes.
/// readCheckpoint and the directory functions above accept both forms:
/// reading a sharded checkpoint puts the whole values together, so it
/// resumes on any mesh.
struct ShardManifest {
  /// The mesh axes and sizes; per rank (file), its coordinates.
  std::vector<std::pair<std::string, int64_t>> mesh;
  std::vector<std::vector<int64_t>> coordinates;
  /// Every value, whole, with its sharding ("" when replicated,
  /// "AXIS:flat" or "AXIS:mean").
  struct Value {
    ValueSignature whole;
    std::string sharding;
  };
  std::vector<Value> values;
};
/// "rank-00003.ckpt".
std::string shardFileName(int64_t rank);
bool beginShardedCheckpoint(const std::string &dir, uint64_t step,
                            std::string &error);
bool writeCheckpointShard(const std::string &dir, int64_t rank,
                          const Checkpoint &shard, std::string &error);
/// Sets `path` to the committed checkpoint.
bool commitShardedCheckpoint(const std::string &dir, uint64_t step,
                             const ShardManifest &manifest, std::string &path,
                             std::string &error);
} // namespace trainopt::rt

#endif // TRAINOPT_RUNTIME_CHECKPOINT_H
