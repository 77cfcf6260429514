// RUN: trainopt-opt %s -split-input-file -trainopt-attach-loss="loss=cross_entropy class-axis=-1" -trainopt-assign-precision="amp=bf16" | FileCheck %s
// RUN: trainopt-opt %s -split-input-file -trainopt-attach-loss="loss=cross_entropy class-axis=-1" -trainopt-assign-precision="amp=fp16" | FileCheck %s --check-prefix=FP16
// amp=off (the default) leaves the module as trainopt-attach-loss wrote it.
// RUN: trainopt-opt %s -split-input-file -trainopt-attach-loss="loss=cross_entropy class-axis=-1" > %t.ref.mlir
// RUN: trainopt-opt %s -split-input-file -trainopt-attach-loss="loss=cross_entropy class-axis=-1" -trainopt-assign-precision="amp=off" > %t.off.mlir
// RUN: diff %t.ref.mlir %t.off.mlir
// RUN: trainopt-opt %s -split-input-file -trainopt-attach-loss="loss=cross_entropy class-axis=-1" -trainopt-assign-precision > %t.default.mlir
// RUN: diff %t.ref.mlir %t.default.mlir

// (class-axis=-1 is the class axis of [B, C] image logits and of [B, T, V]
// token logits alike. FP16 checks the first and the last case; its labels
// in the others keep the cases apart.)

// A small CNN under the built-in policy: conv and matmul in bf16, the ops
// between them follow; each weight and bias is cast once, from its f32
// master; the bias add runs in bf16 (its bias does not vote); the logits go
// back to f32 once, for the loss and for the result; the signature keeps its
// types.
// CHECK-LABEL: func.func @forward(
// CHECK-SAME: %[[CW:[^:]*]]: tensor<4x1x3x3xf32> {trainopt.param = @conv.weight}, %[[CB:[^:]*]]: tensor<4xf32> {trainopt.param = @conv.bias},
// CHECK-SAME: %[[FW:[^:]*]]: tensor<10x36xf32> {trainopt.param = @fc.weight}, %[[FB:[^:]*]]: tensor<10xf32> {trainopt.param = @fc.bias},
// CHECK-SAME: %[[X:[^:]*]]: tensor<2x1x8x8xf32> {trainopt.input = "x"}, %[[Y:[^:]*]]: tensor<2xi64> {trainopt.input = "labels", trainopt.role = #trainopt<role labels>})
// CHECK-SAME: -> (tensor<2x10xf32> {trainopt.output = "logits"}, tensor<f32> {trainopt.output = "loss", trainopt.role = #trainopt<role loss>})
// CHECK-DAG: %[[CWL:.*]] = trainopt.cast %[[CW]] : tensor<4x1x3x3xf32> to tensor<4x1x3x3xbf16>
// CHECK-DAG: %[[CBL:.*]] = trainopt.cast %[[CB]] : tensor<4xf32> to tensor<4xbf16>
// CHECK-DAG: %[[FWL:.*]] = trainopt.cast %[[FW]] : tensor<10x36xf32> to tensor<10x36xbf16>
// CHECK-DAG: %[[FBL:.*]] = trainopt.cast %[[FB]] : tensor<10xf32> to tensor<10xbf16>
// CHECK-DAG: %[[XL:.*]] = trainopt.cast %[[X]] : tensor<2x1x8x8xf32> to tensor<2x1x8x8xbf16>
// CHECK-NOT: trainopt.cast
// CHECK: %[[C:.*]] = trainopt.conv %[[XL]], %[[CWL]], %[[CBL]] {{.*}} -> tensor<2x4x6x6xbf16>
// CHECK-NEXT: %[[R:.*]] = trainopt.relu %[[C]] : tensor<2x4x6x6xbf16>
// CHECK-NEXT: %[[P:.*]] = trainopt.max_pool %[[R]] {{.*}} : (tensor<2x4x6x6xbf16>) -> tensor<2x4x3x3xbf16>
// CHECK-NEXT: %[[F:.*]] = trainopt.reshape %[[P]] : tensor<2x4x3x3xbf16> -> tensor<2x36xbf16>
// CHECK-NEXT: %[[M:.*]] = trainopt.matmul %[[F]], %[[FWL]] {transpose_rhs = true} : (tensor<2x36xbf16>, tensor<10x36xbf16>) -> tensor<2x10xbf16>
// CHECK-NEXT: %[[Z:.*]] = trainopt.add %[[M]], %[[FBL]] : (tensor<2x10xbf16>, tensor<10xbf16>) -> tensor<2x10xbf16>
// CHECK-NEXT: %[[Z32:.*]] = trainopt.cast %[[Z]] : tensor<2x10xbf16> to tensor<2x10xf32>
// CHECK-NEXT: %[[L:.*]] = trainopt.cross_entropy %[[Z32]], %[[Y]] {{.*}} : (tensor<2x10xf32>, tensor<2xi64>) -> tensor<f32>
// CHECK-NEXT: return %[[Z32]], %[[L]] : tensor<2x10xf32>, tensor<f32>
// FP16-LABEL: func.func @forward(
// FP16-SAME: -> (tensor<2x10xf32> {trainopt.output = "logits"}, tensor<f32> {trainopt.output = "loss", trainopt.role = #trainopt<role loss>})
// FP16: trainopt.conv {{.*}} : (tensor<2x1x8x8xf16>, tensor<4x1x3x3xf16>, tensor<4xf16>) -> tensor<2x4x6x6xf16>
// FP16: trainopt.matmul {{.*}} : (tensor<2x36xf16>, tensor<10x36xf16>) -> tensor<2x10xf16>
// FP16: %[[Z:.*]] = trainopt.add %{{.*}}, %{{.*}} : (tensor<2x10xf16>, tensor<10xf16>) -> tensor<2x10xf16>
// FP16: %[[Z32:.*]] = trainopt.cast %[[Z]] : tensor<2x10xf16> to tensor<2x10xf32>
// FP16: trainopt.cross_entropy %[[Z32]]
// FP16-NOT: bf16
trainopt.parameter @conv.weight trainable : tensor<4x1x3x3xf32>
trainopt.parameter @conv.bias trainable : tensor<4xf32>
trainopt.parameter @fc.weight trainable : tensor<10x36xf32>
trainopt.parameter @fc.bias trainable : tensor<10xf32>
func.func @forward(%cw: tensor<4x1x3x3xf32> {trainopt.param = @conv.weight},
                   %cb: tensor<4xf32> {trainopt.param = @conv.bias},
                   %fw: tensor<10x36xf32> {trainopt.param = @fc.weight},
                   %fb: tensor<10xf32> {trainopt.param = @fc.bias},
                   %x: tensor<2x1x8x8xf32> {trainopt.input = "x"})
    -> (tensor<2x10xf32> {trainopt.output = "logits"}) {
  %0 = trainopt.conv %x, %cw, %cb {strides = array<i64: 1, 1>, padding = array<i64: 0, 0, 0, 0>, dilations = array<i64: 1, 1>}
      : (tensor<2x1x8x8xf32>, tensor<4x1x3x3xf32>, tensor<4xf32>) -> tensor<2x4x6x6xf32>
  %1 = trainopt.relu %0 : tensor<2x4x6x6xf32>
  %2 = trainopt.max_pool %1 {kernel_shape = array<i64: 2, 2>, strides = array<i64: 2, 2>, padding = array<i64: 0, 0, 0, 0>, dilations = array<i64: 1, 1>}
      : (tensor<2x4x6x6xf32>) -> tensor<2x4x3x3xf32>
  %3 = trainopt.reshape %2 : tensor<2x4x3x3xf32> -> tensor<2x36xf32>
  %4 = trainopt.matmul %3, %fw {transpose_rhs = true} : (tensor<2x36xf32>, tensor<10x36xf32>) -> tensor<2x10xf32>
  %5 = trainopt.add %4, %fb : (tensor<2x10xf32>, tensor<10xf32>) -> tensor<2x10xf32>
  return %5 : tensor<2x10xf32>
}

// -----

// A weight used by two matmuls is cast once, and both use that copy.
// FP16-LABEL: func.func @forward(
// CHECK-LABEL: func.func @forward(
// CHECK-SAME: %[[W:[^:]*]]: tensor<4x4xf32> {trainopt.param = @w}
// CHECK: %[[WL:.*]] = trainopt.cast %[[W]] : tensor<4x4xf32> to tensor<4x4xbf16>
// CHECK-NOT: trainopt.cast %[[W]]
// CHECK: %[[H:.*]] = trainopt.matmul %{{.*}}, %[[WL]] : (tensor<3x4xbf16>, tensor<4x4xbf16>) -> tensor<3x4xbf16>
// CHECK-NOT: trainopt.cast %[[W]]
// CHECK: %[[R:.*]] = trainopt.relu %[[H]] : tensor<3x4xbf16>
// CHECK-NOT: trainopt.cast %[[W]]
// CHECK: trainopt.matmul %[[R]], %[[WL]] : (tensor<3x4xbf16>, tensor<4x4xbf16>) -> tensor<3x4xbf16>
trainopt.parameter @w trainable : tensor<4x4xf32>
func.func @forward(%w: tensor<4x4xf32> {trainopt.param = @w}, %x: tensor<3x4xf32> {trainopt.input = "x"})
    -> (tensor<3x4xf32> {trainopt.output = "logits"}) {
  %h = trainopt.matmul %x, %w : (tensor<3x4xf32>, tensor<4x4xf32>) -> tensor<3x4xf32>
  %r = trainopt.relu %h : tensor<3x4xf32>
  %z = trainopt.matmul %r, %w : (tensor<3x4xf32>, tensor<4x4xf32>) -> tensor<3x4xf32>
  return %z : tensor<3x4xf32>
}

// -----

// A GPT-style decoder block (token embedding by gather, pre-norm attention
// and MLP with residual adds, logits [B, T, V] through the tied embedding):
// layer_norm, softmax and the loss in f32, every matmul in bf16. The
// embedding gather has no activation input and stays f32, so the residual
// stream is f32: each residual add follows it and takes its bf16 branch
// cast up. Constants that meet bf16 activations are folded to bf16
// constants. The tied embedding is cast once, for the output projection.
// FP16-LABEL: func.func @forward(
// CHECK-LABEL: func.func @forward(
// CHECK-SAME: %[[WTE:[^:]*]]: tensor<96x32xf32> {trainopt.param = @wte}, %[[WPE:[^:]*]]: tensor<8x32xf32> {trainopt.param = @wpe},
// CHECK-SAME: %[[G1:[^:]*]]: tensor<32xf32> {trainopt.param = @ln1.weight}, %[[B1:[^:]*]]: tensor<32xf32> {trainopt.param = @ln1.bias},
// CHECK-SAME: %[[WQKV:[^:]*]]: tensor<32x96xf32> {trainopt.param = @attn.qkv}, %[[WO:[^:]*]]: tensor<32x32xf32> {trainopt.param = @attn.proj},
// CHECK-SAME: %[[G2:[^:]*]]: tensor<32xf32> {trainopt.param = @ln2.weight}, %[[B2:[^:]*]]: tensor<32xf32> {trainopt.param = @ln2.bias},
// CHECK-SAME: %[[WFC:[^:]*]]: tensor<32x128xf32> {trainopt.param = @mlp.fc}, %[[WPR:[^:]*]]: tensor<128x32xf32> {trainopt.param = @mlp.proj},
// CHECK-SAME: %[[IDS:[^:]*]]: tensor<2x8xi64> {trainopt.input = "ids"}, %[[LABELS:[^:]*]]: tensor<2x8xi64> {trainopt.input = "labels", trainopt.role = #trainopt<role labels>})
// CHECK-SAME: -> (tensor<2x8x96xf32> {trainopt.output = "logits"}, tensor<f32> {trainopt.output = "loss", trainopt.role = #trainopt<role loss>})
// CHECK-DAG: %[[WTEL:.*]] = trainopt.cast %[[WTE]] : tensor<96x32xf32> to tensor<96x32xbf16>
// CHECK-DAG: %[[WQKVL:.*]] = trainopt.cast %[[WQKV]] : tensor<32x96xf32> to tensor<32x96xbf16>
// CHECK-DAG: %[[WOL:.*]] = trainopt.cast %[[WO]] : tensor<32x32xf32> to tensor<32x32xbf16>
// CHECK-DAG: %[[WFCL:.*]] = trainopt.cast %[[WFC]] : tensor<32x128xf32> to tensor<32x128xbf16>
// CHECK-DAG: %[[WPRL:.*]] = trainopt.cast %[[WPR]] : tensor<128x32xf32> to tensor<128x32xbf16>
// CHECK: %[[TOK:.*]] = trainopt.gather %[[WTE]], %[[IDS]] {axis = 0 : i64} : (tensor<96x32xf32>, tensor<2x8xi64>) -> tensor<2x8x32xf32>
// CHECK-NEXT: %[[H0:.*]] = trainopt.add %[[TOK]], %[[WPE]] : (tensor<2x8x32xf32>, tensor<8x32xf32>) -> tensor<2x8x32xf32>
// CHECK-NEXT: %[[N1:.*]] = trainopt.layer_norm %[[H0]], %[[G1]], %[[B1]] {{.*}} : (tensor<2x8x32xf32>, tensor<32xf32>, tensor<32xf32>) -> tensor<2x8x32xf32>
// CHECK-NEXT: %[[N1L:.*]] = trainopt.cast %[[N1]] : tensor<2x8x32xf32> to tensor<2x8x32xbf16>
// CHECK-NEXT: %[[QKV:.*]] = trainopt.matmul %[[N1L]], %[[WQKVL]] : (tensor<2x8x32xbf16>, tensor<32x96xbf16>) -> tensor<2x8x96xbf16>
// CHECK-NEXT: trainopt.split %[[QKV]] {{.*}} -> (tensor<2x8x32xbf16>, tensor<2x8x32xbf16>, tensor<2x8x32xbf16>)
// CHECK: %[[S:.*]] = trainopt.matmul %{{.*}}, %{{.*}} {transpose_rhs = true} : (tensor<2x2x8x16xbf16>, tensor<2x2x8x16xbf16>) -> tensor<2x2x8x8xbf16>
// CHECK: %[[SCALE:.*]] = trainopt.constant dense<2.500000e-01> : tensor<bf16>
// CHECK-NEXT: %[[SS:.*]] = trainopt.mul %[[S]], %[[SCALE]] : (tensor<2x2x8x8xbf16>, tensor<bf16>) -> tensor<2x2x8x8xbf16>
// CHECK: %[[NINF:.*]] = trainopt.constant dense<0xFF80> : tensor<bf16>
// CHECK-NEXT: %[[MASKED:.*]] = trainopt.where %{{.*}}, %[[NINF]], %[[SS]] : (tensor<8x8xi1>, tensor<bf16>, tensor<2x2x8x8xbf16>) -> tensor<2x2x8x8xbf16>
// CHECK-NEXT: %[[MASKED32:.*]] = trainopt.cast %[[MASKED]] : tensor<2x2x8x8xbf16> to tensor<2x2x8x8xf32>
// CHECK-NEXT: %[[PROBS:.*]] = trainopt.softmax %[[MASKED32]] {axis = 3 : i64} : tensor<2x2x8x8xf32>
// CHECK-NEXT: %[[PROBSL:.*]] = trainopt.cast %[[PROBS]] : tensor<2x2x8x8xf32> to tensor<2x2x8x8xbf16>
// CHECK-NEXT: trainopt.matmul %[[PROBSL]], %{{.*}} : (tensor<2x2x8x8xbf16>, tensor<2x2x8x16xbf16>) -> tensor<2x2x8x16xbf16>
// CHECK: %[[ATTN:.*]] = trainopt.matmul %{{.*}}, %[[WOL]] : (tensor<2x8x32xbf16>, tensor<32x32xbf16>) -> tensor<2x8x32xbf16>
// CHECK-NEXT: %[[ATTN32:.*]] = trainopt.cast %[[ATTN]] : tensor<2x8x32xbf16> to tensor<2x8x32xf32>
// CHECK-NEXT: %[[H1:.*]] = trainopt.add %[[H0]], %[[ATTN32]] : (tensor<2x8x32xf32>, tensor<2x8x32xf32>) -> tensor<2x8x32xf32>
// CHECK-NEXT: %[[N2:.*]] = trainopt.layer_norm %[[H1]], %[[G2]], %[[B2]] {{.*}} -> tensor<2x8x32xf32>
// CHECK-NEXT: %[[N2L:.*]] = trainopt.cast %[[N2]] : tensor<2x8x32xf32> to tensor<2x8x32xbf16>
// CHECK-NEXT: %[[FC:.*]] = trainopt.matmul %[[N2L]], %[[WFCL]] : (tensor<2x8x32xbf16>, tensor<32x128xbf16>) -> tensor<2x8x128xbf16>
// CHECK: %[[ERF:.*]] = trainopt.erf %{{.*}} : tensor<2x8x128xbf16>
// CHECK: %[[GELU:.*]] = trainopt.mul %{{.*}}, %{{.*}} : (tensor<2x8x128xbf16>, tensor<2x8x128xbf16>) -> tensor<2x8x128xbf16>
// CHECK-NEXT: %[[MLP:.*]] = trainopt.matmul %[[GELU]], %[[WPRL]] : (tensor<2x8x128xbf16>, tensor<128x32xbf16>) -> tensor<2x8x32xbf16>
// CHECK-NEXT: %[[MLP32:.*]] = trainopt.cast %[[MLP]] : tensor<2x8x32xbf16> to tensor<2x8x32xf32>
// CHECK-NEXT: %[[H2:.*]] = trainopt.add %[[H1]], %[[MLP32]] : (tensor<2x8x32xf32>, tensor<2x8x32xf32>) -> tensor<2x8x32xf32>
// CHECK-NEXT: %[[H2L:.*]] = trainopt.cast %[[H2]] : tensor<2x8x32xf32> to tensor<2x8x32xbf16>
// CHECK-NEXT: %[[LOGITS:.*]] = trainopt.matmul %[[H2L]], %[[WTEL]] {transpose_rhs = true} : (tensor<2x8x32xbf16>, tensor<96x32xbf16>) -> tensor<2x8x96xbf16>
// CHECK-NEXT: %[[LOGITS32:.*]] = trainopt.cast %[[LOGITS]] : tensor<2x8x96xbf16> to tensor<2x8x96xf32>
// CHECK-NEXT: %[[LOSS:.*]] = trainopt.cross_entropy %[[LOGITS32]], %[[LABELS]] {class_axis = -1 : i64, reduction = #trainopt<reduction mean>} : (tensor<2x8x96xf32>, tensor<2x8xi64>) -> tensor<f32>
// CHECK-NEXT: return %[[LOGITS32]], %[[LOSS]] : tensor<2x8x96xf32>, tensor<f32>
trainopt.parameter @wte trainable : tensor<96x32xf32>
trainopt.parameter @wpe trainable : tensor<8x32xf32>
trainopt.parameter @ln1.weight trainable : tensor<32xf32>
trainopt.parameter @ln1.bias trainable : tensor<32xf32>
trainopt.parameter @attn.qkv trainable : tensor<32x96xf32>
trainopt.parameter @attn.proj trainable : tensor<32x32xf32>
trainopt.parameter @ln2.weight trainable : tensor<32xf32>
trainopt.parameter @ln2.bias trainable : tensor<32xf32>
trainopt.parameter @mlp.fc trainable : tensor<32x128xf32>
trainopt.parameter @mlp.proj trainable : tensor<128x32xf32>
func.func @forward(%wte: tensor<96x32xf32> {trainopt.param = @wte},
                   %wpe: tensor<8x32xf32> {trainopt.param = @wpe},
                   %g1: tensor<32xf32> {trainopt.param = @ln1.weight},
                   %b1: tensor<32xf32> {trainopt.param = @ln1.bias},
                   %wqkv: tensor<32x96xf32> {trainopt.param = @attn.qkv},
                   %wo: tensor<32x32xf32> {trainopt.param = @attn.proj},
                   %g2: tensor<32xf32> {trainopt.param = @ln2.weight},
                   %b2: tensor<32xf32> {trainopt.param = @ln2.bias},
                   %wfc: tensor<32x128xf32> {trainopt.param = @mlp.fc},
                   %wpr: tensor<128x32xf32> {trainopt.param = @mlp.proj},
                   %ids: tensor<2x8xi64> {trainopt.input = "ids"})
    -> (tensor<2x8x96xf32> {trainopt.output = "logits"}) {
  %tok = trainopt.gather %wte, %ids {axis = 0 : i64} : (tensor<96x32xf32>, tensor<2x8xi64>) -> tensor<2x8x32xf32>
  %h0 = trainopt.add %tok, %wpe : (tensor<2x8x32xf32>, tensor<8x32xf32>) -> tensor<2x8x32xf32>
  %n1 = trainopt.layer_norm %h0, %g1, %b1 {axis = 2 : i64, epsilon = 1.0e-5 : f64} : (tensor<2x8x32xf32>, tensor<32xf32>, tensor<32xf32>) -> tensor<2x8x32xf32>
  %qkv = trainopt.matmul %n1, %wqkv : (tensor<2x8x32xf32>, tensor<32x96xf32>) -> tensor<2x8x96xf32>
  %q, %k, %v = trainopt.split %qkv {axis = 2 : i64, sizes = array<i64: 32, 32, 32>}
      : (tensor<2x8x96xf32>) -> (tensor<2x8x32xf32>, tensor<2x8x32xf32>, tensor<2x8x32xf32>)
  %qr = trainopt.reshape %q : tensor<2x8x32xf32> -> tensor<2x8x2x16xf32>
  %qt = trainopt.transpose %qr {permutation = array<i64: 0, 2, 1, 3>} : (tensor<2x8x2x16xf32>) -> tensor<2x2x8x16xf32>
  %kr = trainopt.reshape %k : tensor<2x8x32xf32> -> tensor<2x8x2x16xf32>
  %kt = trainopt.transpose %kr {permutation = array<i64: 0, 2, 1, 3>} : (tensor<2x8x2x16xf32>) -> tensor<2x2x8x16xf32>
  %vr = trainopt.reshape %v : tensor<2x8x32xf32> -> tensor<2x8x2x16xf32>
  %vt = trainopt.transpose %vr {permutation = array<i64: 0, 2, 1, 3>} : (tensor<2x8x2x16xf32>) -> tensor<2x2x8x16xf32>
  %s = trainopt.matmul %qt, %kt {transpose_rhs = true} : (tensor<2x2x8x16xf32>, tensor<2x2x8x16xf32>) -> tensor<2x2x8x8xf32>
  %scale = trainopt.constant dense<0.25> : tensor<f32>
  %ss = trainopt.mul %s, %scale : (tensor<2x2x8x8xf32>, tensor<f32>) -> tensor<2x2x8x8xf32>
  %ones = trainopt.constant dense<1.0> : tensor<8x8xf32>
  %tri = trainopt.trilu %ones : tensor<8x8xf32>
  %zero = trainopt.constant dense<0.0> : tensor<f32>
  %mask = trainopt.equal %tri, %zero : (tensor<8x8xf32>, tensor<f32>) -> tensor<8x8xi1>
  %ninf = trainopt.constant dense<0xFF800000> : tensor<f32>
  %masked = trainopt.where %mask, %ninf, %ss : (tensor<8x8xi1>, tensor<f32>, tensor<2x2x8x8xf32>) -> tensor<2x2x8x8xf32>
  %p = trainopt.softmax %masked {axis = 3 : i64} : tensor<2x2x8x8xf32>
  %o = trainopt.matmul %p, %vt : (tensor<2x2x8x8xf32>, tensor<2x2x8x16xf32>) -> tensor<2x2x8x16xf32>
  %ot = trainopt.transpose %o {permutation = array<i64: 0, 2, 1, 3>} : (tensor<2x2x8x16xf32>) -> tensor<2x8x2x16xf32>
  %or = trainopt.reshape %ot : tensor<2x8x2x16xf32> -> tensor<2x8x32xf32>
  %a = trainopt.matmul %or, %wo : (tensor<2x8x32xf32>, tensor<32x32xf32>) -> tensor<2x8x32xf32>
  %h1 = trainopt.add %h0, %a : (tensor<2x8x32xf32>, tensor<2x8x32xf32>) -> tensor<2x8x32xf32>
  %n2 = trainopt.layer_norm %h1, %g2, %b2 {axis = 2 : i64, epsilon = 1.0e-5 : f64} : (tensor<2x8x32xf32>, tensor<32xf32>, tensor<32xf32>) -> tensor<2x8x32xf32>
  %f = trainopt.matmul %n2, %wfc : (tensor<2x8x32xf32>, tensor<32x128xf32>) -> tensor<2x8x128xf32>
  // GELU as torch exports it to ONNX opset 17: x * 0.5 * (1 + erf(x / sqrt(2))).
  %rsqrt2 = trainopt.constant dense<0.707106769> : tensor<f32>
  %f1 = trainopt.mul %f, %rsqrt2 : (tensor<2x8x128xf32>, tensor<f32>) -> tensor<2x8x128xf32>
  %erf = trainopt.erf %f1 : tensor<2x8x128xf32>
  %one = trainopt.constant dense<1.0> : tensor<f32>
  %f2 = trainopt.add %erf, %one : (tensor<2x8x128xf32>, tensor<f32>) -> tensor<2x8x128xf32>
  %half = trainopt.constant dense<0.5> : tensor<f32>
  %f3 = trainopt.mul %f, %half : (tensor<2x8x128xf32>, tensor<f32>) -> tensor<2x8x128xf32>
  %gelu = trainopt.mul %f3, %f2 : (tensor<2x8x128xf32>, tensor<2x8x128xf32>) -> tensor<2x8x128xf32>
  %m = trainopt.matmul %gelu, %wpr : (tensor<2x8x128xf32>, tensor<128x32xf32>) -> tensor<2x8x32xf32>
  %h2 = trainopt.add %h1, %m : (tensor<2x8x32xf32>, tensor<2x8x32xf32>) -> tensor<2x8x32xf32>
  %z = trainopt.matmul %h2, %wte {transpose_rhs = true} : (tensor<2x8x32xf32>, tensor<96x32xf32>) -> tensor<2x8x96xf32>
  return %z : tensor<2x8x96xf32>
}

// -----

// No cast pairs are left: the model's own cast of a matmul output (an
// identity cast, as exporters write `.float()`) becomes bf16 -> f32 after
// the matmul goes to bf16, and the second matmul reads the bf16 value
// itself, not a bf16 -> f32 -> bf16 round trip.
// CHECK-LABEL: func.func @forward(
// CHECK: %[[H:.*]] = trainopt.matmul %{{.*}}, %{{.*}} : (tensor<3x5xbf16>, tensor<5x4xbf16>) -> tensor<3x4xbf16>
// CHECK-NOT: to tensor<3x4xbf16>
// CHECK: trainopt.matmul %[[H]], %{{.*}} : (tensor<3x4xbf16>, tensor<4x2xbf16>) -> tensor<3x2xbf16>
// CHECK-NOT: to tensor<3x4xbf16>
// CHECK: return
// FP16-LABEL: func.func @forward(
// FP16: %[[H:.*]] = trainopt.matmul %{{.*}}, %{{.*}} : (tensor<3x5xf16>, tensor<5x4xf16>) -> tensor<3x4xf16>
// FP16-NOT: to tensor<3x4xf16>
// FP16: trainopt.matmul %[[H]], %{{.*}} : (tensor<3x4xf16>, tensor<4x2xf16>) -> tensor<3x2xf16>
trainopt.parameter @w1 trainable : tensor<5x4xf32>
trainopt.parameter @w2 trainable : tensor<4x2xf32>
func.func @forward(%w1: tensor<5x4xf32> {trainopt.param = @w1}, %w2: tensor<4x2xf32> {trainopt.param = @w2},
                   %x: tensor<3x5xf32> {trainopt.input = "x"}) -> (tensor<3x2xf32> {trainopt.output = "logits"}) {
  %h = trainopt.matmul %x, %w1 : (tensor<3x5xf32>, tensor<5x4xf32>) -> tensor<3x4xf32>
  %c = trainopt.cast %h : tensor<3x4xf32> to tensor<3x4xf32>
  %z = trainopt.matmul %c, %w2 : (tensor<3x4xf32>, tensor<4x2xf32>) -> tensor<3x2xf32>
  return %z : tensor<3x2xf32>
}

// -----

// An op on weights alone follows all its float inputs: the relu after a
// weight-only (LoRA-style) bf16 matmul runs in bf16, and the f32 weight
// added to it pulls the sum up to f32; the constant whose cast folded is
// gone.
// CHECK-LABEL: func.func @forward(
// CHECK: %[[AB:.*]] = trainopt.matmul %{{.*}}, %{{.*}} : (tensor<4x2xbf16>, tensor<2x4xbf16>) -> tensor<4x4xbf16>
// CHECK: %[[R:.*]] = trainopt.relu %[[AB]] : tensor<4x4xbf16>
// CHECK: %[[RW:.*]] = trainopt.cast %[[R]] : tensor<4x4xbf16> to tensor<4x4xf32>
// CHECK: trainopt.add %{{.*}}, %[[RW]] : (tensor<4x4xf32>, tensor<4x4xf32>) -> tensor<4x4xf32>
// CHECK-NOT: trainopt.constant {{.*}} : tensor<f32>
// CHECK: return
trainopt.parameter @a trainable : tensor<4x2xf32>
trainopt.parameter @b trainable : tensor<2x4xf32>
trainopt.parameter @w trainable : tensor<4x4xf32>
func.func @forward(%a: tensor<4x2xf32> {trainopt.param = @a}, %b: tensor<2x4xf32> {trainopt.param = @b},
                   %w: tensor<4x4xf32> {trainopt.param = @w},
                   %x: tensor<3x4xf32> {trainopt.input = "x"}) -> (tensor<3x4xf32> {trainopt.output = "logits"}) {
  %ab = trainopt.matmul %a, %b : (tensor<4x2xf32>, tensor<2x4xf32>) -> tensor<4x4xf32>
  %r = trainopt.relu %ab : tensor<4x4xf32>
  %m = trainopt.add %w, %r : (tensor<4x4xf32>, tensor<4x4xf32>) -> tensor<4x4xf32>
  %y = trainopt.matmul %x, %m : (tensor<3x4xf32>, tensor<4x4xf32>) -> tensor<3x4xf32>
  %c = trainopt.constant dense<0.25> : tensor<f32>
  %s = trainopt.mul %y, %c : (tensor<3x4xf32>, tensor<f32>) -> tensor<3x4xf32>
  return %s : tensor<3x4xf32>
}

// -----

// An op of another dialect keeps its types: the call takes the f32 value,
// cast back from the bf16 matmul.
// CHECK-LABEL: func.func @forward(
// CHECK: %[[MM:.*]] = trainopt.matmul %{{.*}}, %{{.*}} : (tensor<2x4xbf16>, tensor<4x3xbf16>) -> tensor<2x3xbf16>
// CHECK: %[[UP:.*]] = trainopt.cast %[[MM]] : tensor<2x3xbf16> to tensor<2x3xf32>
// CHECK: call @helper(%[[UP]]) : (tensor<2x3xf32>) -> tensor<2x3xf32>
func.func private @helper(%x: tensor<2x3xf32>) -> tensor<2x3xf32> {
  %0 = trainopt.tanh %x : tensor<2x3xf32>
  return %0 : tensor<2x3xf32>
}
trainopt.parameter @w trainable : tensor<4x3xf32>
func.func @forward(%w: tensor<4x3xf32> {trainopt.param = @w}, %x: tensor<2x4xf32> {trainopt.input = "x"})
    -> (tensor<2x3xf32> {trainopt.output = "y"}) {
  %0 = trainopt.matmul %x, %w : (tensor<2x4xf32>, tensor<4x3xf32>) -> tensor<2x3xf32>
  %1 = func.call @helper(%0) : (tensor<2x3xf32>) -> tensor<2x3xf32>
  return %1 : tensor<2x3xf32>
}
