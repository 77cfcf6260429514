// RUN: trainopt-opt %s -trainopt-build-train-step -trainopt-transform-gradients="grad-accum=2 clip-grad-value=0.5 clip-grad-norm=1.0" | FileCheck %s
// RUN: trainopt-opt %s -trainopt-build-train-step -trainopt-transform-gradients | FileCheck %s --check-prefix=NORM
// RUN: not trainopt-opt %s -trainopt-transform-gradients 2>&1 | FileCheck %s --check-prefix=NOSTEP
// RUN: not trainopt-opt %s -trainopt-build-train-step -trainopt-transform-gradients=grad-accum=0 2>&1 | FileCheck %s --check-prefix=BAD

// Accumulation adds a grad_accum slot per parameter just before the step
// (the step's and later updates indices move with it), clears it through
// the gate, and returns the gate; the norm is a metric; then clip by
// value, then by norm, in that order.
// CHECK-LABEL: func.func @train_step(
// CHECK-SAME: %{{.*}}: tensor<3x4xf32> {trainopt.role = #trainopt<role optimizer_state>, trainopt.state = "grad_accum", trainopt.state_of = @w}
// CHECK-SAME: %{{.*}}: tensor<i64> {trainopt.role = #trainopt<role step>, trainopt.state = "step"}
// CHECK-SAME: tensor<i64> {trainopt.updates = 9 : i64}
// CHECK-SAME: tensor<3x4xf32> {trainopt.grad_of = @w, trainopt.role = #trainopt<role gradient>}
// CHECK-SAME: tensor<3x4xf32> {trainopt.updates = 6 : i64}
// CHECK-SAME: tensor<f32> {trainopt.output = "grad_norm", trainopt.role = #trainopt<role metric>}, tensor<i1> {trainopt.role = #trainopt<role update_gate>})
// CHECK: trainopt.equal
// CHECK: trainopt.where
// CHECK: trainopt.sqrt
// CHECK: trainopt.clip {{.*}}{max = 5.000000e-01 : f64, min = -5.000000e-01 : f64}
// CHECK: trainopt.min

// Without options: only the norm, no gate.
// NORM-LABEL: func.func @train_step(
// NORM-NOT: update_gate
// NORM-SAME: {trainopt.output = "grad_norm", trainopt.role = #trainopt<role metric>})
// NORM-NOT: trainopt.clip

// NOSTEP: error: trainopt-transform-gradients: no @train_step; run trainopt-build-train-step first
// BAD: error: --grad-accum: must be >= 1
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
