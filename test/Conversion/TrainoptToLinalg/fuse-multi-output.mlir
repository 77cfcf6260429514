// RUN: trainopt-opt %s --trainopt-convert-to-linalg --trainopt-fuse-elementwise --trainopt-outline-kernels | FileCheck %s

// SGD with momentum: the new momentum is read by the parameter update and
// returned as state. It fuses into the update as a second output of one
// kernel (its other use, the return, follows the update), instead of
// staying a kernel of its own that the update recomputes.
// CHECK-LABEL: func.func @train_step
// CHECK: %[[K:.*]]:2 = call @train_step_k0(%{{.*}}) : ({{.*}}) -> (tensor<64xf32>, tensor<64xf32>)
// CHECK-NOT: call @
// CHECK: return %[[K]]#{{[01]}}, %[[K]]#{{[01]}}
func.func @train_step(%p: tensor<64xf32>, %m: tensor<64xf32>, %g: tensor<64xf32>,
                      %mu: tensor<64xf32>, %lr: tensor<64xf32>) -> (tensor<64xf32>, tensor<64xf32>) {
  %0 = trainopt.mul %m, %mu : (tensor<64xf32>, tensor<64xf32>) -> tensor<64xf32>
  %1 = trainopt.add %0, %g : (tensor<64xf32>, tensor<64xf32>) -> tensor<64xf32>
  %2 = trainopt.mul %1, %lr : (tensor<64xf32>, tensor<64xf32>) -> tensor<64xf32>
  %3 = trainopt.sub %p, %2 : (tensor<64xf32>, tensor<64xf32>) -> tensor<64xf32>
  return %3, %1 : tensor<64xf32>, tensor<64xf32>
}

// A producer whose other use comes before the consumer is not fused that
// way (the fused op could not serve it). Here it has two full-size inputs
// and three uses, so recomputing it in each (6 reads) saves nothing over
// writing it once (2 reads, 1 write, 3 reads; fuse-recompute.mlir): it
// stays a kernel of its own.
// CHECK-LABEL: func.func @eval_step
// CHECK: %[[SUM:.*]] = call @eval_step_k0(
// CHECK: call @eval_step_k{{[0-9]+}}(%[[SUM]]) : (tensor<64xf32>) -> tensor<f64>
// CHECK: call @eval_step_k{{[0-9]+}}(%[[SUM]], %{{.*}}) : (tensor<64xf32>, tensor<64xf32>) -> tensor<64xf32>
// The train step's kernel: one generic, two outputs.
// CHECK-LABEL: func.func private @train_step_k0({{.*}}) -> (tensor<64xf32>, tensor<64xf32>) attributes {trainopt.elementwise, trainopt.kernel}
// CHECK: linalg.generic
// CHECK-NOT: linalg.generic
// CHECK: return
func.func @eval_step(%a: tensor<64xf32>, %b: tensor<64xf32>) -> (tensor<64xf32>, tensor<f32>, tensor<64xf32>) {
  %0 = trainopt.add %a, %b : (tensor<64xf32>, tensor<64xf32>) -> tensor<64xf32>
  %1 = trainopt.reduce_sum %0 : (tensor<64xf32>) -> tensor<f32>
  %2 = trainopt.mul %0, %a : (tensor<64xf32>, tensor<64xf32>) -> tensor<64xf32>
  %3 = trainopt.sub %0, %b : (tensor<64xf32>, tensor<64xf32>) -> tensor<64xf32>
  return %2, %1, %3 : tensor<64xf32>, tensor<f32>, tensor<64xf32>
}

// RUN: trainopt-opt %s --trainopt-convert-to-linalg --trainopt-fuse-elementwise | FileCheck --check-prefix=TWICE %s
// A consumer that reads the producer through two operands (a square)
// while the producer has another use: its operands are deduplicated first,
// then it fuses as any other, one kernel with both values as outputs (fused
// with the duplicate operand, it would read its own output through it).
// TWICE-LABEL: func.func @square(
// TWICE: %[[K:.*]]:2 = linalg.generic {{.*}} ins(%arg0, %arg1 :
// TWICE: %[[SUM:.*]] = arith.addf
// TWICE: %[[SQ:.*]] = arith.mulf %[[SUM]], %[[SUM]]
// TWICE: linalg.yield %[[SUM]], %[[SQ]]
// TWICE-NOT: linalg.generic
// TWICE: return %[[K]]#1, %[[K]]#0
func.func @square(%a: tensor<64xf32>, %b: tensor<64xf32>) -> (tensor<64xf32>, tensor<64xf32>) {
  %0 = trainopt.add %a, %b : (tensor<64xf32>, tensor<64xf32>) -> tensor<64xf32>
  %1 = trainopt.mul %0, %0 : (tensor<64xf32>, tensor<64xf32>) -> tensor<64xf32>
  return %1, %0 : tensor<64xf32>, tensor<64xf32>
}
