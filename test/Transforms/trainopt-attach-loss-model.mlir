// RUN: trainopt-opt %s -split-input-file -trainopt-attach-loss -verify-diagnostics | FileCheck %s

// The model's own loss is named `loss`, a metric; the input it takes its
// labels from has the labels role, whatever its name.
// CHECK-LABEL: func.func @forward
// CHECK-SAME: %{{.*}}: tensor<8xi64> {trainopt.role = #trainopt<role labels>}
// CHECK-SAME: -> (tensor<8x10xf32>, tensor<f32> {trainopt.output = "loss", trainopt.role = #trainopt<role loss>})
func.func @forward(%z: tensor<8x10xf32>, %y: tensor<8xi64>) -> (tensor<8x10xf32>, tensor<f32>) {
  %l = trainopt.cross_entropy %z, %y {reduction = #trainopt<reduction mean>} : (tensor<8x10xf32>, tensor<8xi64>) -> tensor<f32>
  return %z, %l : tensor<8x10xf32>, tensor<f32>
}

// -----

// expected-error @+1 {{the model computes no loss; pass --loss=cross_entropy|nll|mse}}
func.func @forward(%x: tensor<2x3xf32>) -> tensor<2x3xf32> {
  return %x : tensor<2x3xf32>
}
