//===- CollectiveOps.td - trainopt collectives between ranks -*- tablegen -*-===//
//
// Collectives of a partitioned (per-rank) program. They run on the grid of
// an upstream `shard.grid` (the mesh: its shape; the axis names are its
// `trainopt.axes` attribute) over the group of `grid_axes`, with the
// upstream dialect's conventions for the two. They are not `Pure`: every
// rank must issue the same collectives in the same order, so no pass may
// drop, merge or reorder one on its own.

#ifndef TRAINOPT_DIALECT_TRAINOPT_IR_COLLECTIVEOPS_TD
#define TRAINOPT_DIALECT_TRAINOPT_IR_COLLECTIVEOPS_TD

include "trainopt/Dialect/Trainopt/IR/TrainoptDialect.td"
include "trainopt/Dialect/Trainopt/IR/TrainoptAttrs.td"
include "mlir/IR/SymbolInterfaces.td"
include "mlir/Interfaces/InferTypeOpInterface.td"
include "mlir/Interfaces/SideEffectInterfaces.td"
include "trainopt/Dialect/Trainopt/IR/TrainoptInterfaces.td"

def Trainopt_AllReduceOp : Trainopt_Op<"all_reduce", [
    DeclareOpInterfaceMethods<Trainopt_DifferentiableOpInterface>,
    DeclareOpInterfaceMethods<SymbolUserOpInterface>, InferTypeOpAdaptor]> {
  let summary = "combines tensors elementwise across the ranks of a group";
  let description = [{
    Every rank of the group of `grid_axes` on grid `grid` contributes
    `inputs`; every rank receives, per input, the elementwise `reduction`
    (sum, max or min) of all contributions. Several inputs of one element
    type form a bucket: the runtime packs them into one buffer and issues
    one collective for all of them. With the runtime's deterministic order
    (the default) a sum is `((x0 + x1) + x2) + ...` in rank order, bit for
    bit on every rank.

    Its VJP (a sum only) is the identity: the result is replicated over the
    group, so each rank's cotangent of it is already the whole cotangent,
    and every contribution's cotangent is that (Megatron's `g` operator).

    ```mlir
    shard.grid @mesh(shape = 2) {trainopt.axes = ["dp"]}
    %w, %b = trainopt.all_reduce sum %gw, %gb on @mesh axes = [0]
        : tensor<10x784xf32>, tensor<10xf32>
    ```
  }];
  let arguments = (ins Variadic<Trainopt_NumericTensor>:$inputs,
                       FlatSymbolRefAttr:$grid,
                       DenseI16ArrayAttr:$grid_axes,
                       Trainopt_CollectiveReductionAttr:$reduction);
  let results = (outs Variadic<Trainopt_NumericTensor>:$results);
  let assemblyFormat = [{
    $reduction $inputs `on` $grid `axes` `=` $grid_axes attr-dict `:`
    type($inputs)
  }];
  let hasVerifier = 1;
}

def Trainopt_ReduceScatterOp : Trainopt_Op<"reduce_scatter", [
    DeclareOpInterfaceMethods<Trainopt_DifferentiableOpInterface>,
    DeclareOpInterfaceMethods<SymbolUserOpInterface>]> {
  let summary = "combines tensors across a group and keeps this rank's part";
  let description = [{
    Every rank of the group of `grid_axes` on grid `grid` contributes
    `inputs`; rank r of the group (its coordinate) receives, per input,
    part r along dim 0 of the elementwise `reduction` of all contributions:
    the all-reduce's result, split evenly along dim 0 over the group. Dim 0
    of each input is the group size times its result's. Several inputs of
    one element type form a bucket, one collective for all. With the
    runtime's deterministic order (the default) a part is bit for bit the
    same part of the all-reduce in rank order.

    ZeRO-2 and -3 combine the gradients with it: each rank keeps the part
    of the summed gradient that its shard of the optimizer updates.

    Its VJP (a sum only) is the `all_gather` of the parts' cotangents: each
    contribution affects every part, the part of rank r through rank r.

    ```mlir
    %g0, %g1 = trainopt.reduce_scatter sum %flat0, %flat1 on @mesh axes = [0]
        : tensor<7840xf32>, tensor<10xf32> -> tensor<3920xf32>, tensor<5xf32>
    ```
  }];
  let arguments = (ins Variadic<Trainopt_NumericTensor>:$inputs,
                       FlatSymbolRefAttr:$grid,
                       DenseI16ArrayAttr:$grid_axes,
                       Trainopt_CollectiveReductionAttr:$reduction);
  let results = (outs Variadic<Trainopt_NumericTensor>:$results);
  let assemblyFormat = [{
    $reduction $inputs `on` $grid `axes` `=` $grid_axes attr-dict `:`
    type($inputs) `->` type($results)
  }];
  let hasVerifier = 1;
}

def Trainopt_AllGatherOp : Trainopt_Op<"all_gather", [
    DeclareOpInterfaceMethods<Trainopt_DifferentiableOpInterface>,
    DeclareOpInterfaceMethods<SymbolUserOpInterface>,
    AllElementTypesMatch<["input", "result"]>]> {
  let summary = "concatenates the ranks' tensors along dim 0";
  let description = [{
    Every rank of the group of `grid_axes` contributes `input`; every rank
    receives the contributions concatenated along dim 0 in group-rank
    order, so dim 0 of the result is the group size times the input's.
    ZeRO gathers the parameter shards each rank updated with it.

    Its VJP is `rank_slice` of the cotangent: the result is replicated, so
    its cotangent is the same on every rank, and rank r's part is what its
    contribution affects (the same convention as `all_reduce`).

    ```mlir
    %p = trainopt.all_gather %chunk on @mesh axes = [0]
        : tensor<512xf32> -> tensor<1024xf32>
    ```
  }];
  let arguments = (ins Trainopt_Tensor:$input, FlatSymbolRefAttr:$grid,
                       DenseI16ArrayAttr:$grid_axes);
  let results = (outs Trainopt_Tensor:$result);
  let assemblyFormat = [{
    $input `on` $grid `axes` `=` $grid_axes attr-dict `:` type($input) `->`
    type($result)
  }];
  let hasVerifier = 1;
}

def Trainopt_BroadcastOp : Trainopt_Op<"broadcast", [
    DeclareOpInterfaceMethods<Trainopt_DifferentiableOpInterface>,
    DeclareOpInterfaceMethods<SymbolUserOpInterface>,
    AllTypesMatch<["input", "result"]>]> {
  let summary = "every rank of a group receives the root rank's tensor";
  let description = [{
    Every rank of the group of `grid_axes` passes `input`; every rank
    receives the input of the rank whose coordinate in the group is `root`
    (the others' inputs are not read). One value made the same on every
    rank: a value only one rank may compute (a random draw it alone made,
    data it alone read), or a check that replicas agree.

    Its VJP is the cotangents summed over the group, on the root rank only:
    the root's input reaches every rank's result, the others' inputs reach
    nothing. It is built from an `all_reduce sum` of the cotangent times a
    mask that `rank_slice` takes of a one-hot constant (1 at the root).

    ```mlir
    %w = trainopt.broadcast %w0 on @mesh axes = [0] root = 0
        : tensor<10x784xf32>
    ```
  }];
  let arguments = (ins Trainopt_Tensor:$input, FlatSymbolRefAttr:$grid,
                       DenseI16ArrayAttr:$grid_axes, I64Attr:$root);
  let results = (outs Trainopt_Tensor:$result);
  let assemblyFormat = [{
    $input `on` $grid `axes` `=` $grid_axes `root` `=` $root attr-dict `:`
    type($input)
  }];
  let hasVerifier = 1;
}

def Trainopt_RankSliceOp : Trainopt_Op<"rank_slice", [Pure,
    DeclareOpInterfaceMethods<Trainopt_DifferentiableOpInterface>,
    DeclareOpInterfaceMethods<SymbolUserOpInterface>,
    AllElementTypesMatch<["input", "result"]>]> {
  let summary = "this rank's equal part of a tensor along dim 0";
  let description = [{
    Dim 0 of `input` is the group size of `grid_axes` times the result's;
    rank r of the group (its coordinate) takes part r. No communication:
    the inverse of `trainopt.all_gather`, and how ZeRO takes a rank's
    shard of a replicated value. Its VJP is the `all_gather` of the parts'
    cotangents: the input is replicated, and each rank's part carries the
    cotangent of its own slice.

    ```mlir
    %chunk = trainopt.rank_slice %p on @mesh axes = [0]
        : tensor<1024xf32> -> tensor<512xf32>
    ```
  }];
  let arguments = (ins Trainopt_Tensor:$input, FlatSymbolRefAttr:$grid,
                       DenseI16ArrayAttr:$grid_axes);
  let results = (outs Trainopt_Tensor:$result);
  let assemblyFormat = [{
    $input `on` $grid `axes` `=` $grid_axes attr-dict `:` type($input) `->`
    type($result)
  }];
  let hasVerifier = 1;
}

def Trainopt_CopyToGroupOp : Trainopt_Op<"copy_to_group", [Pure,
    DeclareOpInterfaceMethods<Trainopt_DifferentiableOpInterface>,
    DeclareOpInterfaceMethods<SymbolUserOpInterface>,
    AllTypesMatch<["input", "result"]>]> {
  let summary = "enters a tensor-parallel region: identity, all-reduced VJP";
  let description = [{
    The identity on `input`, which every rank of the group of `grid_axes`
    holds whole (replicated), where the ranks go on to use it in different
    ways (each with its own part of the next layer's weights). Its VJP is
    the `all_reduce sum` of the cotangent over the group: each rank's
    cotangent is only its part's contribution. Megatron-LM's `f` operator;
    `trainopt.all_reduce` at the region's end is its `g`. No communication
    in the forward; lowering makes it the identity.

    ```mlir
    %x1 = trainopt.copy_to_group %x on @mesh axes = [1] : tensor<32x784xf32>
    ```
  }];
  let arguments = (ins Trainopt_Tensor:$input, FlatSymbolRefAttr:$grid,
                       DenseI16ArrayAttr:$grid_axes);
  let results = (outs Trainopt_Tensor:$result);
  let assemblyFormat = [{
    $input `on` $grid `axes` `=` $grid_axes attr-dict `:` type($input)
  }];
  let hasVerifier = 1;
}

def Trainopt_GradSyncOp : Trainopt_Op<"grad_sync", [Pure,
    AllTypesMatch<["gradient", "result"]>]> {
  let summary = "marks where a parameter's gradient is complete on one replica";
  let description = [{
    trainopt-transform-gradients places one per trainable parameter, on
    the gradient as it leaves accumulation and before unscaling, the norm
    and clipping: the point where data-parallel replicas must combine their
    gradients. trainopt-shard-step replaces it by that combination (a
    bucketed all-reduce and the mean over the replicas) or, without a mesh,
    by its operand; lowering treats a remaining one as the identity.

    ```mlir
    %s = trainopt.grad_sync %g {param = @fc.weight} : tensor<10x784xf32>
    ```
  }];
  let arguments = (ins Trainopt_Tensor:$gradient, FlatSymbolRefAttr:$param);
  let results = (outs Trainopt_Tensor:$result);
  let assemblyFormat = "$gradient attr-dict `:` type($gradient)";
}

def Trainopt_SendOp : Trainopt_Op<"send", [
    DeclareOpInterfaceMethods<SymbolUserOpInterface>]> {
  let summary = "sends a tensor to the rank `offset` places along one axis";
  let description = [{
    Point to point: this rank sends `input` to the rank whose coordinate
    along the single axis of `grid_axes` is this rank's plus `offset`
    (every other coordinate the same); that rank receives it with a
    `trainopt.recv` of the same type and the opposite offset. Messages
    between two ranks arrive in the order they were sent. Pipeline
    parallelism passes activations to the next stage (`offset = 1`) and
    their cotangents back (`offset = -1`) with it.

    The runtime copies the input when the send starts and completes it by
    the end of the entry point, so the send never blocks the ranks'
    schedules against each other. Not differentiated: the pipeline places
    sends and receives after autodiff, between the stages' forward and
    backward parts.

    ```mlir
    trainopt.send %act on @mesh axes = [0] offset = 1 : tensor<8x256xf32>
    ```
  }];
  let arguments = (ins Trainopt_Tensor:$input, FlatSymbolRefAttr:$grid,
                       DenseI16ArrayAttr:$grid_axes, I64Attr:$offset);
  let assemblyFormat = [{
    $input `on` $grid `axes` `=` $grid_axes `offset` `=` $offset attr-dict
    `:` type($input)
  }];
  let hasVerifier = 1;
}

def Trainopt_RecvOp : Trainopt_Op<"recv", [
    DeclareOpInterfaceMethods<SymbolUserOpInterface>]> {
  let summary = "receives a tensor from the rank `offset` places along one axis";
  let description = [{
    Point to point: receives the tensor that the rank whose coordinate along
    the single axis of `grid_axes` is this rank's plus `offset` sends with a
    `trainopt.send` of the same type and offset `-offset`. The runtime
    posts the receive where the op stands and waits for it before the
    result's first reader.

    ```mlir
    %act = trainopt.recv on @mesh axes = [0] offset = -1 : tensor<8x256xf32>
    ```
  }];
  let arguments = (ins FlatSymbolRefAttr:$grid, DenseI16ArrayAttr:$grid_axes,
                       I64Attr:$offset);
  let results = (outs Trainopt_Tensor:$result);
  let assemblyFormat = [{
    `on` $grid `axes` `=` $grid_axes `offset` `=` $offset attr-dict `:`
    type($result)
  }];
  let hasVerifier = 1;
}

#endif // TRAINOPT_DIALECT_TRAINOPT_IR_COLLECTIVEOPS_TD
