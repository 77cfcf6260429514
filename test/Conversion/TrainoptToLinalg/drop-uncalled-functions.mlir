// RUN: trainopt-opt %s --inline --trainopt-drop-uncalled-functions | FileCheck %s
// RUN: trainopt-opt %s --trainopt-drop-uncalled-functions | FileCheck --check-prefix=CALLED %s
// RUN: trainopt-opt %s --inline --trainopt-drop-uncalled-functions=entry-points=forward | FileCheck --check-prefix=NAMED %s

// After inlining, the forward functions the steps called are gone; the
// entry points stay, and so does a parameter (a symbol, not a function).
// CHECK: trainopt.parameter @w
// CHECK-NOT: func.func @forward
// CHECK-NOT: func.func private @helper
// CHECK: func.func @train_step
// CHECK-NOT: call
// CHECK: func.func @eval_step
// CHECK-NOT: func.func

// Without inlining, a function the steps call is kept, and so is what it
// calls; an unused one goes.
// CALLED: func.func private @helper
// CALLED: func.func @forward
// CALLED-NOT: func.func @unused
// CALLED: func.func @train_step
// CALLED: func.func @eval_step

// Named entry points replace the default pair: only @forward is kept.
// NAMED-NOT: func.func @train_step
// NAMED: func.func @forward
// NAMED-NOT: func.func

trainopt.parameter @w trainable : tensor<4xf32> = dense<0.1> : tensor<4xf32>
func.func private @helper(%x: tensor<4xf32>) -> tensor<4xf32> {
  %0 = trainopt.relu %x : tensor<4xf32>
  return %0 : tensor<4xf32>
}
func.func @forward(%w: tensor<4xf32> {trainopt.param = @w}) -> tensor<4xf32> {
  %0 = call @helper(%w) : (tensor<4xf32>) -> tensor<4xf32>
  return %0 : tensor<4xf32>
}
func.func @unused(%x: tensor<4xf32>) -> tensor<4xf32> {
  return %x : tensor<4xf32>
}
func.func @train_step(%w: tensor<4xf32> {trainopt.param = @w}) -> tensor<4xf32> {
  %0 = call @forward(%w) : (tensor<4xf32>) -> tensor<4xf32>
  return %0 : tensor<4xf32>
}
func.func @eval_step(%w: tensor<4xf32> {trainopt.param = @w}) -> tensor<4xf32> {
  %0 = call @forward(%w) : (tensor<4xf32>) -> tensor<4xf32>
  return %0 : tensor<4xf32>
}
