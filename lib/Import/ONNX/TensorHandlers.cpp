//===- TensorHandlers.cpp - ONNX shape and data-movement ops --------------===//
//
/// \file
/// Handlers for the ONNX shape ops. Shapes are static, so `Shape` and `Size`
/// become constants and the integer arithmetic on them folds while importing;
/// `Reshape`, `Expand`, `Slice` and friends then read their shape operands
/// as constants.
//
//===----------------------------------------------------------------------===//

#include "ImportContext.h"

#include "mlir/IR/BuiltinAttributes.h"
#include "mlir/IR/Matchers.h"

#include <cmath>

using namespace mlir;
using namespace mlir::trainopt;
using namespace mlir::trainopt::onnx_import;

namespace {

DenseElementsAttr i64Tensor(Builder &b, ArrayRef<int64_t> values,
                            ArrayRef<int64_t> shape) {
  return DenseElementsAttr::get(RankedTensorType::get(shape, b.getI64Type()),
                                values);
}

/// Reads a tensor attribute of a node; external data is not allowed there.
FailureOr<DenseElementsAttr>
nodeTensor(NodeContext &n, const onnx::TensorProto &tensor, StringRef what) {
  if (tensor.data_location() == onnx::TensorProto::EXTERNAL)
    return n.fail(Twine(what) + " uses external data, which is only allowed "
                                "for initializers");
  Problems local;
  TensorReader reader(n.getContext(), ".");
  FailureOr<DenseElementsAttr> v = reader.readDense(tensor, what, local);
  if (failed(v))
    return n.fail(local.all().front());
  return v;
}

LogicalResult constant(NodeContext &n) {
  Builder &b = n.builder;
  if (const onnx::AttributeProto *a = n.attrs.get("value")) {
    FailureOr<DenseElementsAttr> v = nodeTensor(n, a->t(), "value");
    if (failed(v))
      return failure();
    n.setOutput(0, n.constant(*v));
    return success();
  }
  if (const onnx::AttributeProto *a = n.attrs.get("value_float")) {
    n.setOutput(0, n.scalar(b.getF32Type(), a->f()));
    return success();
  }
  if (const onnx::AttributeProto *a = n.attrs.get("value_int")) {
    n.setOutput(0, n.constant(i64Tensor(b, {a->i()}, {})));
    return success();
  }
  if (const onnx::AttributeProto *a = n.attrs.get("value_ints")) {
    SmallVector<int64_t> v(a->ints().begin(), a->ints().end());
    n.setOutput(0, n.constant(i64Tensor(b, v, {(int64_t)v.size()})));
    return success();
  }
  if (const onnx::AttributeProto *a = n.attrs.get("value_floats")) {
    SmallVector<float> v(a->floats().begin(), a->floats().end());
    n.setOutput(0,
                n.constant(DenseElementsAttr::get(
                    RankedTensorType::get({(int64_t)v.size()}, b.getF32Type()),
                    ArrayRef<float>(v))));
    return success();
  }
  return n.fail("only the value, value_float(s) and value_int(s) forms of "
                "Constant are supported");
}

LogicalResult shape(NodeContext &n) {
  FailureOr<Value> x = n.required(0);
  FailureOr<int64_t> start = n.check(n.attrs.getInt("start", 0));
  if (failed(x) || failed(start))
    return failure();
  ArrayRef<int64_t> dims = n.inputType(0).getShape();
  int64_t rank = dims.size();
  FailureOr<int64_t> end = n.check(n.attrs.getInt("end", rank));
  if (failed(end))
    return failure();
  auto clampAxis = [&](int64_t a) {
    if (a < 0)
      a += rank;
    return std::clamp<int64_t>(a, 0, rank);
  };
  int64_t s = clampAxis(*start), e = std::max(clampAxis(*end), s);
  SmallVector<int64_t> v(dims.begin() + s, dims.begin() + e);
  n.setOutput(0, n.constant(i64Tensor(n.builder, v, {(int64_t)v.size()})));
  return success();
}

LogicalResult size(NodeContext &n) {
  FailureOr<Value> x = n.required(0);
  if (failed(x))
    return failure();
  n.setOutput(0, n.constant(i64Tensor(n.builder,
                                      {n.inputType(0).getNumElements()}, {})));
  return success();
}

FailureOr<Value> reshapeTo(NodeContext &n, Value x, ArrayRef<int64_t> shape) {
  return n.create<ReshapeOp>({x}, {},
                             cast<RankedTensorType>(x.getType()).clone(shape));
}

LogicalResult setReshaped(NodeContext &n, Value x, ArrayRef<int64_t> shape) {
  FailureOr<Value> y = reshapeTo(n, x, shape);
  if (failed(y))
    return failure();
  n.setOutput(0, *y);
  return success();
}

LogicalResult reshape(NodeContext &n) {
  FailureOr<Value> x = n.required(0);
  FailureOr<SmallVector<int64_t>> target = n.constantInts(1, "shape");
  FailureOr<int64_t> allowZero = n.check(n.attrs.getInt("allowzero", 0));
  if (failed(x) || failed(target) || failed(allowZero))
    return failure();
  auto xt = n.inputType(0);
  SmallVector<int64_t> shape;
  int64_t inferred = -1, known = 1;
  for (auto [i, d] : llvm::enumerate(*target)) {
    if (d == 0 && !*allowZero) {
      if (static_cast<int64_t>(i) >= xt.getRank())
        return n.fail("shape copies dim " + Twine(i) +
                      " that the input does not have");
      d = xt.getDimSize(i);
    }
    if (d == -1) {
      if (inferred >= 0)
        return n.fail("shape has more than one -1");
      inferred = i;
      shape.push_back(1);
      continue;
    }
    if (d < 0)
      return n.fail("shape has the negative dim " + Twine(d));
    shape.push_back(d);
    if (__builtin_mul_overflow(known, d, &known))
      return n.fail("shape's element count overflows int64");
  }
  if (inferred >= 0) {
    if (known == 0 || xt.getNumElements() % known != 0)
      return n.fail("cannot infer the -1 dim: " + Twine(xt.getNumElements()) +
                    " elements into parts of " + Twine(known));
    shape[inferred] = xt.getNumElements() / known;
  }
  return setReshaped(n, *x, shape);
}

LogicalResult flatten(NodeContext &n) {
  FailureOr<Value> x = n.required(0);
  FailureOr<int64_t> axis = n.check(n.attrs.getInt("axis", 1));
  if (failed(x) || failed(axis))
    return failure();
  auto xt = n.inputType(0);
  int64_t a = *axis < 0 ? *axis + xt.getRank() : *axis;
  if (a < 0 || a > xt.getRank())
    return n.fail("axis " + Twine(*axis) + " is out of range");
  int64_t outer = 1;
  for (int64_t i = 0; i < a; ++i)
    outer *= xt.getDimSize(i);
  int64_t inner =
      outer == 0 ? 0 : xt.getNumElements() / std::max<int64_t>(outer, 1);
  return setReshaped(n, *x, {outer, inner});
}

/// The axes of Squeeze/Unsqueeze: an input from opset 13 on.
FailureOr<SmallVector<int64_t>> axesInput(NodeContext &n, bool required) {
  if (!n.input(1)) {
    if (required)
      return n.fail("missing the axes input");
    return SmallVector<int64_t>();
  }
  return n.constantInts(1, "axes");
}

LogicalResult squeeze(NodeContext &n) {
  FailureOr<Value> x = n.required(0);
  FailureOr<SmallVector<int64_t>> axes = axesInput(n, false);
  if (failed(x) || failed(axes))
    return failure();
  auto xt = n.inputType(0);
  SmallVector<bool> drop(xt.getRank(), false);
  if (axes->empty()) {
    for (int64_t i = 0; i < xt.getRank(); ++i)
      drop[i] = xt.getDimSize(i) == 1;
  }
  for (int64_t axis : *axes) {
    FailureOr<int64_t> a = normalizeAxis(n, axis, xt.getRank());
    if (failed(a))
      return failure();
    if (xt.getDimSize(*a) != 1)
      return n.fail("cannot squeeze dim " + Twine(*a) + " of size " +
                    Twine(xt.getDimSize(*a)));
    drop[*a] = true;
  }
  SmallVector<int64_t> shape;
  for (int64_t i = 0; i < xt.getRank(); ++i)
    if (!drop[i])
      shape.push_back(xt.getDimSize(i));
  return setReshaped(n, *x, shape);
}

LogicalResult unsqueeze(NodeContext &n) {
  FailureOr<Value> x = n.required(0);
  FailureOr<SmallVector<int64_t>> axes = axesInput(n, true);
  if (failed(x) || failed(axes))
    return failure();
  auto xt = n.inputType(0);
  int64_t outRank = xt.getRank() + axes->size();
  SmallVector<bool> inserted(outRank, false);
  for (int64_t axis : *axes) {
    FailureOr<int64_t> a = normalizeAxis(n, axis, outRank);
    if (failed(a))
      return failure();
    if (inserted[*a])
      return n.fail("axes repeat " + Twine(*a));
    inserted[*a] = true;
  }
  SmallVector<int64_t> shape;
  unsigned next = 0;
  for (int64_t i = 0; i < outRank; ++i)
    shape.push_back(inserted[i] ? 1 : xt.getDimSize(next++));
  return setReshaped(n, *x, shape);
}

LogicalResult transpose(NodeContext &n) {
  FailureOr<Value> x = n.required(0);
  if (failed(x))
    return failure();
  int64_t rank = n.inputType(0).getRank();
  SmallVector<int64_t> reversed =
      llvm::to_vector(llvm::reverse(llvm::seq<int64_t>(0, rank)));
  FailureOr<SmallVector<int64_t>> perm =
      n.check(n.attrs.getInts("perm", reversed));
  if (failed(perm))
    return failure();
  return n.result(n.create<TransposeOp>(
      {*x}, {n.named("permutation", n.builder.getDenseI64ArrayAttr(*perm))}));
}

LogicalResult concat(NodeContext &n) {
  FailureOr<int64_t> axis = n.check(n.attrs.getInt("axis"));
  if (failed(axis))
    return failure();
  if (n.numInputs() == 0)
    return n.fail("expects at least one input");
  for (unsigned i = 0; i < n.numInputs(); ++i)
    if (failed(n.required(i)))
      return failure();
  FailureOr<int64_t> a = normalizeAxis(n, *axis, n.inputType(0).getRank());
  if (failed(a))
    return failure();
  // Inputs of size 0 along the axis contribute nothing (exporters emit them
  // in shape computations); keep at least one.
  SmallVector<Value> inputs;
  for (unsigned i = 0; i < n.numInputs(); ++i) {
    auto t = n.inputType(i);
    if (t.getRank() == n.inputType(0).getRank() && t.getDimSize(*a) == 0)
      continue;
    inputs.push_back(n.input(i));
  }
  if (inputs.empty())
    inputs.push_back(n.input(0));
  return n.result(n.create<ConcatOp>(
      inputs, {n.named("axis", n.builder.getI64IntegerAttr(*a))}));
}

/// Split: sizes from the input (13+), from num_outputs (18+) or even.
LogicalResult split(NodeContext &n) {
  FailureOr<Value> x = n.required(0);
  if (failed(x))
    return failure();
  auto xt = n.inputType(0);
  FailureOr<int64_t> a = axisAttribute(n, "axis", 0, xt.getRank());
  if (failed(a))
    return failure();
  int64_t dim = xt.getDimSize(*a);
  SmallVector<int64_t> sizes;
  if (n.input(1)) {
    FailureOr<SmallVector<int64_t>> s = n.constantInts(1, "split");
    if (failed(s))
      return failure();
    sizes = *s;
  } else {
    int64_t parts = n.numOutputs();
    if (n.opset >= 18 && n.attrs.has("num_outputs")) {
      FailureOr<int64_t> num = n.check(n.attrs.getInt("num_outputs"));
      if (failed(num))
        return failure();
      parts = *num;
    }
    if (parts < 1 || parts != n.numOutputs())
      return n.fail("num_outputs " + Twine(parts) + " must equal the node's " +
                    Twine(n.numOutputs()) + " outputs");
    // Opset 18: the last chunk is smaller when the dim does not divide.
    int64_t chunk = (dim + parts - 1) / parts;
    if (n.opset < 18 && dim % parts != 0)
      return n.fail("dim " + Twine(dim) + " does not split evenly into " +
                    Twine(parts) + " outputs");
    for (int64_t i = 0; i < parts; ++i)
      sizes.push_back(std::clamp<int64_t>(dim - i * chunk, 0, chunk));
  }
  if (static_cast<int64_t>(sizes.size()) != n.numOutputs())
    return n.fail("split into " + Twine(sizes.size()) +
                  " pieces but the node "
                  "has " +
                  Twine(n.numOutputs()) + " outputs");
  FailureOr<SmallVector<Value>> r = n.createMulti<SplitOp>(
      {*x}, {n.named("axis", n.builder.getI64IntegerAttr(*a)),
             n.named("sizes", n.builder.getDenseI64ArrayAttr(sizes))});
  if (failed(r))
    return failure();
  for (auto [i, v] : llvm::enumerate(*r))
    n.setOutput(i, v);
  return success();
}

/// A Slice with a negative step: the dialect's slice strides forward.
/// Constant data is folded (exporters reverse constant lists this way:
/// PyTorch's F.pad reverses its pads with Slice(step=-1)); other data is
/// gathered at constant indices along each sliced axis (its gradient is the
/// gathers' scatter). ONNX clamps a negative-step start to [0, dim - 1] and
/// its end to [-1, dim - 1].
static LogicalResult reversingSlice(NodeContext &n, ArrayRef<int64_t> axes,
                                    ArrayRef<int64_t> starts,
                                    ArrayRef<int64_t> ends,
                                    ArrayRef<int64_t> steps) {
  auto xt = n.inputType(0);
  int64_t rank = xt.getRank();
  // Per dim: the first index, the step and the count.
  SmallVector<int64_t> first(rank, 0), step(rank, 1), count(xt.getShape());
  for (size_t i = 0; i < axes.size(); ++i) {
    FailureOr<int64_t> a = normalizeAxis(n, axes[i], rank);
    if (failed(a))
      return failure();
    int64_t dim = xt.getDimSize(*a);
    if (steps[i] == 0)
      return n.fail("step 0 is not allowed");
    int64_t b = starts[i] < 0 ? starts[i] + dim : starts[i];
    int64_t e = ends[i] < 0 ? ends[i] + dim : ends[i];
    if (steps[i] > 0) {
      b = std::clamp<int64_t>(b, 0, dim);
      e = std::clamp<int64_t>(e, 0, dim);
      count[*a] = e > b ? (e - b + steps[i] - 1) / steps[i] : 0;
    } else {
      b = std::clamp<int64_t>(b, 0, dim - 1);
      e = std::clamp<int64_t>(e, -1, dim - 1);
      count[*a] = b > e ? (b - e - steps[i] - 1) / -steps[i] : 0;
    }
    first[*a] = b;
    step[*a] = steps[i];
  }
  if (!matchPattern(n.input(0), m_Constant())) {
    Composer c(n);
    Value v = n.input(0);
    for (int64_t d = 0; d < rank; ++d) {
      if (first[d] == 0 && step[d] == 1 && count[d] == xt.getDimSize(d))
        continue;
      SmallVector<int64_t> indices;
      for (int64_t k = 0; k < count[d]; ++k)
        indices.push_back(first[d] + k * step[d]);
      v = c.gather(v, c.i64s(indices), d);
    }
    return n.result(c.done(v));
  }
  FailureOr<DenseElementsAttr> data = n.constantInput(0, "data");
  if (failed(data))
    return failure();
  SmallVector<Attribute> in(data->getValues<Attribute>());
  SmallVector<Attribute> out;
  int64_t total = 1;
  for (int64_t c : count)
    total *= c;
  SmallVector<int64_t> idx(rank, 0);
  for (int64_t k = 0; k < total; ++k) {
    int64_t linear = 0;
    for (int64_t d = 0; d < rank; ++d)
      linear = linear * xt.getDimSize(d) + first[d] + idx[d] * step[d];
    out.push_back(in[linear]);
    for (int64_t d = rank - 1; d >= 0 && ++idx[d] == count[d]; --d)
      idx[d] = 0;
  }
  n.setOutput(0, n.constant(DenseElementsAttr::get(xt.clone(count), out)));
  return success();
}

/// Slice with ONNX clamping semantics.
LogicalResult slice(NodeContext &n) {
  FailureOr<Value> x = n.required(0);
  FailureOr<SmallVector<int64_t>> starts = n.constantInts(1, "starts");
  FailureOr<SmallVector<int64_t>> ends = n.constantInts(2, "ends");
  if (failed(x) || failed(starts) || failed(ends))
    return failure();
  auto xt = n.inputType(0);
  int64_t rank = xt.getRank();
  SmallVector<int64_t> axes =
      llvm::to_vector(llvm::seq<int64_t>(0, starts->size()));
  SmallVector<int64_t> steps(starts->size(), 1);
  if (n.input(3)) {
    FailureOr<SmallVector<int64_t>> a = n.constantInts(3, "axes");
    if (failed(a))
      return failure();
    axes = *a;
  }
  if (n.input(4)) {
    FailureOr<SmallVector<int64_t>> s = n.constantInts(4, "steps");
    if (failed(s))
      return failure();
    steps = *s;
  }
  if (ends->size() != starts->size() || axes.size() != starts->size() ||
      steps.size() != starts->size())
    return n.fail("starts, ends, axes and steps differ in length");
  if (llvm::any_of(steps, [](int64_t s) { return s < 0; }))
    return reversingSlice(n, axes, *starts, *ends, steps);
  SmallVector<int64_t> start(rank, 0), limit(xt.getShape()), stride(rank, 1);
  for (size_t i = 0; i < axes.size(); ++i) {
    FailureOr<int64_t> a = normalizeAxis(n, axes[i], rank);
    if (failed(a))
      return failure();
    int64_t dim = xt.getDimSize(*a);
    if (steps[i] < 1)
      return n.fail("step " + Twine(steps[i]) +
                    " is not supported (only positive steps)");
    auto clampIndex = [&](int64_t v) {
      if (v < 0)
        v += dim;
      return std::clamp<int64_t>(v, 0, dim);
    };
    start[*a] = clampIndex((*starts)[i]);
    limit[*a] = std::max(clampIndex((*ends)[i]), start[*a]);
    stride[*a] = steps[i];
  }
  return n.result(n.create<SliceOp>(
      {*x}, {n.named("start", n.builder.getDenseI64ArrayAttr(start)),
             n.named("limit", n.builder.getDenseI64ArrayAttr(limit)),
             n.named("stride", n.builder.getDenseI64ArrayAttr(stride))}));
}

LogicalResult gather(NodeContext &n) {
  FailureOr<Value> data = n.required(0), indices = n.required(1);
  FailureOr<int64_t> axis = n.check(n.attrs.getInt("axis", 0));
  if (failed(data) || failed(indices) || failed(axis))
    return failure();
  FailureOr<int64_t> a = normalizeAxis(n, *axis, n.inputType(0).getRank());
  if (failed(a))
    return failure();
  return n.result(n.create<GatherOp>(
      {*data, *indices}, {n.named("axis", n.builder.getI64IntegerAttr(*a))}));
}

LogicalResult expand(NodeContext &n) {
  FailureOr<Value> x = n.required(0);
  FailureOr<SmallVector<int64_t>> target = n.constantInts(1, "shape");
  if (failed(x) || failed(target))
    return failure();
  ArrayRef<int64_t> in = n.inputType(0).getShape();
  if (llvm::any_of(*target, [](int64_t d) { return d < 0; }))
    return n.fail("shape has a negative dim");
  FailureOr<SmallVector<int64_t>> shape =
      broadcastShapes({in, ArrayRef<int64_t>(*target)});
  if (failed(shape))
    return n.fail("input shape does not broadcast to the requested shape");
  return n.result(
      n.create<BroadcastToOp>({*x}, {}, n.inputType(0).clone(*shape)));
}

LogicalResult trilu(NodeContext &n) {
  FailureOr<Value> x = n.required(0);
  FailureOr<int64_t> upper = n.check(n.attrs.getInt("upper", 1));
  if (failed(x) || failed(upper))
    return failure();
  int64_t k = 0;
  if (n.input(1)) {
    FailureOr<SmallVector<int64_t>> kv = n.constantInts(1, "k");
    if (failed(kv))
      return failure();
    if (kv->size() != 1)
      return n.fail("k must be a scalar");
    k = (*kv)[0];
  }
  return n.result(
      n.create<TriluOp>({*x},
                        {n.named("upper", n.builder.getBoolAttr(*upper)),
                         n.named("diagonal", n.builder.getI64IntegerAttr(k))},
                        n.inputType(0)));
}

/// Pad, constant mode; `axes` (18+) restricts which dims the pads apply to.
LogicalResult pad(NodeContext &n) {
  FailureOr<Value> x = n.required(0);
  FailureOr<std::string> mode =
      n.check(n.attrs.getString("mode", std::string("constant")));
  FailureOr<SmallVector<int64_t>> pads = n.constantInts(1, "pads");
  if (failed(x) || failed(mode) || failed(pads))
    return failure();
  if (*mode != "constant")
    return n.fail("pad mode '" + *mode + "' is not supported (only constant)");
  auto xt = n.inputType(0);
  int64_t rank = xt.getRank();
  double value = 0.0;
  if (n.input(2)) {
    FailureOr<DenseElementsAttr> c = n.constantInput(2, "constant_value");
    if (failed(c))
      return failure();
    if (c->getNumElements() != 1)
      return n.fail("constant_value must be a scalar");
    value = scalarAsDouble(*c);
  }
  SmallVector<int64_t> axes = llvm::to_vector(llvm::seq<int64_t>(0, rank));
  if (n.input(3)) {
    FailureOr<SmallVector<int64_t>> a = n.constantInts(3, "axes");
    if (failed(a))
      return failure();
    axes.clear();
    for (int64_t axis : *a) {
      FailureOr<int64_t> na = normalizeAxis(n, axis, rank);
      if (failed(na))
        return failure();
      axes.push_back(*na);
    }
  }
  if (pads->size() != 2 * axes.size())
    return n.fail("pads has " + Twine(pads->size()) + " values, expected " +
                  Twine(2 * axes.size()));
  SmallVector<int64_t> low(rank, 0), high(rank, 0);
  for (auto [i, axis] : llvm::enumerate(axes)) {
    low[axis] = (*pads)[i];
    high[axis] = (*pads)[i + axes.size()];
    if (low[axis] < 0 || high[axis] < 0)
      return n.fail("negative pads (cropping) are not supported");
  }
  return n.result(n.create<PadOp>(
      {*x}, {n.named("low", n.builder.getDenseI64ArrayAttr(low)),
             n.named("high", n.builder.getDenseI64ArrayAttr(high)),
             n.named("value", n.builder.getF64FloatAttr(value))}));
}

/// Largest tensor a shape-computing op may materialize at import time.
constexpr int64_t kMaxMaterializedElements = int64_t(1) << 26;

LogicalResult constantOfShape(NodeContext &n) {
  FailureOr<SmallVector<int64_t>> shape = n.constantInts(0, "shape");
  if (failed(shape))
    return failure();
  FailureOr<int64_t> count = checkedElementCount(*shape);
  if (failed(count) || *count > kMaxMaterializedElements)
    return n.fail("shape has a negative dim or too many elements");
  DenseElementsAttr value = DenseElementsAttr::get(
      RankedTensorType::get({1}, n.builder.getF32Type()), 0.0f);
  if (const onnx::AttributeProto *a = n.attrs.get("value")) {
    FailureOr<DenseElementsAttr> v = nodeTensor(n, a->t(), "value");
    if (failed(v))
      return failure();
    if (v->getNumElements() != 1)
      return n.fail("value must hold one element");
    value = *v;
  }
  auto type = RankedTensorType::get(*shape, value.getElementType());
  n.setOutput(0, n.constant(DenseElementsAttr::get(
                     type, *value.getValues<Attribute>().begin())));
  return success();
}

/// Range with constant operands becomes a constant.
LogicalResult range(NodeContext &n) {
  FailureOr<DenseElementsAttr> start = n.constantInput(0, "start");
  FailureOr<DenseElementsAttr> limit = n.constantInput(1, "limit");
  FailureOr<DenseElementsAttr> delta = n.constantInput(2, "delta");
  if (failed(start) || failed(limit) || failed(delta))
    return failure();
  Type elt = start->getElementType();
  if (start->getNumElements() != 1 || limit->getNumElements() != 1 ||
      delta->getNumElements() != 1)
    return n.fail("start, limit and delta must be scalars");
  SmallVector<Attribute> values;
  if (isa<IntegerType>(elt)) {
    int64_t s = (*start->getValues<APInt>().begin()).getSExtValue();
    int64_t l = (*limit->getValues<APInt>().begin()).getSExtValue();
    int64_t d = (*delta->getValues<APInt>().begin()).getSExtValue();
    if (d == 0)
      return n.fail("delta must not be zero");
    // count = ceil((l - s) / d), in 128 bits so no input overflows.
    __int128 span = static_cast<__int128>(l) - s;
    __int128 count = span / d + ((span % d != 0) && ((span > 0) == (d > 0)));
    if (count > kMaxMaterializedElements)
      return n.fail("range has too many elements");
    for (__int128 i = 0; i < count; ++i)
      values.push_back(n.builder.getIntegerAttr(
          elt, static_cast<int64_t>(s + i * static_cast<__int128>(d))));
  } else {
    double s = scalarAsDouble(*start), l = scalarAsDouble(*limit),
           d = scalarAsDouble(*delta);
    double steps = std::ceil((l - s) / d);
    if (d == 0 || !std::isfinite(steps) ||
        steps > static_cast<double>(kMaxMaterializedElements))
      return n.fail("range must have a non-zero delta and at most " +
                    Twine(kMaxMaterializedElements) + " elements");
    for (int64_t i = 0, e = steps > 0 ? static_cast<int64_t>(steps) : 0; i < e;
         ++i)
      values.push_back(n.builder.getFloatAttr(elt, s + i * d));
  }
  n.setOutput(
      0, n.constant(DenseElementsAttr::get(
             RankedTensorType::get({(int64_t)values.size()}, elt), values)));
  return success();
}

/// Tile as broadcast: [d0, d1] with repeats [r0, r1] is [1, d0, 1, d1]
/// broadcast to [r0, d0, r1, d1], reshaped to [r0 d0, r1 d1] (the gradient
/// is the broadcast's: a sum over the copies).
LogicalResult tile(NodeContext &n) {
  FailureOr<Value> x = n.required(0);
  FailureOr<SmallVector<int64_t>> repeats = n.constantInts(1, "repeats");
  if (failed(x) || failed(repeats))
    return failure();
  ArrayRef<int64_t> shape = n.inputType(0).getShape();
  if (repeats->size() != shape.size())
    return n.fail("repeats has " + Twine(repeats->size()) +
                  " values for an input of rank " + Twine(shape.size()));
  SmallVector<int64_t> spread, copies, tiled;
  for (auto [d, r] : llvm::zip(shape, *repeats)) {
    if (r < 0)
      return n.fail("repeats must not be negative, got " + Twine(r));
    spread.append({1, d});
    copies.append({r, d});
    tiled.push_back(r * d);
  }
  Composer c(n);
  return n.result(
      c.done(c.reshape(c.broadcast(c.reshape(*x, spread), copies), tiled)));
}

/// DepthToSpace and SpaceToDepth: a reshape, a transpose and a reshape.
template <bool ToSpace> LogicalResult depthSpace(NodeContext &n) {
  FailureOr<Value> x = n.required(0);
  FailureOr<int64_t> block = n.check(n.attrs.getInt("blocksize"));
  FailureOr<std::string> mode = n.check(n.attrs.getString("mode", "DCR"));
  if (failed(x) || failed(block) || failed(mode))
    return failure();
  auto xt = n.inputType(0);
  if (xt.getRank() != 4)
    return n.fail("expects a 4-D input, got rank " + Twine(xt.getRank()));
  int64_t b = *block, N = xt.getDimSize(0), C = xt.getDimSize(1),
          H = xt.getDimSize(2), W = xt.getDimSize(3);
  if (b <= 0)
    return n.fail("blocksize must be positive");
  Composer c(n);
  if (ToSpace) {
    if (*mode != "DCR" && *mode != "CRD")
      return n.fail("mode must be DCR or CRD, got '" + *mode + "'");
    if (C % (b * b))
      return n.fail("channels " + Twine(C) + " are not divisible by blocksize^2 = " +
                    Twine(b * b));
    int64_t c2 = C / (b * b);
    Value v = *mode == "DCR" ? c.transpose(c.reshape(*x, {N, b, b, c2, H, W}),
                                           {0, 3, 4, 1, 5, 2})
                             : c.transpose(c.reshape(*x, {N, c2, b, b, H, W}),
                                           {0, 1, 4, 2, 5, 3});
    return n.result(c.done(c.reshape(v, {N, c2, H * b, W * b})));
  }
  if (H % b || W % b)
    return n.fail("spatial dims " + Twine(H) + "x" + Twine(W) +
                  " are not divisible by blocksize " + Twine(b));
  Value v = c.transpose(c.reshape(*x, {N, C, H / b, b, W / b, b}),
                        {0, 3, 5, 1, 2, 4});
  return n.result(c.done(c.reshape(v, {N, C * b * b, H / b, W / b})));
}

} // namespace

void onnx_import::registerTensorHandlers(HandlerTable &t) {
  t.on("Constant", 13, constant);
  t.on("Shape", 13, shape);
  t.on("Shape", 15, shape);
  t.on("Size", 13, size);
  t.on("Reshape", 13, reshape);
  t.on("Reshape", 14, reshape);
  t.on("Flatten", 13, flatten);
  t.on("Squeeze", 13, squeeze);
  t.on("Unsqueeze", 13, unsqueeze);
  t.on("Transpose", 13, transpose);
  t.on("Concat", 13, concat);
  t.on("Split", 13, split);
  t.on("Split", 18, split);
  t.on("Slice", 13, slice);
  t.on("Gather", 13, gather);
  t.on("Expand", 13, expand);
  t.on("Trilu", 14, trilu);
  t.on("Pad", 13, pad);
  t.on("Pad", 18, pad);
  t.on("ConstantOfShape", 9, constantOfShape);
  t.on("Range", 11, range);
  t.on("Tile", 13, tile);
  t.on("DepthToSpace", 13, depthSpace<true>);
  t.on("SpaceToDepth", 13, depthSpace<false>);
}
