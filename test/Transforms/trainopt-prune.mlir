// trainopt-prune: every use of a conv's or matmul's trainable weight reads it
// times a mask, model state the model recomputes at the schedule's steps
// (trainopt.kth_smallest for the thresholds) and assigns.
// RUN: trainopt-opt %s -trainopt-prune="prune=magnitude:0.5" -canonicalize | FileCheck %s
// RUN: trainopt-opt %s -trainopt-prune="prune=magnitude:0.5 prune-scope=global" -canonicalize | FileCheck %s --check-prefix=GLOBAL
// RUN: trainopt-opt %s -trainopt-prune="prune=channel:l1:0.5" -canonicalize | FileCheck %s --check-prefix=CHANNEL
// RUN: trainopt-opt %s -trainopt-prune="prune=2:4 prune-exclude=conv.weight" -canonicalize | FileCheck %s --check-prefix=NM
// RUN: trainopt-opt %s -trainopt-prune="prune=magnitude:0.9 prune-schedule=gradual:10,50,10" -canonicalize | FileCheck %s --check-prefix=GRADUAL
// RUN: trainopt-opt %s -trainopt-prune="prune=magnitude:0.5 prune-schedule=oneshot:7" -trainopt-build-eval-step -canonicalize | FileCheck %s --check-prefix=EVAL
// RUN: trainopt-opt %s -trainopt-quantize="quantize=int8 quantize-activations=false" -trainopt-prune="prune=magnitude:0.5" | FileCheck %s --check-prefix=QAT

// The states: the counter and a mask of ones per pruned weight; none for
// the frozen weight.
// CHECK: module attributes {trainopt.pruning = [{mask = "conv.weight.prune_mask", method = "magnitude", sparsity = 5.000000e-01 : f64, weight = "conv.weight"}, {mask = "head.weight.prune_mask", {{.*}}weight = "head.weight"}, {mask = "fc.weight.prune_mask", {{.*}}weight = "fc.weight"}]}
// CHECK-DAG: trainopt.parameter @prune.step frozen : tensor<i64> = dense<0> : tensor<i64>
// CHECK-DAG: trainopt.parameter @conv.weight.prune_mask frozen : tensor<4x2x3x3xf32> = dense<1.000000e+00> : tensor<4x2x3x3xf32>
// CHECK-DAG: trainopt.parameter @head.weight.prune_mask frozen : tensor<3x8xf32> = dense<1.000000e+00>
// CHECK-NOT: @fixed.weight.prune_mask
// CHECK-LABEL: func.func @forward(
// CHECK-SAME: %[[CW:[a-z0-9]+]]: tensor<4x2x3x3xf32> {trainopt.param = @conv.weight}
// CHECK-SAME: %[[STEP:[a-z0-9]+]]: tensor<i64> {trainopt.param = @prune.step}
// CHECK-SAME: %[[CM:[a-z0-9]+]]: tensor<4x2x3x3xf32> {trainopt.param = @conv.weight.prune_mask}
// One shot at step 0: round(0.5 * 72) = 36 of the conv's weights, 12 of
// each matmul's 24; k = 0 at every other step.
// CHECK-DAG: %[[K36:.*]] = trainopt.constant dense<36> : tensor<i64>
// CHECK-DAG: %[[ZERO:.*]] = trainopt.constant dense<0> : tensor<i64>
// CHECK: %[[NOW:.*]] = trainopt.equal %[[STEP]], %[[ZERO]]
// CHECK: %[[PW:.*]] = trainopt.mul %[[CW]], %[[CM]]
// CHECK: %[[SCORE:.*]] = trainopt.abs %[[PW]] : tensor<4x2x3x3xf32>
// CHECK: %[[K:.*]] = trainopt.where %[[NOW]], %[[K36]], %[[ZERO]] : (tensor<i1>, tensor<i64>, tensor<i64>) -> tensor<i64>
// CHECK: %[[T:.*]] = trainopt.kth_smallest %[[SCORE]], %[[K]] : (tensor<4x2x3x3xf32>, tensor<i64>) -> tensor<f32>
// CHECK: %[[KEEP:.*]] = trainopt.greater %[[SCORE]], %[[T]]
// CHECK: %[[NEW:.*]] = trainopt.cast %[[KEEP]] : tensor<4x2x3x3xi1> to tensor<4x2x3x3xf32>
// CHECK: trainopt.kth_smallest %{{.*}} : (tensor<3x8xf32>, tensor<i64>) -> tensor<f32>
// CHECK: trainopt.kth_smallest %{{.*}} : (tensor<8x3xf32>, tensor<i64>) -> tensor<f32>
// CHECK: %[[MASK:.*]] = trainopt.where %[[NOW]], %[[NEW]], %[[CM]]
// CHECK: %[[WP:.*]] = trainopt.mul %[[CW]], %[[MASK]]
// The model reads the pruned weights; the frozen one is left alone.
// CHECK: trainopt.conv %{{.*}}, %[[WP]], %{{.*}}
// CHECK: trainopt.matmul %{{.*}}, %{{.*}} : (tensor<2x8xf32>, tensor<8x3xf32>)
// CHECK: trainopt.assign %[[CM]], %[[MASK]] : tensor<4x2x3x3xf32>
// CHECK: trainopt.assign %[[STEP]], %{{.*}} : tensor<i64>

// Global: one threshold over the 120 weights of all three.
// GLOBAL: %[[ALL:.*]] = trainopt.concat %{{.*}}, %{{.*}}, %{{.*}} {axis = 0 : i64} : (tensor<72xf32>, tensor<24xf32>, tensor<24xf32>) -> tensor<120xf32>
// GLOBAL: %[[T:.*]] = trainopt.kth_smallest %[[ALL]], %{{.*}} : (tensor<120xf32>, tensor<i64>) -> tensor<f32>
// GLOBAL: trainopt.greater %{{.*}}, %[[T]] : (tensor<4x2x3x3xf32>, tensor<f32>)
// GLOBAL: trainopt.greater %{{.*}}, %[[T]] : (tensor<3x8xf32>, tensor<f32>)
// GLOBAL: trainopt.greater %{{.*}}, %[[T]] : (tensor<8x3xf32>, tensor<f32>)
// GLOBAL-NOT: kth_smallest

// Channels by their L1 norms: the conv's 4 filters, round(0.5 * 4) = 2;
// the matmuls produce the outputs (classes) and stay dense.
// CHANNEL-NOT: @head.weight.prune_mask
// CHANNEL-NOT: @fc.weight.prune_mask
// CHANNEL: %[[N:.*]] = trainopt.reduce_sum %{{.*}} {axes = array<i64: 1, 2, 3>} : (tensor<4x2x3x3xf32>) -> tensor<4xf32>
// CHANNEL: %[[T:.*]] = trainopt.kth_smallest %[[N]], %{{.*}} : (tensor<4xf32>, tensor<i64>) -> tensor<f32>
// CHANNEL: trainopt.greater %[[N]], %[[T]] : (tensor<4xf32>, tensor<f32>) -> tensor<4xi1>
// CHANNEL: trainopt.reshape %{{.*}} : tensor<4xf32> -> tensor<4x1x1x1xf32>
// CHANNEL: trainopt.broadcast_to %{{.*}} : tensor<4x1x1x1xf32> -> tensor<4x2x3x3xf32>
// CHANNEL-NOT: kth_smallest

// 2:4 along the input axis: the head weight [3, 8] in groups [3, 2, 4];
// each weight's rank in its group counts the larger ones (and the equal
// ones before it); the 2 ranked 0 and 1 stay. The plain [8, 3] weight is
// transposed to put its input axis last, and back.
// NM: %[[ROWS:.*]] = trainopt.reshape %{{.*}} : tensor<3x8xf32> -> tensor<3x2x4x1xf32>
// NM: %[[COLS:.*]] = trainopt.reshape %{{.*}} : tensor<3x8xf32> -> tensor<3x2x1x4xf32>
// NM: trainopt.greater %[[COLS]], %[[ROWS]] : (tensor<3x2x1x4xf32>, tensor<3x2x4x1xf32>) -> tensor<3x2x4x4xi1>
// NM: trainopt.or
// NM: %[[RANK:.*]] = trainopt.reduce_sum %{{.*}} {axes = array<i64: 3>} : (tensor<3x2x4x4xf32>) -> tensor<3x2x4xf32>
// NM: trainopt.less %[[RANK]], %{{.*}} : (tensor<3x2x4xf32>, tensor<f32>) -> tensor<3x2x4xi1>
// NM: trainopt.transpose %{{.*}} {permutation = array<i64: 1, 0>} : (tensor<8x3xf32>) -> tensor<3x8xf32>
// NM: trainopt.transpose %{{.*}} {permutation = array<i64: 1, 0>} : (tensor<3x8xf32>) -> tensor<8x3xf32>
// NM-NOT: kth_smallest

// Gradual: updates at steps 10, 20, ..., 50; the sparsity follows
// 0.9 (1 - (1 - (t - 10) / 40)^3), computed in f64.
// GRADUAL: %[[T:.*]] = trainopt.cast %{{.*}} : tensor<i64> to tensor<f64>
// GRADUAL: %[[SINCE:.*]] = trainopt.sub %[[T]], %{{.*}} : (tensor<f64>, tensor<f64>) -> tensor<f64>
// GRADUAL: trainopt.floor
// GRADUAL: %[[FRAC:.*]] = trainopt.div %[[SINCE]], %{{.*}} : (tensor<f64>, tensor<f64>) -> tensor<f64>
// GRADUAL: %[[LEFT:.*]] = trainopt.sub %{{.*}}, %{{.*}} : (tensor<f64>, tensor<f64>) -> tensor<f64>
// GRADUAL: %[[SQ:.*]] = trainopt.mul %[[LEFT]], %[[LEFT]]
// GRADUAL: trainopt.mul %[[SQ]], %[[LEFT]]
// GRADUAL: trainopt.kth_smallest

// The eval step reads the masks as they stand and selects nothing.
// EVAL-LABEL: func.func @eval_step(
// EVAL-SAME: %[[CW:[a-z0-9]+]]: tensor<4x2x3x3xf32> {trainopt.param = @conv.weight}
// EVAL-SAME: %[[CM:[a-z0-9]+]]: tensor<4x2x3x3xf32> {trainopt.param = @conv.weight.prune_mask}
// EVAL-NOT: kth_smallest
// EVAL: %[[WP:.*]] = trainopt.mul %[[CW]], %[[CM]]
// EVAL-NOT: kth_smallest
// EVAL: trainopt.conv %{{.*}}, %[[WP]], %{{.*}}
// EVAL-NOT: trainopt.assign

// With trainopt-quantize before it, the observers and fake_quant read the
// pruned weight.
// QAT-LABEL: func.func @forward(
// QAT-SAME: %[[CW:[a-z0-9]+]]: tensor<4x2x3x3xf32> {trainopt.param = @conv.weight}
// QAT: %[[MASK:.*]] = trainopt.where %{{.*}} : (tensor<i1>, tensor<4x2x3x3xf32>, tensor<4x2x3x3xf32>)
// QAT: %[[WP:.*]] = trainopt.mul %[[CW]], %[[MASK]]
// QAT: trainopt.reduce_min %[[WP]] {axes = array<i64: 1, 2, 3>}
// QAT: trainopt.fake_quant %[[WP]]

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
