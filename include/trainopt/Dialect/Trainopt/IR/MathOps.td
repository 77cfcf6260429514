//===- MathOps.td - trainopt elementwise, reduction, matmul -*- tablegen -*-===//

#ifndef TRAINOPT_DIALECT_TRAINOPT_IR_MATHOPS_TD
#define TRAINOPT_DIALECT_TRAINOPT_IR_MATHOPS_TD

include "trainopt/Dialect/Trainopt/IR/TrainoptDialect.td"
include "trainopt/Dialect/Trainopt/IR/TrainoptAttrs.td"
include "mlir/Interfaces/InferTypeOpInterface.td"
include "mlir/Interfaces/SideEffectInterfaces.td"
include "trainopt/Dialect/Trainopt/IR/TrainoptInterfaces.td"

//===----------------------------------------------------------------------===//
// Unary elementwise
//===----------------------------------------------------------------------===//

class Trainopt_UnaryOp<string mnemonic, Type type, string formula,
                       list<Trait> traits = [DeclareOpInterfaceMethods<Trainopt_DifferentiableOpInterface>]>
    : Trainopt_Op<mnemonic, !listconcat(traits,
          [Pure, Elementwise, SameOperandsAndResultType])> {
  let summary = "elementwise " # formula;
  let description = "Computes `" # formula # "` for every element of `x`.\n\n"
      # "```mlir\n%y = trainopt." # mnemonic # " %x : tensor<4x8xf32>\n```";
  let arguments = (ins type:$x);
  let results = (outs type:$y);
  let assemblyFormat = "$x attr-dict `:` type($x)";
}

def Trainopt_NegOp : Trainopt_UnaryOp<"neg", Trainopt_SignedTensor, "-x"> {
  let hasFolder = 1;
}
def Trainopt_AbsOp : Trainopt_UnaryOp<"abs", Trainopt_SignedTensor, "|x|">;
def Trainopt_ExpOp : Trainopt_UnaryOp<"exp", Trainopt_FloatTensor, "e^x">;
def Trainopt_LogOp : Trainopt_UnaryOp<"log", Trainopt_FloatTensor, "ln(x)">;
def Trainopt_SqrtOp : Trainopt_UnaryOp<"sqrt", Trainopt_FloatTensor, "sqrt(x)">;
def Trainopt_RsqrtOp : Trainopt_UnaryOp<"rsqrt", Trainopt_FloatTensor,
                                        "1/sqrt(x)">;
def Trainopt_ReciprocalOp : Trainopt_UnaryOp<"reciprocal", Trainopt_FloatTensor,
                                             "1/x">;
def Trainopt_TanhOp : Trainopt_UnaryOp<"tanh", Trainopt_FloatTensor, "tanh(x)">;
def Trainopt_SigmoidOp : Trainopt_UnaryOp<"sigmoid", Trainopt_FloatTensor,
                                          "1/(1+e^-x)">;
def Trainopt_ReluOp : Trainopt_UnaryOp<"relu", Trainopt_SignedTensor,
                                       "max(x, 0)">;
def Trainopt_ErfOp : Trainopt_UnaryOp<"erf", Trainopt_FloatTensor, "erf(x)">;
def Trainopt_SinOp : Trainopt_UnaryOp<"sin", Trainopt_FloatTensor, "sin(x)">;
def Trainopt_CosOp : Trainopt_UnaryOp<"cos", Trainopt_FloatTensor, "cos(x)">;
def Trainopt_TanOp : Trainopt_UnaryOp<"tan", Trainopt_FloatTensor, "tan(x)">;
def Trainopt_AsinOp : Trainopt_UnaryOp<"asin", Trainopt_FloatTensor, "asin(x)">;
def Trainopt_AcosOp : Trainopt_UnaryOp<"acos", Trainopt_FloatTensor, "acos(x)">;
def Trainopt_AtanOp : Trainopt_UnaryOp<"atan", Trainopt_FloatTensor, "atan(x)">;
def Trainopt_SinhOp : Trainopt_UnaryOp<"sinh", Trainopt_FloatTensor, "sinh(x)">;
def Trainopt_CoshOp : Trainopt_UnaryOp<"cosh", Trainopt_FloatTensor, "cosh(x)">;
// Floor and ceil are piecewise constant: their VJP gives no gradient (zero,
// as torch.floor's backward), so a model may round on a path to the loss.
def Trainopt_FloorOp : Trainopt_UnaryOp<"floor", Trainopt_FloatTensor,
                                        "floor(x)">;
def Trainopt_CeilOp : Trainopt_UnaryOp<"ceil", Trainopt_FloatTensor, "ceil(x)">;
def Trainopt_NotOp : Trainopt_UnaryOp<"not", Trainopt_BoolTensor,
                                      "logical not of x", []> {
  let hasFolder = 1;
}

def Trainopt_GeluOp : Trainopt_Op<"gelu",
    [Pure, Elementwise, SameOperandsAndResultType, DeclareOpInterfaceMethods<Trainopt_DifferentiableOpInterface>]> {
  let summary = "Gaussian error linear unit, exact (erf) or tanh form";
  let description = [{
    `approximation = none` computes `0.5 * x * (1 + erf(x / sqrt(2)))`;
    `approximation = tanh` computes
    `0.5 * x * (1 + tanh(sqrt(2/pi) * (x + 0.044715 * x^3)))`, as PyTorch's
    `gelu(approximate="tanh")` and ONNX `Gelu` do.

    ```mlir
    %y = trainopt.gelu %x approximation = tanh : tensor<8x64xf32>
    ```
  }];
  let arguments = (ins Trainopt_FloatTensor:$x,
      DefaultValuedAttr<Trainopt_GeluApproximationAttr,
                        "GeluApproximation::none">:$approximation);
  let results = (outs Trainopt_FloatTensor:$y);
  let assemblyFormat = "$x (`approximation` `=` `` $approximation^)? attr-dict `:` type($x)";
}

def Trainopt_ClipOp : Trainopt_Op<"clip",
    [Pure, Elementwise, SameOperandsAndResultType, DeclareOpInterfaceMethods<Trainopt_DifferentiableOpInterface>]> {
  let summary = "clamps every element to [min, max]";
  let description = [{
    Either bound may be absent. ReLU6 is `clip` with `min = 0.0, max = 6.0`.

    ```mlir
    %y = trainopt.clip %x {min = 0.0 : f64, max = 6.0 : f64} : tensor<8x32xf32>
    ```
  }];
  let arguments = (ins Trainopt_NumericTensor:$x, OptionalAttr<F64Attr>:$min,
                       OptionalAttr<F64Attr>:$max);
  let results = (outs Trainopt_NumericTensor:$y);
  let assemblyFormat = "$x attr-dict `:` type($x)";
  let hasVerifier = 1;
}

def Trainopt_FakeQuantOp : Trainopt_Op<"fake_quant",
    [Pure, DeclareOpInterfaceMethods<Trainopt_DifferentiableOpInterface>,
     AllTypesMatch<["x", "y"]>,
     AllElementTypesMatch<["x", "scale", "zero_point"]>]> {
  let summary = "rounds to an integer grid and back (quantization-aware training)";
  let description = [{
    Affine fake quantization, as PyTorch's `fake_quantize_per_tensor_affine`
    and `fake_quantize_per_channel_affine`: with `s = scale` and `z =
    zero_point` (broadcast to `x`'s shape, NumPy style: a 0-d pair per
    tensor, or a pair per channel with 1 on every other dim),

        q = clamp(round_half_even(x * (1 / s)) + z, quant_min, quant_max)
        y = (q - z) * s

    `zero_point` holds integers in `x`'s element type; it is added after
    rounding, as PyTorch's kernels add it (`z + nearbyint(x * inv_scale)`). int8 is
    `quant_min = -128, quant_max = 127` (symmetric: z = 0), uint8 `0, 255`,
    int4 `-8, 7`.

    Its VJP is the straight-through estimator clipped to the range, as
    `torch.ao.quantization.FakeQuantize`: the cotangent passes where
    `round_half_even(x * (1 / s)) + z` lies in `[quant_min, quant_max]`
    and is 0 elsewhere. `scale` and `zero_point` get no cotangent: they
    come from observers, not from the loss.

    ```mlir
    %y = trainopt.fake_quant %w, %s, %z {quant_min = -128 : i64, quant_max = 127 : i64}
        : (tensor<16x8xf32>, tensor<16x1xf32>, tensor<16x1xf32>) -> tensor<16x8xf32>
    ```
  }];
  let arguments = (ins Trainopt_FloatTensor:$x, Trainopt_FloatTensor:$scale,
                       Trainopt_FloatTensor:$zero_point, I64Attr:$quant_min,
                       I64Attr:$quant_max);
  let results = (outs Trainopt_FloatTensor:$y);
  let assemblyFormat = [{
    $x `,` $scale `,` $zero_point attr-dict `:` functional-type(operands, results)
  }];
  let hasVerifier = 1;
}

//===----------------------------------------------------------------------===//
// Binary elementwise with NumPy broadcasting
//===----------------------------------------------------------------------===//

class Trainopt_BroadcastOp<string mnemonic, list<Trait> traits = []>
    : Trainopt_Op<mnemonic, !listconcat(traits,
          [Pure, InferTypeOpAdaptor])> {
  let assemblyFormat = [{
    $lhs `,` $rhs attr-dict `:` functional-type(operands, results)
  }];
  // The result element type: the operands' (arithmetic) or i1 (predicates).
  code resultElementType =
      "::llvm::cast<::mlir::ShapedType>(adaptor.getLhs().getType()).getElementType()";
  let extraClassDefinition = [{
    ::llvm::LogicalResult $cppClass::inferReturnTypes(::mlir::MLIRContext *context,
        std::optional<::mlir::Location> location, Adaptor adaptor,
        ::llvm::SmallVectorImpl<::mlir::Type> &inferredReturnTypes) {
      return ::mlir::trainopt::inferBroadcastResult(location,
          {adaptor.getLhs().getType(), adaptor.getRhs().getType()},
          }] # resultElementType # [{, inferredReturnTypes);
    }
  }];
}

class Trainopt_ArithOp<string mnemonic, Type type, string formula>
    : Trainopt_BroadcastOp<mnemonic, [SameOperandsElementType, DeclareOpInterfaceMethods<Trainopt_DifferentiableOpInterface>]> {
  let summary = "elementwise " # formula # " with broadcasting";
  let description = "Computes `" # formula # "` elementwise after broadcasting "
      # "both operands to a common shape (NumPy rules).\n\n"
      # "```mlir\n%z = trainopt." # mnemonic # " %a, %b : "
      # "(tensor<4x8xf32>, tensor<8xf32>) -> tensor<4x8xf32>\n```";
  let arguments = (ins type:$lhs, type:$rhs);
  let results = (outs type:$result);
  let hasFolder = 1;
}

def Trainopt_AddOp : Trainopt_ArithOp<"add", Trainopt_NumericTensor, "lhs + rhs">;
def Trainopt_SubOp : Trainopt_ArithOp<"sub", Trainopt_NumericTensor, "lhs - rhs">;
def Trainopt_MulOp : Trainopt_ArithOp<"mul", Trainopt_NumericTensor, "lhs * rhs">;
def Trainopt_DivOp : Trainopt_ArithOp<"div", Trainopt_NumericTensor, "lhs / rhs">;
def Trainopt_PowOp : Trainopt_ArithOp<"pow", Trainopt_NumericTensor, "lhs ^ rhs">;
def Trainopt_MaxOp : Trainopt_ArithOp<"max", Trainopt_NumericTensor,
                                      "max(lhs, rhs)">;
def Trainopt_MinOp : Trainopt_ArithOp<"min", Trainopt_NumericTensor,
                                      "min(lhs, rhs)">;

class Trainopt_CompareOp<string mnemonic, string formula>
    : Trainopt_BroadcastOp<mnemonic, [SameOperandsElementType]> {
  let summary = "elementwise comparison " # formula # " with broadcasting";
  let description = "Yields `i1` true where `" # formula # "` holds.\n\n"
      # "```mlir\n%m = trainopt." # mnemonic # " %a, %b : "
      # "(tensor<4xi64>, tensor<i64>) -> tensor<4xi1>\n```";
  let arguments = (ins Trainopt_Tensor:$lhs, Trainopt_Tensor:$rhs);
  let results = (outs Trainopt_BoolTensor:$result);
  let resultElementType = "::mlir::IntegerType::get(context, 1)";
  let hasFolder = 1;
}

def Trainopt_EqualOp : Trainopt_CompareOp<"equal", "lhs == rhs">;
def Trainopt_LessOp : Trainopt_CompareOp<"less", "lhs < rhs">;
def Trainopt_LessEqualOp : Trainopt_CompareOp<"less_equal", "lhs <= rhs">;
def Trainopt_GreaterOp : Trainopt_CompareOp<"greater", "lhs > rhs">;
def Trainopt_GreaterEqualOp : Trainopt_CompareOp<"greater_equal", "lhs >= rhs">;

class Trainopt_LogicalOp<string mnemonic, string formula>
    : Trainopt_BroadcastOp<mnemonic> {
  let summary = "elementwise logical " # formula # " with broadcasting";
  let description = "```mlir\n%m = trainopt." # mnemonic # " %a, %b : "
      # "(tensor<4xi1>, tensor<4xi1>) -> tensor<4xi1>\n```";
  let arguments = (ins Trainopt_BoolTensor:$lhs, Trainopt_BoolTensor:$rhs);
  let results = (outs Trainopt_BoolTensor:$result);
  let resultElementType = "::mlir::IntegerType::get(context, 1)";
  let hasFolder = 1;
}

def Trainopt_AndOp : Trainopt_LogicalOp<"and", "lhs and rhs">;
def Trainopt_OrOp : Trainopt_LogicalOp<"or", "lhs or rhs">;
def Trainopt_XorOp : Trainopt_LogicalOp<"xor", "lhs xor rhs">;

def Trainopt_WhereOp : Trainopt_Op<"where",
    [Pure, InferTypeOpAdaptor, DeclareOpInterfaceMethods<Trainopt_DifferentiableOpInterface>,
     AllElementTypesMatch<["on_true", "on_false", "result"]>]> {
  let summary = "elementwise select with broadcasting";
  let description = [{
    Picks `on_true` where `condition` is true and `on_false` elsewhere; the
    three operands broadcast to a common shape. A causal attention mask is
    `where(tril(ones), scores, -inf)`.

    ```mlir
    %y = trainopt.where %mask, %scores, %neg_inf
        : (tensor<1x1x8x8xi1>, tensor<2x4x8x8xf32>, tensor<f32>) -> tensor<2x4x8x8xf32>
    ```
  }];
  let arguments = (ins Trainopt_BoolTensor:$condition, Trainopt_Tensor:$on_true,
                       Trainopt_Tensor:$on_false);
  let results = (outs Trainopt_Tensor:$result);
  let assemblyFormat = [{
    $condition `,` $on_true `,` $on_false attr-dict `:` functional-type(operands, results)
  }];
  let hasFolder = 1;
}

def Trainopt_CastOp : Trainopt_Op<"cast", [Pure, Elementwise,
    SameOperandsAndResultShape, DeclareOpInterfaceMethods<Trainopt_DifferentiableOpInterface>]> {
  let summary = "converts every element to the result element type";
  let description = [{
    Float to integer truncates toward zero; integer or float to `i1` is
    `x != 0`; `i1` to a number is 0 or 1.

    ```mlir
    %y = trainopt.cast %x : tensor<4x8xf32> to tensor<4x8xbf16>
    ```
  }];
  let arguments = (ins Trainopt_Tensor:$x);
  let results = (outs Trainopt_Tensor:$y);
  let assemblyFormat = "$x attr-dict `:` type($x) `to` type($y)";
  let hasFolder = 1;
}

//===----------------------------------------------------------------------===//
// Reductions
//===----------------------------------------------------------------------===//

class Trainopt_ReduceOp<string mnemonic, Type type, string what>
    : Trainopt_Op<mnemonic, [Pure, InferTypeOpAdaptor,
                             SameOperandsAndResultElementType,
                             DeclareOpInterfaceMethods<Trainopt_DifferentiableOpInterface>]> {
  let summary = what # " over the given axes";
  let description = "Reduces `x` over `axes` (each in `[0, rank)`, sorted, "
      # "unique; empty means all axes). With `keepdims` the reduced axes stay "
      # "as size 1.\n\n"
      # "```mlir\n%s = trainopt." # mnemonic # " %x {axes = array<i64: 1>, "
      # "keepdims = true} : (tensor<4x8xf32>) -> tensor<4x1xf32>\n```";
  let arguments = (ins type:$x, DefaultValuedAttr<DenseI64ArrayAttr, "{}">:$axes,
                       DefaultValuedAttr<BoolAttr, "false">:$keepdims);
  let results = (outs type:$result);
  let assemblyFormat = "$x attr-dict `:` functional-type(operands, results)";
  let extraClassDeclaration = [{
    /// The reduced axes, with the empty list expanded to all axes.
    ::llvm::SmallVector<int64_t> getReducedAxes();
  }];
  let extraClassDefinition = [{
    ::llvm::SmallVector<int64_t> $cppClass::getReducedAxes() {
      return ::mlir::trainopt::expandReducedAxes(getAxes(),
          ::llvm::cast<::mlir::RankedTensorType>(getX().getType()).getRank());
    }
    ::llvm::LogicalResult $cppClass::inferReturnTypes(::mlir::MLIRContext *context,
        std::optional<::mlir::Location> location, Adaptor adaptor,
        ::llvm::SmallVectorImpl<::mlir::Type> &inferredReturnTypes) {
      return ::mlir::trainopt::inferReduceResult(location,
          ::llvm::cast<::mlir::RankedTensorType>(adaptor.getX().getType()),
          adaptor.getAxes(), adaptor.getKeepdims(), inferredReturnTypes);
    }
  }];
}

def Trainopt_ReduceSumOp : Trainopt_ReduceOp<"reduce_sum", Trainopt_NumericTensor,
                                             "sum">;
def Trainopt_ReduceMeanOp : Trainopt_ReduceOp<"reduce_mean", Trainopt_FloatTensor,
                                              "arithmetic mean">;
def Trainopt_ReduceMaxOp : Trainopt_ReduceOp<"reduce_max", Trainopt_Tensor,
                                             "maximum (logical or on i1)">;
def Trainopt_ReduceMinOp : Trainopt_ReduceOp<"reduce_min", Trainopt_Tensor,
                                             "minimum (logical and on i1)">;

def Trainopt_ArgMaxOp : Trainopt_Op<"argmax", [Pure, InferTypeOpAdaptor]> {
  let summary = "index of the largest element along an axis";
  let description = [{
    Ties resolve to the first index. The result is `i64`.

    ```mlir
    %c = trainopt.argmax %logits {axis = 1 : i64} : (tensor<32x10xf32>) -> tensor<32xi64>
    ```
  }];
  let arguments = (ins Trainopt_NumericTensor:$x, I64Attr:$axis,
                       DefaultValuedAttr<BoolAttr, "false">:$keepdims);
  let results = (outs StaticShapeTensorOf<[I64]>:$result);
  let assemblyFormat = "$x attr-dict `:` functional-type(operands, results)";
}

def Trainopt_KthSmallestOp : Trainopt_Op<"kth_smallest",
    [Pure, InferTypeOpAdaptor]> {
  let summary = "the k-th smallest element of a tensor (a selection)";
  let description = [{
    The `k`-th smallest of all elements of `x` (1-based), in IEEE 754's
    total order (`-NaN < -inf < ... < -0 < +0 < ... < +inf < +NaN`), so
    the result is always one of the elements and the same on every
    target. `k <= 0` gives `-inf` and `k` past the element count `+inf`,
    so `x > kth_smallest(x, k)` keeps every element or none at the ends
    and otherwise drops exactly the elements at or below the `k`-th.
    Pruning (`trainopt-prune`) finds its magnitude thresholds with it.

    It has no VJP: it is a selection used only for masks, which get no
    gradient; autodiff names it if a loss depends on it differentiably.
    The CPU and CUDA targets compute it as a library call whose cost is
    linear in the element count when `1 <= k <= n`, and constant otherwise
    (pruning passes `k = 0` at the steps it does not update a mask).

    ```mlir
    %t = trainopt.kth_smallest %scores, %k : (tensor<64x3x3x3xf32>, tensor<i64>) -> tensor<f32>
    ```
  }];
  let arguments = (ins Trainopt_FloatTensor:$x, 0DTensorOf<[I64]>:$k);
  let results = (outs Trainopt_ScalarFloatTensor:$result);
  let assemblyFormat = "$x `,` $k attr-dict `:` functional-type(operands, results)";
}

//===----------------------------------------------------------------------===//
// Matrix multiplication
//===----------------------------------------------------------------------===//

def Trainopt_MatmulOp : Trainopt_Op<"matmul", [Pure, InferTypeOpAdaptor,
    SameOperandsAndResultElementType, DeclareOpInterfaceMethods<Trainopt_DifferentiableOpInterface>]> {
  let summary = "batched matrix product with broadcast batch dimensions";
  let description = [{
    Multiplies the last two dimensions of `lhs` (`[..., M, K]`, or `[..., K, M]`
    with `transpose_lhs`) and `rhs` (`[..., K, N]`, or `[..., N, K]` with
    `transpose_rhs`); the leading batch dimensions broadcast (NumPy rules).
    Both operands have rank at least 2.

    ```mlir
    %y = trainopt.matmul %q, %k {transpose_rhs = true}
        : (tensor<2x4x8x16xf32>, tensor<2x4x8x16xf32>) -> tensor<2x4x8x8xf32>
    ```
  }];
  let arguments = (ins Trainopt_NumericTensor:$lhs, Trainopt_NumericTensor:$rhs,
                       DefaultValuedAttr<BoolAttr, "false">:$transpose_lhs,
                       DefaultValuedAttr<BoolAttr, "false">:$transpose_rhs);
  let results = (outs Trainopt_NumericTensor:$result);
  let assemblyFormat = "$lhs `,` $rhs attr-dict `:` functional-type(operands, results)";
}

#endif // TRAINOPT_DIALECT_TRAINOPT_IR_MATHOPS_TD
