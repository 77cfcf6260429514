// RUN: trainopt-opt %s -trainopt-build-train-step="optimizer=adam lr=0.01 clip-grad-norm=1.0" | FileCheck %s

// @train_step: parameters (trainable and BatchNorm statistics), one slot per
// Adam moment and trainable parameter, the step, then the inputs; every
// updated value names the argument it replaces; loss, grad_norm, lr last.
trainopt.parameter @w trainable : tensor<3x4xf32> = dense<0.1> : tensor<3x4xf32>
trainopt.parameter @g trainable : tensor<3xf32> = dense<1.0> : tensor<3xf32>
trainopt.parameter @b trainable : tensor<3xf32> = dense<0.0> : tensor<3xf32>
trainopt.parameter @rm frozen : tensor<3xf32> = dense<0.0> : tensor<3xf32>
trainopt.parameter @rv frozen : tensor<3xf32> = dense<1.0> : tensor<3xf32>
// CHECK-LABEL: func.func @forward_train(
// CHECK-SAME: %{{.*}}: tensor<i64> {trainopt.role = #trainopt<role step>, trainopt.state = "step"}
// CHECK: trainopt.batch_norm_train {{.*}}{unbiased_running_var = true}
// CHECK: trainopt.dropout
// CHECK-LABEL: func.func @forward_train_grad(
// CHECK-LABEL: func.func @train_step(
// CHECK-SAME: %[[W:[^:]*]]: tensor<3x4xf32> {trainopt.param = @w}
// CHECK-SAME: {trainopt.param = @rm}
// CHECK-SAME: %{{.*}}: tensor<3x4xf32> {trainopt.role = #trainopt<role optimizer_state>, trainopt.state = "exp_avg", trainopt.state_of = @w}
// CHECK-SAME: %{{.*}}: tensor<3x4xf32> {trainopt.role = #trainopt<role optimizer_state>, trainopt.state = "exp_avg_sq", trainopt.state_of = @w}
// CHECK-SAME: %{{.*}}: tensor<i64> {trainopt.role = #trainopt<role model_state>, trainopt.state = "num_batches_tracked", trainopt.state_of = @rm}
// CHECK-SAME: %[[STEP:[^:]*]]: tensor<i64> {trainopt.role = #trainopt<role step>, trainopt.state = "step"}
// CHECK-SAME: {trainopt.input = "x"}
// CHECK-SAME: -> (tensor<3x4xf32> {trainopt.updates = 0 : i64}, tensor<3x4xf32> {trainopt.updates = 5 : i64}, tensor<3x4xf32> {trainopt.updates = 6 : i64}
// CHECK-SAME: tensor<3xf32> {trainopt.updates = 3 : i64}, tensor<3xf32> {trainopt.updates = 4 : i64}, tensor<i64> {trainopt.updates = 11 : i64}, tensor<i64> {trainopt.updates = 12 : i64}
// CHECK-SAME: tensor<f32> {trainopt.output = "loss", trainopt.role = #trainopt<role metric>}, tensor<f32> {trainopt.output = "grad_norm", trainopt.role = #trainopt<role metric>}, tensor<f32> {trainopt.output = "lr", trainopt.role = #trainopt<role metric>})
// CHECK: call @forward_train_grad
// CHECK: trainopt.sqrt
// CHECK-LABEL: func.func @eval_step(
// CHECK-NOT: trainopt.dropout
// CHECK: trainopt.batch_norm_inference
// CHECK-NOT: trainopt.dropout
// CHECK: return
func.func @forward(%w: tensor<3x4xf32> {trainopt.param = @w}, %g: tensor<3xf32> {trainopt.param = @g}, %b: tensor<3xf32> {trainopt.param = @b},
                   %rm: tensor<3xf32> {trainopt.param = @rm}, %rv: tensor<3xf32> {trainopt.param = @rv},
                   %x: tensor<5x4xf32> {trainopt.input = "x"}, %y: tensor<5xi64> {trainopt.input = "labels"})
    -> (tensor<5x3xf32> {trainopt.output = "logits"}, tensor<f32> {trainopt.output = "loss"}) {
  %0 = trainopt.matmul %x, %w {transpose_rhs = true} : (tensor<5x4xf32>, tensor<3x4xf32>) -> tensor<5x3xf32>
  %1 = trainopt.batch_norm_inference %0, %g, %b, %rm, %rv : tensor<5x3xf32>, tensor<3xf32>
  %s = trainopt.constant dense<3> : tensor<i64>
  %2, %m = trainopt.dropout %1, %s {ratio = 0.2 : f64} : tensor<5x3xf32>, tensor<i64> -> tensor<5x3xi1>
  %l = trainopt.cross_entropy %2, %y {reduction = #trainopt<reduction mean>} : (tensor<5x3xf32>, tensor<5xi64>) -> tensor<f32>
  return %2, %l : tensor<5x3xf32>, tensor<f32>
}
