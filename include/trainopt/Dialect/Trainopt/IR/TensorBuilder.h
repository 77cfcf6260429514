//===- TensorBuilder.h - tensor arithmetic on trainopt ops ------*- C++ -*-===//
//
/// \file
/// One builder for the tensor arithmetic that passes and VJPs write:
/// constants of a value's element type, elementwise arithmetic with scalars,
/// comparisons, casts, reductions and the broadcast helpers cotangents need.
/// The VJPs, the training-step stages (gradient transforms, optimizers,
/// schedules) and the importer's helpers all build through it.
//
//===----------------------------------------------------------------------===//

#ifndef TRAINOPT_DIALECT_TRAINOPT_IR_TENSORBUILDER_H
#define TRAINOPT_DIALECT_TRAINOPT_IR_TENSORBUILDER_H

#include "trainopt/Dialect/Trainopt/IR/TrainoptOps.h"

#include "mlir/IR/ImplicitLocOpBuilder.h"
#include "mlir/IR/TypeUtilities.h"

#include <algorithm>
#include <cmath>

namespace mlir::trainopt {

class TensorBuilder {
public:
  TensorBuilder(OpBuilder &builder, Location loc) : b(loc, builder) {}

  ImplicitLocOpBuilder b;

  static RankedTensorType type(Value v) {
    return llvm::cast<RankedTensorType>(v.getType());
  }
  static Type elementType(Value v) { return getElementTypeOrSelf(v); }
  /// Whether `t` is a ranked tensor of floats.
  static bool isFloatTensor(Type t) {
    auto rt = llvm::dyn_cast<RankedTensorType>(t);
    return rt && llvm::isa<FloatType>(rt.getElementType());
  }

  /// A 0-d constant of element type `elt` (float or integer; an integer
  /// saturates, and NaN becomes 0, as a float attribute may exceed the
  /// integer range).
  Value scalar(Type elt, double v) {
    auto t = RankedTensorType::get({}, elt);
    if (isa<FloatType>(elt))
      return ConstantOp::create(
          b, DenseElementsAttr::get(t, b.getFloatAttr(elt, v)));
    double clamped = std::isnan(v) ? 0.0 : std::clamp(v, -0x1p63, 0x1p63 - 1024.0);
    return ConstantOp::create(
        b, DenseElementsAttr::get(
               t, b.getIntegerAttr(elt, static_cast<int64_t>(clamped))));
  }
  /// A 0-d constant of `like`'s element type.
  Value scalar(Value like, double v) { return scalar(elementType(like), v); }
  Value zerosLike(Value v) {
    return ConstantOp::create(
        b, DenseElementsAttr::get(
               type(v), b.getFloatAttr(type(v).getElementType(), 0.0)));
  }

  Value add(Value x, Value y) { return AddOp::create(b, x, y); }
  Value sub(Value x, Value y) { return SubOp::create(b, x, y); }
  Value mul(Value x, Value y) { return MulOp::create(b, x, y); }
  Value div(Value x, Value y) { return DivOp::create(b, x, y); }
  Value add(Value x, double c) { return add(x, scalar(x, c)); }
  Value mul(Value x, double c) { return mul(x, scalar(x, c)); }
  Value neg(Value x) { return NegOp::create(b, x); }
  Value sqrt(Value x) { return SqrtOp::create(b, x); }
  /// -1, 0 or 1 by the sign of `x` (0 at 0, as torch.sign).
  Value sign(Value x) {
    Value zero = scalar(x, 0.0);
    return sub(asFloat(greater(x, zero), x), asFloat(less(x, zero), x));
  }
  Value floor(Value x) { return FloorOp::create(b, x); }
  /// x rounded to the nearest integer, ties to even (std::nearbyint in the
  /// default rounding mode): floor(x + 0.5), less 1 at an odd tie.
  Value roundHalfEven(Value x) {
    Value t = floor(add(x, 0.5));
    Value tie = equal(sub(t, x), scalar(x, 0.5));
    Value odd = equal(sub(t, mul(floor(mul(t, 0.5)), 2.0)), scalar(x, 1.0));
    return where(logicalAnd(tie, odd), sub(t, scalar(x, 1.0)), t);
  }
  Value cos(Value x) { return CosOp::create(b, x); }
  Value pow(Value x, Value y) { return PowOp::create(b, x, y); }
  Value min(Value x, Value y) { return MinOp::create(b, x, y); }
  Value max(Value x, Value y) { return MaxOp::create(b, x, y); }
  Value where(Value c, Value x, Value y) { return WhereOp::create(b, c, x, y); }

  Value equal(Value x, Value y) { return EqualOp::create(b, x, y); }
  Value less(Value x, Value y) { return LessOp::create(b, x, y); }
  Value lessEqual(Value x, Value y) { return LessEqualOp::create(b, x, y); }
  Value greater(Value x, Value y) { return GreaterOp::create(b, x, y); }
  Value greaterEqual(Value x, Value y) {
    return GreaterEqualOp::create(b, x, y);
  }
  Value logicalAnd(Value x, Value y) { return AndOp::create(b, x, y); }

  /// `x` in element type `elt` (no op when it already is).
  Value cast(Value x, Type elt) {
    if (type(x).getElementType() == elt)
      return x;
    return CastOp::create(b, type(x).clone(elt), x);
  }
  /// `flag` (i1) as 0/1 in `like`'s element type, same shape as `flag`.
  Value asFloat(Value flag, Value like) {
    return cast(flag, elementType(like));
  }

  Value sum(Value x, ArrayRef<int64_t> axes, bool keepdims) {
    return ReduceSumOp::create(b, x, axes, keepdims);
  }
  /// The 0-d sum of every element.
  Value sumAll(Value x) { return ReduceSumOp::create(b, x); }
  Value sumSquares(Value x) { return sumAll(mul(x, x)); }

  /// Statistics over `axes`, kept as size-1 dims: the mean, the biased
  /// variance and 1 / sqrt(var + eps).
  struct Moments {
    Value mean, var, inv;
  };
  /// The normalizations' statistics. The BatchNorm and LayerNorm lowerings
  /// and their VJPs all build them here, op for op, so that CSE hands the
  /// backward the forward's statistics instead of two more passes over x.
  Moments moments(Value x, ArrayRef<int64_t> axes, double eps) {
    auto t = type(x);
    Value mean = ReduceMeanOp::create(b, x, axes, true);
    Value centered = sub(x, broadcast(mean, t));
    Value var = ReduceMeanOp::create(b, mul(centered, centered), axes, true);
    Value inv = RsqrtOp::create(b, add(var, scalar(x, eps)));
    return {mean, var, inv};
  }

  Value broadcast(Value x, Type to) {
    if (x.getType() == to)
      return x;
    return BroadcastToOp::create(b, to, x);
  }
  Value reshape(Value x, Type to) {
    if (x.getType() == to)
      return x;
    return ReshapeOp::create(b, to, x);
  }
  /// Sums `g` over the dims that broadcasting added to reach `g`'s shape
  /// from `target`'s: the cotangent of a broadcast operand.
  Value reduceTo(Value g, Type targetType) {
    auto target = llvm::cast<RankedTensorType>(targetType);
    ArrayRef<int64_t> gs = type(g).getShape(), ts = target.getShape();
    if (gs == ts)
      return g;
    int64_t offset = gs.size() - ts.size();
    SmallVector<int64_t> axes;
    for (int64_t d = 0; d < static_cast<int64_t>(gs.size()); ++d)
      if (d < offset || (ts[d - offset] == 1 && gs[d] != 1))
        axes.push_back(d);
    Value summed = axes.empty() ? g : sum(g, axes, /*keepdims=*/true);
    return reshape(summed, target.clone(type(g).getElementType()));
  }
  /// `reduced` (a reduction over `axes`) put back to `full`'s shape.
  Value expandFrom(Value reduced, ArrayRef<int64_t> axes, bool keepdims,
                   RankedTensorType full) {
    SmallVector<int64_t> kept(full.getShape());
    for (int64_t a : axes)
      kept[a] = 1;
    Value r = keepdims ? reduced : reshape(reduced, type(reduced).clone(kept));
    return broadcast(r, full.clone(type(reduced).getElementType()));
  }
};

} // namespace mlir::trainopt

#endif // TRAINOPT_DIALECT_TRAINOPT_IR_TENSORBUILDER_H
