//===- TrainoptVJP.cpp - vector-Jacobian products of the trainopt ops -----===//
//
/// \file
/// The DifferentiableOpInterface of every differentiable trainopt op. Each
/// VJP is written in trainopt ops (and the backward ops conv_grad_*,
/// *_pool_grad, scatter_add, interior pad), so the backward pass is ordinary
/// IR that every later pass, the evaluator and the backends handle like the
/// forward pass. Conventions follow PyTorch where the derivative is a choice
/// (ties of max/min split evenly, clip passes no gradient at its bounds as
/// hardtanh_backward, max-pool routes to the first maximum).
//
//===----------------------------------------------------------------------===//

#include "trainopt/Dialect/Trainopt/IR/TrainoptOps.h"
#include "trainopt/Dialect/Trainopt/IR/TensorBuilder.h"

#include "mlir/Dialect/Shard/IR/ShardOps.h"
#include "mlir/IR/Builders.h"
#include "mlir/IR/ImplicitLocOpBuilder.h"
#include "mlir/IR/TypeUtilities.h"

#include <cmath>

using namespace mlir;
using namespace mlir::trainopt;

namespace {

bool isFloatValue(Value v) {
  return isa<FloatType>(getElementTypeOrSelf(v.getType()));
}

/// Fills `grads` with nulls for `n` operands.
void noGrads(SmallVectorImpl<Value> &grads, unsigned n) {
  grads.assign(n, Value());
}

} // namespace

/// The VJP of an op whose first operand's cotangent is a function of the
/// first result's cotangent alone (shape and routing ops); the other
/// operands get none.
template <typename Fn>
static LogicalResult
firstOperandVJP(Operation *op, OpBuilder &builder, ArrayRef<Value> resultGrads,
                SmallVectorImpl<Value> &operandGrads, Fn fn) {
  noGrads(operandGrads, op->getNumOperands());
  if (!resultGrads[0] || !isFloatValue(op->getOperand(0)))
    return success();
  TensorBuilder G(builder, op->getLoc());
  operandGrads[0] = fn(G, resultGrads[0]);
  return success();
}

//===----------------------------------------------------------------------===//
// Unary elementwise
//===----------------------------------------------------------------------===//

#define UNARY_VJP(OP, BODY)                                                    \
  LogicalResult OP::buildVJP(OpBuilder &builder, ArrayRef<Value> resultGrads,  \
                             SmallVectorImpl<Value> &operandGrads) {           \
    noGrads(operandGrads, 1);                                                  \
    Value g = resultGrads[0];                                                  \
    if (!g || !isFloatValue(getX()))                                           \
      return success();                                                        \
    TensorBuilder G(builder, getLoc());                                        \
    Value x = getX(), y = getY();                                              \
    (void)x;                                                                   \
    (void)y;                                                                   \
    operandGrads[0] = BODY;                                                    \
    return success();                                                          \
  }

UNARY_VJP(NegOp, G.neg(g))

/// Piecewise constant: zero almost everywhere, so no cotangent (PyTorch's
/// floor and ceil backward are zeros).
#define ZERO_VJP(OP)                                                           \
  LogicalResult OP::buildVJP(OpBuilder &, ArrayRef<Value>,                     \
                             SmallVectorImpl<Value> &operandGrads) {           \
    noGrads(operandGrads, 1);                                                  \
    return success();                                                          \
  }
ZERO_VJP(FloorOp)
ZERO_VJP(CeilOp)
UNARY_VJP(ExpOp, G.mul(g, y))
UNARY_VJP(LogOp, G.div(g, x))
UNARY_VJP(SqrtOp, G.div(G.mul(g, 0.5), y))
UNARY_VJP(RsqrtOp, G.mul(G.mul(g, G.mul(y, G.mul(y, y))), -0.5))
UNARY_VJP(ReciprocalOp, G.neg(G.mul(g, G.mul(y, y))))
UNARY_VJP(TanhOp, G.mul(g, G.sub(G.scalar(y, 1.0), G.mul(y, y))))
UNARY_VJP(SigmoidOp, G.mul(g, G.mul(y, G.sub(G.scalar(y, 1.0), y))))
UNARY_VJP(SinOp, G.mul(g, CosOp::create(G.b, x)))
UNARY_VJP(CosOp, G.neg(G.mul(g, SinOp::create(G.b, x))))
UNARY_VJP(TanOp, G.mul(g, G.add(G.mul(y, y), 1.0)))
UNARY_VJP(AsinOp, G.div(g, G.sqrt(G.sub(G.scalar(x, 1.0), G.mul(x, x)))))
UNARY_VJP(AcosOp,
          G.neg(G.div(g, G.sqrt(G.sub(G.scalar(x, 1.0), G.mul(x, x))))))
UNARY_VJP(AtanOp, G.div(g, G.add(G.mul(x, x), 1.0)))
UNARY_VJP(SinhOp, G.mul(g, CoshOp::create(G.b, x)))
UNARY_VJP(CoshOp, G.mul(g, SinhOp::create(G.b, x)))
UNARY_VJP(ReluOp, G.where(GreaterOp::create(G.b, x, G.scalar(x, 0.0)), g,
                          G.zerosLike(g)))
// d erf(x) = 2/sqrt(pi) exp(-x^2).
UNARY_VJP(ErfOp, G.mul(G.mul(g, ExpOp::create(G.b, G.neg(G.mul(x, x)))),
                       2.0 / std::sqrt(M_PI)))
// d|x| = sign(x), 0 at 0 (as PyTorch).
UNARY_VJP(AbsOp,
          G.mul(g,
                G.sub(G.asFloat(GreaterOp::create(G.b, x, G.scalar(x, 0.0)), x),
                      G.asFloat(LessOp::create(G.b, x, G.scalar(x, 0.0)), x))))
#undef UNARY_VJP

LogicalResult GeluOp::buildVJP(OpBuilder &builder, ArrayRef<Value> resultGrads,
                               SmallVectorImpl<Value> &operandGrads) {
  noGrads(operandGrads, 1);
  Value g = resultGrads[0], x = getX();
  if (!g)
    return success();
  TensorBuilder G(builder, getLoc());
  Value half = G.scalar(x, 0.5), one = G.scalar(x, 1.0);
  Value d;
  if (getApproximation() == GeluApproximation::tanh) {
    // u = k (x + c x^3), d = 0.5 (1 + tanh u) + 0.5 x (1 - tanh^2 u) k (1 + 3c
    // x^2)
    double k = std::sqrt(2.0 / M_PI), c = 0.044715;
    Value x2 = G.mul(x, x);
    Value u = G.mul(G.add(x, G.mul(G.mul(x2, x), c)), k);
    Value t = TanhOp::create(G.b, u);
    Value du = G.mul(G.add(one, G.mul(x2, 3.0 * c)), k);
    d = G.add(G.mul(G.add(one, t), half),
              G.mul(G.mul(G.mul(x, half), G.sub(one, G.mul(t, t))), du));
  } else {
    // Phi(x) + x phi(x) = 0.5 (1 + erf(x / sqrt 2)) + x exp(-x^2 / 2) / sqrt(2
    // pi)
    Value cdf =
        G.mul(G.add(one, ErfOp::create(G.b, G.mul(x, M_SQRT1_2))), half);
    Value pdf = G.mul(ExpOp::create(G.b, G.mul(G.mul(x, x), -0.5)),
                      1.0 / std::sqrt(2.0 * M_PI));
    d = G.add(cdf, G.mul(x, pdf));
  }
  operandGrads[0] = G.mul(g, d);
  return success();
}

LogicalResult FakeQuantOp::buildVJP(OpBuilder &builder,
                                    ArrayRef<Value> resultGrads,
                                    SmallVectorImpl<Value> &operandGrads) {
  // The straight-through estimator, clipped to the range (the op's
  // description); scale and zero_point get none.
  noGrads(operandGrads, 3);
  Value g = resultGrads[0];
  if (!g)
    return success();
  TensorBuilder G(builder, getLoc());
  Value inverse = ReciprocalOp::create(G.b, getScale());
  Value r = G.add(G.roundHalfEven(G.mul(getX(), inverse)), getZeroPoint());
  Value inRange = G.logicalAnd(
      G.greaterEqual(r, G.scalar(r, static_cast<int64_t>(getQuantMin()))),
      G.lessEqual(r, G.scalar(r, static_cast<int64_t>(getQuantMax()))));
  operandGrads[0] = G.where(inRange, g, G.zerosLike(g));
  return success();
}

LogicalResult ClipOp::buildVJP(OpBuilder &builder, ArrayRef<Value> resultGrads,
                               SmallVectorImpl<Value> &operandGrads) {
  noGrads(operandGrads, 1);
  Value g = resultGrads[0], x = getX();
  if (!g || !isFloatValue(x))
    return success();
  TensorBuilder G(builder, getLoc());
  // The gradient passes where min < x < max, bounds excluded: ONNX Clip
  // comes from ReLU6 and Hardtanh (torch's hardtanh_backward), and an
  // excluded lower bound agrees with Relu at 0. torch.clamp, which also
  // exports to Clip, would pass it at the bounds; docs/autodiff.md says so.
  Value pass = g, zero = G.zerosLike(g);
  if (getMin())
    pass = G.where(GreaterOp::create(
                       G.b, x, G.scalar(x, getMin()->convertToDouble())),
                   pass, zero);
  if (getMax())
    pass = G.where(
        LessOp::create(G.b, x, G.scalar(x, getMax()->convertToDouble())),
        pass, zero);
  operandGrads[0] = pass;
  return success();
}

//===----------------------------------------------------------------------===//
// Binary elementwise
//===----------------------------------------------------------------------===//

/// Shared shape of the binary VJPs: `lhsGrad`/`rhsGrad` are computed at the
/// result's shape and reduced to each operand's.
template <typename OpTy, typename Fn>
static LogicalResult binaryVJP(OpTy op, OpBuilder &builder,
                               ArrayRef<Value> resultGrads,
                               SmallVectorImpl<Value> &operandGrads, Fn fn) {
  noGrads(operandGrads, 2);
  Value g = resultGrads[0];
  if (!g || !isFloatValue(op.getLhs()))
    return success();
  TensorBuilder G(builder, op.getLoc());
  auto [dl, dr] = fn(G, g, op.getLhs(), op.getRhs(), op.getResult());
  operandGrads[0] = dl ? G.reduceTo(dl, op.getLhs().getType()) : Value();
  operandGrads[1] = dr ? G.reduceTo(dr, op.getRhs().getType()) : Value();
  return success();
}

LogicalResult AddOp::buildVJP(OpBuilder &builder, ArrayRef<Value> resultGrads,
                              SmallVectorImpl<Value> &operandGrads) {
  return binaryVJP(
      *this, builder, resultGrads, operandGrads,
      [](TensorBuilder &G, Value g, Value, Value, Value) { return std::pair(g, g); });
}

LogicalResult SubOp::buildVJP(OpBuilder &builder, ArrayRef<Value> resultGrads,
                              SmallVectorImpl<Value> &operandGrads) {
  return binaryVJP(*this, builder, resultGrads, operandGrads,
                   [](TensorBuilder &G, Value g, Value, Value, Value) {
                     return std::pair(g, G.neg(g));
                   });
}

LogicalResult MulOp::buildVJP(OpBuilder &builder, ArrayRef<Value> resultGrads,
                              SmallVectorImpl<Value> &operandGrads) {
  return binaryVJP(*this, builder, resultGrads, operandGrads,
                   [](TensorBuilder &G, Value g, Value a, Value b, Value) {
                     // Sequenced: the order of function arguments' evaluation
                     // differs between compilers, and so would the IR.
                     Value da = G.mul(g, b);
                     return std::pair(da, G.mul(g, a));
                   });
}

LogicalResult DivOp::buildVJP(OpBuilder &builder, ArrayRef<Value> resultGrads,
                              SmallVectorImpl<Value> &operandGrads) {
  return binaryVJP(*this, builder, resultGrads, operandGrads,
                   [](TensorBuilder &G, Value g, Value, Value b, Value y) {
                     Value da = G.div(g, b);
                     return std::pair(da, G.neg(G.mul(da, y)));
                   });
}

LogicalResult PowOp::buildVJP(OpBuilder &builder, ArrayRef<Value> resultGrads,
                              SmallVectorImpl<Value> &operandGrads) {
  return binaryVJP(
      *this, builder, resultGrads, operandGrads,
      [](TensorBuilder &G, Value g, Value a, Value b, Value y) {
        // d/da = b a^(b-1), 0 where b == 0; d/db = y log a, 0 where a == 0
        // (PyTorch's conventions, so 0^0 and 0^b stay finite).
        Value one = G.scalar(a, 1.0), zeroG = G.zerosLike(g);
        Value bFull = G.broadcast(b, G.type(g));
        Value aFull = G.broadcast(a, G.type(g));
        Value da = G.mul(G.mul(g, bFull),
                         PowOp::create(G.b, aFull, G.sub(bFull, one)));
        da = G.where(EqualOp::create(G.b, bFull, G.scalar(b, 0.0)), zeroG, da);
        Value db = G.mul(G.mul(g, y), LogOp::create(G.b, aFull));
        db = G.where(EqualOp::create(G.b, aFull, G.scalar(a, 0.0)), zeroG, db);
        return std::pair(da, db);
      });
}

/// max/min: the gradient goes to the larger (smaller) operand, split evenly
/// on ties.
template <typename OpTy, typename Compare>
static LogicalResult extremumVJP(OpTy op, OpBuilder &builder,
                                 ArrayRef<Value> resultGrads,
                                 SmallVectorImpl<Value> &operandGrads) {
  return binaryVJP(op, builder, resultGrads, operandGrads,
                   [](TensorBuilder &G, Value g, Value a, Value b, Value) {
                     Value aFull = G.broadcast(a, G.type(g));
                     Value bFull = G.broadcast(b, G.type(g));
                     Value half = G.mul(g, 0.5), zero = G.zerosLike(g);
                     Value tie = EqualOp::create(G.b, aFull, bFull);
                     Value aWins = Compare::create(G.b, aFull, bFull);
                     Value bWins = Compare::create(G.b, bFull, aFull);
                     Value da = G.where(tie, half, G.where(aWins, g, zero));
                     Value db = G.where(tie, half, G.where(bWins, g, zero));
                     return std::pair(da, db);
                   });
}

LogicalResult MaxOp::buildVJP(OpBuilder &builder, ArrayRef<Value> resultGrads,
                              SmallVectorImpl<Value> &operandGrads) {
  return extremumVJP<MaxOp, GreaterOp>(*this, builder, resultGrads,
                                       operandGrads);
}

LogicalResult MinOp::buildVJP(OpBuilder &builder, ArrayRef<Value> resultGrads,
                              SmallVectorImpl<Value> &operandGrads) {
  return extremumVJP<MinOp, LessOp>(*this, builder, resultGrads, operandGrads);
}

LogicalResult WhereOp::buildVJP(OpBuilder &builder, ArrayRef<Value> resultGrads,
                                SmallVectorImpl<Value> &operandGrads) {
  noGrads(operandGrads, 3);
  Value g = resultGrads[0];
  if (!g || !isFloatValue(getOnTrue()))
    return success();
  TensorBuilder G(builder, getLoc());
  Value zero = G.zerosLike(g);
  operandGrads[1] =
      G.reduceTo(G.where(getCondition(), g, zero), getOnTrue().getType());
  operandGrads[2] =
      G.reduceTo(G.where(getCondition(), zero, g), getOnFalse().getType());
  return success();
}

LogicalResult CastOp::buildVJP(OpBuilder &builder, ArrayRef<Value> resultGrads,
                               SmallVectorImpl<Value> &operandGrads) {
  noGrads(operandGrads, 1);
  Value g = resultGrads[0];
  // Only float-to-float casts carry a gradient (mixed precision).
  if (!g || !isFloatValue(getX()) || !isFloatValue(getY()))
    return success();
  TensorBuilder G(builder, getLoc());
  operandGrads[0] = CastOp::create(G.b, getX().getType(), g);
  return success();
}

//===----------------------------------------------------------------------===//
// Reductions and matmul
//===----------------------------------------------------------------------===//

LogicalResult ReduceSumOp::buildVJP(OpBuilder &builder,
                                    ArrayRef<Value> resultGrads,
                                    SmallVectorImpl<Value> &operandGrads) {
  noGrads(operandGrads, 1);
  Value g = resultGrads[0];
  if (!g || !isFloatValue(getX()))
    return success();
  TensorBuilder G(builder, getLoc());
  operandGrads[0] =
      G.expandFrom(g, getReducedAxes(), getKeepdims(), G.type(getX()));
  return success();
}

LogicalResult ReduceMeanOp::buildVJP(OpBuilder &builder,
                                     ArrayRef<Value> resultGrads,
                                     SmallVectorImpl<Value> &operandGrads) {
  noGrads(operandGrads, 1);
  Value g = resultGrads[0];
  if (!g)
    return success();
  TensorBuilder G(builder, getLoc());
  int64_t count = 1;
  for (int64_t a : getReducedAxes())
    count *= G.type(getX()).getDimSize(a);
  operandGrads[0] =
      G.mul(G.expandFrom(g, getReducedAxes(), getKeepdims(), G.type(getX())),
            1.0 / static_cast<double>(count));
  return success();
}

/// reduce_max/min: the gradient is shared evenly among the elements that
/// attain the extremum (PyTorch's amax/amin).
template <typename OpTy>
static LogicalResult extremumReduceVJP(OpTy op, OpBuilder &builder,
                                       ArrayRef<Value> resultGrads,
                                       SmallVectorImpl<Value> &operandGrads) {
  noGrads(operandGrads, 1);
  Value g = resultGrads[0], x = op.getX();
  if (!g || !isFloatValue(x))
    return success();
  TensorBuilder G(builder, op.getLoc());
  auto xt = G.type(x);
  SmallVector<int64_t> axes = op.getReducedAxes();
  Value y = G.expandFrom(op.getResult(), axes, op.getKeepdims(), xt);
  Value hit = G.asFloat(EqualOp::create(G.b, x, y), x);
  Value count = G.broadcast(G.sum(hit, axes, /*keepdims=*/true), xt);
  Value gFull = G.expandFrom(g, axes, op.getKeepdims(), xt);
  operandGrads[0] = G.div(G.mul(gFull, hit), count);
  return success();
}

LogicalResult ReduceMaxOp::buildVJP(OpBuilder &builder,
                                    ArrayRef<Value> resultGrads,
                                    SmallVectorImpl<Value> &operandGrads) {
  return extremumReduceVJP(*this, builder, resultGrads, operandGrads);
}

LogicalResult ReduceMinOp::buildVJP(OpBuilder &builder,
                                    ArrayRef<Value> resultGrads,
                                    SmallVectorImpl<Value> &operandGrads) {
  return extremumReduceVJP(*this, builder, resultGrads, operandGrads);
}

LogicalResult MatmulOp::buildVJP(OpBuilder &builder,
                                 ArrayRef<Value> resultGrads,
                                 SmallVectorImpl<Value> &operandGrads) {
  noGrads(operandGrads, 2);
  Value g = resultGrads[0], a = getLhs(), b = getRhs();
  if (!g || !isFloatValue(a))
    return success();
  TensorBuilder G(builder, getLoc());
  bool ta = getTransposeLhs(), tb = getTransposeRhs();
  // C = op(A) op(B). dop(A) = G op(B)^T, dop(B) = op(A)^T G; transposing
  // back where A or B entered transposed.
  Value da = ta ? Value(MatmulOp::create(G.b, b, g, tb, true))
                : Value(MatmulOp::create(G.b, g, b, false, !tb));
  operandGrads[0] = G.reduceTo(da, a.getType());
  // A weight shared over the batch (B of rank 2 and A [batch..., M, K] not
  // transposed, as in a linear layer): dop(B) sums A_i^T G_i over the
  // batch, which is one matmul over the batch and M rows flattened together
  // rather than one per batch element, written out and then summed.
  auto at = G.type(a), gt = G.type(g);
  if (!ta && G.type(b).getRank() == 2 && at.getRank() > 2 &&
      at.hasStaticShape() && gt.hasStaticShape() && at.getNumElements() > 0) {
    int64_t k = at.getShape().back(), n = gt.getShape().back();
    int64_t rows = at.getNumElements() / k;
    Value a2 = G.reshape(a, at.clone({rows, k}));
    Value g2 = G.reshape(g, gt.clone({rows, n}));
    operandGrads[1] = tb ? MatmulOp::create(G.b, g2, a2, true, false)
                         : MatmulOp::create(G.b, a2, g2, true, false);
    return success();
  }
  Value db = tb ? Value(MatmulOp::create(G.b, g, a, true, ta))
                : Value(MatmulOp::create(G.b, a, g, !ta, false));
  operandGrads[1] = G.reduceTo(db, b.getType());
  return success();
}

//===----------------------------------------------------------------------===//
// Convolution, pooling, normalization, softmax, dropout
//===----------------------------------------------------------------------===//

LogicalResult ConvOp::buildVJP(OpBuilder &builder, ArrayRef<Value> resultGrads,
                               SmallVectorImpl<Value> &operandGrads) {
  noGrads(operandGrads, getNumOperands());
  Value g = resultGrads[0];
  if (!g)
    return success();
  TensorBuilder G(builder, getLoc());
  operandGrads[0] = ConvGradInputOp::create(
      G.b, getInput().getType(), getFilter(), g, getStrides(), getPadding(),
      getDilations(), getGroups());
  operandGrads[1] = ConvGradFilterOp::create(
      G.b, getFilter().getType(), getInput(), g, getStrides(), getPadding(),
      getDilations(), getGroups());
  if (getBias()) {
    SmallVector<int64_t> axes{0};
    for (int64_t d = 2; d < G.type(g).getRank(); ++d)
      axes.push_back(d);
    operandGrads[2] = G.sum(g, axes, /*keepdims=*/false);
  }
  return success();
}

/// conv_grad_input is linear in the filter and in the cotangent it
/// transposes: its VJP for `rhs` is the forward conv of the result's
/// cotangent, and for `lhs` the filter gradient of that conv.
LogicalResult ConvGradInputOp::buildVJP(OpBuilder &builder,
                                        ArrayRef<Value> resultGrads,
                                        SmallVectorImpl<Value> &operandGrads) {
  noGrads(operandGrads, getNumOperands());
  Value g = resultGrads[0];
  if (!g)
    return success();
  TensorBuilder G(builder, getLoc());
  operandGrads[0] = ConvGradFilterOp::create(
      G.b, getLhs().getType(), g, getRhs(), getStrides(), getPadding(),
      getDilations(), getGroups());
  operandGrads[1] = ConvOp::create(G.b, getRhs().getType(), g, getLhs(),
                                   Value(), getStrides(), getPadding(),
                                   getDilations(), getGroups());
  return success();
}

LogicalResult MaxPoolOp::buildVJP(OpBuilder &builder,
                                  ArrayRef<Value> resultGrads,
                                  SmallVectorImpl<Value> &operandGrads) {
  return firstOperandVJP(*this, builder, resultGrads, operandGrads,
                         [&](TensorBuilder &G, Value g) -> Value {
                           return MaxPoolGradOp::create(
                               G.b, getInput().getType(), getInput(), g,
                               getKernelShape(), getStrides(), getPadding(),
                               getDilations());
                         });
}

LogicalResult AvgPoolOp::buildVJP(OpBuilder &builder,
                                  ArrayRef<Value> resultGrads,
                                  SmallVectorImpl<Value> &operandGrads) {
  return firstOperandVJP(*this, builder, resultGrads, operandGrads,
                         [&](TensorBuilder &G, Value g) -> Value {
                           return AvgPoolGradOp::create(
                               G.b, getInput().getType(), g, getKernelShape(),
                               getStrides(), getPadding(), getDilations(),
                               getCountIncludePad());
                         });
}

/// The normalization backward shared by batch_norm_train and layer_norm:
/// with xhat = (x - mean) * inv over `axes` (N elements each) and upstream
/// `gxhat`, dx = inv / N * (N gxhat - sum(gxhat) - xhat sum(gxhat xhat)).
static Value normalizeBackward(TensorBuilder &G, Value gxhat, Value xhat, Value inv,
                               ArrayRef<int64_t> axes, int64_t count) {
  auto t = TensorBuilder::type(xhat);
  Value s1 = G.broadcast(G.sum(gxhat, axes, true), t);
  Value s2 = G.broadcast(G.sum(G.mul(gxhat, xhat), axes, true), t);
  Value inner = G.sub(G.sub(G.mul(gxhat, static_cast<double>(count)), s1),
                      G.mul(xhat, s2));
  return G.mul(G.mul(G.broadcast(inv, t), inner),
               1.0 / static_cast<double>(count));
}

/// Reshapes a per-channel [C] tensor to [1, C, 1, ...] for `x` of rank r.
static Value channelView(TensorBuilder &G, Value c, RankedTensorType x) {
  SmallVector<int64_t> shape(x.getRank(), 1);
  shape[1] = x.getDimSize(1);
  return G.reshape(c, TensorBuilder::type(c).clone(shape));
}

LogicalResult BatchNormTrainOp::buildVJP(OpBuilder &builder,
                                         ArrayRef<Value> resultGrads,
                                         SmallVectorImpl<Value> &operandGrads) {
  // Only y is differentiated; the running statistics are state (PyTorch
  // does not backpropagate through them either).
  noGrads(operandGrads, 5);
  Value g = resultGrads[0], x = getX();
  if (!g)
    return success();
  TensorBuilder G(builder, getLoc());
  auto xt = G.type(x);
  SmallVector<int64_t> axes{0};
  for (int64_t d = 2; d < xt.getRank(); ++d)
    axes.push_back(d);
  double count = static_cast<double>(xt.getNumElements() / xt.getDimSize(1));
  // The lowering builds the same statistics, so the backward reuses the
  // forward's (TensorBuilder::moments).
  auto m = G.moments(x, axes, getEpsilon().convertToDouble());
  Value centered = G.sub(x, G.broadcast(m.mean, xt));
  // Two reductions per channel serve all three gradients, as in PyTorch's
  // batch_norm_backward: with xhat = (x - mean) inv,
  //   dbias = sum(g), dscale = sum(g xhat) = inv sum(g (x - mean)),
  //   dx = scale inv (g - dbias / N - (x - mean) inv^2 sum(g (x - mean)) / N).
  Value gSum = G.sum(g, axes, true);
  Value gDot = G.sum(G.mul(g, centered), axes, true);
  Value slope = G.mul(G.mul(m.inv, m.inv), G.mul(gDot, 1.0 / count));
  Value inner = G.sub(G.sub(g, G.broadcast(G.mul(gSum, 1.0 / count), xt)),
                      G.mul(centered, G.broadcast(slope, xt)));
  Value scale = channelView(G, getScale(), xt);
  operandGrads[0] = G.mul(inner, G.broadcast(G.mul(scale, m.inv), xt));
  auto channels = G.type(getScale());
  operandGrads[1] = G.reshape(G.mul(gDot, m.inv), channels);
  operandGrads[2] = G.reshape(gSum, channels);
  return success();
}

LogicalResult
BatchNormInferenceOp::buildVJP(OpBuilder &builder, ArrayRef<Value> resultGrads,
                               SmallVectorImpl<Value> &operandGrads) {
  noGrads(operandGrads, 5);
  Value g = resultGrads[0], x = getX();
  if (!g)
    return success();
  TensorBuilder G(builder, getLoc());
  auto xt = G.type(x);
  SmallVector<int64_t> axes{0};
  for (int64_t d = 2; d < xt.getRank(); ++d)
    axes.push_back(d);
  // y = scale (x - mean) inv + bias with inv = (var + eps)^-1/2 per channel.
  Value inv = RsqrtOp::create(
      G.b, G.add(getVariance(), G.scalar(x, getEpsilon().convertToDouble())));
  Value invB = G.broadcast(channelView(G, inv, xt), xt);
  Value scaleB = G.broadcast(channelView(G, getScale(), xt), xt);
  Value centered = G.sub(x, G.broadcast(channelView(G, getMean(), xt), xt));
  Value gs = G.mul(g, scaleB);
  operandGrads[0] = G.mul(gs, invB);
  operandGrads[1] = G.sum(G.mul(g, G.mul(centered, invB)), axes, false);
  operandGrads[2] = G.sum(g, axes, false);
  operandGrads[3] = G.neg(G.sum(G.mul(gs, invB), axes, false));
  // d/dvar = sum(gs * centered) * -1/2 inv^3.
  Value inv3 = G.mul(inv, G.mul(inv, inv));
  operandGrads[4] =
      G.mul(G.mul(G.sum(G.mul(gs, centered), axes, false), inv3), -0.5);
  return success();
}

LogicalResult LayerNormOp::buildVJP(OpBuilder &builder,
                                    ArrayRef<Value> resultGrads,
                                    SmallVectorImpl<Value> &operandGrads) {
  noGrads(operandGrads, getNumOperands());
  Value g = resultGrads[0], x = getX();
  if (!g)
    return success();
  TensorBuilder G(builder, getLoc());
  auto xt = G.type(x);
  int64_t axis = getAxis(), count = 1;
  SmallVector<int64_t> normAxes, leadAxes;
  for (int64_t d = 0; d < xt.getRank(); ++d) {
    if (d >= axis) {
      normAxes.push_back(d);
      count *= xt.getDimSize(d);
    } else {
      leadAxes.push_back(d);
    }
  }
  auto m = G.moments(x, normAxes, getEpsilon().convertToDouble());
  Value inv = m.inv;
  Value xhat = G.mul(G.sub(x, G.broadcast(m.mean, xt)), G.broadcast(inv, xt));
  Value scaleB = G.broadcast(getScale(), xt);
  operandGrads[0] =
      normalizeBackward(G, G.mul(g, scaleB), xhat, inv, normAxes, count);
  auto reduceLead = [&](Value v) {
    return leadAxes.empty() ? v : G.sum(v, leadAxes, false);
  };
  operandGrads[1] = reduceLead(G.mul(g, xhat));
  if (getBias())
    operandGrads[2] = reduceLead(g);
  return success();
}

LogicalResult SoftmaxOp::buildVJP(OpBuilder &builder,
                                  ArrayRef<Value> resultGrads,
                                  SmallVectorImpl<Value> &operandGrads) {
  noGrads(operandGrads, 1);
  Value g = resultGrads[0], y = getY();
  if (!g)
    return success();
  TensorBuilder G(builder, getLoc());
  int64_t axis = getAxis();
  Value dot = G.broadcast(G.sum(G.mul(g, y), {axis}, true), y.getType());
  operandGrads[0] = G.mul(y, G.sub(g, dot));
  return success();
}

LogicalResult LogSoftmaxOp::buildVJP(OpBuilder &builder,
                                     ArrayRef<Value> resultGrads,
                                     SmallVectorImpl<Value> &operandGrads) {
  noGrads(operandGrads, 1);
  Value g = resultGrads[0], y = getY();
  if (!g)
    return success();
  TensorBuilder G(builder, getLoc());
  int64_t axis = getAxis();
  Value total = G.broadcast(G.sum(g, {axis}, true), y.getType());
  operandGrads[0] = G.sub(g, G.mul(ExpOp::create(G.b, y), total));
  return success();
}

LogicalResult DropoutOp::buildVJP(OpBuilder &builder,
                                  ArrayRef<Value> resultGrads,
                                  SmallVectorImpl<Value> &operandGrads) {
  double scale = 1.0 / (1.0 - getRatio().convertToDouble());
  return firstOperandVJP(
      *this, builder, resultGrads, operandGrads, [&](TensorBuilder &G, Value g) {
        return G.mul(G.mul(g, G.asFloat(getMask(), g)), scale);
      });
}

//===----------------------------------------------------------------------===//
// Shape ops
//===----------------------------------------------------------------------===//

LogicalResult ReshapeOp::buildVJP(OpBuilder &builder,
                                  ArrayRef<Value> resultGrads,
                                  SmallVectorImpl<Value> &operandGrads) {
  return firstOperandVJP(
      *this, builder, resultGrads, operandGrads,
      [&](TensorBuilder &G, Value g) { return G.reshape(g, getX().getType()); });
}

LogicalResult TransposeOp::buildVJP(OpBuilder &builder,
                                    ArrayRef<Value> resultGrads,
                                    SmallVectorImpl<Value> &operandGrads) {
  ArrayRef<int64_t> perm = getPermutation();
  SmallVector<int64_t> inverse(perm.size());
  for (auto [i, p] : llvm::enumerate(perm))
    inverse[p] = i;
  return firstOperandVJP(*this, builder, resultGrads, operandGrads,
                         [&](TensorBuilder &G, Value g) -> Value {
                           return TransposeOp::create(G.b, g, inverse);
                         });
}

LogicalResult BroadcastToOp::buildVJP(OpBuilder &builder,
                                      ArrayRef<Value> resultGrads,
                                      SmallVectorImpl<Value> &operandGrads) {
  return firstOperandVJP(
      *this, builder, resultGrads, operandGrads,
      [&](TensorBuilder &G, Value g) { return G.reduceTo(g, getX().getType()); });
}

LogicalResult SliceOp::buildVJP(OpBuilder &builder, ArrayRef<Value> resultGrads,
                                SmallVectorImpl<Value> &operandGrads) {
  noGrads(operandGrads, 1);
  Value g = resultGrads[0];
  if (!g || !isFloatValue(getX()))
    return success();
  TensorBuilder G(builder, getLoc());
  // Place g back with interior padding stride-1 between its elements.
  auto xt = G.type(getX()), gt = G.type(g);
  SmallVector<int64_t> low, high, interior;
  for (int64_t d = 0; d < xt.getRank(); ++d) {
    int64_t n = gt.getDimSize(d), stride = getStride()[d];
    int64_t end = n == 0 ? getStart()[d] : getStart()[d] + (n - 1) * stride + 1;
    low.push_back(getStart()[d]);
    interior.push_back(stride - 1);
    high.push_back(xt.getDimSize(d) - end);
  }
  operandGrads[0] = PadOp::create(
      G.b, xt, g, G.b.getDenseI64ArrayAttr(low), G.b.getDenseI64ArrayAttr(high),
      G.b.getF64FloatAttr(0.0), G.b.getDenseI64ArrayAttr(interior));
  return success();
}

LogicalResult PadOp::buildVJP(OpBuilder &builder, ArrayRef<Value> resultGrads,
                              SmallVectorImpl<Value> &operandGrads) {
  noGrads(operandGrads, 1);
  Value g = resultGrads[0];
  if (!g || !isFloatValue(getX()))
    return success();
  TensorBuilder G(builder, getLoc());
  auto xt = G.type(getX());
  SmallVector<int64_t> start, limit, stride;
  for (int64_t d = 0; d < xt.getRank(); ++d) {
    int64_t step = getInterior() ? (*getInterior())[d] + 1 : 1;
    start.push_back(getLow()[d]);
    stride.push_back(step);
    limit.push_back(getLow()[d] + (xt.getDimSize(d) - 1) * step + 1);
  }
  operandGrads[0] = SliceOp::create(G.b, g, start, limit, stride);
  return success();
}

LogicalResult ConcatOp::buildVJP(OpBuilder &builder,
                                 ArrayRef<Value> resultGrads,
                                 SmallVectorImpl<Value> &operandGrads) {
  noGrads(operandGrads, getNumOperands());
  Value g = resultGrads[0];
  if (!g || !isFloatValue(getResult()))
    return success();
  TensorBuilder G(builder, getLoc());
  int64_t axis = getAxis(), offset = 0;
  auto gt = G.type(g);
  for (auto [i, in] : llvm::enumerate(getInputs())) {
    SmallVector<int64_t> start(gt.getRank(), 0), limit(gt.getShape()),
        stride(gt.getRank(), 1);
    int64_t size = G.type(in).getDimSize(axis);
    start[axis] = offset;
    limit[axis] = offset + size;
    offset += size;
    operandGrads[i] = SliceOp::create(G.b, g, start, limit, stride);
  }
  return success();
}

LogicalResult SplitOp::buildVJP(OpBuilder &builder, ArrayRef<Value> resultGrads,
                                SmallVectorImpl<Value> &operandGrads) {
  noGrads(operandGrads, 1);
  if (!isFloatValue(getX()) ||
      llvm::all_of(resultGrads, [](Value v) { return !v; }))
    return success();
  TensorBuilder G(builder, getLoc());
  SmallVector<Value> pieces;
  for (auto [g, r] : llvm::zip(resultGrads, getResults()))
    pieces.push_back(g ? g : G.zerosLike(r));
  operandGrads[0] = ConcatOp::create(G.b, pieces, getAxis());
  return success();
}

LogicalResult GatherOp::buildVJP(OpBuilder &builder,
                                 ArrayRef<Value> resultGrads,
                                 SmallVectorImpl<Value> &operandGrads) {
  return firstOperandVJP(*this, builder, resultGrads, operandGrads,
                         [&](TensorBuilder &G, Value g) -> Value {
                           return ScatterAddOp::create(G.b, getData().getType(),
                                                       getIndices(), g,
                                                       getAxis());
                         });
}

LogicalResult ScatterAddOp::buildVJP(OpBuilder &builder,
                                     ArrayRef<Value> resultGrads,
                                     SmallVectorImpl<Value> &operandGrads) {
  noGrads(operandGrads, getNumOperands());
  if (!resultGrads[0] || !isFloatValue(getUpdates()))
    return success();
  TensorBuilder G(builder, getLoc());
  operandGrads[1] = GatherOp::create(G.b, getUpdates().getType(),
                                     resultGrads[0], getIndices(), getAxis());
  return success();
}

LogicalResult TriluOp::buildVJP(OpBuilder &builder, ArrayRef<Value> resultGrads,
                                SmallVectorImpl<Value> &operandGrads) {
  return firstOperandVJP(*this, builder, resultGrads, operandGrads,
                         [&](TensorBuilder &G, Value g) -> Value {
                           return TriluOp::create(G.b, g, getUpper(),
                                                  getDiagonal());
                         });
}

//===----------------------------------------------------------------------===//
// Losses
//===----------------------------------------------------------------------===//

namespace {
/// The per-position pieces of a class-label loss: a one-hot of the labels
/// along the class axis, the validity mask (label != ignore_index), the
/// label weight, and the scale of the upstream cotangent per position.
struct LabelLossParts {
  Value oneHot;   // scores shape, 0/1
  Value valid;    // labels shape, 0/1
  Value weightY;  // labels shape: weight[label] (1 without weights), masked
  Value upstream; // labels shape: dL/dloss_i
};
} // namespace

static LabelLossParts labelLossParts(TensorBuilder &G, Value g, Value scores,
                                     Value labels, Value weight,
                                     int64_t classAxis, Reduction reduction,
                                     std::optional<int64_t> ignoreIndex) {
  auto st = TensorBuilder::type(scores), lt = TensorBuilder::type(labels);
  int64_t axis = classAxis < 0 ? classAxis + st.getRank() : classAxis;
  int64_t classes = st.getDimSize(axis);
  Type elt = st.getElementType();
  auto labelF = lt.clone(elt);
  LabelLossParts p;
  // Ignored positions may carry any label (PyTorch's -100): index with 0.
  Value safe = labels;
  if (ignoreIndex) {
    auto ignore = ConstantOp::create(
        G.b, DenseElementsAttr::get(
                 RankedTensorType::get({}, lt.getElementType()),
                 G.b.getIntegerAttr(lt.getElementType(), *ignoreIndex)));
    Value isIgnored = EqualOp::create(G.b, labels, ignore);
    p.valid = G.asFloat(NotOp::create(G.b, isIgnored), scores);
    auto zero = ConstantOp::create(
        G.b,
        DenseElementsAttr::get(lt, G.b.getIntegerAttr(lt.getElementType(), 0)));
    safe = G.where(isIgnored, zero, labels);
  } else {
    p.valid = ConstantOp::create(
        G.b, DenseElementsAttr::get(labelF, G.b.getFloatAttr(elt, 1.0)));
  }
  // One-hot: labels (class axis inserted) == iota along the class axis.
  SmallVector<int64_t> iotaShape(st.getRank(), 1), labelShape(st.getShape());
  iotaShape[axis] = classes;
  labelShape[axis] = 1;
  SmallVector<int64_t> iota;
  for (int64_t c = 0; c < classes; ++c)
    iota.push_back(c);
  auto iotaType = RankedTensorType::get(iotaShape, lt.getElementType());
  Value iotaV = ConstantOp::create(
      G.b, DenseElementsAttr::get(
               iotaType, llvm::map_to_vector(iota, [&](int64_t v) -> Attribute {
                 return G.b.getIntegerAttr(lt.getElementType(), v);
               })));
  Value expanded = G.reshape(safe, lt.clone(labelShape));
  p.oneHot = G.asFloat(EqualOp::create(G.b, expanded, iotaV), scores);
  p.weightY = p.valid;
  if (weight)
    p.weightY = G.mul(GatherOp::create(G.b, weight, safe, 0), p.valid);
  // Upstream cotangent per position.
  if (reduction == Reduction::none) {
    p.upstream = g;
  } else {
    Value gB = G.broadcast(g, labelF);
    if (reduction == Reduction::mean)
      gB = G.div(gB, G.broadcast(G.sum(p.weightY, {}, false), labelF));
    p.upstream = gB;
  }
  return p;
}

/// Expands a labels-shaped tensor to the scores' shape along the class axis.
static Value alongClasses(TensorBuilder &G, Value v, RankedTensorType scores,
                          int64_t axis) {
  SmallVector<int64_t> shape(scores.getShape());
  shape[axis] = 1;
  return G.broadcast(G.reshape(v, TensorBuilder::type(v).clone(shape)), scores);
}

/// The VJP of the class-label losses. With logp the log-probabilities
/// (log_softmax of the logits for cross-entropy, the operand for NLL),
/// per-position loss l_i = -(1-s) w_y logp_y - s/C sum_c w_c logp_c and the
/// per-position upstream u_i (g_i, g, or g / W for mean with W = sum w_y):
///   dL/dlogp_c = -u_i ((1-s) w_y [c = y] + s/C w_c)
///   dL/dw_c    = sum_i u_i valid_i ((1-s)[y_i = c] (-logp_y) - s/C logp_c)
///                - [mean] (g L / W) sum_i valid_i [y_i = c]
/// and for cross-entropy dL/dz = dL/dlogp - softmax(z) sum_c dL/dlogp_c.
static LogicalResult labelLossVJP(Operation *op, OpBuilder &builder, Value g,
                                  Value scores, Value labels, Value weight,
                                  int64_t classAxis, Reduction reduction,
                                  std::optional<int64_t> ignoreIndex, double s,
                                  bool fromLogits,
                                  SmallVectorImpl<Value> &operandGrads) {
  noGrads(operandGrads, op->getNumOperands());
  if (!g)
    return success();
  TensorBuilder G(builder, op->getLoc());
  auto st = TensorBuilder::type(scores);
  int64_t axis = classAxis < 0 ? classAxis + st.getRank() : classAxis;
  int64_t classes = st.getDimSize(axis);
  LabelLossParts p = labelLossParts(G, g, scores, labels, weight, classAxis,
                                    reduction, ignoreIndex);
  Value logp =
      fromLogits ? Value(LogSoftmaxOp::create(G.b, scores, axis)) : scores;
  Value up = G.mul(p.upstream, p.valid);
  Value upB = alongClasses(G, up, st, axis);
  // Per-class weights at the scores' shape (1 without weights).
  Value wk;
  if (weight) {
    SmallVector<int64_t> wShape(st.getRank(), 1);
    wShape[axis] = classes;
    wk = G.broadcast(G.reshape(weight, TensorBuilder::type(weight).clone(wShape)), st);
  } else {
    wk = G.broadcast(G.scalar(scores, 1.0), st);
  }
  Value wy = alongClasses(G, p.weightY, st, axis);
  // dL/dlogp = -u ((1-s) w_y onehot + s/C w_k).
  Value dlogp = G.mul(G.mul(wy, p.oneHot), 1.0 - s);
  if (s != 0.0)
    dlogp = G.add(dlogp, G.mul(wk, s / classes));
  dlogp = G.neg(G.mul(dlogp, upB));
  if (fromLogits) {
    Value prob = SoftmaxOp::create(G.b, scores, axis);
    Value total = G.broadcast(G.sum(dlogp, {axis}, true), st);
    operandGrads[0] = G.sub(dlogp, G.mul(prob, total));
  } else {
    operandGrads[0] = dlogp;
  }
  if (weight) {
    SmallVector<int64_t> others;
    for (int64_t d = 0; d < st.getRank(); ++d)
      if (d != axis)
        others.push_back(d);
    auto toClasses = [&](Value v) {
      return G.reshape(G.sum(v, others, false), weight.getType());
    };
    Value nll = G.neg(G.sum(G.mul(logp, p.oneHot), {axis}, true));
    Value term = G.mul(G.mul(p.oneHot, G.broadcast(nll, st)), 1.0 - s);
    if (s != 0.0)
      term = G.sub(term, G.mul(logp, s / classes));
    Value dw = toClasses(G.mul(term, upB));
    if (reduction == Reduction::mean) {
      // The quotient rule on W = sum w_y: - g L / W * count_c.
      Value count =
          toClasses(G.mul(p.oneHot, alongClasses(G, p.valid, st, axis)));
      Value w = G.sum(p.weightY, {}, false);
      Value coef = G.div(G.mul(g, op->getResult(0)), w);
      dw = G.sub(dw, G.mul(count, G.broadcast(coef, weight.getType())));
    }
    operandGrads[2] = dw;
  }
  return success();
}

LogicalResult CrossEntropyOp::buildVJP(OpBuilder &builder,
                                       ArrayRef<Value> resultGrads,
                                       SmallVectorImpl<Value> &operandGrads) {
  return labelLossVJP(*this, builder, resultGrads[0], getLogits(), getLabels(),
                      getWeight(), static_cast<int64_t>(getClassAxis()),
                      getReduction(), getIgnoreIndex(),
                      getLabelSmoothing().convertToDouble(),
                      /*fromLogits=*/true, operandGrads);
}

LogicalResult NllLossOp::buildVJP(OpBuilder &builder,
                                  ArrayRef<Value> resultGrads,
                                  SmallVectorImpl<Value> &operandGrads) {
  return labelLossVJP(
      *this, builder, resultGrads[0], getLogProbs(), getLabels(), getWeight(),
      static_cast<int64_t>(getClassAxis()), getReduction(), getIgnoreIndex(),
      /*s=*/0.0, /*fromLogits=*/false, operandGrads);
}

LogicalResult MseLossOp::buildVJP(OpBuilder &builder,
                                  ArrayRef<Value> resultGrads,
                                  SmallVectorImpl<Value> &operandGrads) {
  noGrads(operandGrads, 2);
  Value g = resultGrads[0];
  if (!g)
    return success();
  TensorBuilder G(builder, getLoc());
  auto t = G.type(getInput());
  double factor = 2.0;
  if (getReduction() == Reduction::mean)
    factor /= static_cast<double>(std::max<int64_t>(t.getNumElements(), 1));
  Value d =
      G.mul(G.mul(G.sub(getInput(), getTarget()), factor), G.broadcast(g, t));
  operandGrads[0] = d;
  operandGrads[1] = G.neg(d);
  return success();
}

//===----------------------------------------------------------------------===//
// Collectives
//===----------------------------------------------------------------------===//

LogicalResult AllReduceOp::buildVJP(OpBuilder &, ArrayRef<Value> resultGrads,
                                    SmallVectorImpl<Value> &operandGrads) {
  if (getReduction() != CollectiveReduction::sum)
    return emitOpError("has a VJP only as a sum, not as ")
           << stringifyCollectiveReduction(getReduction());
  // The result is replicated over the group: each rank's cotangent is the
  // whole cotangent of every contribution (the op's description).
  operandGrads.assign(resultGrads.begin(), resultGrads.end());
  return success();
}

LogicalResult ReduceScatterOp::buildVJP(OpBuilder &builder,
                                        ArrayRef<Value> resultGrads,
                                        SmallVectorImpl<Value> &operandGrads) {
  if (getReduction() != CollectiveReduction::sum)
    return emitOpError("has a VJP only as a sum, not as ")
           << stringifyCollectiveReduction(getReduction());
  // Every contribution reaches every part: its cotangent is the parts'
  // cotangents, gathered (the op's description).
  for (auto [in, g] : llvm::zip(getInputs(), resultGrads))
    operandGrads.push_back(
        g ? AllGatherOp::create(builder, getLoc(), in.getType(), g,
                                getGridAttr(), getGridAxesAttr())
                .getResult()
          : Value());
  return success();
}

LogicalResult CopyToGroupOp::buildVJP(OpBuilder &builder,
                                      ArrayRef<Value> resultGrads,
                                      SmallVectorImpl<Value> &operandGrads) {
  // Each rank's cotangent is its part's contribution: their sum is the
  // whole (the op's description).
  return firstOperandVJP(*this, builder, resultGrads, operandGrads,
                         [&](TensorBuilder &G, Value g) -> Value {
                           auto sum = CollectiveReductionAttr::get(
                               getContext(), CollectiveReduction::sum);
                           return AllReduceOp::create(G.b, getLoc(),
                                                      ValueRange{g},
                                                      getGridAttr(),
                                                      getGridAxesAttr(), sum)
                               .getResult(0);
                         });
}

LogicalResult AllGatherOp::buildVJP(OpBuilder &builder,
                                    ArrayRef<Value> resultGrads,
                                    SmallVectorImpl<Value> &operandGrads) {
  return firstOperandVJP(*this, builder, resultGrads, operandGrads,
                         [&](TensorBuilder &G, Value g) -> Value {
                           return RankSliceOp::create(G.b, getInput().getType(),
                                                      g, getGridAttr(),
                                                      getGridAxesAttr());
                         });
}

LogicalResult BroadcastOp::buildVJP(OpBuilder &builder,
                                    ArrayRef<Value> resultGrads,
                                    SmallVectorImpl<Value> &operandGrads) {
  auto grid =
      SymbolTable::lookupNearestSymbolFrom<shard::GridOp>(*this, getGridAttr());
  if (!grid)
    return emitOpError("names no shard.grid");
  int64_t ranks = 1;
  for (int16_t a : getGridAxes())
    ranks *= grid.getShape()[a];
  // The root's input reaches every rank's result: its cotangent is their
  // sum; the other inputs reach nothing (the op's description). The mask
  // is this rank's element of a one-hot constant, 1 at the root.
  return firstOperandVJP(
      *this, builder, resultGrads, operandGrads,
      [&](TensorBuilder &G, Value g) -> Value {
        auto sum = CollectiveReductionAttr::get(getContext(),
                                                CollectiveReduction::sum);
        Value total = AllReduceOp::create(G.b, getLoc(), ValueRange{g},
                                          getGridAttr(), getGridAxesAttr(), sum)
                          .getResult(0);
        Type element = getElementTypeOrSelf(g);
        SmallVector<Attribute> hot;
        for (int64_t r = 0; r < ranks; ++r) {
          double v = r == static_cast<int64_t>(getRoot()) ? 1 : 0;
          hot.push_back(isa<FloatType>(element)
                            ? Attribute(G.b.getFloatAttr(element, v))
                            : G.b.getIntegerAttr(element, int64_t(v)));
        }
        Value oneHot = ConstantOp::create(
            G.b, DenseElementsAttr::get(RankedTensorType::get({ranks}, element),
                                        hot));
        Value mine =
            RankSliceOp::create(G.b, RankedTensorType::get({1}, element),
                                oneHot, getGridAttr(), getGridAxesAttr());
        return G.mul(total,
                     G.reshape(mine, RankedTensorType::get({}, element)));
      });
}

LogicalResult RankSliceOp::buildVJP(OpBuilder &builder,
                                    ArrayRef<Value> resultGrads,
                                    SmallVectorImpl<Value> &operandGrads) {
  return firstOperandVJP(*this, builder, resultGrads, operandGrads,
                         [&](TensorBuilder &G, Value g) -> Value {
                           return AllGatherOp::create(G.b, getInput().getType(),
                                                      g, getGridAttr(),
                                                      getGridAxesAttr());
                         });
}
