//===- NNHandlers.cpp - ONNX convolution, pooling, normalization ----------===//
//
/// \file
/// Handlers for the neural-network ONNX ops. Window ops share the padding
/// resolution (`auto_pad`, explicit `pads`, `ceil_mode`).
//
//===----------------------------------------------------------------------===//

#include "ImportContext.h"

#include <algorithm>
#include <cmath>

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

/// ConvTranspose as `trainopt.conv_grad_input`: a transposed convolution is
/// the input gradient of the convolution with the same attributes, and
/// ONNX's weight layout [C_in, C_out / group, k...] is that convolution's
/// filter. Output size s (in - 1) + output_padding + (k - 1) d + 1 - pads;
/// `output_shape` (and auto_pad SAME_*) chooses the pads instead.
LogicalResult convTranspose(NodeContext &n) {
  FailureOr<Value> x = n.required(0), f = n.required(1);
  FailureOr<int64_t> groups = n.check(n.attrs.getInt("group", 1));
  if (failed(x) || failed(f) || failed(groups))
    return failure();
  auto xt = n.inputType(0), ft = n.inputType(1);
  int64_t rank = xt.getRank() - 2;
  if (rank < 1 || ft.getRank() != xt.getRank())
    return n.fail("expects input and weight of equal rank >= 3");
  if (*groups < 1 || xt.getDimSize(1) != ft.getDimSize(0) ||
      ft.getDimSize(0) % *groups)
    return n.fail("weight [C_in, C_out/group, k...] must have the input's " +
                  Twine(xt.getDimSize(1)) + " channels, divisible by group " +
                  Twine(*groups));
  SmallVector<int64_t> ones(rank, 1), zeros(rank, 0), pads0(2 * rank, 0);
  ArrayRef<int64_t> kernel = ft.getShape().drop_front(2);
  auto strides = n.check(n.attrs.getInts("strides", ones));
  auto dilations = n.check(n.attrs.getInts("dilations", ones));
  auto pads = n.check(n.attrs.getInts("pads", pads0));
  auto outPad = n.check(n.attrs.getInts("output_padding", zeros));
  auto outShape = n.check(n.attrs.getInts("output_shape", SmallVector<int64_t>()));
  auto declared = n.check(n.attrs.getInts("kernel_shape", SmallVector<int64_t>(kernel)));
  auto autoPad = n.check(n.attrs.getString("auto_pad", std::string("NOTSET")));
  if (failed(strides) || failed(dilations) || failed(pads) || failed(outPad) ||
      failed(outShape) || failed(declared) || failed(autoPad))
    return failure();
  if (ArrayRef<int64_t>(*declared) != kernel)
    return n.fail("kernel_shape does not match the weight's spatial dims");
  if (strides->size() != size_t(rank) || dilations->size() != size_t(rank) ||
      pads->size() != size_t(2 * rank) || outPad->size() != size_t(rank) ||
      (!outShape->empty() && outShape->size() != size_t(rank)))
    return n.fail("strides, dilations, output_padding and output_shape need " +
                  Twine(rank) + " values, pads " + Twine(2 * rank));
  bool same = *autoPad == "SAME_UPPER" || *autoPad == "SAME_LOWER";
  if (!same && *autoPad != "NOTSET" && *autoPad != "VALID")
    return n.fail("auto_pad '" + *autoPad +
                  "' is not one of NOTSET, VALID, SAME_UPPER, SAME_LOWER");
  if (*autoPad == "VALID")
    pads->assign(2 * rank, 0);
  SmallVector<int64_t> resultShape{xt.getDimSize(0),
                                   ft.getDimSize(1) * *groups};
  for (int64_t i = 0; i < rank; ++i) {
    int64_t s = (*strides)[i], in = xt.getDimSize(i + 2);
    if (s < 1 || (*dilations)[i] < 1)
      return n.fail("strides and dilations must be >= 1");
    if ((*outPad)[i] < 0 || (*outPad)[i] >= std::max(s, (*dilations)[i]))
      return n.fail("output_padding must be below the stride or dilation");
    int64_t full = s * (in - 1) + (*outPad)[i] +
                   (kernel[i] - 1) * (*dilations)[i] + 1;
    if (!outShape->empty() || same) {
      int64_t target = outShape->empty() ? in * s : (*outShape)[i];
      int64_t total = full - target;
      if (total < 0) {
        // A target beyond the full size appends zeros, as output_padding
        // does; the convolution it transposes must still fit.
        if ((*outPad)[i] - total >= s)
          return n.fail("output_shape " + Twine(target) + " exceeds the "
                        "full transposed size " + Twine(full) +
                        " by a stride or more");
        full = target;
        total = 0;
      }
      // As the ONNX reference: SAME_UPPER puts the extra pad at the end.
      bool upper = *autoPad != "SAME_LOWER";
      (*pads)[i] = upper ? total / 2 : total - total / 2;
      (*pads)[i + rank] = total - (*pads)[i];
    }
    int64_t size = full - (*pads)[i] - (*pads)[i + rank];
    if (size < 1)
      return n.fail("the output would be empty along spatial dim " + Twine(i));
    resultShape.push_back(size);
  }
  Composer c(n);
  Value y = c.op<ConvGradInputOp>(
      {*f, *x},
      {n.named("strides", n.builder.getDenseI64ArrayAttr(*strides)),
       n.named("padding", n.builder.getDenseI64ArrayAttr(*pads)),
       n.named("dilations", n.builder.getDenseI64ArrayAttr(*dilations)),
       n.named("groups", n.builder.getI64IntegerAttr(*groups))},
      xt.clone(resultShape));
  if (Value bias = n.input(2)) {
    SmallVector<int64_t> biasShape(xt.getRank(), 1);
    biasShape[1] = resultShape[1];
    y = c.add(y, c.reshape(bias, biasShape));
  }
  return n.result(c.done(y));
}

/// Resize with mode nearest, linear (bilinear, trilinear) or cubic,
/// separably: per resized axis, each output element is a weighted sum of
/// taps (1 for nearest, 2 for linear, 4 for cubic) at constant source
/// indices, i.e. a gather per tap times constant weights, the last axis
/// first, as PyTorch's upsample kernels order their arithmetic. Coordinate
/// modes: half_pixel, half_pixel_symmetric, pytorch_half_pixel,
/// align_corners, asymmetric. Taps outside the input read its edge (the
/// ONNX reference's edge padding); the gradient is the gathers'.
class ResizeLowering {
public:
  explicit ResizeLowering(NodeContext &n) : n(n), c(n) {}

  LogicalResult run() {
    FailureOr<Value> x = n.required(0);
    auto mode = n.check(n.attrs.getString("mode", std::string("nearest")));
    auto coord = n.check(n.attrs.getString("coordinate_transformation_mode",
                                           std::string("half_pixel")));
    auto nearest = n.check(
        n.attrs.getString("nearest_mode", std::string("round_prefer_floor")));
    auto antialias = n.check(n.attrs.getInt("antialias", 0));
    auto policy = n.check(
        n.attrs.getString("keep_aspect_ratio_policy", std::string("stretch")));
    auto cubicA = n.check(n.attrs.getFloat("cubic_coeff_a", -0.75));
    auto exclude = n.check(n.attrs.getInt("exclude_outside", 0));
    if (failed(x) || failed(mode) || failed(coord) || failed(nearest) ||
        failed(antialias) || failed(policy) || failed(cubicA) ||
        failed(exclude))
      return failure();
    if (*mode != "nearest" && *mode != "linear" && *mode != "cubic")
      return n.fail("mode '" + *mode + "' is not one of nearest, linear, cubic");
    if (*coord != "half_pixel" && *coord != "pytorch_half_pixel" &&
        *coord != "align_corners" && *coord != "asymmetric" &&
        *coord != "half_pixel_symmetric")
      return n.fail("coordinate_transformation_mode '" + *coord +
                    "' is not supported (half_pixel, half_pixel_symmetric, "
                    "pytorch_half_pixel, align_corners and asymmetric are)");
    if (*nearest != "round_prefer_floor" && *nearest != "round_prefer_ceil" &&
        *nearest != "floor" && *nearest != "ceil")
      return n.fail("nearest_mode '" + *nearest + "' is not one of "
                    "round_prefer_floor, round_prefer_ceil, floor, ceil");
    if (*policy != "stretch" && *policy != "not_larger" &&
        *policy != "not_smaller")
      return n.fail("keep_aspect_ratio_policy '" + *policy +
                    "' is not one of stretch, not_larger, not_smaller");
    spec = {*mode, *coord, *nearest, *cubicA, *exclude != 0};
    auto xt = n.inputType(0);
    int64_t rank = xt.getRank();
    SmallVector<int64_t> axes = llvm::to_vector(llvm::seq<int64_t>(0, rank));
    if (n.attrs.has("axes")) {
      auto given = n.check(n.attrs.getInts("axes"));
      if (failed(given))
        return failure();
      axes.clear();
      for (int64_t a : *given) {
        FailureOr<int64_t> na = normalizeAxis(n, a, rank);
        if (failed(na))
          return failure();
        axes.push_back(*na);
      }
    }
    SmallVector<double> scales(rank, 1.0);
    SmallVector<int64_t> sizes(xt.getShape());
    if (failed(readScalesOrSizes(axes, *policy, scales, sizes)))
      return failure();
    if (*antialias &&
        llvm::any_of(scales, [](double s) { return s < 1.0; }))
      return n.fail("antialias = 1 when downsampling is not supported");
    Value y = *x;
    for (int64_t d = rank - 1; d >= 0; --d) {
      if (sizes[d] == xt.getDimSize(d) && scales[d] == 1.0)
        continue;
      if (sizes[d] < 1)
        return n.fail("output size along axis " + Twine(d) + " is " +
                      Twine(sizes[d]));
      y = resizeAxis(y, d, xt.getDimSize(d), sizes[d], scales[d]);
    }
    return n.result(c.done(y));
  }

private:
  struct Spec {
    std::string mode, coord, nearest;
    double cubicA;
    bool excludeOutside;
  };

  LogicalResult readScalesOrSizes(ArrayRef<int64_t> axes, StringRef policy,
                                  SmallVectorImpl<double> &scales,
                                  SmallVectorImpl<int64_t> &sizes) {
    auto xt = n.inputType(0);
    bool haveScales = false;
    if (n.input(2)) {
      FailureOr<DenseElementsAttr> s = n.constantInput(2, "scales");
      if (failed(s))
        return failure();
      if (s->getNumElements() != 0) {
        if (s->getNumElements() != static_cast<int64_t>(axes.size()))
          return n.fail("scales has " + Twine(s->getNumElements()) +
                        " values for " + Twine(axes.size()) + " axes");
        for (auto [a, v] : llvm::zip(axes, s->getValues<APFloat>())) {
          scales[a] = decimalDouble(v.convertToFloat());
          if (!(scales[a] > 0))
            return n.fail("scales must be positive");
          sizes[a] = static_cast<int64_t>(
              std::floor(xt.getDimSize(a) * scales[a]));
        }
        haveScales = true;
      }
    }
    if (n.input(3)) {
      if (haveScales)
        return n.fail("has both scales and sizes; give only one");
      FailureOr<SmallVector<int64_t>> s = n.constantInts(3, "sizes");
      if (failed(s))
        return failure();
      if (s->size() != axes.size())
        return n.fail("sizes has " + Twine(s->size()) + " values for " +
                      Twine(axes.size()) + " axes");
      for (auto [a, v] : llvm::zip(axes, *s)) {
        sizes[a] = v;
        scales[a] = static_cast<double>(v) / xt.getDimSize(a);
      }
      if (policy != "stretch") {
        // One scale for all axes: the largest that fits (not_larger) or the
        // smallest that covers (not_smaller); sizes rounded from it.
        double common = scales[axes.front()];
        for (int64_t a : axes)
          common = policy == "not_larger" ? std::min(common, scales[a])
                                          : std::max(common, scales[a]);
        for (int64_t a : axes) {
          scales[a] = common;
          sizes[a] = static_cast<int64_t>(
              std::nearbyint(common * xt.getDimSize(a)));
        }
      }
      return success();
    }
    if (!haveScales)
      return n.fail("needs scales or sizes");
    return success();
  }

  /// The source coordinate of output position `o` along an axis of `in`
  /// elements resized by `scale` to `out` (ONNX uses the unrounded in *
  /// scale where the formula needs the output length).
  double source(int64_t o, int64_t in, int64_t out, double scale) const {
    double length = in * scale;
    if (spec.coord == "align_corners")
      return length == 1 ? 0.0 : o * static_cast<double>(in - 1) / (length - 1);
    if (spec.coord == "asymmetric")
      return o / scale;
    if (spec.coord == "pytorch_half_pixel" && out == 1)
      return 0.0;
    if (spec.coord == "half_pixel_symmetric") {
      double adjustment = out / length;
      double offset = in / 2.0 * (1 - adjustment);
      return offset + (o + 0.5) / scale - 0.5;
    }
    return (o + 0.5) / scale - 0.5;
  }

  /// The taps of output position `o`: (source index, weight) pairs.
  SmallVector<std::pair<int64_t, double>, 4> taps(double s, int64_t in) const {
    auto clampIndex = [&](int64_t i) { return std::clamp<int64_t>(i, 0, in - 1); };
    if (spec.mode == "nearest") {
      StringRef m = spec.nearest;
      double r = m == "floor"               ? std::floor(s)
                 : m == "ceil"              ? std::ceil(s)
                 : m == "round_prefer_ceil" ? std::floor(s + 0.5)
                                            : std::ceil(s - 0.5);
      return {{clampIndex(static_cast<int64_t>(r)), 1.0}};
    }
    if (spec.mode == "linear") {
      double clamped = std::clamp(s, 0.0, static_cast<double>(in - 1));
      int64_t i0 = static_cast<int64_t>(std::floor(clamped));
      double w = clamped - i0;
      return {{i0, 1.0 - w}, {clampIndex(i0 + 1), w}};
    }
    // Cubic convolution (Keys) with coefficient A.
    int64_t base = static_cast<int64_t>(std::floor(s));
    double t = s - base, A = spec.cubicA;
    auto far = [&](double d) { return ((A * d - 5 * A) * d + 8 * A) * d - 4 * A; };
    auto near = [&](double d) { return ((A + 2) * d - (A + 3)) * d * d + 1; };
    double w[4] = {far(t + 1), near(t), near(1 - t), far(2 - t)};
    SmallVector<std::pair<int64_t, double>, 4> out;
    double total = 0;
    for (int k = 0; k < 4; ++k) {
      int64_t i = base - 1 + k;
      if (spec.excludeOutside && (i < 0 || i >= in))
        w[k] = 0;
      total += w[k];
      out.push_back({clampIndex(i), w[k]});
    }
    if (spec.excludeOutside && total != 0)
      for (auto &tap : out)
        tap.second /= total;
    return out;
  }

  Value resizeAxis(Value v, int64_t axis, int64_t in, int64_t out,
                   double scale) {
    SmallVector<SmallVector<int64_t>> index;
    SmallVector<SmallVector<double>> weight;
    for (int64_t o = 0; o < out; ++o) {
      auto t = taps(source(o, in, out, scale), in);
      index.resize(t.size());
      weight.resize(t.size());
      for (auto [k, tap] : llvm::enumerate(t)) {
        index[k].push_back(tap.first);
        weight[k].push_back(tap.second);
      }
    }
    Type elt = Composer::elementType(v);
    SmallVector<int64_t> wshape(Composer::type(v).getRank(), 1);
    wshape[axis] = out;
    Value sum;
    for (auto [idx, w] : llvm::zip(index, weight)) {
      Value term = c.gather(v, c.i64s(idx), axis);
      if (index.size() > 1) {
        SmallVector<Attribute> values;
        for (double x : w)
          values.push_back(n.builder.getFloatAttr(elt, x));
        term = c.mul(n.constant(DenseElementsAttr::get(
                         RankedTensorType::get(wshape, elt), values)),
                     term);
      }
      sum = sum ? c.add(sum, term) : term;
    }
    return sum;
  }

  NodeContext &n;
  Composer c;
  Spec spec;
};

LogicalResult resize(NodeContext &n) { return ResizeLowering(n).run(); }

/// The seed of a random node: its index in the graph (so every node draws
/// its own stream), mixed with the `seed` attribute where given. The
/// training step advances it every step, as Dropout's.
FailureOr<Value> randomSeed(NodeContext &n) {
  FailureOr<double> attr = n.check(n.attrs.getFloat("seed", 0.0));
  if (failed(attr))
    return failure();
  // Found by fuzz_onnx: converting a NaN seed to an integer is undefined.
  if (!std::isfinite(*attr))
    return n.fail("seed is " + Twine(std::isnan(*attr) ? "NaN" : "infinite") +
                  "; a seed is a finite number");
  int64_t seed = n.index;
  if (n.attrs.has("seed"))
    seed += static_cast<int64_t>(std::fmod(*attr, 0x1p40)) * 65537;
  return n.constant(
      DenseElementsAttr::get(RankedTensorType::get({}, n.builder.getI64Type()),
                             n.builder.getI64IntegerAttr(seed)));
}

/// The float element type of a random node: its `dtype` attribute, else
/// `fallback`.
FailureOr<Type> randomElementType(NodeContext &n, Type fallback) {
  if (!n.attrs.has("dtype"))
    return fallback;
  FailureOr<int64_t> dtype = n.check(n.attrs.getInt("dtype"));
  if (failed(dtype))
    return failure();
  Type elt = convertElementType(n.getContext(), *dtype);
  if (!elt || !isa<FloatType>(elt))
    return n.fail("dtype " + onnxTypeName(*dtype) +
                  " is not a floating-point type");
  return elt;
}

/// RandomUniform(Like) and RandomNormal(Like): a `trainopt.random` of the
/// shape attribute or of the input's shape.
template <bool Normal, bool Like> LogicalResult randomOp(NodeContext &n) {
  SmallVector<int64_t> shape;
  Type fallback = n.builder.getF32Type();
  if (Like) {
    FailureOr<Value> x = n.required(0);
    if (failed(x))
      return failure();
    shape.assign(n.inputType(0).getShape().begin(),
                 n.inputType(0).getShape().end());
    if (isa<FloatType>(n.inputType(0).getElementType()))
      fallback = n.inputType(0).getElementType();
  } else {
    FailureOr<SmallVector<int64_t>> s = n.check(n.attrs.getInts("shape"));
    if (failed(s))
      return failure();
    if (llvm::any_of(*s, [](int64_t d) { return d < 0; }))
      return n.fail("shape must not have negative dims");
    shape = *s;
  }
  FailureOr<Type> elt = randomElementType(n, fallback);
  FailureOr<double> a = n.check(n.attrs.getFloat(Normal ? "mean" : "low", 0.0));
  FailureOr<double> b = n.check(n.attrs.getFloat(Normal ? "scale" : "high", 1.0));
  FailureOr<Value> seed = randomSeed(n);
  if (failed(elt) || failed(a) || failed(b) || failed(seed))
    return failure();
  return n.result(n.create<RandomOp>(
      {*seed},
      {n.named("distribution",
               DistributionAttr::get(n.getContext(), Normal
                                                         ? Distribution::normal
                                                         : Distribution::uniform)),
       n.named("a", n.builder.getF64FloatAttr(*a)),
       n.named("b", n.builder.getF64FloatAttr(*b))},
      RankedTensorType::get(shape, *elt)));
}

/// Bernoulli(p) = (uniform draw < p), in `dtype` (default p's type).
LogicalResult bernoulli(NodeContext &n) {
  FailureOr<Value> p = n.required(0);
  FailureOr<Value> seed = randomSeed(n);
  if (failed(p) || failed(seed))
    return failure();
  auto pt = n.inputType(0);
  if (!isa<FloatType>(pt.getElementType()))
    return n.fail("probabilities must be floating-point");
  Type outElt = pt.getElementType();
  if (n.attrs.has("dtype")) {
    FailureOr<int64_t> dtype = n.check(n.attrs.getInt("dtype"));
    if (failed(dtype))
      return failure();
    outElt = convertElementType(n.getContext(), *dtype);
    if (!outElt)
      return n.fail("dtype " + onnxTypeName(*dtype) + " is not supported");
  }
  Composer c(n);
  Value u = c.op<RandomOp>(
      {*seed},
      {n.named("distribution",
               DistributionAttr::get(n.getContext(), Distribution::uniform)),
       n.named("a", n.builder.getF64FloatAttr(0.0)),
       n.named("b", n.builder.getF64FloatAttr(1.0))},
      pt);
  return n.result(c.done(c.cast(c.less(u, *p), outElt)));
}

} // namespace

void onnx_import::registerNNHandlers(HandlerTable &t) {
  t.on("Conv", 11, conv);
  t.on("ConvTranspose", 11, convTranspose);
  t.on("Resize", 13, resize);
  t.on("Resize", 18, resize);
  t.on("Resize", 19, resize);
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
  t.on("RandomUniform", 1, randomOp<false, false>);
  t.on("RandomUniformLike", 1, randomOp<false, true>);
  t.on("RandomNormal", 1, randomOp<true, false>);
  t.on("RandomNormalLike", 1, randomOp<true, true>);
  t.on("Bernoulli", 15, bernoulli);
}
