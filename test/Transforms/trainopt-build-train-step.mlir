// RUN: trainopt-opt %s -trainopt-build-train-step | FileCheck %s

// The first stage: @train_step in gradient form. Parameters (trainable and
// BatchNorm statistics), one num_batches_tracked per BatchNorm, the step,
// then the inputs; the new statistics, counters and step name the argument
// they replace; the loss has role loss; one gradient per trainable
// parameter, by role, names its parameter. No optimizer state yet.
// CHECK-LABEL: func.func @forward_train(
// CHECK-SAME: %{{.*}}: tensor<i64> {trainopt.role = #trainopt<role step>, trainopt.state = "step"}
// CHECK: trainopt.batch_norm_train {{.*}}{unbiased_running_var = true}
// CHECK: trainopt.dropout
// CHECK-LABEL: func.func @forward_train_grad(
// CHECK-LABEL: func.func @train_step(
// CHECK-SAME: %{{.*}}: tensor<3x4xf32> {trainopt.param = @w}
// CHECK-SAME: {trainopt.param = @rm}
// CHECK-NOT: optimizer_state
// CHECK-SAME: %{{.*}}: tensor<i64> {trainopt.role = #trainopt<role model_state>, trainopt.state = "num_batches_tracked", trainopt.state_of = @rm}
// CHECK-SAME: %{{.*}}: tensor<i64> {trainopt.role = #trainopt<role step>, trainopt.state = "step"}
// CHECK-SAME: {trainopt.input = "x"}
// CHECK-SAME: -> (tensor<3xf32> {trainopt.updates = 3 : i64}, tensor<3xf32> {trainopt.updates = 4 : i64}, tensor<i64> {trainopt.updates = 5 : i64}, tensor<i64> {trainopt.updates = 6 : i64},
// CHECK-SAME: tensor<f32> {trainopt.output = "loss", trainopt.role = #trainopt<role loss>},
// CHECK-SAME: tensor<3x4xf32> {trainopt.grad_of = @w, trainopt.role = #trainopt<role gradient>}, tensor<3xf32> {trainopt.grad_of = @g, trainopt.role = #trainopt<role gradient>}, tensor<3xf32> {trainopt.grad_of = @b, trainopt.role = #trainopt<role gradient>})
// CHECK: call @forward_train_grad
// CHECK-NOT: func.func @eval_step
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
