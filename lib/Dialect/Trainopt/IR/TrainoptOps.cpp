//===- TrainoptOps.cpp - trainopt op verifiers and type inference ---------===//
//
/// \file
/// Result-type inference and verifiers of the trainopt ops. Shape rules live
/// here once; the importer builds ops through them, so an ill-shaped ONNX
/// node fails with the same diagnostic a hand-written `.mlir` file gets.
//
//===----------------------------------------------------------------------===//

#include "trainopt/Dialect/Trainopt/IR/TrainoptOps.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/Dialect/Shard/IR/ShardOps.h"
#include "mlir/IR/Builders.h"
#include "mlir/IR/BuiltinTypes.h"
#include "mlir/IR/Diagnostics.h"
#include "mlir/IR/OpImplementation.h"
#include "mlir/IR/TypeUtilities.h"
#include "llvm/ADT/STLExtras.h"
#include "llvm/Support/MathExtras.h"

#include <cmath>
#include <cstdlib>

using namespace mlir;
using namespace mlir::trainopt;

namespace mlir::trainopt {
ParseResult parseTrainability(OpAsmParser &parser, UnitAttr &trainable);
void printTrainability(OpAsmPrinter &printer, Operation *, UnitAttr trainable);
} // namespace mlir::trainopt

//===----------------------------------------------------------------------===//
// Shared shape helpers
//===----------------------------------------------------------------------===//

SmallVector<int64_t> mlir::trainopt::expandReducedAxes(ArrayRef<int64_t> axes,
                                                       int64_t rank) {
  if (!axes.empty())
    return SmallVector<int64_t>(axes);
  return llvm::to_vector(llvm::seq<int64_t>(0, rank));
}

FailureOr<SmallVector<int64_t>>
mlir::trainopt::broadcastShapes(ArrayRef<ArrayRef<int64_t>> shapes) {
  size_t rank = 0;
  for (ArrayRef<int64_t> s : shapes)
    rank = std::max(rank, s.size());
  SmallVector<int64_t> result(rank, 1);
  for (ArrayRef<int64_t> s : shapes) {
    size_t offset = rank - s.size();
    for (auto [i, dim] : llvm::enumerate(s)) {
      int64_t &r = result[offset + i];
      if (dim == r || dim == 1)
        continue;
      if (r != 1)
        return failure();
      r = dim;
    }
  }
  return result;
}

FailureOr<int64_t>
mlir::trainopt::checkedElementCount(ArrayRef<int64_t> shape) {
  int64_t count = 1;
  for (int64_t dim : shape) {
    if (dim < 0 || llvm::MulOverflow(count, dim, count))
      return failure();
  }
  return count;
}

static std::string shapeString(ArrayRef<int64_t> shape) {
  std::string s = "[";
  llvm::raw_string_ostream os(s);
  llvm::interleaveComma(shape, os);
  os << "]";
  return s;
}

LogicalResult mlir::trainopt::inferBroadcastResult(
    std::optional<Location> loc, ArrayRef<Type> operands, Type elementType,
    SmallVectorImpl<Type> &inferredReturnTypes) {
  SmallVector<ArrayRef<int64_t>> shapes;
  for (Type t : operands)
    shapes.push_back(cast<RankedTensorType>(t).getShape());
  FailureOr<SmallVector<int64_t>> shape = broadcastShapes(shapes);
  if (failed(shape)) {
    std::string list;
    llvm::raw_string_ostream os(list);
    llvm::interleaveComma(shapes, os,
                          [&](ArrayRef<int64_t> s) { os << shapeString(s); });
    return emitOptionalError(loc, "operand shapes ", list,
                             " are not broadcast-compatible");
  }
  inferredReturnTypes.push_back(RankedTensorType::get(*shape, elementType));
  return success();
}

/// Checks that `axis` is in `[0, rank)`.
static LogicalResult verifyAxis(std::optional<Location> loc, int64_t axis,
                                int64_t rank) {
  if (axis < 0 || axis >= rank)
    return emitOptionalError(loc, "axis ", axis, " is out of range [0, ", rank,
                             ")");
  return success();
}

/// Checks that `axes` are sorted, unique and in `[0, rank)`.
static LogicalResult verifyAxes(std::optional<Location> loc,
                                ArrayRef<int64_t> axes, int64_t rank) {
  for (auto [i, axis] : llvm::enumerate(axes)) {
    if (failed(verifyAxis(loc, axis, rank)))
      return failure();
    if (i > 0 && axes[i - 1] >= axis)
      return emitOptionalError(loc, "axes must be sorted and unique, got ",
                               shapeString(axes));
  }
  return success();
}

LogicalResult mlir::trainopt::inferReduceResult(
    std::optional<Location> loc, RankedTensorType x, ArrayRef<int64_t> axes,
    bool keepdims, SmallVectorImpl<Type> &inferredReturnTypes) {
  if (failed(verifyAxes(loc, axes, x.getRank())))
    return failure();
  SmallVector<int64_t> reduced = expandReducedAxes(axes, x.getRank());
  SmallVector<int64_t> shape;
  for (auto [i, dim] : llvm::enumerate(x.getShape())) {
    if (!llvm::is_contained(reduced, static_cast<int64_t>(i)))
      shape.push_back(dim);
    else if (keepdims)
      shape.push_back(1);
  }
  inferredReturnTypes.push_back(
      RankedTensorType::get(shape, x.getElementType()));
  return success();
}

/// Output size of a sliding window; 0 when the window does not fit or the
/// arithmetic overflows (sizes come from untrusted models).
static int64_t windowOutputSize(int64_t in, int64_t padLow, int64_t padHigh,
                                int64_t kernel, int64_t stride,
                                int64_t dilation) {
  int64_t span, padded;
  if (__builtin_mul_overflow(dilation, kernel - 1, &span) ||
      __builtin_add_overflow(span, 1, &span) ||
      __builtin_add_overflow(in, padLow, &padded) ||
      __builtin_add_overflow(padded, padHigh, &padded) || padded < span)
    return 0;
  return (padded - span) / stride + 1;
}

/// Checks the window attributes of a conv or pool over `spatialRank` dims.
static LogicalResult verifyWindow(std::optional<Location> loc,
                                  int64_t spatialRank,
                                  ArrayRef<int64_t> strides,
                                  ArrayRef<int64_t> padding,
                                  ArrayRef<int64_t> dilations) {
  if (static_cast<int64_t>(strides.size()) != spatialRank)
    return emitOptionalError(loc, "expects ", spatialRank, " strides, got ",
                             strides.size());
  if (static_cast<int64_t>(dilations.size()) != spatialRank)
    return emitOptionalError(loc, "expects ", spatialRank, " dilations, got ",
                             dilations.size());
  if (static_cast<int64_t>(padding.size()) != 2 * spatialRank)
    return emitOptionalError(loc, "expects ", 2 * spatialRank,
                             " padding values (low pads then high pads), got ",
                             padding.size());
  if (llvm::any_of(strides, [](int64_t s) { return s < 1; }))
    return emitOptionalError(loc, "strides must be >= 1, got ",
                             shapeString(strides));
  if (llvm::any_of(dilations, [](int64_t d) { return d < 1; }))
    return emitOptionalError(loc, "dilations must be >= 1, got ",
                             shapeString(dilations));
  if (llvm::any_of(padding, [](int64_t p) { return p < 0; }))
    return emitOptionalError(loc, "padding must be >= 0, got ",
                             shapeString(padding));
  return success();
}

LogicalResult mlir::trainopt::inferPoolResult(
    std::optional<Location> loc, RankedTensorType input,
    ArrayRef<int64_t> kernel, ArrayRef<int64_t> strides,
    ArrayRef<int64_t> padding, ArrayRef<int64_t> dil,
    SmallVectorImpl<Type> &inferredReturnTypes) {
  int64_t rank = input.getRank();
  if (rank < 3)
    return emitOptionalError(loc,
                             "expects input of rank >= 3 (N, C, spatial), "
                             "got rank ",
                             rank);
  int64_t n = rank - 2;
  if (static_cast<int64_t>(kernel.size()) != n)
    return emitOptionalError(loc, "expects ", n, " kernel dims, got ",
                             kernel.size());
  if (llvm::any_of(kernel, [](int64_t k) { return k < 1; }))
    return emitOptionalError(loc, "kernel dims must be >= 1, got ",
                             shapeString(kernel));
  if (failed(verifyWindow(loc, n, strides, padding, dil)))
    return failure();
  SmallVector<int64_t> shape(input.getShape().take_front(2));
  for (int64_t i = 0; i < n; ++i) {
    int64_t in = input.getDimSize(i + 2);
    int64_t out = windowOutputSize(in, padding[i], padding[i + n], kernel[i],
                                   strides[i], dil[i]);
    if (out < 1)
      return emitOptionalError(loc, "window of kernel ", kernel[i],
                               " does not fit spatial dim ", i, " of size ", in,
                               " with its padding");
    shape.push_back(out);
  }
  inferredReturnTypes.push_back(
      RankedTensorType::get(shape, input.getElementType()));
  return success();
}

//===----------------------------------------------------------------------===//
// Math ops
//===----------------------------------------------------------------------===//

LogicalResult ClipOp::verify() {
  if (getMin() && getMax() &&
      getMin()->convertToDouble() > getMax()->convertToDouble())
    return emitOpError() << "expects min <= max, got min "
                         << getMin()->convertToDouble() << " and max "
                         << getMax()->convertToDouble();
  return success();
}

LogicalResult AssignOp::verify() {
  auto arg = dyn_cast<BlockArgument>(getState());
  auto func = arg ? dyn_cast<func::FuncOp>(arg.getOwner()->getParentOp())
                  : func::FuncOp();
  auto param = func ? func.getArgAttrOfType<FlatSymbolRefAttr>(
                          arg.getArgNumber(), TrainoptDialect::kParamAttrName)
                    : FlatSymbolRefAttr();
  if (!param)
    return emitOpError("expects the state to be an argument of its function "
                       "bound to a parameter ('")
           << TrainoptDialect::kParamAttrName << "')";
  if (auto declared =
          SymbolTable::lookupNearestSymbolFrom<ParameterOp>(func, param);
      declared && declared.getTrainable())
    return emitOpError() << "sets " << param
                         << ", which is trainable: only frozen parameters "
                            "(model state) are assigned";
  for (Operation *user : getState().getUsers())
    if (user != getOperation() && isa<AssignOp>(user) &&
        cast<AssignOp>(user).getState() == getState())
      return emitOpError() << "sets " << param
                           << " a second time in one function";
  return success();
}

LogicalResult FakeQuantOp::verify() {
  auto qmin = static_cast<int64_t>(getQuantMin());
  auto qmax = static_cast<int64_t>(getQuantMax());
  if (qmin >= qmax)
    return emitOpError() << "expects quant_min < quant_max, got " << qmin
                         << " and " << qmax;
  // scale and zero_point broadcast to x (and to nothing larger).
  ArrayRef<int64_t> x = getX().getType().getShape();
  for (Value v : {getScale(), getZeroPoint()}) {
    FailureOr<SmallVector<int64_t>> shape =
        broadcastShapes({x, cast<RankedTensorType>(v.getType()).getShape()});
    if (failed(shape) || ArrayRef<int64_t>(*shape) != x)
      return emitOpError()
             << "expects scale and zero_point to broadcast to "
             << shapeString(x) << ", got "
             << shapeString(cast<RankedTensorType>(v.getType()).getShape());
  }
  return success();
}

LogicalResult
WhereOp::inferReturnTypes(MLIRContext *context,
                          std::optional<Location> location, Adaptor adaptor,
                          SmallVectorImpl<Type> &inferredReturnTypes) {
  return inferBroadcastResult(
      location,
      {adaptor.getCondition().getType(), adaptor.getOnTrue().getType(),
       adaptor.getOnFalse().getType()},
      cast<RankedTensorType>(adaptor.getOnTrue().getType()).getElementType(),
      inferredReturnTypes);
}

LogicalResult
ArgMaxOp::inferReturnTypes(MLIRContext *context,
                           std::optional<Location> location, Adaptor adaptor,
                           SmallVectorImpl<Type> &inferredReturnTypes) {
  auto x = cast<RankedTensorType>(adaptor.getX().getType());
  int64_t axis = adaptor.getAxis();
  if (failed(verifyAxis(location, axis, x.getRank())))
    return failure();
  return inferReduceResult(location, x.clone(IntegerType::get(context, 64)),
                           {axis}, adaptor.getKeepdims(), inferredReturnTypes);
}

LogicalResult
KthSmallestOp::inferReturnTypes(MLIRContext *context,
                                std::optional<Location> location,
                                Adaptor adaptor,
                                SmallVectorImpl<Type> &inferredReturnTypes) {
  auto x = cast<RankedTensorType>(adaptor.getX().getType());
  inferredReturnTypes.push_back(RankedTensorType::get({}, x.getElementType()));
  return success();
}

LogicalResult
MatmulOp::inferReturnTypes(MLIRContext *context,
                           std::optional<Location> location, Adaptor adaptor,
                           SmallVectorImpl<Type> &inferredReturnTypes) {
  auto lhs = cast<RankedTensorType>(adaptor.getLhs().getType());
  auto rhs = cast<RankedTensorType>(adaptor.getRhs().getType());
  if (lhs.getRank() < 2 || rhs.getRank() < 2)
    return emitOptionalError(location, "expects operands of rank >= 2, got ",
                             lhs.getRank(), " and ", rhs.getRank());
  ArrayRef<int64_t> ls = lhs.getShape(), rs = rhs.getShape();
  int64_t lr = lhs.getRank(), rr = rhs.getRank();
  bool tl = adaptor.getTransposeLhs(), tr = adaptor.getTransposeRhs();
  int64_t m = tl ? ls[lr - 1] : ls[lr - 2];
  int64_t kl = tl ? ls[lr - 2] : ls[lr - 1];
  int64_t kr = tr ? rs[rr - 1] : rs[rr - 2];
  int64_t n = tr ? rs[rr - 2] : rs[rr - 1];
  if (kl != kr)
    return emitOptionalError(location, "contracting dims differ: lhs ",
                             shapeString(ls), " gives K = ", kl, ", rhs ",
                             shapeString(rs), " gives K = ", kr);
  FailureOr<SmallVector<int64_t>> batch =
      broadcastShapes({ls.drop_back(2), rs.drop_back(2)});
  if (failed(batch))
    return emitOptionalError(location, "batch dims of ", shapeString(ls),
                             " and ", shapeString(rs),
                             " are not broadcast-compatible");
  batch->push_back(m);
  batch->push_back(n);
  inferredReturnTypes.push_back(
      RankedTensorType::get(*batch, lhs.getElementType()));
  return success();
}

//===----------------------------------------------------------------------===//
// NN ops
//===----------------------------------------------------------------------===//

/// The result shape of a convolution of `input` with `filter`, shared by
/// trainopt.conv and its gradient ops.
static LogicalResult
convResultShape(std::optional<Location> location, RankedTensorType input,
                RankedTensorType filter, ArrayRef<int64_t> strides,
                ArrayRef<int64_t> padding, ArrayRef<int64_t> dilations,
                int64_t groups, SmallVectorImpl<int64_t> &shape) {
  int64_t rank = input.getRank();
  if (rank < 3)
    return emitOptionalError(location,
                             "expects input of rank >= 3 "
                             "(N, C, spatial), got rank ",
                             rank);
  if (filter.getRank() != rank)
    return emitOptionalError(location, "expects filter of rank ", rank,
                             " like the input, got rank ", filter.getRank());
  int64_t n = rank - 2;
  if (failed(verifyWindow(location, n, strides, padding, dilations)))
    return failure();
  int64_t channels = input.getDimSize(1), features = filter.getDimSize(0);
  if (groups < 1 || channels % groups != 0 || features % groups != 0)
    return emitOptionalError(location, "groups ", groups,
                             " must divide input channels ", channels,
                             " and output features ", features);
  if (filter.getDimSize(1) * groups != channels)
    return emitOptionalError(
        location, "filter ", shapeString(filter.getShape()), " expects ",
        filter.getDimSize(1) * groups, " input channels with groups = ", groups,
        ", input has ", channels);
  shape.assign({input.getDimSize(0), features});
  for (int64_t i = 0; i < n; ++i) {
    int64_t out =
        windowOutputSize(input.getDimSize(i + 2), padding[i], padding[i + n],
                         filter.getDimSize(i + 2), strides[i], dilations[i]);
    if (out < 1)
      return emitOptionalError(
          location, "filter ", shapeString(filter.getShape()),
          " does not fit input ", shapeString(input.getShape()),
          " with its padding and dilation");
    shape.push_back(out);
  }
  return success();
}

LogicalResult
ConvOp::inferReturnTypes(MLIRContext *context, std::optional<Location> location,
                         Adaptor adaptor,
                         SmallVectorImpl<Type> &inferredReturnTypes) {
  auto input = cast<RankedTensorType>(adaptor.getInput().getType());
  auto filter = cast<RankedTensorType>(adaptor.getFilter().getType());
  SmallVector<int64_t> shape;
  if (failed(convResultShape(location, input, filter, adaptor.getStrides(),
                             adaptor.getPadding(), adaptor.getDilations(),
                             adaptor.getGroups(), shape)))
    return failure();
  if (Value bias = adaptor.getBias()) {
    auto biasType = cast<RankedTensorType>(bias.getType());
    if (biasType.getShape() != ArrayRef<int64_t>{shape[1]})
      return emitOptionalError(location, "expects bias of shape [", shape[1],
                               "], got ", shapeString(biasType.getShape()));
    if (biasType.getElementType() != input.getElementType())
      return emitOptionalError(location, "expects bias of element type ",
                               input.getElementType(), ", got ",
                               biasType.getElementType());
  }
  inferredReturnTypes.push_back(
      RankedTensorType::get(shape, input.getElementType()));
  return success();
}

/// Checks a conv gradient op: the convolution of `input` and `filter` with
/// the op's attributes must produce `grad`'s shape.
template <typename OpTy>
static LogicalResult verifyConvGrad(OpTy op, RankedTensorType input,
                                    RankedTensorType filter,
                                    RankedTensorType grad) {
  SmallVector<int64_t> shape;
  if (failed(convResultShape(op.getLoc(), input, filter, op.getStrides(),
                             op.getPadding(), op.getDilations(), op.getGroups(),
                             shape)))
    return failure();
  if (ArrayRef<int64_t>(shape) != grad.getShape())
    return op.emitOpError() << "the convolution of " << input << " and "
                            << filter << " has shape " << shapeString(shape)
                            << ", the output cotangent is " << grad;
  return success();
}

LogicalResult ConvGradInputOp::verify() {
  return verifyConvGrad(*this, cast<RankedTensorType>(getResult().getType()),
                        cast<RankedTensorType>(getLhs().getType()),
                        cast<RankedTensorType>(getRhs().getType()));
}

LogicalResult ConvGradFilterOp::verify() {
  return verifyConvGrad(*this, cast<RankedTensorType>(getLhs().getType()),
                        cast<RankedTensorType>(getResult().getType()),
                        cast<RankedTensorType>(getRhs().getType()));
}

/// Checks that per-channel operands of a batch norm are `[C]` for input `x`.
static LogicalResult verifyChannelOperand(Operation *op, Type x, Type channel) {
  auto xType = cast<RankedTensorType>(x);
  auto cType = cast<RankedTensorType>(channel);
  if (xType.getRank() < 2)
    return op->emitOpError()
           << "expects input of rank >= 2 (N, C, ...), got " << xType;
  if (cType.getShape() != ArrayRef<int64_t>{xType.getDimSize(1)})
    return op->emitOpError() << "expects per-channel operands of shape ["
                             << xType.getDimSize(1) << "], got " << cType;
  if (cType.getElementType() != xType.getElementType())
    return op->emitOpError()
           << "expects per-channel operands of element type "
           << xType.getElementType() << ", got " << cType.getElementType();
  return success();
}

LogicalResult BatchNormInferenceOp::verify() {
  return verifyChannelOperand(*this, getX().getType(), getScale().getType());
}

LogicalResult BatchNormTrainOp::verify() {
  if (getMomentum().convertToDouble() < 0.0 ||
      getMomentum().convertToDouble() > 1.0)
    return emitOpError() << "expects momentum in [0, 1], got "
                         << getMomentum().convertToDouble();
  return verifyChannelOperand(*this, getX().getType(), getScale().getType());
}

LogicalResult LayerNormOp::verify() {
  auto x = cast<RankedTensorType>(getX().getType());
  int64_t axis = getAxis();
  if (failed(verifyAxis(getLoc(), axis, x.getRank())))
    return failure();
  ArrayRef<int64_t> normalized = x.getShape().drop_front(axis);
  for (Value v : {getScale(), getBias()}) {
    if (!v)
      continue;
    auto t = cast<RankedTensorType>(v.getType());
    if (t.getShape() != normalized || t.getElementType() != x.getElementType())
      return emitOpError() << "expects scale and bias of type "
                           << x.clone(normalized) << ", got " << t;
  }
  return success();
}

LogicalResult SoftmaxOp::verify() {
  return verifyAxis(getLoc(), getAxis(), getX().getType().getRank());
}

LogicalResult LogSoftmaxOp::verify() {
  return verifyAxis(getLoc(), getAxis(), getX().getType().getRank());
}

LogicalResult DropoutOp::verify() {
  double ratio = getRatio().convertToDouble();
  if (!(ratio >= 0.0 && ratio < 1.0))
    return emitOpError() << "expects ratio in [0, 1), got " << ratio;
  return success();
}

LogicalResult RandomOp::verify() {
  double a = getA().convertToDouble(), b = getB().convertToDouble();
  if (!std::isfinite(a) || !std::isfinite(b))
    return emitOpError() << "expects finite parameters, got " << a << " and "
                         << b;
  if (getDistribution() == Distribution::uniform && !(a <= b))
    return emitOpError() << "expects low <= high, got " << a << " and " << b;
  if (getDistribution() == Distribution::normal && !(b >= 0))
    return emitOpError() << "expects a non-negative standard deviation, got "
                         << b;
  return success();
}

//===----------------------------------------------------------------------===//
// Tensor ops
//===----------------------------------------------------------------------===//

LogicalResult ParameterOp::verify() {
  if (std::optional<ElementsAttr> value = getInitialValue()) {
    if (value->getType() != getType())
      return emitOpError() << "initial value of type " << value->getType()
                           << " does not match declared type " << getType();
  }
  return success();
}

LogicalResult ReshapeOp::verify() {
  auto in = cast<RankedTensorType>(getX().getType());
  auto out = cast<RankedTensorType>(getResult().getType());
  FailureOr<int64_t> inCount = checkedElementCount(in.getShape());
  FailureOr<int64_t> outCount = checkedElementCount(out.getShape());
  if (failed(inCount) || failed(outCount))
    return emitOpError() << "element count of " << in << " or " << out
                         << " overflows int64";
  if (*inCount != *outCount)
    return emitOpError() << "cannot reshape " << in.getNumElements()
                         << " elements " << in << " into "
                         << out.getNumElements() << " elements " << out;
  return success();
}

LogicalResult
TransposeOp::inferReturnTypes(MLIRContext *context,
                              std::optional<Location> location, Adaptor adaptor,
                              SmallVectorImpl<Type> &inferredReturnTypes) {
  auto x = cast<RankedTensorType>(adaptor.getX().getType());
  ArrayRef<int64_t> perm = adaptor.getPermutation();
  if (static_cast<int64_t>(perm.size()) != x.getRank())
    return emitOptionalError(location, "permutation ", shapeString(perm),
                             " does not have rank ", x.getRank());
  SmallVector<bool> seen(perm.size(), false);
  SmallVector<int64_t> shape;
  for (int64_t p : perm) {
    if (p < 0 || p >= x.getRank() || seen[p])
      return emitOptionalError(location, shapeString(perm),
                               " is not a permutation of [0, ", x.getRank(),
                               ")");
    seen[p] = true;
    shape.push_back(x.getDimSize(p));
  }
  inferredReturnTypes.push_back(x.clone(shape));
  return success();
}

LogicalResult BroadcastToOp::verify() {
  ArrayRef<int64_t> in = cast<RankedTensorType>(getX().getType()).getShape();
  ArrayRef<int64_t> out =
      cast<RankedTensorType>(getResult().getType()).getShape();
  FailureOr<SmallVector<int64_t>> shape = broadcastShapes({in, out});
  if (failed(shape) || ArrayRef<int64_t>(*shape) != out ||
      failed(checkedElementCount(out)))
    return emitOpError() << "cannot broadcast " << shapeString(in) << " to "
                         << shapeString(out);
  return success();
}

LogicalResult
SliceOp::inferReturnTypes(MLIRContext *context,
                          std::optional<Location> location, Adaptor adaptor,
                          SmallVectorImpl<Type> &inferredReturnTypes) {
  auto x = cast<RankedTensorType>(adaptor.getX().getType());
  ArrayRef<int64_t> start = adaptor.getStart(), limit = adaptor.getLimit(),
                    stride = adaptor.getStride();
  int64_t rank = x.getRank();
  if (static_cast<int64_t>(start.size()) != rank ||
      static_cast<int64_t>(limit.size()) != rank ||
      static_cast<int64_t>(stride.size()) != rank)
    return emitOptionalError(location,
                             "expects start, limit and stride of "
                             "length ",
                             rank);
  SmallVector<int64_t> shape;
  for (int64_t i = 0; i < rank; ++i) {
    if (stride[i] < 1)
      return emitOptionalError(location, "stride must be >= 1, got ",
                               shapeString(stride));
    if (start[i] < 0 || start[i] > limit[i] || limit[i] > x.getDimSize(i))
      return emitOptionalError(location, "slice [", start[i], ", ", limit[i],
                               ") of dim ", i, " is outside [0, ",
                               x.getDimSize(i), "]");
    shape.push_back(llvm::divideCeil(limit[i] - start[i], stride[i]));
  }
  inferredReturnTypes.push_back(x.clone(shape));
  return success();
}

LogicalResult
ConcatOp::inferReturnTypes(MLIRContext *context,
                           std::optional<Location> location, Adaptor adaptor,
                           SmallVectorImpl<Type> &inferredReturnTypes) {
  if (adaptor.getInputs().empty())
    return emitOptionalError(location, "expects at least one input");
  auto first = cast<RankedTensorType>(adaptor.getInputs()[0].getType());
  int64_t axis = adaptor.getAxis();
  if (failed(verifyAxis(location, axis, first.getRank())))
    return failure();
  SmallVector<int64_t> shape(first.getShape());
  shape[axis] = 0;
  for (Value v : adaptor.getInputs()) {
    auto t = cast<RankedTensorType>(v.getType());
    if (t.getRank() != first.getRank())
      return emitOptionalError(location, "inputs have different ranks");
    for (int64_t i = 0; i < t.getRank(); ++i) {
      if (i != axis && t.getDimSize(i) != first.getDimSize(i))
        return emitOptionalError(
            location, "input shapes ", shapeString(first.getShape()), " and ",
            shapeString(t.getShape()), " differ outside axis ", axis);
    }
    if (__builtin_add_overflow(shape[axis], t.getDimSize(axis), &shape[axis]))
      return emitOptionalError(location, "concatenated dim overflows int64");
  }
  inferredReturnTypes.push_back(first.clone(shape));
  return success();
}

LogicalResult
SplitOp::inferReturnTypes(MLIRContext *context,
                          std::optional<Location> location, Adaptor adaptor,
                          SmallVectorImpl<Type> &inferredReturnTypes) {
  auto x = cast<RankedTensorType>(adaptor.getX().getType());
  int64_t axis = adaptor.getAxis();
  if (failed(verifyAxis(location, axis, x.getRank())))
    return failure();
  int64_t total = 0;
  for (int64_t size : adaptor.getSizes()) {
    if (size < 0 || __builtin_add_overflow(total, size, &total))
      return emitOptionalError(location,
                               "split sizes must be >= 0 and sum to the dim, "
                               "got ",
                               shapeString(adaptor.getSizes()));
  }
  if (total != x.getDimSize(axis))
    return emitOptionalError(location, "split sizes ",
                             shapeString(adaptor.getSizes()), " sum to ", total,
                             ", dim ", axis, " has size ", x.getDimSize(axis));
  for (int64_t size : adaptor.getSizes()) {
    SmallVector<int64_t> shape(x.getShape());
    shape[axis] = size;
    inferredReturnTypes.push_back(x.clone(shape));
  }
  return success();
}

LogicalResult
GatherOp::inferReturnTypes(MLIRContext *context,
                           std::optional<Location> location, Adaptor adaptor,
                           SmallVectorImpl<Type> &inferredReturnTypes) {
  auto data = cast<RankedTensorType>(adaptor.getData().getType());
  auto indices = cast<RankedTensorType>(adaptor.getIndices().getType());
  int64_t axis = adaptor.getAxis();
  if (failed(verifyAxis(location, axis, data.getRank())))
    return failure();
  SmallVector<int64_t> shape(data.getShape().take_front(axis));
  llvm::append_range(shape, indices.getShape());
  llvm::append_range(shape, data.getShape().drop_front(axis + 1));
  inferredReturnTypes.push_back(data.clone(shape));
  return success();
}

LogicalResult TriluOp::verify() {
  if (cast<RankedTensorType>(getX().getType()).getRank() < 2)
    return emitOpError() << "expects rank >= 2, got " << getX().getType();
  return success();
}

LogicalResult
PadOp::inferReturnTypes(MLIRContext *context, std::optional<Location> location,
                        Adaptor adaptor,
                        SmallVectorImpl<Type> &inferredReturnTypes) {
  auto x = cast<RankedTensorType>(adaptor.getX().getType());
  ArrayRef<int64_t> low = adaptor.getLow(), high = adaptor.getHigh();
  SmallVector<int64_t> noInterior(x.getRank(), 0);
  ArrayRef<int64_t> interior =
      adaptor.getInterior() ? *adaptor.getInterior() : noInterior;
  if (static_cast<int64_t>(low.size()) != x.getRank() ||
      static_cast<int64_t>(high.size()) != x.getRank() ||
      static_cast<int64_t>(interior.size()) != x.getRank())
    return emitOptionalError(
        location, "expects low, high and interior of length ", x.getRank());
  SmallVector<int64_t> shape;
  for (int64_t i = 0; i < x.getRank(); ++i) {
    int64_t d = x.getDimSize(i), dim, gaps;
    if (low[i] < 0 || high[i] < 0 || interior[i] < 0 ||
        __builtin_mul_overflow(std::max<int64_t>(d - 1, 0), interior[i],
                               &gaps) ||
        __builtin_add_overflow(d, gaps, &dim) ||
        __builtin_add_overflow(dim, low[i], &dim) ||
        __builtin_add_overflow(dim, high[i], &dim))
      return emitOptionalError(location,
                               "padding must be >= 0 and keep dims in int64");
    shape.push_back(dim);
  }
  inferredReturnTypes.push_back(x.clone(shape));
  return success();
}

LogicalResult ScatterAddOp::verify() {
  auto result = cast<RankedTensorType>(getResult().getType());
  auto indices = cast<RankedTensorType>(getIndices().getType());
  int64_t axis = getAxis();
  if (failed(verifyAxis(getLoc(), axis, result.getRank())))
    return failure();
  SmallVector<int64_t> expected(result.getShape().take_front(axis));
  llvm::append_range(expected, indices.getShape());
  llvm::append_range(expected, result.getShape().drop_front(axis + 1));
  if (cast<RankedTensorType>(getUpdates().getType()).getShape() !=
      ArrayRef<int64_t>(expected))
    return emitOpError() << "expects updates of shape " << shapeString(expected)
                         << " (the gather of the result at the indices), got "
                         << getUpdates().getType();
  return success();
}

//===----------------------------------------------------------------------===//
// Loss ops
//===----------------------------------------------------------------------===//

/// Shared inference of the class-label losses: `labels` is `scores` without
/// the class axis, `weight` is `[C]`, and the result is per-position for
/// `none` and a scalar otherwise.
static LogicalResult inferLabelLoss(std::optional<Location> loc, Type scoresT,
                                    Type labelsT, Value weight,
                                    int64_t classAxis, Reduction reduction,
                                    SmallVectorImpl<Type> &inferred) {
  auto scores = cast<RankedTensorType>(scoresT);
  auto labels = cast<RankedTensorType>(labelsT);
  int64_t rank = scores.getRank();
  if (rank < 1)
    return emitOptionalError(loc, "expects scores of rank >= 1");
  int64_t axis = classAxis < 0 ? classAxis + rank : classAxis;
  if (axis < 0 || axis >= rank)
    return emitOptionalError(loc, "class_axis ", classAxis,
                             " is out of range for rank ", rank);
  SmallVector<int64_t> expected(scores.getShape());
  expected.erase(expected.begin() + axis);
  if (labels.getShape() != ArrayRef<int64_t>(expected))
    return emitOptionalError(
        loc, "expects labels of shape ", shapeString(expected), " (scores ",
        shapeString(scores.getShape()), " without class axis ", axis, "), got ",
        shapeString(labels.getShape()));
  if (weight) {
    auto w = cast<RankedTensorType>(weight.getType());
    if (w.getShape() != ArrayRef<int64_t>{scores.getDimSize(axis)} ||
        w.getElementType() != scores.getElementType())
      return emitOptionalError(loc, "expects class weight of type ",
                               scores.clone({scores.getDimSize(axis)}),
                               ", got ", w);
  }
  if (reduction == Reduction::none)
    inferred.push_back(labels.clone(scores.getElementType()));
  else
    inferred.push_back(RankedTensorType::get({}, scores.getElementType()));
  return success();
}

LogicalResult CrossEntropyOp::inferReturnTypes(
    MLIRContext *context, std::optional<Location> location, Adaptor adaptor,
    SmallVectorImpl<Type> &inferredReturnTypes) {
  double s = adaptor.getLabelSmoothing().convertToDouble();
  if (!(s >= 0.0 && s <= 1.0))
    return emitOptionalError(location,
                             "expects label_smoothing in [0, 1], "
                             "got ",
                             s);
  return inferLabelLoss(location, adaptor.getLogits().getType(),
                        adaptor.getLabels().getType(), adaptor.getWeight(),
                        adaptor.getClassAxis(), adaptor.getReduction(),
                        inferredReturnTypes);
}

LogicalResult
NllLossOp::inferReturnTypes(MLIRContext *context,
                            std::optional<Location> location, Adaptor adaptor,
                            SmallVectorImpl<Type> &inferredReturnTypes) {
  return inferLabelLoss(location, adaptor.getLogProbs().getType(),
                        adaptor.getLabels().getType(), adaptor.getWeight(),
                        adaptor.getClassAxis(), adaptor.getReduction(),
                        inferredReturnTypes);
}

LogicalResult
MseLossOp::inferReturnTypes(MLIRContext *context,
                            std::optional<Location> location, Adaptor adaptor,
                            SmallVectorImpl<Type> &inferredReturnTypes) {
  auto input = cast<RankedTensorType>(adaptor.getInput().getType());
  if (adaptor.getReduction() == Reduction::none)
    inferredReturnTypes.push_back(input);
  else
    inferredReturnTypes.push_back(
        RankedTensorType::get({}, input.getElementType()));
  return success();
}

#include "trainopt/Dialect/Trainopt/IR/TrainoptInterfaces.cpp.inc"

#define GET_OP_CLASSES
#include "trainopt/Dialect/Trainopt/IR/TrainoptOps.cpp.inc"

//===----------------------------------------------------------------------===//
// Collectives
//===----------------------------------------------------------------------===//

/// Grid axes: at least one, >= 0, strictly increasing.
static LogicalResult verifyGridAxes(Operation *op, ArrayRef<int16_t> axes) {
  if (axes.empty())
    return op->emitOpError("expects at least one grid axis");
  for (auto [i, a] : llvm::enumerate(axes)) {
    if (a < 0)
      return op->emitOpError() << "expects grid axes >= 0, got " << a;
    if (i > 0 && a <= axes[i - 1])
      return op->emitOpError("expects strictly increasing grid axes");
  }
  return success();
}

/// The group size of `axes` on the shard.grid `gridRef`, after checking
/// that the grid exists and has the axes; -1 for a dynamic grid axis.
static FailureOr<int64_t> verifyGridUse(Operation *op,
                                        FlatSymbolRefAttr gridRef,
                                        ArrayRef<int16_t> axes,
                                        SymbolTableCollection &symbolTable) {
  auto grid = symbolTable.lookupNearestSymbolFrom<shard::GridOp>(op, gridRef);
  if (!grid)
    return op->emitOpError()
           << "expects '" << gridRef.getValue() << "' to name a shard.grid";
  int64_t rank = grid.getRank();
  int64_t size = 1;
  for (int16_t a : axes) {
    if (a >= rank)
      return op->emitOpError()
             << "grid axis " << a << " is out of range: '" << gridRef.getValue()
             << "' has " << rank << " axes";
    int64_t n = grid.getShape()[a];
    size = (size < 0 || ShapedType::isDynamic(n)) ? -1 : size * n;
  }
  return size;
}

LogicalResult AllReduceOp::inferReturnTypes(MLIRContext *,
                                            std::optional<Location>,
                                            AllReduceOp::Adaptor adaptor,
                                            SmallVectorImpl<Type> &types) {
  llvm::append_range(types, adaptor.getInputs().getTypes());
  return success();
}

LogicalResult AllReduceOp::verify() {
  if (getInputs().empty())
    return emitOpError("expects at least one input");
  Type element = getElementTypeOrSelf(getInputs().front().getType());
  for (Value v : getInputs())
    if (getElementTypeOrSelf(v.getType()) != element)
      return emitOpError() << "expects inputs of one element type (a bucket), "
                              "got "
                           << element << " and "
                           << getElementTypeOrSelf(v.getType());
  return verifyGridAxes(*this, getGridAxes());
}

LogicalResult
AllReduceOp::verifySymbolUses(SymbolTableCollection &symbolTable) {
  return verifyGridUse(*this, getGridAttr(), getGridAxes(), symbolTable);
}

/// all_gather and rank_slice: `whole` is `part` with dim 0 times the group.
static LogicalResult verifyPartOfWhole(Operation *op, RankedTensorType part,
                                       RankedTensorType whole) {
  if (part.getRank() < 1 || part.getRank() != whole.getRank() ||
      part.getShape().drop_front() != whole.getShape().drop_front())
    return op->emitOpError()
           << "expects tensors that differ in dim 0 only, got " << part
           << " and " << whole;
  if (part.getDimSize(0) == 0 || whole.getDimSize(0) % part.getDimSize(0))
    return op->emitOpError() << "expects dim 0 of " << whole
                             << " to be a multiple of dim 0 of " << part;
  return success();
}

static LogicalResult verifyGroupMultiple(Operation *op, FlatSymbolRefAttr grid,
                                         ArrayRef<int16_t> axes,
                                         RankedTensorType part,
                                         RankedTensorType whole,
                                         SymbolTableCollection &symbols) {
  FailureOr<int64_t> size = verifyGridUse(op, grid, axes, symbols);
  if (failed(size))
    return failure();
  if (*size > 0 && whole.getDimSize(0) != part.getDimSize(0) * *size)
    return op->emitOpError() << "expects dim 0 of " << whole << " to be "
                             << *size << " (the group) times dim 0 of " << part;
  return success();
}

LogicalResult ReduceScatterOp::verify() {
  if (getInputs().empty())
    return emitOpError("expects at least one input");
  if (getInputs().size() != getResults().size())
    return emitOpError() << "expects one result per input, got "
                         << getInputs().size() << " inputs and "
                         << getResults().size() << " results";
  Type element = getElementTypeOrSelf(getInputs().front().getType());
  for (auto [in, out] : llvm::zip(getInputs(), getResults())) {
    if (getElementTypeOrSelf(in.getType()) != element ||
        getElementTypeOrSelf(out.getType()) != element)
      return emitOpError() << "expects inputs and results of one element "
                              "type (a bucket), got "
                           << element << " and " << in.getType() << " -> "
                           << out.getType();
    if (failed(verifyPartOfWhole(*this, cast<RankedTensorType>(out.getType()),
                                 cast<RankedTensorType>(in.getType()))))
      return failure();
  }
  return verifyGridAxes(*this, getGridAxes());
}

LogicalResult
ReduceScatterOp::verifySymbolUses(SymbolTableCollection &symbols) {
  for (auto [in, out] : llvm::zip(getInputs(), getResults()))
    if (failed(verifyGroupMultiple(*this, getGridAttr(), getGridAxes(),
                                   cast<RankedTensorType>(out.getType()),
                                   cast<RankedTensorType>(in.getType()),
                                   symbols)))
      return failure();
  return success();
}

LogicalResult CopyToGroupOp::verify() {
  return verifyGridAxes(*this, getGridAxes());
}

LogicalResult CopyToGroupOp::verifySymbolUses(SymbolTableCollection &symbols) {
  return verifyGridUse(*this, getGridAttr(), getGridAxes(), symbols);
}

LogicalResult AllGatherOp::verify() {
  if (failed(verifyGridAxes(*this, getGridAxes())))
    return failure();
  return verifyPartOfWhole(*this, getInput().getType(), getType());
}

LogicalResult AllGatherOp::verifySymbolUses(SymbolTableCollection &symbols) {
  return verifyGroupMultiple(*this, getGridAttr(), getGridAxes(),
                             getInput().getType(), getType(), symbols);
}

LogicalResult BroadcastOp::verify() {
  if (failed(verifyGridAxes(*this, getGridAxes())))
    return failure();
  if (static_cast<int64_t>(getRoot()) < 0)
    return emitOpError() << "expects a root rank >= 0, got "
                         << static_cast<int64_t>(getRoot());
  return success();
}

LogicalResult BroadcastOp::verifySymbolUses(SymbolTableCollection &symbols) {
  FailureOr<int64_t> size =
      verifyGridUse(*this, getGridAttr(), getGridAxes(), symbols);
  if (failed(size))
    return failure();
  if (*size > 0 && static_cast<int64_t>(getRoot()) >= *size)
    return emitOpError() << "root " << getRoot() << " is no rank of the group "
                         << "of " << *size << " ranks";
  return success();
}

LogicalResult RankSliceOp::verify() {
  if (failed(verifyGridAxes(*this, getGridAxes())))
    return failure();
  return verifyPartOfWhole(*this, getType(), getInput().getType());
}

LogicalResult RankSliceOp::verifySymbolUses(SymbolTableCollection &symbols) {
  return verifyGroupMultiple(*this, getGridAttr(), getGridAxes(), getType(),
                             getInput().getType(), symbols);
}

/// send and recv: one axis, and a peer other than this rank.
static LogicalResult verifyPointToPoint(Operation *op, ArrayRef<int16_t> axes,
                                        int64_t offset) {
  if (failed(verifyGridAxes(op, axes)))
    return failure();
  if (axes.size() != 1)
    return op->emitOpError() << "expects one grid axis, got " << axes.size();
  if (offset == 0)
    return op->emitOpError("expects a nonzero offset (the peer is another "
                           "rank)");
  return success();
}

/// The offset must name a rank of the group: |offset| < the axis size.
static LogicalResult verifyPeer(Operation *op, FlatSymbolRefAttr grid,
                                ArrayRef<int16_t> axes, int64_t offset,
                                SymbolTableCollection &symbols) {
  FailureOr<int64_t> size = verifyGridUse(op, grid, axes, symbols);
  if (failed(size))
    return failure();
  if (*size > 0 && std::abs(offset) >= *size)
    return op->emitOpError() << "offset " << offset << " leaves the group of "
                             << *size << " ranks";
  return success();
}

LogicalResult SendOp::verify() {
  return verifyPointToPoint(*this, getGridAxes(), getOffset());
}

LogicalResult SendOp::verifySymbolUses(SymbolTableCollection &symbols) {
  return verifyPeer(*this, getGridAttr(), getGridAxes(), getOffset(), symbols);
}

LogicalResult RecvOp::verify() {
  return verifyPointToPoint(*this, getGridAxes(), getOffset());
}

LogicalResult RecvOp::verifySymbolUses(SymbolTableCollection &symbols) {
  return verifyPeer(*this, getGridAttr(), getGridAxes(), getOffset(), symbols);
}
