// RUN: trainopt-opt %s --trainopt-convert-to-linalg --trainopt-fuse-elementwise | FileCheck %s

// BatchNorm's backward in miniature: `x - mean` is read by a reduction and
// by an elementwise op. One full-size input, two uses: recomputing it in
// both (2 reads) beats writing it (1 read, 1 write, 2 reads). Both the
// reduction and the output read x and compute the difference themselves.
// CHECK-LABEL: func.func @centered(
// CHECK-SAME: %[[X:[^:]*]]: tensor<8x16xf32>, %[[M:[^:]*]]: tensor<1x16xf32>, %[[G:[^:]*]]: tensor<8x16xf32>
// CHECK: linalg.generic {{.*}}iterator_types = ["reduction", "parallel", "parallel"]} ins(%[[G]], %[[X]], %[[M]] :
// CHECK: arith.subf
// CHECK: linalg.generic {{.*}} ins(%{{.*}} : tensor<1x16xf64>)
// CHECK: %[[Y:.*]] = linalg.generic {{.*}} ins(%[[X]], %[[M]], %{{.*}} :
// CHECK: arith.subf
// CHECK-NOT: linalg.generic
// CHECK: return %[[Y]]
func.func @centered(%x: tensor<8x16xf32>, %m: tensor<1x16xf32>, %g: tensor<8x16xf32>) -> tensor<8x16xf32> {
  %mb = trainopt.broadcast_to %m : tensor<1x16xf32> -> tensor<8x16xf32>
  %c = trainopt.sub %x, %mb : (tensor<8x16xf32>, tensor<8x16xf32>) -> tensor<8x16xf32>
  %gc = trainopt.mul %g, %c : (tensor<8x16xf32>, tensor<8x16xf32>) -> tensor<8x16xf32>
  %dot = trainopt.reduce_sum %gc {axes = array<i64: 0>, keepdims = true} : (tensor<8x16xf32>) -> tensor<1x16xf32>
  %db = trainopt.broadcast_to %dot : tensor<1x16xf32> -> tensor<8x16xf32>
  %y = trainopt.mul %c, %db : (tensor<8x16xf32>, tensor<8x16xf32>) -> tensor<8x16xf32>
  return %y : tensor<8x16xf32>
}

// A transpose is not recomputed: each user would read x across its rows.
// It is written once and both users read it.
// CHECK-LABEL: func.func @transposed(
// CHECK: %[[T:.*]] = linalg.generic {{.*}} ins(%arg0 : tensor<16x8xf32>)
// CHECK: linalg.generic {{.*}} ins(%[[T]] : tensor<8x16xf32>)
// CHECK: linalg.generic {{.*}} ins(%[[T]], %{{.*}} : tensor<8x16xf32>, tensor<f32>)
func.func @transposed(%x: tensor<16x8xf32>) -> tensor<8x16xf32> {
  %t = trainopt.transpose %x {permutation = array<i64: 1, 0>} : (tensor<16x8xf32>) -> tensor<8x16xf32>
  %s = trainopt.reduce_sum %t : (tensor<8x16xf32>) -> tensor<f32>
  %sb = trainopt.broadcast_to %s : tensor<f32> -> tensor<8x16xf32>
  %y = trainopt.mul %t, %sb : (tensor<8x16xf32>, tensor<8x16xf32>) -> tensor<8x16xf32>
  return %y : tensor<8x16xf32>
}

// Nor is a transcendental op: GELU's erf, recomputed in its backward, cost
// GPT more than the memory it saved.
// CHECK-LABEL: func.func @transcendental(
// CHECK: %[[E:.*]] = linalg.generic {{.*}} ins(%arg0 : tensor<8x16xf32>)
// CHECK: math.exp
// CHECK: linalg.generic {{.*}} ins(%[[E]] : tensor<8x16xf32>)
// CHECK: linalg.generic {{.*}} ins(%[[E]], %{{.*}} : tensor<8x16xf32>, tensor<f32>)
// CHECK-NOT: math.exp
func.func @transcendental(%x: tensor<8x16xf32>) -> tensor<8x16xf32> {
  %e = trainopt.exp %x : tensor<8x16xf32>
  %s = trainopt.reduce_sum %e : (tensor<8x16xf32>) -> tensor<f32>
  %sb = trainopt.broadcast_to %s : tensor<f32> -> tensor<8x16xf32>
  %y = trainopt.mul %e, %sb : (tensor<8x16xf32>, tensor<8x16xf32>) -> tensor<8x16xf32>
  return %y : tensor<8x16xf32>
}

// Nor is a producer with a use that cannot absorb it (here the return):
// it would be written anyway.
// CHECK-LABEL: func.func @returned(
// CHECK: %[[C:.*]] = linalg.generic {{.*}} ins(%arg0, %arg1 :
// CHECK: linalg.generic {{.*}} ins(%[[C]] : tensor<8x16xf32>)
// CHECK-NOT: arith.subf
// CHECK: return %[[C]],
func.func @returned(%x: tensor<8x16xf32>, %z: tensor<8x16xf32>) -> (tensor<8x16xf32>, tensor<f32>) {
  %c = trainopt.sub %x, %z : (tensor<8x16xf32>, tensor<8x16xf32>) -> tensor<8x16xf32>
  %s = trainopt.reduce_sum %c : (tensor<8x16xf32>) -> tensor<f32>
  return %c, %s : tensor<8x16xf32>, tensor<f32>
}
