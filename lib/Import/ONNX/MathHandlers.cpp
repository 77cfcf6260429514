//===- MathHandlers.cpp - ONNX elementwise, reduction and matmul ops ------===//
//
/// \file
/// Handlers for the arithmetic ONNX ops. Unary and binary elementwise ops
/// share one helper each; versions listed are the since_versions whose
/// semantics differ within opsets 13 to 21.
//
//===----------------------------------------------------------------------===//

#include "ImportContext.h"

#include <cctype>
#include <limits>
#include <map>

using namespace mlir;
using namespace mlir::trainopt;
using namespace mlir::trainopt::onnx_import;

namespace {

template <typename OpTy> LogicalResult unary(NodeContext &n) {
  FailureOr<Value> x = n.required(0);
  if (failed(x))
    return failure();
  return n.result(n.create<OpTy>({*x}));
}

template <typename OpTy> LogicalResult binary(NodeContext &n) {
  FailureOr<Value> a = n.required(0), b = n.required(1);
  if (failed(a) || failed(b))
    return failure();
  return n.result(n.create<OpTy>({*a, *b}));
}

/// Max, Min, Sum: a left fold of a binary op over all inputs.
template <typename OpTy> FailureOr<Value> foldVariadic(NodeContext &n) {
  if (n.numInputs() == 0)
    return n.fail("expects at least one input");
  FailureOr<Value> acc = n.required(0);
  for (unsigned i = 1; succeeded(acc) && i < n.numInputs(); ++i) {
    FailureOr<Value> next = n.required(i);
    if (failed(next))
      return failure();
    acc = n.create<OpTy>({*acc, *next});
  }
  return acc;
}

template <typename OpTy> LogicalResult variadic(NodeContext &n) {
  FailureOr<Value> y = foldVariadic<OpTy>(n);
  if (failed(y))
    return failure();
  n.setOutput(0, *y);
  return success();
}

LogicalResult mean(NodeContext &n) {
  FailureOr<Value> sum = foldVariadic<AddOp>(n);
  if (failed(sum))
    return failure();
  Type elt = cast<RankedTensorType>(sum->getType()).getElementType();
  return n.result(n.create<DivOp>(
      {*sum, n.scalar(elt, static_cast<double>(n.numInputs()))}));
}

/// Pow: ONNX allows a differently typed exponent; the result has the base's
/// type. An integer base with a float exponent is computed in the float type.
LogicalResult powOp(NodeContext &n) {
  FailureOr<Value> a = n.required(0), b = n.required(1);
  if (failed(a) || failed(b))
    return failure();
  auto castTo = [&](Value v, Type elt) -> FailureOr<Value> {
    auto t = cast<RankedTensorType>(v.getType());
    if (t.getElementType() == elt)
      return v;
    return n.create<CastOp>({v}, {}, t.clone(elt));
  };
  Type baseElt = n.inputType(0).getElementType();
  Type expElt = n.inputType(1).getElementType();
  Type computeElt =
      isa<FloatType>(expElt) && !isa<FloatType>(baseElt) ? expElt : baseElt;
  FailureOr<Value> base = castTo(*a, computeElt);
  FailureOr<Value> exponent = castTo(*b, computeElt);
  if (failed(base) || failed(exponent))
    return failure();
  FailureOr<Value> y = n.create<PowOp>({*base, *exponent});
  if (failed(y))
    return failure();
  return n.result(castTo(*y, baseElt));
}

LogicalResult identity(NodeContext &n) {
  FailureOr<Value> x = n.required(0);
  if (failed(x))
    return failure();
  n.setOutput(0, *x);
  return success();
}

LogicalResult where(NodeContext &n) {
  FailureOr<Value> c = n.required(0), a = n.required(1), b = n.required(2);
  if (failed(c) || failed(a) || failed(b))
    return failure();
  return n.result(n.create<WhereOp>({*c, *a, *b}));
}

LogicalResult castTo(NodeContext &n, Value x, Type elt) {
  auto type = cast<RankedTensorType>(x.getType());
  return n.result(n.create<CastOp>({x}, {}, type.clone(elt)));
}

LogicalResult castOp(NodeContext &n) {
  FailureOr<Value> x = n.required(0);
  FailureOr<int64_t> to = n.check(n.attrs.getInt("to"));
  if (failed(x) || failed(to))
    return failure();
  Type elt = convertElementType(n.getContext(), *to);
  if (!elt)
    return n.fail("cast to unsupported element type " + onnxTypeName(*to));
  return castTo(n, *x, elt);
}

LogicalResult castLike(NodeContext &n) {
  FailureOr<Value> x = n.required(0), like = n.required(1);
  if (failed(x) || failed(like))
    return failure();
  return castTo(n, *x, n.inputType(1).getElementType());
}

/// Reads an optional scalar bound input of Clip as a double.
FailureOr<std::optional<double>> clipBound(NodeContext &n, unsigned i,
                                           StringRef what) {
  if (!n.input(i))
    return std::optional<double>();
  FailureOr<DenseElementsAttr> c = n.constantInput(i, what);
  if (failed(c))
    return failure();
  if (c->getNumElements() != 1)
    return n.fail(Twine(what) + " must be a scalar");
  return std::optional<double>(scalarAsDouble(*c));
}

LogicalResult clip(NodeContext &n) {
  FailureOr<Value> x = n.required(0);
  if (failed(x))
    return failure();
  auto lo = clipBound(n, 1, "min"), hi = clipBound(n, 2, "max");
  if (failed(lo) || failed(hi))
    return failure();
  SmallVector<NamedAttribute> attrs;
  if (*lo)
    attrs.push_back(n.named("min", n.builder.getF64FloatAttr(**lo)));
  if (*hi)
    attrs.push_back(n.named("max", n.builder.getF64FloatAttr(**hi)));
  return n.result(n.create<ClipOp>({*x}, attrs));
}

LogicalResult gelu(NodeContext &n) {
  FailureOr<Value> x = n.required(0);
  FailureOr<std::string> approx =
      n.check(n.attrs.getString("approximate", std::string("none")));
  if (failed(x) || failed(approx))
    return failure();
  GeluApproximation kind;
  if (*approx == "none")
    kind = GeluApproximation::none;
  else if (*approx == "tanh")
    kind = GeluApproximation::tanh;
  else
    return n.fail("attribute 'approximate' must be 'none' or 'tanh', got '" +
                  *approx + "'");
  return n.result(n.create<GeluOp>(
      {*x}, {n.named("approximation",
                     GeluApproximationAttr::get(n.getContext(), kind))}));
}

/// LeakyRelu(x) = x > 0 ? x : alpha * x, PyTorch's formula: at x = 0 the
/// gradient is alpha, as torch's leaky_relu_backward gives (max(x, 0) +
/// alpha * min(x, 0) would split it as (1 + alpha) / 2 at the tie).
LogicalResult leakyRelu(NodeContext &n) {
  FailureOr<Value> x = n.required(0);
  FailureOr<double> alpha = n.check(n.attrs.getFloat("alpha", 0.01));
  if (failed(x) || failed(alpha))
    return failure();
  Type elt = n.inputType(0).getElementType();
  FailureOr<Value> positive = n.create<GreaterOp>({*x, n.scalar(elt, 0.0)});
  FailureOr<Value> scaled = n.create<MulOp>({*x, n.scalar(elt, *alpha)});
  if (failed(positive) || failed(scaled))
    return failure();
  return n.result(n.create<WhereOp>({*positive, *x, *scaled}));
}

//===----------------------------------------------------------------------===//
// Activations, decomposed into trainopt ops
//===----------------------------------------------------------------------===//
//
// Each activation below is a short chain of existing ops: fusion makes it
// one elementwise kernel, and the VJP, the evaluator and both backends come
// with the parts. Where PyTorch's derivative at a kink is a choice, the
// chain is written so that autodiff of it gives PyTorch's value there
// (checked by test/Transforms/boundary-vs-torch.test).

/// Builds f(x) for the node's input `x` of element type `elt` with a
/// Composer; the handlers below only say what f is.
template <typename Fn> LogicalResult activation(NodeContext &n, Fn &&fn) {
  FailureOr<Value> x = n.required(0);
  if (failed(x))
    return failure();
  Composer c(n);
  return n.result(c.done(fn(c, *x, n.inputType(0).getElementType())));
}

/// where(x > t, x, alpha * (exp(x / s) - 1)): Elu (s = 1) and Celu
/// (s = alpha). At x = t = 0 the negative branch is taken, as torch's
/// elu_backward does, so the derivative there is exp(0) * alpha / s.
Value expLinear(Composer &c, Value x, Type elt, double alpha, double s) {
  Value scaled = s == 1.0 ? x : c.mul(x, 1.0 / s);
  Value negative = c.mul(c.add(c.op<ExpOp>({scaled}), -1.0), alpha);
  return c.where(c.op<GreaterOp>({x, c.scalar(elt, 0.0)}), x, negative);
}

/// Softplus(x) = max(x, 0) + log(1 + exp(-|x|)): no overflow for large x,
/// and the derivative is sigmoid(x) everywhere, 0.5 at 0 (max's tie shares
/// the cotangent evenly, abs has derivative 0 there).
Value softplus(Composer &c, Value x, Type elt) {
  Value tail = c.op<LogOp>(
      {c.add(c.op<ExpOp>({c.op<NegOp>({c.op<AbsOp>({x})})}), 1.0)});
  return c.add(c.op<MaxOp>({x, c.scalar(elt, 0.0)}), tail);
}

LogicalResult eluOp(NodeContext &n) {
  FailureOr<double> alpha = n.check(n.attrs.getFloat("alpha", 1.0));
  if (failed(alpha))
    return failure();
  return activation(n, [&](Composer &c, Value x, Type elt) {
    return expLinear(c, x, elt, *alpha, 1.0);
  });
}

LogicalResult celuOp(NodeContext &n) {
  FailureOr<double> alpha = n.check(n.attrs.getFloat("alpha", 1.0));
  if (failed(alpha))
    return failure();
  if (*alpha == 0.0)
    return n.fail("alpha must not be 0");
  return activation(n, [&](Composer &c, Value x, Type elt) {
    return expLinear(c, x, elt, *alpha, *alpha);
  });
}

/// Selu = gamma * Elu(alpha).
/// Without attributes, the constants in double (the ONNX defaults are
/// their float32 roundings, 1.67326319... and 1.05070102...), so a float64
/// model computes PyTorch's SELU.
LogicalResult seluOp(NodeContext &n) {
  FailureOr<double> alpha =
      n.check(n.attrs.getFloat("alpha", 1.6732632423543772848170429916717));
  FailureOr<double> gamma =
      n.check(n.attrs.getFloat("gamma", 1.0507009873554804934193349852946));
  if (failed(alpha) || failed(gamma))
    return failure();
  return activation(n, [&](Composer &c, Value x, Type elt) {
    return c.mul(expLinear(c, x, elt, *alpha, 1.0), *gamma);
  });
}

/// HardSigmoid = clip(alpha * x + beta, 0, 1); clip passes no gradient at
/// its bounds, as torch's hardsigmoid_backward (open interval).
LogicalResult hardSigmoidOp(NodeContext &n) {
  FailureOr<double> alpha = n.check(n.attrs.getFloat("alpha", 0.2));
  FailureOr<double> beta = n.check(n.attrs.getFloat("beta", 0.5));
  if (failed(alpha) || failed(beta))
    return failure();
  return activation(n, [&](Composer &c, Value x, Type) {
    return c.op<ClipOp>({c.add(c.mul(x, *alpha), *beta)},
                        {n.named("min", n.builder.getF64FloatAttr(0.0)),
                         n.named("max", n.builder.getF64FloatAttr(1.0))});
  });
}

/// HardSwish = x * HardSigmoid(x, 1/6, 1/2), written as torch's vectorized
/// hardswish_backward computes its gradient: x < -3: 0; x < 3: x * (x + 3)
/// / 6 (derivative (2x + 3) / 6, so -0.5 at -3); from 3 on: x (derivative
/// 1 at 3). (torch's scalar path, used for a tensor's last elements, gives
/// 1.5 at exactly 3; the vectorized one handles all the others.)
LogicalResult hardSwishOp(NodeContext &n) {
  return activation(n, [&](Composer &c, Value x, Type elt) {
    Value quad = c.mul(c.mul(x, c.add(x, 3.0)), 1.0 / 6.0);
    Value upper = c.where(c.less(x, c.scalar(elt, 3.0)), quad, x);
    return c.where(c.less(x, c.scalar(elt, -3.0)), c.scalar(elt, 0.0), upper);
  });
}

LogicalResult softplusOp(NodeContext &n) {
  return activation(n, [&](Composer &c, Value x, Type elt) {
    return softplus(c, x, elt);
  });
}

/// Softsign = x / (1 + |x|).
LogicalResult softsignOp(NodeContext &n) {
  return activation(n, [&](Composer &c, Value x, Type) {
    return c.div(x, c.add(c.op<AbsOp>({x}), 1.0));
  });
}

/// Mish = x * tanh(Softplus(x)).
LogicalResult mishOp(NodeContext &n) {
  return activation(n, [&](Composer &c, Value x, Type elt) {
    return c.mul(x, c.op<TanhOp>({softplus(c, x, elt)}));
  });
}

/// ThresholdedRelu = x > alpha ? x : 0 (torch.nn.Threshold with value 0:
/// the gradient passes where x > alpha).
LogicalResult thresholdedReluOp(NodeContext &n) {
  FailureOr<double> alpha = n.check(n.attrs.getFloat("alpha", 1.0));
  if (failed(alpha))
    return failure();
  return activation(n, [&](Composer &c, Value x, Type elt) {
    return c.where(c.op<GreaterOp>({x, c.scalar(elt, *alpha)}), x,
                   c.scalar(elt, 0.0));
  });
}

/// Shrink = x < -lambd ? x + bias : x > lambd ? x - bias : 0 (PyTorch's
/// Hardshrink, bias 0, and Softshrink, bias = lambd): strict comparisons, so
/// no gradient at +-lambd, as torch's hardshrink/softshrink backward.
LogicalResult shrinkOp(NodeContext &n) {
  FailureOr<double> lambd = n.check(n.attrs.getFloat("lambd", 0.5));
  FailureOr<double> bias = n.check(n.attrs.getFloat("bias", 0.0));
  if (failed(lambd) || failed(bias))
    return failure();
  return activation(n, [&](Composer &c, Value x, Type elt) {
    Value outer = c.where(c.op<GreaterOp>({x, c.scalar(elt, *lambd)}),
                          c.add(x, -*bias), c.scalar(elt, 0.0));
    return c.where(c.less(x, c.scalar(elt, -*lambd)), c.add(x, *bias), outer);
  });
}

/// Sign = (x > 0) - (x < 0) in x's type: 0 at 0, and no gradient (torch's
/// sign backward is zeros).
LogicalResult signOp(NodeContext &n) {
  return activation(n, [&](Composer &c, Value x, Type elt) {
    Value zero = c.scalar(elt, 0.0);
    return c.sub(c.cast(c.op<GreaterOp>({x, zero}), elt),
                 c.cast(c.less(x, zero), elt));
  });
}

/// PRelu = where(x > 0, x, slope * x), slope broadcast to x: at 0 the
/// negative branch, as torch's prelu backward (the slope's gradient is x
/// there, 0).
LogicalResult preluOp(NodeContext &n) {
  FailureOr<Value> x = n.required(0);
  FailureOr<Value> slope = n.required(1);
  if (failed(x) || failed(slope))
    return failure();
  Composer c(n);
  Type elt = n.inputType(0).getElementType();
  return n.result(c.done(c.where(c.op<GreaterOp>({*x, c.scalar(elt, 0.0)}),
                                 *x, c.mul(*x, *slope))));
}

/// IsNaN = not(x == x).
LogicalResult isNaNOp(NodeContext &n) {
  FailureOr<Value> x = n.required(0);
  if (failed(x))
    return failure();
  FailureOr<Value> same = n.create<EqualOp>({*x, *x});
  if (failed(same))
    return failure();
  return n.result(n.create<NotOp>({*same}));
}

/// IsInf = (x == +inf, if detect_positive) or (x == -inf, if
/// detect_negative).
LogicalResult isInfOp(NodeContext &n) {
  FailureOr<Value> x = n.required(0);
  FailureOr<int64_t> pos = n.check(n.attrs.getInt("detect_positive", 1));
  FailureOr<int64_t> neg = n.check(n.attrs.getInt("detect_negative", 1));
  if (failed(x) || failed(pos) || failed(neg))
    return failure();
  Type elt = n.inputType(0).getElementType();
  double inf = std::numeric_limits<double>::infinity();
  FailureOr<Value> isPos = n.create<EqualOp>({*x, n.scalar(elt, inf)});
  FailureOr<Value> isNeg = n.create<EqualOp>({*x, n.scalar(elt, -inf)});
  if (failed(isPos) || failed(isNeg))
    return failure();
  if (*pos && *neg)
    return n.result(n.create<OrOp>({*isPos, *isNeg}));
  if (*pos)
    return n.result(isPos);
  if (*neg)
    return n.result(isNeg);
  // Neither: all false.
  return n.result(n.create<AndOp>({*isPos, *isNeg}));
}

/// The reduction axes of a Reduce* node, from the attribute (older versions)
/// or the optional second input; std::nullopt means "no-op".
FailureOr<std::optional<SmallVector<int64_t>>>
reduceAxes(NodeContext &n, bool axesAsInput, int64_t rank) {
  SmallVector<int64_t> axes;
  if (axesAsInput) {
    if (n.input(1)) {
      FailureOr<SmallVector<int64_t>> c = n.constantInts(1, "axes");
      if (failed(c))
        return failure();
      axes = *c;
    }
  } else {
    FailureOr<SmallVector<int64_t>> a =
        n.check(n.attrs.getInts("axes", SmallVector<int64_t>()));
    if (failed(a))
      return failure();
    axes = *a;
  }
  FailureOr<int64_t> noop = n.check(n.attrs.getInt("noop_with_empty_axes", 0));
  if (failed(noop))
    return failure();
  if (axes.empty() && *noop)
    return std::optional<SmallVector<int64_t>>();
  for (int64_t &axis : axes) {
    FailureOr<int64_t> a = normalizeAxis(n, axis, rank);
    if (failed(a))
      return failure();
    axis = *a;
  }
  llvm::sort(axes);
  axes.erase(std::unique(axes.begin(), axes.end()), axes.end());
  if (axes.empty())
    axes = llvm::to_vector(llvm::seq<int64_t>(0, rank));
  return std::optional<SmallVector<int64_t>>(axes);
}

template <typename OpTy, bool AxesAsInput>
LogicalResult reduce(NodeContext &n) {
  FailureOr<Value> x = n.required(0);
  if (failed(x))
    return failure();
  FailureOr<int64_t> keepdims = n.check(n.attrs.getInt("keepdims", 1));
  if (failed(keepdims))
    return failure();
  auto axes = reduceAxes(n, AxesAsInput, n.inputType(0).getRank());
  if (failed(axes))
    return failure();
  if (!*axes) {
    n.setOutput(0, *x);
    return success();
  }
  return n.result(n.create<OpTy>(
      {*x}, {n.named("axes", n.builder.getDenseI64ArrayAttr(**axes)),
             n.named("keepdims", n.builder.getBoolAttr(*keepdims != 0))}));
}

/// ReduceL1, ReduceL2, ReduceSumSquare and ReduceLogSumExp as sum
/// reductions between elementwise ops: g(sum(f(x))). LogSumExp subtracts the
/// max first (its gradient path cancels: the result's derivative is the
/// softmax). With noop_with_empty_axes and no axes, f and g apply
/// elementwise, as the ONNX reference does.
enum class CompositeReduce { L1, L2, SumSquare, LogSumExp };

template <CompositeReduce Kind, bool AxesAsInput>
LogicalResult reduceComposite(NodeContext &n) {
  FailureOr<Value> x = n.required(0);
  FailureOr<int64_t> keepdims = n.check(n.attrs.getInt("keepdims", 1));
  if (failed(x) || failed(keepdims))
    return failure();
  auto axes = reduceAxes(n, AxesAsInput, n.inputType(0).getRank());
  if (failed(axes))
    return failure();
  Type elt = n.inputType(0).getElementType();
  auto square = [&](Value v) { return n.create<MulOp>({v, v}); };
  if (!*axes) { // elementwise
    switch (Kind) {
    case CompositeReduce::L1:
    case CompositeReduce::L2:
      return n.result(n.create<AbsOp>({*x}));
    case CompositeReduce::SumSquare:
      return n.result(square(*x));
    case CompositeReduce::LogSumExp:
      n.setOutput(0, *x);
      return success();
    }
  }
  auto reduceAttrs = [&](bool keep) {
    return SmallVector<NamedAttribute>{
        n.named("axes", n.builder.getDenseI64ArrayAttr(**axes)),
        n.named("keepdims", n.builder.getBoolAttr(keep))};
  };
  if (Kind == CompositeReduce::LogSumExp) {
    FailureOr<Value> m = n.create<ReduceMaxOp>({*x}, reduceAttrs(true));
    if (failed(m))
      return failure();
    FailureOr<Value> d = n.create<SubOp>({*x, *m});
    if (failed(d))
      return failure();
    FailureOr<Value> e = n.create<ExpOp>({*d});
    if (failed(e))
      return failure();
    FailureOr<Value> sum = n.create<ReduceSumOp>({*e}, reduceAttrs(true));
    if (failed(sum))
      return failure();
    FailureOr<Value> l = n.create<LogOp>({*sum});
    if (failed(l))
      return failure();
    FailureOr<Value> y = n.create<AddOp>({*l, *m});
    if (failed(y) || *keepdims)
      return n.result(y);
    // Drop the reduced dims.
    auto t = cast<RankedTensorType>((*y).getType());
    SmallVector<int64_t> shape;
    for (int64_t d = 0; d < t.getRank(); ++d)
      if (!llvm::is_contained(**axes, d))
        shape.push_back(t.getDimSize(d));
    return n.result(n.create<ReshapeOp>({*y}, {}, t.clone(shape)));
  }
  FailureOr<Value> f = Kind == CompositeReduce::L1 ? n.create<AbsOp>({*x})
                                                   : square(*x);
  if (failed(f))
    return failure();
  FailureOr<Value> sum = n.create<ReduceSumOp>({*f}, reduceAttrs(*keepdims));
  if (failed(sum) || Kind != CompositeReduce::L2)
    return n.result(sum);
  (void)elt;
  return n.result(n.create<SqrtOp>({*sum}));
}

/// Reshapes `v` to `shape` (same element type).
FailureOr<Value> reshapeTo(NodeContext &n, Value v, ArrayRef<int64_t> shape) {
  auto type = cast<RankedTensorType>(v.getType());
  return n.create<ReshapeOp>({v}, {}, type.clone(shape));
}

/// The operand a matmul reads transposed in place of `v`, when `v` is a
/// Transpose of only its last two dims (PyTorch exports x @ W.T of a 3-D x
/// that way): the matmul then needs no transposed copy, and the weight's
/// gradient comes out in the weight's own layout (MatmulOp::buildVJP).
Value foldTranspose(Value v, bool &transposed) {
  auto t = v.getDefiningOp<TransposeOp>();
  if (!t)
    return v;
  ArrayRef<int64_t> perm = t.getPermutation();
  int64_t r = static_cast<int64_t>(perm.size());
  if (r < 2 || perm[r - 2] != r - 1 || perm[r - 1] != r - 2)
    return v;
  for (int64_t d = 0; d + 2 < r; ++d)
    if (perm[d] != d)
      return v;
  transposed = true;
  return t.getX();
}

/// MatMul with NumPy semantics: 1-D operands are promoted and the added dim
/// removed again. An operand that is a transpose of its last two dims is
/// read transposed instead (foldTranspose).
LogicalResult matmul(NodeContext &n) {
  FailureOr<Value> a = n.required(0), b = n.required(1);
  if (failed(a) || failed(b))
    return failure();
  auto at = n.inputType(0), bt = n.inputType(1);
  if (at.getRank() == 0 || bt.getRank() == 0)
    return n.fail("MatMul operands must have rank >= 1");
  Value lhs = *a, rhs = *b;
  if (at.getRank() == 1) {
    FailureOr<Value> r = reshapeTo(n, lhs, {1, at.getDimSize(0)});
    if (failed(r))
      return failure();
    lhs = *r;
  }
  if (bt.getRank() == 1) {
    FailureOr<Value> r = reshapeTo(n, rhs, {bt.getDimSize(0), 1});
    if (failed(r))
      return failure();
    rhs = *r;
  }
  bool ta = false, tb = false;
  if (at.getRank() > 1)
    lhs = foldTranspose(lhs, ta);
  if (bt.getRank() > 1)
    rhs = foldTranspose(rhs, tb);
  SmallVector<NamedAttribute> attrs;
  if (ta)
    attrs.push_back(n.named("transpose_lhs", n.builder.getBoolAttr(true)));
  if (tb)
    attrs.push_back(n.named("transpose_rhs", n.builder.getBoolAttr(true)));
  FailureOr<Value> y = n.create<MatmulOp>({lhs, rhs}, attrs);
  if (failed(y))
    return failure();
  if (at.getRank() == 1 || bt.getRank() == 1) {
    auto yt = cast<RankedTensorType>(y->getType());
    SmallVector<int64_t> shape(yt.getShape());
    if (bt.getRank() == 1)
      shape.pop_back();
    if (at.getRank() == 1)
      shape.erase(shape.end() - 1 - (bt.getRank() == 1 ? 0 : 1));
    y = reshapeTo(n, *y, shape);
    if (failed(y))
      return failure();
  }
  n.setOutput(0, *y);
  return success();
}

/// Gemm: alpha * op(A) op(B) + beta * C.
LogicalResult gemm(NodeContext &n) {
  FailureOr<Value> a = n.required(0), b = n.required(1);
  FailureOr<int64_t> transA = n.check(n.attrs.getInt("transA", 0));
  FailureOr<int64_t> transB = n.check(n.attrs.getInt("transB", 0));
  FailureOr<double> alpha = n.check(n.attrs.getFloat("alpha", 1.0));
  FailureOr<double> beta = n.check(n.attrs.getFloat("beta", 1.0));
  if (failed(a) || failed(b) || failed(transA) || failed(transB) ||
      failed(alpha) || failed(beta))
    return failure();
  if (n.inputType(0).getRank() != 2 || n.inputType(1).getRank() != 2)
    return n.fail("Gemm expects 2-D A and B");
  Type elt = n.inputType(0).getElementType();
  if (!isa<FloatType>(elt) && (*alpha != 1.0 || *beta != 1.0))
    return n.fail("alpha and beta other than 1 need floating-point operands");
  FailureOr<Value> y = n.create<MatmulOp>(
      {*a, *b}, {n.named("transpose_lhs", n.builder.getBoolAttr(*transA)),
                 n.named("transpose_rhs", n.builder.getBoolAttr(*transB))});
  if (failed(y))
    return failure();
  Type productType = y->getType();
  if (*alpha != 1.0)
    y = n.create<MulOp>({*y, n.scalar(elt, *alpha)});
  if (succeeded(y) && n.input(2) && *beta != 0.0) {
    Value c = n.input(2);
    if (*beta != 1.0) {
      FailureOr<Value> scaled = n.create<MulOp>({c, n.scalar(elt, *beta)});
      if (failed(scaled))
        return failure();
      c = *scaled;
    }
    y = n.create<AddOp>({*y, c});
  }
  if (failed(y))
    return failure();
  // C broadcasts to the product, never the other way round.
  if (y->getType() != productType)
    return n.fail("C does not broadcast to the product of A and B");
  n.setOutput(0, *y);
  return success();
}

/// ReduceProd as a balanced tree of elementwise products over the reduced
/// elements (moved last and flattened; odd counts padded with 1): the
/// gradient flows through the multiplications, so it is exact where
/// elements are zero, which prod / x is not.
template <bool AxesAsInput> LogicalResult reduceProd(NodeContext &n) {
  FailureOr<Value> x = n.required(0);
  FailureOr<int64_t> keepdims = n.check(n.attrs.getInt("keepdims", 1));
  if (failed(x) || failed(keepdims))
    return failure();
  auto xt = n.inputType(0);
  auto axes = reduceAxes(n, AxesAsInput, xt.getRank());
  if (failed(axes))
    return failure();
  if (!*axes) {
    n.setOutput(0, *x);
    return success();
  }
  Composer c(n);
  SmallVector<int64_t> perm, keptShape, outShape;
  int64_t kept = 1, reduced = 1;
  for (int64_t d = 0; d < xt.getRank(); ++d) {
    bool r = llvm::is_contained(**axes, d);
    if (!r) {
      perm.push_back(d);
      keptShape.push_back(xt.getDimSize(d));
      kept *= xt.getDimSize(d);
    }
    if (!r || *keepdims)
      outShape.push_back(r ? 1 : xt.getDimSize(d));
  }
  for (int64_t d : **axes) {
    perm.push_back(d);
    reduced *= xt.getDimSize(d);
  }
  if (reduced == 0) { // the empty product
    Type elt = xt.getElementType();
    Attribute one = isa<FloatType>(elt)
                        ? Attribute(n.builder.getFloatAttr(elt, 1.0))
                        : Attribute(n.builder.getIntegerAttr(elt, 1));
    n.setOutput(0, n.constant(DenseElementsAttr::get(xt.clone(outShape), one)));
    return success();
  }
  Value v = c.reshape(c.transpose(*x, perm), {kept, reduced});
  for (int64_t len = reduced; len > 1; len = (len + 1) / 2) {
    if (len % 2)
      v = c.pad(v, 1, 0, 1, 1.0);
    int64_t half = (len + 1) / 2;
    v = c.mul(c.slice(v, 1, 0, half), c.slice(v, 1, half, 2 * half));
  }
  return n.result(c.done(c.reshape(v, outShape)));
}

/// Mod. Integers: r = a - b * (a / b) with the truncating division, so
/// fmod = 1 is C's %; fmod = 0 (the default, Python's %) then moves a
/// nonzero r whose sign differs from b's by b. Floats (fmod must be 1):
/// a - b * trunc(a / b), whose gradient is PyTorch's fmod's (1 for a,
/// -trunc(a / b) for b); unlike std::fmod it rounds when the quotient is
/// large. Shape arithmetic on constants folds.
LogicalResult modOp(NodeContext &n) {
  FailureOr<Value> a = n.required(0), b = n.required(1);
  FailureOr<int64_t> fmod = n.check(n.attrs.getInt("fmod", 0));
  if (failed(a) || failed(b) || failed(fmod))
    return failure();
  Composer c(n);
  Type elt = n.inputType(0).getElementType();
  if (isa<FloatType>(elt)) {
    if (!*fmod)
      return n.fail("fmod = 0 on floating-point inputs (the ONNX spec "
                    "requires fmod = 1 for them)");
    Value q = c.div(*a, *b);
    Value t = c.where(c.less(q, c.scalar(elt, 0.0)), c.op<CeilOp>({q}),
                      c.op<FloorOp>({q}));
    return n.result(c.done(c.sub(*a, c.mul(*b, t))));
  }
  Value r = c.sub(*a, c.mul(*b, c.div(*a, *b)));
  if (*fmod)
    return n.result(c.done(r));
  Value zero = c.scalar(elt, 0.0);
  Value nonzero = c.op<NotOp>({c.equal(r, zero)});
  Value signsDiffer = c.op<XorOp>({c.less(r, zero), c.less(*b, zero)});
  Value fix = c.op<AndOp>({nonzero, signsDiffer});
  return n.result(c.done(c.where(fix, c.add(r, *b), r)));
}

/// CumSum as a log-step (Hillis-Steele) scan: log2(L) rounds of x +=
/// shift(x, s), each a slice and a zero pad, so integers stay exact and the
/// gradient is the reverse scan. `exclusive` shifts by one first; `reverse`
/// shifts the other way.
LogicalResult cumSum(NodeContext &n) {
  FailureOr<Value> x = n.required(0);
  FailureOr<SmallVector<int64_t>> axisValue = n.constantInts(1, "axis");
  FailureOr<int64_t> exclusive = n.check(n.attrs.getInt("exclusive", 0));
  FailureOr<int64_t> reverse = n.check(n.attrs.getInt("reverse", 0));
  if (failed(x) || failed(axisValue) || failed(exclusive) || failed(reverse))
    return failure();
  if (axisValue->size() != 1)
    return n.fail("axis must be a scalar");
  auto xt = n.inputType(0);
  FailureOr<int64_t> axis = normalizeAxis(n, axisValue->front(), xt.getRank());
  if (failed(axis))
    return failure();
  int64_t len = xt.getDimSize(*axis);
  Composer c(n);
  // shift(v, s): v moved s places along the scan direction, zero filled.
  auto shift = [&](Value v, int64_t s) {
    if (*reverse)
      return c.pad(c.slice(v, *axis, s, len), *axis, 0, s);
    return c.pad(c.slice(v, *axis, 0, len - s), *axis, s, 0);
  };
  Value v = *x;
  if (*exclusive && len > 0)
    v = shift(v, 1);
  for (int64_t s = 1; s < len; s *= 2)
    v = c.add(v, shift(v, s));
  return n.result(c.done(v));
}

/// ArgMax and ArgMin (ArgMin is ArgMax of -x). select_last_index takes the
/// last of tied extremes: ArgMax of x reversed along the axis, mapped back
/// as (dim - 1 - index).
template <bool IsMin> LogicalResult argExtreme(NodeContext &n) {
  FailureOr<Value> x = n.required(0);
  FailureOr<int64_t> keepdims = n.check(n.attrs.getInt("keepdims", 1));
  FailureOr<int64_t> last = n.check(n.attrs.getInt("select_last_index", 0));
  if (failed(x) || failed(keepdims) || failed(last))
    return failure();
  auto xt = n.inputType(0);
  FailureOr<int64_t> a = axisAttribute(n, "axis", 0, xt.getRank());
  if (failed(a))
    return failure();
  if (IsMin && !xt.getElementType().isSignlessInteger() &&
      !isa<FloatType>(xt.getElementType()))
    return n.fail("ArgMin needs a signed element type");
  Composer c(n);
  Value v = IsMin ? c.op<NegOp>({*x}) : *x;
  int64_t dim = xt.getDimSize(*a);
  if (*last) {
    SmallVector<int64_t> reversed;
    for (int64_t i = dim - 1; i >= 0; --i)
      reversed.push_back(i);
    v = c.gather(v, c.i64s(reversed), *a);
  }
  Value idx = c.op<ArgMaxOp>(
      {v}, {n.named("axis", n.builder.getI64IntegerAttr(*a)),
            n.named("keepdims", n.builder.getBoolAttr(*keepdims != 0))});
  if (*last)
    idx = c.sub(c.i64(dim - 1), idx);
  return n.result(c.done(idx));
}

/// Einsum as transposes, reshapes, sums and batched matmuls: operands are
/// contracted pairwise from the left; a subscript that no later operand and
/// not the output needs is summed out first. Ellipses are supported, and
/// a subscript repeated in one operand takes its diagonal.
class EinsumLowering {
public:
  explicit EinsumLowering(NodeContext &n) : n(n), c(n) {}

  LogicalResult run() {
    FailureOr<std::string> eq = n.check(n.attrs.getString("equation"));
    if (failed(eq))
      return failure();
    std::string text;
    for (char ch : *eq)
      if (!std::isspace(static_cast<unsigned char>(ch)))
        text.push_back(ch);
    size_t arrow = text.find("->");
    std::string lhs = text.substr(0, arrow);
    SmallVector<StringRef> parts;
    StringRef(lhs).split(parts, ',');
    SmallVector<std::string> terms;
    for (StringRef t : parts)
      terms.push_back(t.str());
    if (terms.size() != n.numInputs())
      return n.fail("equation '" + *eq + "' has " + Twine(terms.size()) +
                    " operand terms for " + Twine(n.numInputs()) + " inputs");
    // Ellipsis dims get labels 256 + k, counted from the right.
    int64_t ellipsisRank = 0;
    for (auto [i, t] : llvm::enumerate(terms)) {
      FailureOr<Value> v = n.required(i);
      if (failed(v))
        return failure();
      FailureOr<SmallVector<int>> labels = parse(t, n.inputType(i).getRank());
      if (failed(labels))
        return failure();
      for (int l : *labels)
        if (l >= 256)
          ellipsisRank = std::max<int64_t>(ellipsisRank, l - 255);
      operands.push_back({*v, *labels});
    }
    SmallVector<int> out;
    if (arrow != std::string::npos) {
      FailureOr<SmallVector<int>> o =
          parse(text.substr(arrow + 2), -1, ellipsisRank);
      if (failed(o))
        return failure();
      out = *o;
    } else {
      // Implicit output: ellipsis dims, then labels used once, sorted.
      for (int64_t k = ellipsisRank - 1; k >= 0; --k)
        out.push_back(256 + k);
      std::map<int, int> count;
      for (auto &o : operands)
        for (int l : o.labels)
          if (l < 256)
            ++count[l];
      for (auto [l, k] : count)
        if (k == 1)
          out.push_back(l);
    }
    for (auto &o : operands)
      if (failed(takeDiagonals(o)) || failed(checkSizes(o)))
        return failure();
    Term acc = operands.front();
    for (size_t i = 1; i < operands.size(); ++i)
      acc = contract(acc, operands[i], needed(out, i + 1));
    acc = sumOut(acc, out);
    for (int l : out)
      if (!llvm::is_contained(acc.labels, l))
        return n.fail("output subscript " + labelName(l) +
                      " appears in no operand");
    SmallVector<int64_t> perm;
    for (int l : out)
      perm.push_back(llvm::find(acc.labels, l) - acc.labels.begin());
    return n.result(c.done(c.transpose(acc.value, perm)));
  }

private:
  struct Term {
    Value value;
    SmallVector<int> labels;
  };

  static std::string labelName(int l) {
    return l >= 256 ? "'...'" : "'" + std::string(1, static_cast<char>(l)) + "'";
  }

  /// Labels of one term; `rank` < 0 for the output, where an ellipsis
  /// stands for `ellipsisRank` dims.
  FailureOr<SmallVector<int>> parse(StringRef term, int64_t rank,
                                    int64_t ellipsisRank = 0) {
    SmallVector<int> labels;
    size_t dots = term.find("...");
    int64_t letters = term.size() - (dots == StringRef::npos ? 0 : 3);
    int64_t covered = rank < 0 ? ellipsisRank : rank - letters;
    if (covered < 0 || (dots == StringRef::npos && rank >= 0 && covered != 0))
      return n.fail("subscripts '" + term + "' do not match an operand of rank " +
                    Twine(rank));
    for (size_t i = 0; i < term.size(); ++i) {
      if (i == dots) {
        for (int64_t k = covered - 1; k >= 0; --k)
          labels.push_back(256 + k);
        i += 2;
        continue;
      }
      if (!std::isalpha(static_cast<unsigned char>(term[i])))
        return n.fail("subscripts '" + term + "' may hold only letters and one '...'");
      if (rank < 0 && llvm::is_contained(labels, term[i]))
        return n.fail("output subscript '" + Twine(term[i]) + "' repeats");
      labels.push_back(term[i]);
    }
    return labels;
  }

  /// A subscript repeated in one term takes the diagonal: the two dims
  /// are made adjacent, merged and gathered at i (n + 1); its gradient is
  /// the gather's scatter onto the diagonal.
  LogicalResult takeDiagonals(Term &t) {
    for (;;) {
      std::optional<std::pair<size_t, size_t>> repeat;
      for (size_t p = 0; p < t.labels.size() && !repeat; ++p)
        for (size_t q = p + 1; q < t.labels.size() && !repeat; ++q)
          if (t.labels[p] == t.labels[q])
            repeat = {p, q};
      if (!repeat)
        return success();
      auto [p, q] = *repeat;
      ArrayRef<int64_t> shape = Composer::type(t.value).getShape();
      int64_t size = shape[p];
      if (shape[q] != size)
        return n.fail("subscript " + labelName(t.labels[p]) +
                      " repeats with sizes " + Twine(size) + " and " +
                      Twine(shape[q]));
      SmallVector<int64_t> perm, merged;
      SmallVector<int> labels;
      for (size_t d = 0; d < shape.size(); ++d) {
        if (d == q)
          continue;
        perm.push_back(d);
        labels.push_back(t.labels[d]);
        merged.push_back(d == p ? size * size : shape[d]);
        if (d == p)
          perm.push_back(q);
      }
      SmallVector<int64_t> diagonal;
      for (int64_t i = 0; i < size; ++i)
        diagonal.push_back(i * (size + 1));
      t.value = c.gather(c.reshape(c.transpose(t.value, perm), merged),
                         c.i64s(diagonal), p);
      t.labels = labels;
      if (!c.ok())
        return failure();
    }
  }

  LogicalResult checkSizes(const Term &t) {
    auto shape = Composer::type(t.value).getShape();
    for (auto [l, d] : llvm::zip(t.labels, shape)) {
      auto [it, inserted] = sizes.try_emplace(l, d);
      if (!inserted && it->second != d)
        return n.fail("subscript " + labelName(l) + " has sizes " +
                      Twine(it->second) + " and " + Twine(d));
    }
    return success();
  }

  /// Labels the output or operands from `from` on still need.
  SmallVector<int> needed(ArrayRef<int> out, size_t from) {
    SmallVector<int> keep(out);
    for (size_t i = from; i < operands.size(); ++i)
      llvm::append_range(keep, operands[i].labels);
    return keep;
  }

  /// Sums the labels of `t` not in `keep`.
  Term sumOut(Term t, ArrayRef<int> keep) {
    SmallVector<int64_t> axes;
    SmallVector<int> rest;
    for (auto [i, l] : llvm::enumerate(t.labels)) {
      if (llvm::is_contained(keep, l))
        rest.push_back(l);
      else
        axes.push_back(i);
    }
    return {c.sum(t.value, axes, /*keepdims=*/false), rest};
  }

  /// Permutes `t` to `order` and reshapes it to the products of the groups.
  Value arrange(const Term &t, ArrayRef<SmallVector<int>> groups) {
    SmallVector<int64_t> perm, shape;
    for (const SmallVector<int> &g : groups) {
      int64_t size = 1;
      for (int l : g) {
        perm.push_back(llvm::find(t.labels, l) - t.labels.begin());
        size *= sizes[l];
      }
      shape.push_back(size);
    }
    return c.reshape(c.transpose(t.value, perm), shape);
  }

  Term contract(Term a, Term b, ArrayRef<int> keep) {
    SmallVector<int> keepA(keep), keepB(keep);
    llvm::append_range(keepA, b.labels);
    llvm::append_range(keepB, a.labels);
    a = sumOut(a, keepA);
    b = sumOut(b, keepB);
    SmallVector<int> batch, contracted, aOnly, bOnly;
    for (int l : a.labels) {
      bool inB = llvm::is_contained(b.labels, l);
      if (inB && llvm::is_contained(keep, l))
        batch.push_back(l);
      else if (inB)
        contracted.push_back(l);
      else
        aOnly.push_back(l);
    }
    for (int l : b.labels)
      if (!llvm::is_contained(a.labels, l))
        bOnly.push_back(l);
    Value lhs = arrange(a, {batch, aOnly, contracted});
    Value rhs = arrange(b, {batch, contracted, bOnly});
    Value product = c.matmul(lhs, rhs);
    SmallVector<int> labels(batch);
    llvm::append_range(labels, aOnly);
    llvm::append_range(labels, bOnly);
    SmallVector<int64_t> shape;
    for (int l : labels)
      shape.push_back(sizes[l]);
    return {c.reshape(product, shape), labels};
  }

  NodeContext &n;
  Composer c;
  SmallVector<Term> operands;
  std::map<int, int64_t> sizes;
};

LogicalResult einsum(NodeContext &n) { return EinsumLowering(n).run(); }

} // namespace

void onnx_import::registerMathHandlers(HandlerTable &t) {
  t.on("Neg", 13, unary<NegOp>);
  t.on("Abs", 13, unary<AbsOp>);
  t.on("Exp", 13, unary<ExpOp>);
  t.on("Log", 13, unary<LogOp>);
  t.on("Sqrt", 13, unary<SqrtOp>);
  t.on("Reciprocal", 13, unary<ReciprocalOp>);
  t.on("Tanh", 13, unary<TanhOp>);
  t.on("Sigmoid", 13, unary<SigmoidOp>);
  t.on("Relu", 13, unary<ReluOp>);
  t.on("Erf", 13, unary<ErfOp>);
  t.on("Sin", 7, unary<SinOp>);
  t.on("Cos", 7, unary<CosOp>);
  t.on("Tan", 7, unary<TanOp>);
  t.on("Asin", 7, unary<AsinOp>);
  t.on("Acos", 7, unary<AcosOp>);
  t.on("Atan", 7, unary<AtanOp>);
  t.on("Sinh", 9, unary<SinhOp>);
  t.on("Cosh", 9, unary<CoshOp>);
  t.on("IsNaN", 13, isNaNOp);
  t.on("IsInf", 10, isInfOp);
  t.on("Floor", 13, unary<FloorOp>);
  t.on("Ceil", 13, unary<CeilOp>);
  t.on("Not", 1, unary<NotOp>);
  t.on("Identity", 13, identity);
  t.on("Add", 13, binary<AddOp>);
  t.on("Sub", 13, binary<SubOp>);
  t.on("Mul", 13, binary<MulOp>);
  t.on("Div", 13, binary<DivOp>);
  t.on("Pow", 13, powOp);
  t.on("Equal", 13, binary<EqualOp>);
  t.on("Less", 13, binary<LessOp>);
  t.on("LessOrEqual", 12, binary<LessEqualOp>);
  t.on("Greater", 13, binary<GreaterOp>);
  t.on("GreaterOrEqual", 12, binary<GreaterEqualOp>);
  t.on("And", 7, binary<AndOp>);
  t.on("Or", 7, binary<OrOp>);
  t.on("Xor", 7, binary<XorOp>);
  t.on("Max", 13, variadic<MaxOp>);
  t.on("Min", 13, variadic<MinOp>);
  t.on("Sum", 13, variadic<AddOp>);
  t.on("Mean", 13, mean);
  t.on("Where", 9, where);
  t.on("Cast", 13, castOp);
  t.on("CastLike", 15, castLike);
  t.on("Clip", 13, clip);
  t.on("Gelu", 20, gelu);
  t.on("LeakyRelu", 6, leakyRelu);
  t.on("Elu", 6, eluOp);
  t.on("Celu", 12, celuOp);
  t.on("Selu", 6, seluOp);
  t.on("HardSigmoid", 6, hardSigmoidOp);
  t.on("HardSwish", 14, hardSwishOp);
  t.on("Softplus", 1, softplusOp);
  t.on("Softsign", 1, softsignOp);
  t.on("Mish", 18, mishOp);
  t.on("ThresholdedRelu", 10, thresholdedReluOp);
  t.on("Sign", 13, signOp);
  t.on("Shrink", 9, shrinkOp);
  t.on("PRelu", 9, preluOp);
  t.on("ReduceSum", 13, reduce<ReduceSumOp, true>);
  t.on("ReduceMean", 13, reduce<ReduceMeanOp, false>);
  t.on("ReduceMean", 18, reduce<ReduceMeanOp, true>);
  t.on("ReduceMax", 13, reduce<ReduceMaxOp, false>);
  t.on("ReduceMax", 18, reduce<ReduceMaxOp, true>);
  t.on("ReduceMin", 13, reduce<ReduceMinOp, false>);
  t.on("ReduceMin", 18, reduce<ReduceMinOp, true>);
  t.on("ReduceL1", 13, reduceComposite<CompositeReduce::L1, false>);
  t.on("ReduceL1", 18, reduceComposite<CompositeReduce::L1, true>);
  t.on("ReduceL2", 13, reduceComposite<CompositeReduce::L2, false>);
  t.on("ReduceL2", 18, reduceComposite<CompositeReduce::L2, true>);
  t.on("ReduceSumSquare", 13,
       reduceComposite<CompositeReduce::SumSquare, false>);
  t.on("ReduceSumSquare", 18,
       reduceComposite<CompositeReduce::SumSquare, true>);
  t.on("ReduceLogSumExp", 13,
       reduceComposite<CompositeReduce::LogSumExp, false>);
  t.on("ReduceLogSumExp", 18,
       reduceComposite<CompositeReduce::LogSumExp, true>);
  t.on("ArgMax", 13, argExtreme<false>);
  t.on("ArgMin", 13, argExtreme<true>);
  t.on("ReduceProd", 13, reduceProd<false>);
  t.on("ReduceProd", 18, reduceProd<true>);
  t.on("Mod", 13, modOp);
  t.on("CumSum", 14, cumSum);
  t.on("Einsum", 12, einsum);
  t.on("MatMul", 13, matmul);
  t.on("Gemm", 13, gemm);
}
