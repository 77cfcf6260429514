//===- TrainoptFolds.cpp - trainopt constant folding ----------------------===//
//
/// \file
/// Folders of the trainopt ops. They serve two purposes: canonicalization,
/// and the importer, which folds ONNX shape arithmetic (`Shape`, `Gather`,
/// `Concat`, ... on constants) to the static values that `Reshape`, `Expand`
/// and friends need. Folding of constants is limited to small tensors so a
/// fold never copies a weight.
//
//===----------------------------------------------------------------------===//

#include "trainopt/Dialect/Trainopt/IR/TrainoptOps.h"

#include "mlir/IR/BuiltinAttributes.h"
#include "mlir/IR/Matchers.h"
#include "llvm/ADT/APFloat.h"
#include "llvm/ADT/APInt.h"
#include "llvm/ADT/APSInt.h"

#include <cmath>

using namespace mlir;
using namespace mlir::trainopt;

/// Constants larger than this are never folded.
static constexpr int64_t kMaxFoldElements = 1 << 16;

static DenseElementsAttr foldable(Attribute attr) {
  auto dense = dyn_cast_or_null<DenseElementsAttr>(attr);
  if (!dense || dense.getNumElements() > kMaxFoldElements)
    return {};
  return dense;
}

/// Row-major strides of `shape`.
static SmallVector<int64_t> stridesOf(ArrayRef<int64_t> shape) {
  SmallVector<int64_t> strides(shape.size(), 1);
  for (int64_t i = static_cast<int64_t>(shape.size()) - 2; i >= 0; --i)
    strides[i] = strides[i + 1] * shape[i + 1];
  return strides;
}

/// Linear index into an operand of `shape` broadcast to `resultShape` for the
/// result element at `linear`.
static int64_t broadcastSource(ArrayRef<int64_t> resultShape,
                               ArrayRef<int64_t> shape, int64_t linear) {
  SmallVector<int64_t> rs = stridesOf(resultShape), os = stridesOf(shape);
  size_t offset = resultShape.size() - shape.size();
  int64_t src = 0;
  for (size_t i = 0; i < resultShape.size(); ++i) {
    int64_t idx = (linear / rs[i]) % resultShape[i];
    if (i >= offset && shape[i - offset] != 1)
      src += idx * os[i - offset];
  }
  return src;
}

/// Evaluates a broadcasting binary op on two constants. `intFn`/`floatFn`
/// return the result element or std::nullopt to give up (division by zero).
template <typename IntFn, typename FloatFn>
static Attribute foldBroadcast(ArrayRef<Attribute> operands, Type resultType,
                               IntFn intFn, FloatFn floatFn) {
  DenseElementsAttr lhs = foldable(operands[0]), rhs = foldable(operands[1]);
  auto type = cast<RankedTensorType>(resultType);
  if (!lhs || !rhs || type.getNumElements() > kMaxFoldElements)
    return {};
  ArrayRef<int64_t> ls = lhs.getType().getShape(),
                    rs = rhs.getType().getShape();
  bool isFloat = isa<FloatType>(lhs.getElementType());
  SmallVector<Attribute> out;
  Type outElt = type.getElementType();
  for (int64_t i = 0, e = type.getNumElements(); i < e; ++i) {
    int64_t li = broadcastSource(type.getShape(), ls, i);
    int64_t ri = broadcastSource(type.getShape(), rs, i);
    std::optional<Attribute> r;
    if (isFloat)
      r = floatFn(lhs.getValues<APFloat>()[li], rhs.getValues<APFloat>()[ri],
                  outElt);
    else
      r = intFn(lhs.getValues<APInt>()[li], rhs.getValues<APInt>()[ri], outElt);
    if (!r)
      return {};
    out.push_back(*r);
  }
  return DenseElementsAttr::get(type, out);
}

static bool isSplatOf(Attribute attr, double value) {
  auto dense = dyn_cast_or_null<DenseElementsAttr>(attr);
  if (!dense || !dense.isSplat())
    return false;
  if (isa<FloatType>(dense.getElementType()))
    return dense.getSplatValue<APFloat>().convertToDouble() == value;
  return dense.getSplatValue<APInt>().getSExtValue() ==
         static_cast<int64_t>(value);
}

namespace {
/// Builds the folders of the arithmetic ops from one APInt and one APFloat
/// operation.
template <typename IntOp, typename FloatOp>
Attribute foldArith(ArrayRef<Attribute> operands, Type type, IntOp intOp,
                    FloatOp floatOp) {
  return foldBroadcast(
      operands, type,
      [&](const APInt &a, const APInt &b,
          Type elt) -> std::optional<Attribute> {
        std::optional<APInt> r = intOp(a, b);
        if (!r)
          return std::nullopt;
        return IntegerAttr::get(elt, *r);
      },
      [&](APFloat a, const APFloat &b, Type elt) -> std::optional<Attribute> {
        return FloatAttr::get(elt, floatOp(a, b));
      });
}
} // namespace

OpFoldResult AddOp::fold(FoldAdaptor adaptor) {
  if (getLhs().getType() == getType() && isSplatOf(adaptor.getRhs(), 0))
    return getLhs();
  if (getRhs().getType() == getType() && isSplatOf(adaptor.getLhs(), 0))
    return getRhs();
  return foldArith(
      adaptor.getOperands(), getType(),
      [](const APInt &a, const APInt &b) -> std::optional<APInt> {
        return a + b;
      },
      [](APFloat a, const APFloat &b) {
        a.add(b, APFloat::rmNearestTiesToEven);
        return a;
      });
}

OpFoldResult SubOp::fold(FoldAdaptor adaptor) {
  if (getLhs().getType() == getType() && isSplatOf(adaptor.getRhs(), 0))
    return getLhs();
  return foldArith(
      adaptor.getOperands(), getType(),
      [](const APInt &a, const APInt &b) -> std::optional<APInt> {
        return a - b;
      },
      [](APFloat a, const APFloat &b) {
        a.subtract(b, APFloat::rmNearestTiesToEven);
        return a;
      });
}

OpFoldResult MulOp::fold(FoldAdaptor adaptor) {
  if (getLhs().getType() == getType() && isSplatOf(adaptor.getRhs(), 1))
    return getLhs();
  if (getRhs().getType() == getType() && isSplatOf(adaptor.getLhs(), 1))
    return getRhs();
  return foldArith(
      adaptor.getOperands(), getType(),
      [](const APInt &a, const APInt &b) -> std::optional<APInt> {
        return a * b;
      },
      [](APFloat a, const APFloat &b) {
        a.multiply(b, APFloat::rmNearestTiesToEven);
        return a;
      });
}

OpFoldResult DivOp::fold(FoldAdaptor adaptor) {
  if (getLhs().getType() == getType() && isSplatOf(adaptor.getRhs(), 1))
    return getLhs();
  return foldArith(
      adaptor.getOperands(), getType(),
      [](const APInt &a, const APInt &b) -> std::optional<APInt> {
        if (b.isZero())
          return std::nullopt;
        // ONNX integer Div truncates toward zero, like C++.
        return a.sdiv(b);
      },
      [](APFloat a, const APFloat &b) {
        a.divide(b, APFloat::rmNearestTiesToEven);
        return a;
      });
}

OpFoldResult PowOp::fold(FoldAdaptor adaptor) {
  if (getLhs().getType() == getType() && isSplatOf(adaptor.getRhs(), 1))
    return getLhs();
  return foldArith(
      adaptor.getOperands(), getType(),
      [](const APInt &, const APInt &) -> std::optional<APInt> {
        return std::nullopt;
      },
      [](APFloat a, const APFloat &b) {
        bool lost;
        APFloat r(std::pow(a.convertToDouble(), b.convertToDouble()));
        r.convert(a.getSemantics(), APFloat::rmNearestTiesToEven, &lost);
        return r;
      });
}

OpFoldResult MaxOp::fold(FoldAdaptor adaptor) {
  return foldArith(
      adaptor.getOperands(), getType(),
      [](const APInt &a, const APInt &b) -> std::optional<APInt> {
        return a.sge(b) ? a : b;
      },
      [](APFloat a, const APFloat &b) { return llvm::maximum(a, b); });
}

OpFoldResult MinOp::fold(FoldAdaptor adaptor) {
  return foldArith(
      adaptor.getOperands(), getType(),
      [](const APInt &a, const APInt &b) -> std::optional<APInt> {
        return a.sle(b) ? a : b;
      },
      [](APFloat a, const APFloat &b) { return llvm::minimum(a, b); });
}

/// Folds a comparison; `pred` maps a three-way comparison result to bool.
template <typename Pred>
static Attribute foldCompare(ArrayRef<Attribute> operands, Type type,
                             Pred pred) {
  return foldBroadcast(
      operands, type,
      [&](const APInt &a, const APInt &b,
          Type elt) -> std::optional<Attribute> {
        int c = a.slt(b) ? -1 : (a == b ? 0 : 1);
        return IntegerAttr::get(elt, pred(c));
      },
      [&](APFloat a, const APFloat &b, Type elt) -> std::optional<Attribute> {
        APFloat::cmpResult r = a.compare(b);
        if (r == APFloat::cmpUnordered)
          return IntegerAttr::get(elt, 0);
        int c =
            r == APFloat::cmpLessThan ? -1 : (r == APFloat::cmpEqual ? 0 : 1);
        return IntegerAttr::get(elt, pred(c));
      });
}

OpFoldResult EqualOp::fold(FoldAdaptor adaptor) {
  return foldCompare(adaptor.getOperands(), getType(),
                     [](int c) { return c == 0; });
}
OpFoldResult LessOp::fold(FoldAdaptor adaptor) {
  return foldCompare(adaptor.getOperands(), getType(),
                     [](int c) { return c < 0; });
}
OpFoldResult LessEqualOp::fold(FoldAdaptor adaptor) {
  return foldCompare(adaptor.getOperands(), getType(),
                     [](int c) { return c <= 0; });
}
OpFoldResult GreaterOp::fold(FoldAdaptor adaptor) {
  return foldCompare(adaptor.getOperands(), getType(),
                     [](int c) { return c > 0; });
}
OpFoldResult GreaterEqualOp::fold(FoldAdaptor adaptor) {
  return foldCompare(adaptor.getOperands(), getType(),
                     [](int c) { return c >= 0; });
}

/// Folds a logical op on constant booleans (shape arithmetic: the sign fix
/// of an integer Mod).
template <typename Fn>
static Attribute foldLogical(ArrayRef<Attribute> operands, Type type, Fn fn) {
  return foldBroadcast(
      operands, type,
      [&](const APInt &a, const APInt &b, Type elt) -> std::optional<Attribute> {
        return IntegerAttr::get(elt, fn(!a.isZero(), !b.isZero()));
      },
      [](APFloat, const APFloat &, Type) -> std::optional<Attribute> {
        return std::nullopt;
      });
}

OpFoldResult AndOp::fold(FoldAdaptor adaptor) {
  return foldLogical(adaptor.getOperands(), getType(),
                     [](bool a, bool b) { return a && b; });
}
OpFoldResult OrOp::fold(FoldAdaptor adaptor) {
  return foldLogical(adaptor.getOperands(), getType(),
                     [](bool a, bool b) { return a || b; });
}
OpFoldResult XorOp::fold(FoldAdaptor adaptor) {
  return foldLogical(adaptor.getOperands(), getType(),
                     [](bool a, bool b) { return a != b; });
}
OpFoldResult NotOp::fold(FoldAdaptor adaptor) {
  DenseElementsAttr x = foldable(adaptor.getX());
  if (!x)
    return {};
  SmallVector<bool> out;
  for (bool v : x.getValues<bool>())
    out.push_back(!v);
  return DenseElementsAttr::get(cast<ShapedType>(getType()), out);
}

OpFoldResult NegOp::fold(FoldAdaptor adaptor) {
  DenseElementsAttr x = foldable(adaptor.getX());
  if (!x)
    return {};
  if (isa<FloatType>(x.getElementType()))
    return x.mapValues(x.getElementType(),
                       [](const APFloat &v) { return (-v).bitcastToAPInt(); });
  return x.mapValues(x.getElementType(), [](const APInt &v) { return -v; });
}

OpFoldResult WhereOp::fold(FoldAdaptor adaptor) {
  auto cond = dyn_cast_or_null<DenseElementsAttr>(adaptor.getCondition());
  if (cond && cond.isSplat()) {
    Value picked = cond.getSplatValue<bool>() ? getOnTrue() : getOnFalse();
    if (picked.getType() == getType())
      return picked;
  }
  // All three constant (shape arithmetic such as PyTorch's expand of -1
  // dims): select elementwise, with broadcasting.
  DenseElementsAttr c = foldable(adaptor.getCondition()),
                    a = foldable(adaptor.getOnTrue()),
                    b = foldable(adaptor.getOnFalse());
  auto type = cast<RankedTensorType>(getType());
  if (!c || !a || !b || type.getNumElements() > kMaxFoldElements)
    return {};
  auto av = a.getValues<Attribute>(), bv = b.getValues<Attribute>();
  auto cv = c.getValues<bool>();
  SmallVector<Attribute> out;
  for (int64_t i = 0, e = type.getNumElements(); i < e; ++i) {
    bool pick = cv[broadcastSource(type.getShape(), c.getType().getShape(), i)];
    out.push_back(pick ? av[broadcastSource(type.getShape(),
                                            a.getType().getShape(), i)]
                       : bv[broadcastSource(type.getShape(),
                                            b.getType().getShape(), i)]);
  }
  return DenseElementsAttr::get(type, out);
}

/// Converts one constant element to `to`, following `trainopt.cast`.
static Attribute castElement(Attribute value, Type to) {
  bool fromBool = false;
  if (auto i = dyn_cast<IntegerAttr>(value))
    fromBool = i.getType().isInteger(1);
  if (to.isInteger(1)) {
    if (auto f = dyn_cast<FloatAttr>(value))
      return IntegerAttr::get(to, !f.getValue().isZero());
    return IntegerAttr::get(to, !cast<IntegerAttr>(value).getValue().isZero());
  }
  if (auto floatTy = dyn_cast<FloatType>(to)) {
    bool lost;
    APFloat r(0.0);
    if (auto f = dyn_cast<FloatAttr>(value)) {
      r = f.getValue();
      r.convert(floatTy.getFloatSemantics(), APFloat::rmNearestTiesToEven,
                &lost);
    } else {
      // One rounding, straight from the integer.
      r = APFloat(floatTy.getFloatSemantics());
      r.convertFromAPInt(cast<IntegerAttr>(value).getValue(), !fromBool,
                         APFloat::rmNearestTiesToEven);
    }
    return FloatAttr::get(to, r);
  }
  unsigned width = to.getIntOrFloatBitWidth();
  if (auto f = dyn_cast<FloatAttr>(value)) {
    APSInt r(width, /*isUnsigned=*/false);
    bool exact;
    f.getValue().convertToInteger(r, APFloat::rmTowardZero, &exact);
    return IntegerAttr::get(to, r);
  }
  APInt v = cast<IntegerAttr>(value).getValue();
  return IntegerAttr::get(to, fromBool ? v.zextOrTrunc(width)
                                       : v.sextOrTrunc(width));
}

/// Whether every value of float type `from` is exactly a value of `via`
/// (bf16 and f16 in f32, f32 in f64).
static bool holdsExactly(Type via, Type from) {
  auto v = dyn_cast<FloatType>(via), f = dyn_cast<FloatType>(from);
  if (!v || !f)
    return false;
  const llvm::fltSemantics &vs = v.getFloatSemantics(),
                           &fs = f.getFloatSemantics();
  return llvm::APFloat::semanticsPrecision(vs) >=
             llvm::APFloat::semanticsPrecision(fs) &&
         llvm::APFloat::semanticsMaxExponent(vs) >=
             llvm::APFloat::semanticsMaxExponent(fs) &&
         llvm::APFloat::semanticsMinExponent(vs) <=
             llvm::APFloat::semanticsMinExponent(fs);
}

OpFoldResult CastOp::fold(FoldAdaptor adaptor) {
  if (getX().getType() == getType())
    return getX();
  // cast(cast(x : A -> B) : B -> C) is cast(x : A -> C) when B holds every
  // A exactly (bf16 -> f32 -> bf16 is x; f32 -> bf16 -> f32 is not).
  if (auto inner = getX().getDefiningOp<CastOp>()) {
    Type a = inner.getX().getType().getElementType(),
         b = inner.getType().getElementType();
    if (holdsExactly(b, a) && isa<FloatType>(getType().getElementType())) {
      if (inner.getX().getType() == getType())
        return inner.getX();
      getXMutable().assign(inner.getX());
      return getResult();
    }
  }
  DenseElementsAttr x = foldable(adaptor.getX());
  if (!x)
    return {};
  Type to = getType().getElementType();
  SmallVector<Attribute> out;
  for (Attribute v : x.getValues<Attribute>())
    out.push_back(castElement(v, to));
  return DenseElementsAttr::get(getType(), out);
}

OpFoldResult ConstantOp::fold(FoldAdaptor) { return getValue(); }

OpFoldResult ReshapeOp::fold(FoldAdaptor adaptor) {
  if (getX().getType() == getType())
    return getX();
  // reshape(reshape(x)) is one reshape of x.
  if (auto inner = getX().getDefiningOp<ReshapeOp>()) {
    getXMutable().assign(inner.getX());
    return getResult();
  }
  if (auto x = dyn_cast_or_null<DenseElementsAttr>(adaptor.getX()))
    return x.reshape(getType());
  return {};
}

OpFoldResult TransposeOp::fold(FoldAdaptor adaptor) {
  ArrayRef<int64_t> perm = getPermutation();
  if (llvm::equal(perm, llvm::seq<int64_t>(0, perm.size())))
    return getX();
  // transpose(transpose(x, p), q) is transpose(x, p o q).
  if (auto inner = getX().getDefiningOp<TransposeOp>()) {
    SmallVector<int64_t> composed;
    for (int64_t q : perm)
      composed.push_back(inner.getPermutation()[q]);
    getXMutable().assign(inner.getX());
    setPermutation(composed);
    return getResult();
  }
  DenseElementsAttr x = foldable(adaptor.getX());
  if (!x)
    return {};
  auto values = llvm::to_vector(x.getValues<Attribute>());
  ArrayRef<int64_t> inShape = x.getType().getShape();
  SmallVector<int64_t> inStrides = stridesOf(inShape);
  SmallVector<int64_t> outStrides = stridesOf(getType().getShape());
  SmallVector<Attribute> out(values.size());
  for (int64_t i = 0, e = values.size(); i < e; ++i) {
    int64_t src = 0;
    for (size_t d = 0; d < perm.size(); ++d)
      src +=
          ((i / outStrides[d]) % getType().getDimSize(d)) * inStrides[perm[d]];
    out[i] = values[src];
  }
  return DenseElementsAttr::get(getType(), out);
}

OpFoldResult BroadcastToOp::fold(FoldAdaptor adaptor) {
  if (getX().getType() == getType())
    return getX();
  DenseElementsAttr x = foldable(adaptor.getX());
  if (!x || getType().getNumElements() > kMaxFoldElements)
    return {};
  if (x.isSplat())
    return x.resizeSplat(getType());
  auto values = llvm::to_vector(x.getValues<Attribute>());
  SmallVector<Attribute> out;
  for (int64_t i = 0, e = getType().getNumElements(); i < e; ++i)
    out.push_back(values[broadcastSource(getType().getShape(),
                                         x.getType().getShape(), i)]);
  return DenseElementsAttr::get(getType(), out);
}

OpFoldResult SliceOp::fold(FoldAdaptor adaptor) {
  if (getX().getType() == getType())
    return getX();
  DenseElementsAttr x = foldable(adaptor.getX());
  if (!x)
    return {};
  auto values = llvm::to_vector(x.getValues<Attribute>());
  SmallVector<int64_t> inStrides = stridesOf(x.getType().getShape());
  SmallVector<int64_t> outStrides = stridesOf(getType().getShape());
  SmallVector<Attribute> out;
  for (int64_t i = 0, e = getType().getNumElements(); i < e; ++i) {
    int64_t src = 0;
    for (int64_t d = 0; d < getType().getRank(); ++d) {
      int64_t idx = (i / outStrides[d]) % getType().getDimSize(d);
      src += (getStart()[d] + idx * getStride()[d]) * inStrides[d];
    }
    out.push_back(values[src]);
  }
  return DenseElementsAttr::get(getType(), out);
}

OpFoldResult ConcatOp::fold(FoldAdaptor adaptor) {
  if (getInputs().size() == 1 && getInputs()[0].getType() == getType())
    return getInputs()[0];
  if (getType().getNumElements() > kMaxFoldElements)
    return {};
  SmallVector<SmallVector<Attribute>> inputs;
  for (Attribute a : adaptor.getInputs()) {
    DenseElementsAttr d = foldable(a);
    if (!d)
      return {};
    inputs.push_back(llvm::to_vector(d.getValues<Attribute>()));
  }
  // Row-major: each "outer" index copies one contiguous run per input.
  int64_t axis = getAxis();
  int64_t outer = 1;
  for (int64_t d = 0; d < axis; ++d)
    outer *= getType().getDimSize(d);
  SmallVector<Attribute> out;
  for (int64_t o = 0; o < outer; ++o) {
    for (auto [values, v] : llvm::zip(inputs, getInputs())) {
      int64_t run = values.size() / std::max<int64_t>(outer, 1);
      if (outer == 0)
        break;
      out.append(values.begin() + o * run, values.begin() + (o + 1) * run);
    }
  }
  return DenseElementsAttr::get(getType(), out);
}

OpFoldResult GatherOp::fold(FoldAdaptor adaptor) {
  DenseElementsAttr data = foldable(adaptor.getData());
  DenseElementsAttr indices = foldable(adaptor.getIndices());
  if (!data || !indices || getType().getNumElements() > kMaxFoldElements)
    return {};
  auto values = llvm::to_vector(data.getValues<Attribute>());
  ArrayRef<int64_t> dshape = data.getType().getShape();
  int64_t axis = getAxis(), dim = dshape[axis];
  int64_t outer = 1, inner = 1;
  for (int64_t d = 0; d < axis; ++d)
    outer *= dshape[d];
  for (int64_t d = axis + 1; d < static_cast<int64_t>(dshape.size()); ++d)
    inner *= dshape[d];
  SmallVector<Attribute> out;
  for (int64_t o = 0; o < outer; ++o) {
    for (APInt idxValue : indices.getValues<APInt>()) {
      int64_t idx = idxValue.getSExtValue();
      if (idx < -dim || idx >= dim)
        return {};
      if (idx < 0)
        idx += dim;
      for (int64_t i = 0; i < inner; ++i)
        out.push_back(values[(o * dim + idx) * inner + i]);
    }
  }
  return DenseElementsAttr::get(getType(), out);
}

OpFoldResult TriluOp::fold(FoldAdaptor adaptor) {
  DenseElementsAttr x = foldable(adaptor.getX());
  if (!x)
    return {};
  auto values = llvm::to_vector(x.getValues<Attribute>());
  int64_t rows = getType().getDimSize(getType().getRank() - 2);
  int64_t cols = getType().getDimSize(getType().getRank() - 1);
  Attribute zero =
      castElement(IntegerAttr::get(IntegerType::get(getContext(), 64), 0),
                  getType().getElementType());
  for (int64_t i = 0, e = values.size(); i < e; ++i) {
    int64_t r = (i / cols) % rows, c = i % cols;
    int64_t diagonal = static_cast<int64_t>(getDiagonal());
    bool keep = getUpper() ? c - r >= diagonal : c - r <= diagonal;
    if (!keep)
      values[i] = zero;
  }
  return DenseElementsAttr::get(getType(), values);
}
