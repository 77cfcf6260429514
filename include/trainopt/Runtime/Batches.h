//===- Batches.h - shuffled fixed-size batches for training -----*- C++ -*-===//
//
/// \file
/// Cuts a dataset (inputs `x` with samples on the first axis, labels `y`)
/// into fixed-size batches, shuffled per epoch from a seed, dropping the
/// last partial batch. The order is a pure function of (seed, epoch), and
/// the position (epoch, batch) is all a checkpoint needs to resume the same
/// sequence. No MLIR: part of the runtime.
//
//===----------------------------------------------------------------------===//

#ifndef TRAINOPT_RUNTIME_BATCHES_H
#define TRAINOPT_RUNTIME_BATCHES_H

#include "trainopt/Runtime/Data.h"

#include <cstdint>
#include <string>
#include <vector>

namespace trainopt::rt {

/// Input normalization: x' = (x * scale - mean) / std.
struct Normalization {
  double scale = 1.0, mean = 0.0, std = 1.0;
  /// x', in double: the identity normalization returns x unchanged.
  double apply(double x) const { return (x * scale - mean) / std; }
};

/// Where a batch stream stands: batches of `epoch` before `batch` are done.
struct BatchPosition {
  uint64_t epoch = 0;
  int64_t batch = 0;
  bool operator==(const BatchPosition &o) const {
    return epoch == o.epoch && batch == o.batch;
  }
};

/// Element `i` of `src`, as a batch holds it: normalized in double when
/// `normalize`, otherwise exactly (integers through intAt). Training batches
/// and evaluation rows both use it, so evaluation sees what training sees.
double batchValue(const Array &src, int64_t i, bool normalize,
                  const Normalization &norm);

/// One array a stream cuts into batches (samples on the first axis), and
/// whether its values are normalized on the way in.
struct BatchColumn {
  Array data;
  bool normalize = false;
};

/// Where a column's batch goes: a buffer of `type`.
struct BatchSlot {
  void *data = nullptr;
  DType type = DType::F32;
};

class BatchStream {
public:
  /// Checks that every column has a sample axis, that they have the same
  /// number of samples and at least one full batch; fails with a message
  /// otherwise.
  static bool create(std::vector<BatchColumn> columns, int64_t batchSize,
                     bool shuffle, uint64_t seed, Normalization norm,
                     BatchStream &out, std::string &error);
  /// Inputs `x` (normalized) and labels `y`.
  static bool create(Array x, Array y, int64_t batchSize, bool shuffle,
                     uint64_t seed, Normalization norm, BatchStream &out,
                     std::string &error);

  /// Makes this stream rank `rank`'s share of `ranks` data-parallel
  /// ranks: a (global) batch is `ranks` local batches of the same shuffled
  /// order, and this stream feeds the `rank`-th (samples [rank * B,
  /// (rank + 1) * B) of each global batch). Positions count global
  /// batches, so every rank, and a one-process run with the global batch
  /// size, walk the same sequence. Fails when an epoch holds no global
  /// batch.
  bool shard(int64_t rank, int64_t ranks, std::string &error);

  int64_t batchSize() const { return batchSize_; }
  int64_t batchesPerEpoch() const { return samples_ / (batchSize_ * ranks_); }
  size_t numColumns() const { return columns_.size(); }
  /// Elements of one sample of column `i`.
  int64_t sampleSize(size_t i) const { return sampleSizes_[i]; }

  /// Writes the next batch of column i into `slots[i]`, normalized (in
  /// double, then stored once as the slot's type) where the column says
  /// so: data that needs no normalization arrives exactly as stored
  /// whenever the slot's type can hold it. Advances, starting a new
  /// shuffled epoch when one ends.
  void next(const std::vector<BatchSlot> &slots);
  /// The same for inputs and labels.
  void next(void *x, DType xType, void *y, DType yType) {
    next({{x, xType}, {y, yType}});
  }
  BatchPosition position() const { return pos_; }
  /// Continues from `pos` exactly as an uninterrupted stream would.
  void seek(BatchPosition pos);

private:
  void shuffleEpoch();
  std::vector<BatchColumn> columns_;
  std::vector<int64_t> sampleSizes_;
  int64_t batchSize_ = 1, samples_ = 0;
  int64_t rank_ = 0, ranks_ = 1;
  bool shuffle_ = true;
  uint64_t seed_ = 0;
  Normalization norm_;
  BatchPosition pos_;
  std::vector<int64_t> order_;
};

} // namespace trainopt::rt

#endif // TRAINOPT_RUNTIME_BATCHES_H
