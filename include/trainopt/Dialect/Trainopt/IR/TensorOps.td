//===- TensorOps.td - trainopt shape and data-movement ops -*- tablegen -*-===//

#ifndef TRAINOPT_DIALECT_TRAINOPT_IR_TENSOROPS_TD
#define TRAINOPT_DIALECT_TRAINOPT_IR_TENSOROPS_TD

include "trainopt/Dialect/Trainopt/IR/TrainoptDialect.td"
include "mlir/IR/SymbolInterfaces.td"
include "mlir/Interfaces/InferTypeOpInterface.td"
include "mlir/Interfaces/SideEffectInterfaces.td"
include "trainopt/Dialect/Trainopt/IR/TrainoptInterfaces.td"

def Trainopt_ParameterOp : Trainopt_Op<"parameter", [Symbol]> {
  let summary = "declares a model parameter: its shape, initial value, trainability";
  let description = [{
    A parameter of the model. Functions bind it through an argument carrying
    `{trainopt.param = @name}` of the same type. `trainable` parameters get
    gradients and optimizer updates; the others are frozen. The initial
    value, when present, has the declared type (an ONNX initializer).

    ```mlir
    trainopt.parameter @conv1.weight trainable : tensor<32x1x3x3xf32> = dense_resource<conv1.weight>
    trainopt.parameter @embedding frozen : tensor<100x16xf32>
    ```
  }];
  let arguments = (ins SymbolNameAttr:$sym_name,
                       TypeAttrOf<Trainopt_Tensor>:$type,
                       UnitAttr:$trainable,
                       OptionalAttr<ElementsAttr>:$initial_value);
  let assemblyFormat = [{
    $sym_name custom<Trainability>($trainable) `:` $type
    (`=` $initial_value^)? attr-dict
  }];
  let hasVerifier = 1;
  let extraClassDeclaration = [{
    ::mlir::RankedTensorType getTensorType() {
      return ::llvm::cast<::mlir::RankedTensorType>(getType());
    }
  }];
}

def Trainopt_AssignOp : Trainopt_Op<"assign", [
    MemoryEffects<[MemWrite]>, AllTypesMatch<["state", "value"]>]> {
  let summary = "sets a frozen parameter (model state) for the next step";
  let description = [{
    Model state that the model itself updates: observers' running ranges,
    pruning masks, counters. `state` is an argument of the enclosing
    function bound to a frozen parameter (`{trainopt.param = @name}`, not
    `trainable`); `value` becomes its value from the next training step on.
    Reads of `state` in the same function see the old value.

    trainopt-build-train-step makes each `assign` a result of
    `@train_step` that updates the state in place, as BatchNorm's running
    statistics are; trainopt-build-eval-step drops it (evaluation changes
    no state), and so does the reference evaluator when it runs the model
    function itself. At most one `assign` per state.

    ```mlir
    trainopt.assign %running_max, %new_max : tensor<f32>
    ```
  }];
  let arguments = (ins Trainopt_Tensor:$state, Trainopt_Tensor:$value);
  let assemblyFormat = "$state `,` $value attr-dict `:` type($state)";
  let hasVerifier = 1;
}

def Trainopt_ConstantOp : Trainopt_Op<"constant",
    [ConstantLike, Pure, AllTypesMatch<["value", "result"]>]> {
  let summary = "a tensor constant";
  let description = [{
    ```mlir
    %c = trainopt.constant dense<[1, 784]> : tensor<2xi64>
    ```
  }];
  let arguments = (ins ElementsAttr:$value);
  let results = (outs Trainopt_Tensor:$result);
  let assemblyFormat = "attr-dict $value";
  let hasFolder = 1;
  let builders = [OpBuilder<(ins "::mlir::ElementsAttr":$value), [{
    build($_builder, $_state, value.getType(), value);
  }]>];
}

def Trainopt_ReshapeOp : Trainopt_Op<"reshape", [Pure, DeclareOpInterfaceMethods<Trainopt_DifferentiableOpInterface>,
    SameOperandsAndResultElementType]> {
  let summary = "reinterprets the elements in row-major order with a new shape";
  let description = [{
    Flatten, Squeeze and Unsqueeze are reshapes too. Element counts match.

    ```mlir
    %y = trainopt.reshape %x : tensor<8x64x12x12xf32> -> tensor<8x9216xf32>
    ```
  }];
  let arguments = (ins Trainopt_Tensor:$x);
  let results = (outs Trainopt_Tensor:$result);
  let assemblyFormat = "$x attr-dict `:` type($x) `->` type($result)";
  let hasVerifier = 1;
  let hasFolder = 1;
}

def Trainopt_TransposeOp : Trainopt_Op<"transpose", [Pure, DeclareOpInterfaceMethods<Trainopt_DifferentiableOpInterface>, InferTypeOpAdaptor,
    SameOperandsAndResultElementType]> {
  let summary = "permutes dimensions";
  let description = [{
    Result dim `i` is input dim `permutation[i]`.

    ```mlir
    %y = trainopt.transpose %x {permutation = array<i64: 0, 2, 1, 3>}
        : (tensor<2x8x4x16xf32>) -> tensor<2x4x8x16xf32>
    ```
  }];
  let arguments = (ins Trainopt_Tensor:$x, DenseI64ArrayAttr:$permutation);
  let results = (outs Trainopt_Tensor:$result);
  let assemblyFormat = "$x attr-dict `:` functional-type(operands, results)";
  let hasFolder = 1;
}

def Trainopt_BroadcastToOp : Trainopt_Op<"broadcast_to", [Pure, DeclareOpInterfaceMethods<Trainopt_DifferentiableOpInterface>,
    SameOperandsAndResultElementType]> {
  let summary = "broadcasts to a larger shape (NumPy rules)";
  let description = [{
    The operand's shape broadcasts to the result shape: trailing dims align,
    each operand dim is 1 or equal.

    ```mlir
    %y = trainopt.broadcast_to %x : tensor<1x8xf32> -> tensor<4x8xf32>
    ```
  }];
  let arguments = (ins Trainopt_Tensor:$x);
  let results = (outs Trainopt_Tensor:$result);
  let assemblyFormat = "$x attr-dict `:` type($x) `->` type($result)";
  let hasVerifier = 1;
  let hasFolder = 1;
}

def Trainopt_SliceOp : Trainopt_Op<"slice", [Pure, DeclareOpInterfaceMethods<Trainopt_DifferentiableOpInterface>, InferTypeOpAdaptor,
    SameOperandsAndResultElementType]> {
  let summary = "strided static slice";
  let description = [{
    Takes `start[i], start[i] + stride[i], ...` below `limit[i]` in each dim;
    `0 <= start <= limit <= dim` and `stride >= 1`.

    ```mlir
    %y = trainopt.slice %x {start = array<i64: 0, 64>, limit = array<i64: 8, 128>,
        stride = array<i64: 1, 1>} : (tensor<8x192xf32>) -> tensor<8x64xf32>
    ```
  }];
  let arguments = (ins Trainopt_Tensor:$x, DenseI64ArrayAttr:$start,
                       DenseI64ArrayAttr:$limit, DenseI64ArrayAttr:$stride);
  let results = (outs Trainopt_Tensor:$result);
  let assemblyFormat = "$x attr-dict `:` functional-type(operands, results)";
  let hasFolder = 1;
}

def Trainopt_ConcatOp : Trainopt_Op<"concat", [Pure, DeclareOpInterfaceMethods<Trainopt_DifferentiableOpInterface>, InferTypeOpAdaptor,
    SameOperandsAndResultElementType]> {
  let summary = "concatenates tensors along one axis";
  let description = [{
    ```mlir
    %y = trainopt.concat %a, %b {axis = 1 : i64}
        : (tensor<2x3xf32>, tensor<2x5xf32>) -> tensor<2x8xf32>
    ```
  }];
  let arguments = (ins Variadic<Trainopt_Tensor>:$inputs, I64Attr:$axis);
  let results = (outs Trainopt_Tensor:$result);
  let assemblyFormat = "$inputs attr-dict `:` functional-type(operands, results)";
  let hasFolder = 1;
}

def Trainopt_SplitOp : Trainopt_Op<"split", [Pure, DeclareOpInterfaceMethods<Trainopt_DifferentiableOpInterface>, InferTypeOpAdaptor]> {
  let summary = "splits a tensor along one axis into pieces of given sizes";
  let description = [{
    `sizes` sum to the dim size of `axis`.

    ```mlir
    %q, %k, %v = trainopt.split %qkv {axis = 2 : i64, sizes = array<i64: 64, 64, 64>}
        : (tensor<2x8x192xf32>) -> (tensor<2x8x64xf32>, tensor<2x8x64xf32>, tensor<2x8x64xf32>)
    ```
  }];
  let arguments = (ins Trainopt_Tensor:$x, I64Attr:$axis, DenseI64ArrayAttr:$sizes);
  let results = (outs Variadic<Trainopt_Tensor>:$results);
  let assemblyFormat = "$x attr-dict `:` functional-type(operands, results)";
}

def Trainopt_GatherOp : Trainopt_Op<"gather", [Pure, DeclareOpInterfaceMethods<Trainopt_DifferentiableOpInterface>, InferTypeOpAdaptor,
    AllElementTypesMatch<["data", "result"]>]> {
  let summary = "gathers slices of `data` along `axis` at `indices`";
  let description = [{
    The result shape is `data.shape[:axis] + indices.shape +
    data.shape[axis+1:]`. Negative indices count from the end; an index out
    of `[-dim, dim)` is undefined behaviour at run time. Embedding lookup is
    `gather` with `axis = 0`.

    ```mlir
    %e = trainopt.gather %table, %ids {axis = 0 : i64}
        : (tensor<1000x64xf32>, tensor<2x8xi64>) -> tensor<2x8x64xf32>
    ```
  }];
  let arguments = (ins Trainopt_Tensor:$data, Trainopt_IndexTensor:$indices,
                       I64Attr:$axis);
  let results = (outs Trainopt_Tensor:$result);
  let assemblyFormat = "$data `,` $indices attr-dict `:` functional-type(operands, results)";
  let hasFolder = 1;
}

def Trainopt_TriluOp : Trainopt_Op<"trilu", [Pure, DeclareOpInterfaceMethods<Trainopt_DifferentiableOpInterface>, SameOperandsAndResultType]> {
  let summary = "keeps the lower or upper triangle of the last two dims";
  let description = [{
    With `upper = false` keeps elements with `col - row <= diagonal` and zeroes
    the rest (lower triangle, `torch.tril`); with `upper = true` keeps
    `col - row >= diagonal` (`torch.triu`).

    ```mlir
    %m = trainopt.trilu %ones {upper = false, diagonal = 0 : i64} : tensor<8x8xf32>
    ```
  }];
  let arguments = (ins Trainopt_Tensor:$x, DefaultValuedAttr<BoolAttr, "false">:$upper,
                       DefaultValuedAttr<I64Attr, "0">:$diagonal);
  let results = (outs Trainopt_Tensor:$result);
  let assemblyFormat = "$x attr-dict `:` type($x)";
  let hasVerifier = 1;
  let hasFolder = 1;
}

def Trainopt_PadOp : Trainopt_Op<"pad", [Pure, DeclareOpInterfaceMethods<Trainopt_DifferentiableOpInterface>, InferTypeOpAdaptor,
    SameOperandsAndResultElementType]> {
  let summary = "pads with a constant value";
  let description = [{
    `low` and `high` give the (non-negative) padding of every dim before and
    after it; the optional `interior` inserts that many padding elements
    between neighbouring elements of each dim (the gradient of a strided
    slice is a pad with interior padding).

    ```mlir
    %y = trainopt.pad %x {low = array<i64: 0, 0, 1, 1>, high = array<i64: 0, 0, 1, 1>,
        value = 0.0 : f64} : (tensor<1x3x4x4xf32>) -> tensor<1x3x6x6xf32>
    %z = trainopt.pad %v {low = array<i64: 1>, high = array<i64: 0>,
        interior = array<i64: 1>} : (tensor<3xf32>) -> tensor<6xf32>
    ```
  }];
  let arguments = (ins Trainopt_Tensor:$x, DenseI64ArrayAttr:$low,
                       DenseI64ArrayAttr:$high, DefaultValuedAttr<F64Attr, "0.0">:$value,
                       OptionalAttr<DenseI64ArrayAttr>:$interior);
  let results = (outs Trainopt_Tensor:$result);
  let assemblyFormat = "$x attr-dict `:` functional-type(operands, results)";
}

def Trainopt_ScatterAddOp : Trainopt_Op<"scatter_add", [Pure,
    DeclareOpInterfaceMethods<Trainopt_DifferentiableOpInterface>,
    AllElementTypesMatch<["updates", "result"]>]> {
  let summary = "adds slices into a zero tensor at indices along an axis";
  let description = [{
    The transpose of `trainopt.gather`: the result (of the gathered data's
    shape) is zero except that for every index position `p`,
    `updates[..., p, ...]` is added to the slice at `indices[p]` along
    `axis`; repeated indices accumulate. Negative indices count from the end.
    ONNX `ScatterElements` and `ScatterND` import to it; its VJP for
    `updates` is the `gather` at the same indices.

    ```mlir
    %dtable = trainopt.scatter_add %ids, %de {axis = 0 : i64}
        : (tensor<2x8xi64>, tensor<2x8x64xf32>) -> tensor<1000x64xf32>
    ```
  }];
  let arguments = (ins Trainopt_IndexTensor:$indices, Trainopt_Tensor:$updates,
                       I64Attr:$axis);
  let results = (outs Trainopt_Tensor:$result);
  let assemblyFormat = "$indices `,` $updates attr-dict `:` functional-type(operands, results)";
  let hasVerifier = 1;
}

#endif // TRAINOPT_DIALECT_TRAINOPT_IR_TENSOROPS_TD
