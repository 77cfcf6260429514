// RUN: trainopt-opt %s -trainopt-build-train-step -trainopt-transform-gradients -trainopt-lr-schedule -trainopt-apply-optimizer="optimizer=adam" | FileCheck %s
// RUN: trainopt-opt %s -trainopt-build-train-step -trainopt-transform-gradients=grad-accum=2 -trainopt-lr-schedule -trainopt-apply-optimizer="optimizer=lion weight-decay=0.1" | FileCheck %s --check-prefix=LION
// RUN: not trainopt-opt %s -trainopt-build-train-step -trainopt-lr-schedule -trainopt-apply-optimizer="optimizer=sgd beta1=0.8" 2>&1 | FileCheck %s --check-prefix=BETA
// RUN: not trainopt-opt %s -trainopt-build-train-step -trainopt-apply-optimizer 2>&1 | FileCheck %s --check-prefix=NOSCHED
// RUN: not trainopt-opt %s -trainopt-build-train-step -trainopt-lr-schedule -trainopt-apply-optimizer=optimizer=adamax 2>&1 | FileCheck %s --check-prefix=UNKNOWN

// Adam: two slots per trainable parameter before the step, the new
// parameters and slots name what they replace, the gradients are gone, the
// learning rate comes from @lr_schedule(step) and is the last metric.
// CHECK-LABEL: func.func @train_step(
// CHECK-SAME: %{{.*}}: tensor<3x4xf32> {trainopt.role = #trainopt<role optimizer_state>, trainopt.state = "exp_avg", trainopt.state_of = @w}
// CHECK-SAME: %{{.*}}: tensor<3x4xf32> {trainopt.role = #trainopt<role optimizer_state>, trainopt.state = "exp_avg_sq", trainopt.state_of = @w}
// CHECK-SAME: %[[STEP:[^:]*]]: tensor<i64> {trainopt.role = #trainopt<role step>, trainopt.state = "step"}
// CHECK-NOT: role gradient
// CHECK-SAME: tensor<3x4xf32> {trainopt.updates = 0 : i64}, tensor<3x4xf32> {trainopt.updates = 6 : i64}, tensor<3x4xf32> {trainopt.updates = 7 : i64}
// CHECK-SAME: tensor<f32> {trainopt.output = "loss", trainopt.role = #trainopt<role loss>}, tensor<f32> {trainopt.output = "grad_norm", trainopt.role = #trainopt<role metric>}, tensor<f32> {trainopt.output = "lr", trainopt.role = #trainopt<role metric>})
// CHECK: call @lr_schedule(%[[STEP]])

// Lion under an accumulation gate: one exp_avg slot, an optimizer_step
// counter the gate advances, which the schedule reads; sign is built from
// two comparisons; parameters and slots keep their value off the gate.
// LION-LABEL: func.func @train_step(
// LION-SAME: trainopt.state = "grad_accum", trainopt.state_of = @w
// LION-SAME: %[[UPD:[^:]*]]: tensor<i64> {trainopt.role = #trainopt<role optimizer_state>, trainopt.state = "optimizer_step"}
// LION-SAME: trainopt.state = "exp_avg", trainopt.state_of = @w
// LION-NOT: exp_avg_sq
// LION-SAME: {trainopt.role = #trainopt<role step>, trainopt.state = "step"}
// LION: call @lr_schedule(%[[UPD]])
// LION: trainopt.greater
// LION: trainopt.less
// LION: trainopt.where

// BETA: error: --beta1: does not apply to --optimizer=sgd (it applies to adam, adamw, lamb, lion)
// NOSCHED: error: trainopt-apply-optimizer: no @lr_schedule; run trainopt-lr-schedule first
// UNKNOWN: error: --optimizer: must be one of sgd, adam, adamw, adagrad, rmsprop, lamb, lion, got 'adamax'
trainopt.parameter @w trainable : tensor<3x4xf32> = dense<0.1> : tensor<3x4xf32>
trainopt.parameter @g trainable : tensor<3xf32> = dense<1.0> : tensor<3xf32>
trainopt.parameter @b trainable : tensor<3xf32> = dense<0.0> : tensor<3xf32>
trainopt.parameter @rm frozen : tensor<3xf32> = dense<0.0> : tensor<3xf32>
trainopt.parameter @rv frozen : tensor<3xf32> = dense<1.0> : tensor<3xf32>
func.func @forward(%w: tensor<3x4xf32> {trainopt.param = @w}, %g: tensor<3xf32> {trainopt.param = @g}, %b: tensor<3xf32> {trainopt.param = @b},
                   %rm: tensor<3xf32> {trainopt.param = @rm}, %rv: tensor<3xf32> {trainopt.param = @rv},
                   %x: tensor<5x4xf32> {trainopt.input = "x"}, %y: tensor<5xi64> {trainopt.input = "labels"})
    -> (tensor<5x3xf32> {trainopt.output = "logits"}, tensor<f32> {trainopt.output = "loss", trainopt.role = #trainopt<role loss>}) {
  %0 = trainopt.matmul %x, %w {transpose_rhs = true} : (tensor<5x4xf32>, tensor<3x4xf32>) -> tensor<5x3xf32>
  %1 = trainopt.batch_norm_inference %0, %g, %b, %rm, %rv : tensor<5x3xf32>, tensor<3xf32>
  %s = trainopt.constant dense<3> : tensor<i64>
  %2, %m = trainopt.dropout %1, %s {ratio = 0.2 : f64} : tensor<5x3xf32>, tensor<i64> -> tensor<5x3xi1>
  %l = trainopt.cross_entropy %2, %y {reduction = #trainopt<reduction mean>} : (tensor<5x3xf32>, tensor<5xi64>) -> tensor<f32>
  return %2, %l : tensor<5x3xf32>, tensor<f32>
}
