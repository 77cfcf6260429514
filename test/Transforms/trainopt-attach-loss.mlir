// RUN: trainopt-opt %s -split-input-file -trainopt-attach-loss="loss=cross_entropy" -verify-diagnostics | FileCheck %s --check-prefix=CE
// RUN: trainopt-opt %s -split-input-file -trainopt-attach-loss="loss=mse loss-reduction=sum labels=target" -verify-diagnostics | FileCheck %s --check-prefix=MSE

// CE-LABEL: func.func @forward
// CE-SAME: %[[Y:[^:]*]]: tensor<8xi64> {trainopt.input = "labels", trainopt.role = #trainopt<role labels>}
// CE-SAME: -> (tensor<8x10xf32> {trainopt.output = "logits"}, tensor<f32> {trainopt.output = "loss", trainopt.role = #trainopt<role loss>})
// CE: %[[L:.*]] = trainopt.cross_entropy %[[LOGITS:.*]], %[[Y]] {reduction = #trainopt<reduction mean>}
// CE: return %[[LOGITS]], %[[L]]
// MSE-LABEL: func.func @forward
// MSE-SAME: %{{.*}}: tensor<8x10xf32> {trainopt.input = "target", trainopt.role = #trainopt<role labels>}
// MSE: trainopt.mse_loss %{{.*}}, %{{.*}} {reduction = #trainopt<reduction sum>}
func.func @forward(%x: tensor<8x784xf32> {trainopt.input = "x"}, %w: tensor<10x784xf32>)
    -> (tensor<8x10xf32> {trainopt.output = "logits"}) {
  %0 = trainopt.matmul %x, %w {transpose_rhs = true} : (tensor<8x784xf32>, tensor<10x784xf32>) -> tensor<8x10xf32>
  return %0 : tensor<8x10xf32>
}

// -----

// A model with its own loss (ONNX SoftmaxCrossEntropyLoss) keeps it; asking
// for another one is an error.
// expected-error @+1 {{conflicts with the loss the model computes itself (result 1)}}
func.func @forward(%z: tensor<8x10xf32>, %y: tensor<8xi64>) -> (tensor<8x10xf32>, tensor<f32>) {
  %l = trainopt.cross_entropy %z, %y {reduction = #trainopt<reduction mean>} : (tensor<8x10xf32>, tensor<8xi64>) -> tensor<f32>
  return %z, %l : tensor<8x10xf32>, tensor<f32>
}
