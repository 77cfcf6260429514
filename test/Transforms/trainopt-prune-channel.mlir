// trainopt-prune, channel:l1: a matmul's output neurons are the axis its
// weight keeps (axis 0 of a transposed [out, in] weight, axis 1 of a plain
// [in, out] one); the layer that produces the output stays dense.
// RUN: trainopt-opt %s -trainopt-prune="prune=channel:l1:0.5" -canonicalize | FileCheck %s

// CHECK: module attributes {trainopt.pruning = [{mask = "fc1.weight.prune_mask", method = "channel_l1", {{.*}}}, {mask = "fc2.weight.prune_mask", method = "channel_l1", {{.*}}}]}
// CHECK-NOT: @head.weight.prune_mask
// fc1 [6, 8] read transposed: 6 neurons on axis 0, round(0.5 * 6) = 3.
// CHECK-DAG: %[[THREE:.*]] = trainopt.constant dense<3> : tensor<i64>
// CHECK: %[[N1:.*]] = trainopt.reduce_sum %{{.*}} {axes = array<i64: 1>} : (tensor<6x8xf32>) -> tensor<6xf32>
// CHECK: %[[K1:.*]] = trainopt.where %{{.*}}, %[[THREE]], %{{.*}} : (tensor<i1>, tensor<i64>, tensor<i64>) -> tensor<i64>
// CHECK: %[[T1:.*]] = trainopt.kth_smallest %[[N1]], %[[K1]] : (tensor<6xf32>, tensor<i64>) -> tensor<f32>
// CHECK: trainopt.greater %[[N1]], %[[T1]] : (tensor<6xf32>, tensor<f32>) -> tensor<6xi1>
// CHECK: trainopt.reshape %{{.*}} : tensor<6xf32> -> tensor<6x1xf32>
// CHECK: trainopt.broadcast_to %{{.*}} : tensor<6x1xf32> -> tensor<6x8xf32>
// fc2 [6, 4] read as is: 4 neurons on axis 1.
// CHECK: %[[N2:.*]] = trainopt.reduce_sum %{{.*}} {axes = array<i64: 0>} : (tensor<6x4xf32>) -> tensor<4xf32>
// CHECK: trainopt.kth_smallest %[[N2]], %{{.*}} : (tensor<4xf32>, tensor<i64>) -> tensor<f32>
// CHECK: trainopt.broadcast_to %{{.*}} : tensor<1x4xf32> -> tensor<6x4xf32>
// CHECK-NOT: kth_smallest

trainopt.parameter @fc1.weight trainable : tensor<6x8xf32>
trainopt.parameter @fc2.weight trainable : tensor<6x4xf32>
trainopt.parameter @head.weight trainable : tensor<4x3xf32>
func.func @forward(%w1: tensor<6x8xf32> {trainopt.param = @fc1.weight},
                   %w2: tensor<6x4xf32> {trainopt.param = @fc2.weight},
                   %wh: tensor<4x3xf32> {trainopt.param = @head.weight},
                   %x: tensor<2x8xf32> {trainopt.input = "x"}) -> tensor<2x3xf32> {
  %h1 = trainopt.matmul %x, %w1 {transpose_rhs = true} : (tensor<2x8xf32>, tensor<6x8xf32>) -> tensor<2x6xf32>
  %r1 = trainopt.relu %h1 : tensor<2x6xf32>
  %h2 = trainopt.matmul %r1, %w2 : (tensor<2x6xf32>, tensor<6x4xf32>) -> tensor<2x4xf32>
  %r2 = trainopt.relu %h2 : tensor<2x4xf32>
  %y = trainopt.matmul %r2, %wh : (tensor<2x4xf32>, tensor<4x3xf32>) -> tensor<2x3xf32>
  return %y : tensor<2x3xf32>
}
