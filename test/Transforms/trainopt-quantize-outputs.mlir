// trainopt-quantize's output points: a matmul's output is taken after its
// bias add and the ReLU only it feeds; a convolution that a BatchNorm reads
// gets none (PyTorch folds such a BatchNorm first), nor does an output the
// model returns; an input reached from a quantized output is not quantized
// again.
// RUN: trainopt-opt %s -trainopt-quantize="quantize=int8" | FileCheck %s

// CHECK-DAG: trainopt.parameter @"fc.weight:output.observer_min" frozen : tensor<f32>
// CHECK-DAG: trainopt.parameter @"conv.weight:input.observer_min" frozen : tensor<f32>
// CHECK-DAG: trainopt.parameter @"fc.weight:input.observer_min" frozen : tensor<f32>
// NOBN-NOT: @"conv.weight:output
// NOBN-NOT: @"head.weight:input
// NOBN-NOT: @"head.weight:output
// RUN: trainopt-opt %s -trainopt-quantize="quantize=int8" | FileCheck %s --check-prefix=NOBN
// CHECK-LABEL: func.func @forward(
// The convolution's output goes to the BatchNorm as it is.
// CHECK: %[[C:.*]] = trainopt.conv
// CHECK-NEXT: trainopt.batch_norm_train %[[C]]
// The matmul's input (after ReLU, max-pool and reshape) gets its own point.
// CHECK: %[[R0:.*]] = trainopt.relu
// CHECK: %[[P:.*]] = trainopt.max_pool %[[R0]]
// CHECK: %[[F:.*]] = trainopt.reshape %[[P]]
// CHECK: %[[FQ:.*]] = trainopt.fake_quant %[[F]], {{.*}} {quant_max = 255 : i64, quant_min = 0 : i64} : (tensor<2x16xf32>
// CHECK: %[[M:.*]] = trainopt.matmul %[[FQ]], %{{.*}} {transpose_rhs = true}
// CHECK-NEXT: %[[B:.*]] = trainopt.add %[[M]], %{{.*}} : (tensor<2x8xf32>, tensor<8xf32>)
// CHECK-NEXT: %[[R:.*]] = trainopt.relu %[[B]]
// CHECK: %[[RQ2:.*]] = trainopt.fake_quant %[[R]], {{.*}} -> tensor<2x8xf32>
// The head reads the quantized output as its input.
// CHECK: %[[H:.*]] = trainopt.matmul %[[RQ2]]
// The model returns the head's output: it stays in float.
// CHECK-NOT: trainopt.fake_quant %[[H]]
// CHECK: return %[[H]]

trainopt.parameter @conv.weight trainable : tensor<4x2x3x3xf32>
trainopt.parameter @bn.scale trainable : tensor<4xf32>
trainopt.parameter @bn.bias trainable : tensor<4xf32>
trainopt.parameter @fc.weight trainable : tensor<8x16xf32>
trainopt.parameter @fc.bias trainable : tensor<8xf32>
trainopt.parameter @head.weight trainable : tensor<8x3xf32>
func.func @forward(%cw: tensor<4x2x3x3xf32> {trainopt.param = @conv.weight},
                   %s: tensor<4xf32> {trainopt.param = @bn.scale},
                   %b: tensor<4xf32> {trainopt.param = @bn.bias},
                   %fw: tensor<8x16xf32> {trainopt.param = @fc.weight},
                   %fb: tensor<8xf32> {trainopt.param = @fc.bias},
                   %hw: tensor<8x3xf32> {trainopt.param = @head.weight},
                   %m: tensor<4xf32>, %v: tensor<4xf32>,
                   %x: tensor<2x2x6x6xf32> {trainopt.input = "x"}) -> tensor<2x3xf32> {
  %c = trainopt.conv %x, %cw {dilations = array<i64: 1, 1>, padding = array<i64: 0, 0, 0, 0>, strides = array<i64: 1, 1>}
      : (tensor<2x2x6x6xf32>, tensor<4x2x3x3xf32>) -> tensor<2x4x4x4xf32>
  %n, %rm, %rv = trainopt.batch_norm_train %c, %s, %b, %m, %v : tensor<2x4x4x4xf32>, tensor<4xf32>
  %r = trainopt.relu %n : tensor<2x4x4x4xf32>
  %p = trainopt.max_pool %r {kernel_shape = array<i64: 2, 2>, strides = array<i64: 2, 2>, padding = array<i64: 0, 0, 0, 0>, dilations = array<i64: 1, 1>} : (tensor<2x4x4x4xf32>) -> tensor<2x4x2x2xf32>
  %f = trainopt.reshape %p : tensor<2x4x2x2xf32> -> tensor<2x16xf32>
  %y = trainopt.matmul %f, %fw {transpose_rhs = true} : (tensor<2x16xf32>, tensor<8x16xf32>) -> tensor<2x8xf32>
  %yb = trainopt.add %y, %fb : (tensor<2x8xf32>, tensor<8xf32>) -> tensor<2x8xf32>
  %yr = trainopt.relu %yb : tensor<2x8xf32>
  %h = trainopt.matmul %yr, %hw : (tensor<2x8xf32>, tensor<8x3xf32>) -> tensor<2x3xf32>
  return %h : tensor<2x3xf32>
}
