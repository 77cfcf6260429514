// RUN: trainopt-opt %s -trainopt-build-train-step -trainopt-lr-schedule="lr=0.1 lr-schedule=exponential gamma=0.5" | FileCheck %s
// RUN: not trainopt-opt %s -trainopt-build-train-step -trainopt-lr-schedule="lr-schedule=step" 2>&1 | FileCheck %s --check-prefix=STEP
// RUN: not trainopt-opt %s -trainopt-build-train-step -trainopt-lr-schedule="gamma=0.5" 2>&1 | FileCheck %s --check-prefix=GAMMA

// @lr_schedule(updates) = 0.1 * 0.5^updates, in the loss's element type.
// CHECK-LABEL: func.func private @lr_schedule(%arg0: tensor<i64>) -> tensor<f32>
// CHECK: %[[S:.*]] = trainopt.cast %arg0 : tensor<i64> to tensor<f32>
// CHECK: %[[LR:.*]] = trainopt.constant dense<1.000000e-01> : tensor<f32>
// CHECK: %[[G:.*]] = trainopt.constant dense<5.000000e-01> : tensor<f32>
// CHECK: %[[P:.*]] = trainopt.pow %[[G]], %[[S]]
// CHECK: %[[R:.*]] = trainopt.mul %[[LR]], %[[P]]
// CHECK: return %[[R]] : tensor<f32>

// STEP: error: --step-size: is required by, and only by, --lr-schedule=step
// GAMMA: error: --gamma: applies to step, multistep and exponential
trainopt.parameter @w trainable : tensor<3x4xf32> = dense<0.1> : tensor<3x4xf32>
trainopt.parameter @g trainable : tensor<3xf32> = dense<1.0> : tensor<3xf32>
trainopt.parameter @b trainable : tensor<3xf32> = dense<0.0> : tensor<3xf32>
trainopt.parameter @rm frozen : tensor<3xf32> = dense<0.0> : tensor<3xf32>
trainopt.parameter @rv frozen : tensor<3xf32> = dense<1.0> : tensor<3xf32>
func.func @forward(%w: tensor<3x4xf32> {trainopt.param = @w}, %g: tensor<3xf32> {trainopt.param = @g}, %b: tensor<3xf32> {trainopt.param = @b},
                   %rm: tensor<3xf32> {trainopt.param = @rm}, %rv: tensor<3xf32> {trainopt.param = @rv},
                   %x: tensor<5x4xf32> {trainopt.input = "x"}, %y: tensor<5xi64> {trainopt.input = "labels"})
    -> (tensor<5x3xf32> {trainopt.output = "logits"}, tensor<f32> {trainopt.output = "loss", trainopt.role = #trainopt<role loss>}) {
  %0 = trainopt.matmul %x, %w {transpose_rhs = true} : (tensor<5x4xf32>, tensor<3x4xf32>) -> tensor<5x3xf32>
  %1 = trainopt.batch_norm_inference %0, %g, %b, %rm, %rv : tensor<5x3xf32>, tensor<3xf32>
  %s = trainopt.constant dense<3> : tensor<i64>
  %2, %m = trainopt.dropout %1, %s {ratio = 0.2 : f64} : tensor<5x3xf32>, tensor<i64> -> tensor<5x3xi1>
  %l = trainopt.cross_entropy %2, %y {reduction = #trainopt<reduction mean>} : (tensor<5x3xf32>, tensor<5xi64>) -> tensor<f32>
  return %2, %l : tensor<5x3xf32>, tensor<f32>
}
