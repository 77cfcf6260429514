// RUN: trainopt-opt %s -trainopt-schedule-collectives | FileCheck %s

// Each all-reduce moves up to just after its inputs' last definition, but
// never above the collective before it: MPI matches a group's collectives
// in the order each rank starts them, and a pipeline's stages, which run
// different programs, must agree on that order. So the all-reduce of the
// argument %s stays after the others.
// CHECK-LABEL: func.func @train_step(
// CHECK-SAME: %[[X:.*]]: tensor<4xf32>, %[[S:.*]]: tensor<f32>
// CHECK-NEXT: %[[A:.*]] = call @k(%[[X]])
// CHECK-NEXT: %[[B:.*]] = call @k(%[[A]])
// CHECK-NEXT: %[[R1:.*]]:2 = trainopt.all_reduce sum %[[A]], %[[B]]
// CHECK-NEXT: %[[R2:.*]] = trainopt.all_reduce sum %[[B]]
// CHECK-NEXT: %[[R0:.*]] = trainopt.all_reduce sum %[[S]]
// CHECK-NEXT: %[[C:.*]] = call @k(%[[B]])
// CHECK-NEXT: %[[D:.*]] = call @k(%[[C]])
// CHECK-NEXT: return
shard.grid @mesh(shape = 2) {trainopt.axes = ["dp"]}
func.func private @k(%a: tensor<4xf32>) -> tensor<4xf32>
func.func @train_step(%x: tensor<4xf32>, %s: tensor<f32>)
    -> (tensor<4xf32>, tensor<4xf32>, tensor<4xf32>, tensor<4xf32>, tensor<f32>) {
  %a = call @k(%x) : (tensor<4xf32>) -> tensor<4xf32>
  %b = call @k(%a) : (tensor<4xf32>) -> tensor<4xf32>
  %c = call @k(%b) : (tensor<4xf32>) -> tensor<4xf32>
  %d = call @k(%c) : (tensor<4xf32>) -> tensor<4xf32>
  %r:2 = trainopt.all_reduce sum %a, %b on @mesh axes = [0] : tensor<4xf32>, tensor<4xf32>
  %q = trainopt.all_reduce sum %b on @mesh axes = [0] : tensor<4xf32>
  %t = trainopt.all_reduce sum %s on @mesh axes = [0] : tensor<f32>
  return %d, %r#0, %r#1, %q, %t : tensor<4xf32>, tensor<4xf32>, tensor<4xf32>, tensor<4xf32>, tensor<f32>
}
