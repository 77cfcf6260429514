// RUN: trainopt-opt %s -split-input-file -verify-diagnostics -trainopt-build-train-step -trainopt-transform-gradients | FileCheck %s

// Loss scaling, as trainopt-assign-precision records it under --amp=fp16:
// @forward_train takes the scale after the step and returns loss * scale
// last, which autodiff differentiates; @train_step has a loss_scale state
// starting at `init`, returns the unscaled loss, unscales the gradients by
// the f32 reciprocal, gates the update on a finite sum of squares, reports
// loss_scale and skipped, and updates the scale and its growth tracker as
// GradScaler (growth 2 after 3 finite steps, backoff 0.5, in f64).
// CHECK-LABEL: func.func @forward_train(
// CHECK-SAME: %{{.*}}: tensor<i64> {trainopt.role = #trainopt<role step>, trainopt.state = "step"}, %[[S:[^:]*]]: tensor<f32>)
// CHECK: %[[L:.*]] = trainopt.mse_loss
// CHECK: %[[SL:.*]] = trainopt.mul %[[L]], %[[S]]
// CHECK: return %[[L]], %[[SL]]
// CHECK-LABEL: func.func @train_step(
// CHECK-SAME: %[[SCALE:[^:]*]]: tensor<f32> {trainopt.init = dense<1.024000e+03> : tensor<f32>, trainopt.role = #trainopt<role optimizer_state>, trainopt.state = "loss_scale"}
// CHECK-SAME: %[[TRACK:[^:]*]]: tensor<i64> {trainopt.role = #trainopt<role optimizer_state>, trainopt.state = "loss_scale_growth_tracker"}
// CHECK-SAME: {trainopt.output = "loss", trainopt.role = #trainopt<role loss>}
// CHECK-SAME: {trainopt.output = "loss_scale", trainopt.role = #trainopt<role metric>}
// CHECK-SAME: {trainopt.output = "skipped", trainopt.role = #trainopt<role metric>}
// CHECK-SAME: {trainopt.role = #trainopt<role update_gate>}
// CHECK-SAME: attributes {trainopt.loss_scale =
// CHECK: %[[G:.*]]:{{[0-9]+}} = call @forward_train_grad({{.*}}, %[[SCALE]])
// CHECK: %[[SYNC:.*]] = trainopt.grad_sync %[[G]]#{{[0-9]+}} {param = @w}
// CHECK: %[[INV:.*]] = trainopt.div %{{.*}}, %[[SCALE]]
// CHECK: %[[FINITE:.*]] = trainopt.less %{{.*}}, %{{.*}} : (tensor<f32>, tensor<f32>) -> tensor<i1>
// CHECK: trainopt.mul %[[SYNC]], %[[INV]] : (tensor<3x2xf32>, tensor<f32>)
// CHECK: trainopt.constant dense<3> : tensor<i64>
// CHECK: trainopt.cast %[[SCALE]] : tensor<f32> to tensor<f64>
// CHECK: trainopt.constant dense<2.000000e+00> : tensor<f64>
// CHECK: trainopt.constant dense<5.000000e-01> : tensor<f64>
// CHECK: return {{.*}}%[[G]]#0,
trainopt.parameter @w trainable : tensor<3x2xf32> = dense<0.5> : tensor<3x2xf32>
func.func @forward(%w: tensor<3x2xf32> {trainopt.param = @w}, %x: tensor<4x3xf32> {trainopt.input = "x"},
                   %t: tensor<4x2xf32> {trainopt.input = "t", trainopt.role = #trainopt<role labels>})
    -> (tensor<f32> {trainopt.output = "loss", trainopt.role = #trainopt<role loss>})
    attributes {trainopt.loss_scale = {backoff_factor = 5.000000e-01 : f64, dynamic = true, growth_factor = 2.000000e+00 : f64, growth_interval = 3 : i64, init = 1.024000e+03 : f64}} {
  %0 = trainopt.matmul %x, %w : (tensor<4x3xf32>, tensor<3x2xf32>) -> tensor<4x2xf32>
  %1 = trainopt.mse_loss %0, %t {reduction = #trainopt<reduction mean>} : (tensor<4x2xf32>, tensor<4x2xf32>) -> tensor<f32>
  return %1 : tensor<f32>
}

// -----

// A configuration without its initial scale is refused, not dereferenced.
trainopt.parameter @w trainable : tensor<3x2xf32> = dense<0.5> : tensor<3x2xf32>
// expected-error @+1 {{'trainopt.loss_scale' needs a float 'init' (the initial scale)}}
func.func @forward(%w: tensor<3x2xf32> {trainopt.param = @w}, %x: tensor<4x3xf32> {trainopt.input = "x"},
                   %t: tensor<4x2xf32> {trainopt.input = "t", trainopt.role = #trainopt<role labels>})
    -> (tensor<f32> {trainopt.output = "loss", trainopt.role = #trainopt<role loss>})
    attributes {trainopt.loss_scale = {dynamic = true}} {
  %0 = trainopt.matmul %x, %w : (tensor<4x3xf32>, tensor<3x2xf32>) -> tensor<4x2xf32>
  %1 = trainopt.mse_loss %0, %t {reduction = #trainopt<reduction mean>} : (tensor<4x2xf32>, tensor<4x2xf32>) -> tensor<f32>
  return %1 : tensor<f32>
}
