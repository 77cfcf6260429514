// RUN: trainopt-opt %s -split-input-file | FileCheck %s
// Round trip: printing then re-parsing gives the same module.
// RUN: trainopt-opt %s -split-input-file | trainopt-opt -split-input-file | FileCheck %s

// CHECK: trainopt.parameter @fc.weight trainable : tensor<10x784xf32>
// CHECK: trainopt.parameter @"onnx::bias" frozen : tensor<10xf32> = dense<5.000000e-01> : tensor<10xf32>
trainopt.parameter @fc.weight trainable : tensor<10x784xf32>
trainopt.parameter @"onnx::bias" frozen : tensor<10xf32> = dense<0.5> : tensor<10xf32>
// CHECK-LABEL: func.func @mlp
// CHECK-SAME: {trainopt.param = @fc.weight}
// CHECK-SAME: {trainopt.input = "x"}
// CHECK-SAME: {trainopt.output = "logits"}
func.func @mlp(%w: tensor<10x784xf32> {trainopt.param = @fc.weight},
               %b: tensor<10xf32> {trainopt.param = @"onnx::bias"},
               %x: tensor<32x784xf32> {trainopt.input = "x"})
    -> (tensor<32x10xf32> {trainopt.output = "logits"}) {
  // CHECK: %[[MM:.*]] = trainopt.matmul %{{.*}}, %{{.*}} {transpose_rhs = true} : (tensor<32x784xf32>, tensor<10x784xf32>) -> tensor<32x10xf32>
  %0 = trainopt.matmul %x, %w {transpose_rhs = true} : (tensor<32x784xf32>, tensor<10x784xf32>) -> tensor<32x10xf32>
  // CHECK: trainopt.add %[[MM]], %{{.*}} : (tensor<32x10xf32>, tensor<10xf32>) -> tensor<32x10xf32>
  %1 = trainopt.add %0, %b : (tensor<32x10xf32>, tensor<10xf32>) -> tensor<32x10xf32>
  return %1 : tensor<32x10xf32>
}

// -----

// CHECK-LABEL: func.func @unary
func.func @unary(%x: tensor<4x8xf32>, %m: tensor<4x8xi1>) -> tensor<4x8xf32> {
  // CHECK: trainopt.neg
  %0 = trainopt.neg %x : tensor<4x8xf32>
  // CHECK: trainopt.abs
  %1 = trainopt.abs %0 : tensor<4x8xf32>
  // CHECK: trainopt.exp
  %2 = trainopt.exp %1 : tensor<4x8xf32>
  // CHECK: trainopt.log
  %3 = trainopt.log %2 : tensor<4x8xf32>
  // CHECK: trainopt.sqrt
  %4 = trainopt.sqrt %3 : tensor<4x8xf32>
  // CHECK: trainopt.rsqrt
  %5 = trainopt.rsqrt %4 : tensor<4x8xf32>
  // CHECK: trainopt.reciprocal
  %6 = trainopt.reciprocal %5 : tensor<4x8xf32>
  // CHECK: trainopt.tanh
  %7 = trainopt.tanh %6 : tensor<4x8xf32>
  // CHECK: trainopt.sigmoid
  %8 = trainopt.sigmoid %7 : tensor<4x8xf32>
  // CHECK: trainopt.relu
  %9 = trainopt.relu %8 : tensor<4x8xf32>
  // CHECK: trainopt.erf
  %10 = trainopt.erf %9 : tensor<4x8xf32>
  // CHECK: trainopt.sin
  %11 = trainopt.sin %10 : tensor<4x8xf32>
  // CHECK: trainopt.cos
  %12 = trainopt.cos %11 : tensor<4x8xf32>
  // CHECK: trainopt.floor
  %13 = trainopt.floor %12 : tensor<4x8xf32>
  // CHECK: trainopt.ceil
  %14 = trainopt.ceil %13 : tensor<4x8xf32>
  // CHECK: trainopt.gelu %{{.*}} : tensor<4x8xf32>
  %15 = trainopt.gelu %14 : tensor<4x8xf32>
  // CHECK: trainopt.gelu %{{.*}} approximation = tanh : tensor<4x8xf32>
  %16 = trainopt.gelu %15 approximation = tanh : tensor<4x8xf32>
  // CHECK: trainopt.clip %{{.*}} {max = 6.000000e+00 : f64, min = 0.000000e+00 : f64} : tensor<4x8xf32>
  %17 = trainopt.clip %16 {min = 0.0 : f64, max = 6.0 : f64} : tensor<4x8xf32>
  // CHECK: trainopt.not %{{.*}} : tensor<4x8xi1>
  %18 = trainopt.not %m : tensor<4x8xi1>
  return %17 : tensor<4x8xf32>
}

// -----

// CHECK-LABEL: func.func @binary
func.func @binary(%a: tensor<4x8xf32>, %b: tensor<8xf32>, %i: tensor<4xi64>, %j: tensor<i64>) -> tensor<4x8xf32> {
  // CHECK: trainopt.sub %{{.*}}, %{{.*}} : (tensor<4x8xf32>, tensor<8xf32>) -> tensor<4x8xf32>
  %0 = trainopt.sub %a, %b : (tensor<4x8xf32>, tensor<8xf32>) -> tensor<4x8xf32>
  // CHECK: trainopt.mul
  %1 = trainopt.mul %0, %b : (tensor<4x8xf32>, tensor<8xf32>) -> tensor<4x8xf32>
  // CHECK: trainopt.div
  %2 = trainopt.div %1, %b : (tensor<4x8xf32>, tensor<8xf32>) -> tensor<4x8xf32>
  // CHECK: trainopt.pow
  %3 = trainopt.pow %2, %b : (tensor<4x8xf32>, tensor<8xf32>) -> tensor<4x8xf32>
  // CHECK: trainopt.max
  %4 = trainopt.max %3, %b : (tensor<4x8xf32>, tensor<8xf32>) -> tensor<4x8xf32>
  // CHECK: trainopt.min
  %5 = trainopt.min %4, %b : (tensor<4x8xf32>, tensor<8xf32>) -> tensor<4x8xf32>
  // CHECK: trainopt.equal %{{.*}}, %{{.*}} : (tensor<4xi64>, tensor<i64>) -> tensor<4xi1>
  %6 = trainopt.equal %i, %j : (tensor<4xi64>, tensor<i64>) -> tensor<4xi1>
  // CHECK: trainopt.less
  %7 = trainopt.less %i, %j : (tensor<4xi64>, tensor<i64>) -> tensor<4xi1>
  // CHECK: trainopt.less_equal
  %8 = trainopt.less_equal %i, %j : (tensor<4xi64>, tensor<i64>) -> tensor<4xi1>
  // CHECK: trainopt.greater
  %9 = trainopt.greater %i, %j : (tensor<4xi64>, tensor<i64>) -> tensor<4xi1>
  // CHECK: trainopt.greater_equal
  %10 = trainopt.greater_equal %i, %j : (tensor<4xi64>, tensor<i64>) -> tensor<4xi1>
  // CHECK: trainopt.and
  %11 = trainopt.and %6, %7 : (tensor<4xi1>, tensor<4xi1>) -> tensor<4xi1>
  // CHECK: trainopt.or
  %12 = trainopt.or %11, %8 : (tensor<4xi1>, tensor<4xi1>) -> tensor<4xi1>
  // CHECK: trainopt.xor
  %13 = trainopt.xor %12, %9 : (tensor<4xi1>, tensor<4xi1>) -> tensor<4xi1>
  // CHECK: trainopt.cast %{{.*}} : tensor<4xi1> to tensor<4xf32>
  %14 = trainopt.cast %13 : tensor<4xi1> to tensor<4xf32>
  return %5 : tensor<4x8xf32>
}

// -----

// CHECK-LABEL: func.func @reductions
func.func @reductions(%x: tensor<4x8xf32>) -> (tensor<4x1xf32>, tensor<f32>, tensor<8xf32>, tensor<4xf32>, tensor<4xi64>) {
  // CHECK: trainopt.reduce_sum %{{.*}} {axes = array<i64: 1>, keepdims = true} : (tensor<4x8xf32>) -> tensor<4x1xf32>
  %0 = trainopt.reduce_sum %x {axes = array<i64: 1>, keepdims = true} : (tensor<4x8xf32>) -> tensor<4x1xf32>
  // CHECK: trainopt.reduce_mean %{{.*}} : (tensor<4x8xf32>) -> tensor<f32>
  %1 = trainopt.reduce_mean %x : (tensor<4x8xf32>) -> tensor<f32>
  // CHECK: trainopt.reduce_max
  %2 = trainopt.reduce_max %x {axes = array<i64: 0>} : (tensor<4x8xf32>) -> tensor<8xf32>
  // CHECK: trainopt.reduce_min
  %3 = trainopt.reduce_min %x {axes = array<i64: 1>} : (tensor<4x8xf32>) -> tensor<4xf32>
  // CHECK: trainopt.argmax %{{.*}} {axis = 1 : i64} : (tensor<4x8xf32>) -> tensor<4xi64>
  %4 = trainopt.argmax %x {axis = 1 : i64} : (tensor<4x8xf32>) -> tensor<4xi64>
  return %0, %1, %2, %3, %4 : tensor<4x1xf32>, tensor<f32>, tensor<8xf32>, tensor<4xf32>, tensor<4xi64>
}

// -----

// CHECK-LABEL: func.func @selection
func.func @selection(%x: tensor<4x8xf32>, %k: tensor<i64>) -> tensor<f32> {
  // CHECK: trainopt.kth_smallest %{{.*}}, %{{.*}} : (tensor<4x8xf32>, tensor<i64>) -> tensor<f32>
  %0 = trainopt.kth_smallest %x, %k : (tensor<4x8xf32>, tensor<i64>) -> tensor<f32>
  return %0 : tensor<f32>
}

// -----

// The CNN of the foundation issue, batch 8.
// CHECK-LABEL: func.func @cnn
func.func @cnn(%x: tensor<8x1x28x28xf32>, %w1: tensor<32x1x3x3xf32>, %b1: tensor<32xf32>,
               %w2: tensor<64x32x3x3xf32>, %b2: tensor<64xf32>) -> tensor<8x9216xf32> {
  // CHECK: trainopt.conv %{{.*}}, %{{.*}}, %{{.*}} {dilations = array<i64: 1, 1>, padding = array<i64: 0, 0, 0, 0>, strides = array<i64: 1, 1>}
  %0 = trainopt.conv %x, %w1, %b1 {strides = array<i64: 1, 1>, padding = array<i64: 0, 0, 0, 0>, dilations = array<i64: 1, 1>}
      : (tensor<8x1x28x28xf32>, tensor<32x1x3x3xf32>, tensor<32xf32>) -> tensor<8x32x26x26xf32>
  %1 = trainopt.relu %0 : tensor<8x32x26x26xf32>
  %2 = trainopt.conv %1, %w2, %b2 {strides = array<i64: 1, 1>, padding = array<i64: 0, 0, 0, 0>, dilations = array<i64: 1, 1>}
      : (tensor<8x32x26x26xf32>, tensor<64x32x3x3xf32>, tensor<64xf32>) -> tensor<8x64x24x24xf32>
  %3 = trainopt.relu %2 : tensor<8x64x24x24xf32>
  // CHECK: trainopt.max_pool
  %4 = trainopt.max_pool %3 {kernel_shape = array<i64: 2, 2>, strides = array<i64: 2, 2>, padding = array<i64: 0, 0, 0, 0>, dilations = array<i64: 1, 1>}
      : (tensor<8x64x24x24xf32>) -> tensor<8x64x12x12xf32>
  // CHECK: trainopt.reshape %{{.*}} : tensor<8x64x12x12xf32> -> tensor<8x9216xf32>
  %5 = trainopt.reshape %4 : tensor<8x64x12x12xf32> -> tensor<8x9216xf32>
  return %5 : tensor<8x9216xf32>
}

// -----

// ResNet / MobileNetV2 pieces: BatchNorm both ways, depthwise conv, ReLU6, pooling.
// CHECK-LABEL: func.func @resnet_mobilenet
func.func @resnet_mobilenet(%x: tensor<2x16x8x8xf32>, %dw: tensor<16x1x3x3xf32>, %c: tensor<16xf32>)
    -> (tensor<2x16x8x8xf32>, tensor<16xf32>, tensor<16xf32>, tensor<2x16x4x4xf32>) {
  // CHECK: trainopt.conv {{.*}}groups = 16
  %0 = trainopt.conv %x, %dw {strides = array<i64: 1, 1>, padding = array<i64: 1, 1, 1, 1>, dilations = array<i64: 1, 1>, groups = 16 : i64}
      : (tensor<2x16x8x8xf32>, tensor<16x1x3x3xf32>) -> tensor<2x16x8x8xf32>
  // CHECK: %[[Y:.*]], %[[RM:.*]], %[[RV:.*]] = trainopt.batch_norm_train %{{.*}}, %{{.*}}, %{{.*}}, %{{.*}}, %{{.*}} : tensor<2x16x8x8xf32>, tensor<16xf32>
  %1:3 = trainopt.batch_norm_train %0, %c, %c, %c, %c {epsilon = 1.0e-5 : f64, momentum = 0.9 : f64} : tensor<2x16x8x8xf32>, tensor<16xf32>
  // CHECK: trainopt.batch_norm_inference %[[Y]], %{{.*}}, %{{.*}}, %[[RM]], %[[RV]]
  %2 = trainopt.batch_norm_inference %1#0, %c, %c, %1#1, %1#2 : tensor<2x16x8x8xf32>, tensor<16xf32>
  %3 = trainopt.clip %2 {min = 0.0 : f64, max = 6.0 : f64} : tensor<2x16x8x8xf32>
  // CHECK: trainopt.avg_pool
  %4 = trainopt.avg_pool %3 {kernel_shape = array<i64: 2, 2>, strides = array<i64: 2, 2>, padding = array<i64: 0, 0, 0, 0>, dilations = array<i64: 1, 1>}
      : (tensor<2x16x8x8xf32>) -> tensor<2x16x4x4xf32>
  return %3, %1#1, %1#2, %4 : tensor<2x16x8x8xf32>, tensor<16xf32>, tensor<16xf32>, tensor<2x16x4x4xf32>
}

// -----

// GPT-style decoder pieces.
// CHECK-LABEL: func.func @gpt
func.func @gpt(%ids: tensor<2x8xi64>, %table: tensor<100x64xf32>, %g: tensor<64xf32>, %wqkv: tensor<64x192xf32>,
               %seed: tensor<i64>) -> (tensor<2x4x8x8xf32>, tensor<2x8x64xf32>) {
  // CHECK: trainopt.gather %{{.*}}, %{{.*}} {axis = 0 : i64} : (tensor<100x64xf32>, tensor<2x8xi64>) -> tensor<2x8x64xf32>
  %e = trainopt.gather %table, %ids {axis = 0 : i64} : (tensor<100x64xf32>, tensor<2x8xi64>) -> tensor<2x8x64xf32>
  // CHECK: trainopt.layer_norm
  %n = trainopt.layer_norm %e, %g, %g {axis = 2 : i64, epsilon = 1.0e-5 : f64} : (tensor<2x8x64xf32>, tensor<64xf32>, tensor<64xf32>) -> tensor<2x8x64xf32>
  %qkv = trainopt.matmul %n, %wqkv : (tensor<2x8x64xf32>, tensor<64x192xf32>) -> tensor<2x8x192xf32>
  // CHECK: trainopt.split %{{.*}} {axis = 2 : i64, sizes = array<i64: 64, 64, 64>}
  %q, %k, %v = trainopt.split %qkv {axis = 2 : i64, sizes = array<i64: 64, 64, 64>}
      : (tensor<2x8x192xf32>) -> (tensor<2x8x64xf32>, tensor<2x8x64xf32>, tensor<2x8x64xf32>)
  %qr = trainopt.reshape %q : tensor<2x8x64xf32> -> tensor<2x8x4x16xf32>
  // CHECK: trainopt.transpose %{{.*}} {permutation = array<i64: 0, 2, 1, 3>}
  %qt = trainopt.transpose %qr {permutation = array<i64: 0, 2, 1, 3>} : (tensor<2x8x4x16xf32>) -> tensor<2x4x8x16xf32>
  // CHECK: trainopt.matmul %{{.*}}, %{{.*}} {transpose_rhs = true} : (tensor<2x4x8x16xf32>, tensor<2x4x8x16xf32>) -> tensor<2x4x8x8xf32>
  %s = trainopt.matmul %qt, %qt {transpose_rhs = true} : (tensor<2x4x8x16xf32>, tensor<2x4x8x16xf32>) -> tensor<2x4x8x8xf32>
  %ones = trainopt.constant dense<1.0> : tensor<8x8xf32>
  // CHECK: trainopt.trilu %{{.*}} : tensor<8x8xf32>
  %tri = trainopt.trilu %ones : tensor<8x8xf32>
  %zero = trainopt.constant dense<0.0> : tensor<f32>
  %mask = trainopt.equal %tri, %zero : (tensor<8x8xf32>, tensor<f32>) -> tensor<8x8xi1>
  %ninf = trainopt.constant dense<0xFF800000> : tensor<f32>
  // CHECK: trainopt.where %{{.*}}, %{{.*}}, %{{.*}} : (tensor<8x8xi1>, tensor<f32>, tensor<2x4x8x8xf32>) -> tensor<2x4x8x8xf32>
  %masked = trainopt.where %mask, %ninf, %s : (tensor<8x8xi1>, tensor<f32>, tensor<2x4x8x8xf32>) -> tensor<2x4x8x8xf32>
  // CHECK: trainopt.softmax %{{.*}} {axis = 3 : i64} : tensor<2x4x8x8xf32>
  %p = trainopt.softmax %masked {axis = 3 : i64} : tensor<2x4x8x8xf32>
  // CHECK: trainopt.log_softmax
  %lp = trainopt.log_softmax %p {axis = 3 : i64} : tensor<2x4x8x8xf32>
  // CHECK: trainopt.dropout %{{.*}}, %{{.*}} {ratio = 1.000000e-01 : f64} : tensor<2x4x8x8xf32>, tensor<i64> -> tensor<2x4x8x8xi1>
  %d, %dm = trainopt.dropout %lp, %seed {ratio = 0.1 : f64} : tensor<2x4x8x8xf32>, tensor<i64> -> tensor<2x4x8x8xi1>
  // CHECK: trainopt.concat %{{.*}}, %{{.*}} {axis = 2 : i64} : (tensor<2x8x64xf32>, tensor<2x8x64xf32>) -> tensor<2x8x128xf32>
  %cat = trainopt.concat %k, %v {axis = 2 : i64} : (tensor<2x8x64xf32>, tensor<2x8x64xf32>) -> tensor<2x8x128xf32>
  // CHECK: trainopt.slice %{{.*}} {limit = array<i64: 2, 8, 128>, start = array<i64: 0, 0, 64>, stride = array<i64: 1, 1, 1>} : (tensor<2x8x128xf32>) -> tensor<2x8x64xf32>
  %sl = trainopt.slice %cat {start = array<i64: 0, 0, 64>, limit = array<i64: 2, 8, 128>, stride = array<i64: 1, 1, 1>} : (tensor<2x8x128xf32>) -> tensor<2x8x64xf32>
  // CHECK: trainopt.broadcast_to %{{.*}} : tensor<64xf32> -> tensor<2x8x64xf32>
  %bg = trainopt.broadcast_to %g : tensor<64xf32> -> tensor<2x8x64xf32>
  // CHECK: trainopt.pad %{{.*}} {high = array<i64: 0, 1, 0>, low = array<i64: 0, 1, 0>} : (tensor<2x8x64xf32>) -> tensor<2x10x64xf32>
  %pd = trainopt.pad %bg {low = array<i64: 0, 1, 0>, high = array<i64: 0, 1, 0>, value = 0.0 : f64} : (tensor<2x8x64xf32>) -> tensor<2x10x64xf32>
  %y = trainopt.gelu %sl : tensor<2x8x64xf32>
  return %d, %y : tensor<2x4x8x8xf32>, tensor<2x8x64xf32>
}

// -----

// CHECK-LABEL: func.func @losses
func.func @losses(%logits: tensor<32x10xf32>, %labels: tensor<32xi64>, %w: tensor<10xf32>,
                  %tok: tensor<2x8x100xf32>, %tl: tensor<2x8xi64>, %p: tensor<32x1xf32>)
    -> (tensor<f32>, tensor<32xf32>, tensor<f32>, tensor<f32>, tensor<f32>) {
  // CHECK: trainopt.cross_entropy %{{.*}}, %{{.*}} {ignore_index = -100 : i64, label_smoothing = 1.000000e-01 : f64, reduction = #trainopt<reduction mean>} : (tensor<32x10xf32>, tensor<32xi64>) -> tensor<f32>
  %0 = trainopt.cross_entropy %logits, %labels {reduction = #trainopt<reduction mean>, ignore_index = -100 : i64, label_smoothing = 0.1 : f64}
      : (tensor<32x10xf32>, tensor<32xi64>) -> tensor<f32>
  // CHECK: trainopt.cross_entropy %{{.*}}, %{{.*}}, %{{.*}} {reduction = #trainopt<reduction none>} : (tensor<32x10xf32>, tensor<32xi64>, tensor<10xf32>) -> tensor<32xf32>
  %1 = trainopt.cross_entropy %logits, %labels, %w {reduction = #trainopt<reduction none>}
      : (tensor<32x10xf32>, tensor<32xi64>, tensor<10xf32>) -> tensor<32xf32>
  // CHECK: trainopt.cross_entropy {{.*}}class_axis = -1
  %2 = trainopt.cross_entropy %tok, %tl {class_axis = -1 : i64, reduction = #trainopt<reduction mean>}
      : (tensor<2x8x100xf32>, tensor<2x8xi64>) -> tensor<f32>
  // CHECK: trainopt.nll_loss
  %3 = trainopt.nll_loss %logits, %labels {reduction = #trainopt<reduction sum>} : (tensor<32x10xf32>, tensor<32xi64>) -> tensor<f32>
  // CHECK: trainopt.mse_loss
  %4 = trainopt.mse_loss %p, %p {reduction = #trainopt<reduction mean>} : (tensor<32x1xf32>, tensor<32x1xf32>) -> tensor<f32>
  return %0, %1, %2, %3, %4 : tensor<f32>, tensor<32xf32>, tensor<f32>, tensor<f32>, tensor<f32>
}

// -----

// Collectives run on an upstream shard.grid; a bucket is one all-reduce of
// several tensors of one element type.
// CHECK: shard.grid @mesh(shape = 2x2) {trainopt.axes = ["dp", "tp"]}
// CHECK-LABEL: func.func @collectives
// CHECK: %{{.*}}:2 = trainopt.all_reduce sum %{{.*}}, %{{.*}} on @mesh axes = [0] : tensor<10x4xf32>, tensor<10xf32>
// CHECK: trainopt.all_reduce max %{{.*}} on @mesh axes = [0, 1] : tensor<i64>
// CHECK: trainopt.grad_sync %{{.*}} {param = @w} : tensor<10x4xf32>
// CHECK: trainopt.rank_slice %{{.*}} on @mesh axes = [0] : tensor<8xf32> -> tensor<4xf32>
// CHECK: trainopt.all_gather %{{.*}} on @mesh axes = [0, 1] : tensor<4xf32> -> tensor<16xf32>
// CHECK: %{{.*}}:2 = trainopt.reduce_scatter sum %{{.*}}, %{{.*}} on @mesh axes = [0] : tensor<10x4xf32>, tensor<10xf32> -> tensor<5x4xf32>, tensor<5xf32>
// CHECK: trainopt.broadcast %{{.*}} on @mesh axes = [1] root = 1 : tensor<10xf32>
shard.grid @mesh(shape = 2x2) {trainopt.axes = ["dp", "tp"]}
func.func @collectives(%w: tensor<10x4xf32>, %b: tensor<10xf32>, %n: tensor<i64>)
    -> (tensor<10x4xf32>, tensor<10xf32>, tensor<i64>, tensor<10x4xf32>, tensor<16xf32>) {
  %0:2 = trainopt.all_reduce sum %w, %b on @mesh axes = [0] : tensor<10x4xf32>, tensor<10xf32>
  %1 = trainopt.all_reduce max %n on @mesh axes = [0, 1] : tensor<i64>
  %2 = trainopt.grad_sync %w {param = @w} : tensor<10x4xf32>
  %c = arith.constant dense<1.0> : tensor<8xf32>
  %3 = trainopt.rank_slice %c on @mesh axes = [0] : tensor<8xf32> -> tensor<4xf32>
  %4 = trainopt.all_gather %3 on @mesh axes = [0, 1] : tensor<4xf32> -> tensor<16xf32>
  %s:2 = trainopt.reduce_scatter sum %w, %b on @mesh axes = [0] : tensor<10x4xf32>, tensor<10xf32> -> tensor<5x4xf32>, tensor<5xf32>
  %5 = trainopt.broadcast %b on @mesh axes = [1] root = 1 : tensor<10xf32>
  return %0#0, %5, %1, %2, %4 : tensor<10x4xf32>, tensor<10xf32>, tensor<i64>, tensor<10x4xf32>, tensor<16xf32>
}

// -----

// Point to point between pipeline stages: a send and a receive along one
// axis, to the next stage and back. Neither is dropped unused.
// CHECK-LABEL: func.func @pipeline_transfers
// CHECK: trainopt.send %{{.*}} on @mesh axes = [1] offset = 1 : tensor<4x8xf32>
// CHECK: %{{.*}} = trainopt.recv on @mesh axes = [1] offset = -1 : tensor<4x8xf32>
// CHECK: trainopt.recv on @mesh axes = [1] offset = 1 : tensor<4x8xf32>
shard.grid @mesh(shape = 2x2) {trainopt.axes = ["dp", "pp"]}
func.func @pipeline_transfers(%x: tensor<4x8xf32>) -> tensor<4x8xf32> {
  trainopt.send %x on @mesh axes = [1] offset = 1 : tensor<4x8xf32>
  %0 = trainopt.recv on @mesh axes = [1] offset = -1 : tensor<4x8xf32>
  %1 = trainopt.recv on @mesh axes = [1] offset = 1 : tensor<4x8xf32>
  return %0 : tensor<4x8xf32>
}
