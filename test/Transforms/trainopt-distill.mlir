// trainopt-distill: the teacher (what trainopt-compile --teacher imports:
// frozen `teacher.*` parameters, @teacher with trainopt.teacher, BatchNorm
// in inference form) is inlined into the student's @forward on the same
// input; the loss becomes (1 - alpha) CE + alpha T^2 KL plus the feature
// terms; task_loss and distill_loss become metrics.
// RUN: trainopt-opt %s -trainopt-distill="distill=kl:T=2,alpha=0.25" | FileCheck %s
// RUN: trainopt-opt %s -trainopt-distill="distill-feature=hidden:h distill-feature-weight=0.5" | FileCheck %s --check-prefix=FEAT
// RUN: trainopt-opt %s -trainopt-distill="distill=kl" -trainopt-build-train-step -trainopt-build-eval-step | FileCheck %s --check-prefix=STEP
// RUN: not trainopt-opt %s -trainopt-distill="distill=kl:T=0" 2>&1 | FileCheck %s --check-prefix=TEMP
// RUN: not trainopt-opt %s -trainopt-distill="distill=kl:beta=1" 2>&1 | FileCheck %s --check-prefix=KEY
// RUN: not trainopt-opt %s -trainopt-distill="distill=mse" 2>&1 | FileCheck %s --check-prefix=KIND
// RUN: not trainopt-opt %s -trainopt-distill="distill-feature=hidden" 2>&1 | FileCheck %s --check-prefix=SPEC
// RUN: not trainopt-opt %s -trainopt-distill="distill-feature=nothing:h" 2>&1 | FileCheck %s --check-prefix=NOTEACHER
// RUN: not trainopt-opt %s -trainopt-distill 2>&1 | FileCheck %s --check-prefix=NOTHING

module {
  trainopt.parameter @fc.weight trainable : tensor<3x4xf32> = dense<0.5> : tensor<3x4xf32>
  trainopt.parameter @teacher.fc.weight frozen : tensor<3x4xf32> = dense<0.25> : tensor<3x4xf32>
  trainopt.parameter @teacher.hid.weight frozen : tensor<6x4xf32> = dense<0.125> : tensor<6x4xf32>
  trainopt.parameter @teacher.bn.mean frozen : tensor<6xf32> = dense<0.0> : tensor<6xf32>
  trainopt.parameter @teacher.bn.var frozen : tensor<6xf32> = dense<1.0> : tensor<6xf32>
  func.func @forward(%w: tensor<3x4xf32> {trainopt.param = @fc.weight},
                     %x: tensor<2x4xf32> {trainopt.input = "x"},
                     %y: tensor<2xi64> {trainopt.input = "labels", trainopt.role = #trainopt<role labels>})
      -> (tensor<2x3xf32> {trainopt.output = "logits"},
          tensor<f32> {trainopt.output = "loss", trainopt.role = #trainopt<role loss>},
          tensor<2x4xf32> {trainopt.output = "h", trainopt.feature}) {
    %h = trainopt.relu %x : tensor<2x4xf32>
    %s = trainopt.matmul %h, %w {transpose_rhs = true} : (tensor<2x4xf32>, tensor<3x4xf32>) -> tensor<2x3xf32>
    %l = trainopt.cross_entropy %s, %y {reduction = #trainopt<reduction mean>} : (tensor<2x3xf32>, tensor<2xi64>) -> tensor<f32>
    return %s, %l, %h : tensor<2x3xf32>, tensor<f32>, tensor<2x4xf32>
  }
  func.func @teacher(%w: tensor<3x4xf32> {trainopt.param = @teacher.fc.weight},
                     %hw: tensor<6x4xf32> {trainopt.param = @teacher.hid.weight},
                     %m: tensor<6xf32> {trainopt.param = @teacher.bn.mean},
                     %v: tensor<6xf32> {trainopt.param = @teacher.bn.var},
                     %x: tensor<2x4xf32> {trainopt.input = "x"})
      -> (tensor<2x3xf32> {trainopt.output = "logits"},
          tensor<2x6xf32> {trainopt.output = "hidden", trainopt.feature})
      attributes {trainopt.teacher} {
    %t = trainopt.matmul %x, %w {transpose_rhs = true} : (tensor<2x4xf32>, tensor<3x4xf32>) -> tensor<2x3xf32>
    %g = trainopt.matmul %x, %hw {transpose_rhs = true} : (tensor<2x4xf32>, tensor<6x4xf32>) -> tensor<2x6xf32>
    %n = trainopt.batch_norm_inference %g, %v, %m, %m, %v {trainopt.frozen_stats} : tensor<2x6xf32>, tensor<6xf32>
    return %t, %n : tensor<2x3xf32>, tensor<2x6xf32>
  }
}

// The teacher's parameters stay frozen and bound to new arguments; its ops
// come first, on the student's input; @teacher is gone.
// CHECK: module attributes {trainopt.distillation = {alpha = 2.500000e-01 : f64, features = [], teacher_elements = 48 : i64, temperature = 2.000000e+00 : f64}}
// CHECK: trainopt.parameter @teacher.fc.weight frozen : tensor<3x4xf32>
// CHECK-LABEL: func.func @forward(
// CHECK-SAME: %[[X:[a-z0-9]+]]: tensor<2x4xf32> {trainopt.input = "x"}
// CHECK-SAME: %[[TW:[a-z0-9]+]]: tensor<3x4xf32> {trainopt.param = @teacher.fc.weight}
// CHECK-SAME: -> (tensor<2x3xf32> {trainopt.output = "logits"}, tensor<f32> {trainopt.output = "loss", trainopt.role = #trainopt<role loss>}, tensor<f32> {trainopt.output = "task_loss", trainopt.role = #trainopt<role metric>}, tensor<f32> {trainopt.output = "distill_loss", trainopt.role = #trainopt<role metric>})
// CHECK-SAME: attributes {trainopt.eval_loss = "task_loss"}
// CHECK-NEXT: %[[T:.*]] = trainopt.matmul %[[X]], %[[TW]]
// CHECK: trainopt.batch_norm_inference {{.*}} {trainopt.frozen_stats}
// CHECK: %[[S:.*]] = trainopt.matmul
// CHECK: %[[CE:.*]] = trainopt.cross_entropy %[[S]]
// log_softmax(s / T), log_softmax(t / T), exp, and the KL summed and
// averaged over the 2 samples, times alpha T^2 = 1.
// CHECK: %[[HALF:.*]] = trainopt.constant dense<5.000000e-01> : tensor<f32>
// CHECK: %[[SS:.*]] = trainopt.mul %[[S]], %[[HALF]]
// CHECK: %[[LS:.*]] = trainopt.log_softmax %[[SS]] {axis = 1 : i64}
// CHECK: %[[TT:.*]] = trainopt.mul %[[T]], {{.*}}
// CHECK: %[[LT:.*]] = trainopt.log_softmax %[[TT]] {axis = 1 : i64}
// CHECK: %[[PT:.*]] = trainopt.exp %[[LT]]
// CHECK: %[[D:.*]] = trainopt.sub %[[LT]], %[[LS]]
// CHECK: %[[P:.*]] = trainopt.mul %[[PT]], %[[D]]
// CHECK: %[[SUM:.*]] = trainopt.reduce_sum %[[P]]
// CHECK: trainopt.constant dense<5.000000e-01> : tensor<f32>
// CHECK: %[[KL:.*]] = trainopt.mul %[[SUM]]
// CHECK: trainopt.constant dense<1.000000e+00> : tensor<f32>
// CHECK: %[[TERM:.*]] = trainopt.mul %[[KL]]
// CHECK: trainopt.constant dense<7.500000e-01> : tensor<f32>
// CHECK: %[[MIX:.*]] = trainopt.mul %[[CE]]
// CHECK: %[[LOSS:.*]] = trainopt.add %[[MIX]], %[[TERM]]
// CHECK: return %[[S]], %[[LOSS]], %[[CE]], %[[TERM]] :
// CHECK-NOT: func.func @teacher

// Feature distillation: the student's 4 features against the teacher's 6
// through a learned linear map; the feature result is gone.
// FEAT: trainopt.parameter @distill.proj.h trainable : tensor<6x4xf32> = dense<
// FEAT-LABEL: func.func @forward(
// FEAT-SAME: %{{[a-z0-9]+}}: tensor<6x4xf32> {trainopt.param = @distill.proj.h}
// FEAT-SAME: -> (tensor<2x3xf32> {trainopt.output = "logits"}, tensor<f32> {trainopt.output = "loss", trainopt.role = #trainopt<role loss>}, tensor<f32> {trainopt.output = "task_loss", trainopt.role = #trainopt<role metric>}, tensor<f32> {trainopt.output = "distill_loss", trainopt.role = #trainopt<role metric>})
// FEAT: %[[N:.*]] = trainopt.batch_norm_inference
// FEAT: %[[H:.*]] = trainopt.relu
// FEAT: %[[CE:.*]] = trainopt.cross_entropy
// FEAT: %[[PH:.*]] = trainopt.matmul %[[H]], %{{.*}} {transpose_rhs = true} : (tensor<2x4xf32>, tensor<6x4xf32>) -> tensor<2x6xf32>
// FEAT: %[[MSE:.*]] = trainopt.mse_loss %[[PH]], %[[N]] {reduction = #trainopt<reduction mean>}
// FEAT: %[[W:.*]] = trainopt.mul %[[MSE]]
// FEAT: %[[LOSS:.*]] = trainopt.add %[[CE]], %[[W]]
// FEAT: return %{{.*}}, %[[LOSS]], %[[CE]], %[[W]] :

// The training step reports both terms; the teacher's BatchNorm stays in
// inference form (no running-statistics update); @eval_step's loss is the
// task loss and it runs no teacher.
// STEP-LABEL: func.func @train_step(
// STEP-SAME: {trainopt.output = "task_loss", trainopt.role = #trainopt<role metric>}
// STEP-SAME: {trainopt.output = "distill_loss", trainopt.role = #trainopt<role metric>}
// STEP-LABEL: func.func @eval_step(
// STEP-SAME: -> (tensor<2x3xf32> {trainopt.output = "logits"}, tensor<f32> {trainopt.output = "loss", trainopt.role = #trainopt<role loss>})
// STEP-NOT: batch_norm
// STEP-NOT: log_softmax
// STEP: %[[CE:.*]] = trainopt.cross_entropy
// STEP: return %{{.*}}, %[[CE]]
// STEP-NOT: batch_norm_train

// TEMP: error: --distill: the temperature T must be positive, got '0'
// KEY: error: --distill: unknown parameter 'beta' (T or alpha)
// KIND: error: --distill: expected off or kl[:T=TEMPERATURE,alpha=WEIGHT], got 'mse'
// SPEC: error: --distill-feature: expected TEACHER_TENSOR:STUDENT_TENSOR[:mse], got 'hidden'
// NOTEACHER: error: --distill-feature=nothing:h: the teacher has no tensor 'nothing'
// NOTHING: error: --teacher needs --distill=kl[:T=...,alpha=...] and/or --distill-feature=TEACHER_TENSOR:STUDENT_TENSOR
