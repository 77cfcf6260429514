// trainopt-low-rank: weights replaced by two trainable factors from the SVD
// of their initial values; convolutions become a k x k convolution to r
// channels and a 1 x 1 one.
// RUN: trainopt-opt %s -trainopt-low-rank="low-rank=energy:0.99" | FileCheck %s
// RUN: trainopt-opt %s -trainopt-low-rank="low-rank=rank:1 low-rank-layers=conv.*,head.*" | FileCheck %s --check-prefix=RANK1
// RUN: not trainopt-opt %s -trainopt-low-rank="low-rank=energy:1.5" 2>&1 | FileCheck %s --check-prefix=BAD
// RUN: not trainopt-opt %s -trainopt-low-rank="low-rank-layers=fc.*" 2>&1 | FileCheck %s --check-prefix=ALONE

// A constant filter has rank 1 (72 weights become 4 + 18); fc.weight =
// diag(4, 2, 0.01, ...): rank 2 keeps 99.997% of the energy;
// no Jacobi rotation is needed, so U sqrt(S) and sqrt(S) V^T are 2 e1 and
// sqrt(2) e2. The 2 x 2 weight saves nothing at rank 1 and stays.
// CHECK: module attributes {trainopt.low_rank = [
// CHECK-SAME: {factored = true, flops_after = 792 : i64, flops_before = 2592 : i64, kind = "conv", params_after = 22 : i64, params_before = 72 : i64, rank = 1 : i64, weight = "conv.weight"}
// CHECK-SAME: {factored = true, flops_after = 128 : i64, flops_before = 256 : i64, kind = "matmul", params_after = 32 : i64, params_before = 64 : i64, rank = 2 : i64, weight = "fc.weight"}
// CHECK-SAME: {factored = false, {{.*}}kind = "matmul", params_after = 4 : i64, params_before = 4 : i64, rank = 2 : i64, weight = "small.weight"}
// CHECK-NOT: trainopt.parameter @fc.weight trainable
// CHECK: trainopt.parameter @fc.weight.u trainable : tensor<8x2xf32> = dense<{{\[\[}}2.000000e+00, 0.000000e+00], [0.000000e+00, 1.41421354], [0.000000e+00, 0.000000e+00]
// CHECK: trainopt.parameter @fc.weight.v trainable : tensor<2x8xf32> = dense<{{\[\[}}2.000000e+00, 0.000000e+00, {{.*}}], [0.000000e+00, 1.41421354, 0.000000e+00
// CHECK-LABEL: func.func @forward(
// CHECK-NOT: @fc.weight}
// CHECK-SAME: %[[U:[a-z0-9]+]]: tensor<8x2xf32> {trainopt.param = @fc.weight.u}
// CHECK-SAME: %[[V:[a-z0-9]+]]: tensor<2x8xf32> {trainopt.param = @fc.weight.v}
// x W = (x U) V.
// CHECK: %[[XU:.*]] = trainopt.matmul %{{.*}}, %[[U]] : (tensor<2x8xf32>, tensor<8x2xf32>) -> tensor<2x2xf32>
// CHECK: trainopt.matmul %[[XU]], %[[V]] : (tensor<2x2xf32>, tensor<2x8xf32>) -> tensor<2x8xf32>

// Rank 1 on the chosen layers only: the conv [4, 2, 3, 3] as [4, 18].
// RANK1-NOT: fc.weight.u
// RANK1: trainopt.parameter @conv.weight.u trainable : tensor<4x1x1x1xf32>
// RANK1: trainopt.parameter @conv.weight.v trainable : tensor<1x2x3x3xf32>
// RANK1: trainopt.parameter @head.weight.u trainable : tensor<3x1xf32>
// RANK1: trainopt.parameter @head.weight.v trainable : tensor<1x8xf32>
// RANK1-LABEL: func.func @forward(
// RANK1-SAME: %[[B:[a-z0-9]+]]: tensor<4xf32> {trainopt.param = @conv.bias}
// RANK1-SAME: %[[CU:[a-z0-9]+]]: tensor<4x1x1x1xf32> {trainopt.param = @conv.weight.u}
// RANK1-SAME: %[[CV:[a-z0-9]+]]: tensor<1x2x3x3xf32> {trainopt.param = @conv.weight.v}
// RANK1-SAME: %[[HU:[a-z0-9]+]]: tensor<3x1xf32> {trainopt.param = @head.weight.u}
// RANK1-SAME: %[[HV:[a-z0-9]+]]: tensor<1x8xf32> {trainopt.param = @head.weight.v}
// The k x k convolution to 1 channel keeps the strides and padding; the
// 1 x 1 one adds the bias.
// RANK1: %[[C1:.*]] = trainopt.conv %{{.*}}, %[[CV]] {dilations = array<i64: 1, 1>, padding = array<i64: 1, 1, 1, 1>, strides = array<i64: 2, 2>} : (tensor<2x2x5x5xf32>, tensor<1x2x3x3xf32>) -> tensor<2x1x3x3xf32>
// RANK1: trainopt.conv %[[C1]], %[[CU]], %[[B]] {dilations = array<i64: 1, 1>, padding = array<i64: 0, 0, 0, 0>, strides = array<i64: 1, 1>} : (tensor<2x1x3x3xf32>, tensor<4x1x1x1xf32>, tensor<4xf32>) -> tensor<2x4x3x3xf32>
// The head reads its [3, 8] weight transposed: x W^T = (x V^T) U^T.
// RANK1: %[[H1:.*]] = trainopt.matmul %{{.*}}, %[[HV]] {transpose_rhs = true} : (tensor<2x8xf32>, tensor<1x8xf32>) -> tensor<2x1xf32>
// RANK1: trainopt.matmul %[[H1]], %[[HU]] {transpose_rhs = true} : (tensor<2x1xf32>, tensor<3x1xf32>) -> tensor<2x3xf32>

// BAD: error: --low-rank: energy:E needs 0 < E <= 1, got 'energy:1.5'
// ALONE: error: --low-rank-layers: needs --low-rank

trainopt.parameter @conv.weight trainable : tensor<4x2x3x3xf32> = dense<0.5> : tensor<4x2x3x3xf32>
trainopt.parameter @conv.bias trainable : tensor<4xf32> = dense<0.0> : tensor<4xf32>
trainopt.parameter @head.weight trainable : tensor<3x8xf32> = dense<0.25> : tensor<3x8xf32>
trainopt.parameter @fc.weight trainable : tensor<8x8xf32> = dense<[[4.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0], [0.0, 2.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0], [0.0, 0.0, 0.01, 0.0, 0.0, 0.0, 0.0, 0.0], [0.0, 0.0, 0.0, 0.01, 0.0, 0.0, 0.0, 0.0], [0.0, 0.0, 0.0, 0.0, 0.01, 0.0, 0.0, 0.0], [0.0, 0.0, 0.0, 0.0, 0.0, 0.01, 0.0, 0.0], [0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.01, 0.0], [0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.01]]> : tensor<8x8xf32>
trainopt.parameter @small.weight trainable : tensor<2x2xf32> = dense<[[1.0, 0.5], [0.5, 1.0]]> : tensor<2x2xf32>
func.func @forward(%cw: tensor<4x2x3x3xf32> {trainopt.param = @conv.weight},
                   %cb: tensor<4xf32> {trainopt.param = @conv.bias},
                   %hw: tensor<3x8xf32> {trainopt.param = @head.weight},
                   %fw: tensor<8x8xf32> {trainopt.param = @fc.weight},
                   %sw: tensor<2x2xf32> {trainopt.param = @small.weight},
                   %x: tensor<2x2x5x5xf32> {trainopt.input = "x"},
                   %z: tensor<2x8xf32> {trainopt.input = "z"},
                   %s: tensor<2x2xf32> {trainopt.input = "s"})
    -> (tensor<2x4x3x3xf32>, tensor<2x3xf32>, tensor<2x8xf32>, tensor<2x2xf32>) {
  %c = trainopt.conv %x, %cw, %cb {dilations = array<i64: 1, 1>, padding = array<i64: 1, 1, 1, 1>, strides = array<i64: 2, 2>}
      : (tensor<2x2x5x5xf32>, tensor<4x2x3x3xf32>, tensor<4xf32>) -> tensor<2x4x3x3xf32>
  %h = trainopt.matmul %z, %hw {transpose_rhs = true} : (tensor<2x8xf32>, tensor<3x8xf32>) -> tensor<2x3xf32>
  %f = trainopt.matmul %z, %fw : (tensor<2x8xf32>, tensor<8x8xf32>) -> tensor<2x8xf32>
  %t = trainopt.matmul %s, %sw : (tensor<2x2xf32>, tensor<2x2xf32>) -> tensor<2x2xf32>
  return %c, %h, %f, %t : tensor<2x4x3x3xf32>, tensor<2x3xf32>, tensor<2x8xf32>, tensor<2x2xf32>
}
