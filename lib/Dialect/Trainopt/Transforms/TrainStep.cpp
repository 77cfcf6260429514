//===- TrainStep.cpp - build @train_step and @eval_step -------------------===//
//
/// \file
/// Turns a function with a loss into a training step: training-mode forward
/// (batch statistics, stepping dropout seeds), gradients through autodiff,
/// clipping, a learning-rate schedule computed from the step counter and an
/// in-graph optimizer update with PyTorch's semantics, plus the inference
/// `@eval_step`. Optimizer and model state go in and come out, each output
/// tagged with the argument it replaces.
//
//===----------------------------------------------------------------------===//

#include "trainopt/Dialect/Trainopt/Transforms/Passes.h"

#include "trainopt/Dialect/Trainopt/IR/TrainoptOps.h"

#include "mlir/IR/Builders.h"
#include "mlir/IR/IRMapping.h"
#include "mlir/IR/SymbolTable.h"
#include "mlir/IR/TypeUtilities.h"
#include "llvm/Support/GlobPattern.h"

#include <cmath>

namespace mlir::trainopt {
#define GEN_PASS_DEF_TRAINOPTBUILDTRAINSTEP
#include "trainopt/Dialect/Trainopt/Transforms/Passes.h.inc"
} // namespace mlir::trainopt

using namespace mlir;
using namespace mlir::trainopt;

namespace {

/// Tensor arithmetic for the optimizer and schedule code.
struct Math {
  OpBuilder &b;
  Location loc;

  Value c(Type elt, double v) {
    auto t = RankedTensorType::get({}, elt);
    if (isa<FloatType>(elt))
      return ConstantOp::create(
          b, loc, DenseElementsAttr::get(t, b.getFloatAttr(elt, v)));
    return ConstantOp::create(
        b, loc,
        DenseElementsAttr::get(t,
                               b.getIntegerAttr(elt, static_cast<int64_t>(v))));
  }
  Value c(Value like, double v) { return c(getElementTypeOrSelf(like), v); }
  Value add(Value x, Value y) { return AddOp::create(b, loc, x, y); }
  Value sub(Value x, Value y) { return SubOp::create(b, loc, x, y); }
  Value mul(Value x, Value y) { return MulOp::create(b, loc, x, y); }
  Value div(Value x, Value y) { return DivOp::create(b, loc, x, y); }
  Value mul(Value x, double v) { return mul(x, c(x, v)); }
  Value add(Value x, double v) { return add(x, c(x, v)); }
  Value sqrt(Value x) { return SqrtOp::create(b, loc, x); }
  Value pow(Value x, Value y) { return PowOp::create(b, loc, x, y); }
  Value min(Value x, Value y) { return MinOp::create(b, loc, x, y); }
  Value max(Value x, Value y) { return MaxOp::create(b, loc, x, y); }
  Value where(Value cond, Value x, Value y) {
    return WhereOp::create(b, loc, cond, x, y);
  }
  Value cast(Value x, Type elt) {
    auto t = cast_type(x);
    if (t.getElementType() == elt)
      return x;
    return CastOp::create(b, loc, t.clone(elt), x);
  }
  static RankedTensorType cast_type(Value v) {
    return llvm::cast<RankedTensorType>(v.getType());
  }
  Value sumAll(Value x) { return ReduceSumOp::create(b, loc, x); }
  Value sumSquares(Value x) { return sumAll(mul(x, x)); }
};

} // namespace

namespace {
struct TrainoptBuildTrainStepPass
    : public mlir::trainopt::impl::TrainoptBuildTrainStepBase<
          TrainoptBuildTrainStepPass> {
  using TrainoptBuildTrainStepBase::TrainoptBuildTrainStepBase;

  void runOnOperation() override;

private:
  LogicalResult validate(Operation *anchor);
  /// The learning rate used at `step` (an f32 0-d tensor).
  Value learningRate(Math &m, Value step, Type elt);
  double weightDecayFor(StringRef param);
  double defaultEps();

  /// Optimizer slots per trainable parameter, by the PyTorch state names.
  SmallVector<StringRef> slots() {
    if (optimizer == "sgd")
      return momentum > 0.0 ? SmallVector<StringRef>{"momentum_buffer"}
                            : SmallVector<StringRef>{};
    if (optimizer == "adam" || optimizer == "adamw" || optimizer == "lamb")
      return {"exp_avg", "exp_avg_sq"};
    if (optimizer == "adagrad")
      return {"sum"};
    // rmsprop
    return momentum > 0.0
               ? SmallVector<StringRef>{"square_avg", "momentum_buffer"}
               : SmallVector<StringRef>{"square_avg"};
  }
};
} // namespace

LogicalResult TrainoptBuildTrainStepPass::validate(Operation *anchor) {
  auto bad = [&](StringRef flag, const Twine &why) {
    return anchor->emitError() << "--" << flag << ": " << why;
  };
  static const char *optimizers[] = {"sgd",     "adam",    "adamw",
                                     "adagrad", "rmsprop", "lamb"};
  if (!llvm::is_contained(optimizers, StringRef(optimizer)))
    return bad("optimizer", "must be sgd, adam, adamw, adagrad, rmsprop or "
                            "lamb, got '" +
                                optimizer + "'");
  bool sgd = optimizer == "sgd", rms = optimizer == "rmsprop";
  bool adamLike =
      optimizer == "adam" || optimizer == "adamw" || optimizer == "lamb";
  if (!(lr > 0.0))
    return bad("lr", "must be positive");
  if (momentum.hasValue() && !sgd && !rms)
    return bad("momentum", "does not apply to --optimizer=" + optimizer);
  if (momentum < 0.0)
    return bad("momentum", "must be >= 0");
  if ((dampening.hasValue() || nesterov.hasValue()) && !sgd)
    return bad(dampening.hasValue() ? "dampening" : "nesterov",
               "applies only to --optimizer=sgd");
  if (nesterov && (momentum <= 0.0 || dampening != 0.0))
    return bad("nesterov", "needs --momentum > 0 and --dampening=0");
  if ((beta1.hasValue() || beta2.hasValue()) && !adamLike)
    return bad(beta1.hasValue() ? "beta1" : "beta2",
               "applies to adam, adamw and lamb, not " + optimizer);
  if (!(beta1 >= 0.0 && beta1 < 1.0) || !(beta2 >= 0.0 && beta2 < 1.0))
    return bad("beta1", "betas must be in [0, 1)");
  if (alpha.hasValue() && !rms)
    return bad("alpha", "applies only to --optimizer=rmsprop");
  if (lrDecay.hasValue() && optimizer != "adagrad")
    return bad("lr-decay", "applies only to --optimizer=adagrad");
  if (eps.hasValue() && sgd)
    return bad("eps", "does not apply to --optimizer=sgd");
  if (weightDecay.hasValue() && weightDecay < 0.0)
    return bad("weight-decay", "must be >= 0");
  if (gradAccum < 1)
    return bad("grad-accum", "must be >= 1");
  if (clipGradNorm < 0.0 || clipGradValue < 0.0)
    return bad(clipGradNorm < 0.0 ? "clip-grad-norm" : "clip-grad-value",
               "must be >= 0");
  if (!noWeightDecay.empty() &&
      !(weightDecay.hasValue() || optimizer == "adamw"))
    return bad("no-weight-decay", "needs a weight decay");
  for (const std::string &p : noWeightDecay)
    if (!llvm::GlobPattern::create(p))
      return bad("no-weight-decay", "'" + p + "' is not a valid glob");
  // Schedules and their options.
  StringRef s = schedule;
  static const char *schedules[] = {"constant",    "step",   "multistep",
                                    "exponential", "cosine", "linear-warmup",
                                    "one-cycle"};
  if (!llvm::is_contained(schedules, s))
    return bad("lr-schedule", "must be constant, step, multistep, "
                              "exponential, cosine, linear-warmup or "
                              "one-cycle, got '" +
                                  schedule + "'");
  if (warmupSteps.hasValue() && s != "cosine" && s != "linear-warmup")
    return bad("warmup-steps", "applies to cosine and linear-warmup");
  if ((s == "linear-warmup") && warmupSteps <= 0)
    return bad("warmup-steps", "must be positive for linear-warmup");
  if (totalSteps.hasValue() && s != "cosine" && s != "one-cycle")
    return bad("total-steps", "applies to cosine and one-cycle");
  if ((s == "cosine" || s == "one-cycle") && totalSteps <= warmupSteps)
    return bad("total-steps", "must be greater than --warmup-steps for " + s);
  if (stepSize.hasValue() != (s == "step") || (s == "step" && stepSize <= 0))
    return bad("step-size", "is required by, and only by, --lr-schedule=step "
                            "(a positive number of steps)");
  if (!milestones.empty() != (s == "multistep"))
    return bad("milestones", "are required by, and only by, "
                             "--lr-schedule=multistep");
  if (gamma.hasValue() && s != "step" && s != "multistep" && s != "exponential")
    return bad("gamma", "applies to step, multistep and exponential");
  if (minLr.hasValue() && s != "cosine")
    return bad("min-lr", "applies only to --lr-schedule=cosine");
  if ((pctStart.hasValue() || divFactor.hasValue() ||
       finalDivFactor.hasValue()) &&
      s != "one-cycle")
    return bad("pct-start", "pct-start, div-factor and final-div-factor "
                            "apply only to --lr-schedule=one-cycle");
  return success();
}

double TrainoptBuildTrainStepPass::defaultEps() {
  if (eps.hasValue())
    return eps;
  if (optimizer == "adagrad")
    return 1e-10;
  if (optimizer == "lamb")
    return 1e-6;
  return 1e-8;
}

double TrainoptBuildTrainStepPass::weightDecayFor(StringRef param) {
  for (const std::string &p : noWeightDecay)
    if (auto glob = llvm::GlobPattern::create(p); glob && glob->match(param))
      return 0.0;
  if (weightDecay.hasValue())
    return weightDecay;
  return optimizer == "adamw" ? 1e-2 : 0.0;
}

Value TrainoptBuildTrainStepPass::learningRate(Math &m, Value step, Type elt) {
  Value s = m.cast(step, elt); // steps taken before this one
  Value base = m.c(elt, lr);
  StringRef kind = schedule;
  if (kind == "constant")
    return base;
  if (kind == "step") {
    Value k = FloorOp::create(m.b, m.loc, m.div(s, m.c(elt, stepSize)));
    return m.mul(base, m.pow(m.c(elt, gamma), k));
  }
  if (kind == "multistep") {
    Value passed = m.c(elt, 0.0);
    for (int64_t milestone : milestones)
      passed = m.add(passed, m.cast(GreaterEqualOp::create(m.b, m.loc, s,
                                                           m.c(elt, milestone)),
                                    elt));
    return m.mul(base, m.pow(m.c(elt, gamma), passed));
  }
  if (kind == "exponential")
    return m.mul(base, m.pow(m.c(elt, gamma), s));
  Value one = m.c(elt, 1.0);
  if (kind == "linear-warmup")
    return m.mul(base, m.min(one, m.div(m.add(s, 1.0), m.c(elt, warmupSteps))));
  if (kind == "cosine") {
    // Linear warmup to lr, then cosine annealing to min-lr.
    double span = static_cast<double>(totalSteps - warmupSteps);
    Value t = m.min(m.max(m.sub(s, m.c(elt, warmupSteps)), m.c(elt, 0.0)),
                    m.c(elt, span));
    Value cosine = m.add(
        m.mul(
            m.mul(m.add(CosOp::create(m.b, m.loc, m.mul(t, M_PI / span)), 1.0),
                  0.5),
            lr - minLr),
        minLr);
    if (warmupSteps <= 0)
      return cosine;
    Value warm = m.mul(base, m.div(m.add(s, 1.0), m.c(elt, warmupSteps)));
    return m.where(LessOp::create(m.b, m.loc, s, m.c(elt, warmupSteps)), warm,
                   cosine);
  }
  // one-cycle (PyTorch OneCycleLR, cosine annealing, two phases).
  double initial = lr / divFactor, final = initial / finalDivFactor;
  double up = pctStart * static_cast<double>(totalSteps) - 1.0;
  double down = static_cast<double>(totalSteps) - 1.0 - up;
  auto anneal = [&](double from, double to, Value pct) {
    Value cosOut = m.add(CosOp::create(m.b, m.loc, m.mul(pct, M_PI)), 1.0);
    return m.add(m.mul(cosOut, (from - to) / 2.0), m.c(elt, to));
  };
  Value pctUp = m.min(m.div(s, m.c(elt, std::max(up, 1e-12))), one);
  Value pctDown = m.min(
      m.max(m.div(m.sub(s, m.c(elt, up)), m.c(elt, std::max(down, 1e-12))),
            m.c(elt, 0.0)),
      one);
  return m.where(LessEqualOp::create(m.b, m.loc, s, m.c(elt, up)),
                 anneal(initial, lr, pctUp), anneal(lr, final, pctDown));
}

void TrainoptBuildTrainStepPass::runOnOperation() {
  ModuleOp module = getOperation();
  MLIRContext *ctx = &getContext();
  auto forward = module.lookupSymbol<func::FuncOp>(funcName);
  if (!forward) {
    module.emitError() << "trainopt-build-train-step: no function @"
                       << funcName;
    return signalPassFailure();
  }
  if (failed(validate(forward)))
    return signalPassFailure();
  std::optional<unsigned> lossIndex;
  for (unsigned i = 0; i < forward.getNumResults(); ++i)
    if (auto n = forward.getResultAttrOfType<StringAttr>(
            i, TrainoptDialect::kOutputAttrName))
      if (n.getValue() == "loss")
        lossIndex = i;
  if (!lossIndex) {
    forward.emitError() << "has no result named 'loss'; run "
                           "trainopt-attach-loss (--loss) first";
    return signalPassFailure();
  }
  SymbolTable symbols(module);
  OpBuilder b(ctx);
  auto i64Scalar = RankedTensorType::get({}, b.getI64Type());

  // Parameters of @forward, by argument index.
  auto paramOf = [&](func::FuncOp f, unsigned i) -> ParameterOp {
    auto ref = f.getArgAttrOfType<FlatSymbolRefAttr>(
        i, TrainoptDialect::kParamAttrName);
    return ref ? symbols.lookup<ParameterOp>(ref.getValue()) : ParameterOp();
  };

  // 1. The training-mode forward: @<func>_train(args..., step).
  b.setInsertionPointAfter(forward);
  auto train = cast<func::FuncOp>(b.clone(*forward));
  train.setSymName(funcName + "_train");
  symbols.insert(train);
  Block &tbody = train.getBody().front();
  unsigned numForwardArgs = train.getNumArguments();
  (void)train.insertArgument(
      numForwardArgs, i64Scalar,
      b.getDictionaryAttr({b.getNamedAttr(TrainoptDialect::kStateAttrName,
                                          b.getStringAttr("step")),
                           roleAttr(ctx, ValueRole::step)}),
      train.getLoc());
  Value stepArg = tbody.getArgument(numForwardArgs);
  // State updates: forward argument index -> its new value.
  SmallVector<std::pair<unsigned, Value>> stateUpdates;
  SmallVector<Operation *> ops;
  for (Operation &op : tbody.without_terminator())
    ops.push_back(&op);
  int64_t dropoutIndex = 0;
  for (Operation *op : ops) {
    if (auto bn = dyn_cast<BatchNormInferenceOp>(op)) {
      auto mean = dyn_cast<BlockArgument>(bn.getMean());
      auto var = dyn_cast<BlockArgument>(bn.getVariance());
      if (!mean || !var || !paramOf(train, mean.getArgNumber()) ||
          !paramOf(train, var.getArgNumber()))
        continue; // Statistics computed in the model stay as they are.
      b.setInsertionPoint(bn);
      auto trainBn = BatchNormTrainOp::create(
          b, bn.getLoc(), bn.getX().getType(), bn.getMean().getType(),
          bn.getVariance().getType(), bn.getX(), bn.getScale(), bn.getBias(),
          bn.getMean(), bn.getVariance(), bn.getEpsilonAttr(),
          b.getF64FloatAttr(1.0 - bnMomentum), b.getBoolAttr(true));
      bn.getY().replaceAllUsesWith(trainBn.getY());
      bn.erase();
      stateUpdates.push_back(
          {mean.getArgNumber(), trainBn.getNewRunningMean()});
      stateUpdates.push_back({var.getArgNumber(), trainBn.getNewRunningVar()});
    } else if (auto bn = dyn_cast<BatchNormTrainOp>(op)) {
      auto mean = dyn_cast<BlockArgument>(bn.getRunningMean());
      auto var = dyn_cast<BlockArgument>(bn.getRunningVar());
      if (mean && var && paramOf(train, mean.getArgNumber()) &&
          paramOf(train, var.getArgNumber())) {
        stateUpdates.push_back({mean.getArgNumber(), bn.getNewRunningMean()});
        stateUpdates.push_back({var.getArgNumber(), bn.getNewRunningVar()});
      }
    } else if (auto dropout = dyn_cast<DropoutOp>(op)) {
      // seed = step * P + (the node's seed + a per-node offset): a new,
      // reproducible mask every step and for every dropout.
      b.setInsertionPoint(dropout);
      Math m{b, dropout.getLoc()};
      Value seed = m.add(
          m.mul(stepArg, m.c(stepArg, 1000003.0)),
          m.add(dropout.getSeed(), m.c(stepArg, 7919.0 * dropoutIndex++)));
      dropout.getSeedMutable().assign(seed);
    }
  }
  // Expose the state updates as results.
  auto tret = cast<func::ReturnOp>(tbody.getTerminator());
  SmallVector<Value> tresults(tret.getOperands());
  SmallVector<Attribute> tresultAttrs;
  for (unsigned i = 0; i < train.getNumResults(); ++i)
    tresultAttrs.push_back(train.getResultAttrDict(i)
                               ? Attribute(train.getResultAttrDict(i))
                               : b.getDictionaryAttr({}));
  for (auto &[arg, value] : stateUpdates) {
    tresults.push_back(value);
    tresultAttrs.push_back(b.getDictionaryAttr(b.getNamedAttr(
        TrainoptDialect::kUpdatesAttrName, b.getI64IntegerAttr(arg))));
  }
  b.setInsertionPoint(tret);
  func::ReturnOp::create(b, tret.getLoc(), tresults);
  tret.erase();
  train.setType(
      b.getFunctionType(train.getArgumentTypes(),
                        llvm::to_vector(ValueRange(tresults).getTypes())));
  train.setAllResultAttrs(tresultAttrs);

  // 2. Gradients of the trainable parameters.
  FailureOr<func::FuncOp> grad =
      differentiate(train, *lossIndex, GradientArguments::Trainable,
                    /*keepResults=*/true);
  if (failed(grad))
    return signalPassFailure();
  unsigned numTrainResults = train.getNumResults();

  // 3. @train_step.
  // Arguments: @forward's parameters, optimizer slots, step, then inputs.
  SmallVector<unsigned> paramArgs, inputArgs, trainable;
  for (unsigned i = 0; i < numForwardArgs; ++i) {
    if (ParameterOp p = paramOf(forward, i)) {
      paramArgs.push_back(i);
      if (p.getTrainable() && isa<FloatType>(getElementTypeOrSelf(
                                  forward.getArgument(i).getType())))
        trainable.push_back(i);
    } else {
      inputArgs.push_back(i);
    }
  }
  SmallVector<Type> argTypes;
  SmallVector<Attribute> argAttrs;
  DenseMap<unsigned, unsigned> stepIndexOfForwardArg;
  for (unsigned i : paramArgs) {
    stepIndexOfForwardArg[i] = argTypes.size();
    argTypes.push_back(forward.getArgument(i).getType());
    argAttrs.push_back(forward.getArgAttrDict(i));
  }
  SmallVector<StringRef> slotNames = slots();
  unsigned accumSlot = slotNames.size();
  if (gradAccum > 1)
    slotNames.push_back("grad_accum");
  // slotIndex[t][k]: the argument of slot k of trainable parameter t.
  SmallVector<SmallVector<unsigned>> slotIndex(trainable.size());
  for (auto [t, i] : llvm::enumerate(trainable)) {
    for (StringRef slot : slotNames) {
      slotIndex[t].push_back(argTypes.size());
      argTypes.push_back(forward.getArgument(i).getType());
      argAttrs.push_back(b.getDictionaryAttr(
          {b.getNamedAttr(TrainoptDialect::kStateAttrName,
                          b.getStringAttr(slot)),
           b.getNamedAttr(
               TrainoptDialect::kStateOfAttrName,
               forward.getArgAttr(i, TrainoptDialect::kParamAttrName)),
           roleAttr(ctx, ValueRole::optimizer_state)}));
    }
  }
  // One update counter per BatchNorm (PyTorch's num_batches_tracked), keyed
  // by its running mean; stateUpdates holds (mean, var) pairs.
  SmallVector<unsigned> counterIndex;
  for (unsigned k = 0; k < stateUpdates.size(); k += 2) {
    counterIndex.push_back(argTypes.size());
    argTypes.push_back(i64Scalar);
    argAttrs.push_back(b.getDictionaryAttr(
        {b.getNamedAttr(TrainoptDialect::kStateAttrName,
                        b.getStringAttr("num_batches_tracked")),
         b.getNamedAttr(TrainoptDialect::kStateOfAttrName,
                        forward.getArgAttr(stateUpdates[k].first,
                                           TrainoptDialect::kParamAttrName)),
         roleAttr(ctx, ValueRole::model_state)}));
  }
  unsigned stepIndex = argTypes.size();
  argTypes.push_back(i64Scalar);
  argAttrs.push_back(b.getDictionaryAttr(
      {b.getNamedAttr(TrainoptDialect::kStateAttrName, b.getStringAttr("step")),
       roleAttr(ctx, ValueRole::step)}));
  for (unsigned i : inputArgs) {
    stepIndexOfForwardArg[i] = argTypes.size();
    argTypes.push_back(forward.getArgument(i).getType());
    argAttrs.push_back(forward.getArgAttrDict(i));
  }
  for (Attribute &a : argAttrs)
    if (!a)
      a = b.getDictionaryAttr({});

  b.setInsertionPointToEnd(module.getBody());
  auto step = func::FuncOp::create(b, forward.getLoc(), "train_step",
                                   b.getFunctionType(argTypes, {}));
  symbols.insert(step);
  Block *body = step.addEntryBlock();
  b.setInsertionPointToStart(body);
  Math m{b, forward.getLoc()};
  SmallVector<Value> callArgs;
  for (unsigned i = 0; i < numForwardArgs; ++i)
    callArgs.push_back(body->getArgument(stepIndexOfForwardArg[i]));
  Value stepValue = body->getArgument(stepIndex);
  callArgs.push_back(stepValue);
  auto call = func::CallOp::create(b, forward.getLoc(), *grad, callArgs);
  Value loss = call.getResult(*lossIndex);
  Type elt = getElementTypeOrSelf(loss.getType());
  SmallVector<Value> grads;
  for (unsigned t = 0; t < trainable.size(); ++t)
    grads.push_back(call.getResult(numTrainResults + t));

  // Gradient accumulation: the optimizer sees the average of K micro-batch
  // gradients, on every K-th call; `optStep` counts optimizer updates.
  Value optStep = stepValue, apply, stepPlusOne;
  SmallVector<Value> accumulated;
  if (gradAccum > 1) {
    Value k = m.c(stepValue, static_cast<double>(gradAccum));
    stepPlusOne = m.add(stepValue, m.c(stepValue, 1.0));
    optStep = m.div(stepValue, k);
    apply = EqualOp::create(b, m.loc,
                            m.sub(stepPlusOne, m.mul(m.div(stepPlusOne, k), k)),
                            m.c(stepValue, 0.0));
    for (auto [t, g] : llvm::enumerate(grads)) {
      Value acc = m.add(body->getArgument(slotIndex[t][accumSlot]), g);
      accumulated.push_back(acc);
      g = m.mul(acc, 1.0 / static_cast<double>(gradAccum));
    }
  }

  // Global gradient norm (before clipping, as PyTorch's clip_grad_norm_
  // returns it), clipping.
  Value normSq = m.c(elt, 0.0);
  for (Value g : grads)
    normSq = m.add(normSq, m.cast(m.sumSquares(g), elt));
  Value gradNorm = m.sqrt(normSq);
  if (clipGradValue > 0.0)
    for (Value &g : grads)
      g = ClipOp::create(b, m.loc, g, b.getF64FloatAttr(-clipGradValue),
                         b.getF64FloatAttr(clipGradValue));
  if (clipGradNorm > 0.0) {
    Value coef = m.min(m.div(m.c(elt, clipGradNorm), m.add(gradNorm, 1e-6)),
                       m.c(elt, 1.0));
    for (Value &g : grads)
      g = m.mul(g, m.cast(coef, getElementTypeOrSelf(g)));
  }
  Value lrValue = learningRate(m, optStep, elt);

  // The update, per trainable parameter.
  SmallVector<Value> results;
  SmallVector<Attribute> resultAttrs;
  auto emit = [&](Value v, unsigned replaces) {
    results.push_back(v);
    resultAttrs.push_back(b.getDictionaryAttr(b.getNamedAttr(
        TrainoptDialect::kUpdatesAttrName, b.getI64IntegerAttr(replaces))));
  };
  Value stepF = m.cast(optStep, elt);
  Value t1 = m.add(stepF, 1.0); // the 1-based step count of this update
  Value isFirst = EqualOp::create(b, m.loc, optStep, m.c(stepValue, 0.0));
  double epsilon = defaultEps();
  for (auto [t, i] : llvm::enumerate(trainable)) {
    Value p = body->getArgument(stepIndexOfForwardArg[i]);
    Value g = grads[t];
    Type pe = getElementTypeOrSelf(p);
    Value lrP = m.cast(lrValue, pe);
    StringRef name = paramOf(forward, i).getSymName();
    double wd = weightDecayFor(name);
    auto slot = [&](unsigned k) { return body->getArgument(slotIndex[t][k]); };
    SmallVector<Value> newSlots;
    Value newP;
    if (optimizer == "sgd") {
      if (wd != 0.0)
        g = m.add(g, m.mul(p, wd));
      if (momentum > 0.0) {
        // PyTorch starts the buffer at the first gradient.
        Value buf = m.add(m.mul(slot(0), momentum), m.mul(g, 1.0 - dampening));
        buf = m.where(isFirst, g, buf);
        newSlots.push_back(buf);
        g = nesterov ? m.add(g, m.mul(buf, momentum)) : buf;
      }
      newP = m.sub(p, m.mul(g, lrP));
    } else if (optimizer == "adam" || optimizer == "adamw" ||
               optimizer == "lamb") {
      Value decayed = p;
      if (optimizer == "adam" && wd != 0.0)
        g = m.add(g, m.mul(p, wd));
      if (optimizer == "adamw" && wd != 0.0)
        decayed = m.mul(p, m.sub(m.c(pe, 1.0), m.mul(lrP, wd)));
      Value mt = m.add(m.mul(slot(0), beta1), m.mul(g, 1.0 - beta1));
      Value vt = m.add(m.mul(slot(1), beta2), m.mul(m.mul(g, g), 1.0 - beta2));
      newSlots = {mt, vt};
      Value bc1 = m.cast(m.sub(m.c(elt, 1.0), m.pow(m.c(elt, beta1), t1)), pe);
      Value bc2 = m.cast(m.sub(m.c(elt, 1.0), m.pow(m.c(elt, beta2), t1)), pe);
      // PyTorch: p -= lr / bc1 * m / (sqrt(v) / sqrt(bc2) + eps).
      Value denom = m.add(m.div(m.sqrt(vt), m.sqrt(bc2)), epsilon);
      Value update = m.div(m.div(mt, bc1), denom);
      if (optimizer == "lamb") {
        if (wd != 0.0)
          update = m.add(update, m.mul(p, wd));
        Value pn = m.sqrt(m.sumSquares(p)), un = m.sqrt(m.sumSquares(update));
        Value zero = m.c(pe, 0.0);
        Value trust = m.where(
            AndOp::create(b, m.loc, GreaterOp::create(b, m.loc, pn, zero),
                          GreaterOp::create(b, m.loc, un, zero)),
            m.div(pn, un), m.c(pe, 1.0));
        newP = m.sub(p, m.mul(update, m.mul(lrP, trust)));
      } else {
        newP = m.sub(decayed, m.mul(update, lrP));
      }
    } else if (optimizer == "adagrad") {
      if (wd != 0.0)
        g = m.add(g, m.mul(p, wd));
      Value sum = m.add(slot(0), m.mul(g, g));
      newSlots.push_back(sum);
      Value clr = m.div(lrP, m.cast(m.add(m.mul(stepF, lrDecay), 1.0), pe));
      newP = m.sub(p, m.mul(m.div(g, m.add(m.sqrt(sum), epsilon)), clr));
    } else { // rmsprop
      if (wd != 0.0)
        g = m.add(g, m.mul(p, wd));
      Value sq = m.add(m.mul(slot(0), alpha), m.mul(m.mul(g, g), 1.0 - alpha));
      newSlots.push_back(sq);
      Value avg = m.add(m.sqrt(sq), epsilon);
      if (momentum > 0.0) {
        Value buf = m.add(m.mul(slot(1), momentum), m.div(g, avg));
        newSlots.push_back(buf);
        newP = m.sub(p, m.mul(buf, lrP));
      } else {
        newP = m.sub(p, m.mul(m.div(g, avg), lrP));
      }
    }
    if (gradAccum > 1) {
      // Between updates parameters and optimizer state stay as they are.
      newP = m.where(apply, newP, p);
      for (auto [k, v] : llvm::enumerate(newSlots))
        v = m.where(apply, v, slot(k));
      newSlots.push_back(
          m.where(apply, m.mul(accumulated[t], 0.0), accumulated[t]));
    }
    emit(newP, stepIndexOfForwardArg[i]);
    for (auto [k, s] : llvm::enumerate(newSlots))
      emit(s, slotIndex[t][k]);
  }
  // Model state (BatchNorm running statistics and their counters).
  for (auto [k, update] : llvm::enumerate(stateUpdates))
    emit(call.getResult(forward.getNumResults() + k),
         stepIndexOfForwardArg[update.first]);
  for (unsigned c : counterIndex) {
    Value counter = body->getArgument(c);
    emit(m.add(counter, m.c(counter, 1.0)), c);
  }
  emit(m.add(stepValue, m.c(stepValue, 1.0)), stepIndex);
  for (auto [name, v] : {std::pair<StringRef, Value>{"loss", loss},
                         {"grad_norm", gradNorm},
                         {"lr", lrValue}}) {
    results.push_back(v);
    resultAttrs.push_back(b.getDictionaryAttr(
        {b.getNamedAttr(TrainoptDialect::kOutputAttrName, b.getStringAttr(name)),
         roleAttr(ctx, ValueRole::metric)}));
  }
  func::ReturnOp::create(b, m.loc, results);
  step.setType(b.getFunctionType(
      argTypes, llvm::to_vector(ValueRange(results).getTypes())));
  step.setAllArgAttrs(argAttrs);
  step.setAllResultAttrs(resultAttrs);

  // 4. @eval_step: the forward pass in inference mode (dropout off).
  b.setInsertionPointToEnd(module.getBody());
  auto eval = cast<func::FuncOp>(b.clone(*forward));
  eval.setSymName("eval_step");
  symbols.insert(eval);
  SmallVector<DropoutOp> dropouts;
  eval.walk([&](DropoutOp d) { dropouts.push_back(d); });
  for (DropoutOp d : dropouts) {
    d.getY().replaceAllUsesWith(d.getX());
    b.setInsertionPoint(d);
    d.getMask().replaceAllUsesWith(ConstantOp::create(
        b, d.getLoc(),
        DenseElementsAttr::get(cast<RankedTensorType>(d.getMask().getType()),
                               true)));
    d.erase();
  }
  SmallVector<BatchNormTrainOp> bns;
  eval.walk([&](BatchNormTrainOp bn) { bns.push_back(bn); });
  for (BatchNormTrainOp bn : bns) {
    // Inference reads the running statistics and leaves them unchanged.
    b.setInsertionPoint(bn);
    auto inf = BatchNormInferenceOp::create(
        b, bn.getLoc(), bn.getX().getType(), bn.getX(), bn.getScale(),
        bn.getBias(), bn.getRunningMean(), bn.getRunningVar(),
        bn.getEpsilonAttr());
    bn.getY().replaceAllUsesWith(inf.getY());
    bn.getNewRunningMean().replaceAllUsesWith(bn.getRunningMean());
    bn.getNewRunningVar().replaceAllUsesWith(bn.getRunningVar());
    bn.erase();
  }
}
