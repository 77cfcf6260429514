// RUN: trainopt-opt %s -split-input-file -trainopt-autodiff -verify-diagnostics | FileCheck %s

// The gradient function: same arguments, the loss, then one gradient per
// trainable parameter; frozen parameters and data inputs get none.
trainopt.parameter @w trainable : tensor<3x4xf32>
trainopt.parameter @b frozen : tensor<3xf32>
// CHECK-LABEL: func.func @forward_grad
// CHECK-SAME: (%[[W:.*]]: tensor<3x4xf32> {trainopt.param = @w}, %{{.*}}: tensor<3xf32> {trainopt.param = @b}, %[[X:.*]]: tensor<5x4xf32> {trainopt.input = "x"}, %{{.*}}: tensor<5xi64>)
// CHECK-SAME: -> (tensor<f32>, tensor<3x4xf32> {trainopt.grad_of = @w})
// CHECK: %[[LOSS:.*]] = trainopt.cross_entropy
// CHECK: %[[DW:.*]] = trainopt.matmul %{{.*}}, %[[X]] {transpose_lhs = true} : (tensor<5x3xf32>, tensor<5x4xf32>) -> tensor<3x4xf32>
// CHECK: return %[[LOSS]], %[[DW]]
func.func @forward(%w: tensor<3x4xf32> {trainopt.param = @w}, %b: tensor<3xf32> {trainopt.param = @b},
                   %x: tensor<5x4xf32> {trainopt.input = "x"}, %y: tensor<5xi64>)
    -> (tensor<f32> {trainopt.output = "loss"}, tensor<5x3xf32>) {
  %0 = trainopt.matmul %x, %w {transpose_rhs = true} : (tensor<5x4xf32>, tensor<3x4xf32>) -> tensor<5x3xf32>
  %1 = trainopt.add %0, %b : (tensor<5x3xf32>, tensor<3xf32>) -> tensor<5x3xf32>
  %l = trainopt.cross_entropy %1, %y {reduction = #trainopt<reduction mean>} : (tensor<5x3xf32>, tensor<5xi64>) -> tensor<f32>
  return %l, %1 : tensor<f32>, tensor<5x3xf32>
}

// -----

// Fan-out: a parameter used twice gets the sum of both cotangents; the
// integer path (argmax) carries none.
trainopt.parameter @w trainable : tensor<4xf32>
// CHECK-LABEL: func.func @forward_grad
// CHECK: %[[A:.*]] = trainopt.mul
// CHECK: %[[B:.*]] = trainopt.mul
// CHECK: %[[SUM:.*]] = trainopt.add %{{.*}}, %{{.*}} : (tensor<4xf32>, tensor<4xf32>) -> tensor<4xf32>
// CHECK-NOT: trainopt.argmax
// CHECK: return %{{.*}}, %[[SUM]] : tensor<f32>, tensor<4xf32>
func.func @forward(%w: tensor<4xf32> {trainopt.param = @w}) -> (tensor<f32>, tensor<i64>) {
  %sq = trainopt.mul %w, %w : (tensor<4xf32>, tensor<4xf32>) -> tensor<4xf32>
  %l = trainopt.reduce_sum %sq : (tensor<4xf32>) -> tensor<f32>
  %i = trainopt.argmax %w {axis = 0 : i64} : (tensor<4xf32>) -> tensor<i64>
  return %l, %i : tensor<f32>, tensor<i64>
}

// -----

// A parameter without a path to the loss gets a zero gradient.
trainopt.parameter @used trainable : tensor<2xf32>
trainopt.parameter @unused trainable : tensor<3xf32>
// CHECK-LABEL: func.func @forward_grad
// CHECK: %[[Z:.*]] = trainopt.constant dense<0.000000e+00> : tensor<3xf32>
// CHECK: return %{{.*}}, %{{.*}}, %[[Z]] : tensor<f32>, tensor<2xf32>, tensor<3xf32>
func.func @forward(%a: tensor<2xf32> {trainopt.param = @used}, %b: tensor<3xf32> {trainopt.param = @unused}) -> tensor<f32> {
  %l = trainopt.reduce_sum %a : (tensor<2xf32>) -> tensor<f32>
  return %l : tensor<f32>
}

// -----

// Every op without a VJP on the path to the loss is reported at once (the
// backward ops have none: no double backward yet).
trainopt.parameter @w trainable : tensor<1x1x2x2xf32>
// expected-error @+1 {{cannot differentiate @forward: 2 ops have no VJP}}
func.func @forward(%w: tensor<1x1x2x2xf32> {trainopt.param = @w}) -> tensor<f32> {
  // expected-note @+1 {{'trainopt.avg_pool_grad' has no VJP}}
  %a = trainopt.avg_pool_grad %w {kernel_shape = array<i64: 2, 2>, strides = array<i64: 2, 2>, padding = array<i64: 0, 0, 0, 0>, dilations = array<i64: 1, 1>} : (tensor<1x1x2x2xf32>) -> tensor<1x1x4x4xf32>
  %x = trainopt.constant dense<1.0> : tensor<1x1x4x4xf32>
  // expected-note @+1 {{'trainopt.max_pool_grad' has no VJP}}
  %m = trainopt.max_pool_grad %x, %w {kernel_shape = array<i64: 2, 2>, strides = array<i64: 2, 2>, padding = array<i64: 0, 0, 0, 0>, dilations = array<i64: 1, 1>} : (tensor<1x1x4x4xf32>, tensor<1x1x2x2xf32>) -> tensor<1x1x4x4xf32>
  %s = trainopt.add %a, %m : (tensor<1x1x4x4xf32>, tensor<1x1x4x4xf32>) -> tensor<1x1x4x4xf32>
  %l = trainopt.reduce_sum %s : (tensor<1x1x4x4xf32>) -> tensor<f32>
  return %l : tensor<f32>
}

// -----

// expected-error @+1 {{trainopt-autodiff: no 0-d floating-point result to use as the loss}}
func.func @forward(%w: tensor<4xf32>) -> tensor<4xf32> {
  return %w : tensor<4xf32>
}


// -----
// An op marked trainopt.stop_gradient is a constant to autodiff: the
// gradient of w * w + stop(w * 3) is 2 w only.
trainopt.parameter @w trainable : tensor<4xf32>
// CHECK-LABEL: func.func @forward_grad(
// CHECK-SAME: -> (tensor<f32>, tensor<4xf32> {trainopt.grad_of = @w})
// CHECK: trainopt.mul %{{.*}}, %{{.*}} {trainopt.stop_gradient}
// CHECK: trainopt.reduce_sum
// CHECK: %[[G1:.*]] = trainopt.mul %{{[0-9]+}}, %arg0
// CHECK-NEXT: %[[G2:.*]] = trainopt.mul %{{[0-9]+}}, %arg0
// CHECK-NEXT: %[[G:.*]] = trainopt.add %[[G1]], %[[G2]]
// CHECK-NEXT: return %{{.*}}, %[[G]]
func.func @forward(%w: tensor<4xf32> {trainopt.param = @w}) -> tensor<f32> {
  %c = trainopt.constant dense<3.0> : tensor<f32>
  %s = trainopt.mul %w, %c {trainopt.stop_gradient} : (tensor<4xf32>, tensor<f32>) -> tensor<4xf32>
  %sq = trainopt.mul %w, %w : (tensor<4xf32>, tensor<4xf32>) -> tensor<4xf32>
  %t = trainopt.add %sq, %s : (tensor<4xf32>, tensor<4xf32>) -> tensor<4xf32>
  %l = trainopt.reduce_sum %t : (tensor<4xf32>) -> tensor<f32>
  return %l : tensor<f32>
}

// -----

// A linear layer's weight shared over a [batch, tokens] input: its gradient
// is one matmul over the 2*8 flattened rows, not a matmul per batch element
// and a sum over the batch.
trainopt.parameter @w trainable : tensor<3x4xf32>
// CHECK-LABEL: func.func @forward_grad
// CHECK-SAME: (%[[W:.*]]: tensor<3x4xf32> {trainopt.param = @w}, %[[X:.*]]: tensor<2x8x4xf32>
// CHECK-DAG: %[[X2:.*]] = trainopt.reshape %[[X]] : tensor<2x8x4xf32> -> tensor<16x4xf32>
// CHECK-DAG: %[[G2:.*]] = trainopt.reshape %{{.*}} : tensor<2x8x3xf32> -> tensor<16x3xf32>
// CHECK: %[[DW:.*]] = trainopt.matmul %[[G2]], %[[X2]] {transpose_lhs = true} : (tensor<16x3xf32>, tensor<16x4xf32>) -> tensor<3x4xf32>
// CHECK-NOT: trainopt.reduce_sum
// CHECK: return %{{.*}}, %[[DW]]
func.func @forward(%w: tensor<3x4xf32> {trainopt.param = @w},
                   %x: tensor<2x8x4xf32> {trainopt.input = "x"})
    -> (tensor<f32> {trainopt.output = "loss"}) {
  %0 = trainopt.matmul %x, %w {transpose_rhs = true} : (tensor<2x8x4xf32>, tensor<3x4xf32>) -> tensor<2x8x3xf32>
  %l = trainopt.reduce_sum %0 : (tensor<2x8x3xf32>) -> tensor<f32>
  return %l : tensor<f32>
}
