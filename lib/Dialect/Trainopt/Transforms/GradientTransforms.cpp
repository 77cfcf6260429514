//===- GradientTransforms.cpp - the gradient-transform stage --------------===//
//
/// \file
/// Rewrites the gradients of `@train_step` (gradient form) through an
/// ordered list of transforms. Each transform is one entry of
/// `transforms()`: whether the options enable it, and what it does to the
/// gradient set. Later issues add entries (loss-scale unscale and skip
/// before the norm, all-reduce before accumulation) without touching the
/// others.
//
//===----------------------------------------------------------------------===//

#include "trainopt/Dialect/Trainopt/IR/TensorBuilder.h"
#include "trainopt/Dialect/Trainopt/Transforms/Passes.h"
#include "trainopt/Dialect/Trainopt/Transforms/TrainingPipeline.h"
#include "trainopt/Dialect/Trainopt/Transforms/TrainStep.h"

#include "mlir/IR/Builders.h"

#include <limits>

namespace mlir::trainopt {
#define GEN_PASS_DEF_TRAINOPTTRANSFORMGRADIENTS
#include "trainopt/Dialect/Trainopt/Transforms/Passes.h.inc"
} // namespace mlir::trainopt

using namespace mlir;
using namespace mlir::trainopt;

namespace {

/// What a transform reads and edits.
struct GradientSet {
  TrainStepFunction &step;
  TensorBuilder &m;
  /// The gradient results, their current values and their parameters'
  /// symbols, in result order.
  SmallVector<unsigned> results;
  SmallVector<Value> grads;
  SmallVector<FlatSymbolRefAttr> params;
  /// The loss's element type (metrics are in it).
  Type metricType;
  /// The update gate so far (0-d i1), or null: always update.
  Value gate;

  void andGate(Value g) { gate = gate ? m.logicalAnd(gate, g) : g; }
};

/// The loss scaling that trainopt-assign-precision configured
/// (`trainopt.loss_scale` on @train_step), and its state argument.
struct LossScaling {
  BlockArgument scale;
  bool dynamic = false;
  int64_t growthInterval = 0;
  double growthFactor = 0, backoffFactor = 0;
};

struct Options {
  int64_t gradAccum;
  double clipGradNorm, clipGradValue;
  std::optional<LossScaling> lossScaling;
};

/// `grad-accum`: gradients summed into a slot, averaged and applied every
/// K-th call.
void accumulate(GradientSet &s, const Options &o) {
  TensorBuilder &m = s.m;
  MLIRContext *ctx = s.step.func.getContext();
  Builder b(ctx);
  Value step = s.step.step();
  Value k = m.scalar(step, static_cast<double>(o.gradAccum));
  Value next = m.add(step, 1.0);
  // (step + 1) mod K == 0
  Value apply = m.equal(m.sub(next, m.mul(m.div(next, k), k)),
                        m.scalar(step, 0.0));
  for (auto [t, g] : llvm::enumerate(s.grads)) {
    BlockArgument slot = s.step.addStateArgument(
        g.getType(),
        {b.getNamedAttr(TrainoptDialect::kStateAttrName,
                        b.getStringAttr("grad_accum")),
         b.getNamedAttr(TrainoptDialect::kStateOfAttrName, s.params[t]),
         roleAttr(ctx, ValueRole::optimizer_state)});
    Value sum = m.add(slot, g);
    s.step.addUpdate(m.where(apply, m.mul(sum, 0.0), sum), slot);
    g = m.mul(sum, 1.0 / static_cast<double>(o.gradAccum));
  }
  s.andGate(apply);
}

/// The sum of squares of all gradients (in the metric type).
Value sumOfSquares(GradientSet &s) {
  TensorBuilder &m = s.m;
  auto module = s.step.func->getParentOfType<ModuleOp>();
  // A parameter split over tp has a part of its gradient on each tp rank:
  // those parts' squares are summed over tp (in one all-reduce); a
  // replicated one is whole on every rank and counted once.
  Value normSq = m.scalar(s.metricType, 0.0);
  Value splitSq;
  int16_t tpAxis = -1;
  for (auto [g, param] : llvm::zip(s.grads, s.params)) {
    Value sq = m.cast(m.sumSquares(g), s.metricType);
    if (int16_t axis = splitAxis(s.step.func, param); axis >= 0) {
      splitSq = splitSq ? m.add(splitSq, sq) : sq;
      tpAxis = axis;
    } else {
      normSq = m.add(normSq, sq);
    }
  }
  if (splitSq)
    normSq = m.add(normSq, sumOverMeshAxis(m, splitSq, tpAxis));
  // A pipeline stage holds its own parameters' gradients: the global sum
  // adds the stages'.
  if (auto [axis, stages] = meshAxis(module, "pp"); stages > 1)
    normSq = sumOverMeshAxis(m, normSq, axis);
  return normSq;
}

/// The global L2 norm of the gradients, before clipping.
Value globalNorm(GradientSet &s) { return s.m.sqrt(sumOfSquares(s)); }

/// Loss scaling, with torch.amp.GradScaler's semantics: the gradients are
/// those of loss * scale; they are unscaled (times the f32 reciprocal of
/// the scale), and the step is skipped (the update gate is false) when any
/// is inf or NaN. The check rides on the global norm's sum of squares,
/// which is not finite exactly when an element is not, or when the scaled
/// norm passes f32's range (1.8e19; a true gradient norm above 2.8e14 at
/// the default scale), where GradScaler would still step. A dynamic scale
/// then backs off after an overflow, or grows after `growth_interval`
/// finite steps in a row (if the grown scale is finite), as
/// `_amp_update_scale_` does. Sets `norm` to the unscaled gradients' norm.
void unscale(GradientSet &s, const LossScaling &ls, Value &norm) {
  TensorBuilder &m = s.m;
  MLIRContext *ctx = s.step.func.getContext();
  Builder b(ctx);
  Value scale = ls.scale;
  Value inv = m.div(m.scalar(scale, 1.0), scale);
  Value inf = m.scalar(scale, std::numeric_limits<double>::infinity());
  Value normSq = sumOfSquares(s);
  // normSq >= 0, so it is finite exactly when below inf (NaN compares false).
  Value finite =
      m.less(normSq, m.scalar(normSq, std::numeric_limits<double>::infinity()));
  norm = m.mul(m.sqrt(normSq), m.cast(inv, s.metricType));
  for (Value &g : s.grads)
    g = m.mul(g, m.cast(inv, TensorBuilder::elementType(g)));
  s.andGate(finite);
  s.step.addMetric(m.cast(scale, s.metricType), "loss_scale");
  s.step.addMetric(
      m.where(finite, m.scalar(s.metricType, 0.0), m.scalar(s.metricType, 1.0)),
      "skipped");
  if (!ls.dynamic)
    return;
  BlockArgument tracker = s.step.addStateArgument(
      RankedTensorType::get({}, b.getI64Type()),
      {b.getNamedAttr(TrainoptDialect::kStateAttrName,
                      b.getStringAttr("loss_scale_growth_tracker")),
       roleAttr(ctx, ValueRole::optimizer_state)});
  Value next = m.add(tracker, 1.0);
  Value grow = m.logicalAnd(
      finite,
      m.equal(next, m.scalar(tracker, static_cast<double>(ls.growthInterval))));
  // As PyTorch: the float scale times the double factor, stored as float
  // (3e6 * 0.3 is 900000, where f32(0.3) would give 900000.06).
  Type f32 = TensorBuilder::elementType(scale);
  auto times = [&](double factor) {
    return m.cast(m.mul(m.cast(scale, b.getF64Type()), factor), f32);
  };
  Value grown = times(ls.growthFactor);
  grown = m.where(m.less(grown, inf), grown, scale);
  Value newScale =
      m.where(finite, m.where(grow, grown, scale), times(ls.backoffFactor));
  Value zero = m.scalar(tracker, 0.0);
  Value newTracker = m.where(grow, zero, m.where(finite, next, zero));
  s.step.addUpdate(newScale, ls.scale);
  s.step.addUpdate(newTracker, tracker);
}

/// The list, in order. `norm` is always on: its value is the `grad_norm`
/// metric and what clipping by norm scales with.
struct Transform {
  const char *name;
  bool (*enabled)(const Options &);
  void (*apply)(GradientSet &, const Options &, Value &norm);
};

const Transform transformList[] = {
    {"accumulate", [](const Options &o) { return o.gradAccum > 1; },
     [](GradientSet &s, const Options &o, Value &) { accumulate(s, o); }},
    // Where replicas combine their gradients: after accumulation (the step
    // has no control flow, so they still communicate on every micro-batch:
    // the accumulated average, which only the K-th applies), and before
    // the overflow check and the norm, which must see the combined values
    // (trainopt-shard-step).
    {"sync", [](const Options &) { return true; },
     [](GradientSet &s, const Options &, Value &) {
       for (auto [g, param] : llvm::zip(s.grads, s.params))
         g = GradSyncOp::create(s.m.b, g, param);
     }},
    {"unscale", [](const Options &o) { return o.lossScaling.has_value(); },
     [](GradientSet &s, const Options &o, Value &norm) {
       unscale(s, *o.lossScaling, norm);
     }},
    {"norm", [](const Options &) { return true; },
     [](GradientSet &s, const Options &, Value &norm) {
       if (!norm) // unscale computed it from the scaled gradients
         norm = globalNorm(s);
       s.step.addMetric(norm, "grad_norm");
     }},
    {"clip-value", [](const Options &o) { return o.clipGradValue > 0.0; },
     [](GradientSet &s, const Options &o, Value &) {
       Builder b(s.step.func.getContext());
       for (Value &g : s.grads)
         g = ClipOp::create(s.m.b, g, b.getF64FloatAttr(-o.clipGradValue),
                            b.getF64FloatAttr(o.clipGradValue));
     }},
    {"clip-norm", [](const Options &o) { return o.clipGradNorm > 0.0; },
     [](GradientSet &s, const Options &o, Value &norm) {
       TensorBuilder &m = s.m;
       Value coef = m.min(m.div(m.scalar(norm, o.clipGradNorm),
                                m.add(norm, 1e-6)),
                          m.scalar(norm, 1.0));
       for (Value &g : s.grads)
         g = m.mul(g, m.cast(coef, TensorBuilder::elementType(g)));
     }},
};

struct TrainoptTransformGradientsPass
    : public mlir::trainopt::impl::TrainoptTransformGradientsBase<
          TrainoptTransformGradientsPass> {
  using TrainoptTransformGradientsBase::TrainoptTransformGradientsBase;
  /// One option, to list all (TrainingPipeline.h).
  const llvm::cl::Option &anyOption() const { return gradAccum; }

  void runOnOperation() override {
    auto bad = [&](StringRef flag, const Twine &why) {
      getOperation().emitError() << "--" << flag << ": " << why;
      signalPassFailure();
    };
    if (gradAccum < 1)
      return bad("grad-accum", "must be >= 1");
    if (clipGradNorm < 0.0 || clipGradValue < 0.0)
      return bad(clipGradNorm < 0.0 ? "clip-grad-norm" : "clip-grad-value",
                 "must be >= 0");
    FailureOr<TrainStepFunction> step =
        TrainStepFunction::get(getOperation(), getArgument());
    if (failed(step))
      return signalPassFailure();
    FailureOr<Value> loss = step->loss(getArgument());
    if (failed(loss))
      return signalPassFailure();
    OpBuilder b = step->builderAtEnd();
    TensorBuilder m(b, step->func.getLoc());
    GradientSet s{*step, m};
    s.metricType = TensorBuilder::elementType(*loss);
    for (unsigned i : step->resultsWithRole(ValueRole::gradient)) {
      s.results.push_back(i);
      s.grads.push_back(step->result(i));
      s.params.push_back(step->func.getResultAttrOfType<FlatSymbolRefAttr>(
          i, TrainoptDialect::kGradOfAttrName));
    }
    SmallVector<unsigned> gates = step->resultsWithRole(ValueRole::update_gate);
    if (!gates.empty())
      s.gate = step->result(gates[0]);
    Options o{gradAccum, clipGradNorm, clipGradValue, std::nullopt};
    if (auto config = step->func->getAttrOfType<DictionaryAttr>(
            TrainoptDialect::kLossScaleAttrName)) {
      LossScaling ls;
      for (BlockArgument arg : step->func.getArguments())
        if (auto state = step->func.getArgAttrOfType<StringAttr>(
                arg.getArgNumber(), TrainoptDialect::kStateAttrName);
            state && state.getValue() == "loss_scale")
          ls.scale = arg;
      auto dynamic = config.getAs<BoolAttr>("dynamic");
      auto interval = config.getAs<IntegerAttr>("growth_interval");
      auto growth = config.getAs<FloatAttr>("growth_factor");
      auto backoff = config.getAs<FloatAttr>("backoff_factor");
      if (!ls.scale || !dynamic || !interval || !growth || !backoff) {
        step->func.emitError()
            << "trainopt-transform-gradients: '"
            << TrainoptDialect::kLossScaleAttrName
            << "' needs a loss_scale state argument and dynamic, "
               "growth_interval, growth_factor and backoff_factor";
        return signalPassFailure();
      }
      ls.dynamic = dynamic.getValue();
      ls.growthInterval = interval.getInt();
      ls.growthFactor = growth.getValueAsDouble();
      ls.backoffFactor = backoff.getValueAsDouble();
      if (gradAccum > 1)
        return bad("grad-accum",
                   "cannot be combined with loss scaling (--amp=fp16) yet");
      o.lossScaling = ls;
    }
    Value norm;
    for (const Transform &t : transformList)
      if (t.enabled(o)) {
        m.b.setInsertionPoint(step->returnOp());
        t.apply(s, o, norm);
      }
    // Results added by transforms come after the old ones, so the indices
    // of the gradients still hold.
    for (auto [i, g] : llvm::zip(s.results, s.grads))
      step->setResult(i, g);
    if (s.gate) {
      if (gates.empty())
        step->addResult(s.gate, {roleAttr(&getContext(),
                                          ValueRole::update_gate)});
      else
        step->setResult(gates[0], s.gate);
    }
  }
};

} // namespace

std::vector<TrainingOption> mlir::trainopt::stage_options::transformGradientsOptions() {
  TrainoptTransformGradientsPass pass;
  return passOptionsOf(pass.anyOption(), pass.getArgument());
}
