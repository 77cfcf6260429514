// Table-driven gradient check of every differentiable trainopt op: each
// function's loss is differentiated by trainopt-autodiff and compared, in
// float64 on random inputs, with central finite differences (relative error
// at most 1e-6). Non-scalar ops are reduced as sum(sin(y)) so that every
// output element carries a different cotangent.
// RUN: trainopt-eval %s --gradcheck --tolerance=1e-6 | FileCheck %s

// CHECK: @neg: {{.*}}: PASS
func.func @neg(%x: tensor<2x3xf64>) -> tensor<f64> {
    %y = trainopt.neg %x : tensor<2x3xf64>
    %sin = trainopt.sin %y : tensor<2x3xf64>
    %loss = trainopt.reduce_sum %sin : (tensor<2x3xf64>) -> tensor<f64>
    return %loss : tensor<f64>
}

// CHECK: @abs: {{.*}}: PASS
func.func @abs(%x: tensor<2x3xf64>) -> tensor<f64> {
    %y = trainopt.abs %x : tensor<2x3xf64>
    %sin = trainopt.sin %y : tensor<2x3xf64>
    %loss = trainopt.reduce_sum %sin : (tensor<2x3xf64>) -> tensor<f64>
    return %loss : tensor<f64>
}

// CHECK: @exp: {{.*}}: PASS
func.func @exp(%x: tensor<2x3xf64>) -> tensor<f64> {
    %y = trainopt.exp %x : tensor<2x3xf64>
    %sin = trainopt.sin %y : tensor<2x3xf64>
    %loss = trainopt.reduce_sum %sin : (tensor<2x3xf64>) -> tensor<f64>
    return %loss : tensor<f64>
}

// CHECK: @tan: {{.*}}: PASS
func.func @tan(%x: tensor<2x3xf64>) -> tensor<f64> {
    %y = trainopt.tan %x : tensor<2x3xf64>
    %sin = trainopt.sin %y : tensor<2x3xf64>
    %loss = trainopt.reduce_sum %sin : (tensor<2x3xf64>) -> tensor<f64>
    return %loss : tensor<f64>
}

// CHECK: @atan: {{.*}}: PASS
func.func @atan(%x: tensor<2x3xf64>) -> tensor<f64> {
    %y = trainopt.atan %x : tensor<2x3xf64>
    %sin = trainopt.sin %y : tensor<2x3xf64>
    %loss = trainopt.reduce_sum %sin : (tensor<2x3xf64>) -> tensor<f64>
    return %loss : tensor<f64>
}

// CHECK: @sinh: {{.*}}: PASS
func.func @sinh(%x: tensor<2x3xf64>) -> tensor<f64> {
    %y = trainopt.sinh %x : tensor<2x3xf64>
    %sin = trainopt.sin %y : tensor<2x3xf64>
    %loss = trainopt.reduce_sum %sin : (tensor<2x3xf64>) -> tensor<f64>
    return %loss : tensor<f64>
}

// CHECK: @cosh: {{.*}}: PASS
func.func @cosh(%x: tensor<2x3xf64>) -> tensor<f64> {
    %y = trainopt.cosh %x : tensor<2x3xf64>
    %sin = trainopt.sin %y : tensor<2x3xf64>
    %loss = trainopt.reduce_sum %sin : (tensor<2x3xf64>) -> tensor<f64>
    return %loss : tensor<f64>
}

// CHECK: @asin: {{.*}}: PASS
// (the argument squashed into (-0.9, 0.9), inside the domain)
func.func @asin(%x: tensor<2x3xf64>) -> tensor<f64> {
    %t = trainopt.tanh %x : tensor<2x3xf64>
    %c = trainopt.constant dense<0.9> : tensor<f64>
    %u = trainopt.mul %t, %c : (tensor<2x3xf64>, tensor<f64>) -> tensor<2x3xf64>
    %y = trainopt.asin %u : tensor<2x3xf64>
    %sin = trainopt.sin %y : tensor<2x3xf64>
    %loss = trainopt.reduce_sum %sin : (tensor<2x3xf64>) -> tensor<f64>
    return %loss : tensor<f64>
}

// CHECK: @acos: {{.*}}: PASS
// (the argument squashed into (-0.9, 0.9), inside the domain)
func.func @acos(%x: tensor<2x3xf64>) -> tensor<f64> {
    %t = trainopt.tanh %x : tensor<2x3xf64>
    %c = trainopt.constant dense<0.9> : tensor<f64>
    %u = trainopt.mul %t, %c : (tensor<2x3xf64>, tensor<f64>) -> tensor<2x3xf64>
    %y = trainopt.acos %u : tensor<2x3xf64>
    %sin = trainopt.sin %y : tensor<2x3xf64>
    %loss = trainopt.reduce_sum %sin : (tensor<2x3xf64>) -> tensor<f64>
    return %loss : tensor<f64>
}

// CHECK: @tanh: {{.*}}: PASS
func.func @tanh(%x: tensor<2x3xf64>) -> tensor<f64> {
    %y = trainopt.tanh %x : tensor<2x3xf64>
    %sin = trainopt.sin %y : tensor<2x3xf64>
    %loss = trainopt.reduce_sum %sin : (tensor<2x3xf64>) -> tensor<f64>
    return %loss : tensor<f64>
}

// CHECK: @sigmoid: {{.*}}: PASS
func.func @sigmoid(%x: tensor<2x3xf64>) -> tensor<f64> {
    %y = trainopt.sigmoid %x : tensor<2x3xf64>
    %sin = trainopt.sin %y : tensor<2x3xf64>
    %loss = trainopt.reduce_sum %sin : (tensor<2x3xf64>) -> tensor<f64>
    return %loss : tensor<f64>
}

// CHECK: @relu: {{.*}}: PASS
func.func @relu(%x: tensor<2x3xf64>) -> tensor<f64> {
    %y = trainopt.relu %x : tensor<2x3xf64>
    %sin = trainopt.sin %y : tensor<2x3xf64>
    %loss = trainopt.reduce_sum %sin : (tensor<2x3xf64>) -> tensor<f64>
    return %loss : tensor<f64>
}

// CHECK: @erf: {{.*}}: PASS
func.func @erf(%x: tensor<2x3xf64>) -> tensor<f64> {
    %y = trainopt.erf %x : tensor<2x3xf64>
    %sin = trainopt.sin %y : tensor<2x3xf64>
    %loss = trainopt.reduce_sum %sin : (tensor<2x3xf64>) -> tensor<f64>
    return %loss : tensor<f64>
}

// CHECK: @sin: {{.*}}: PASS
func.func @sin(%x: tensor<2x3xf64>) -> tensor<f64> {
    %y = trainopt.sin %x : tensor<2x3xf64>
    %sin = trainopt.sin %y : tensor<2x3xf64>
    %loss = trainopt.reduce_sum %sin : (tensor<2x3xf64>) -> tensor<f64>
    return %loss : tensor<f64>
}

// CHECK: @cos: {{.*}}: PASS
func.func @cos(%x: tensor<2x3xf64>) -> tensor<f64> {
    %y = trainopt.cos %x : tensor<2x3xf64>
    %sin = trainopt.sin %y : tensor<2x3xf64>
    %loss = trainopt.reduce_sum %sin : (tensor<2x3xf64>) -> tensor<f64>
    return %loss : tensor<f64>
}

// CHECK: @gelu: {{.*}}: PASS
func.func @gelu(%x: tensor<2x3xf64>) -> tensor<f64> {
    %y = trainopt.gelu %x : tensor<2x3xf64>
    %sin = trainopt.sin %y : tensor<2x3xf64>
    %loss = trainopt.reduce_sum %sin : (tensor<2x3xf64>) -> tensor<f64>
    return %loss : tensor<f64>
}

// CHECK: @gelu_tanh: {{.*}}: PASS
func.func @gelu_tanh(%x: tensor<2x3xf64>) -> tensor<f64> {
    %y = trainopt.gelu %x approximation = tanh : tensor<2x3xf64>
    %sin = trainopt.sin %y : tensor<2x3xf64>
    %loss = trainopt.reduce_sum %sin : (tensor<2x3xf64>) -> tensor<f64>
    return %loss : tensor<f64>
}

// CHECK: @clip: {{.*}}: PASS
func.func @clip(%x: tensor<2x3xf64>) -> tensor<f64> {
    %y = trainopt.clip %x {min = -0.5 : f64, max = 0.4 : f64} : tensor<2x3xf64>
    %sin = trainopt.sin %y : tensor<2x3xf64>
    %loss = trainopt.reduce_sum %sin : (tensor<2x3xf64>) -> tensor<f64>
    return %loss : tensor<f64>
}

// CHECK: @log: {{.*}}: PASS
func.func @log(%x: tensor<2x3xf64>) -> tensor<f64> {
    %c = trainopt.constant dense<0.5> : tensor<f64>
    %sq = trainopt.mul %x, %x : (tensor<2x3xf64>, tensor<2x3xf64>) -> tensor<2x3xf64>
    %p = trainopt.add %sq, %c : (tensor<2x3xf64>, tensor<f64>) -> tensor<2x3xf64>
    %y = trainopt.log %p : tensor<2x3xf64>
    %sin = trainopt.sin %y : tensor<2x3xf64>
    %loss = trainopt.reduce_sum %sin : (tensor<2x3xf64>) -> tensor<f64>
    return %loss : tensor<f64>
}

// CHECK: @sqrt: {{.*}}: PASS
func.func @sqrt(%x: tensor<2x3xf64>) -> tensor<f64> {
    %c = trainopt.constant dense<0.5> : tensor<f64>
    %sq = trainopt.mul %x, %x : (tensor<2x3xf64>, tensor<2x3xf64>) -> tensor<2x3xf64>
    %p = trainopt.add %sq, %c : (tensor<2x3xf64>, tensor<f64>) -> tensor<2x3xf64>
    %y = trainopt.sqrt %p : tensor<2x3xf64>
    %sin = trainopt.sin %y : tensor<2x3xf64>
    %loss = trainopt.reduce_sum %sin : (tensor<2x3xf64>) -> tensor<f64>
    return %loss : tensor<f64>
}

// CHECK: @rsqrt: {{.*}}: PASS
func.func @rsqrt(%x: tensor<2x3xf64>) -> tensor<f64> {
    %c = trainopt.constant dense<0.5> : tensor<f64>
    %sq = trainopt.mul %x, %x : (tensor<2x3xf64>, tensor<2x3xf64>) -> tensor<2x3xf64>
    %p = trainopt.add %sq, %c : (tensor<2x3xf64>, tensor<f64>) -> tensor<2x3xf64>
    %y = trainopt.rsqrt %p : tensor<2x3xf64>
    %sin = trainopt.sin %y : tensor<2x3xf64>
    %loss = trainopt.reduce_sum %sin : (tensor<2x3xf64>) -> tensor<f64>
    return %loss : tensor<f64>
}

// CHECK: @reciprocal: {{.*}}: PASS
func.func @reciprocal(%x: tensor<2x3xf64>) -> tensor<f64> {
    %c = trainopt.constant dense<0.5> : tensor<f64>
    %sq = trainopt.mul %x, %x : (tensor<2x3xf64>, tensor<2x3xf64>) -> tensor<2x3xf64>
    %p = trainopt.add %sq, %c : (tensor<2x3xf64>, tensor<f64>) -> tensor<2x3xf64>
    %y = trainopt.reciprocal %p : tensor<2x3xf64>
    %sin = trainopt.sin %y : tensor<2x3xf64>
    %loss = trainopt.reduce_sum %sin : (tensor<2x3xf64>) -> tensor<f64>
    return %loss : tensor<f64>
}

// CHECK: @broadcast_add: {{.*}}: PASS
func.func @broadcast_add(%x: tensor<2x3xf64>, %b: tensor<3xf64>) -> tensor<f64> {
    %y = trainopt.add %x, %b : (tensor<2x3xf64>, tensor<3xf64>) -> tensor<2x3xf64>
    %sin = trainopt.sin %y : tensor<2x3xf64>
    %loss = trainopt.reduce_sum %sin : (tensor<2x3xf64>) -> tensor<f64>
    return %loss : tensor<f64>
}

// CHECK: @broadcast_sub: {{.*}}: PASS
func.func @broadcast_sub(%x: tensor<2x3xf64>, %b: tensor<3xf64>) -> tensor<f64> {
    %y = trainopt.sub %x, %b : (tensor<2x3xf64>, tensor<3xf64>) -> tensor<2x3xf64>
    %sin = trainopt.sin %y : tensor<2x3xf64>
    %loss = trainopt.reduce_sum %sin : (tensor<2x3xf64>) -> tensor<f64>
    return %loss : tensor<f64>
}

// CHECK: @broadcast_mul: {{.*}}: PASS
func.func @broadcast_mul(%x: tensor<2x3xf64>, %b: tensor<3xf64>) -> tensor<f64> {
    %y = trainopt.mul %x, %b : (tensor<2x3xf64>, tensor<3xf64>) -> tensor<2x3xf64>
    %sin = trainopt.sin %y : tensor<2x3xf64>
    %loss = trainopt.reduce_sum %sin : (tensor<2x3xf64>) -> tensor<f64>
    return %loss : tensor<f64>
}

// CHECK: @broadcast_div: {{.*}}: PASS
func.func @broadcast_div(%x: tensor<2x3xf64>, %b: tensor<3xf64>) -> tensor<f64> {
    %c = trainopt.constant dense<2.0> : tensor<f64>
    %b2 = trainopt.add %b, %c : (tensor<3xf64>, tensor<f64>) -> tensor<3xf64>
    %y = trainopt.div %x, %b2 : (tensor<2x3xf64>, tensor<3xf64>) -> tensor<2x3xf64>
    %sin = trainopt.sin %y : tensor<2x3xf64>
    %loss = trainopt.reduce_sum %sin : (tensor<2x3xf64>) -> tensor<f64>
    return %loss : tensor<f64>
}

// CHECK: @broadcast_max: {{.*}}: PASS
func.func @broadcast_max(%x: tensor<2x3xf64>, %b: tensor<3xf64>) -> tensor<f64> {
    %y = trainopt.max %x, %b : (tensor<2x3xf64>, tensor<3xf64>) -> tensor<2x3xf64>
    %sin = trainopt.sin %y : tensor<2x3xf64>
    %loss = trainopt.reduce_sum %sin : (tensor<2x3xf64>) -> tensor<f64>
    return %loss : tensor<f64>
}

// CHECK: @broadcast_min: {{.*}}: PASS
func.func @broadcast_min(%x: tensor<2x3xf64>, %b: tensor<3xf64>) -> tensor<f64> {
    %y = trainopt.min %x, %b : (tensor<2x3xf64>, tensor<3xf64>) -> tensor<2x3xf64>
    %sin = trainopt.sin %y : tensor<2x3xf64>
    %loss = trainopt.reduce_sum %sin : (tensor<2x3xf64>) -> tensor<f64>
    return %loss : tensor<f64>
}

// CHECK: @pow: {{.*}}: PASS
func.func @pow(%x: tensor<2x3xf64>, %b: tensor<3xf64>) -> tensor<f64> {
    %e = trainopt.exp %x : tensor<2x3xf64>
    %y = trainopt.pow %e, %b : (tensor<2x3xf64>, tensor<3xf64>) -> tensor<2x3xf64>
    %sin = trainopt.sin %y : tensor<2x3xf64>
    %loss = trainopt.reduce_sum %sin : (tensor<2x3xf64>) -> tensor<f64>
    return %loss : tensor<f64>
}

// CHECK: @where: {{.*}}: PASS
func.func @where(%x: tensor<2x3xf64>, %z: tensor<3xf64>) -> tensor<f64> {
    %m = trainopt.constant dense<[[true, false, true], [false, false, true]]> : tensor<2x3xi1>
    %y = trainopt.where %m, %x, %z : (tensor<2x3xi1>, tensor<2x3xf64>, tensor<3xf64>) -> tensor<2x3xf64>
    %sin = trainopt.sin %y : tensor<2x3xf64>
    %loss = trainopt.reduce_sum %sin : (tensor<2x3xf64>) -> tensor<f64>
    return %loss : tensor<f64>
}

// CHECK: @reduce_sum_keep: {{.*}}: PASS
func.func @reduce_sum_keep(%x: tensor<2x3x4xf64>) -> tensor<f64> {
    %y = trainopt.reduce_sum %x {axes = array<i64: 1>, keepdims = true} : (tensor<2x3x4xf64>) -> tensor<2x1x4xf64>
    %sin = trainopt.sin %y : tensor<2x1x4xf64>
    %loss = trainopt.reduce_sum %sin : (tensor<2x1x4xf64>) -> tensor<f64>
    return %loss : tensor<f64>
}

// CHECK: @reduce_mean: {{.*}}: PASS
func.func @reduce_mean(%x: tensor<2x3x4xf64>) -> tensor<f64> {
    %y = trainopt.reduce_mean %x {axes = array<i64: 0, 2>} : (tensor<2x3x4xf64>) -> tensor<3xf64>
    %sin = trainopt.sin %y : tensor<3xf64>
    %loss = trainopt.reduce_sum %sin : (tensor<3xf64>) -> tensor<f64>
    return %loss : tensor<f64>
}

// CHECK: @reduce_max: {{.*}}: PASS
func.func @reduce_max(%x: tensor<2x3x4xf64>) -> tensor<f64> {
    %y = trainopt.reduce_max %x {axes = array<i64: 2>} : (tensor<2x3x4xf64>) -> tensor<2x3xf64>
    %sin = trainopt.sin %y : tensor<2x3xf64>
    %loss = trainopt.reduce_sum %sin : (tensor<2x3xf64>) -> tensor<f64>
    return %loss : tensor<f64>
}

// CHECK: @reduce_min_keep: {{.*}}: PASS
func.func @reduce_min_keep(%x: tensor<2x3x4xf64>) -> tensor<f64> {
    %y = trainopt.reduce_min %x {axes = array<i64: 0>, keepdims = true} : (tensor<2x3x4xf64>) -> tensor<1x3x4xf64>
    %sin = trainopt.sin %y : tensor<1x3x4xf64>
    %loss = trainopt.reduce_sum %sin : (tensor<1x3x4xf64>) -> tensor<f64>
    return %loss : tensor<f64>
}

// CHECK: @matmul_batch_broadcast: {{.*}}: PASS
func.func @matmul_batch_broadcast(%a: tensor<2x1x3x4xf64>, %b: tensor<5x4x2xf64>) -> tensor<f64> {
    %y = trainopt.matmul %a, %b : (tensor<2x1x3x4xf64>, tensor<5x4x2xf64>) -> tensor<2x5x3x2xf64>
    %sin = trainopt.sin %y : tensor<2x5x3x2xf64>
    %loss = trainopt.reduce_sum %sin : (tensor<2x5x3x2xf64>) -> tensor<f64>
    return %loss : tensor<f64>
}

// CHECK: @matmul_transposed: {{.*}}: PASS
func.func @matmul_transposed(%a: tensor<4x3xf64>, %b: tensor<2x4xf64>) -> tensor<f64> {
    %y = trainopt.matmul %a, %b {transpose_lhs = true, transpose_rhs = true} : (tensor<4x3xf64>, tensor<2x4xf64>) -> tensor<3x2xf64>
    %sin = trainopt.sin %y : tensor<3x2xf64>
    %loss = trainopt.reduce_sum %sin : (tensor<3x2xf64>) -> tensor<f64>
    return %loss : tensor<f64>
}

// A weight shared over the batch: its gradient is one matmul over the
// flattened batch and rows (MatmulOp::buildVJP), plain and transposed.
// CHECK: @matmul_shared_weight: {{.*}}: PASS
func.func @matmul_shared_weight(%a: tensor<2x3x3x4xf64>, %b: tensor<4x5xf64>) -> tensor<f64> {
    %y = trainopt.matmul %a, %b : (tensor<2x3x3x4xf64>, tensor<4x5xf64>) -> tensor<2x3x3x5xf64>
    %sin = trainopt.sin %y : tensor<2x3x3x5xf64>
    %loss = trainopt.reduce_sum %sin : (tensor<2x3x3x5xf64>) -> tensor<f64>
    return %loss : tensor<f64>
}

// CHECK: @matmul_shared_weight_transposed: {{.*}}: PASS
func.func @matmul_shared_weight_transposed(%a: tensor<2x3x4xf64>, %b: tensor<5x4xf64>) -> tensor<f64> {
    %y = trainopt.matmul %a, %b {transpose_rhs = true} : (tensor<2x3x4xf64>, tensor<5x4xf64>) -> tensor<2x3x5xf64>
    %sin = trainopt.sin %y : tensor<2x3x5xf64>
    %loss = trainopt.reduce_sum %sin : (tensor<2x3x5xf64>) -> tensor<f64>
    return %loss : tensor<f64>
}

// CHECK: @conv_grouped_strided_padded_dilated: {{.*}}: PASS
func.func @conv_grouped_strided_padded_dilated(%x: tensor<2x4x7x6xf64>, %w: tensor<6x2x3x2xf64>, %b: tensor<6xf64>) -> tensor<f64> {
    %y = trainopt.conv %x, %w, %b {strides = array<i64: 2, 1>, padding = array<i64: 1, 0, 2, 1>, dilations = array<i64: 1, 2>, groups = 2 : i64} : (tensor<2x4x7x6xf64>, tensor<6x2x3x2xf64>, tensor<6xf64>) -> tensor<2x6x4x5xf64>
    %sin = trainopt.sin %y : tensor<2x6x4x5xf64>
    %loss = trainopt.reduce_sum %sin : (tensor<2x6x4x5xf64>) -> tensor<f64>
    return %loss : tensor<f64>
}

// ConvTranspose imports to conv_grad_input, so it is differentiable in
// both operands (bilinear: a conv and a conv_grad_filter).
// CHECK: @conv_grad_input_grouped_strided_padded_dilated: {{.*}}: PASS
func.func @conv_grad_input_grouped_strided_padded_dilated(%w: tensor<6x2x3x2xf64>, %dy: tensor<2x6x4x5xf64>) -> tensor<f64> {
    %y = trainopt.conv_grad_input %w, %dy {strides = array<i64: 2, 1>, padding = array<i64: 1, 0, 2, 1>, dilations = array<i64: 1, 2>, groups = 2 : i64} : (tensor<6x2x3x2xf64>, tensor<2x6x4x5xf64>) -> tensor<2x4x7x6xf64>
    %sin = trainopt.sin %y : tensor<2x4x7x6xf64>
    %loss = trainopt.reduce_sum %sin : (tensor<2x4x7x6xf64>) -> tensor<f64>
    return %loss : tensor<f64>
}

// CHECK: @conv_1d: {{.*}}: PASS
func.func @conv_1d(%x: tensor<2x3x8xf64>, %w: tensor<4x3x3xf64>) -> tensor<f64> {
    %y = trainopt.conv %x, %w {strides = array<i64: 1>, padding = array<i64: 1, 1>, dilations = array<i64: 1>} : (tensor<2x3x8xf64>, tensor<4x3x3xf64>) -> tensor<2x4x8xf64>
    %sin = trainopt.sin %y : tensor<2x4x8xf64>
    %loss = trainopt.reduce_sum %sin : (tensor<2x4x8xf64>) -> tensor<f64>
    return %loss : tensor<f64>
}

// CHECK: @max_pool: {{.*}}: PASS
func.func @max_pool(%x: tensor<2x2x5x5xf64>) -> tensor<f64> {
    %y = trainopt.max_pool %x {kernel_shape = array<i64: 3, 2>, strides = array<i64: 2, 2>, padding = array<i64: 1, 0, 1, 1>, dilations = array<i64: 1, 1>} : (tensor<2x2x5x5xf64>) -> tensor<2x2x3x3xf64>
    %sin = trainopt.sin %y : tensor<2x2x3x3xf64>
    %loss = trainopt.reduce_sum %sin : (tensor<2x2x3x3xf64>) -> tensor<f64>
    return %loss : tensor<f64>
}

// CHECK: @avg_pool_exclude_pad: {{.*}}: PASS
func.func @avg_pool_exclude_pad(%x: tensor<2x2x5x5xf64>) -> tensor<f64> {
    %y = trainopt.avg_pool %x {kernel_shape = array<i64: 3, 3>, strides = array<i64: 2, 2>, padding = array<i64: 1, 1, 1, 1>, dilations = array<i64: 1, 1>} : (tensor<2x2x5x5xf64>) -> tensor<2x2x3x3xf64>
    %sin = trainopt.sin %y : tensor<2x2x3x3xf64>
    %loss = trainopt.reduce_sum %sin : (tensor<2x2x3x3xf64>) -> tensor<f64>
    return %loss : tensor<f64>
}

// CHECK: @avg_pool_include_pad: {{.*}}: PASS
func.func @avg_pool_include_pad(%x: tensor<2x2x5x5xf64>) -> tensor<f64> {
    %y = trainopt.avg_pool %x {kernel_shape = array<i64: 3, 3>, strides = array<i64: 2, 2>, padding = array<i64: 1, 1, 1, 1>, dilations = array<i64: 1, 1>, count_include_pad = true} : (tensor<2x2x5x5xf64>) -> tensor<2x2x3x3xf64>
    %sin = trainopt.sin %y : tensor<2x2x3x3xf64>
    %loss = trainopt.reduce_sum %sin : (tensor<2x2x3x3xf64>) -> tensor<f64>
    return %loss : tensor<f64>
}

// CHECK: @batch_norm_train: {{.*}}: PASS
func.func @batch_norm_train(%x: tensor<4x3x2x2xf64>, %s: tensor<3xf64>, %b: tensor<3xf64>) -> tensor<f64> {
    %m = trainopt.constant dense<0.0> : tensor<3xf64>
    %v = trainopt.constant dense<1.0> : tensor<3xf64>
    %y, %rm, %rv = trainopt.batch_norm_train %x, %s, %b, %m, %v : tensor<4x3x2x2xf64>, tensor<3xf64>
    %sin = trainopt.sin %y : tensor<4x3x2x2xf64>
    %loss = trainopt.reduce_sum %sin : (tensor<4x3x2x2xf64>) -> tensor<f64>
    return %loss : tensor<f64>
}

// CHECK: @batch_norm_inference: {{.*}}: PASS
func.func @batch_norm_inference(%x: tensor<4x3x2xf64>, %s: tensor<3xf64>, %b: tensor<3xf64>, %m: tensor<3xf64>, %v0: tensor<3xf64>) -> tensor<f64> {
    %sq = trainopt.mul %v0, %v0 : (tensor<3xf64>, tensor<3xf64>) -> tensor<3xf64>
    %c = trainopt.constant dense<0.5> : tensor<f64>
    %v = trainopt.add %sq, %c : (tensor<3xf64>, tensor<f64>) -> tensor<3xf64>
    %y = trainopt.batch_norm_inference %x, %s, %b, %m, %v {epsilon = 1.0e-3 : f64} : tensor<4x3x2xf64>, tensor<3xf64>
    %sin = trainopt.sin %y : tensor<4x3x2xf64>
    %loss = trainopt.reduce_sum %sin : (tensor<4x3x2xf64>) -> tensor<f64>
    return %loss : tensor<f64>
}

// CHECK: @layer_norm: {{.*}}: PASS
func.func @layer_norm(%x: tensor<2x3x4xf64>, %g: tensor<3x4xf64>, %b: tensor<3x4xf64>) -> tensor<f64> {
    %y = trainopt.layer_norm %x, %g, %b {axis = 1 : i64} : (tensor<2x3x4xf64>, tensor<3x4xf64>, tensor<3x4xf64>) -> tensor<2x3x4xf64>
    %sin = trainopt.sin %y : tensor<2x3x4xf64>
    %loss = trainopt.reduce_sum %sin : (tensor<2x3x4xf64>) -> tensor<f64>
    return %loss : tensor<f64>
}

// CHECK: @layer_norm_no_bias: {{.*}}: PASS
func.func @layer_norm_no_bias(%x: tensor<2x3x4xf64>, %g: tensor<4xf64>) -> tensor<f64> {
    %y = trainopt.layer_norm %x, %g {axis = 2 : i64} : (tensor<2x3x4xf64>, tensor<4xf64>) -> tensor<2x3x4xf64>
    %sin = trainopt.sin %y : tensor<2x3x4xf64>
    %loss = trainopt.reduce_sum %sin : (tensor<2x3x4xf64>) -> tensor<f64>
    return %loss : tensor<f64>
}

// CHECK: @softmax: {{.*}}: PASS
func.func @softmax(%x: tensor<2x3x4xf64>) -> tensor<f64> {
    %y = trainopt.softmax %x {axis = 1 : i64} : tensor<2x3x4xf64>
    %sin = trainopt.sin %y : tensor<2x3x4xf64>
    %loss = trainopt.reduce_sum %sin : (tensor<2x3x4xf64>) -> tensor<f64>
    return %loss : tensor<f64>
}

// CHECK: @log_softmax: {{.*}}: PASS
func.func @log_softmax(%x: tensor<2x3x4xf64>) -> tensor<f64> {
    %y = trainopt.log_softmax %x {axis = 2 : i64} : tensor<2x3x4xf64>
    %sin = trainopt.sin %y : tensor<2x3x4xf64>
    %loss = trainopt.reduce_sum %sin : (tensor<2x3x4xf64>) -> tensor<f64>
    return %loss : tensor<f64>
}

// CHECK: @dropout: {{.*}}: PASS
func.func @dropout(%x: tensor<4x5xf64>) -> tensor<f64> {
    %s = trainopt.constant dense<7> : tensor<i64>
    %y, %m = trainopt.dropout %x, %s {ratio = 0.3 : f64} : tensor<4x5xf64>, tensor<i64> -> tensor<4x5xi1>
    %sin = trainopt.sin %y : tensor<4x5xf64>
    %loss = trainopt.reduce_sum %sin : (tensor<4x5xf64>) -> tensor<f64>
    return %loss : tensor<f64>
}

// CHECK: @reshape_transpose: {{.*}}: PASS
func.func @reshape_transpose(%x: tensor<2x3x4xf64>) -> tensor<f64> {
    %r = trainopt.reshape %x : tensor<2x3x4xf64> -> tensor<6x4xf64>
    %y = trainopt.transpose %r {permutation = array<i64: 1, 0>} : (tensor<6x4xf64>) -> tensor<4x6xf64>
    %sin = trainopt.sin %y : tensor<4x6xf64>
    %loss = trainopt.reduce_sum %sin : (tensor<4x6xf64>) -> tensor<f64>
    return %loss : tensor<f64>
}

// CHECK: @broadcast_to: {{.*}}: PASS
func.func @broadcast_to(%x: tensor<3x1xf64>) -> tensor<f64> {
    %y = trainopt.broadcast_to %x : tensor<3x1xf64> -> tensor<2x3x4xf64>
    %sin = trainopt.sin %y : tensor<2x3x4xf64>
    %loss = trainopt.reduce_sum %sin : (tensor<2x3x4xf64>) -> tensor<f64>
    return %loss : tensor<f64>
}

// CHECK: @slice_strided: {{.*}}: PASS
func.func @slice_strided(%x: tensor<5x7xf64>) -> tensor<f64> {
    %y = trainopt.slice %x {start = array<i64: 1, 0>, limit = array<i64: 5, 7>, stride = array<i64: 2, 3>} : (tensor<5x7xf64>) -> tensor<2x3xf64>
    %sin = trainopt.sin %y : tensor<2x3xf64>
    %loss = trainopt.reduce_sum %sin : (tensor<2x3xf64>) -> tensor<f64>
    return %loss : tensor<f64>
}

// CHECK: @concat_split: {{.*}}: PASS
func.func @concat_split(%a: tensor<2x3xf64>, %b: tensor<2x2xf64>) -> tensor<f64> {
    %c = trainopt.concat %a, %b, %a {axis = 1 : i64} : (tensor<2x3xf64>, tensor<2x2xf64>, tensor<2x3xf64>) -> tensor<2x8xf64>
    %p, %q = trainopt.split %c {axis = 1 : i64, sizes = array<i64: 5, 3>} : (tensor<2x8xf64>) -> (tensor<2x5xf64>, tensor<2x3xf64>)
    %y = trainopt.mul %p, %p : (tensor<2x5xf64>, tensor<2x5xf64>) -> tensor<2x5xf64>
    %sin = trainopt.sin %y : tensor<2x5xf64>
    %loss = trainopt.reduce_sum %sin : (tensor<2x5xf64>) -> tensor<f64>
    return %loss : tensor<f64>
}

// CHECK: @split_unused_piece: {{.*}}: PASS
func.func @split_unused_piece(%x: tensor<6xf64>) -> tensor<f64> {
    %p, %q = trainopt.split %x {axis = 0 : i64, sizes = array<i64: 2, 4>} : (tensor<6xf64>) -> (tensor<2xf64>, tensor<4xf64>)
    %y = trainopt.exp %q : tensor<4xf64>
    %sin = trainopt.sin %y : tensor<4xf64>
    %loss = trainopt.reduce_sum %sin : (tensor<4xf64>) -> tensor<f64>
    return %loss : tensor<f64>
}

// CHECK: @gather_embedding_repeated: {{.*}}: PASS
func.func @gather_embedding_repeated(%t: tensor<5x3xf64>) -> tensor<f64> {
    %i = trainopt.constant dense<[[1, 4], [1, -5]]> : tensor<2x2xi64>
    %y = trainopt.gather %t, %i {axis = 0 : i64} : (tensor<5x3xf64>, tensor<2x2xi64>) -> tensor<2x2x3xf64>
    %sin = trainopt.sin %y : tensor<2x2x3xf64>
    %loss = trainopt.reduce_sum %sin : (tensor<2x2x3xf64>) -> tensor<f64>
    return %loss : tensor<f64>
}

// CHECK: @gather_axis1: {{.*}}: PASS
func.func @gather_axis1(%t: tensor<2x5x3xf64>) -> tensor<f64> {
    %i = trainopt.constant dense<[3, 0, 3]> : tensor<3xi64>
    %y = trainopt.gather %t, %i {axis = 1 : i64} : (tensor<2x5x3xf64>, tensor<3xi64>) -> tensor<2x3x3xf64>
    %sin = trainopt.sin %y : tensor<2x3x3xf64>
    %loss = trainopt.reduce_sum %sin : (tensor<2x3x3xf64>) -> tensor<f64>
    return %loss : tensor<f64>
}

// ScatterElements and ScatterND import to scatter_add; its VJP for the
// updates is the gather at the same (here repeated and negative) indices.
// CHECK: @scatter_add: {{.*}}: PASS
func.func @scatter_add(%u: tensor<2x3x2xf64>) -> tensor<f64> {
    %i = trainopt.constant dense<[1, -1, 1]> : tensor<3xi64>
    %y = trainopt.scatter_add %i, %u {axis = 1 : i64} : (tensor<3xi64>, tensor<2x3x2xf64>) -> tensor<2x4x2xf64>
    %sin = trainopt.sin %y : tensor<2x4x2xf64>
    %loss = trainopt.reduce_sum %sin : (tensor<2x4x2xf64>) -> tensor<f64>
    return %loss : tensor<f64>
}

// CHECK: @trilu: {{.*}}: PASS
func.func @trilu(%x: tensor<2x4x4xf64>) -> tensor<f64> {
    %y = trainopt.trilu %x {diagonal = -1 : i64} : tensor<2x4x4xf64>
    %sin = trainopt.sin %y : tensor<2x4x4xf64>
    %loss = trainopt.reduce_sum %sin : (tensor<2x4x4xf64>) -> tensor<f64>
    return %loss : tensor<f64>
}

// CHECK: @pad_interior: {{.*}}: PASS
func.func @pad_interior(%x: tensor<2x3xf64>) -> tensor<f64> {
    %y = trainopt.pad %x {low = array<i64: 1, 0>, high = array<i64: 0, 2>, value = 1.5 : f64, interior = array<i64: 0, 1>} : (tensor<2x3xf64>) -> tensor<3x7xf64>
    %sin = trainopt.sin %y : tensor<3x7xf64>
    %loss = trainopt.reduce_sum %sin : (tensor<3x7xf64>) -> tensor<f64>
    return %loss : tensor<f64>
}

// CHECK: @causal_attention: {{.*}}: PASS
func.func @causal_attention(%q: tensor<2x4x3xf64>, %k: tensor<2x4x3xf64>) -> tensor<f64> {
    %s = trainopt.matmul %q, %k {transpose_rhs = true} : (tensor<2x4x3xf64>, tensor<2x4x3xf64>) -> tensor<2x4x4xf64>
    %ones = trainopt.constant dense<1.0> : tensor<4x4xf64>
    %tri = trainopt.trilu %ones : tensor<4x4xf64>
    %zero = trainopt.constant dense<0.0> : tensor<f64>
    %mask = trainopt.equal %tri, %zero : (tensor<4x4xf64>, tensor<f64>) -> tensor<4x4xi1>
    %ninf = trainopt.constant dense<-1.0e9> : tensor<f64>
    %m = trainopt.where %mask, %ninf, %s : (tensor<4x4xi1>, tensor<f64>, tensor<2x4x4xf64>) -> tensor<2x4x4xf64>
    %y = trainopt.softmax %m {axis = 2 : i64} : tensor<2x4x4xf64>
    %sin = trainopt.sin %y : tensor<2x4x4xf64>
    %loss = trainopt.reduce_sum %sin : (tensor<2x4x4xf64>) -> tensor<f64>
    return %loss : tensor<f64>
}

// CHECK: @cross_entropy_mean_smoothing_ignore: {{.*}}: PASS
func.func @cross_entropy_mean_smoothing_ignore(%z: tensor<5x4xf64>) -> tensor<f64> {
    %y = trainopt.constant dense<[0, 3, -100, 1, 3]> : tensor<5xi64>
    %l = trainopt.cross_entropy %z, %y {reduction = #trainopt<reduction mean>, ignore_index = -100 : i64, label_smoothing = 0.2 : f64} : (tensor<5x4xf64>, tensor<5xi64>) -> tensor<f64>
    return %l : tensor<f64>
}

// CHECK: @cross_entropy_weighted_smoothing: {{.*}}: PASS
func.func @cross_entropy_weighted_smoothing(%z: tensor<5x4xf64>, %w0: tensor<4xf64>) -> tensor<f64> {
    %y = trainopt.constant dense<[0, 3, 2, 1, 3]> : tensor<5xi64>
    %e = trainopt.exp %w0 : tensor<4xf64>
    %l = trainopt.cross_entropy %z, %y, %e {reduction = #trainopt<reduction mean>, label_smoothing = 0.1 : f64} : (tensor<5x4xf64>, tensor<5xi64>, tensor<4xf64>) -> tensor<f64>
    return %l : tensor<f64>
}

// CHECK: @cross_entropy_tokens_sum: {{.*}}: PASS
func.func @cross_entropy_tokens_sum(%z: tensor<2x3x5xf64>) -> tensor<f64> {
    %y = trainopt.constant dense<[[0, 4, 2], [1, 1, 3]]> : tensor<2x3xi64>
    %l = trainopt.cross_entropy %z, %y {class_axis = -1 : i64, reduction = #trainopt<reduction sum>} : (tensor<2x3x5xf64>, tensor<2x3xi64>) -> tensor<f64>
    return %l : tensor<f64>
}

// CHECK: @cross_entropy_spatial_none: {{.*}}: PASS
func.func @cross_entropy_spatial_none(%z: tensor<2x3x4xf64>) -> tensor<f64> {
    %y = trainopt.constant dense<[[0, 2, 1, 2], [1, 1, 0, 2]]> : tensor<2x4xi64>
    %p = trainopt.cross_entropy %z, %y {reduction = #trainopt<reduction none>, ignore_index = 1 : i64} : (tensor<2x3x4xf64>, tensor<2x4xi64>) -> tensor<2x4xf64>
    %s = trainopt.sin %p : tensor<2x4xf64>
    %l = trainopt.reduce_sum %s : (tensor<2x4xf64>) -> tensor<f64>
    return %l : tensor<f64>
}

// CHECK: @nll_weighted_mean: {{.*}}: PASS
func.func @nll_weighted_mean(%z: tensor<5x4xf64>, %w: tensor<4xf64>) -> tensor<f64> {
    %y = trainopt.constant dense<[0, 3, 2, 1, 3]> : tensor<5xi64>
    %lp = trainopt.log_softmax %z {axis = 1 : i64} : tensor<5x4xf64>
    %e = trainopt.exp %w : tensor<4xf64>
    %l = trainopt.nll_loss %lp, %y, %e {reduction = #trainopt<reduction mean>, ignore_index = 2 : i64} : (tensor<5x4xf64>, tensor<5xi64>, tensor<4xf64>) -> tensor<f64>
    return %l : tensor<f64>
}

// CHECK: @mse_mean: {{.*}}: PASS
func.func @mse_mean(%a: tensor<3x2xf64>, %b: tensor<3x2xf64>) -> tensor<f64> {
    %l = trainopt.mse_loss %a, %b {reduction = #trainopt<reduction mean>} : (tensor<3x2xf64>, tensor<3x2xf64>) -> tensor<f64>
    return %l : tensor<f64>
}

// CHECK: @mse_sum: {{.*}}: PASS
func.func @mse_sum(%a: tensor<3x2xf64>, %b: tensor<3x2xf64>) -> tensor<f64> {
    %l = trainopt.mse_loss %a, %b {reduction = #trainopt<reduction sum>} : (tensor<3x2xf64>, tensor<3x2xf64>) -> tensor<f64>
    return %l : tensor<f64>
}

// fake_quant's straight-through estimator (torch.ao.quantization's
// FakeQuantize): its AD is the finite differences of the clipped identity
// it stands for. With s = 0.25, z = 1 and the range [-2, 2], x passes where
// round_half_even(4x) + 1 is in [-2, 2]: -0.875 < x < 0.375; the random
// inputs in (-1, 1) fall on both sides. The loss is linear in y, so the
// cotangents are the constants (the STE passes them at the quantized y).
// CHECK: @fake_quant: 6 partial derivatives (finite differences of @fake_quant_surrogate), max error {{.*}}: PASS
func.func @fake_quant(%x: tensor<2x3xf64>) -> tensor<f64>
    attributes {trainopt.fd_surrogate = @fake_quant_surrogate} {
    %s = trainopt.constant dense<0.25> : tensor<f64>
    %z = trainopt.constant dense<1.0> : tensor<f64>
    %y = trainopt.fake_quant %x, %s, %z {quant_min = -2 : i64, quant_max = 2 : i64}
        : (tensor<2x3xf64>, tensor<f64>, tensor<f64>) -> tensor<2x3xf64>
    %c = trainopt.constant dense<[[1.0, -2.0, 3.0], [0.5, 1.5, -1.0]]> : tensor<2x3xf64>
    %l = trainopt.mul %y, %c : (tensor<2x3xf64>, tensor<2x3xf64>) -> tensor<2x3xf64>
    %loss = trainopt.reduce_sum %l : (tensor<2x3xf64>) -> tensor<f64>
    return %loss : tensor<f64>
}
func.func @fake_quant_surrogate(%x: tensor<2x3xf64>) -> tensor<f64> {
    %y = trainopt.clip %x {min = -0.875 : f64, max = 0.375 : f64} : tensor<2x3xf64>
    %c = trainopt.constant dense<[[1.0, -2.0, 3.0], [0.5, 1.5, -1.0]]> : tensor<2x3xf64>
    %l = trainopt.mul %y, %c : (tensor<2x3xf64>, tensor<2x3xf64>) -> tensor<2x3xf64>
    %loss = trainopt.reduce_sum %l : (tensor<2x3xf64>) -> tensor<f64>
    return %loss : tensor<f64>
}
