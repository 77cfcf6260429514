// RUN: trainopt-opt %s -trainopt-build-eval-step | FileCheck %s

// @eval_step: the model in inference mode, same signature; dropout is gone
// (its mask all true), BatchNorm reads the running statistics.
// CHECK-LABEL: func.func @eval_step(
// CHECK-SAME: -> (tensor<5x3xf32> {trainopt.output = "logits"}, tensor<f32> {trainopt.output = "loss", trainopt.role = #trainopt<role loss>})
// CHECK-NOT: trainopt.dropout
// CHECK: trainopt.batch_norm_inference
// CHECK-NOT: trainopt.dropout
// CHECK: return
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
