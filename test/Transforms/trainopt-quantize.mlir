// trainopt-quantize: fake_quant on the weight of every conv and matmul with
// a trainable weight, and on the activation it multiplies; observers are
// frozen parameters the model assigns (trainopt.assign).
// RUN: trainopt-opt %s -trainopt-quantize="quantize=int8" | FileCheck %s
// RUN: trainopt-opt %s -trainopt-quantize="quantize=int8" | FileCheck %s --check-prefix=POINTS
// RUN: trainopt-opt %s -trainopt-quantize="quantize=int8 quantize-outputs=false" | FileCheck %s --check-prefix=NOOUT
// RUN: trainopt-opt %s -trainopt-quantize="quantize=int8 quantize-reduce-range=true" | FileCheck %s --check-prefix=REDUCE
// RUN: trainopt-opt %s -trainopt-quantize="quantize=int4 quantize-granularity=per-tensor quantize-weight-scheme=affine quantize-activations=false observer-freeze-step=100 quantize-exclude=head.*" | FileCheck %s --check-prefix=INT4
// RUN: trainopt-opt %s -trainopt-quantize="quantize=int8" -trainopt-build-eval-step | FileCheck %s --check-prefix=EVAL

// The states, zero until the first observation sets them.
// CHECK-DAG: trainopt.parameter @qat.observations frozen : tensor<i64> = dense<0> : tensor<i64>
// CHECK-DAG: trainopt.parameter @conv.weight.observer_min frozen : tensor<4xf32> = dense<0.000000e+00> : tensor<4xf32>
// CHECK-DAG: trainopt.parameter @"conv.weight:input.observer_max" frozen : tensor<f32>
// CHECK-DAG: trainopt.parameter @head.weight.observer_max frozen : tensor<3xf32>
// CHECK-DAG: trainopt.parameter @"conv.weight:output.observer_min" frozen : tensor<f32>
// No observer for the frozen weight; none for the matmuls' input, which
// comes from the conv's quantized output through reshape and slice (they
// keep its values on its grid).
// POINTS-NOT: @fixed.weight.observer
// POINTS-NOT: @"head.weight:input
// POINTS-NOT: @"fc.weight:input
// POINTS-NOT: @"fixed.weight:output
// Nor for the matmuls' outputs, which the model returns (logits stay float).
// POINTS-NOT: @"head.weight:output
// POINTS-NOT: @"fc.weight:output
// CHECK-LABEL: func.func @forward(
// CHECK-SAME: %[[CW:[a-z0-9]+]]: tensor<4x2x3x3xf32> {trainopt.param = @conv.weight}
// CHECK-SAME: %[[X:[a-z0-9]+]]: tensor<2x2x5x5xf32> {trainopt.input = "x"}
// CHECK-SAME: %[[N:[a-z0-9]+]]: tensor<i64> {trainopt.param = @qat.observations}
// CHECK-SAME: %[[CMIN:[a-z0-9]+]]: tensor<4xf32> {trainopt.param = @conv.weight.observer_min}
// The first observation sets the range, later ones move it by 0.01.
// CHECK: %[[FIRST:.*]] = trainopt.equal %[[N]], %{{.*}} : (tensor<i64>, tensor<i64>) -> tensor<i1>
// CHECK: %[[WMIN:.*]] = trainopt.reduce_min %[[CW]] {axes = array<i64: 1, 2, 3>} : (tensor<4x2x3x3xf32>) -> tensor<4xf32>
// CHECK: %[[D:.*]] = trainopt.sub %[[WMIN]], %[[CMIN]]
// CHECK: %[[K:.*]] = trainopt.constant dense<0.00999999977> : tensor<f32>
// CHECK: %[[M:.*]] = trainopt.mul %[[D]], %[[K]]
// CHECK: %[[MOVED:.*]] = trainopt.add %[[CMIN]], %[[M]]
// CHECK: %[[NEWMIN:.*]] = trainopt.where %[[FIRST]], %[[WMIN]], %[[MOVED]]
// Symmetric int8: max(|min|, |max|) / 127.5, per output channel.
// CHECK: trainopt.constant dense<1.275000e+02> : tensor<f32>
// CHECK: %[[WQ:.*]] = trainopt.fake_quant %[[CW]], %{{.*}}, %{{.*}} {quant_max = 127 : i64, quant_min = -128 : i64} : (tensor<4x2x3x3xf32>, tensor<4x1x1x1xf32>, tensor<4x1x1x1xf32>) -> tensor<4x2x3x3xf32>
// The input: unsigned, per tensor, affine.
// CHECK: trainopt.reduce_min %[[X]] {axes = array<i64: 0, 1, 2, 3>} : (tensor<2x2x5x5xf32>) -> tensor<f32>
// CHECK: trainopt.constant dense<2.550000e+02> : tensor<f32>
// CHECK: %[[XQ:.*]] = trainopt.fake_quant %[[X]], %{{.*}}, %{{.*}} {quant_max = 255 : i64, quant_min = 0 : i64} : (tensor<2x2x5x5xf32>, tensor<f32>, tensor<f32>) -> tensor<2x2x5x5xf32>
// CHECK: trainopt.conv %[[XQ]], %[[WQ]], %{{.*}}
// The output, after the ReLU only the conv feeds, for every reader.
// CHECK: %[[R:.*]] = trainopt.relu
// CHECK: %[[RQ:.*]] = trainopt.fake_quant %[[R]], %{{.*}}, %{{.*}} {quant_max = 255 : i64, quant_min = 0 : i64} : (tensor<2x4x3x3xf32>, tensor<f32>, tensor<f32>)
// CHECK: %[[F:.*]] = trainopt.reshape %[[RQ]]
// CHECK: %[[H:.*]] = trainopt.slice %[[F]]
// The transposed Linear weight [3, 8]: one scale per row (its output axis).
// CHECK: %[[HQ:.*]] = trainopt.fake_quant %{{.*}} : (tensor<3x8xf32>, tensor<3x1xf32>, tensor<3x1xf32>) -> tensor<3x8xf32>
// CHECK: %[[HT:.*]] = trainopt.transpose %[[HQ]] {permutation = array<i64: 1, 0>} : (tensor<3x8xf32>) -> tensor<8x3xf32>
// CHECK: %[[Y:.*]] = trainopt.matmul %[[H]], %[[HT]]
// The frozen weight's matmul is left alone.
// CHECK: %[[Z:.*]] = trainopt.matmul %[[H]], %{{.*}} : (tensor<2x8xf32>, tensor<8x3xf32>)
// CHECK: %[[G:.*]] = trainopt.matmul %[[H]]
// The observers' updates and the counter's.
// CHECK: trainopt.assign %[[CMIN]], %[[NEWMIN]] : tensor<4xf32>
// CHECK: %[[N1:.*]] = trainopt.add %[[N]], %{{.*}} : (tensor<i64>, tensor<i64>) -> tensor<i64>
// CHECK: trainopt.assign %[[N]], %[[N1]] : tensor<i64>
// CHECK: return %[[Y]], %[[Z]], %[[G]]

// Without output points (quantize-outputs=false), only inputs: the two
// readers of the head's input share its quantized copy.
// NOOUT-NOT: :output.observer
// NOOUT: %[[H:.*]] = trainopt.slice
// NOOUT: %[[HX:.*]] = trainopt.fake_quant %[[H]],
// NOOUT: trainopt.matmul %[[HX]]
// NOOUT: trainopt.matmul %{{.*}}, %{{.*}} : (tensor<2x8xf32>, tensor<8x3xf32>)
// NOOUT: trainopt.matmul %[[HX]]
// NOOUT: return

// quantize-reduce-range: 7-bit weights, full-range activations.
// REDUCE: trainopt.constant dense<6.350000e+01> : tensor<f32>
// REDUCE: trainopt.fake_quant %{{.*}} {quant_max = 63 : i64, quant_min = -64 : i64} : (tensor<4x2x3x3xf32>
// REDUCE: trainopt.fake_quant %{{.*}} {quant_max = 255 : i64, quant_min = 0 : i64} : (tensor<2x2x5x5xf32>

// int4, per tensor, affine weights, no activations, head.* excluded; the
// observers stop moving after 100 observations.
// INT4-NOT: @head.weight.observer
// INT4-NOT: :input.observer
// INT4: %[[LIVE:.*]] = trainopt.less %{{.*}}, %{{.*}} : (tensor<i64>, tensor<i64>) -> tensor<i1>
// INT4: %[[MIN:.*]] = trainopt.reduce_min %{{.*}} {axes = array<i64: 0, 1, 2, 3>} : (tensor<4x2x3x3xf32>) -> tensor<f32>
// INT4: trainopt.where %[[LIVE]], %{{.*}}, %{{.*}} : (tensor<i1>, tensor<f32>, tensor<f32>) -> tensor<f32>
// Affine: (max - min) / 15, zero point -8 - round(min / scale), clamped.
// INT4: trainopt.constant dense<1.500000e+01> : tensor<f32>
// INT4: trainopt.floor
// INT4: trainopt.fake_quant %{{.*}} {quant_max = 7 : i64, quant_min = -8 : i64} : (tensor<4x2x3x3xf32>, tensor<f32>, tensor<f32>) -> tensor<4x2x3x3xf32>
// INT4: trainopt.fake_quant %{{.*}} : (tensor<8x3xf32>, tensor<f32>, tensor<f32>) -> tensor<8x3xf32>
// INT4-NOT: trainopt.fake_quant

// The eval step reads the ranges as they stand: the fake_quant's scale comes
// from the states, not from this batch.
// EVAL-LABEL: func.func @eval_step(
// EVAL-SAME: %[[CW:[a-z0-9]+]]: tensor<4x2x3x3xf32> {trainopt.param = @conv.weight}
// EVAL-SAME: %[[CMIN:[a-z0-9]+]]: tensor<4xf32> {trainopt.param = @conv.weight.observer_min}
// EVAL-SAME: %[[CMAX:[a-z0-9]+]]: tensor<4xf32> {trainopt.param = @conv.weight.observer_max}
// EVAL-NOT: trainopt.assign
// EVAL: trainopt.min %[[CMIN]], %{{.*}} : (tensor<4xf32>, tensor<f32>) -> tensor<4xf32>
// EVAL: trainopt.max %[[CMAX]], %{{.*}} : (tensor<4xf32>, tensor<f32>) -> tensor<4xf32>
// EVAL: trainopt.fake_quant %[[CW]]
// EVAL-NOT: trainopt.assign
// EVAL: return

trainopt.parameter @conv.weight trainable : tensor<4x2x3x3xf32>
trainopt.parameter @conv.bias trainable : tensor<4xf32>
trainopt.parameter @head.weight trainable : tensor<3x8xf32>
trainopt.parameter @fixed.weight frozen : tensor<8x3xf32>
trainopt.parameter @fc.weight trainable : tensor<8x3xf32>
func.func @forward(%cw: tensor<4x2x3x3xf32> {trainopt.param = @conv.weight},
                   %cb: tensor<4xf32> {trainopt.param = @conv.bias},
                   %hw: tensor<3x8xf32> {trainopt.param = @head.weight},
                   %fw: tensor<8x3xf32> {trainopt.param = @fixed.weight},
                   %gw: tensor<8x3xf32> {trainopt.param = @fc.weight},
                   %x: tensor<2x2x5x5xf32> {trainopt.input = "x"})
    -> (tensor<2x3xf32>, tensor<2x3xf32>, tensor<2x3xf32>) {
  %c = trainopt.conv %x, %cw, %cb {dilations = array<i64: 1, 1>, padding = array<i64: 0, 0, 0, 0>, strides = array<i64: 1, 1>}
      : (tensor<2x2x5x5xf32>, tensor<4x2x3x3xf32>, tensor<4xf32>) -> tensor<2x4x3x3xf32>
  %r = trainopt.relu %c : tensor<2x4x3x3xf32>
  %f = trainopt.reshape %r : tensor<2x4x3x3xf32> -> tensor<2x36xf32>
  %h = trainopt.slice %f {start = array<i64: 0, 0>, limit = array<i64: 2, 8>, stride = array<i64: 1, 1>} : (tensor<2x36xf32>) -> tensor<2x8xf32>
  %ht = trainopt.transpose %hw {permutation = array<i64: 1, 0>} : (tensor<3x8xf32>) -> tensor<8x3xf32>
  %y = trainopt.matmul %h, %ht : (tensor<2x8xf32>, tensor<8x3xf32>) -> tensor<2x3xf32>
  %z = trainopt.matmul %h, %fw : (tensor<2x8xf32>, tensor<8x3xf32>) -> tensor<2x3xf32>
  %g = trainopt.matmul %h, %gw : (tensor<2x8xf32>, tensor<8x3xf32>) -> tensor<2x3xf32>
  return %y, %z, %g : tensor<2x3xf32>, tensor<2x3xf32>, tensor<2x3xf32>
}
