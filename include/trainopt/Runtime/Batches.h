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

class BatchStream {
public:
  /// Checks that `x` and `y` have the same number of samples and at least
  /// one full batch; fails with a message otherwise.
  static bool create(Array x, Array y, int64_t batchSize, bool shuffle,
                     uint64_t seed, Normalization norm, BatchStream &out,
                     std::string &error);

  int64_t batchSize() const { return batchSize_; }
  int64_t batchesPerEpoch() const { return samples_ / batchSize_; }
  /// Elements of one sample of x (and of y).
  int64_t xSampleSize() const { return xSample_; }
  int64_t ySampleSize() const { return ySample_; }

  /// Writes the next batch, x normalized (in double, then stored as
  /// `xType`: data that needs no normalization arrives exactly as stored
  /// whenever `xType` can hold it) and y as `yType`, and advances, starting
  /// a new shuffled epoch when one ends.
  void next(void *x, DType xType, void *y, DType yType);
  BatchPosition position() const { return pos_; }
  /// Continues from `pos` exactly as an uninterrupted stream would.
  void seek(BatchPosition pos);

private:
  void shuffleEpoch();
  Array x_, y_;
  int64_t batchSize_ = 1, samples_ = 0, xSample_ = 1, ySample_ = 1;
  bool shuffle_ = true;
  uint64_t seed_ = 0;
  Normalization norm_;
  BatchPosition pos_;
  std::vector<int64_t> order_;
};

} // namespace trainopt::rt

#endif // TRAINOPT_RUNTIME_BATCHES_H
