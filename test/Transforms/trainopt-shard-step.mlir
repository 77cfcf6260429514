// RUN: trainopt-opt %s '-trainopt-partition-model=mesh=dp=2' -trainopt-build-train-step -trainopt-transform-gradients -trainopt-lr-schedule -trainopt-apply-optimizer -trainopt-build-eval-step '-trainopt-shard-step=bucket-mb=0.00004' | FileCheck %s
// RUN: trainopt-opt %s -trainopt-build-train-step -trainopt-transform-gradients -trainopt-lr-schedule -trainopt-apply-optimizer -trainopt-build-eval-step -trainopt-shard-step | FileCheck %s --check-prefix=NOMESH
// RUN: trainopt-opt %s -trainopt-build-train-step -trainopt-transform-gradients | FileCheck %s --check-prefix=MARK
// RUN: trainopt-opt %s '-trainopt-partition-model=mesh=dp=4' -trainopt-build-train-step -trainopt-transform-gradients -trainopt-lr-schedule '-trainopt-apply-optimizer=optimizer=sgd momentum=0.9' '-trainopt-shard-step=zero=1' | FileCheck %s --check-prefix=ZERO
// RUN: trainopt-opt %s '-trainopt-partition-model=mesh=dp=4' -trainopt-build-train-step -trainopt-transform-gradients -trainopt-lr-schedule '-trainopt-apply-optimizer=optimizer=lamb' '-trainopt-shard-step=zero=1' | FileCheck %s --check-prefix=LAMB
// RUN: trainopt-opt %s '-trainopt-partition-model=mesh=dp=4' -trainopt-build-train-step -trainopt-transform-gradients -trainopt-lr-schedule '-trainopt-apply-optimizer=optimizer=sgd momentum=0.9' '-trainopt-shard-step=zero=2' | FileCheck %s --check-prefix=ZERO2
// RUN: trainopt-opt %s '-trainopt-partition-model=mesh=dp=4' -trainopt-build-train-step -trainopt-transform-gradients -trainopt-lr-schedule '-trainopt-apply-optimizer=optimizer=sgd momentum=0.9' -trainopt-build-eval-step '-trainopt-shard-step=zero=3' | FileCheck %s --check-prefix=ZERO3
// RUN: not trainopt-opt %s '-trainopt-partition-model=mesh=dp=2' -trainopt-build-train-step -trainopt-transform-gradients -trainopt-lr-schedule -trainopt-apply-optimizer '-trainopt-shard-step=bucket-mb=0' 2>&1 | FileCheck %s --check-prefix=BUCKET

// trainopt-transform-gradients marks each gradient where replicas combine
// them: after accumulation, before the norm.
// MARK-LABEL: func.func @train_step(
// MARK: trainopt.grad_sync %{{.*}} {param = @w} : tensor<3x4xf32>
// MARK: trainopt.grad_sync %{{.*}} {param = @b} : tensor<3xf32>
// MARK: trainopt.grad_sync %{{.*}} {param = @v} : tensor<2x3xf32>
// MARK: trainopt.sqrt

// The mesh is an upstream shard.grid with named axes; inputs and labels of
// both entry points are split on dim 0 over dp. The backward computes the
// gradient of @v first, then @b, then @w (as the callee returns them): a
// 0.00004 MiB (41-byte) cap puts @v (24 bytes) and @b (12) in the first
// bucket and @w (48) alone in the second, in that order, right after the
// gradient function. Each gradient is then its bucket's sum times 1/2 where
// its marker was; the loss is averaged over the ranks.
// CHECK: shard.grid @mesh(shape = 2) {trainopt.axes = ["dp"]}
// CHECK-LABEL: func.func @train_step(
// CHECK-SAME: %{{.*}}: tensor<5x4xf32> {trainopt.input = "x", trainopt.sharding = "dp:0"}
// CHECK-SAME: %{{.*}}: tensor<5xi64> {trainopt.input = "labels", trainopt.role = #trainopt<role labels>, trainopt.sharding = "dp:0"}
// CHECK-SAME: attributes {trainopt.cost_model = {compute_gflops = 5.000000e+01 : f64, gbps = 1.000000e+01 : f64, latency_us = 2.000000e+00 : f64, link = "shm"}, trainopt.mesh = @mesh, trainopt.sharding_decisions = {b = "replicated over dp (data parallel)"
// CHECK: %[[G:.*]]:5 = call @forward_train_grad(
// CHECK-NEXT: %[[B1:.*]]:2 = trainopt.all_reduce sum %[[G]]#4, %[[G]]#3 on @mesh axes = [0] : tensor<2x3xf32>, tensor<3xf32>
// CHECK-NEXT: %[[B2:.*]] = trainopt.all_reduce sum %[[G]]#2 on @mesh axes = [0] : tensor<3x4xf32>
// CHECK: %[[HALF:.*]] = trainopt.constant dense<5.000000e-01> : tensor<f32>
// CHECK-NEXT: trainopt.mul %[[B2]], %[[HALF]]
// CHECK: trainopt.mul %[[B1]]#1,
// CHECK: trainopt.mul %[[B1]]#0,
// CHECK: %[[L:.*]] = trainopt.all_reduce sum %[[G]]#1 on @mesh axes = [0] : tensor<f32>
// CHECK: %[[LM:.*]] = trainopt.mul %[[L]],
// CHECK: return {{.*}}%[[LM]]
// CHECK-LABEL: func.func @eval_step(
// CHECK-SAME: trainopt.sharding = "dp:0"
// CHECK-SAME: attributes {trainopt.mesh = @mesh}
// CHECK-NOT: trainopt.all_reduce

// Without a mesh the program is the single-device one: no grid, no
// collectives, no markers.
// NOMESH-NOT: shard.grid
// NOMESH-NOT: trainopt.all_reduce
// NOMESH-NOT: trainopt.grad_sync
// NOMESH-NOT: trainopt.sharding
// NOMESH-LABEL: func.func @train_step(

// ZeRO-1 over 4 ranks: each momentum buffer is a flat shard (w: 12
// elements, 3 per rank; b: 3 elements padded to 4, 1 per rank), with the
// global type beside it. The update runs on this rank's shards of the
// parameter and the gradient (padded with zeros where needed), and the new
// parameter is gathered back and unpadded. The decisions say why.
// ZERO-LABEL: func.func @train_step(
// ZERO-SAME: %{{[^:]*}}: tensor<3xf32> {trainopt.global_type = tensor<3x4xf32>, trainopt.role = #trainopt<role optimizer_state>, trainopt.sharding = "dp:flat", trainopt.state = "momentum_buffer", trainopt.state_of = @w}
// ZERO-SAME: %{{[^:]*}}: tensor<1xf32> {trainopt.global_type = tensor<3xf32>, trainopt.role = #trainopt<role optimizer_state>, trainopt.sharding = "dp:flat", trainopt.state = "momentum_buffer", trainopt.state_of = @b}
// ZERO-SAME: trainopt.sharding_decisions = {b = "replicated over dp; its 1 optimizer slot(s) flat over dp (ZeRO-1), each rank updating 1/4 of it"
// ZERO: trainopt.rank_slice %{{.*}} on @mesh axes = [0] : tensor<12xf32> -> tensor<3xf32>
// ZERO: %[[WG:.*]] = trainopt.all_gather %{{.*}} on @mesh axes = [0] : tensor<3xf32> -> tensor<12xf32>
// ZERO: trainopt.reshape %[[WG]] : tensor<12xf32> -> tensor<3x4xf32>
// ZERO: %[[PAD:.*]] = trainopt.concat %arg1, %{{.*}} {axis = 0 : i64} : (tensor<3xf32>, tensor<1xf32>) -> tensor<4xf32>
// ZERO: trainopt.rank_slice %[[PAD]] on @mesh axes = [0] : tensor<4xf32> -> tensor<1xf32>
// ZERO: %[[BG:.*]] = trainopt.all_gather %{{.*}} on @mesh axes = [0] : tensor<1xf32> -> tensor<4xf32>
// ZERO: trainopt.slice %[[BG]] {limit = array<i64: 3>, start = array<i64: 0>, stride = array<i64: 1>} : (tensor<4xf32>) -> tensor<3xf32>

// LAMB's trust ratio reduces over the whole update: its state stays whole.
// LAMB: trainopt.sharding_decisions = {b = "replicated over dp (data parallel); optimizer state kept whole: its update also feeds a reduction over the whole parameter (as LAMB's trust ratio does), which a shard cannot compute"
// LAMB-NOT: trainopt.rank_slice

// ZeRO-2: the three gradients, flattened and zero-padded to multiples of
// 4, are reduce-scattered in one collective where their bucket's
// all-reduce was; each rank's part times 1/4 is what the update reads,
// and the global norm sums the ranks'
// sums of squares of their parts (one all-reduce of three scalars).
// ZERO2-LABEL: func.func @train_step(
// ZERO2-SAME: sharding_decisions = {b = "replicated over dp; its 1 optimizer slot(s) flat over dp (ZeRO-1), each rank updating 1/4 of it; its gradient reduce-scattered (ZeRO-2)"
// ZERO2: %[[G:.*]]:5 = call @forward_train_grad(
// ZERO2-NEXT: %[[W:.*]] = trainopt.reshape %[[G]]#2 : tensor<3x4xf32> -> tensor<12xf32>
// ZERO2: %[[B:.*]] = trainopt.concat %[[G]]#3, %{{.*}} {axis = 0 : i64} : (tensor<3xf32>, tensor<1xf32>) -> tensor<4xf32>
// ZERO2: %[[V:.*]] = trainopt.concat %{{.*}}, %{{.*}} {axis = 0 : i64} : (tensor<6xf32>, tensor<2xf32>) -> tensor<8xf32>
// ZERO2-NEXT: %[[RS:.*]]:3 = trainopt.reduce_scatter sum %[[W]], %[[B]], %[[V]] on @mesh axes = [0] : tensor<12xf32>, tensor<4xf32>, tensor<8xf32> -> tensor<3xf32>, tensor<1xf32>, tensor<2xf32>
// ZERO2: %[[WP:.*]] = trainopt.mul %[[RS]]#0, %{{.*}} : (tensor<3xf32>, tensor<f32>) -> tensor<3xf32>
// ZERO2: %[[SQ:.*]] = trainopt.mul %[[WP]], %[[WP]] : (tensor<3xf32>, tensor<3xf32>) -> tensor<3xf32>
// ZERO2-NEXT: %[[SS:.*]] = trainopt.reduce_sum %[[SQ]] : (tensor<3xf32>) -> tensor<f32>
// ZERO2: trainopt.all_reduce sum %[[SS]], %{{.*}}, %{{.*}} on @mesh axes = [0] : tensor<f32>, tensor<f32>, tensor<f32>
// ZERO2: trainopt.where %{{.*}}, %[[WP]], %{{.*}} : (tensor<i1>, tensor<3xf32>, tensor<3xf32>) -> tensor<3xf32>
// ZERO2: trainopt.all_gather %{{.*}} on @mesh axes = [0] : tensor<3xf32> -> tensor<12xf32>

// ZeRO-3: the parameters themselves are flat shards (the global type beside
// them), gathered whole at the start of both entry points in the
// parameters' order; the update reads the shard itself and the step
// returns the updated shard.
// ZERO3-LABEL: func.func @train_step(
// ZERO3-SAME: %[[PW:[^:]*]]: tensor<3xf32> {trainopt.global_type = tensor<3x4xf32>, trainopt.param = @w, trainopt.sharding = "dp:flat"}
// ZERO3-SAME: -> (tensor<i64> {trainopt.updates = 6 : i64}, tensor<3xf32> {trainopt.updates = 0 : i64}
// ZERO3-SAME: w = "flat over dp (ZeRO-3), gathered whole at the start of each step; its 1 optimizer slot(s) flat over dp (ZeRO-1), each rank updating 1/4 of it; its gradient reduce-scattered (ZeRO-2)"
// ZERO3-NEXT: %[[GW:.*]] = trainopt.all_gather %[[PW]] on @mesh axes = [0] : tensor<3xf32> -> tensor<12xf32>
// ZERO3-NEXT: %[[WW:.*]] = trainopt.reshape %[[GW]] : tensor<12xf32> -> tensor<3x4xf32>
// ZERO3-NEXT: trainopt.all_gather %{{.*}} on @mesh axes = [0] : tensor<1xf32> -> tensor<4xf32>
// ZERO3-NEXT: trainopt.slice
// ZERO3-NEXT: trainopt.all_gather %{{.*}} on @mesh axes = [0] : tensor<2xf32> -> tensor<8xf32>
// ZERO3: call @forward_train_grad(%[[WW]],
// ZERO3: %[[NW:.*]] = trainopt.sub %[[PW]], %{{.*}} : (tensor<3xf32>, tensor<3xf32>) -> tensor<3xf32>
// ZERO3-NOT: trainopt.all_gather
// ZERO3: return %{{[^,]*}}, %[[NW]],
// ZERO3-LABEL: func.func @eval_step(
// ZERO3-SAME: %[[EW:[^:]*]]: tensor<3xf32> {trainopt.global_type = tensor<3x4xf32>, trainopt.param = @w, trainopt.sharding = "dp:flat"}
// ZERO3-NEXT: %[[EG:.*]] = trainopt.all_gather %[[EW]] on @mesh axes = [0] : tensor<3xf32> -> tensor<12xf32>
// ZERO3-NEXT: %[[EWW:.*]] = trainopt.reshape %[[EG]] : tensor<12xf32> -> tensor<3x4xf32>
// ZERO3: trainopt.matmul %{{.*}}, %[[EWW]]
// BUCKET: error: --bucket-mb: must be > 0
trainopt.parameter @w trainable : tensor<3x4xf32> = dense<0.1> : tensor<3x4xf32>
trainopt.parameter @b trainable : tensor<3xf32> = dense<0.0> : tensor<3xf32>
trainopt.parameter @v trainable : tensor<2x3xf32> = dense<0.2> : tensor<2x3xf32>
func.func @forward(%w: tensor<3x4xf32> {trainopt.param = @w}, %b: tensor<3xf32> {trainopt.param = @b},
                   %v: tensor<2x3xf32> {trainopt.param = @v},
                   %x: tensor<5x4xf32> {trainopt.input = "x"}, %y: tensor<5xi64> {trainopt.input = "labels", trainopt.role = #trainopt<role labels>})
    -> (tensor<5x2xf32> {trainopt.output = "logits"}, tensor<f32> {trainopt.output = "loss", trainopt.role = #trainopt<role loss>}) {
  %0 = trainopt.matmul %x, %w {transpose_rhs = true} : (tensor<5x4xf32>, tensor<3x4xf32>) -> tensor<5x3xf32>
  %1 = trainopt.add %0, %b : (tensor<5x3xf32>, tensor<3xf32>) -> tensor<5x3xf32>
  %2 = trainopt.relu %1 : tensor<5x3xf32>
  %3 = trainopt.matmul %2, %v {transpose_rhs = true} : (tensor<5x3xf32>, tensor<2x3xf32>) -> tensor<5x2xf32>
  %l = trainopt.cross_entropy %3, %y {reduction = #trainopt<reduction mean>} : (tensor<5x2xf32>, tensor<5xi64>) -> tensor<f32>
  return %3, %l : tensor<5x2xf32>, tensor<f32>
}
