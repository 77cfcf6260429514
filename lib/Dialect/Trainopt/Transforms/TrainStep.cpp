//===- TrainStep.cpp - @train_step in gradient form -----------------------===//
//
/// \file
/// The first training-step stage: the training-mode forward (batch
/// statistics, stepping dropout seeds), its gradient function, and
/// `@train_step` returning the gradients by role (TrainStep.h). Also the
/// `TrainStepFunction` edits every stage shares.
//
//===----------------------------------------------------------------------===//

#include "trainopt/Dialect/Trainopt/Transforms/TrainStep.h"

#include <array>

#include "trainopt/Dialect/Trainopt/IR/TensorBuilder.h"
#include "trainopt/Dialect/Trainopt/Transforms/Passes.h"
#include "trainopt/Dialect/Trainopt/Transforms/TrainingPipeline.h"

#include "mlir/Dialect/Shard/IR/ShardOps.h"
#include "mlir/IR/Builders.h"
#include "mlir/IR/SymbolTable.h"

namespace mlir::trainopt {
#define GEN_PASS_DEF_TRAINOPTBUILDTRAINSTEP
#include "trainopt/Dialect/Trainopt/Transforms/Passes.h.inc"
} // namespace mlir::trainopt

using namespace mlir;
using namespace mlir::trainopt;

//===----------------------------------------------------------------------===//
// TrainStepFunction
//===----------------------------------------------------------------------===//

FailureOr<TrainStepFunction> TrainStepFunction::get(ModuleOp module,
                                                    StringRef stage) {
  auto func = module.lookupSymbol<func::FuncOp>(kTrainStepName);
  if (!func || func.isExternal())
    return module.emitError() << stage << ": no @" << kTrainStepName
                              << "; run trainopt-build-train-step first";
  TrainStepFunction step{func};
  if (!step.step())
    return func.emitError() << stage << ": @" << kTrainStepName
                            << " has no argument with role step";
  return step;
}

BlockArgument TrainStepFunction::step() const {
  for (unsigned i = 0; i < func.getNumArguments(); ++i)
    if (argumentRole(func, i) == ValueRole::step)
      return func.getArgument(i);
  return {};
}

BlockArgument TrainStepFunction::parameter(StringRef name) const {
  for (unsigned i = 0; i < func.getNumArguments(); ++i)
    if (auto ref = func.getArgAttrOfType<FlatSymbolRefAttr>(
            i, TrainoptDialect::kParamAttrName))
      if (ref.getValue() == name)
        return func.getArgument(i);
  return {};
}

FailureOr<Value> TrainStepFunction::loss(StringRef stage) const {
  SmallVector<unsigned> losses = resultsWithRole(ValueRole::loss);
  if (losses.size() != 1)
    return func.emitError() << stage
                            << ": expects one result with role loss, got "
                            << losses.size();
  return result(losses[0]);
}

SmallVector<unsigned> TrainStepFunction::resultsWithRole(ValueRole role) const {
  SmallVector<unsigned> out;
  for (unsigned i = 0; i < func.getNumResults(); ++i)
    if (resultRole(func, i) == role)
      out.push_back(i);
  return out;
}

BlockArgument
TrainStepFunction::addStateArgument(Type type, ArrayRef<NamedAttribute> attrs) {
  unsigned index = step().getArgNumber();
  MLIRContext *ctx = func.getContext();
  (void)func.insertArgument(index, type, DictionaryAttr::get(ctx, attrs),
                            func.getLoc());
  for (unsigned i = 0; i < func.getNumResults(); ++i)
    if (auto n = func.getResultAttrOfType<IntegerAttr>(
            i, TrainoptDialect::kUpdatesAttrName))
      if (n.getInt() >= index)
        func.setResultAttr(
            i, TrainoptDialect::kUpdatesAttrName,
            IntegerAttr::get(n.getType(), n.getInt() + 1));
  return func.getArgument(index);
}

void TrainStepFunction::addResult(Value value, ArrayRef<NamedAttribute> attrs) {
  func::ReturnOp ret = returnOp();
  unsigned n = ret.getNumOperands();
  ret->insertOperands(n, value);
  (void)func.insertResult(n, value.getType(),
                          DictionaryAttr::get(func.getContext(), attrs));
}

void TrainStepFunction::addUpdate(Value value, BlockArgument arg) {
  Builder b(func.getContext());
  addResult(value, {b.getNamedAttr(TrainoptDialect::kUpdatesAttrName,
                                   b.getI64IntegerAttr(arg.getArgNumber()))});
}

void TrainStepFunction::addMetric(Value value, StringRef name) {
  Builder b(func.getContext());
  addResult(value,
            {b.getNamedAttr(TrainoptDialect::kOutputAttrName,
                            b.getStringAttr(name)),
             roleAttr(func.getContext(), ValueRole::metric)});
}

void TrainStepFunction::setResult(unsigned i, Value value) {
  assert(value.getType() == func.getResultTypes()[i] && "result type changes");
  returnOp()->setOperand(i, value);
}

void TrainStepFunction::retypeResult(unsigned i, Value value) {
  returnOp()->setOperand(i, value);
  func.setType(FunctionType::get(func.getContext(), func.getArgumentTypes(),
                                 returnOp().getOperandTypes()));
}

void TrainStepFunction::eraseResults(ArrayRef<unsigned> indices) {
  llvm::BitVector erase(func.getNumResults());
  for (unsigned i : indices)
    erase.set(i);
  returnOp()->eraseOperands(erase);
  (void)func.eraseResults(erase);
}

void TrainStepFunction::sinkMetrics() {
  SmallVector<unsigned> order, metrics;
  for (unsigned i = 0; i < func.getNumResults(); ++i) {
    std::optional<ValueRole> r = resultRole(func, i);
    (r == ValueRole::metric || r == ValueRole::loss ? metrics : order)
        .push_back(i);
  }
  order.append(metrics);
  func::ReturnOp ret = returnOp();
  SmallVector<Value> values;
  SmallVector<Type> types;
  SmallVector<Attribute> attrs;
  for (unsigned i : order) {
    values.push_back(ret.getOperand(i));
    types.push_back(values.back().getType());
    DictionaryAttr d = func.getResultAttrDict(i);
    attrs.push_back(d ? d : DictionaryAttr::get(func.getContext()));
  }
  ret->setOperands(values);
  func.setType(FunctionType::get(func.getContext(), func.getArgumentTypes(),
                                 types));
  func.setAllResultAttrs(attrs);
}

/// Training-mode BatchNorm of `bn` with statistics over a whole
/// data-parallel group (`--sync-bn`): the per-channel sum and sum of squared
/// deviations are all-reduced over `sync`'s grid axes, each through
/// `copy_to_group` so that its VJP sums the ranks' cotangents (every rank's
/// loss depends on every rank's samples), as PyTorch's SyncBatchNorm
/// backward does. Returns y and the new running mean and variance
/// (`momentum` in the ONNX convention, the running variance unbiased over
/// the global count).
static std::array<Value, 3>
syncBatchNormTrain(OpBuilder &b, Location loc, Value x, Value scale, Value bias,
                   Value runningMean, Value runningVar, double epsilon,
                   double momentum, bool unbiasedRunningVar,
                   DictionaryAttr sync) {
  TensorBuilder m(b, loc);
  auto grid = cast<FlatSymbolRefAttr>(sync.get("grid"));
  auto axes = cast<DenseI16ArrayAttr>(sync.get("axes"));
  int64_t ranks = cast<IntegerAttr>(sync.get("ranks")).getInt();
  auto sum =
      CollectiveReductionAttr::get(b.getContext(), CollectiveReduction::sum);
  auto type = cast<RankedTensorType>(x.getType());
  SmallVector<int64_t> reduceAxes, kept(type.getRank(), 1);
  for (int64_t d = 0; d < type.getRank(); ++d)
    if (d != 1)
      reduceAxes.push_back(d);
  kept[1] = type.getDimSize(1);
  auto perChannel = RankedTensorType::get(kept, type.getElementType());
  double count =
      static_cast<double>(type.getNumElements() / type.getDimSize(1) * ranks);
  auto global = [&](Value local) {
    Value whole =
        AllReduceOp::create(b, loc, ValueRange{local}, grid, axes, sum)
            .getResult(0);
    return CopyToGroupOp::create(b, loc, whole, grid, axes).getResult();
  };
  Value mean = m.mul(global(m.sum(x, reduceAxes, false)), 1.0 / count);
  Value centered = m.sub(x, m.reshape(mean, perChannel));
  Value var = m.mul(global(m.sum(m.mul(centered, centered), reduceAxes, false)),
                    1.0 / count);
  Value inv = m.div(m.scalar(var, 1.0), m.sqrt(m.add(var, epsilon)));
  Value y = m.add(m.mul(centered, m.reshape(m.mul(inv, scale), perChannel)),
                  m.reshape(bias, perChannel));
  auto blend = [&](Value running, Value batch) {
    return m.add(m.mul(running, momentum), m.mul(batch, 1.0 - momentum));
  };
  Value folded =
      unbiasedRunningVar ? m.mul(var, count / std::max(count - 1.0, 1.0)) : var;
  return {y, blend(runningMean, mean), blend(runningVar, folded)};
}

//===----------------------------------------------------------------------===//
// trainopt-build-train-step
//===----------------------------------------------------------------------===//

namespace {
/// The seed operand that the training step advances every step: those of
/// trainopt.dropout and trainopt.random; null for other ops.
OpOperand *stepSeed(Operation *op) {
  if (auto dropout = dyn_cast<DropoutOp>(op))
    return &dropout.getSeedMutable();
  if (auto random = dyn_cast<RandomOp>(op))
    return &random.getSeedMutable();
  return nullptr;
}

struct TrainoptBuildTrainStepPass
    : public mlir::trainopt::impl::TrainoptBuildTrainStepBase<
          TrainoptBuildTrainStepPass> {
  using TrainoptBuildTrainStepBase::TrainoptBuildTrainStepBase;
  /// One option, to list all (TrainingPipeline.h).
  const llvm::cl::Option &anyOption() const { return funcName; }

  void runOnOperation() override;
};
} // namespace

void TrainoptBuildTrainStepPass::runOnOperation() {
  ModuleOp module = getOperation();
  MLIRContext *ctx = &getContext();
  auto forward = module.lookupSymbol<func::FuncOp>(funcName);
  if (!forward) {
    module.emitError() << "trainopt-build-train-step: no function @"
                       << funcName;
    return signalPassFailure();
  }
  std::optional<unsigned> lossIndex;
  for (unsigned i = 0; i < forward.getNumResults(); ++i)
    if (resultRole(forward, i) == ValueRole::loss) {
      if (lossIndex) {
        forward.emitError() << "has two results with role loss (" << *lossIndex
                            << " and " << i << "); trainopt trains one";
        return signalPassFailure();
      }
      lossIndex = i;
    }
  if (!lossIndex) {
    forward.emitError() << "has no result with role loss; run "
                           "trainopt-attach-loss (--loss) first";
    return signalPassFailure();
  }
  if (module.lookupSymbol(kTrainStepName)) {
    module.emitError() << "trainopt-build-train-step: the module already has "
                          "a @"
                       << kTrainStepName;
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
  // Loss scaling (trainopt-assign-precision): the gradients are those of
  // loss * scale, an extra argument after the step.
  auto lossScaling = forward->getAttrOfType<DictionaryAttr>(
      TrainoptDialect::kLossScaleAttrName);
  auto f32Scalar = RankedTensorType::get({}, b.getF32Type());
  Value scaleArg;
  if (lossScaling && !isa_and_nonnull<FloatAttr>(lossScaling.get("init"))) {
    forward.emitError() << "'" << TrainoptDialect::kLossScaleAttrName
                        << "' needs a float 'init' (the initial scale)";
    return signalPassFailure();
  }
  if (lossScaling) {
    (void)train.insertArgument(numForwardArgs + 1, f32Scalar,
                               b.getDictionaryAttr({}), train.getLoc());
    scaleArg = tbody.getArgument(numForwardArgs + 1);
  }
  // State updates: forward argument index -> its new value.
  SmallVector<std::pair<unsigned, Value>> stateUpdates;
  // The model's own updates (trainopt.assign), after the BatchNorm pairs.
  SmallVector<std::pair<unsigned, Value>> assigned;
  SmallVector<Operation *> ops;
  for (Operation &op : tbody.without_terminator())
    ops.push_back(&op);
  int64_t seededIndex = 0;
  for (Operation *op : ops) {
    if (auto bn = dyn_cast<BatchNormInferenceOp>(op)) {
      if (bn->hasAttr(kFrozenStatsAttrName))
        continue; // A teacher's: its statistics stay (trainopt-distill).
      auto mean = dyn_cast<BlockArgument>(bn.getMean());
      auto var = dyn_cast<BlockArgument>(bn.getVariance());
      if (!mean || !var || !paramOf(train, mean.getArgNumber()) ||
          !paramOf(train, var.getArgNumber()))
        continue; // Statistics computed in the model stay as they are.
      b.setInsertionPoint(bn);
      std::array<Value, 3> out;
      if (auto sync = bn->getAttrOfType<DictionaryAttr>(kSyncStatsAttrName)) {
        out = syncBatchNormTrain(b, bn.getLoc(), bn.getX(), bn.getScale(),
                                 bn.getBias(), bn.getMean(), bn.getVariance(),
                                 bn.getEpsilon().convertToDouble(),
                                 1.0 - bnMomentum, true, sync);
      } else {
        auto trainBn = BatchNormTrainOp::create(
            b, bn.getLoc(), bn.getX().getType(), bn.getMean().getType(),
            bn.getVariance().getType(), bn.getX(), bn.getScale(), bn.getBias(),
            bn.getMean(), bn.getVariance(), bn.getEpsilonAttr(),
            b.getF64FloatAttr(1.0 - bnMomentum), b.getBoolAttr(true));
        out = {trainBn.getY(), trainBn.getNewRunningMean(),
               trainBn.getNewRunningVar()};
      }
      bn.getY().replaceAllUsesWith(out[0]);
      bn.erase();
      stateUpdates.push_back({mean.getArgNumber(), out[1]});
      stateUpdates.push_back({var.getArgNumber(), out[2]});
    } else if (auto bn = dyn_cast<BatchNormTrainOp>(op)) {
      auto mean = dyn_cast<BlockArgument>(bn.getRunningMean());
      auto var = dyn_cast<BlockArgument>(bn.getRunningVar());
      std::array<Value, 3> out = {bn.getY(), bn.getNewRunningMean(),
                                  bn.getNewRunningVar()};
      if (auto sync = bn->getAttrOfType<DictionaryAttr>(kSyncStatsAttrName)) {
        b.setInsertionPoint(bn);
        out = syncBatchNormTrain(b, bn.getLoc(), bn.getX(), bn.getScale(),
                                 bn.getBias(), bn.getRunningMean(),
                                 bn.getRunningVar(),
                                 bn.getEpsilon().convertToDouble(),
                                 bn.getMomentum().convertToDouble(),
                                 bn.getUnbiasedRunningVar(), sync);
        for (auto [r, v] : llvm::zip(bn->getResults(), out))
          r.replaceAllUsesWith(v);
        bn.erase();
      }
      if (mean && var && paramOf(train, mean.getArgNumber()) &&
          paramOf(train, var.getArgNumber())) {
        stateUpdates.push_back({mean.getArgNumber(), out[1]});
        stateUpdates.push_back({var.getArgNumber(), out[2]});
      }
    } else if (auto assign = dyn_cast<AssignOp>(op)) {
      // The model's own state update (the op's description).
      assigned.push_back({cast<BlockArgument>(assign.getState()).getArgNumber(),
                          assign.getValue()});
      assign.erase();
    } else if (OpOperand *seedOperand = stepSeed(op)) {
      // seed = step * P + (the node's seed + a per-op offset): a new,
      // reproducible draw every step and for every dropout or random op.
      b.setInsertionPoint(op);
      TensorBuilder m(b, op->getLoc());
      Value seed = m.add(
          m.mul(stepArg, 1000003.0),
          m.add(seedOperand->get(), m.scalar(stepArg, 7919.0 * seededIndex++)));
      seedOperand->set(seed);
    }
  }
  // BatchNorm's (mean, var) pairs come first: each gets a counter below.
  size_t batchNormUpdates = stateUpdates.size();
  stateUpdates.append(assigned.begin(), assigned.end());
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
  // What autodiff differentiates: the loss, or the scaled loss (last).
  unsigned differentiated = *lossIndex;
  b.setInsertionPoint(tret);
  if (scaleArg) {
    TensorBuilder tm(b, tret.getLoc());
    Value loss = tresults[*lossIndex];
    differentiated = tresults.size();
    tresults.push_back(
        tm.mul(loss, tm.cast(scaleArg, TensorBuilder::elementType(loss))));
    tresultAttrs.push_back(b.getDictionaryAttr({}));
  }
  func::ReturnOp::create(b, tret.getLoc(), tresults);
  tret.erase();
  train.setType(
      b.getFunctionType(train.getArgumentTypes(),
                        llvm::to_vector(ValueRange(tresults).getTypes())));
  train.setAllResultAttrs(tresultAttrs);

  // 2. Gradients of the trainable parameters.
  FailureOr<func::FuncOp> grad =
      differentiate(train, differentiated, GradientArguments::Trainable,
                    /*keepResults=*/true);
  if (failed(grad))
    return signalPassFailure();
  unsigned numTrainResults = train.getNumResults();


  // 3. @train_step in gradient form.
  // Arguments: @forward's parameters, BatchNorm counters, step, inputs.
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
  // One update counter per BatchNorm (PyTorch's num_batches_tracked), keyed
  // by its running mean; stateUpdates starts with (mean, var) pairs.
  SmallVector<unsigned> counterIndex;
  for (unsigned k = 0; k < batchNormUpdates; k += 2) {
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
  // The loss scale (optimizer state, starting at the configured scale).
  std::optional<unsigned> scaleIndex;
  if (lossScaling) {
    scaleIndex = argTypes.size();
    argTypes.push_back(f32Scalar);
    auto init = cast<FloatAttr>(lossScaling.get("init"));
    argAttrs.push_back(b.getDictionaryAttr(
        {b.getNamedAttr(TrainoptDialect::kStateAttrName,
                        b.getStringAttr("loss_scale")),
         b.getNamedAttr(
             TrainoptDialect::kInitAttrName,
             DenseElementsAttr::get(
                 f32Scalar, static_cast<float>(init.getValueAsDouble()))),
         roleAttr(ctx, ValueRole::optimizer_state)}));
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
  auto step = func::FuncOp::create(b, forward.getLoc(), kTrainStepName,
                                   b.getFunctionType(argTypes, {}));
  symbols.insert(step);
  step.setAllArgAttrs(argAttrs);
  Block *body = step.addEntryBlock();
  b.setInsertionPointToStart(body);
  TensorBuilder m(b, forward.getLoc());
  SmallVector<Value> callArgs;
  for (unsigned i = 0; i < numForwardArgs; ++i)
    callArgs.push_back(body->getArgument(stepIndexOfForwardArg[i]));
  Value stepValue = body->getArgument(stepIndex);
  callArgs.push_back(stepValue);
  if (scaleIndex) {
    callArgs.push_back(body->getArgument(*scaleIndex));
    step->setAttr(TrainoptDialect::kLossScaleAttrName, lossScaling);
  }
  auto call = func::CallOp::create(b, forward.getLoc(), *grad, callArgs);
  func::ReturnOp::create(b, forward.getLoc(), ValueRange{});
  TrainStepFunction sf{step};
  m.b.setInsertionPoint(sf.returnOp());

  // Model state (BatchNorm running statistics and their counters), the
  // step, the loss, then the gradients.
  for (auto [k, update] : llvm::enumerate(stateUpdates))
    sf.addUpdate(call.getResult(forward.getNumResults() + k),
                 body->getArgument(stepIndexOfForwardArg[update.first]));
  for (unsigned c : counterIndex) {
    Value counter = body->getArgument(c);
    sf.addUpdate(m.add(counter, 1.0), body->getArgument(c));
  }
  sf.addUpdate(m.add(stepValue, 1.0), body->getArgument(stepIndex));
  sf.addResult(call.getResult(*lossIndex),
               {b.getNamedAttr(TrainoptDialect::kOutputAttrName,
                               b.getStringAttr("loss")),
                roleAttr(ctx, ValueRole::loss)});
  // The model's own metrics (trainopt-distill's loss terms).
  for (unsigned i = 0; i < forward.getNumResults(); ++i)
    if (resultRole(forward, i) == ValueRole::metric)
      sf.addResult(call.getResult(i), forward.getResultAttrs(i));
  for (auto [t, i] : llvm::enumerate(trainable))
    sf.addResult(call.getResult(numTrainResults + t),
                 {b.getNamedAttr(TrainoptDialect::kGradOfAttrName,
                                 forward.getArgAttr(
                                     i, TrainoptDialect::kParamAttrName)),
                  roleAttr(ctx, ValueRole::gradient)});
}

std::vector<TrainingOption> mlir::trainopt::stage_options::buildTrainStepOptions() {
  TrainoptBuildTrainStepPass pass;
  return passOptionsOf(pass.anyOption(), pass.getArgument());
}

std::optional<WeightUse> mlir::trainopt::weightUseOf(Operation *op) {
  WeightUse w;
  if (auto conv = dyn_cast<ConvOp>(op)) {
    w.operand = &conv.getFilterMutable();
    for (int64_t d = 1, e = TensorBuilder::type(conv.getFilter()).getRank();
         d < e; ++d)
      w.reductionAxes.push_back(d);
    return w;
  }
  auto mm = dyn_cast<MatmulOp>(op);
  if (!mm)
    return std::nullopt;
  w.operand = &mm.getRhsMutable();
  int64_t rank = TensorBuilder::type(mm.getRhs()).getRank();
  w.channelAxis = mm.getTransposeRhs() ? rank - 2 : rank - 1;
  w.reductionAxes.push_back(mm.getTransposeRhs() ? rank - 1 : rank - 2);
  auto t = mm.getRhs().getDefiningOp<TransposeOp>();
  if (t && t->hasOneUse()) {
    w.operand = &t.getXMutable();
    w.transpose = t;
    w.channelAxis = t.getPermutation()[w.channelAxis];
    w.reductionAxes[0] = t.getPermutation()[w.reductionAxes[0]];
  }
  return w;
}

StringAttr mlir::trainopt::trainableParameterOf(ModuleOp module,
                                                func::FuncOp func, Value v) {
  auto arg = dyn_cast<BlockArgument>(v);
  if (!arg || arg.getOwner() != &func.getBody().front())
    return {};
  auto param = func.getArgAttrOfType<FlatSymbolRefAttr>(
      arg.getArgNumber(), TrainoptDialect::kParamAttrName);
  auto declared =
      param ? module.lookupSymbol<ParameterOp>(param.getAttr()) : ParameterOp();
  if (!declared || !declared.getTrainable() ||
      !TensorBuilder::isFloatTensor(v.getType()))
    return {};
  return param.getAttr();
}

FailureOr<BlockArgument>
mlir::trainopt::addModelState(ModuleOp module, func::FuncOp func,
                              StringRef name, ElementsAttr init, StringRef flag,
                              bool trainable) {
  if (module.lookupSymbol(name))
    return func.emitError() << "--" << flag
                            << ": the model already has a parameter named '"
                            << name << "'";
  OpBuilder b(func);
  auto type = cast<RankedTensorType>(init.getType());
  ParameterOp::create(b, func.getLoc(), name, type, trainable, init);
  unsigned index = func.getNumArguments();
  if (failed(func.insertArgument(
          index, type,
          b.getDictionaryAttr({b.getNamedAttr(
              TrainoptDialect::kParamAttrName,
              FlatSymbolRefAttr::get(b.getStringAttr(name)))}),
          func.getLoc())))
    return failure();
  return func.getArgument(index);
}

std::pair<int16_t, int64_t> mlir::trainopt::meshAxis(ModuleOp module,
                                                     StringRef name) {
  auto grid = module.lookupSymbol<shard::GridOp>(kMeshSymbolName);
  auto names =
      grid ? grid->getAttrOfType<ArrayAttr>(TrainoptDialect::kAxesAttrName)
           : ArrayAttr();
  if (!names)
    return {-1, 1};
  for (auto [i, axis] : llvm::enumerate(names.getAsValueRange<StringAttr>()))
    if (axis == name)
      return {static_cast<int16_t>(i), grid.getShape()[i]};
  return {-1, 1};
}

int16_t mlir::trainopt::splitAxis(func::FuncOp f, FlatSymbolRefAttr param) {
  auto [axis, tp] = meshAxis(f->getParentOfType<ModuleOp>(), "tp");
  if (tp <= 1)
    return -1;
  for (unsigned i = 0, e = f.getNumArguments(); i < e; ++i)
    if (f.getArgAttrOfType<FlatSymbolRefAttr>(
            i, TrainoptDialect::kParamAttrName) == param)
      if (auto sharding = f.getArgAttrOfType<StringAttr>(
              i, TrainoptDialect::kShardingAttrName);
          sharding && sharding.getValue().starts_with("tp:"))
        return axis;
  return -1;
}

Value mlir::trainopt::sumOverParameter(TensorBuilder &m, func::FuncOp f,
                                       FlatSymbolRefAttr param, Value local) {
  int16_t axis = splitAxis(f, param);
  return axis < 0 ? local : sumOverMeshAxis(m, local, axis);
}

Value mlir::trainopt::sumOverMeshAxis(TensorBuilder &m, Value v, int16_t axis) {
  MLIRContext *ctx = m.b.getContext();
  return AllReduceOp::create(
             m.b, ValueRange{v}, FlatSymbolRefAttr::get(ctx, kMeshSymbolName),
             m.b.getDenseI16ArrayAttr({axis}),
             CollectiveReductionAttr::get(ctx, CollectiveReduction::sum))
      .getResult(0);
}

bool mlir::trainopt::isElementwise(Operation *op) {
  return op->getNumResults() == 1 && op->getNumRegions() == 0 &&
         (op->hasTrait<OpTrait::Elementwise>() ||
          isa<AddOp, SubOp, MulOp, DivOp, PowOp, MaxOp, MinOp, WhereOp, AndOp,
              OrOp, XorOp, EqualOp, LessOp, LessEqualOp, GreaterOp,
              GreaterEqualOp, ClipOp>(op));
}
