// RUN: trainopt-opt %s -split-input-file -canonicalize | FileCheck %s

// Shape arithmetic on constants folds away (what ONNX Shape subgraphs become).
// CHECK-LABEL: func.func @shape_arith
// CHECK-NEXT: %[[C:.*]] = trainopt.constant dense<[8, 3, 1]> : tensor<3xi64>
// CHECK-NEXT: return %[[C]]
func.func @shape_arith() -> tensor<3xi64> {
  %s = trainopt.constant dense<[8, 3, 2]> : tensor<3xi64>
  %i = trainopt.constant dense<[0, 1]> : tensor<2xi64>
  %g = trainopt.gather %s, %i {axis = 0 : i64} : (tensor<3xi64>, tensor<2xi64>) -> tensor<2xi64>
  %two = trainopt.constant dense<2> : tensor<i64>
  %h = trainopt.slice %s {start = array<i64: 2>, limit = array<i64: 3>, stride = array<i64: 1>} : (tensor<3xi64>) -> tensor<1xi64>
  %d = trainopt.div %h, %two : (tensor<1xi64>, tensor<i64>) -> tensor<1xi64>
  %c = trainopt.concat %g, %d {axis = 0 : i64} : (tensor<2xi64>, tensor<1xi64>) -> tensor<3xi64>
  return %c : tensor<3xi64>
}

// -----

// CHECK-LABEL: func.func @identities
// CHECK-SAME: (%[[X:.*]]: tensor<4x8xf32>)
// CHECK-NEXT: return %[[X]]
func.func @identities(%x: tensor<4x8xf32>) -> tensor<4x8xf32> {
  %zero = trainopt.constant dense<0.0> : tensor<f32>
  %one = trainopt.constant dense<1.0> : tensor<8xf32>
  %0 = trainopt.add %x, %zero : (tensor<4x8xf32>, tensor<f32>) -> tensor<4x8xf32>
  %1 = trainopt.mul %0, %one : (tensor<4x8xf32>, tensor<8xf32>) -> tensor<4x8xf32>
  %2 = trainopt.cast %1 : tensor<4x8xf32> to tensor<4x8xf32>
  %3 = trainopt.reshape %2 : tensor<4x8xf32> -> tensor<4x8xf32>
  %4 = trainopt.transpose %3 {permutation = array<i64: 0, 1>} : (tensor<4x8xf32>) -> tensor<4x8xf32>
  %5 = trainopt.broadcast_to %4 : tensor<4x8xf32> -> tensor<4x8xf32>
  return %5 : tensor<4x8xf32>
}

// -----

// Chains of reshapes and transposes collapse.
// CHECK-LABEL: func.func @chains
// CHECK-SAME: (%[[X:.*]]: tensor<2x3x4xf32>)
// CHECK-NEXT: %[[R:.*]] = trainopt.reshape %[[X]] : tensor<2x3x4xf32> -> tensor<24xf32>
// CHECK-NEXT: %[[T:.*]] = trainopt.transpose %[[X]] {permutation = array<i64: 2, 0, 1>}
// CHECK-NEXT: return %[[R]], %[[T]]
func.func @chains(%x: tensor<2x3x4xf32>) -> (tensor<24xf32>, tensor<4x2x3xf32>) {
  %0 = trainopt.reshape %x : tensor<2x3x4xf32> -> tensor<6x4xf32>
  %1 = trainopt.reshape %0 : tensor<6x4xf32> -> tensor<24xf32>
  %2 = trainopt.transpose %x {permutation = array<i64: 1, 0, 2>} : (tensor<2x3x4xf32>) -> tensor<3x2x4xf32>
  %3 = trainopt.transpose %2 {permutation = array<i64: 2, 1, 0>} : (tensor<3x2x4xf32>) -> tensor<4x2x3xf32>
  return %1, %3 : tensor<24xf32>, tensor<4x2x3xf32>
}

// -----

// A causal mask built from constants folds to one constant.
// CHECK-LABEL: func.func @causal_mask
// CHECK-NEXT: %[[M:.*]] = trainopt.constant dense<{{\[}}[true, false, false], [true, true, false], [true, true, true]]> : tensor<3x3xi1>
// CHECK-NEXT: return %[[M]]
func.func @causal_mask() -> tensor<3x3xi1> {
  %ones = trainopt.constant dense<1.0> : tensor<3x3xf32>
  %tri = trainopt.trilu %ones : tensor<3x3xf32>
  %b = trainopt.cast %tri : tensor<3x3xf32> to tensor<3x3xi1>
  return %b : tensor<3x3xi1>
}

// -----

// Comparisons, select and casts on constants.
// CHECK-LABEL: func.func @compare_select
// CHECK-DAG: %[[A:.*]] = trainopt.constant dense<[false, true, false]> : tensor<3xi1>
// CHECK-DAG: %[[F:.*]] = trainopt.constant dense<[1.000000e+00, 2.500000e+00, -3.000000e+00]> : tensor<3xf32>
// CHECK: return %[[A]], %[[F]], %{{.*}}
func.func @compare_select(%x: tensor<3xf32>, %y: tensor<3xf32>) -> (tensor<3xi1>, tensor<3xf32>, tensor<3xf32>) {
  %a = trainopt.constant dense<[1, 5, 3]> : tensor<3xi64>
  %b = trainopt.constant dense<4> : tensor<i64>
  %gt = trainopt.greater %a, %b : (tensor<3xi64>, tensor<i64>) -> tensor<3xi1>
  %f = trainopt.constant dense<[1.0, 2.5, -3.0]> : tensor<3xf64>
  %ff = trainopt.cast %f : tensor<3xf64> to tensor<3xf32>
  %t = trainopt.constant dense<true> : tensor<i1>
  %w = trainopt.where %t, %x, %y : (tensor<i1>, tensor<3xf32>, tensor<3xf32>) -> tensor<3xf32>
  return %gt, %ff, %w : tensor<3xi1>, tensor<3xf32>, tensor<3xf32>
}

// -----

// Cast chains fold where the middle type holds the first exactly:
// bf16 -> f32 -> bf16 is the value itself, bf16 -> f32 -> f16 is one cast
// bf16 -> f16; f32 -> bf16 -> f32 rounds and stays.
// CHECK-LABEL: func.func @cast_chains
// CHECK-SAME: (%[[X:[^:]*]]: tensor<4xbf16>, %[[Y:[^:]*]]: tensor<4xf32>)
// CHECK-NEXT: %[[D:.*]] = trainopt.cast %[[Y]] : tensor<4xf32> to tensor<4xbf16>
// CHECK-NEXT: %[[U:.*]] = trainopt.cast %[[D]] : tensor<4xbf16> to tensor<4xf32>
// CHECK-NEXT: %[[H:.*]] = trainopt.cast %[[X]] : tensor<4xbf16> to tensor<4xf16>
// CHECK-NEXT: return %[[X]], %[[U]], %[[H]]
func.func @cast_chains(%x: tensor<4xbf16>, %y: tensor<4xf32>) -> (tensor<4xbf16>, tensor<4xf32>, tensor<4xf16>) {
  %0 = trainopt.cast %x : tensor<4xbf16> to tensor<4xf32>
  %1 = trainopt.cast %0 : tensor<4xf32> to tensor<4xbf16>
  %2 = trainopt.cast %y : tensor<4xf32> to tensor<4xbf16>
  %3 = trainopt.cast %2 : tensor<4xbf16> to tensor<4xf32>
  %4 = trainopt.cast %0 : tensor<4xf32> to tensor<4xf16>
  return %1, %3, %4 : tensor<4xbf16>, tensor<4xf32>, tensor<4xf16>
}
