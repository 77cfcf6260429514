// trainopt.assign, the model's own state updates (an observer's running
// mean here): trainopt-build-train-step makes the assigned value a result of
// the step that updates the frozen parameter's argument in place, as
// BatchNorm's statistics are, while the forward reads the old value; the
// gradient function gets no assign and no gradient for the state; the eval
// step drops it.
// RUN: trainopt-opt %s -trainopt-build-train-step | FileCheck %s
// RUN: trainopt-opt %s -trainopt-build-eval-step | FileCheck %s --check-prefix=EVAL
// RUN: trainopt-opt %s -trainopt-build-train-step -trainopt-transform-gradients -trainopt-lr-schedule -trainopt-apply-optimizer -trainopt-build-eval-step | FileCheck %s --check-prefix=STEP

// CHECK-LABEL: func.func @forward_train(
// CHECK-SAME: %[[AVG:[a-z0-9]+]]: tensor<6xf32> {trainopt.param = @avg}
// CHECK-SAME: tensor<6xf32> {trainopt.updates = 1 : i64})
// CHECK: %[[NEW:.*]] = trainopt.add %[[AVG]], %{{.*}} : (tensor<6xf32>, tensor<6xf32>) -> tensor<6xf32>
// CHECK-NOT: trainopt.assign
// CHECK: trainopt.mul %{{.*}}, %[[AVG]]
// CHECK: return %{{.*}}, %[[NEW]]
// CHECK-LABEL: func.func @forward_train_grad(
// CHECK-NOT: trainopt.assign
// EVAL-LABEL: func.func @eval_step(
// EVAL-SAME: -> (tensor<f32> {trainopt.output = "loss", trainopt.role = #trainopt<role loss>})
// EVAL-NOT: trainopt.assign
// EVAL: return %{{[0-9]+}} : tensor<f32>
// The state is no BatchNorm statistic: it gets no num_batches_tracked
// counter, and the step updates it in place.
// STEP-LABEL: func.func @train_step(
// STEP-NOT: num_batches_tracked
// STEP-SAME: tensor<6xf32> {trainopt.updates = 1 : i64}
// STEP-NOT: trainopt.assign
// STEP: return
trainopt.parameter @w trainable : tensor<6xf32> = dense<1.0> : tensor<6xf32>
trainopt.parameter @avg frozen : tensor<6xf32> = dense<0.5> : tensor<6xf32>
func.func @forward(%w: tensor<6xf32> {trainopt.param = @w}, %avg: tensor<6xf32> {trainopt.param = @avg},
                   %x: tensor<4x6xf32> {trainopt.input = "x"})
    -> (tensor<f32> {trainopt.output = "loss", trainopt.role = #trainopt<role loss>}) {
  %m = trainopt.reduce_mean %x {axes = array<i64: 0>} : (tensor<4x6xf32>) -> tensor<6xf32>
  %k = trainopt.constant dense<0.9> : tensor<f32>
  %d = trainopt.sub %m, %avg : (tensor<6xf32>, tensor<6xf32>) -> tensor<6xf32>
  %e = trainopt.mul %d, %k : (tensor<6xf32>, tensor<f32>) -> tensor<6xf32>
  %n = trainopt.add %avg, %e : (tensor<6xf32>, tensor<6xf32>) -> tensor<6xf32>
  trainopt.assign %avg, %n : tensor<6xf32>
  %p = trainopt.mul %x, %w : (tensor<4x6xf32>, tensor<6xf32>) -> tensor<4x6xf32>
  %q = trainopt.mul %p, %avg : (tensor<4x6xf32>, tensor<6xf32>) -> tensor<4x6xf32>
  %l = trainopt.reduce_sum %q : (tensor<4x6xf32>) -> tensor<f32>
  return %l : tensor<f32>
}
