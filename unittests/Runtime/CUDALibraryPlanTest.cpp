//===- CUDALibraryPlanTest.cpp - how library calls map onto cuBLASLt/cuDNN ===//
//
/// \file
/// The host-side planning of the CUDA library (CUDALibraryPlan.h), which
/// needs no GPU: batch dims of a matmul as strided-batched GEMMs (checked
/// by enumerating every product's operand offsets against the descriptor's
/// broadcasting rule), and convolutions cuDNN can and cannot express.
//
//===----------------------------------------------------------------------===//

#include "trainopt/Runtime/CUDALibraryPlan.h"

#include <gtest/gtest.h>

#include <set>
#include <tuple>

using namespace trainopt::rt;

namespace {

using Ints = std::vector<int64_t>;

namespace calls = trainopt::calls;

calls::MatmulCall matmulCall(const Ints &out, const Ints &lhs, const Ints &rhs,
                             int64_t m, int64_t n, int64_t k) {
  calls::MatmulCall call;
  call.outBatch = out, call.lhsBatch = lhs, call.rhsBatch = rhs;
  call.m = m, call.n = n, call.k = k;
  return call;
}

/// Every product's (out, lhs, rhs) element offsets, as the descriptor
/// defines them (CPULibrary.h) and as the plan enumerates them.
void expectPlanCovers(const Ints &out, const Ints &lhs, const Ints &rhs) {
  int64_t m = 3, n = 5, k = 7;
  MatmulBatchPlan plan =
      planMatmulBatches(matmulCall(out, lhs, rhs, m, n, k));
  std::multiset<std::tuple<int64_t, int64_t, int64_t>> expected, actual;
  int64_t batch = 1;
  for (int64_t d : out)
    batch *= d;
  for (int64_t b = 0; b < batch; ++b) {
    int64_t rest = b, lo = 0, ro = 0, lstride = m * k, rstride = k * n;
    for (int64_t d = static_cast<int64_t>(out.size()) - 1; d >= 0; --d) {
      int64_t i = rest % out[d];
      rest /= out[d];
      lo += (lhs[d] == 1 ? 0 : i) * lstride;
      ro += (rhs[d] == 1 ? 0 : i) * rstride;
      lstride *= lhs[d];
      rstride *= rhs[d];
    }
    expected.insert({b * m * n, lo, ro});
  }
  for (const auto &o : plan.offsets)
    for (int64_t i = 0; i < plan.batch; ++i)
      actual.insert({o[0] + i * plan.strideOut, o[1] + i * plan.strideLhs,
                     o[2] + i * plan.strideRhs});
  EXPECT_EQ(actual, expected);
}

TEST(CUDALibraryPlanTest, MatmulWithoutBatchIsOneGemm) {
  MatmulBatchPlan plan =
      planMatmulBatches(matmulCall({}, {}, {}, 4, 5, 6));
  EXPECT_EQ(plan.batch, 1);
  EXPECT_EQ(plan.offsets.size(), 1u);
}

TEST(CUDALibraryPlanTest, MatmulBatchesMergeIntoOneCall) {
  // Same batch dims everywhere, and a fully broadcast rhs: one call.
  MatmulBatchPlan a =
      planMatmulBatches(matmulCall({2, 3}, {2, 3}, {2, 3}, 4, 5, 6));
  EXPECT_EQ(a.batch, 6);
  EXPECT_EQ(a.offsets.size(), 1u);
  EXPECT_EQ(a.strideOut, 20);
  EXPECT_EQ(a.strideLhs, 24);
  EXPECT_EQ(a.strideRhs, 30);
  MatmulBatchPlan b =
      planMatmulBatches(matmulCall({2, 3}, {2, 3}, {1, 1}, 4, 5, 6));
  EXPECT_EQ(b.batch, 6);
  EXPECT_EQ(b.strideRhs, 0);
  EXPECT_EQ(b.offsets.size(), 1u);
  // Unit batch dims vanish.
  MatmulBatchPlan c = planMatmulBatches(
      matmulCall({1, 4, 1}, {1, 4, 1}, {1, 1, 1}, 2, 2, 2));
  EXPECT_EQ(c.batch, 4);
  EXPECT_EQ(c.offsets.size(), 1u);
}

TEST(CUDALibraryPlanTest, MixedBroadcastLoopsOverOuterDims) {
  MatmulBatchPlan p =
      planMatmulBatches(matmulCall({2, 3}, {2, 1}, {1, 3}, 4, 5, 6));
  EXPECT_EQ(p.batch, 3);
  EXPECT_EQ(p.offsets.size(), 2u);
  EXPECT_EQ(p.strideLhs, 0);
}

TEST(CUDALibraryPlanTest, MatmulPlansCoverEveryProduct) {
  const std::vector<std::tuple<Ints, Ints, Ints>> cases = {
      {{2, 3}, {2, 1}, {1, 3}},
      {{2, 3}, {1, 3}, {2, 3}},
      {{4}, {1}, {4}},
      {{2, 2}, {1, 1}, {1, 1}},
      {{2, 3, 4}, {2, 1, 4}, {2, 3, 4}},
      {{3, 1, 2}, {3, 1, 1}, {1, 1, 2}},
      {{5}, {5}, {5}}};
  for (const auto &[out, lhs, rhs] : cases) {
    SCOPED_TRACE(::testing::PrintToString(out) + " " +
                 ::testing::PrintToString(lhs) + " " +
                 ::testing::PrintToString(rhs));
    expectPlanCovers(out, lhs, rhs);
  }
}

calls::ConvCall convCall(int64_t s, const Ints &in, const Ints &k,
                         const Ints &out, const Ints &stride, const Ints &padB,
                         const Ints &padE) {
  calls::ConvCall call;
  call.n = 2, call.cin = 3, call.cout = 4, call.groups = 1;
  calls::Window &w = call.window;
  w.rank = s;
  for (int64_t d = 0; d < s; ++d) {
    w.in[d] = in[d], w.kernel[d] = k[d], w.out[d] = out[d];
    w.strides[d] = stride[d], w.dilations[d] = 1;
    w.padBegin[d] = padB[d], w.padEnd[d] = padE[d];
  }
  return call;
}

TEST(CUDALibraryPlanTest, ConvSymmetricPadding) {
  ConvPlan plan;
  std::string error;
  ASSERT_TRUE(planConv(
      convCall(2, {8, 8}, {3, 3}, {8, 8}, {1, 1}, {1, 1}, {1, 1}), plan,
      error))
      << error;
  EXPECT_EQ(plan.dims, 2);
  EXPECT_EQ(plan.pad[0], 1);
  EXPECT_EQ(plan.out[1], 8);
}

TEST(CUDALibraryPlanTest, Conv1DGetsALeadingUnitDim) {
  ConvPlan plan;
  std::string error;
  ASSERT_TRUE(
      planConv(convCall(1, {10}, {3}, {4}, {2}, {0}, {0}), plan, error))
      << error;
  EXPECT_EQ(plan.dims, 2);
  EXPECT_EQ(plan.in[0], 1);
  EXPECT_EQ(plan.kernel[0], 1);
  EXPECT_EQ(plan.in[1], 10);
  EXPECT_EQ(plan.out[1], 4);
}

TEST(CUDALibraryPlanTest, AsymmetricPaddingThatChangesNothingIsAccepted) {
  // Stride 2 over 8 with pads 0/1 (SAME_UPPER): cuDNN's 0/0 gives the same
  // 4 windows, the extra end padding is never read.
  ConvPlan plan;
  std::string error;
  EXPECT_TRUE(planConv(
      convCall(2, {8, 8}, {2, 2}, {4, 4}, {2, 2}, {0, 0}, {1, 1}), plan,
      error))
      << error;
}

TEST(CUDALibraryPlanTest, AsymmetricPaddingCuDNNCannotExpressIsRefused) {
  ConvPlan plan;
  std::string error;
  EXPECT_FALSE(planConv(
      convCall(2, {8, 8}, {3, 3}, {8, 8}, {1, 1}, {2, 2}, {0, 0}), plan,
      error));
  EXPECT_NE(error.find("not symmetric enough for cuDNN"), std::string::npos)
      << error;
}

} // namespace
