// trainopt-quantize with kmeans:K: each conv and matmul weight is shared
// among K centroids found by a one-dimensional k-means of its initial
// values at compile time; the model reads gather(codebook, codes), so the
// gradients of the weights that share a centroid sum into it.
// RUN: trainopt-opt %s -trainopt-quantize="quantize=kmeans:2" | FileCheck %s
// RUN: trainopt-opt %s -trainopt-quantize="quantize=kmeans:2" -trainopt-attach-loss="loss=mse" -trainopt-build-train-step | FileCheck %s --check-prefix=GRAD

// Linear start at 0 and 1: 0, 0.1, 0.05 and the tie 0.5 go low, 0.9, 1.0,
// 0.95, 0.52 high; the means 0.1625 and 0.8425 assign the same way, so the
// clustering stops there.
// CHECK: module attributes {trainopt.weight_sharing = [{clusters = 2 : i64, codebook = "fc.weight.codebook", weight = "fc.weight"}]}
// The weight is state now, holding the shared values.
// CHECK: trainopt.parameter @fc.weight frozen : tensor<2x4xf32> = dense<{{\[\[}}1.625000e-01, 1.625000e-01, 8.425000e-01, 8.425000e-01], [1.625000e-01, 8.425000e-01, 1.625000e-01, 8.425000e-01]]>
// CHECK: trainopt.parameter @fc.weight.codebook trainable : tensor<2xf32> = dense<[1.625000e-01, 8.425000e-01]>
// CHECK: trainopt.parameter @fc.weight.codes frozen : tensor<2x4xi32> = dense<{{\[\[}}0, 0, 1, 1], [0, 1, 0, 1]]>
// CHECK-LABEL: func.func @forward(
// CHECK-SAME: %[[W:[a-z0-9]+]]: tensor<2x4xf32> {trainopt.param = @fc.weight}
// CHECK-SAME: %[[BOOK:[a-z0-9]+]]: tensor<2xf32> {trainopt.param = @fc.weight.codebook}
// CHECK-SAME: %[[CODES:[a-z0-9]+]]: tensor<2x4xi32> {trainopt.param = @fc.weight.codes}
// CHECK: %[[SHARED:.*]] = trainopt.gather %[[BOOK]], %[[CODES]] {axis = 0 : i64} : (tensor<2xf32>, tensor<2x4xi32>) -> tensor<2x4xf32>
// CHECK: trainopt.matmul %{{.*}}, %[[SHARED]] {transpose_rhs = true}
// CHECK: trainopt.assign %[[W]], %[[SHARED]] {trainopt.derived} : tensor<2x4xf32>

// The codebook's gradient: the weights' gradients scatter-added by code.
// GRAD: trainopt.scatter_add %{{.*}}, %{{.*}} {axis = 0 : i64} : (tensor<2x4xi32>, tensor<2x4xf32>) -> tensor<2xf32>

trainopt.parameter @fc.weight trainable : tensor<2x4xf32> = dense<[[0.0, 0.1, 0.9, 1.0], [0.05, 0.95, 0.5, 0.52]]> : tensor<2x4xf32>
func.func @forward(%w: tensor<2x4xf32> {trainopt.param = @fc.weight},
                   %x: tensor<3x4xf32> {trainopt.input = "x"}) -> tensor<3x2xf32> {
  %y = trainopt.matmul %x, %w {transpose_rhs = true} : (tensor<3x4xf32>, tensor<2x4xf32>) -> tensor<3x2xf32>
  return %y : tensor<3x2xf32>
}
