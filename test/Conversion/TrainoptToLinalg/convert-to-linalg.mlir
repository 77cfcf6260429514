// RUN: trainopt-opt %s --trainopt-convert-to-linalg --split-input-file | FileCheck %s

// Broadcasting: the bias is read through a projected map.
// CHECK-DAG: #[[ID:.*]] = affine_map<(d0, d1) -> (d0, d1)>
// CHECK-DAG: #[[ROW:.*]] = affine_map<(d0, d1) -> (d1)>
// CHECK-LABEL: func.func @add_bias
// CHECK: %[[E:.*]] = tensor.empty() : tensor<4x8xf32>
// CHECK: linalg.generic {indexing_maps = [#[[ID]], #[[ROW]], #[[ID]]], iterator_types = ["parallel", "parallel"]}
// CHECK-SAME: ins(%{{.*}}, %{{.*}} : tensor<4x8xf32>, tensor<8xf32>) outs(%[[E]] : tensor<4x8xf32>)
// CHECK: arith.addf
func.func @add_bias(%x: tensor<4x8xf32>, %b: tensor<8xf32>) -> tensor<4x8xf32> {
  %0 = trainopt.add %x, %b : (tensor<4x8xf32>, tensor<8xf32>) -> tensor<4x8xf32>
  return %0 : tensor<4x8xf32>
}

// -----

// Size-1 dims broadcast through a constant 0.
// CHECK-DAG: #[[COL:.*]] = affine_map<(d0, d1) -> (d0, 0)>
// CHECK-LABEL: func.func @sub_column
// CHECK: linalg.generic {indexing_maps = [#{{.*}}, #[[COL]], #{{.*}}]
// CHECK: arith.subf
func.func @sub_column(%x: tensor<4x8xf32>, %m: tensor<4x1xf32>) -> tensor<4x8xf32> {
  %0 = trainopt.sub %x, %m : (tensor<4x8xf32>, tensor<4x1xf32>) -> tensor<4x8xf32>
  return %0 : tensor<4x8xf32>
}

// -----

// keepdims reductions keep a unit loop, so the result broadcasts back.
// Float sums accumulate in f64, then round once.
// CHECK-LABEL: func.func @reduce_keepdims
// CHECK: %[[INIT:.*]] = linalg.fill ins(%{{.*}} : f64) outs(%{{.*}} : tensor<4x1xf64>)
// CHECK: linalg.generic {{.*}} iterator_types = ["parallel", "reduction", "parallel"]
// CHECK-SAME: outs(%[[INIT]] : tensor<4x1xf64>)
// CHECK: arith.extf
// CHECK: arith.addf {{.*}} : f64
// CHECK: linalg.generic
// CHECK: arith.truncf
func.func @reduce_keepdims(%x: tensor<4x8xf32>) -> tensor<4x1xf32> {
  %0 = trainopt.reduce_sum %x {axes = array<i64: 1>, keepdims = true} : (tensor<4x8xf32>) -> tensor<4x1xf32>
  return %0 : tensor<4x1xf32>
}

// -----

// Cross-entropy: a stable log-softmax (max, exp-sum, log) and one
// reduction over classes that picks the label's term and its weight.
// CHECK-LABEL: func.func @cross_entropy
// CHECK: arith.maximumf
// CHECK: math.exp
// CHECK: math.log
// CHECK: linalg.index 1
// CHECK: arith.cmpi eq
// CHECK: arith.divf
// CHECK-NOT: trainopt.cross_entropy
func.func @cross_entropy(%x: tensor<4x10xf32>, %l: tensor<4xi64>) -> tensor<f32> {
  %0 = trainopt.cross_entropy %x, %l {reduction = #trainopt<reduction mean>} : (tensor<4x10xf32>, tensor<4xi64>) -> tensor<f32>
  return %0 : tensor<f32>
}

// -----

// Library ops (concat among them: row copies) and views stay for the
// backend.
// CHECK-LABEL: func.func @library
// CHECK: trainopt.matmul
// CHECK: trainopt.conv
// CHECK: trainopt.reshape
// CHECK: trainopt.concat %{{.*}}, %{{.*}} {axis = 1 : i64}
// CHECK-NOT: linalg.generic
func.func @library(%a: tensor<4x8xf32>, %b: tensor<8x16xf32>, %x: tensor<1x1x8x8xf32>, %w: tensor<2x1x3x3xf32>) -> (tensor<4x16xf32>, tensor<1x72xf32>, tensor<4x24xf32>) {
  %0 = trainopt.matmul %a, %b : (tensor<4x8xf32>, tensor<8x16xf32>) -> tensor<4x16xf32>
  %1 = trainopt.conv %x, %w {strides = array<i64: 1, 1>, padding = array<i64: 0, 0, 0, 0>, dilations = array<i64: 1, 1>} : (tensor<1x1x8x8xf32>, tensor<2x1x3x3xf32>) -> tensor<1x2x6x6xf32>
  %2 = trainopt.reshape %1 : tensor<1x2x6x6xf32> -> tensor<1x72xf32>
  %3 = trainopt.concat %a, %0 {axis = 1 : i64} : (tensor<4x8xf32>, tensor<4x16xf32>) -> tensor<4x24xf32>
  return %0, %2, %3 : tensor<4x16xf32>, tensor<1x72xf32>, tensor<4x24xf32>
}

// -----

// Dropout draws the evaluator's counter-based random numbers (splitmix64).
// CHECK-LABEL: func.func @dropout
// CHECK: arith.constant -7046029254386353131 : i64
// CHECK: arith.shrui
// CHECK: arith.uitofp
// CHECK: arith.cmpf oge
func.func @dropout(%x: tensor<8xf32>, %s: tensor<i64>) -> tensor<8xf32> {
  %y, %m = trainopt.dropout %x, %s {ratio = 0.5 : f64} : tensor<8xf32>, tensor<i64> -> tensor<8xi1>
  return %y : tensor<8xf32>
}

// -----

// Neither of f16 and bf16 holds the other: a cast between them goes through
// f32, which holds both (one rounding). Sums of bf16 accumulate in f32.
// CHECK-LABEL: func.func @f16_to_bf16
// CHECK: %[[W:.*]] = arith.extf %{{.*}} : f16 to f32
// CHECK: arith.truncf %[[W]] : f32 to bf16
// CHECK-LABEL: func.func @sum_bf16
// CHECK: linalg.fill ins(%{{.*}} : f32) outs(%{{.*}} : tensor<f32>)
// CHECK: arith.extf %{{.*}} : bf16 to f32
// CHECK: arith.addf %{{.*}}, %{{.*}} : f32
// CHECK: arith.truncf %{{.*}} : f32 to bf16
func.func @f16_to_bf16(%x: tensor<4xf16>) -> tensor<4xbf16> {
  %0 = trainopt.cast %x : tensor<4xf16> to tensor<4xbf16>
  return %0 : tensor<4xbf16>
}
func.func @sum_bf16(%x: tensor<4x8xbf16>) -> tensor<bf16> {
  %0 = trainopt.reduce_sum %x : (tensor<4x8xbf16>) -> tensor<bf16>
  return %0 : tensor<bf16>
}

