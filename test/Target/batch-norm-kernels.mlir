// The kernels of a training-mode BatchNorm's step. The backward reuses the
// forward's statistics: the mean and the variance are each one pass over x
// (the VJP and the lowering build them alike, TensorBuilder::moments, and
// CSE merges them). Every other kernel recomputes (x - mean) * inv from x,
// so none writes a tensor of x's size (fuse-recompute.mlir).
// RUN: trainopt-compile %s --loss=mse --emit=kernel-mlir -o %t.mlir
// RUN: FileCheck %s < %t.mlir
// CHECK-LABEL: func.func @train_step(
// CHECK-SAME: %[[X:arg[0-9]+]]: tensor<8x4x3x3xf32> {trainopt.input = "x"}
// CHECK-NOT: -> tensor<8x4x3x3xf32>
// CHECK: call @train_step_k{{[0-9]+}}(%[[X]]) : (tensor<8x4x3x3xf32>) -> tensor<1x4x1x1xf64>
// CHECK-NOT: -> tensor<8x4x3x3xf32>
// CHECK: call @train_step_k{{[0-9]+}}(%[[X]], %{{[0-9]+}}) : (tensor<8x4x3x3xf32>, tensor<1x4x1x1xf32>) -> tensor<1x4x1x1xf64>
// CHECK-NOT: (tensor<8x4x3x3xf32>) -> tensor<1x4x1x1xf64>
// CHECK-NOT: (tensor<8x4x3x3xf32>, tensor<1x4x1x1xf32>) -> tensor<1x4x1x1xf64>
// CHECK-NOT: -> tensor<8x4x3x3xf32>
// CHECK: return
trainopt.parameter @s trainable : tensor<4xf32> = dense<[1.0, 0.5, 2.0, 1.5]> : tensor<4xf32>
trainopt.parameter @b trainable : tensor<4xf32> = dense<[0.0, 0.1, -0.2, 0.3]> : tensor<4xf32>
trainopt.parameter @rm frozen : tensor<4xf32> = dense<0.0> : tensor<4xf32>
trainopt.parameter @rv frozen : tensor<4xf32> = dense<1.0> : tensor<4xf32>
func.func @forward(%x: tensor<8x4x3x3xf32> {trainopt.input = "x"},
                   %s: tensor<4xf32> {trainopt.param = @s}, %b: tensor<4xf32> {trainopt.param = @b},
                   %rm: tensor<4xf32> {trainopt.param = @rm}, %rv: tensor<4xf32> {trainopt.param = @rv})
    -> (tensor<8x4x3x3xf32> {trainopt.output = "y"}) {
  %y, %nm, %nv = trainopt.batch_norm_train %x, %s, %b, %rm, %rv {epsilon = 1.0e-5 : f64, momentum = 0.9 : f64} : tensor<8x4x3x3xf32>, tensor<4xf32>
  return %y : tensor<8x4x3x3xf32>
}
