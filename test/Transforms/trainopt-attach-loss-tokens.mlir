// RUN: trainopt-opt %s -trainopt-attach-loss="loss=cross_entropy class-axis=-1 ignore-index=-100 label-smoothing=0.1 loss-input=logits" | FileCheck %s 

// Token logits [B, T, V] with labels [B, T].
// CHECK-LABEL: func.func @forward
// CHECK-SAME: %{{.*}}: tensor<2x16xi64> {trainopt.input = "labels", trainopt.role = #trainopt<role labels>}
// CHECK: trainopt.cross_entropy %{{.*}}, %{{.*}} {class_axis = -1 : i64, ignore_index = -100 : i64, label_smoothing = 1.000000e-01 : f64, reduction = #trainopt<reduction mean>} : (tensor<2x16x96xf32>, tensor<2x16xi64>) -> tensor<f32>
func.func @forward(%ids: tensor<2x16xi64>, %t: tensor<96x64xf32>) -> (tensor<2x16x96xf32> {trainopt.output = "logits"}) {
  %e = trainopt.gather %t, %ids {axis = 0 : i64} : (tensor<96x64xf32>, tensor<2x16xi64>) -> tensor<2x16x64xf32>
  %z = trainopt.matmul %e, %t {transpose_rhs = true} : (tensor<2x16x64xf32>, tensor<96x64xf32>) -> tensor<2x16x96xf32>
  return %z : tensor<2x16x96xf32>
}
