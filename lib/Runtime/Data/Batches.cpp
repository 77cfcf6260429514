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

double trainopt::rt::batchValue(const Array &src, int64_t i, bool normalize,
                                const Normalization &norm) {
  if (normalize)
    return norm.apply(src.at(i));
  return isFloat(src.dtype) ? src.at(i) : static_cast<double>(src.intAt(i));
}

bool BatchStream::create(std::vector<BatchColumn> columns, int64_t batchSize,
                         bool shuffle, uint64_t seed, Normalization norm,
                         BatchStream &out, std::string &error) {
  if (columns.empty()) {
    error = "no arrays to cut into batches";
    return false;
  }
  for (const BatchColumn &c : columns)
    if (c.data.shape.empty()) {
      error = "inputs and labels need a sample axis";
      return false;
    }
  int64_t samples = columns[0].data.shape[0];
  for (size_t i = 1; i < columns.size(); ++i)
    if (columns[i].data.shape[0] != samples) {
      error = "inputs have " + std::to_string(samples) + " samples, " +
              (columns.size() == 2 ? std::string("labels ")
                                   : "array " + std::to_string(i) + " ") +
              std::to_string(columns[i].data.shape[0]);
      return false;
    }
  if (batchSize < 1 || samples < batchSize) {
    error = "batch size " + std::to_string(batchSize) +
            " needs at least that "
            "many samples, the data has " +
            std::to_string(samples);
    return false;
  }
  if (norm.std == 0.0) {
    error = "normalization std must not be 0";
    return false;
  }
  out = BatchStream();
  out.samples_ = samples;
  for (const BatchColumn &c : columns)
    out.sampleSizes_.push_back(samples ? c.data.numElements() / samples : 0);
  out.columns_ = std::move(columns);
  out.batchSize_ = batchSize;
  out.shuffle_ = shuffle;
  out.seed_ = seed;
  out.norm_ = norm;
  out.shuffleEpoch();
  return true;
}

bool BatchStream::create(Array x, Array y, int64_t batchSize, bool shuffle,
                         uint64_t seed, Normalization norm, BatchStream &out,
                         std::string &error) {
  std::vector<BatchColumn> columns(2);
  columns[0] = {std::move(x), true};
  columns[1] = {std::move(y), false};
  return create(std::move(columns), batchSize, shuffle, seed, norm, out,
                error);
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

void BatchStream::next(const std::vector<BatchSlot> &slots) {
  if (pos_.batch == batchesPerEpoch()) {
    ++pos_.epoch;
    pos_.batch = 0;
    shuffleEpoch();
  }
  for (size_t c = 0; c < columns_.size() && c < slots.size(); ++c) {
    const BatchColumn &column = columns_[c];
    auto *dst = static_cast<uint8_t *>(slots[c].data);
    int64_t size = sampleSizes_[c];
    for (int64_t b = 0; b < batchSize_; ++b) {
      int64_t sample = order_[(pos_.batch * ranks_ + rank_) * batchSize_ + b];
      for (int64_t k = 0; k < size; ++k)
        storeElement(dst, slots[c].type, b * size + k,
                     batchValue(column.data, sample * size + k,
                                column.normalize, norm_));
    }
  }
  ++pos_.batch;
}

bool BatchStream::shard(int64_t rank, int64_t ranks, std::string &error) {
  if (ranks < 1 || rank < 0 || rank >= ranks) {
    error = "rank " + std::to_string(rank) + " of " + std::to_string(ranks);
    return false;
  }
  if (samples_ < batchSize_ * ranks) {
    error = "a global batch of " + std::to_string(batchSize_) + " x " +
            std::to_string(ranks) +
            " ranks needs at least that many "
            "samples, the data has " +
            std::to_string(samples_);
    return false;
  }
  rank_ = rank;
  ranks_ = ranks;
  return true;
}

void BatchStream::seek(BatchPosition pos) {
  pos_ = pos;
  shuffleEpoch();
}
