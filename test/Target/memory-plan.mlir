// The memory plan as the artifact writer will serialize it
// (-trainopt-print-memory-plan over the kernel-level module).
// RUN: trainopt-compile %s --loss=mse --emit=kernel-mlir -o %t.mlir
// RUN: trainopt-opt %t.mlir -trainopt-print-memory-plan -o /dev/null | FileCheck %s

// argmax's kernel also returns the row maxima, which nothing reads: that
// storage is still live where the kernel writes it ([d, d]), so no live
// value is placed under it (it was given no lifetime, and overwrote the
// first rows of `a` when `a` was an output).
// The updates of w and of the step are computed in their own buffers
// (donated): one persistent storage holds the argument and the new value.
// CHECK-LABEL: memory plan of @train_step: scratch {{[0-9]+}} bytes, lower bound {{[0-9]+}}, {{[0-9]+}} in place, 2 donated, 0 copies
// CHECK: s{{[0-9]+}} persistent 48 bytes live [-1, {{[0-9]+}}]: %arg0 %{{[0-9]+}}
// CHECK: scratch 32 bytes at {{[0-9]+}} live {{\[}}[[D:[0-9]+]], [[D]]{{\]}}: %{{[0-9]+}}#0
// CHECK: scratch 32 bytes at {{[0-9]+}} live {{\[}}[[D]], {{[0-9]+}}{{\]}}: %{{[0-9]+}}#1
// CHECK-LABEL: memory plan of @eval_step:
trainopt.parameter @w trainable : tensor<6xf64> = dense<[0.5, -1.0, 1.5, 2.0, -0.5, 1.0]> : tensor<6xf64>
func.func @forward(%x: tensor<4x6xf64> {trainopt.input = "x"},
                   %w: tensor<6xf64> {trainopt.param = @w})
    -> (tensor<4x6xf64> {trainopt.output = "y"}) {
  %a = trainopt.mul %x, %w : (tensor<4x6xf64>, tensor<6xf64>) -> tensor<4x6xf64>
  %i = trainopt.argmax %a {axis = 1 : i64} : (tensor<4x6xf64>) -> tensor<4xi64>
  %c = trainopt.cast %i : tensor<4xi64> to tensor<4xf64>
  %r = trainopt.reshape %c : tensor<4xf64> -> tensor<4x1xf64>
  %y = trainopt.mul %a, %r : (tensor<4x6xf64>, tensor<4x1xf64>) -> tensor<4x6xf64>
  return %y : tensor<4x6xf64>
}
