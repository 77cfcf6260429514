//===- NNOps.td - trainopt convolution, pooling, norms -----*- tablegen -*-===//

#ifndef TRAINOPT_DIALECT_TRAINOPT_IR_NNOPS_TD
#define TRAINOPT_DIALECT_TRAINOPT_IR_NNOPS_TD

include "trainopt/Dialect/Trainopt/IR/TrainoptDialect.td"
include "mlir/Interfaces/InferTypeOpInterface.td"
include "mlir/Interfaces/SideEffectInterfaces.td"
include "trainopt/Dialect/Trainopt/IR/TrainoptInterfaces.td"

def Trainopt_ConvOp : Trainopt_Op<"conv", [Pure, InferTypeOpAdaptor, DeclareOpInterfaceMethods<Trainopt_DifferentiableOpInterface>,
    AllElementTypesMatch<["input", "filter", "result"]>]> {
  let summary = "N-d grouped, strided, padded, dilated convolution (NCHW)";
  let description = [{
    `input` is `[N, C, d1..dn]`, `filter` is `[F, C/groups, k1..kn]`, the
    optional `bias` is `[F]`; the result is `[N, F, o1..on]` with
    `o = (d + pad_low + pad_high - dilation*(k-1) - 1) / stride + 1`.
    `padding` lists the low pads of every spatial dim, then the high pads
    (the ONNX `pads` order). Depthwise convolution is `groups = C`.

    ```mlir
    %y = trainopt.conv %x, %w, %b {strides = array<i64: 1, 1>,
        padding = array<i64: 1, 1, 1, 1>, dilations = array<i64: 1, 1>, groups = 1 : i64}
        : (tensor<8x3x32x32xf32>, tensor<16x3x3x3xf32>, tensor<16xf32>) -> tensor<8x16x32x32xf32>
    ```
  }];
  let arguments = (ins Trainopt_FloatTensor:$input, Trainopt_FloatTensor:$filter,
                       Optional<Trainopt_FloatTensor>:$bias,
                       DenseI64ArrayAttr:$strides, DenseI64ArrayAttr:$padding,
                       DenseI64ArrayAttr:$dilations,
                       DefaultValuedAttr<I64Attr, "1">:$groups);
  let results = (outs Trainopt_FloatTensor:$result);
  let assemblyFormat = "$input `,` $filter (`,` $bias^)? attr-dict `:` functional-type(operands, results)";
}

class Trainopt_PoolOp<string mnemonic, string what, dag extraArgs>
    : Trainopt_Op<mnemonic, [Pure, InferTypeOpAdaptor,
                             SameOperandsAndResultElementType,
                             DeclareOpInterfaceMethods<Trainopt_DifferentiableOpInterface>]> {
  let summary = what # " pooling over the spatial dims (NCHW)";
  let arguments = !con((ins Trainopt_FloatTensor:$input,
                            DenseI64ArrayAttr:$kernel_shape,
                            DenseI64ArrayAttr:$strides,
                            DenseI64ArrayAttr:$padding,
                            DenseI64ArrayAttr:$dilations), extraArgs);
  let results = (outs Trainopt_FloatTensor:$result);
  let assemblyFormat = "$input attr-dict `:` functional-type(operands, results)";
  let extraClassDefinition = [{
    ::llvm::LogicalResult $cppClass::inferReturnTypes(::mlir::MLIRContext *context,
        std::optional<::mlir::Location> location, Adaptor adaptor,
        ::llvm::SmallVectorImpl<::mlir::Type> &inferredReturnTypes) {
      return ::mlir::trainopt::inferPoolResult(location,
          ::llvm::cast<::mlir::RankedTensorType>(adaptor.getInput().getType()),
          adaptor.getKernelShape(), adaptor.getStrides(), adaptor.getPadding(),
          adaptor.getDilations(), inferredReturnTypes);
    }
  }];
}

def Trainopt_MaxPoolOp : Trainopt_PoolOp<"max_pool", "max", (ins)> {
  let description = [{
    Windows of `kernel_shape` (dilated) at `strides` over the input padded
    with -inf by `padding` (low pads then high pads). ONNX `ceil_mode` is
    expressed by the importer as extra high padding.

    ```mlir
    %y = trainopt.max_pool %x {kernel_shape = array<i64: 2, 2>, strides = array<i64: 2, 2>,
        padding = array<i64: 0, 0, 0, 0>, dilations = array<i64: 1, 1>}
        : (tensor<8x64x24x24xf32>) -> tensor<8x64x12x12xf32>
    ```
  }];
}

def Trainopt_AvgPoolOp : Trainopt_PoolOp<"avg_pool", "average",
    (ins DefaultValuedAttr<BoolAttr, "false">:$count_include_pad)> {
  let description = [{
    The mean of each window; with `count_include_pad = false` the divisor
    counts only elements inside the unpadded input.

    ```mlir
    %y = trainopt.avg_pool %x {kernel_shape = array<i64: 3, 3>, strides = array<i64: 1, 1>,
        padding = array<i64: 1, 1, 1, 1>, dilations = array<i64: 1, 1>}
        : (tensor<8x16x8x8xf32>) -> tensor<8x16x8x8xf32>
    ```
  }];
}

def Trainopt_BatchNormInferenceOp : Trainopt_Op<"batch_norm_inference",
    [Pure, DeclareOpInterfaceMethods<Trainopt_DifferentiableOpInterface>, AllTypesMatch<["x", "y"]>,
     AllTypesMatch<["scale", "bias", "mean", "variance"]>]> {
  let summary = "batch normalization with given statistics (NC...)";
  let description = [{
    `y = scale * (x - mean) / sqrt(variance + epsilon) + bias` per channel
    (dim 1).

    ```mlir
    %y = trainopt.batch_norm_inference %x, %s, %b, %m, %v {epsilon = 1.0e-5 : f64}
        : tensor<8x16x4x4xf32>, tensor<16xf32>
    ```
  }];
  let arguments = (ins Trainopt_FloatTensor:$x, Trainopt_FloatTensor:$scale,
                       Trainopt_FloatTensor:$bias, Trainopt_FloatTensor:$mean,
                       Trainopt_FloatTensor:$variance,
                       DefaultValuedAttr<F64Attr, "1e-5">:$epsilon);
  let results = (outs Trainopt_FloatTensor:$y);
  let assemblyFormat = [{
    $x `,` $scale `,` $bias `,` $mean `,` $variance attr-dict `:` type($x) `,` type($scale)
  }];
  let hasVerifier = 1;
}

def Trainopt_BatchNormTrainOp : Trainopt_Op<"batch_norm_train",
    [Pure, DeclareOpInterfaceMethods<Trainopt_DifferentiableOpInterface>, AllTypesMatch<["x", "y"]>,
     AllTypesMatch<["scale", "bias", "running_mean", "running_var",
                    "new_running_mean", "new_running_var"]>]> {
  let summary = "batch normalization with batch statistics and running-stat update";
  let description = [{
    Normalizes with the mean and biased variance of the batch over all dims
    but the channel (dim 1), and returns the updated running statistics
    `new = momentum * running + (1 - momentum) * batch` (the ONNX
    convention; PyTorch's `momentum` is `1 -` this one). With
    `unbiased_running_var` the variance folded into the running statistic is
    the unbiased one (PyTorch), otherwise the biased one (ONNX).

    ```mlir
    %y, %rm, %rv = trainopt.batch_norm_train %x, %s, %b, %m, %v
        {epsilon = 1.0e-5 : f64, momentum = 0.9 : f64} : tensor<8x16x4x4xf32>, tensor<16xf32>
    ```
  }];
  let arguments = (ins Trainopt_FloatTensor:$x, Trainopt_FloatTensor:$scale,
                       Trainopt_FloatTensor:$bias, Trainopt_FloatTensor:$running_mean,
                       Trainopt_FloatTensor:$running_var,
                       DefaultValuedAttr<F64Attr, "1e-5">:$epsilon,
                       DefaultValuedAttr<F64Attr, "0.9">:$momentum,
                       DefaultValuedAttr<BoolAttr, "false">:$unbiased_running_var);
  let results = (outs Trainopt_FloatTensor:$y, Trainopt_FloatTensor:$new_running_mean,
                      Trainopt_FloatTensor:$new_running_var);
  let assemblyFormat = [{
    $x `,` $scale `,` $bias `,` $running_mean `,` $running_var attr-dict `:` type($x) `,` type($scale)
  }];
  let hasVerifier = 1;
}

def Trainopt_LayerNormOp : Trainopt_Op<"layer_norm", [Pure, DeclareOpInterfaceMethods<Trainopt_DifferentiableOpInterface>,
    AllTypesMatch<["x", "y"]>]> {
  let summary = "layer normalization over the trailing dims from `axis`";
  let description = [{
    Normalizes over dims `[axis, rank)` with the biased variance, then scales
    by `scale` and adds the optional `bias`; both have the normalized shape.

    ```mlir
    %y = trainopt.layer_norm %x, %g, %b {axis = 2 : i64, epsilon = 1.0e-5 : f64}
        : (tensor<2x8x64xf32>, tensor<64xf32>, tensor<64xf32>) -> tensor<2x8x64xf32>
    ```
  }];
  let arguments = (ins Trainopt_FloatTensor:$x, Trainopt_FloatTensor:$scale,
                       Optional<Trainopt_FloatTensor>:$bias,
                       I64Attr:$axis, DefaultValuedAttr<F64Attr, "1e-5">:$epsilon);
  let results = (outs Trainopt_FloatTensor:$y);
  let assemblyFormat = "$x `,` $scale (`,` $bias^)? attr-dict `:` functional-type(operands, results)";
  let hasVerifier = 1;
}

class Trainopt_SoftmaxLikeOp<string mnemonic, string formula>
    : Trainopt_Op<mnemonic, [Pure, SameOperandsAndResultType,
                             DeclareOpInterfaceMethods<Trainopt_DifferentiableOpInterface>]> {
  let summary = formula # " along one axis";
  let description = "Computes `" # formula # "` along `axis` (in "
      # "`[0, rank)`), subtracting the maximum first for stability.\n\n"
      # "```mlir\n%p = trainopt." # mnemonic # " %x {axis = 1 : i64} : "
      # "tensor<32x10xf32>\n```";
  let arguments = (ins Trainopt_FloatTensor:$x, I64Attr:$axis);
  let results = (outs Trainopt_FloatTensor:$y);
  let assemblyFormat = "$x attr-dict `:` type($x)";
  let hasVerifier = 1;
}

def Trainopt_SoftmaxOp : Trainopt_SoftmaxLikeOp<"softmax",
                                                "exp(x) / sum(exp(x))">;
def Trainopt_LogSoftmaxOp : Trainopt_SoftmaxLikeOp<"log_softmax",
                                                   "x - log(sum(exp(x)))">;

def Trainopt_DropoutOp : Trainopt_Op<"dropout", [Pure, DeclareOpInterfaceMethods<Trainopt_DifferentiableOpInterface>,
    AllTypesMatch<["x", "y"]>, AllShapesMatch<["x", "mask"]>]> {
  let summary = "inverted dropout driven by an explicit seed";
  let description = [{
    Zeroes each element with probability `ratio` and scales the survivors by
    `1 / (1 - ratio)`; `mask` is true where the element was kept. The draw is
    a pure function of `seed` (a 0-d `i64`) and the element index, so the
    same seed gives the same mask on every backend and in the backward pass;
    the training step advances the seed every step.

    ```mlir
    %y, %mask = trainopt.dropout %x, %seed {ratio = 1.0e-1 : f64}
        : tensor<8x64xf32>, tensor<i64> -> tensor<8x64xi1>
    ```
  }];
  let arguments = (ins Trainopt_FloatTensor:$x, Trainopt_SeedTensor:$seed,
                       F64Attr:$ratio);
  let results = (outs Trainopt_FloatTensor:$y, Trainopt_BoolTensor:$mask);
  let assemblyFormat = "$x `,` $seed attr-dict `:` type($x) `,` type($seed) `->` type($mask)";
  let hasVerifier = 1;
}

def Trainopt_RandomOp : Trainopt_Op<"random", [Pure]> {
  let summary = "random tensor drawn from an explicit seed";
  let description = [{
    Draws every element from `distribution`: `uniform` in [`a`, `b`), or
    `normal` with mean `a` and standard deviation `b`. Like
    `trainopt.dropout`, the draw is a pure function of `seed` (a 0-d `i64`)
    and the element index (include/trainopt/Support/Random.h), so every
    backend and the evaluator agree, and the training step advances the seed
    every step (a resumed run draws the same values). A normal element `i`
    is Box-Muller on the uniform draws `2i` and `2i + 1`. The draw is made in
    f64 and rounded to the result type. ONNX RandomUniform(Like),
    RandomNormal(Like) and Bernoulli import to it.

    ```mlir
    %u = trainopt.random %seed {distribution = #trainopt.distribution<uniform>,
        a = 0.0 : f64, b = 1.0 : f64} : tensor<i64> -> tensor<8x1x1x1xf32>
    ```
  }];
  let arguments = (ins Trainopt_SeedTensor:$seed,
                       Trainopt_DistributionAttr:$distribution, F64Attr:$a,
                       F64Attr:$b);
  let results = (outs Trainopt_FloatTensor:$result);
  let assemblyFormat = "$seed attr-dict `:` type($seed) `->` type($result)";
  let hasVerifier = 1;
}

//===----------------------------------------------------------------------===//
// Backward ops (built by the VJPs of conv and pooling)
//===----------------------------------------------------------------------===//

class Trainopt_ConvGradOp<string mnemonic, string what, list<Trait> traits = []>
    : Trainopt_Op<mnemonic,
    !listconcat([Pure, AllElementTypesMatch<["lhs", "rhs", "result"]>], traits)> {
  let summary = "gradient of trainopt.conv with respect to its " # what;
  let arguments = (ins Trainopt_FloatTensor:$lhs, Trainopt_FloatTensor:$rhs,
                       DenseI64ArrayAttr:$strides, DenseI64ArrayAttr:$padding,
                       DenseI64ArrayAttr:$dilations,
                       DefaultValuedAttr<I64Attr, "1">:$groups);
  let results = (outs Trainopt_FloatTensor:$result);
  let assemblyFormat = "$lhs `,` $rhs attr-dict `:` functional-type(operands, results)";
  let hasVerifier = 1;
}

def Trainopt_ConvGradInputOp : Trainopt_ConvGradOp<"conv_grad_input", "input",
    [DeclareOpInterfaceMethods<Trainopt_DifferentiableOpInterface>]> {
  let description = [{
    Given the filter (`lhs`, `[F, C/groups, k...]`) and the output cotangent
    (`rhs`, `[N, F, o...]`) of a `trainopt.conv` with these attributes,
    computes the input cotangent (the result, `[N, C, d...]`, whose shape
    fixes the input size): a transposed convolution. ONNX `ConvTranspose`
    imports to it, so it is differentiable: bilinear, its VJP is a `conv`
    (for `rhs`) and a `conv_grad_filter` (for `lhs`).

    ```mlir
    %dx = trainopt.conv_grad_input %w, %dy {strides = array<i64: 1, 1>,
        padding = array<i64: 0, 0, 0, 0>, dilations = array<i64: 1, 1>}
        : (tensor<16x3x3x3xf32>, tensor<8x16x30x30xf32>) -> tensor<8x3x32x32xf32>
    ```
  }];
}

def Trainopt_ConvGradFilterOp : Trainopt_ConvGradOp<"conv_grad_filter", "filter"> {
  let description = [{
    Given the input (`lhs`, `[N, C, d...]`) and the output cotangent (`rhs`,
    `[N, F, o...]`) of a `trainopt.conv`, computes the filter cotangent (the
    result, `[F, C/groups, k...]`).

    ```mlir
    %dw = trainopt.conv_grad_filter %x, %dy {strides = array<i64: 1, 1>,
        padding = array<i64: 0, 0, 0, 0>, dilations = array<i64: 1, 1>}
        : (tensor<8x3x32x32xf32>, tensor<8x16x30x30xf32>) -> tensor<16x3x3x3xf32>
    ```
  }];
}

def Trainopt_MaxPoolGradOp : Trainopt_Op<"max_pool_grad", [Pure,
    AllTypesMatch<["input", "result"]>]> {
  let summary = "gradient of trainopt.max_pool";
  let description = [{
    Routes each element of the output cotangent `grad` to the position of
    its window's maximum in `input` (the first one in row-major window order
    on ties, as PyTorch does), summing where windows overlap.

    ```mlir
    %dx = trainopt.max_pool_grad %x, %dy {kernel_shape = array<i64: 2, 2>,
        strides = array<i64: 2, 2>, padding = array<i64: 0, 0, 0, 0>, dilations = array<i64: 1, 1>}
        : (tensor<8x64x24x24xf32>, tensor<8x64x12x12xf32>) -> tensor<8x64x24x24xf32>
    ```
  }];
  let arguments = (ins Trainopt_FloatTensor:$input, Trainopt_FloatTensor:$grad,
                       DenseI64ArrayAttr:$kernel_shape, DenseI64ArrayAttr:$strides,
                       DenseI64ArrayAttr:$padding, DenseI64ArrayAttr:$dilations);
  let results = (outs Trainopt_FloatTensor:$result);
  let assemblyFormat = "$input `,` $grad attr-dict `:` functional-type(operands, results)";
}

def Trainopt_AvgPoolGradOp : Trainopt_Op<"avg_pool_grad", [Pure,
    SameOperandsAndResultElementType]> {
  let summary = "gradient of trainopt.avg_pool";
  let description = [{
    Spreads each element of the output cotangent evenly over its window
    (with the divisor `trainopt.avg_pool` used); the result type is the
    pooled input's.

    ```mlir
    %dx = trainopt.avg_pool_grad %dy {kernel_shape = array<i64: 2, 2>,
        strides = array<i64: 2, 2>, padding = array<i64: 0, 0, 0, 0>, dilations = array<i64: 1, 1>}
        : (tensor<8x16x4x4xf32>) -> tensor<8x16x8x8xf32>
    ```
  }];
  let arguments = (ins Trainopt_FloatTensor:$grad, DenseI64ArrayAttr:$kernel_shape,
                       DenseI64ArrayAttr:$strides, DenseI64ArrayAttr:$padding,
                       DenseI64ArrayAttr:$dilations,
                       DefaultValuedAttr<BoolAttr, "false">:$count_include_pad);
  let results = (outs Trainopt_FloatTensor:$result);
  let assemblyFormat = "$grad attr-dict `:` functional-type(operands, results)";
}

#endif // TRAINOPT_DIALECT_TRAINOPT_IR_NNOPS_TD
