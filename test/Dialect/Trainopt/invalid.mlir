// RUN: trainopt-opt %s -split-input-file -verify-diagnostics

func.func @broadcast_mismatch(%a: tensor<4x8xf32>, %b: tensor<3xf32>) {
  // expected-error @+2 {{failed to infer returned types}}
  // expected-error @+1 {{operand shapes [4, 8], [3] are not broadcast-compatible}}
  %0 = trainopt.add %a, %b : (tensor<4x8xf32>, tensor<3xf32>) -> tensor<4x8xf32>
  return
}

// -----

func.func @wrong_result_shape(%a: tensor<4x8xf32>, %b: tensor<8xf32>) {
  // expected-error @+2 {{failed to infer returned types}}
  // expected-error @+1 {{'trainopt.mul' op inferred type(s) 'tensor<4x8xf32>' are incompatible with return type(s) of operation 'tensor<4x4xf32>'}}
  %0 = trainopt.mul %a, %b : (tensor<4x8xf32>, tensor<8xf32>) -> tensor<4x4xf32>
  return
}

// -----

func.func @dynamic_shape(%a: tensor<?x8xf32>) {
  // expected-error @+1 {{must be statically shaped tensor}}
  %0 = trainopt.relu %a : tensor<?x8xf32>
  return
}

// -----

func.func @unsupported_element(%a: tensor<4xui8>) {
  // expected-error @+1 {{must be statically shaped tensor of}}
  %0 = trainopt.neg %a : tensor<4xui8>
  return
}

// -----

func.func @matmul_k(%a: tensor<4x8xf32>, %b: tensor<7x3xf32>) {
  // expected-error @+2 {{failed to infer returned types}}
  // expected-error @+1 {{contracting dims differ: lhs [4, 8] gives K = 8, rhs [7, 3] gives K = 7}}
  %0 = trainopt.matmul %a, %b : (tensor<4x8xf32>, tensor<7x3xf32>) -> tensor<4x3xf32>
  return
}

// -----

func.func @matmul_rank(%a: tensor<8xf32>, %b: tensor<8x3xf32>) {
  // expected-error @+2 {{failed to infer returned types}}
  // expected-error @+1 {{expects operands of rank >= 2, got 1 and 2}}
  %0 = trainopt.matmul %a, %b : (tensor<8xf32>, tensor<8x3xf32>) -> tensor<3xf32>
  return
}

// -----

func.func @conv_channels(%x: tensor<1x3x8x8xf32>, %w: tensor<4x2x3x3xf32>) {
  // expected-error @+2 {{failed to infer returned types}}
  // expected-error @+1 {{filter [4, 2, 3, 3] expects 2 input channels with groups = 1, input has 3}}
  %0 = trainopt.conv %x, %w {strides = array<i64: 1, 1>, padding = array<i64: 0, 0, 0, 0>, dilations = array<i64: 1, 1>}
      : (tensor<1x3x8x8xf32>, tensor<4x2x3x3xf32>) -> tensor<1x4x6x6xf32>
  return
}

// -----

func.func @conv_padding(%x: tensor<1x3x8x8xf32>, %w: tensor<4x3x3x3xf32>) {
  // expected-error @+2 {{failed to infer returned types}}
  // expected-error @+1 {{expects 4 padding values (low pads then high pads), got 2}}
  %0 = trainopt.conv %x, %w {strides = array<i64: 1, 1>, padding = array<i64: 1, 1>, dilations = array<i64: 1, 1>}
      : (tensor<1x3x8x8xf32>, tensor<4x3x3x3xf32>) -> tensor<1x4x8x8xf32>
  return
}

// -----

func.func @conv_groups(%x: tensor<1x6x8x8xf32>, %w: tensor<4x3x3x3xf32>) {
  // expected-error @+2 {{failed to infer returned types}}
  // expected-error @+1 {{groups 4 must divide input channels 6 and output features 4}}
  %0 = trainopt.conv %x, %w {strides = array<i64: 1, 1>, padding = array<i64: 0, 0, 0, 0>, dilations = array<i64: 1, 1>, groups = 4 : i64}
      : (tensor<1x6x8x8xf32>, tensor<4x3x3x3xf32>) -> tensor<1x4x6x6xf32>
  return
}

// -----

func.func @conv_bias(%x: tensor<1x3x8x8xf32>, %w: tensor<4x3x3x3xf32>, %b: tensor<3xf32>) {
  // expected-error @+2 {{failed to infer returned types}}
  // expected-error @+1 {{expects bias of shape [4], got [3]}}
  %0 = trainopt.conv %x, %w, %b {strides = array<i64: 1, 1>, padding = array<i64: 0, 0, 0, 0>, dilations = array<i64: 1, 1>}
      : (tensor<1x3x8x8xf32>, tensor<4x3x3x3xf32>, tensor<3xf32>) -> tensor<1x4x6x6xf32>
  return
}

// -----

func.func @conv_window(%x: tensor<1x3x2x2xf32>, %w: tensor<4x3x3x3xf32>) {
  // expected-error @+2 {{failed to infer returned types}}
  // expected-error @+1 {{filter [4, 3, 3, 3] does not fit input [1, 3, 2, 2] with its padding and dilation}}
  %0 = trainopt.conv %x, %w {strides = array<i64: 1, 1>, padding = array<i64: 0, 0, 0, 0>, dilations = array<i64: 1, 1>}
      : (tensor<1x3x2x2xf32>, tensor<4x3x3x3xf32>) -> tensor<1x4x1x1xf32>
  return
}

// -----

func.func @pool_stride(%x: tensor<1x3x8x8xf32>) {
  // expected-error @+2 {{failed to infer returned types}}
  // expected-error @+1 {{strides must be >= 1, got [0, 2]}}
  %0 = trainopt.max_pool %x {kernel_shape = array<i64: 2, 2>, strides = array<i64: 0, 2>, padding = array<i64: 0, 0, 0, 0>, dilations = array<i64: 1, 1>}
      : (tensor<1x3x8x8xf32>) -> tensor<1x3x4x4xf32>
  return
}

// -----

func.func @batch_norm_channels(%x: tensor<2x16x4x4xf32>, %c: tensor<8xf32>) {
  // expected-error @+1 {{expects per-channel operands of shape [16], got 'tensor<8xf32>'}}
  %0 = trainopt.batch_norm_inference %x, %c, %c, %c, %c : tensor<2x16x4x4xf32>, tensor<8xf32>
  return
}

// -----

func.func @batch_norm_momentum(%x: tensor<2x16xf32>, %c: tensor<16xf32>) {
  // expected-error @+1 {{expects momentum in [0, 1], got 1.500000e+00}}
  %0:3 = trainopt.batch_norm_train %x, %c, %c, %c, %c {momentum = 1.5 : f64} : tensor<2x16xf32>, tensor<16xf32>
  return
}

// -----

func.func @layer_norm_scale(%x: tensor<2x8x64xf32>, %g: tensor<32xf32>) {
  // expected-error @+1 {{expects scale and bias of type 'tensor<64xf32>', got 'tensor<32xf32>'}}
  %0 = trainopt.layer_norm %x, %g {axis = 2 : i64} : (tensor<2x8x64xf32>, tensor<32xf32>) -> tensor<2x8x64xf32>
  return
}

// -----

func.func @softmax_axis(%x: tensor<2x8xf32>) {
  // expected-error @+1 {{axis 2 is out of range [0, 2)}}
  %0 = trainopt.softmax %x {axis = 2 : i64} : tensor<2x8xf32>
  return
}

// -----

func.func @dropout_ratio(%x: tensor<2x8xf32>, %s: tensor<i64>) {
  // expected-error @+1 {{expects ratio in [0, 1), got 1.000000e+00}}
  %0:2 = trainopt.dropout %x, %s {ratio = 1.0 : f64} : tensor<2x8xf32>, tensor<i64> -> tensor<2x8xi1>
  return
}

// -----

func.func @reduce_axes(%x: tensor<2x8xf32>) {
  // expected-error @+2 {{failed to infer returned types}}
  // expected-error @+1 {{axes must be sorted and unique, got [1, 0]}}
  %0 = trainopt.reduce_sum %x {axes = array<i64: 1, 0>} : (tensor<2x8xf32>) -> tensor<f32>
  return
}

// -----

func.func @reshape_count(%x: tensor<2x8xf32>) {
  // expected-error @+1 {{cannot reshape 16 elements 'tensor<2x8xf32>' into 15 elements 'tensor<3x5xf32>'}}
  %0 = trainopt.reshape %x : tensor<2x8xf32> -> tensor<3x5xf32>
  return
}

// -----

func.func @transpose_perm(%x: tensor<2x8xf32>) {
  // expected-error @+2 {{failed to infer returned types}}
  // expected-error @+1 {{[0, 0] is not a permutation of [0, 2)}}
  %0 = trainopt.transpose %x {permutation = array<i64: 0, 0>} : (tensor<2x8xf32>) -> tensor<2x2xf32>
  return
}

// -----

func.func @broadcast_to(%x: tensor<3xf32>) {
  // expected-error @+1 {{cannot broadcast [3] to [4, 2]}}
  %0 = trainopt.broadcast_to %x : tensor<3xf32> -> tensor<4x2xf32>
  return
}

// -----

func.func @slice_range(%x: tensor<4xf32>) {
  // expected-error @+2 {{failed to infer returned types}}
  // expected-error @+1 {{slice [2, 6) of dim 0 is outside [0, 4]}}
  %0 = trainopt.slice %x {start = array<i64: 2>, limit = array<i64: 6>, stride = array<i64: 1>} : (tensor<4xf32>) -> tensor<4xf32>
  return
}

// -----

func.func @concat_shapes(%a: tensor<2x3xf32>, %b: tensor<3x3xf32>) {
  // expected-error @+2 {{failed to infer returned types}}
  // expected-error @+1 {{input shapes [2, 3] and [3, 3] differ outside axis 1}}
  %0 = trainopt.concat %a, %b {axis = 1 : i64} : (tensor<2x3xf32>, tensor<3x3xf32>) -> tensor<2x6xf32>
  return
}

// -----

func.func @split_sizes(%x: tensor<2x10xf32>) {
  // expected-error @+2 {{failed to infer returned types}}
  // expected-error @+1 {{split sizes [4, 4] sum to 8, dim 1 has size 10}}
  %0:2 = trainopt.split %x {axis = 1 : i64, sizes = array<i64: 4, 4>} : (tensor<2x10xf32>) -> (tensor<2x4xf32>, tensor<2x4xf32>)
  return
}

// -----

func.func @gather_indices(%t: tensor<10x4xf32>, %i: tensor<3xf32>) {
  // expected-error @+1 {{must be statically shaped tensor of 64-bit signless integer or 32-bit signless integer values}}
  %0 = trainopt.gather %t, %i {axis = 0 : i64} : (tensor<10x4xf32>, tensor<3xf32>) -> tensor<3x4xf32>
  return
}

// -----

func.func @trilu_rank(%x: tensor<4xf32>) {
  // expected-error @+1 {{expects rank >= 2, got 'tensor<4xf32>'}}
  %0 = trainopt.trilu %x : tensor<4xf32>
  return
}

// -----

func.func @clip_bounds(%x: tensor<4xf32>) {
  // expected-error @+1 {{expects min <= max, got min 6.000000e+00 and max 0.000000e+00}}
  %0 = trainopt.clip %x {min = 6.0 : f64, max = 0.0 : f64} : tensor<4xf32>
  return
}

// -----

func.func @cross_entropy_labels(%l: tensor<32x10xf32>, %y: tensor<16xi64>) {
  // expected-error @+2 {{failed to infer returned types}}
  // expected-error @+1 {{expects labels of shape [32] (scores [32, 10] without class axis 1), got [16]}}
  %0 = trainopt.cross_entropy %l, %y {reduction = #trainopt<reduction mean>} : (tensor<32x10xf32>, tensor<16xi64>) -> tensor<f32>
  return
}

// -----

func.func @cross_entropy_smoothing(%l: tensor<32x10xf32>, %y: tensor<32xi64>) {
  // expected-error @+2 {{failed to infer returned types}}
  // expected-error @+1 {{expects label_smoothing in [0, 1], got 2.000000e+00}}
  %0 = trainopt.cross_entropy %l, %y {reduction = #trainopt<reduction mean>, label_smoothing = 2.0 : f64} : (tensor<32x10xf32>, tensor<32xi64>) -> tensor<f32>
  return
}

// -----

func.func @nll_weight(%l: tensor<32x10xf32>, %y: tensor<32xi64>, %w: tensor<5xf32>) {
  // expected-error @+2 {{failed to infer returned types}}
  // expected-error @+1 {{expects class weight of type 'tensor<10xf32>', got 'tensor<5xf32>'}}
  %0 = trainopt.nll_loss %l, %y, %w {reduction = #trainopt<reduction mean>} : (tensor<32x10xf32>, tensor<32xi64>, tensor<5xf32>) -> tensor<f32>
  return
}

// -----

// expected-error @+1 {{initial value of type 'tensor<3xf32>' does not match declared type 'tensor<4xf32>'}}
trainopt.parameter @p trainable : tensor<4xf32> = dense<1.0> : tensor<3xf32>

// -----

trainopt.parameter @p trainable : tensor<4xf32>
// expected-error @+1 {{argument 0 of type 'tensor<8xf32>' binds parameter @p of type 'tensor<4xf32>'}}
func.func @param_type(%a: tensor<8xf32> {trainopt.param = @p}) {
  return
}

// -----

// expected-error @+1 {{argument 0 refers to unknown parameter @missing}}
func.func @param_unknown(%a: tensor<8xf32> {trainopt.param = @missing}) {
  return
}

// -----

// expected-error @+1 {{'trainopt.input' on argument 0 must be a string, got 3 : i64}}
func.func @input_attr(%a: tensor<8xf32> {trainopt.input = 3}) {
  return
}

// -----

// expected-error @+1 {{expected 'trainable' or 'frozen'}}
trainopt.parameter @p learnable : tensor<4xf32>

// -----

// expected-error @+1 {{'trainopt.role' on argument 0 must be a #trainopt<role ...>, got "labels"}}
func.func @role_attr(%a: tensor<8xi64> {trainopt.role = "labels"}) {
  return
}

// -----

// expected-error @+1 {{'trainopt.role' on result 0 must be a #trainopt<role ...>, got 1 : i64}}
func.func @role_result(%a: tensor<f32>) -> (tensor<f32> {trainopt.role = 1}) {
  return %a : tensor<f32>
}

// -----

shard.grid @mesh(shape = 2) {trainopt.axes = ["dp"]}
func.func @all_reduce_axis(%x: tensor<4xf32>) {
  // expected-error @+1 {{grid axis 1 is out of range: 'mesh' has 1 axes}}
  %0 = trainopt.all_reduce sum %x on @mesh axes = [1] : tensor<4xf32>
  return
}

// -----

func.func @all_reduce_no_grid(%x: tensor<4xf32>) {
  // expected-error @+1 {{expects 'nowhere' to name a shard.grid}}
  %0 = trainopt.all_reduce sum %x on @nowhere axes = [0] : tensor<4xf32>
  return
}

// -----

shard.grid @mesh(shape = 2x2) {trainopt.axes = ["dp", "tp"]}
func.func @all_reduce_axes_order(%x: tensor<4xf32>) {
  // expected-error @+1 {{expects strictly increasing grid axes}}
  %0 = trainopt.all_reduce sum %x on @mesh axes = [1, 0] : tensor<4xf32>
  return
}

// -----

shard.grid @mesh(shape = 2) {trainopt.axes = ["dp"]}
func.func @all_reduce_bucket_types(%x: tensor<4xf32>, %y: tensor<4xbf16>) {
  // expected-error @+1 {{expects inputs of one element type (a bucket), got 'f32' and 'bf16'}}
  %0:2 = trainopt.all_reduce sum %x, %y on @mesh axes = [0] : tensor<4xf32>, tensor<4xbf16>
  return
}

// -----

// expected-error @+1 {{'trainopt.sharding' on argument 0 must be levels "AXIS:DIM[/BLOCKS]" (a dim of the argument, BLOCKS >= 1), then at most one "AXIS:flat", over distinct axes, or "AXIS:mean" alone; got "dp:2"}}
func.func @sharding_dim(%x: tensor<4x3xf32> {trainopt.sharding = "dp:2"}) {
  return
}

// -----

// expected-error @+1 {{'trainopt.sharding' on argument 0 must be levels}}
func.func @sharding_flat_not_last(%x: tensor<4xf32> {trainopt.sharding = "dp:flat,tp:0"}) {
  return
}

// -----

// expected-error @+1 {{'trainopt.sharding' on argument 0 must be levels}}
func.func @sharding_axis_twice(%x: tensor<4x3xf32> {trainopt.sharding = "tp:0,tp:1"}) {
  return
}

// -----

// ZeRO's flat part over dp of a tensor-parallel rank's rows.
func.func @sharding_nested(%x: tensor<6xf32> {trainopt.sharding = "tp:0,dp:flat"}) {
  return
}

// -----

shard.grid @mesh(shape = 2x2) {trainopt.axes = ["dp", "tp"]}
func.func @broadcast_root(%x: tensor<4xf32>) {
  // expected-error @+1 {{root 2 is no rank of the group of 2 ranks}}
  %0 = trainopt.broadcast %x on @mesh axes = [1] root = 2 : tensor<4xf32>
  return
}

// -----

shard.grid @mesh(shape = 2) {trainopt.axes = ["dp"]}
func.func @broadcast_negative_root(%x: tensor<4xf32>) {
  // expected-error @+1 {{expects a root rank >= 0, got -1}}
  %0 = trainopt.broadcast %x on @mesh axes = [0] root = -1 : tensor<4xf32>
  return
}

// -----

shard.grid @mesh(shape = 2x2) {trainopt.axes = ["dp", "tp"]}
func.func @all_gather_group(%x: tensor<4xf32>) {
  // expected-error @+1 {{expects dim 0 of 'tensor<16xf32>' to be 2 (the group) times dim 0 of 'tensor<4xf32>'}}
  %0 = trainopt.all_gather %x on @mesh axes = [1] : tensor<4xf32> -> tensor<16xf32>
  return
}

// -----

shard.grid @mesh(shape = 2) {trainopt.axes = ["dp"]}
func.func @rank_slice_dims(%x: tensor<8x3xf32>) {
  // expected-error @+1 {{expects tensors that differ in dim 0 only, got 'tensor<4x2xf32>' and 'tensor<8x3xf32>'}}
  %0 = trainopt.rank_slice %x on @mesh axes = [0] : tensor<8x3xf32> -> tensor<4x2xf32>
  return
}

// -----

shard.grid @mesh(shape = 4) {trainopt.axes = ["dp"]}
func.func @rank_slice_multiple(%x: tensor<6xf32>) {
  // expected-error @+1 {{expects dim 0 of 'tensor<6xf32>' to be a multiple of dim 0 of 'tensor<4xf32>'}}
  %0 = trainopt.rank_slice %x on @mesh axes = [0] : tensor<6xf32> -> tensor<4xf32>
  return
}

// -----

shard.grid @mesh(shape = 4) {trainopt.axes = ["dp"]}
func.func @reduce_scatter_group(%x: tensor<8xf32>) {
  // expected-error @+1 {{expects dim 0 of 'tensor<8xf32>' to be 4 (the group) times dim 0 of 'tensor<4xf32>'}}
  %0 = trainopt.reduce_scatter sum %x on @mesh axes = [0] : tensor<8xf32> -> tensor<4xf32>
  return
}

// -----

shard.grid @mesh(shape = 2) {trainopt.axes = ["dp"]}
func.func @reduce_scatter_bucket_types(%x: tensor<4xf32>, %y: tensor<4xbf16>) {
  // expected-error @+1 {{expects inputs and results of one element type (a bucket)}}
  %0:2 = trainopt.reduce_scatter sum %x, %y on @mesh axes = [0] : tensor<4xf32>, tensor<4xbf16> -> tensor<2xf32>, tensor<2xbf16>
  return
}

// -----

shard.grid @mesh(shape = 2) {trainopt.axes = ["dp"]}
func.func @reduce_scatter_results(%x: tensor<4xf32>) {
  // expected-error @+1 {{expects one result per input, got 1 inputs and 2 results}}
  %0:2 = trainopt.reduce_scatter sum %x on @mesh axes = [0] : tensor<4xf32> -> tensor<2xf32>, tensor<2xf32>
  return
}

// -----

shard.grid @mesh(shape = 2) {trainopt.axes = ["pp"]}
func.func @send_self(%x: tensor<4xf32>) {
  // expected-error @+1 {{expects a nonzero offset (the peer is another rank)}}
  trainopt.send %x on @mesh axes = [0] offset = 0 : tensor<4xf32>
  return
}

// -----

shard.grid @mesh(shape = 2) {trainopt.axes = ["pp"]}
func.func @recv_outside(%x: tensor<4xf32>) -> tensor<4xf32> {
  // expected-error @+1 {{offset -2 leaves the group of 2 ranks}}
  %0 = trainopt.recv on @mesh axes = [0] offset = -2 : tensor<4xf32>
  return %0 : tensor<4xf32>
}

// -----

shard.grid @mesh(shape = 2x2) {trainopt.axes = ["dp", "pp"]}
func.func @send_two_axes(%x: tensor<4xf32>) {
  // expected-error @+1 {{expects one grid axis, got 2}}
  trainopt.send %x on @mesh axes = [0, 1] offset = 1 : tensor<4xf32>
  return
}

// -----

trainopt.parameter @w trainable : tensor<4xf32> = dense<1.0> : tensor<4xf32>
func.func @assign_trainable(%w: tensor<4xf32> {trainopt.param = @w}, %x: tensor<4xf32>) {
  // expected-error @+1 {{sets @w, which is trainable: only frozen parameters (model state) are assigned}}
  trainopt.assign %w, %x : tensor<4xf32>
  return
}

// -----

func.func @assign_not_state(%s: tensor<4xf32>, %x: tensor<4xf32>) {
  // expected-error @+1 {{expects the state to be an argument of its function bound to a parameter}}
  trainopt.assign %s, %x : tensor<4xf32>
  return
}

// -----

func.func @kth_smallest_of_integers(%x: tensor<8xi32>, %k: tensor<i64>) {
  // expected-error @+1 {{must be statically shaped tensor of 64-bit float or 32-bit float or 16-bit float or bfloat16 type values}}
  %0 = trainopt.kth_smallest %x, %k : (tensor<8xi32>, tensor<i64>) -> tensor<i32>
  return
}

// -----

func.func @kth_smallest_k_not_scalar(%x: tensor<8xf32>, %k: tensor<2xi64>) {
  // expected-error @+1 {{must be 0D tensor of 64-bit signless integer values}}
  %0 = trainopt.kth_smallest %x, %k : (tensor<8xf32>, tensor<2xi64>) -> tensor<f32>
  return
}

// -----

func.func @kth_smallest_result_type(%x: tensor<8xf32>, %k: tensor<i64>) {
  // expected-error @+2 {{failed to infer returned types}}
  // expected-error @+1 {{inferred type(s) 'tensor<f32>' are incompatible with return type(s) of operation 'tensor<f64>'}}
  %0 = trainopt.kth_smallest %x, %k : (tensor<8xf32>, tensor<i64>) -> tensor<f64>
  return
}
