//===- NNHandlers.cpp - ONNX convolution, pooling, normalization ----------===//
//
/// \file
/// Handlers for the neural-network ONNX ops. Window ops share the padding
/// resolution (`auto_pad`, explicit `pads`, `ceil_mode`).
//
//===----------------------------------------------------------------------===//

#include "ImportContext.h"

using namespace mlir;
using namespace mlir::trainopt;
using namespace mlir::trainopt::onnx_import;

namespace {

/// The window attributes common to Conv and the pools, resolved to explicit
/// low/high padding.
struct Window {
  SmallVector<int64_t> kernel, strides, dilations, padding;
};

FailureOr<Window> resolveWindow(NodeContext &n, ArrayRef<int64_t> inputShape,
                                ArrayRef<int64_t> kernel, bool ceilMode) {
  int64_t rank = inputShape.size() - 2;
  SmallVector<int64_t> ones(rank, 1), zeros(2 * rank, 0);
  Window w;
  w.kernel.assign(kernel.begin(), kernel.end());
  FailureOr<SmallVector<int64_t>> strides =
      n.check(n.attrs.getInts("strides", ones));
  FailureOr<SmallVector<int64_t>> dilations =
      n.check(n.attrs.getInts("dilations", ones));
  FailureOr<SmallVector<int64_t>> pads =
      n.check(n.attrs.getInts("pads", zeros));
  FailureOr<std::string> autoPad =
      n.check(n.attrs.getString("auto_pad", std::string("NOTSET")));
  if (failed(strides) || failed(dilations) || failed(pads) || failed(autoPad))
    return failure();
  if (static_cast<int64_t>(strides->size()) != rank ||
      static_cast<int64_t>(dilations->size()) != rank ||
      static_cast<int64_t>(pads->size()) != 2 * rank)
    return n.fail("strides, dilations and pads must have " + Twine(rank) +
                  ", " + Twine(rank) + " and " + Twine(2 * rank) +
                  " values for a " + Twine(rank) + "-d window");
  w.strides = *strides;
  w.dilations = *dilations;
  w.padding = *pads;
  if (llvm::any_of(w.strides, [](int64_t s) { return s < 1; }) ||
      llvm::any_of(w.dilations, [](int64_t d) { return d < 1; }))
    return n.fail("strides and dilations must be >= 1");
  if (*autoPad == "VALID") {
    w.padding.assign(2 * rank, 0);
  } else if (*autoPad == "SAME_UPPER" || *autoPad == "SAME_LOWER") {
    for (int64_t i = 0; i < rank; ++i) {
      int64_t in = inputShape[i + 2];
      int64_t out = (in + w.strides[i] - 1) / w.strides[i];
      int64_t span = (w.kernel[i] - 1) * w.dilations[i] + 1;
      int64_t total =
          std::max<int64_t>((out - 1) * w.strides[i] + span - in, 0);
      int64_t small = total / 2;
      w.padding[i] = *autoPad == "SAME_UPPER" ? small : total - small;
      w.padding[i + rank] = total - w.padding[i];
    }
  } else if (*autoPad != "NOTSET") {
    return n.fail("auto_pad '" + *autoPad +
                  "' is not one of NOTSET, VALID, "
                  "SAME_UPPER, SAME_LOWER");
  }
  if (ceilMode) {
    // Extend the high padding so that floor division gives the ceil-mode
    // size; the last window must still start inside the input or low pad.
    for (int64_t i = 0; i < rank; ++i) {
      int64_t in = inputShape[i + 2];
      int64_t span = (w.kernel[i] - 1) * w.dilations[i] + 1;
      int64_t padded = in + w.padding[i] + w.padding[i + rank];
      if (padded < span)
        continue;
      int64_t out = (padded - span + w.strides[i] - 1) / w.strides[i] + 1;
      if ((out - 1) * w.strides[i] >= in + w.padding[i])
        --out;
      int64_t needed = (out - 1) * w.strides[i] + span - padded;
      if (needed > 0)
        w.padding[i + rank] += needed;
    }
  }
  return w;
}

LogicalResult conv(NodeContext &n) {
  FailureOr<Value> x = n.required(0), f = n.required(1);
  FailureOr<int64_t> groups = n.check(n.attrs.getInt("group", 1));
  if (failed(x) || failed(f) || failed(groups))
    return failure();
  auto xt = n.inputType(0), ft = n.inputType(1);
  if (xt.getRank() < 3 || ft.getRank() != xt.getRank())
    return n.fail("expects input and weight of equal rank >= 3");
  ArrayRef<int64_t> kernel = ft.getShape().drop_front(2);
  FailureOr<SmallVector<int64_t>> declared =
      n.check(n.attrs.getInts("kernel_shape", SmallVector<int64_t>(kernel)));
  if (failed(declared))
    return failure();
  if (ArrayRef<int64_t>(*declared) != kernel)
    return n.fail("kernel_shape does not match the weight's spatial dims");
  FailureOr<Window> w = resolveWindow(n, xt.getShape(), kernel, false);
  if (failed(w))
    return failure();
  SmallVector<Value> operands{*x, *f};
  if (n.input(2))
    operands.push_back(n.input(2));
  return n.result(n.create<ConvOp>(
      operands,
      {n.named("strides", n.builder.getDenseI64ArrayAttr(w->strides)),
       n.named("padding", n.builder.getDenseI64ArrayAttr(w->padding)),
       n.named("dilations", n.builder.getDenseI64ArrayAttr(w->dilations)),
       n.named("groups", n.builder.getI64IntegerAttr(*groups))}));
}

template <bool IsMax> LogicalResult pool(NodeContext &n) {
  FailureOr<Value> x = n.required(0);
  FailureOr<SmallVector<int64_t>> kernel =
      n.check(n.attrs.getInts("kernel_shape"));
  FailureOr<int64_t> ceilMode = n.check(n.attrs.getInt("ceil_mode", 0));
  if (failed(x) || failed(kernel) || failed(ceilMode))
    return failure();
  auto xt = n.inputType(0);
  if (xt.getRank() < 3 ||
      static_cast<int64_t>(kernel->size()) != xt.getRank() - 2)
    return n.fail("kernel_shape needs one value per spatial dim of the input");
  if (IsMax && n.outputRequested(1))
    return n.fail("the Indices output of MaxPool is not supported");
  if (IsMax) {
    FailureOr<int64_t> order = n.check(n.attrs.getInt("storage_order", 0));
    if (failed(order))
      return failure();
    if (*order != 0)
      return n.fail("storage_order = 1 is not supported");
  }
  FailureOr<Window> w = resolveWindow(n, xt.getShape(), *kernel, *ceilMode);
  if (failed(w))
    return failure();
  SmallVector<NamedAttribute> attrs{
      n.named("kernel_shape", n.builder.getDenseI64ArrayAttr(w->kernel)),
      n.named("strides", n.builder.getDenseI64ArrayAttr(w->strides)),
      n.named("padding", n.builder.getDenseI64ArrayAttr(w->padding)),
      n.named("dilations", n.builder.getDenseI64ArrayAttr(w->dilations))};
  FailureOr<Value> y;
  if constexpr (IsMax) {
    y = n.create<MaxPoolOp>({*x}, attrs);
  } else {
    FailureOr<int64_t> includePad =
        n.check(n.attrs.getInt("count_include_pad", 0));
    if (failed(includePad))
      return failure();
    if (*ceilMode && *includePad)
      return n.fail("AveragePool with ceil_mode and count_include_pad is not "
                    "supported");
    attrs.push_back(
        n.named("count_include_pad", n.builder.getBoolAttr(*includePad)));
    y = n.create<AvgPoolOp>({*x}, attrs);
  }
  if (failed(y))
    return failure();
  n.setOutput(0, *y);
  return success();
}

template <typename OpTy> LogicalResult globalPool(NodeContext &n) {
  FailureOr<Value> x = n.required(0);
  if (failed(x))
    return failure();
  int64_t rank = n.inputType(0).getRank();
  if (rank < 3)
    return n.fail("expects an input of rank >= 3 (N, C, spatial)");
  return n.result(n.create<OpTy>(
      {*x}, {n.named("axes", n.builder.getDenseI64ArrayAttr(
                                 llvm::to_vector(llvm::seq<int64_t>(2, rank)))),
             n.named("keepdims", n.builder.getBoolAttr(true))}));
}

LogicalResult batchNorm(NodeContext &n) {
  SmallVector<Value> operands;
  for (unsigned i = 0; i < 5; ++i) {
    FailureOr<Value> v = n.required(i);
    if (failed(v))
      return failure();
    operands.push_back(*v);
  }
  FailureOr<double> eps = n.check(n.attrs.getFloat("epsilon", 1e-5));
  FailureOr<double> momentum = n.check(n.attrs.getFloat("momentum", 0.9));
  FailureOr<int64_t> training = n.check(n.attrs.getInt("training_mode", 0));
  if (failed(eps) || failed(momentum) || failed(training))
    return failure();
  // Running statistics are model state, never trained by gradients.
  n.markNonTrainable(operands[3]);
  n.markNonTrainable(operands[4]);
  if (!*training) {
    if (n.outputRequested(1) || n.outputRequested(2))
      return n.fail("running-statistics outputs need training_mode = 1");
    FailureOr<Value> y = n.create<BatchNormInferenceOp>(
        operands, {n.named("epsilon", n.builder.getF64FloatAttr(*eps))},
        operands[0].getType());
    if (failed(y))
      return failure();
    n.setOutput(0, *y);
    return success();
  }
  // The spec folds the biased batch variance into running_var; PyTorch,
  // whose exporter writes the same node, folds the unbiased one, and a
  // model exported from PyTorch trains as it does there.
  bool unbiased = n.producer() == "pytorch";
  FailureOr<SmallVector<Value>> r = n.createMulti<BatchNormTrainOp>(
      operands,
      {n.named("epsilon", n.builder.getF64FloatAttr(*eps)),
       n.named("momentum", n.builder.getF64FloatAttr(*momentum)),
       n.named("unbiased_running_var", n.builder.getBoolAttr(unbiased))},
      {operands[0].getType(), operands[3].getType(), operands[4].getType()});
  if (failed(r))
    return failure();
  for (unsigned i = 0; i < 3; ++i)
    n.setOutput(i, (*r)[i]);
  return success();
}

/// The mean of `x` over `axes` (kept as size-1 dims), x minus it, and the
/// biased variance: the statistics of LayerNormalization's extra outputs
/// and of MeanVarianceNormalization.
struct Moments {
  Value mean, centered, variance;
};
FailureOr<Moments> moments(NodeContext &n, Value x, ArrayRef<int64_t> axes) {
  SmallVector<NamedAttribute> reduceAttrs{
      n.named("axes", n.builder.getDenseI64ArrayAttr(axes)),
      n.named("keepdims", n.builder.getBoolAttr(true))};
  FailureOr<Value> mean = n.create<ReduceMeanOp>({x}, reduceAttrs);
  if (failed(mean))
    return failure();
  FailureOr<Value> centered = n.create<SubOp>({x, *mean});
  if (failed(centered))
    return failure();
  FailureOr<Value> sq = n.create<MulOp>({*centered, *centered});
  if (failed(sq))
    return failure();
  FailureOr<Value> var = n.create<ReduceMeanOp>({*sq}, reduceAttrs);
  if (failed(var))
    return failure();
  return Moments{*mean, *centered, *var};
}

LogicalResult layerNorm(NodeContext &n) {
  FailureOr<Value> x = n.required(0), scale = n.required(1);
  FailureOr<int64_t> axis = n.check(n.attrs.getInt("axis", -1));
  FailureOr<double> eps = n.check(n.attrs.getFloat("epsilon", 1e-5));
  if (failed(x) || failed(scale) || failed(axis) || failed(eps))
    return failure();
  FailureOr<int64_t> a = normalizeAxis(n, *axis, n.inputType(0).getRank());
  if (failed(a))
    return failure();
  if (n.outputRequested(1) || n.outputRequested(2)) {
    // The statistics outputs, from the same definition: biased variance
    // over dims [axis, rank), kept as size-1 dims.
    SmallVector<int64_t> axes =
        llvm::to_vector(llvm::seq<int64_t>(*a, n.inputType(0).getRank()));
    FailureOr<Moments> m = moments(n, *x, axes);
    if (failed(m))
      return failure();
    Value mean = m->mean;
    Type elt = n.inputType(0).getElementType();
    FailureOr<Value> shifted =
        n.create<AddOp>({m->variance, n.scalar(elt, *eps)});
    if (failed(shifted))
      return failure();
    FailureOr<Value> invStd = n.create<RsqrtOp>({*shifted});
    if (failed(invStd))
      return failure();
    n.setOutput(1, mean);
    n.setOutput(2, *invStd);
  }
  // ONNX lets scale and bias broadcast to the normalized shape.
  auto xt = n.inputType(0);
  auto normalized = xt.clone(xt.getShape().drop_front(*a));
  SmallVector<Value> operands{*x};
  for (unsigned i = 1; i < 3; ++i) {
    Value v = n.input(i);
    if (!v)
      continue;
    if (v.getType() != normalized) {
      FailureOr<Value> b = n.create<BroadcastToOp>({v}, {}, normalized);
      if (failed(b))
        return failure();
      v = *b;
    }
    operands.push_back(v);
  }
  return n.result(n.create<LayerNormOp>(
      operands,
      {n.named("axis", n.builder.getI64IntegerAttr(*a)),
       n.named("epsilon", n.builder.getF64FloatAttr(*eps))},
      xt));
}

/// InstanceNormalization: `layer_norm` over the spatial dims (axis 2,
/// biased variance, no affine), then the per-channel scale and bias.
/// PyTorch's GroupNorm exports through it (reshaped to [N, groups, -1]).
LogicalResult instanceNorm(NodeContext &n) {
  FailureOr<Value> x = n.required(0), scale = n.required(1),
                   bias = n.required(2);
  FailureOr<double> eps = n.check(n.attrs.getFloat("epsilon", 1e-5));
  if (failed(x) || failed(scale) || failed(bias) || failed(eps))
    return failure();
  auto xt = n.inputType(0);
  if (xt.getRank() < 3)
    return n.fail("expects an input of rank >= 3 ([N, C, D...]), got rank " +
                  Twine(xt.getRank()));
  // layer_norm takes a scale of the normalized shape: ones.
  auto spatial = xt.clone(xt.getShape().drop_front(2));
  Value ones = n.constant(DenseElementsAttr::get(
      spatial, n.builder.getFloatAttr(xt.getElementType(), 1.0)));
  FailureOr<Value> normalized = n.create<LayerNormOp>(
      {*x, ones},
      {n.named("axis", n.builder.getI64IntegerAttr(2)),
       n.named("epsilon", n.builder.getF64FloatAttr(*eps))},
      xt);
  if (failed(normalized))
    return failure();
  // [C] -> [C, 1, ..., 1], broadcasting against [N, C, D...].
  SmallVector<int64_t> perChannel(xt.getRank() - 1, 1);
  perChannel[0] = xt.getDimSize(1);
  auto channelType = xt.clone(perChannel);
  FailureOr<Value> s = n.create<ReshapeOp>({*scale}, {}, channelType);
  FailureOr<Value> b = n.create<ReshapeOp>({*bias}, {}, channelType);
  if (failed(s) || failed(b))
    return failure();
  FailureOr<Value> scaled = n.create<MulOp>({*normalized, *s});
  if (failed(scaled))
    return failure();
  return n.result(n.create<AddOp>({*scaled, *b}));
}

/// MeanVarianceNormalization: (x - mean) / (std + 1e-9) over `axes`
/// (default [0, 2, 3]), with the biased variance, as the ONNX function
/// body (which computes it as E[x^2] - E[x]^2; the centered form here is
/// the same value with less cancellation).
LogicalResult meanVarianceNorm(NodeContext &n) {
  FailureOr<Value> x = n.required(0);
  FailureOr<SmallVector<int64_t>> axesAttr =
      n.check(n.attrs.getInts("axes", SmallVector<int64_t>{0, 2, 3}));
  if (failed(x) || failed(axesAttr))
    return failure();
  int64_t rank = n.inputType(0).getRank();
  SmallVector<int64_t> axes;
  for (int64_t a : *axesAttr) {
    FailureOr<int64_t> na = normalizeAxis(n, a, rank);
    if (failed(na))
      return failure();
    axes.push_back(*na);
  }
  llvm::sort(axes);
  Type elt = n.inputType(0).getElementType();
  FailureOr<Moments> m = moments(n, *x, axes);
  if (failed(m))
    return failure();
  FailureOr<Value> std = n.create<SqrtOp>({m->variance});
  if (failed(std))
    return failure();
  FailureOr<Value> denom = n.create<AddOp>({*std, n.scalar(elt, 1e-9)});
  if (failed(denom))
    return failure();
  return n.result(n.create<DivOp>({m->centered, *denom}));
}

/// LpNormalization: x / ||x||_p along `axis`, p = 1 or 2 (no epsilon, as
/// the ONNX definition).
LogicalResult lpNorm(NodeContext &n) {
  FailureOr<Value> x = n.required(0);
  FailureOr<int64_t> axis = n.check(n.attrs.getInt("axis", -1));
  FailureOr<int64_t> p = n.check(n.attrs.getInt("p", 2));
  if (failed(x) || failed(axis) || failed(p))
    return failure();
  if (*p != 1 && *p != 2)
    return n.fail("p must be 1 or 2, got " + Twine(*p));
  FailureOr<int64_t> a = normalizeAxis(n, *axis, n.inputType(0).getRank());
  if (failed(a))
    return failure();
  FailureOr<Value> f =
      *p == 1 ? n.create<AbsOp>({*x}) : n.create<MulOp>({*x, *x});
  if (failed(f))
    return failure();
  FailureOr<Value> sum = n.create<ReduceSumOp>(
      {*f}, {n.named("axes", n.builder.getDenseI64ArrayAttr({*a})),
             n.named("keepdims", n.builder.getBoolAttr(true))});
  if (failed(sum))
    return failure();
  FailureOr<Value> norm = *p == 1 ? sum : n.create<SqrtOp>({*sum});
  if (failed(norm))
    return failure();
  return n.result(n.create<DivOp>({*x, *norm}));
}

template <typename OpTy> LogicalResult softmax(NodeContext &n) {
  FailureOr<Value> x = n.required(0);
  FailureOr<int64_t> axis = n.check(n.attrs.getInt("axis", -1));
  if (failed(x) || failed(axis))
    return failure();
  FailureOr<int64_t> a = normalizeAxis(n, *axis, n.inputType(0).getRank());
  if (failed(a))
    return failure();
  return n.result(
      n.create<OpTy>({*x}, {n.named("axis", n.builder.getI64IntegerAttr(*a))},
                     n.inputType(0)));
}

/// Dropout: identity unless training_mode is a constant true; then an
/// explicit-seed `trainopt.dropout` (the training passes advance the seed).
LogicalResult dropout(NodeContext &n) {
  FailureOr<Value> x = n.required(0);
  // Without a seed attribute every Dropout node still gets its own stream.
  FailureOr<int64_t> seed = n.check(n.attrs.getInt("seed", n.index));
  if (failed(x) || failed(seed))
    return failure();
  double ratio = 0.5;
  if (n.input(1)) {
    FailureOr<DenseElementsAttr> r = n.constantInput(1, "ratio");
    if (failed(r))
      return failure();
    if (!isa<FloatType>(r->getElementType()) || r->getNumElements() != 1)
      return n.fail("ratio must be a float scalar");
    ratio = scalarAsDouble(*r);
  }
  bool training = false;
  if (n.input(2)) {
    FailureOr<DenseElementsAttr> t = n.constantInput(2, "training_mode");
    if (failed(t))
      return failure();
    if (t->getNumElements() != 1 || !t->getElementType().isInteger(1))
      return n.fail("training_mode must be a bool scalar");
    training = *t->getValues<bool>().begin();
  }
  auto xt = n.inputType(0);
  if (!training || ratio == 0.0) {
    n.setOutput(0, *x);
    if (n.outputRequested(1))
      n.setOutput(1, n.constant(DenseElementsAttr::get(
                         xt.clone(n.builder.getI1Type()), true)));
    return success();
  }
  Value seedValue = n.constant(
      DenseElementsAttr::get(RankedTensorType::get({}, n.builder.getI64Type()),
                             n.builder.getI64IntegerAttr(*seed)));
  FailureOr<SmallVector<Value>> r = n.createMulti<DropoutOp>(
      {*x, seedValue}, {n.named("ratio", n.builder.getF64FloatAttr(ratio))},
      {xt, xt.clone(n.builder.getI1Type())});
  if (failed(r))
    return failure();
  n.setOutput(0, (*r)[0]);
  n.setOutput(1, (*r)[1]);
  return success();
}

} // namespace

void onnx_import::registerNNHandlers(HandlerTable &t) {
  t.on("Conv", 11, conv);
  t.on("MaxPool", 12, pool<true>);
  t.on("AveragePool", 11, pool<false>);
  t.on("AveragePool", 19, pool<false>);
  t.on("GlobalAveragePool", 1, globalPool<ReduceMeanOp>);
  t.on("GlobalMaxPool", 1, globalPool<ReduceMaxOp>);
  t.on("BatchNormalization", 9, batchNorm);
  t.on("BatchNormalization", 14, batchNorm);
  t.on("LayerNormalization", 17, layerNorm);
  t.on("InstanceNormalization", 6, instanceNorm);
  t.on("LpNormalization", 1, lpNorm);
  t.on("MeanVarianceNormalization", 13, meanVarianceNorm);
  t.on("Softmax", 13, softmax<SoftmaxOp>);
  t.on("LogSoftmax", 13, softmax<LogSoftmaxOp>);
  t.on("Dropout", 13, dropout);
}
