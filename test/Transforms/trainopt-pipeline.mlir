// RUN: trainopt-opt %s '-trainopt-partition-model=mesh=pp=2' '-trainopt-split-pipeline=pipeline-stage=0' | FileCheck %s
// RUN: trainopt-opt %s '-trainopt-partition-model=mesh=pp=2' '-trainopt-split-pipeline=pipeline-stage=1' | FileCheck %s --check-prefix=STAGE1
// RUN: trainopt-opt %s '-trainopt-training-pipeline=mesh=pp=2 micro-batches=3 pipeline-stage=0 optimizer=sgd' | FileCheck %s --check-prefix=F1B0
// RUN: trainopt-opt %s '-trainopt-training-pipeline=mesh=pp=2 micro-batches=3 pipeline-stage=1 optimizer=sgd' | FileCheck %s --check-prefix=F1B1
// RUN: trainopt-opt %s -trainopt-split-pipeline '-trainopt-schedule-pipeline=micro-batches=1' | FileCheck %s --check-prefix=NOPP
// RUN: not trainopt-opt %s '-trainopt-schedule-pipeline=micro-batches=2' 2>&1 | FileCheck %s --check-prefix=NOMESH
// RUN: not trainopt-opt %s '-trainopt-partition-model=mesh=pp=2' '-trainopt-split-pipeline=pipeline-stage=2' 2>&1 | FileCheck %s --check-prefix=RANGE
// RUN: not trainopt-opt %s '-trainopt-partition-model=mesh=pp=5' '-trainopt-split-pipeline=pipeline-stage=0' 2>&1 | FileCheck %s --check-prefix=CUTS
// RUN: not trainopt-opt %s '-trainopt-training-pipeline=mesh=pp=2 micro-batches=2 grad-accum=2' 2>&1 | FileCheck %s --check-prefix=ACCUM
// RUN: not trainopt-opt %S/Inputs/pipeline-tied.mlir '-trainopt-partition-model=mesh=pp=2' -trainopt-split-pipeline 2>&1 | FileCheck %s --check-prefix=TIED

// Layer boundaries are the points where one activation is live and no
// ONNX node (here: a location name) is split: after fc1's bias add (%1)
// or after the ReLU (%2); fc1's matmul and add stay together. Of the FLOPs
// (fc1 135, ReLU 15, fc2 and the loss 61), the cut after %1 splits them
// most evenly. Stage 0 keeps @w and @b, returns its output for stage 1
// and, as its loss, sum(out * cot): the backward seeded with the
// cotangent stage 1 sends back.
// CHECK-LABEL: func.func @forward(
// CHECK-SAME: {trainopt.param = @w}
// CHECK-SAME: {trainopt.param = @b}
// CHECK-NOT: @v}
// CHECK-SAME: %[[COT:[a-z0-9]+]]: tensor<5x3xf32> {trainopt.pipeline = "cot"})
// CHECK-SAME: -> (tensor<5x3xf32> {trainopt.pipeline = "out"}, tensor<f32> {trainopt.output = "loss", trainopt.role = #trainopt<role loss>})
// CHECK-SAME: cuts = [0, 2, 5]
// CHECK-SAME: result_kinds = ["batch", "mean"], result_stages = [1, 1]
// CHECK: %[[OUT:.*]] = trainopt.add
// CHECK-NEXT: %[[P:.*]] = trainopt.mul %[[OUT]], %[[COT]]
// CHECK-NEXT: %[[L:.*]] = trainopt.reduce_sum %[[P]]
// CHECK-NEXT: return %[[OUT]], %[[L]]

// Stage 1 reads the activation from an argument autodiff differentiates.
// STAGE1-LABEL: func.func @forward(
// STAGE1-SAME: {trainopt.param = @v}
// STAGE1-SAME: %[[IN:[a-z0-9]+]]: tensor<5x3xf32> {trainopt.pipeline = "in"})
// STAGE1-SAME: -> (tensor<5x2xf32> {trainopt.output = "logits"}, tensor<f32> {trainopt.output = "loss", trainopt.role = #trainopt<role loss>})
// STAGE1: trainopt.relu %[[IN]]
// STAGE1: trainopt.cross_entropy

// 1F1B over 3 micro-batches of 5 rows (the step reads 15): stage 0 runs
// one forward to fill the pipeline, then a forward and a backward in
// turn, then the last backward; its forwards send the activation, its
// backwards receive the cotangent. The gradients' sum is divided by 3, the
// loss (the last stage's) and the gradient norm's sum of squares are
// all-reduced over pp.
// F1B0-LABEL: func.func @train_step(
// F1B0-SAME: tensor<15x4xf32> {trainopt.input = "x"}
// F1B0-SAME: tensor<15xi64> {trainopt.input = "labels"
// F1B0-SAME: trainopt.pipeline = {micro_batches = 3 : i64, stage = 0 : i64, stages = 2 : i64}
// F1B0: trainopt.slice %{{.*}} {limit = array<i64: 5, 4>, start = array<i64: 0, 0>
// F1B0: trainopt.send %{{.*}} on @mesh axes = [0] offset = 1 : tensor<5x3xf32>
// F1B0: trainopt.slice %{{.*}} {limit = array<i64: 10, 4>, start = array<i64: 5, 0>
// F1B0: trainopt.send %{{.*}} on @mesh axes = [0] offset = 1
// F1B0: trainopt.recv on @mesh axes = [0] offset = 1 : tensor<5x3xf32>
// F1B0: trainopt.slice %{{.*}} {limit = array<i64: 15, 4>, start = array<i64: 10, 0>
// F1B0: trainopt.send %{{.*}} on @mesh axes = [0] offset = 1
// F1B0: trainopt.recv on @mesh axes = [0] offset = 1
// F1B0: trainopt.recv on @mesh axes = [0] offset = 1
// F1B0-NOT: trainopt.send
// F1B0: trainopt.all_reduce sum %{{.*}} on @mesh axes = [0] : tensor<f32>
// F1B0: trainopt.constant dense<0.333333343> : tensor<f32>
// F1B0: trainopt.all_reduce sum %{{.*}} on @mesh axes = [0] : tensor<f32>
// F1B0-LABEL: func.func @eval_step(
// F1B0-SAME: -> (tensor<15x2xf32> {trainopt.output = "logits"}, tensor<f32> {trainopt.output = "loss", trainopt.role = #trainopt<role loss>})
// F1B0-COUNT-3: trainopt.send
// F1B0: trainopt.all_reduce sum %{{.*}} : tensor<15x2xf32>
// F1B0: trainopt.all_reduce sum %{{.*}} : tensor<f32>

// The last stage runs a forward and a backward per micro-batch, receiving
// the activation and sending its cotangent back.
// F1B1-LABEL: func.func @train_step(
// F1B1-SAME: {trainopt.param = @v}
// F1B1: trainopt.recv on @mesh axes = [0] offset = -1
// F1B1: trainopt.cross_entropy
// F1B1: trainopt.send %{{.*}} on @mesh axes = [0] offset = -1
// F1B1: trainopt.recv on @mesh axes = [0] offset = -1
// F1B1: trainopt.send %{{.*}} on @mesh axes = [0] offset = -1
// F1B1: trainopt.recv on @mesh axes = [0] offset = -1
// F1B1: trainopt.send %{{.*}} on @mesh axes = [0] offset = -1
// F1B1-LABEL: func.func @eval_step(
// F1B1: trainopt.concat

// NOPP: func.func @forward(
// NOPP-NOT: trainopt.pipeline
// NOMESH: error: trainopt-schedule-pipeline: --micro-batches=2 needs a pipeline (--mesh with pp > 1); for gradient accumulation use --grad-accum
// RANGE: error: trainopt-split-pipeline: --pipeline-stage=2 is not a stage of pp=2 (0 to 1)
// CUTS: error: trainopt-split-pipeline: pp=5 needs 4 layer boundaries (points where one activation is live); @forward has 3
// TIED: error: trainopt-split-pipeline: parameter 'w' is read by stages 0 and 1 (tied weights); pipeline stages cannot share a parameter
// ACCUM: error: trainopt-schedule-pipeline: --grad-accum with pipeline parallelism is not implemented; --micro-batches=K accumulates K micro-batches per step

trainopt.parameter @w trainable : tensor<3x4xf32> = dense<0.1> : tensor<3x4xf32>
trainopt.parameter @b trainable : tensor<3xf32> = dense<0.0> : tensor<3xf32>
trainopt.parameter @v trainable : tensor<2x3xf32> = dense<0.2> : tensor<2x3xf32>
func.func @forward(%w: tensor<3x4xf32> {trainopt.param = @w}, %b: tensor<3xf32> {trainopt.param = @b},
                   %v: tensor<2x3xf32> {trainopt.param = @v},
                   %x: tensor<5x4xf32> {trainopt.input = "x"}, %y: tensor<5xi64> {trainopt.input = "labels", trainopt.role = #trainopt<role labels>})
    -> (tensor<5x2xf32> {trainopt.output = "logits"}, tensor<f32> {trainopt.output = "loss", trainopt.role = #trainopt<role loss>}) {
  %0 = trainopt.matmul %x, %w {transpose_rhs = true} : (tensor<5x4xf32>, tensor<3x4xf32>) -> tensor<5x3xf32> loc("fc1")
  %1 = trainopt.add %0, %b : (tensor<5x3xf32>, tensor<3xf32>) -> tensor<5x3xf32> loc("fc1")
  %2 = trainopt.relu %1 : tensor<5x3xf32> loc("relu")
  %3 = trainopt.matmul %2, %v {transpose_rhs = true} : (tensor<5x3xf32>, tensor<2x3xf32>) -> tensor<5x2xf32> loc("fc2")
  %l = trainopt.cross_entropy %3, %y {reduction = #trainopt<reduction mean>} : (tensor<5x2xf32>, tensor<5xi64>) -> tensor<f32> loc("loss")
  return %3, %l : tensor<5x2xf32>, tensor<f32>
}
