// RUN: trainopt-opt %s -trainopt-attach-loss="loss=cross_entropy" -trainopt-assign-precision="amp=bf16 amp-keep-fp32=fc2" | FileCheck %s --check-prefix=CHECK-NAME
// RUN: trainopt-opt %s -trainopt-attach-loss="loss=cross_entropy" -trainopt-assign-precision="amp=bf16 amp-keep-fp32=matmul" | FileCheck %s --check-prefix=CHECK-KIND
// RUN: trainopt-opt %s -trainopt-attach-loss="loss=cross_entropy" -trainopt-assign-precision="amp=bf16 amp-keep-fp32=relu,fc2" | FileCheck %s --check-prefix=CHECK-LIST
// RUN: trainopt-opt %s -trainopt-attach-loss="loss=cross_entropy" -trainopt-assign-precision="amp=fp16 amp-policy=%S/Inputs/amp-policy-custom.json" | FileCheck %s --check-prefix=CHECK-POLICY

// Option errors name the option, and trainopt-compile's flag.
// RUN: not trainopt-opt %s -trainopt-assign-precision="amp=xyz" 2>&1 | FileCheck %s --check-prefix=CHECK-ERR-AMP
// CHECK-ERR-AMP: error: --amp: expects off, bf16 or fp16, got 'xyz'
// RUN: not trainopt-opt %s -trainopt-assign-precision="amp-policy=%S/Inputs/amp-policy-custom.json" 2>&1 | FileCheck %s --check-prefix=CHECK-ERR-NOAMP-POLICY
// CHECK-ERR-NOAMP-POLICY: error: --amp-policy needs --amp=bf16 or --amp=fp16
// RUN: not trainopt-opt %s -trainopt-assign-precision="amp=off amp-keep-fp32=matmul" 2>&1 | FileCheck %s --check-prefix=CHECK-ERR-NOAMP-KEEP
// CHECK-ERR-NOAMP-KEEP: error: --amp-keep-fp32 needs --amp=bf16 or --amp=fp16
// RUN: not trainopt-opt %s -trainopt-assign-precision="amp=bf16 amp-keep-fp32=matmul,fc3" 2>&1 | FileCheck %s --check-prefix=CHECK-ERR-KEEP
// CHECK-ERR-KEEP: error: --amp-keep-fp32: 'fc3' is neither an op kind nor a node name of the model
// RUN: not trainopt-opt %s -trainopt-assign-precision="amp=bf16 amp-policy=%t.missing.json" 2>&1 | FileCheck %s --check-prefix=CHECK-ERR-MISSING
// CHECK-ERR-MISSING: error: --amp-policy {{.*}}.missing.json: cannot read: {{[Nn]}}o such file or directory
// RUN: not trainopt-opt %s -trainopt-assign-precision="amp=bf16 amp-policy=%S/Inputs/amp-policy-not-json.json" 2>&1 | FileCheck %s --check-prefix=CHECK-ERR-NOT-JSON
// CHECK-ERR-NOT-JSON: error: --amp-policy {{.*}}amp-policy-not-json.json: not JSON: {{.+}}
// RUN: not trainopt-opt %s -trainopt-assign-precision="amp=bf16 amp-policy=%S/Inputs/amp-policy-not-object.json" 2>&1 | FileCheck %s --check-prefix=CHECK-ERR-NOT-OBJECT
// CHECK-ERR-NOT-OBJECT: error: --amp-policy {{.*}}amp-policy-not-object.json: expects a JSON object
// RUN: not trainopt-opt %s -trainopt-assign-precision="amp=bf16 amp-policy=%S/Inputs/amp-policy-version.json" 2>&1 | FileCheck %s --check-prefix=CHECK-ERR-VERSION
// CHECK-ERR-VERSION: error: --amp-policy {{.*}}amp-policy-version.json: expects "version": 1, got {{.+}}
// RUN: not trainopt-opt %s -trainopt-assign-precision="amp=bf16 amp-policy=%S/Inputs/amp-policy-unknown-key.json" 2>&1 | FileCheck %s --check-prefix=CHECK-ERR-KEY
// CHECK-ERR-KEY: error: --amp-policy {{.*}}amp-policy-unknown-key.json: unknown key "bf16" (expects version, about, low_precision, fp32)
// RUN: not trainopt-opt %s -trainopt-assign-precision="amp=bf16 amp-policy=%S/Inputs/amp-policy-list-not-object.json" 2>&1 | FileCheck %s --check-prefix=CHECK-ERR-LIST
// CHECK-ERR-LIST: error: --amp-policy {{.*}}amp-policy-list-not-object.json: "fp32" expects an object of op kind -> reason
// RUN: not trainopt-opt %s -trainopt-assign-precision="amp=bf16 amp-policy=%S/Inputs/amp-policy-unknown-kind.json" 2>&1 | FileCheck %s --check-prefix=CHECK-ERR-KIND
// CHECK-ERR-KIND: error: --amp-policy {{.*}}amp-policy-unknown-kind.json: "fp32": unknown op kind 'softmaxx'
// RUN: not trainopt-opt %s -trainopt-assign-precision="amp=bf16 amp-policy=%S/Inputs/amp-policy-both-lists.json" 2>&1 | FileCheck %s --check-prefix=CHECK-ERR-BOTH
// CHECK-ERR-BOTH: error: --amp-policy {{.*}}amp-policy-both-lists.json: op kind 'matmul' is in both lists

// amp-keep-fp32 by node name (the importer's NameLoc): fc2's matmul and its
// bias add stay f32 and their parameters are not cast; fc1 and the relu
// still run in bf16.
// CHECK-NAME-LABEL: func.func @forward(
// CHECK-NAME-SAME: %[[W1:[^:]*]]: tensor<8x6xf32> {trainopt.param = @fc1.weight}, %[[B1:[^:]*]]: tensor<8xf32> {trainopt.param = @fc1.bias},
// CHECK-NAME-SAME: %[[W2:[^:]*]]: tensor<3x8xf32> {trainopt.param = @fc2.weight}, %[[B2:[^:]*]]: tensor<3xf32> {trainopt.param = @fc2.bias},
// CHECK-NAME-NOT: trainopt.cast %[[W2]]
// CHECK-NAME-NOT: trainopt.cast %[[B2]]
// CHECK-NAME: %[[H:.*]] = trainopt.matmul %{{.*}}, %{{.*}} {transpose_rhs = true} : (tensor<4x6xbf16>, tensor<8x6xbf16>) -> tensor<4x8xbf16>
// CHECK-NAME-NEXT: %[[HB:.*]] = trainopt.add %[[H]], %{{.*}} : (tensor<4x8xbf16>, tensor<8xbf16>) -> tensor<4x8xbf16>
// CHECK-NAME-NEXT: %[[R:.*]] = trainopt.relu %[[HB]] : tensor<4x8xbf16>
// CHECK-NAME-NEXT: %[[R32:.*]] = trainopt.cast %[[R]] : tensor<4x8xbf16> to tensor<4x8xf32>
// CHECK-NAME-NEXT: %[[Z:.*]] = trainopt.matmul %[[R32]], %[[W2]] {transpose_rhs = true} : (tensor<4x8xf32>, tensor<3x8xf32>) -> tensor<4x3xf32>
// CHECK-NAME-NEXT: %[[ZB:.*]] = trainopt.add %[[Z]], %[[B2]] : (tensor<4x3xf32>, tensor<3xf32>) -> tensor<4x3xf32>
// CHECK-NAME-NEXT: trainopt.cross_entropy %[[ZB]]

// amp-keep-fp32 by op kind: with both matmuls kept in f32 and every other op
// following them, nothing is cast.
// CHECK-KIND-LABEL: func.func @forward(
// CHECK-KIND-NOT: trainopt.cast
// CHECK-KIND-NOT: bf16
// CHECK-KIND: return

// A list, of an op kind and a node name; each entry counts: fc1 runs in
// bf16, the relu goes up to f32 and fc2 follows it there.
// CHECK-LIST-LABEL: func.func @forward(
// CHECK-LIST: %[[H:.*]] = trainopt.matmul %{{.*}}, %{{.*}} {transpose_rhs = true} : (tensor<4x6xbf16>, tensor<8x6xbf16>) -> tensor<4x8xbf16>
// CHECK-LIST-NEXT: %[[HB:.*]] = trainopt.add %[[H]], %{{.*}} : (tensor<4x8xbf16>, tensor<8xbf16>) -> tensor<4x8xbf16>
// CHECK-LIST-NEXT: %[[HB32:.*]] = trainopt.cast %[[HB]] : tensor<4x8xbf16> to tensor<4x8xf32>
// CHECK-LIST-NEXT: %[[R:.*]] = trainopt.relu %[[HB32]] : tensor<4x8xf32>
// CHECK-LIST-NEXT: %[[Z:.*]] = trainopt.matmul %[[R]], %{{.*}} {transpose_rhs = true} : (tensor<4x8xf32>, tensor<3x8xf32>) -> tensor<4x3xf32>
// CHECK-LIST-NEXT: %[[ZB:.*]] = trainopt.add %[[Z]], %{{.*}} : (tensor<4x3xf32>, tensor<3xf32>) -> tensor<4x3xf32>
// CHECK-LIST-NEXT: trainopt.cross_entropy %[[ZB]]

// A policy file replaces the built-in policy (Inputs/amp-policy-custom.json:
// matmul and relu low, add f32): each bias add goes up to f32 with its bias
// uncast, the relu goes back down to fp16.
// CHECK-POLICY-LABEL: func.func @forward(
// CHECK-POLICY-SAME: %[[W1:[^:]*]]: tensor<8x6xf32> {trainopt.param = @fc1.weight}, %[[B1:[^:]*]]: tensor<8xf32> {trainopt.param = @fc1.bias},
// CHECK-POLICY-SAME: %[[W2:[^:]*]]: tensor<3x8xf32> {trainopt.param = @fc2.weight}, %[[B2:[^:]*]]: tensor<3xf32> {trainopt.param = @fc2.bias},
// CHECK-POLICY: %[[H:.*]] = trainopt.matmul %{{.*}}, %{{.*}} {transpose_rhs = true} : (tensor<4x6xf16>, tensor<8x6xf16>) -> tensor<4x8xf16>
// CHECK-POLICY-NEXT: %[[H32:.*]] = trainopt.cast %[[H]] : tensor<4x8xf16> to tensor<4x8xf32>
// CHECK-POLICY-NEXT: %[[HB:.*]] = trainopt.add %[[H32]], %[[B1]] : (tensor<4x8xf32>, tensor<8xf32>) -> tensor<4x8xf32>
// CHECK-POLICY-NEXT: %[[HBL:.*]] = trainopt.cast %[[HB]] : tensor<4x8xf32> to tensor<4x8xf16>
// CHECK-POLICY-NEXT: %[[R:.*]] = trainopt.relu %[[HBL]] : tensor<4x8xf16>
// CHECK-POLICY-NEXT: %[[Z:.*]] = trainopt.matmul %[[R]], %{{.*}} {transpose_rhs = true} : (tensor<4x8xf16>, tensor<3x8xf16>) -> tensor<4x3xf16>
// CHECK-POLICY-NEXT: %[[Z32:.*]] = trainopt.cast %[[Z]] : tensor<4x3xf16> to tensor<4x3xf32>
// CHECK-POLICY-NEXT: %[[ZB:.*]] = trainopt.add %[[Z32]], %[[B2]] : (tensor<4x3xf32>, tensor<3xf32>) -> tensor<4x3xf32>
// CHECK-POLICY-NEXT: trainopt.cross_entropy %[[ZB]]
trainopt.parameter @fc1.weight trainable : tensor<8x6xf32>
trainopt.parameter @fc1.bias trainable : tensor<8xf32>
trainopt.parameter @fc2.weight trainable : tensor<3x8xf32>
trainopt.parameter @fc2.bias trainable : tensor<3xf32>
func.func @forward(%w1: tensor<8x6xf32> {trainopt.param = @fc1.weight}, %b1: tensor<8xf32> {trainopt.param = @fc1.bias},
                   %w2: tensor<3x8xf32> {trainopt.param = @fc2.weight}, %b2: tensor<3xf32> {trainopt.param = @fc2.bias},
                   %x: tensor<4x6xf32> {trainopt.input = "x"}) -> (tensor<4x3xf32> {trainopt.output = "logits"}) {
  %0 = trainopt.matmul %x, %w1 {transpose_rhs = true} : (tensor<4x6xf32>, tensor<8x6xf32>) -> tensor<4x8xf32> loc("fc1")
  %1 = trainopt.add %0, %b1 : (tensor<4x8xf32>, tensor<8xf32>) -> tensor<4x8xf32> loc("fc1")
  %2 = trainopt.relu %1 : tensor<4x8xf32> loc("act")
  %3 = trainopt.matmul %2, %w2 {transpose_rhs = true} : (tensor<4x8xf32>, tensor<3x8xf32>) -> tensor<4x3xf32> loc("fc2")
  %4 = trainopt.add %3, %b2 : (tensor<4x3xf32>, tensor<3xf32>) -> tensor<4x3xf32> loc("fc2")
  return %4 : tensor<4x3xf32>
}

// Loss scaling: dynamic by default under fp16, recorded on the function for
// trainopt-build-train-step and trainopt-transform-gradients; none under
// bf16; its options checked.
// RUN: trainopt-opt %s -trainopt-attach-loss="loss=cross_entropy" -trainopt-assign-precision="amp=fp16" | FileCheck %s --check-prefix=CHECK-SCALE-DYN
// CHECK-SCALE-DYN: func.func @forward({{.*}} attributes {trainopt.loss_scale = {backoff_factor = 5.000000e-01 : f64, dynamic = true, growth_factor = 2.000000e+00 : f64, growth_interval = 2000 : i64, init = 6.553600e+04 : f64}}
// RUN: trainopt-opt %s -trainopt-attach-loss="loss=cross_entropy" -trainopt-assign-precision="amp=fp16 loss-scale=1024" | FileCheck %s --check-prefix=CHECK-SCALE-FIXED
// CHECK-SCALE-FIXED: trainopt.loss_scale = {{{.*}}dynamic = false{{.*}}init = 1.024000e+03 : f64}
// RUN: trainopt-opt %s -trainopt-attach-loss="loss=cross_entropy" -trainopt-assign-precision="amp=fp16 loss-scale=off" | FileCheck %s --check-prefix=CHECK-SCALE-OFF
// RUN: trainopt-opt %s -trainopt-attach-loss="loss=cross_entropy" -trainopt-assign-precision="amp=bf16" | FileCheck %s --check-prefix=CHECK-SCALE-OFF
// CHECK-SCALE-OFF-NOT: trainopt.loss_scale
// RUN: not trainopt-opt %s -trainopt-assign-precision="amp=bf16 loss-scale=dynamic" 2>&1 | FileCheck %s --check-prefix=CHECK-ERR-SCALE-BF16
// CHECK-ERR-SCALE-BF16: error: --loss-scale: bf16 has f32's range and needs no loss scaling; it applies with --amp=fp16
// RUN: not trainopt-opt %s -trainopt-assign-precision="loss-scale=128" 2>&1 | FileCheck %s --check-prefix=CHECK-ERR-SCALE-OFF
// CHECK-ERR-SCALE-OFF: error: --loss-scale: loss scaling is for fp16 training; it applies with --amp=fp16
// RUN: not trainopt-opt %s -trainopt-assign-precision="amp=fp16 loss-scale=-2" 2>&1 | FileCheck %s --check-prefix=CHECK-ERR-SCALE-VALUE
// CHECK-ERR-SCALE-VALUE: error: --loss-scale: expects dynamic, off or a positive scale, got '-2'
// RUN: not trainopt-opt %s -trainopt-assign-precision="amp=fp16 loss-scale-growth-interval=0" 2>&1 | FileCheck %s --check-prefix=CHECK-ERR-INTERVAL
// CHECK-ERR-INTERVAL: error: --loss-scale-growth-interval: expects >= 1, got 0
// RUN: not trainopt-opt %s -trainopt-assign-precision="amp=fp16 loss-scale-growth-factor=1" 2>&1 | FileCheck %s --check-prefix=CHECK-ERR-GROWTH
// CHECK-ERR-GROWTH: error: --loss-scale-growth-factor: expects > 1, got 1
// RUN: not trainopt-opt %s -trainopt-assign-precision="amp=fp16 loss-scale-backoff-factor=1.5" 2>&1 | FileCheck %s --check-prefix=CHECK-ERR-BACKOFF
// CHECK-ERR-BACKOFF: error: --loss-scale-backoff-factor: expects a value in (0, 1), got 1.5
// RUN: not trainopt-opt %s -trainopt-assign-precision="amp=fp16 loss-scale-init=0" 2>&1 | FileCheck %s --check-prefix=CHECK-ERR-INIT
// CHECK-ERR-INIT: error: --loss-scale-init: expects a positive finite scale, got 0

// BatchNorm stays f32: a policy that puts it in low precision is refused (one
// that does not list it keeps it in f32).
// RUN: not trainopt-opt %s -trainopt-assign-precision="amp=bf16 amp-policy=%S/Inputs/amp-policy-bn-low.json" 2>&1 | FileCheck %s --check-prefix=CHECK-ERR-BN
// CHECK-ERR-BN: error: --amp-policy {{.*}}amp-policy-bn-low.json: 'batch_norm_train' must be in "fp32" (its running statistics are f32 model state)
