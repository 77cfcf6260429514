//===- IndexHandlers.cpp - ONNX element-indexing ops ----------------------===//
//
/// \file
/// Handlers for the ONNX ops that address single elements by computed
/// indices: GatherElements, GatherND, ScatterElements, ScatterND, OneHot,
/// Hardmax and TopK. All decompose in the importer: the element positions
/// become linear indices into the flattened data (integer arithmetic on the
/// index tensor plus a constant), so a gather is `trainopt.gather` on axis
/// 0 and a scatter is `trainopt.scatter_add`, whose VJPs are each other.
//
//===----------------------------------------------------------------------===//

#include "ImportContext.h"

#include <limits>

using namespace mlir;
using namespace mlir::trainopt;
using namespace mlir::trainopt::onnx_import;

namespace {

int64_t product(ArrayRef<int64_t> dims) {
  int64_t p = 1;
  for (int64_t d : dims)
    p *= d;
  return p;
}

/// Indices as i64 with negative ones counted from the end of a dim of
/// `size` (a scalar) or of per-position `sizes` (broadcast).
Value normalizedIndices(Composer &c, Value indices, Value sizes) {
  Value idx = c.cast(indices, IntegerType::get(indices.getContext(), 64));
  Value negative = c.less(idx, c.scalar(idx, 0.0));
  return c.where(negative, c.add(idx, sizes), idx);
}

/// For GatherElements/ScatterElements: the linear index into data of
/// `dataShape` (flattened) of every element of `indices` (same rank), whose
/// values address dim `axis`.
Value elementIndices(Composer &c, Value indices, ArrayRef<int64_t> dataShape,
                     int64_t axis) {
  ArrayRef<int64_t> shape = Composer::type(indices).getShape();
  SmallVector<int64_t> strides(dataShape.size(), 1);
  for (int64_t d = static_cast<int64_t>(dataShape.size()) - 2; d >= 0; --d)
    strides[d] = strides[d + 1] * dataShape[d + 1];
  // base[p] = sum over the other dims of p_d * stride_d.
  SmallVector<int64_t> base(product(shape), 0);
  for (int64_t i = 0, e = base.size(); i < e; ++i) {
    int64_t rest = i;
    for (int64_t d = static_cast<int64_t>(shape.size()) - 1; d >= 0; --d) {
      if (d != axis)
        base[i] += (rest % shape[d]) * strides[d];
      rest /= shape[d];
    }
  }
  Value idx = normalizedIndices(
      c, indices, c.i64(dataShape[axis]));
  return c.add(c.mul(idx, c.i64(strides[axis])),
               c.i64s(base, shape));
}

/// Checks that `indices` has data's rank and fits it outside `axis`.
LogicalResult checkElementShapes(NodeContext &n, RankedTensorType data,
                                 RankedTensorType indices, int64_t axis) {
  if (data.getRank() != indices.getRank())
    return n.fail("indices must have the data's rank " + Twine(data.getRank()) +
                  ", got " + Twine(indices.getRank()));
  for (int64_t d = 0; d < data.getRank(); ++d)
    if (d != axis && indices.getDimSize(d) > data.getDimSize(d))
      return n.fail("indices dim " + Twine(d) + " (" +
                    Twine(indices.getDimSize(d)) + ") exceeds the data's (" +
                    Twine(data.getDimSize(d)) + ")");
  return success();
}

LogicalResult gatherElements(NodeContext &n) {
  FailureOr<Value> data = n.required(0), indices = n.required(1);
  if (failed(data) || failed(indices))
    return failure();
  auto dt = n.inputType(0);
  FailureOr<int64_t> a = axisAttribute(n, "axis", 0, dt.getRank());
  if (failed(a) || failed(checkElementShapes(n, dt, n.inputType(1), *a)))
    return failure();
  Composer c(n);
  Value flat = c.reshape(*data, {dt.getNumElements()});
  return n.result(c.done(
      c.gather(flat, elementIndices(c, *indices, dt.getShape(), *a), 0)));
}

/// The linear index of the slice every `[..., q]` row of ScatterND/GatherND
/// indices addresses in data viewed as [prod(dims[:q]), dims[q:]...].
Value sliceIndices(Composer &c, Value indices, ArrayRef<int64_t> dataShape) {
  auto it = Composer::type(indices);
  int64_t q = it.getShape().back();
  SmallVector<int64_t> strides(q, 1), dims(dataShape.take_front(q));
  for (int64_t d = q - 2; d >= 0; --d)
    strides[d] = strides[d + 1] * dataShape[d + 1];
  Value idx = normalizedIndices(c, indices, c.i64s(dims));
  return c.sum(c.mul(idx, c.i64s(strides)), {it.getRank() - 1},
               /*keepdims=*/false);
}

/// Checks ScatterND/GatherND indices (`[..., q]`, q <= rank) against data.
LogicalResult checkSliceIndices(NodeContext &n, RankedTensorType data,
                                RankedTensorType indices) {
  if (indices.getRank() < 1 || indices.getShape().back() > data.getRank() ||
      indices.getShape().back() < 1)
    return n.fail("indices' last dim must be in [1, " + Twine(data.getRank()) +
                  "]");
  return success();
}

LogicalResult gatherND(NodeContext &n) {
  FailureOr<Value> data = n.required(0), indices = n.required(1);
  FailureOr<int64_t> batchDims = n.check(n.attrs.getInt("batch_dims", 0));
  if (failed(data) || failed(indices) || failed(batchDims))
    return failure();
  if (*batchDims != 0)
    return n.fail("batch_dims other than 0 is not supported");
  auto dt = n.inputType(0), it = n.inputType(1);
  if (failed(checkSliceIndices(n, dt, it)))
    return failure();
  int64_t q = it.getShape().back();
  Composer c(n);
  SmallVector<int64_t> viewed{product(dt.getShape().take_front(q))};
  llvm::append_range(viewed, dt.getShape().drop_front(q));
  return n.result(c.done(c.gather(c.reshape(*data, viewed),
                                  sliceIndices(c, *indices, dt.getShape()), 0)));
}

/// Writes `scattered` (scatter_add of the updates) into `data` (both of the
/// same shape) by `reduction`: `none` replaces the addressed elements
/// (`hit`, the scatter of ones, marks them), `add` adds.
FailureOr<Value> combineScatter(NodeContext &n, Composer &c, Value data,
                                Value scattered, Value hit,
                                StringRef reduction) {
  if (reduction == "add")
    return c.done(c.add(data, scattered));
  if (reduction != "none")
    return n.fail("reduction '" + reduction +
                  "' is not supported (none and add are)");
  Value addressed = c.op<GreaterOp>({hit, c.scalar(hit, 0.0)});
  return c.done(c.where(addressed, scattered, data));
}

/// ScatterElements and ScatterND. With `none`, ONNX leaves repeated
/// indices undefined; here their updates add up.
template <bool ND> LogicalResult scatter(NodeContext &n) {
  FailureOr<Value> data = n.required(0), indices = n.required(1),
                   updates = n.required(2);
  FailureOr<int64_t> axis = n.check(n.attrs.getInt("axis", 0));
  FailureOr<std::string> reduction =
      n.check(n.attrs.getString("reduction", "none"));
  if (failed(data) || failed(indices) || failed(updates) || failed(axis) ||
      failed(reduction))
    return failure();
  auto dt = n.inputType(0), it = n.inputType(1), ut = n.inputType(2);
  Composer c(n);
  Value linear;
  SmallVector<int64_t> viewed;
  if (ND) {
    if (failed(checkSliceIndices(n, dt, it)))
      return failure();
    int64_t q = it.getShape().back();
    SmallVector<int64_t> expected(it.getShape().drop_back());
    llvm::append_range(expected, dt.getShape().drop_front(q));
    if (ut.getShape() != ArrayRef<int64_t>(expected))
      return n.fail("updates must have shape indices.shape[:-1] + "
                    "data.shape[q:]");
    viewed.push_back(product(dt.getShape().take_front(q)));
    llvm::append_range(viewed, dt.getShape().drop_front(q));
    linear = sliceIndices(c, *indices, dt.getShape());
  } else {
    FailureOr<int64_t> a = normalizeAxis(n, *axis, dt.getRank());
    if (failed(a) || failed(checkElementShapes(n, dt, it, *a)))
      return failure();
    if (ut.getShape() != it.getShape())
      return n.fail("updates must have the indices' shape");
    viewed.push_back(dt.getNumElements());
    linear = elementIndices(c, *indices, dt.getShape(), *a);
    linear = c.reshape(linear, {it.getNumElements()});
    *updates = c.reshape(*updates, {it.getNumElements()});
  }
  auto viewType = dt.clone(viewed);
  auto scatterAdd = [&](Value u) {
    return c.op<ScatterAddOp>(
        {linear, u}, {n.named("axis", n.builder.getI64IntegerAttr(0))},
        viewType);
  };
  Value ones = c.broadcast(c.scalar(dt.getElementType(), 1.0),
                           Composer::type(*updates).getShape());
  FailureOr<Value> y =
      combineScatter(n, c, c.reshape(*data, viewed), scatterAdd(*updates),
                     scatterAdd(ones), *reduction);
  if (failed(y))
    return failure();
  return n.result(c.done(c.reshape(*y, dt.getShape())));
}

/// `iota` along `axis` of a rank-`rank` tensor with `dim` elements there.
Value iotaAlong(Composer &c, int64_t rank, int64_t axis, int64_t dim) {
  SmallVector<int64_t> shape(rank, 1);
  shape[axis] = dim;
  return c.i64s(llvm::to_vector(llvm::seq<int64_t>(0, dim)), shape);
}

/// OneHot: where(indices (unsqueezed at axis) == iota(depth), on, off);
/// negative indices count from depth, indices outside [-depth, depth) give
/// a row of `off`.
LogicalResult oneHot(NodeContext &n) {
  FailureOr<Value> indices = n.required(0), values = n.required(2);
  FailureOr<DenseElementsAttr> depthAttr = n.constantInput(1, "depth");
  FailureOr<int64_t> axis = n.check(n.attrs.getInt("axis", -1));
  if (failed(indices) || failed(values) || failed(depthAttr) || failed(axis))
    return failure();
  if (depthAttr->getNumElements() != 1)
    return n.fail("depth must hold one value");
  double depthValue = scalarAsDouble(*depthAttr);
  if (!(depthValue >= 1) || depthValue > (1 << 24))
    return n.fail("depth must be in [1, 2^24], got " + std::to_string(depthValue));
  int64_t depth = static_cast<int64_t>(depthValue);
  auto vt = n.inputType(2);
  if (vt.getNumElements() != 2)
    return n.fail("values must hold [off_value, on_value]");
  auto it = n.inputType(0);
  FailureOr<int64_t> a = normalizeAxis(n, *axis, it.getRank() + 1);
  if (failed(a))
    return failure();
  Composer c(n);
  if (isa<FloatType>(it.getElementType()))
    *indices = c.cast(*indices, IntegerType::get(n.getContext(), 64));
  Value idx = normalizedIndices(c, *indices,
                                c.i64(depth));
  SmallVector<int64_t> expanded(it.getShape());
  expanded.insert(expanded.begin() + *a, 1);
  Value hit = c.equal(c.reshape(idx, expanded),
                      iotaAlong(c, it.getRank() + 1, *a, depth));
  Value flat = c.reshape(*values, {2});
  Value off = c.reshape(c.slice(flat, 0, 0, 1), {});
  Value on = c.reshape(c.slice(flat, 0, 1, 2), {});
  return n.result(c.done(c.where(hit, on, off)));
}

/// Hardmax: 1 at the first maximum along the axis, 0 elsewhere (no
/// gradient: the output is piecewise constant).
LogicalResult hardmax(NodeContext &n) {
  FailureOr<Value> x = n.required(0);
  if (failed(x))
    return failure();
  auto xt = n.inputType(0);
  FailureOr<int64_t> a = axisAttribute(n, "axis", -1, xt.getRank());
  if (failed(a))
    return failure();
  Composer c(n);
  Value idx = c.op<ArgMaxOp>(
      {*x}, {n.named("axis", n.builder.getI64IntegerAttr(*a)),
             n.named("keepdims", n.builder.getBoolAttr(true))});
  Value hit = c.equal(idx, iotaAlong(c, xt.getRank(), *a, xt.getDimSize(*a)));
  return n.result(c.done(c.cast(c.broadcast(hit, xt.getShape()),
                                xt.getElementType())));
}

/// TopK as k selection passes, each an argmax over the elements not yet
/// taken (ties: the lowest index first, as a stable sort would); the values
/// are a gather of the input at the indices, so their gradient reaches the
/// selected elements. sorted = 0 allows any order, so sorted order serves.
/// k is limited to kMaxTopK: each pass reads the whole input.
constexpr int64_t kMaxTopK = 64;

LogicalResult topK(NodeContext &n) {
  FailureOr<Value> x = n.required(0);
  FailureOr<SmallVector<int64_t>> kValue = n.constantInts(1, "K");
  FailureOr<int64_t> largest = n.check(n.attrs.getInt("largest", 1));
  if (failed(x) || failed(kValue) || failed(largest))
    return failure();
  auto xt = n.inputType(0);
  FailureOr<int64_t> a = axisAttribute(n, "axis", -1, xt.getRank());
  if (failed(a))
    return failure();
  if (kValue->size() != 1)
    return n.fail("K must hold one value");
  int64_t k = kValue->front(), dim = xt.getDimSize(*a);
  if (k < 0 || k > dim)
    return n.fail("K = " + Twine(k) + " is outside [0, " + Twine(dim) + "]");
  if (k > kMaxTopK)
    return n.fail("K = " + Twine(k) + " exceeds " + Twine(kMaxTopK) +
                  ": TopK decomposes into one selection pass per element");
  Type elt = xt.getElementType();
  if (!isa<FloatType>(elt) && !elt.isSignlessInteger())
    return n.fail("TopK needs a float or signed integer input");
  Composer c(n);
  Value key = *largest ? *x : c.op<NegOp>({*x});
  double lowest = isa<FloatType>(elt) ? -std::numeric_limits<double>::infinity()
                                      : -0x1p63;
  Value iota = iotaAlong(c, xt.getRank(), *a, dim);
  Value taken = n.constant(
      DenseElementsAttr::get(xt.clone(n.builder.getI1Type()), false));
  SmallVector<NamedAttribute> alongAxis{
      n.named("axis", n.builder.getI64IntegerAttr(*a)),
      n.named("keepdims", n.builder.getBoolAttr(true))};
  SmallVector<Value> picks;
  for (int64_t i = 0; i < k && c.ok(); ++i) {
    Value open = c.where(taken, c.scalar(elt, lowest), key);
    Value best = c.op<ReduceMaxOp>(
        {open}, {n.named("axes", n.builder.getDenseI64ArrayAttr({*a})),
                 alongAxis[1]});
    // The first element equal to the best that is not taken yet (a plain
    // argmax of `open` would return a taken one when the rest is lowest).
    Value candidate = c.op<AndOp>(
        {c.equal(open, best), c.op<NotOp>({taken})});
    Value idx = c.op<ArgMaxOp>({c.cast(candidate, elt)}, alongAxis);
    picks.push_back(idx);
    taken = c.op<OrOp>({taken, c.equal(idx, iota)});
  }
  Value indices = picks.empty() ? Value() : c.concat(picks, *a);
  if (!c.ok())
    return failure();
  if (picks.empty()) { // k = 0: empty outputs
    SmallVector<int64_t> shape(xt.getShape());
    shape[*a] = 0;
    n.setOutput(0, n.constant(DenseElementsAttr::get(
                       xt.clone(shape), ArrayRef<Attribute>{})));
    n.setOutput(1, n.constant(DenseElementsAttr::get(
                       xt.clone(shape).clone(n.builder.getI64Type()),
                       ArrayRef<Attribute>{})));
    return success();
  }
  Value flat = c.reshape(*x, {xt.getNumElements()});
  Value values = c.gather(flat, elementIndices(c, indices, xt.getShape(), *a), 0);
  if (!c.ok())
    return failure();
  n.setOutput(0, values);
  n.setOutput(1, indices);
  return success();
}

} // namespace

void onnx_import::registerIndexHandlers(HandlerTable &t) {
  t.on("GatherElements", 13, gatherElements);
  t.on("GatherND", 13, gatherND);
  t.on("ScatterElements", 13, scatter<false>);
  t.on("ScatterElements", 16, scatter<false>);
  t.on("ScatterElements", 18, scatter<false>);
  t.on("ScatterND", 13, scatter<true>);
  t.on("ScatterND", 16, scatter<true>);
  t.on("ScatterND", 18, scatter<true>);
  t.on("OneHot", 11, oneHot);
  t.on("Hardmax", 13, hardmax);
  t.on("TopK", 11, topK);
}
