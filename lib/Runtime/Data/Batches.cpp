//===- Batches.cpp - shuffled fixed-size batches
//---------------------------===//
//
/// \file
/// The shuffle is Fisher-Yates driven by std::mt19937_64 (whose output the
/// C++ standard fixes) seeded with seed + epoch, with `draw % (i + 1)`
/// rather than std::uniform_int_distribution, whose algorithm is
/// implementation-defined: the order must be the same on every machine so
/// that a resumed run repeats an uninterrupted one.
//
//===----------------------------------------------------------------------===//

#include "trainopt/Runtime/Batches.h"

#include <numeric>
#include <random>

using namespace trainopt::rt;

bool BatchStream::create(Array x, Array y, int64_t batchSize, bool shuffle,
                         uint64_t seed, Normalization norm, BatchStream &out,
                         std::string &error) {
  if (x.shape.empty() || y.shape.empty()) {
    error = "inputs and labels need a sample axis";
    return false;
  }
  if (x.shape[0] != y.shape[0]) {
    error = "inputs have " + std::to_string(x.shape[0]) + " samples, labels " +
            std::to_string(y.shape[0]);
    return false;
  }
  if (batchSize < 1 || x.shape[0] < batchSize) {
    error = "batch size " + std::to_string(batchSize) +
            " needs at least that "
            "many samples, the data has " +
            std::to_string(x.shape[0]);
    return false;
  }
  if (norm.std == 0.0) {
    error = "normalization std must not be 0";
    return false;
  }
  out = BatchStream();
  out.samples_ = x.shape[0];
  out.xSample_ = x.numElements() / out.samples_;
  out.ySample_ = y.numElements() / out.samples_;
  out.x_ = std::move(x);
  out.y_ = std::move(y);
  out.batchSize_ = batchSize;
  out.shuffle_ = shuffle;
  out.seed_ = seed;
  out.norm_ = norm;
  out.shuffleEpoch();
  return true;
}

void BatchStream::shuffleEpoch() {
  order_.resize(samples_);
  std::iota(order_.begin(), order_.end(), 0);
  if (!shuffle_)
    return;
  std::mt19937_64 rng(seed_ + pos_.epoch);
  for (int64_t i = samples_ - 1; i > 0; --i)
    std::swap(order_[i], order_[rng() % static_cast<uint64_t>(i + 1)]);
}

void BatchStream::next(void *x, DType xType, void *y, DType yType) {
  if (pos_.batch == batchesPerEpoch()) {
    ++pos_.epoch;
    pos_.batch = 0;
    shuffleEpoch();
  }
  auto *xb = static_cast<uint8_t *>(x);
  auto *yb = static_cast<uint8_t *>(y);
  for (int64_t b = 0; b < batchSize_; ++b) {
    int64_t sample = order_[pos_.batch * batchSize_ + b];
    for (int64_t k = 0; k < xSample_; ++k)
      storeElement(xb, xType, b * xSample_ + k,
                   norm_.apply(x_.at(sample * xSample_ + k)));
    for (int64_t k = 0; k < ySample_; ++k)
      storeElement(yb, yType, b * ySample_ + k,
                   static_cast<double>(y_.intAt(sample * ySample_ + k)));
  }
  ++pos_.batch;
}

void BatchStream::seek(BatchPosition pos) {
  pos_ = pos;
  shuffleEpoch();
}
