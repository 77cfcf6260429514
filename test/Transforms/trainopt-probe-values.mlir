// RUN: trainopt-opt %s -split-input-file -trainopt-probe-values -verify-diagnostics | FileCheck %s

// Every float value becomes a named result, in program order, with its
// operands' probe numbers (or =V for a splat constant, - otherwise) and its
// node; i1 decisions come back as f32 0/1; values already returned and
// constants are not probed again.
// CHECK-LABEL: func.func @train_step
// CHECK-SAME: -> (tensor<f32> {trainopt.output = "loss"},
// CHECK-SAME: tensor<4xf32> {trainopt.output = "probe.0:relu:-:r"},
// CHECK-SAME: tensor<4xf32> {trainopt.output = "probe.1:greater:-,=0:r"},
// CHECK-SAME: tensor<4xf32> {trainopt.output = "probe.2:where:1,-,=0:r"})
// CHECK: %[[R:.*]] = trainopt.relu
// CHECK: %[[G:.*]] = trainopt.greater
// CHECK: %[[GF:.*]] = trainopt.cast %[[G]] : tensor<4xi1> to tensor<4xf32>
// CHECK: %[[W:.*]] = trainopt.where
// CHECK: %[[L:.*]] = trainopt.reduce_sum
// CHECK: return %[[L]], %[[R]], %[[GF]], %[[W]]
func.func @train_step(%x: tensor<4xf32>, %g: tensor<4xf32>) -> (tensor<f32> {trainopt.output = "loss"}) {
  %zero = trainopt.constant dense<0.0> : tensor<f32>
  %0 = trainopt.relu %x : tensor<4xf32> loc("r")
  %1 = trainopt.greater %x, %zero : (tensor<4xf32>, tensor<f32>) -> tensor<4xi1> loc("r")
  %2 = trainopt.where %1, %g, %zero : (tensor<4xi1>, tensor<4xf32>, tensor<f32>) -> tensor<4xf32> loc("r")
  %3 = trainopt.reduce_sum %0 : (tensor<4xf32>) -> tensor<f32>
  return %3 : tensor<f32>
}

// -----

// The max-pool gradient carries its window, which the tester needs to find
// window ties.
// CHECK-LABEL: func.func @train_step
// CHECK-SAME: {trainopt.output = "probe.0:max_pool_grad[k=2x2;s=2x2;p=0x0x0x0;d=1x1]:-,-:pool"}
func.func @train_step(%x: tensor<1x1x4x4xf32>, %g: tensor<1x1x2x2xf32>) -> (tensor<f32> {trainopt.output = "loss"}) {
  %0 = trainopt.max_pool_grad %x, %g {kernel_shape = array<i64: 2, 2>, strides = array<i64: 2, 2>, padding = array<i64: 0, 0, 0, 0>, dilations = array<i64: 1, 1>} : (tensor<1x1x4x4xf32>, tensor<1x1x2x2xf32>) -> tensor<1x1x4x4xf32> loc("pool")
  %1 = trainopt.reduce_sum %0 : (tensor<1x1x4x4xf32>) -> tensor<f32>
  return %1 : tensor<f32>
}

// -----

// Calls hide the callee's values: the pass asks for -inline first.
func.func private @f(%x: tensor<4xf32>) -> tensor<4xf32> {
  return %x : tensor<4xf32>
}
func.func @train_step(%x: tensor<4xf32>) -> tensor<4xf32> {
  // expected-error @+1 {{trainopt-probe-values: @train_step calls @f; run -inline first}}
  %0 = func.call @f(%x) : (tensor<4xf32>) -> tensor<4xf32>
  return %0 : tensor<4xf32>
}
