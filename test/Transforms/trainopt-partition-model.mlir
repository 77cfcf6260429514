// RUN: trainopt-opt %s '-trainopt-partition-model=mesh=tp=2' | FileCheck %s
// RUN: trainopt-opt %s '-trainopt-partition-model=mesh=dp=2,tp=2' -trainopt-attach-loss=loss=cross_entropy -trainopt-build-train-step | FileCheck %s --check-prefix=GRAD
// RUN: trainopt-opt %s -trainopt-partition-model | FileCheck %s --check-prefix=NOMESH
// RUN: not trainopt-opt %s '-trainopt-partition-model=mesh=tp=4' 2>&1 | FileCheck %s --check-prefix=DIVIDE
// RUN: trainopt-opt %S/Inputs/attention.mlir '-trainopt-partition-model=mesh=tp=2' | FileCheck %s --check-prefix=ATTN
// RUN: trainopt-opt %S/Inputs/attention.mlir '-trainopt-partition-model=mesh=tp=4' | FileCheck %s --check-prefix=ATTN4
// RUN: trainopt-opt %s '-trainopt-partition-model=mesh=tp=2,pp=2' | FileCheck %s --check-prefix=PP
// RUN: not trainopt-opt %s '-trainopt-partition-model=mesh=dp=0' 2>&1 | FileCheck %s --check-prefix=SIZE
// RUN: not trainopt-opt %s '-trainopt-partition-model=mesh=xp=2' 2>&1 | FileCheck %s --check-prefix=AXIS

// Four linear layers make two Megatron pairs: @w1 (and @b1) split along
// its output features, @w2 along its input features; the same for @w3 and
// @w4. Each pair's input enters the region through copy_to_group, and its
// second product is all-reduced over tp before the (whole) bias is added.
// CHECK: shard.grid @mesh(shape = 2) {trainopt.axes = ["tp"]}
// CHECK-LABEL: func.func @forward(
// CHECK-SAME: %[[W1:[^:]*]]: tensor<3x4xf32> {trainopt.global_type = tensor<6x4xf32>, trainopt.param = @w1, trainopt.sharding = "tp:0"}
// CHECK-SAME: %[[B1:[^:]*]]: tensor<3xf32> {trainopt.global_type = tensor<6xf32>, trainopt.param = @b1, trainopt.sharding = "tp:0"}
// CHECK-SAME: %[[W2:[^:]*]]: tensor<4x3xf32> {trainopt.global_type = tensor<4x6xf32>, trainopt.param = @w2, trainopt.sharding = "tp:1"}
// CHECK-SAME: %[[B2:[^:]*]]: tensor<4xf32> {trainopt.param = @b2}
// CHECK-SAME: %[[W3:[^:]*]]: tensor<3x4xf32> {trainopt.global_type = tensor<6x4xf32>, trainopt.param = @w3, trainopt.sharding = "tp:0"}
// CHECK-SAME: %[[W4:[^:]*]]: tensor<2x3xf32> {trainopt.global_type = tensor<2x6xf32>, trainopt.param = @w4, trainopt.sharding = "tp:1"}
// CHECK-SAME: %[[X:[^:]*]]: tensor<5x4xf32>
// CHECK-SAME: trainopt.tp_decisions = {b1 = "split over tp with its weight's output features, the pair of @w1 and @w2", w1 = "column-parallel over tp (dim 0 split, 1/2 of its output features per rank), the pair of @w1 and @w2", w2 = "row-parallel over tp (dim 1 split, 1/2 of its input features per rank; the partial products all-reduced), the pair of @w1 and @w2"
// CHECK: %[[XC:.*]] = trainopt.copy_to_group %[[X]] on @mesh axes = [0] : tensor<5x4xf32>
// CHECK-NEXT: %[[H:.*]] = trainopt.matmul %[[XC]], %[[W1]] {transpose_rhs = true} : (tensor<5x4xf32>, tensor<3x4xf32>) -> tensor<5x3xf32>
// CHECK-NEXT: trainopt.add %[[H]], %[[B1]] : (tensor<5x3xf32>, tensor<3xf32>) -> tensor<5x3xf32>
// CHECK-NEXT: %[[R:.*]] = trainopt.relu %{{.*}} : tensor<5x3xf32>
// CHECK-NEXT: %[[P:.*]] = trainopt.matmul %[[R]], %[[W2]] {transpose_rhs = true} : (tensor<5x3xf32>, tensor<4x3xf32>) -> tensor<5x4xf32>
// CHECK-NEXT: %[[S:.*]] = trainopt.all_reduce sum %[[P]] on @mesh axes = [0] : tensor<5x4xf32>
// CHECK-NEXT: trainopt.add %[[S]], %[[B2]] : (tensor<5x4xf32>, tensor<4xf32>) -> tensor<5x4xf32>
// CHECK: trainopt.copy_to_group %{{.*}} on @mesh axes = [0] : tensor<5x4xf32>
// CHECK: trainopt.matmul %{{.*}}, %[[W4]] {transpose_rhs = true} : (tensor<5x3xf32>, tensor<2x3xf32>) -> tensor<5x2xf32>
// CHECK-NEXT: trainopt.all_reduce sum %{{.*}} on @mesh axes = [0] : tensor<5x2xf32>

// Autodiff derives the backward of the split forward: copy_to_group's VJP
// all-reduces the second pair's input cotangent over tp (axis 1 of the
// dp x tp grid); the first pair's input is the batch, which needs none.
// GRAD: shard.grid @mesh(shape = 2x2) {trainopt.axes = ["dp", "tp"]}
// GRAD-LABEL: func.func @forward_train_grad(
// GRAD-COUNT-2: trainopt.all_reduce sum %{{.*}} on @mesh axes = [1] : tensor<5x4xf32>
// GRAD-NOT: trainopt.all_reduce
// GRAD: return

// NOMESH-NOT: shard.grid
// NOMESH-NOT: trainopt.sharding
// DIVIDE: error: --mesh: tp=4 does not divide dim 0 of parameter @w1 ('tensor<6x4xf32>')
// With a pipeline too, the pairs split the same way (trainopt-split-pipeline
// later cuts the split model into stages).
// PP: shard.grid @mesh(shape = 2x2) {trainopt.axes = ["tp", "pp"]}
// PP: trainopt.param = @w1, trainopt.sharding = "tp:0"
// PP-SAME: trainopt.param = @w2, trainopt.sharding = "tp:1"
// SIZE: error: --mesh: 'dp=0' is not AXIS=N with N >= 1
// AXIS: error: --mesh: unknown axis 'xp' (expected dp, tp or pp)
trainopt.parameter @w1 trainable : tensor<6x4xf32> = dense<0.1> : tensor<6x4xf32>
trainopt.parameter @b1 trainable : tensor<6xf32> = dense<0.0> : tensor<6xf32>
trainopt.parameter @w2 trainable : tensor<4x6xf32> = dense<0.2> : tensor<4x6xf32>
trainopt.parameter @b2 trainable : tensor<4xf32> = dense<0.0> : tensor<4xf32>
trainopt.parameter @w3 trainable : tensor<6x4xf32> = dense<0.1> : tensor<6x4xf32>
trainopt.parameter @w4 trainable : tensor<2x6xf32> = dense<0.2> : tensor<2x6xf32>
func.func @forward(%w1: tensor<6x4xf32> {trainopt.param = @w1}, %b1: tensor<6xf32> {trainopt.param = @b1},
                   %w2: tensor<4x6xf32> {trainopt.param = @w2}, %b2: tensor<4xf32> {trainopt.param = @b2},
                   %w3: tensor<6x4xf32> {trainopt.param = @w3}, %w4: tensor<2x6xf32> {trainopt.param = @w4},
                   %x: tensor<5x4xf32> {trainopt.input = "x"})
    -> (tensor<5x2xf32> {trainopt.output = "logits"}) {
  %0 = trainopt.matmul %x, %w1 {transpose_rhs = true} : (tensor<5x4xf32>, tensor<6x4xf32>) -> tensor<5x6xf32>
  %1 = trainopt.add %0, %b1 : (tensor<5x6xf32>, tensor<6xf32>) -> tensor<5x6xf32>
  %2 = trainopt.relu %1 : tensor<5x6xf32>
  %3 = trainopt.matmul %2, %w2 {transpose_rhs = true} : (tensor<5x6xf32>, tensor<4x6xf32>) -> tensor<5x4xf32>
  %4 = trainopt.add %3, %b2 : (tensor<5x4xf32>, tensor<4xf32>) -> tensor<5x4xf32>
  %5 = trainopt.tanh %4 : tensor<5x4xf32>
  %6 = trainopt.matmul %5, %w3 {transpose_rhs = true} : (tensor<5x4xf32>, tensor<6x4xf32>) -> tensor<5x6xf32>
  %7 = trainopt.relu %6 : tensor<5x6xf32>
  %8 = trainopt.matmul %7, %w4 {transpose_rhs = true} : (tensor<5x6xf32>, tensor<2x6xf32>) -> tensor<5x2xf32>
  return %8 : tensor<5x2xf32>
}

// Attention splits by heads: each of 2 ranks keeps one head of q, k and v
// (the fused projection's columns as 3 blocks, each halved: "tp:1/3"), so
// every per-head value has half the heads, and the output projection
// keeps the rows of that head's features, its partial products summed.
// ATTN-LABEL: func.func @forward(
// ATTN-SAME: tensor<8x12xf32> {trainopt.global_type = tensor<8x24xf32>, trainopt.param = @wqkv, trainopt.sharding = "tp:1/3"}
// ATTN-SAME: tensor<12xf32> {trainopt.global_type = tensor<24xf32>, trainopt.param = @bqkv, trainopt.sharding = "tp:0/3"}
// ATTN-SAME: tensor<4x8xf32> {trainopt.global_type = tensor<8x8xf32>, trainopt.param = @wo, trainopt.sharding = "tp:0"}
// ATTN-SAME: trainopt.tp_decisions = {bqkv = "split over tp with its weight's heads, the attention of @wqkv and @wo", wo = "row-parallel over tp (dim 0 split, the features of this rank's heads; the partial products all-reduced), the attention of @wqkv and @wo", wqkv = "column-parallel over tp by heads (dim 1 split as 3 blocks, 1/2 of the heads of each per rank), the attention of @wqkv and @wo"}
// ATTN: %[[X:.*]] = trainopt.copy_to_group
// ATTN: trainopt.matmul %[[X]], %{{.*}} : (tensor<2x4x8xf32>, tensor<8x12xf32>) -> tensor<2x4x12xf32>
// ATTN: trainopt.split %{{.*}} {axis = 2 : i64, sizes = array<i64: 4, 4, 4>}
// ATTN: trainopt.reshape %{{.*}} : tensor<2x4x4xf32> -> tensor<2x4x1x4xf32>
// ATTN: trainopt.matmul %{{.*}}, %{{.*}} : (tensor<2x1x4x4xf32>, tensor<2x1x4x4xf32>) -> tensor<2x1x4x4xf32>
// ATTN: trainopt.where %{{.*}}, %{{.*}}, %{{.*}} : (tensor<4x4xi1>, tensor<f32>, tensor<2x1x4x4xf32>) -> tensor<2x1x4x4xf32>
// ATTN: trainopt.softmax %{{.*}} {axis = 3 : i64} : tensor<2x1x4x4xf32>
// ATTN: trainopt.reshape %{{.*}} : tensor<2x4x1x4xf32> -> tensor<2x4x4xf32>
// ATTN: %[[P:.*]] = trainopt.matmul %{{.*}}, %{{.*}} : (tensor<2x4x4xf32>, tensor<4x8xf32>) -> tensor<2x4x8xf32>
// ATTN-NEXT: %[[S:.*]] = trainopt.all_reduce sum %[[P]] on @mesh axes = [0] : tensor<2x4x8xf32>
// ATTN-NEXT: trainopt.reduce_sum %[[S]]

// 4 ranks cannot split 2 heads: the attention stays replicated, and the
// decision says why.
// ATTN4: wqkv = "replicated over tp: a reshape of the attention does not make a dim of whole heads that tp=4 divides"

