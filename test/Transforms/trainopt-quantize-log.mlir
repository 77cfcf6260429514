// trainopt-quantize with log:BITS: each conv and matmul weight W is read as
// power-of-two levels of a trainable latent weight W.latent: sign(l)
// 2^min(k, hi) with k = round(log2 |l|), hi that of the largest |l| of the
// output channel (or tensor), and 0 where k < hi - (2^(BITS-1) - 2); the
// read is q + (l - stop(l)), so the forward sees q and the gradient goes
// straight through to the latent weight. W becomes state holding q.
// RUN: trainopt-opt %s -trainopt-quantize="quantize=log:3" | FileCheck %s
// RUN: trainopt-opt %s -trainopt-quantize="quantize=log:3" -trainopt-attach-loss="loss=mse" -trainopt-build-train-step | FileCheck %s --check-prefix=GRAD
// RUN: trainopt-opt %s -trainopt-quantize="quantize=log:3 quantize-granularity=per-tensor" | FileCheck %s --check-prefix=TENSOR
// RUN: not trainopt-opt %s -trainopt-quantize="quantize=log:9" 2>&1 | FileCheck %s --check-prefix=TOOMANY

// Row 0: the largest is 1 (hi 0, levels 1, 1/2, 1/4): 1 -> 1, 0.3 ->
// 2^-2, -0.05 (2^-4) and 0 -> 0. Row 1: 6 gives hi = round(2.58) = 3
// (levels 8, 4, 2): 0.7 -> 0, -2.9 -> -4 (2^1.54), 0.011 -> 0, 6 -> 8.
// CHECK: module attributes {trainopt.log_quantization = [{axis = 0 : i64, bits = 3 : i64, latent = "fc.weight.latent", weight = "fc.weight"}]}
// CHECK: trainopt.parameter @fc.weight frozen : tensor<2x4xf32> = dense<{{\[\[}}1.000000e+00, 2.500000e-01, 0.000000e+00, 0.000000e+00], [0.000000e+00, -4.000000e+00, 0.000000e+00, 8.000000e+00]]>
// CHECK: trainopt.parameter @fc.weight.latent trainable : tensor<2x4xf32> = dense<{{\[\[}}1.000000e+00, 3.000000e-01, -5.000000e-02, 0.000000e+00], [0.699999988, -2.900000e+00, 1.100000e-02, 6.000000e+00]]>
// CHECK-LABEL: func.func @forward(
// CHECK-SAME: %[[W:[a-z0-9]+]]: tensor<2x4xf32> {trainopt.param = @fc.weight}
// CHECK-SAME: %[[L:[a-z0-9]+]]: tensor<2x4xf32> {trainopt.param = @fc.weight.latent}
// CHECK: %[[A:.*]] = trainopt.abs %[[L]]
// CHECK: trainopt.reduce_max %[[A]] {axes = array<i64: 1>, keepdims = true} : (tensor<2x4xf32>) -> tensor<2x1xf32>
// CHECK: trainopt.log
// CHECK: trainopt.pow
// CHECK: %[[Q:.*]] = trainopt.where {{.*}} {trainopt.stop_gradient}
// CHECK: %[[S:.*]] = trainopt.mul %[[L]], %{{.*}} {trainopt.stop_gradient}
// CHECK: %[[D:.*]] = trainopt.sub %[[L]], %[[S]]
// CHECK: %[[R:.*]] = trainopt.add %[[Q]], %[[D]]
// CHECK: trainopt.matmul %{{.*}}, %[[R]] {transpose_rhs = true}
// CHECK: trainopt.assign %[[W]], %[[Q]] {trainopt.derived} : tensor<2x4xf32>

// Straight through: the latent weight's gradient is the matmul's weight
// gradient; nothing of the levels' arithmetic is differentiated.
// GRAD-LABEL: func.func @forward_train_grad(
// GRAD-NOT: trainopt.reciprocal
// GRAD-NOT: trainopt.div
// GRAD: return
// GRAD-LABEL: func.func @train_step(
// GRAD-SAME: {trainopt.grad_of = @fc.weight.latent, trainopt.role = #trainopt<role gradient>}

// One range for the tensor: hi = 3 for all; 1 -> 1 (k = 0 < 1 -> 0 too).
// TENSOR: {axis = -1 : i64, bits = 3 : i64
// TENSOR: trainopt.parameter @fc.weight frozen : tensor<2x4xf32> = dense<{{\[\[}}0.000000e+00, 0.000000e+00, 0.000000e+00, 0.000000e+00], [0.000000e+00, -4.000000e+00, 0.000000e+00, 8.000000e+00]]>
// TENSOR: trainopt.reduce_max %{{.*}} : (tensor<2x4xf32>) -> tensor<1x1xf32>

// TOOMANY: error: --quantize: log:BITS needs 2 <= BITS <= 8, got 'log:9'

trainopt.parameter @fc.weight trainable : tensor<2x4xf32> = dense<[[1.0, 0.3, -0.05, 0.0], [0.7, -2.9, 0.011, 6.0]]> : tensor<2x4xf32>
func.func @forward(%w: tensor<2x4xf32> {trainopt.param = @fc.weight},
                   %x: tensor<3x4xf32> {trainopt.input = "x"}) -> tensor<3x2xf32> {
  %y = trainopt.matmul %x, %w {transpose_rhs = true} : (tensor<3x4xf32>, tensor<2x4xf32>) -> tensor<3x2xf32>
  return %y : tensor<3x2xf32>
}
