//===- BatchesTest.cpp - tests of the runtime's batch stream --------------===//

#include "trainopt/Runtime/Batches.h"

#include <gtest/gtest.h>

#include <cstring>

using namespace trainopt::rt;

namespace {

/// x[i] = [i, i + 0.5], y[i] = i % 10, for `n` samples.
void makeData(int64_t n, Array &x, Array &y) {
  x.shape = {n, 2};
  x.dtype = DType::F32;
  x.bytes.resize(n * 2 * 4);
  y.shape = {n};
  y.dtype = DType::U8;
  y.bytes.resize(n);
  for (int64_t i = 0; i < n; ++i) {
    float v[2] = {static_cast<float>(i), static_cast<float>(i) + 0.5f};
    std::memcpy(x.bytes.data() + i * 8, v, 8);
    y.bytes[i] = static_cast<uint8_t>(i % 10);
  }
}

std::vector<int64_t> epochOrder(BatchStream &s) {
  std::vector<int64_t> order;
  std::vector<float> x(s.batchSize() * 2);
  std::vector<int64_t> y(s.batchSize());
  for (int64_t b = 0; b < s.batchesPerEpoch(); ++b) {
    s.next(x.data(), DType::F32, y.data(), DType::I64);
    for (int64_t i = 0; i < s.batchSize(); ++i) {
      EXPECT_EQ(x[2 * i + 1], x[2 * i] + 0.5f);             // x rows stay whole
      EXPECT_EQ(y[i], static_cast<int64_t>(x[2 * i]) % 10); // labels follow
      order.push_back(static_cast<int64_t>(x[2 * i]));
    }
  }
  return order;
}

} // namespace

TEST(Batches, DropsTheLastPartialBatch) {
  Array x, y;
  makeData(23, x, y);
  BatchStream s;
  std::string error;
  ASSERT_TRUE(BatchStream::create(x, y, 5, true, 1, {}, s, error)) << error;
  EXPECT_EQ(s.batchesPerEpoch(), 4);
  std::vector<int64_t> order = epochOrder(s);
  EXPECT_EQ(order.size(), 20u);
  std::sort(order.begin(), order.end());
  EXPECT_EQ(std::unique(order.begin(), order.end()), order.end());
}

TEST(Batches, KeepsFileOrderWithoutShuffle) {
  Array x, y;
  makeData(6, x, y);
  BatchStream s;
  std::string error;
  ASSERT_TRUE(BatchStream::create(x, y, 3, false, 1, {}, s, error)) << error;
  EXPECT_EQ(epochOrder(s), (std::vector<int64_t>{0, 1, 2, 3, 4, 5}));
}

TEST(Batches, ShufflesPerEpochFromTheSeed) {
  Array x, y;
  makeData(40, x, y);
  BatchStream a, b, c;
  std::string error;
  ASSERT_TRUE(BatchStream::create(x, y, 8, true, 7, {}, a, error));
  ASSERT_TRUE(BatchStream::create(x, y, 8, true, 7, {}, b, error));
  ASSERT_TRUE(BatchStream::create(x, y, 8, true, 8, {}, c, error));
  std::vector<int64_t> a0 = epochOrder(a), b0 = epochOrder(b);
  EXPECT_EQ(a0, b0);
  EXPECT_NE(a0, epochOrder(c));
  EXPECT_NE(a0, epochOrder(a)); // the next epoch is another permutation
}

TEST(Batches, ResumeRepeatsAnUninterruptedRun) {
  Array x, y;
  makeData(30, x, y);
  BatchStream full, resumed;
  std::string error;
  ASSERT_TRUE(BatchStream::create(x, y, 4, true, 3, {}, full, error));
  ASSERT_TRUE(BatchStream::create(x, y, 4, true, 3, {}, resumed, error));
  std::vector<float> bx(8), rx(8);
  std::vector<int64_t> by(4), ry(4);
  BatchPosition saved;
  for (int step = 0; step < 25; ++step) {
    if (step == 11)
      saved = full.position();
    full.next(bx.data(), DType::F32, by.data(), DType::I64);
  }
  resumed.seek(saved);
  BatchStream replay;
  ASSERT_TRUE(BatchStream::create(x, y, 4, true, 3, {}, replay, error));
  for (int step = 0; step < 25; ++step) {
    replay.next(bx.data(), DType::F32, by.data(), DType::I64);
    if (step < 11)
      continue;
    resumed.next(rx.data(), DType::F32, ry.data(), DType::I64);
    EXPECT_EQ(bx, rx) << "step " << step;
    EXPECT_EQ(by, ry) << "step " << step;
  }
}

TEST(Batches, Normalizes) {
  Array x, y;
  makeData(2, x, y);
  BatchStream s;
  std::string error;
  ASSERT_TRUE(
      BatchStream::create(x, y, 2, false, 0, {0.5, 1.0, 2.0}, s, error));
  std::vector<float> bx(4);
  std::vector<int64_t> by(2);
  s.next(bx.data(), DType::F32, by.data(), DType::I64);
  EXPECT_FLOAT_EQ(bx[2], (1.0f * 0.5f - 1.0f) / 2.0f);
}

// Float64 data reaches a float64 input exactly (not through float32), and
// int32 labels are written as int32.
TEST(Batches, FeedsEveryDTypeExactly) {
  Array x, y;
  x.shape = {2, 1};
  x.dtype = DType::F64;
  double values[2] = {0.1, 1.0 + 0x1p-40};
  x.bytes.resize(sizeof(values));
  std::memcpy(x.bytes.data(), values, sizeof(values));
  y.shape = {2};
  y.dtype = DType::I64;
  int64_t labels[2] = {7, 3};
  y.bytes.resize(sizeof(labels));
  std::memcpy(y.bytes.data(), labels, sizeof(labels));
  BatchStream s;
  std::string error;
  ASSERT_TRUE(BatchStream::create(x, y, 2, false, 0, {}, s, error)) << error;
  double bx[2];
  int32_t by[2];
  s.next(bx, DType::F64, by, DType::I32);
  EXPECT_EQ(bx[0], 0.1);
  EXPECT_EQ(bx[1], 1.0 + 0x1p-40);
  EXPECT_EQ(by[0], 7);
  EXPECT_EQ(by[1], 3);
  float fx[2];
  s.next(fx, DType::F32, by, DType::I32);
  EXPECT_EQ(fx[0], 0.1f);
  EXPECT_EQ(fx[1], 1.0f);
}

TEST(Data, StoresHalfRoundedToNearestEven) {
  uint16_t h[6];
  double in[6] = {1.0, 65504.0, 65520.0, 0x1p-24, 1.0 + 0x1p-11, -0.0};
  for (int i = 0; i < 6; ++i)
    storeElement(reinterpret_cast<uint8_t *>(h), DType::F16, i, in[i]);
  EXPECT_EQ(h[0], 0x3c00);
  EXPECT_EQ(h[1], 0x7bff);
  EXPECT_EQ(h[2], 0x7c00); // rounds to infinity
  EXPECT_EQ(h[3], 0x0001); // smallest subnormal
  EXPECT_EQ(h[4], 0x3c00); // a tie rounds to even
  EXPECT_EQ(h[5], 0x8000);
  for (int i = 0; i < 6; ++i) {
    if (i != 2) {
      EXPECT_EQ(elementAsDouble(reinterpret_cast<uint8_t *>(h), DType::F16, i),
                in[i] == 1.0 + 0x1p-11 ? 1.0 : in[i]);
    }
  }
}

TEST(Batches, RejectsMismatchedData) {
  Array x, y;
  makeData(5, x, y);
  y.shape = {4};
  BatchStream s;
  std::string error;
  EXPECT_FALSE(BatchStream::create(x, y, 2, true, 0, {}, s, error));
  EXPECT_EQ(error, "inputs have 5 samples, labels 4");
  makeData(3, x, y);
  EXPECT_FALSE(BatchStream::create(x, y, 4, true, 0, {}, s, error));
  EXPECT_NE(error.find("batch size 4"), std::string::npos);
}

// bfloat16: the upper half of a float32, rounded once to nearest even from
// the double; NumPy has no bfloat16, so .npy files widen it to float32.
TEST(Data, StoresBfloat16RoundedToNearestEven) {
  uint16_t h[7];
  double in[7] = {1.0, 1.0 + 0x1p-8, 1.0 + 0x1p-8 + 0x1p-30, -2.5, 0x1p-133,
                  3.5e38, 0.0};
  for (int i = 0; i < 7; ++i)
    storeElement(reinterpret_cast<uint8_t *>(h), DType::BF16, i, in[i]);
  EXPECT_EQ(h[0], 0x3f80);
  EXPECT_EQ(h[1], 0x3f80); // a tie rounds to even
  EXPECT_EQ(h[2], 0x3f81); // just above the tie: up (float32 would round twice)
  EXPECT_EQ(h[3], 0xc020);
  EXPECT_EQ(h[4], 0x0001); // the smallest subnormal
  EXPECT_EQ(h[5], 0x7f80); // beyond the largest: infinity
  EXPECT_EQ(h[6], 0x0000);
  EXPECT_EQ(elementAsDouble(reinterpret_cast<uint8_t *>(h), DType::BF16, 3),
            -2.5);
  Array a;
  a.shape = {2};
  a.dtype = DType::BF16;
  a.bytes.assign(reinterpret_cast<uint8_t *>(h), reinterpret_cast<uint8_t *>(h) + 4);
  std::string npy = serializeNpy(a);
  EXPECT_NE(npy.find("'descr': '<f4'"), std::string::npos);
  Array back;
  std::string error;
  ASSERT_TRUE(parseNpy(reinterpret_cast<const uint8_t *>(npy.data()), npy.size(),
                       "x", back, error))
      << error;
  EXPECT_EQ(back.dtype, DType::F32);
  EXPECT_EQ(back.at(0), 1.0);
  EXPECT_EQ(back.at(1), 1.0);
}
