// RUN: trainopt-opt %s --trainopt-convert-to-linalg --trainopt-fuse-elementwise --trainopt-outline-kernels | FileCheck %s

// The step program keeps library ops and views; each fused generic becomes
// a kernel function. bias-add and relu fuse (same size, one use); the
// scalar mean does not fuse into anything larger (the sum accumulates in
// f64; the mean rounds it).
// CHECK-LABEL: func.func @train_step
// CHECK: %[[MM:.*]] = trainopt.matmul
// CHECK: %[[K0:.*]] = call @train_step_k0(%[[MM]], %{{.*}}) : (tensor<4x8xf32>, tensor<8xf32>) -> tensor<4x8xf32>
// CHECK: %[[R:.*]] = trainopt.reshape %[[K0]]
// CHECK: call @train_step_k1(%[[R]])
// CHECK: return
// CHECK: func.func private @train_step_k0({{.*}}) -> tensor<4x8xf32> attributes {trainopt.elementwise, trainopt.kernel}
// CHECK: linalg.generic
// CHECK: arith.addf
// CHECK: arith.select
// CHECK-NOT: linalg.generic
// CHECK: return
// CHECK: func.func private @train_step_k1({{.*}}) -> tensor<f64> attributes {trainopt.kernel}
// CHECK: linalg.fill
// CHECK: linalg.generic {{.*}}"reduction"
func.func @train_step(%x: tensor<4x16xf32>, %w: tensor<16x8xf32>, %b: tensor<8xf32>) -> tensor<f32> {
  %0 = trainopt.matmul %x, %w : (tensor<4x16xf32>, tensor<16x8xf32>) -> tensor<4x8xf32>
  %1 = trainopt.add %0, %b : (tensor<4x8xf32>, tensor<8xf32>) -> tensor<4x8xf32>
  %2 = trainopt.relu %1 : tensor<4x8xf32>
  %3 = trainopt.reshape %2 : tensor<4x8xf32> -> tensor<32xf32>
  %4 = trainopt.reduce_mean %3 : (tensor<32xf32>) -> tensor<f32>
  return %4 : tensor<f32>
}
