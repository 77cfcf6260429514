//===- Prune.cpp - pruning masks updated by the model ---------------------===//
//
/// \file
/// `trainopt-prune` (Passes.td): every use of a convolution's or matmul's
/// trainable weight reads the weight times a mask; the mask is model state
/// that the model recomputes from the pruned weights' magnitudes at the
/// schedule's steps (`trainopt.kth_smallest` for the thresholds) and stores
/// with `trainopt.assign`.
//
//===----------------------------------------------------------------------===//

#include "trainopt/Dialect/Trainopt/IR/TensorBuilder.h"
#include "trainopt/Dialect/Trainopt/Transforms/Passes.h"
#include "trainopt/Dialect/Trainopt/Transforms/TrainStep.h"
#include "trainopt/Dialect/Trainopt/Transforms/TrainingPipeline.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/IR/Builders.h"
#include "llvm/ADT/SetVector.h"
#include "llvm/Support/FormatVariadic.h"
#include "llvm/Support/GlobPattern.h"

#include <cmath>

namespace mlir::trainopt {
#define GEN_PASS_DEF_TRAINOPTPRUNE
#include "trainopt/Dialect/Trainopt/Transforms/Passes.h.inc"
} // namespace mlir::trainopt

using namespace mlir;
using namespace mlir::trainopt;

namespace {

/// The step counter's parameter name.
constexpr llvm::StringLiteral kStepName = "prune.step";

/// What `prune` asks for.
struct Method {
  enum Kind { Magnitude, Channel, NOfM } kind = Magnitude;
  /// The sparsity (magnitude) or the fraction of channels (channel).
  double amount = 0;
  /// N:M: keep n of every m.
  int64_t n = 0, m = 0;
  std::string name() const {
    switch (kind) {
    case Magnitude:
      return "magnitude";
    case Channel:
      return "channel_l1";
    case NOfM:
      return llvm::formatv("{0}:{1}", n, m).str();
    }
    return "";
  }
};

/// When masks change.
struct Schedule {
  bool gradual = false;
  int64_t start = 0, end = 0, every = 1;
  /// --prune-iterative: this many prune-retrain rounds over START..END
  /// (gradual's window), 0 for the cubic ramp.
  int64_t rounds = 0;
};

/// One pruned weight: its argument and name, and the axes of its use.
struct Site {
  BlockArgument weight;
  StringAttr name;
  Location loc;
  /// The output-channel axis of the stored weight.
  int64_t channelAxis;
  /// The axes the op sums over (the reduction of its matmul form).
  SmallVector<int64_t> reductionAxes;
};

struct TrainoptPrunePass
    : public mlir::trainopt::impl::TrainoptPruneBase<TrainoptPrunePass> {
  using TrainoptPruneBase::TrainoptPruneBase;
  /// One option, to list all (TrainingPipeline.h).
  const llvm::cl::Option &anyOption() const { return prune; }

  void runOnOperation() override;

private:
  LogicalResult parse(ModuleOp module);
  /// N:M's new mask of `site` from its `scores` (|weight * mask|): the N
  /// largest of every M consecutive along the reduction axes stay.
  FailureOr<Value> nOfMMask(TensorBuilder &m, const Site &site, Value scores);

  Method method;
  Schedule schedule;
};

/// A non-negative integer, or failure.
FailureOr<int64_t> parseCount(StringRef s) {
  int64_t v;
  if (s.trim().getAsInteger(10, v) || v < 0)
    return failure();
  return v;
}

} // namespace

LogicalResult TrainoptPrunePass::parse(ModuleOp module) {
  auto bad = [&](StringRef flag, const Twine &why) {
    return module.emitError() << "--" << flag << ": " << why;
  };
  if (prune == "off") {
    const llvm::cl::Option *given[] = {&scope, &scheduleSpec, &iterative};
    for (const llvm::cl::Option *o : given)
      if (o->getNumOccurrences())
        return bad(o->ArgStr, "needs --prune");
    if (!exclude.empty())
      return bad("prune-exclude", "needs --prune");
    return success();
  }
  StringRef spec = prune;
  auto fraction = [&](StringRef text, StringRef what) -> LogicalResult {
    if (text.trim().getAsDouble(method.amount) ||
        !(method.amount >= 0.0 && method.amount < 1.0))
      return bad("prune", "the " + what + " must be a number in [0, 1), got '" +
                              text + "'");
    return success();
  };
  if (spec.consume_front("magnitude:")) {
    method.kind = Method::Magnitude;
    if (failed(fraction(spec, "sparsity")))
      return failure();
  } else if (spec.consume_front("channel:")) {
    method.kind = Method::Channel;
    if (!spec.consume_front("l1:"))
      return bad("prune", "channel pruning ranks by the L1 norm: "
                          "channel:l1:FRACTION, got '" +
                              prune + "'");
    if (failed(fraction(spec, "fraction of channels")))
      return failure();
  } else {
    auto [n, m] = spec.split(':');
    FailureOr<int64_t> keep = parseCount(n), group = parseCount(m);
    if (failed(keep) || failed(group) || m.empty())
      return bad("prune", "must be off, magnitude:SPARSITY, "
                          "channel:l1:FRACTION or N:M, got '" +
                              prune + "'");
    if (*group < 2 || *keep < 1 || *keep >= *group)
      return bad("prune", "N:M keeps N of every M weights, 1 <= N < M, got '" +
                              prune + "'");
    method.kind = Method::NOfM;
    method.n = *keep, method.m = *group;
  }
  if (scope != "layer" && scope != "global")
    return bad("prune-scope", "must be layer or global, got '" + scope + "'");
  if (scope == "global" && method.kind != Method::Magnitude)
    return bad("prune-scope",
               "global applies to magnitude pruning only, not '" + prune + "'");

  StringRef when = scheduleSpec;
  if (when == "oneshot" || when.consume_front("oneshot:")) {
    if (when != "oneshot") {
      FailureOr<int64_t> at = parseCount(when);
      if (failed(at))
        return bad("prune-schedule", "oneshot:STEP needs a step >= 0, got '" +
                                         scheduleSpec + "'");
      schedule.start = schedule.end = *at;
    }
  } else if (when.consume_front("gradual:")) {
    SmallVector<StringRef> parts;
    when.split(parts, ',');
    SmallVector<int64_t> v;
    for (StringRef p : parts)
      if (FailureOr<int64_t> x = parseCount(p); succeeded(x))
        v.push_back(*x);
    if (iterative > 0) {
      // The rounds take the ramp's place: START..END holds them.
      if (parts.size() != 2 || v.size() != 2 || v[0] >= v[1])
        return bad("prune-schedule",
                   "with --prune-iterative, gradual:START,END (0 <= START < "
                   "END) spreads the rounds over START..END, got '" +
                       scheduleSpec + "'");
      v.push_back(1);
    } else if (parts.size() != 3 || v.size() != 3 || v[0] >= v[1] || v[2] < 1) {
      return bad("prune-schedule",
                 "gradual:START,END,EVERY needs 0 <= START < END and "
                 "EVERY >= 1, got '" +
                     scheduleSpec + "'");
    }
    if (method.kind == Method::NOfM)
      return bad("prune-schedule", "N:M pruning has no sparsity to ramp: use "
                                   "oneshot[:STEP]");
    schedule = {true, v[0], v[1], v[2], 0};
  } else {
    return bad("prune-schedule",
               "must be oneshot, oneshot:STEP or gradual:START,END,EVERY, "
               "got '" + scheduleSpec + "'");
  }
  if (iterative.getNumOccurrences()) {
    if (iterative < 2)
      return bad("prune-iterative",
                 "needs 2 or more rounds, got " + std::to_string(iterative));
    if (!schedule.gradual)
      return bad("prune-iterative",
                 "needs --prune-schedule=gradual:START,END, the steps its "
                 "rounds are spread over");
    if (iterative - 1 > schedule.end - schedule.start)
      return bad("prune-iterative",
                 std::to_string(iterative) + " rounds need " +
                     std::to_string(iterative - 1) +
                     " steps between START and END at least");
    schedule.rounds = iterative;
  }
  for (const std::string &p : exclude)
    if (!llvm::GlobPattern::create(p))
      return bad("prune-exclude", "'" + p + "' is not a valid glob");
  for (StringRef axis : {"tp", "pp"})
    if (meshAxis(module, axis).second > 1)
      return bad("prune", "pruning with " + axis +
                              " > 1 in --mesh is not supported yet");
  return success();
}

FailureOr<Value> TrainoptPrunePass::nOfMMask(TensorBuilder &m,
                                             const Site &site, Value scores) {
  RankedTensorType type = TensorBuilder::type(scores);
  // Move the reduction axes last: [kept..., reduced...] -> [P, R/M, M].
  SmallVector<int64_t> perm, transposed;
  int64_t kept = 1, reduced = 1;
  for (int64_t d = 0, e = type.getRank(); d < e; ++d)
    if (!llvm::is_contained(site.reductionAxes, d))
      perm.push_back(d), kept *= type.getDimSize(d);
  for (int64_t d : site.reductionAxes)
    perm.push_back(d), reduced *= type.getDimSize(d);
  if (reduced % method.m)
    return mlir::emitError(site.loc)
           << "--prune=" << prune << ": weight '" << site.name.getValue()
           << "' has " << reduced
           << " weights per output along its reduction axes, not a multiple "
              "of "
           << method.m << " (leave it dense with --prune-exclude)";
  for (int64_t d : perm)
    transposed.push_back(type.getDimSize(d));
  bool identity = llvm::equal(perm, llvm::seq<int64_t>(0, type.getRank()));
  Type elt = type.getElementType();
  int64_t groups = reduced / method.m, gm = method.m;
  Value s = identity ? scores
                     : Value(TransposeOp::create(m.b, scores, perm));
  Value rows = m.reshape(s, RankedTensorType::get({kept, groups, gm, 1}, elt));
  Value cols = m.reshape(s, RankedTensorType::get({kept, groups, 1, gm}, elt));
  // beats[i][j]: weight j of the group ranks above weight i (larger, or
  // equal and first).
  SmallVector<bool> before;
  for (int64_t i = 0; i < gm; ++i)
    for (int64_t j = 0; j < gm; ++j)
      before.push_back(j < i);
  auto boolType = RankedTensorType::get({gm, gm}, m.b.getI1Type());
  Value earlier = ConstantOp::create(
      m.b, DenseElementsAttr::get(boolType, ArrayRef<bool>(before)));
  Value beats = OrOp::create(
      m.b, m.greater(cols, rows),
      m.logicalAnd(m.equal(cols, rows), earlier));
  Value rank = m.sum(m.asFloat(beats, scores), {3}, false);
  Value keep = m.asFloat(m.less(rank, m.scalar(elt, method.n)), scores);
  Value back = m.reshape(keep, RankedTensorType::get(transposed, elt));
  if (identity)
    return back;
  SmallVector<int64_t> inverse(perm.size());
  for (auto [i, d] : llvm::enumerate(perm))
    inverse[d] = i;
  return Value(TransposeOp::create(m.b, back, inverse));
}

void TrainoptPrunePass::runOnOperation() {
  ModuleOp module = getOperation();
  if (failed(parse(module)))
    return signalPassFailure();
  if (prune == "off")
    return;
  auto func = module.lookupSymbol<func::FuncOp>(funcName);
  if (!func || func.isExternal()) {
    module.emitError() << getArgument() << ": no function @" << funcName;
    return signalPassFailure();
  }
  if (module.lookupSymbol(kStepName)) {
    func.emitError() << "--prune: the model is already pruned (it has a "
                        "parameter @"
                     << kStepName << ")";
    return signalPassFailure();
  }
  SmallVector<llvm::GlobPattern> excluded;
  for (const std::string &p : exclude)
    excluded.push_back(*llvm::GlobPattern::create(p));
  Block &body = func.getBody().front();

  auto weightName = [&](Value v) {
    return trainableParameterOf(module, func, v);
  };

  // The weights (weightUseOf), also through trainopt-quantize's
  // fake_quant.
  SmallVector<Site> sites;
  llvm::SmallDenseSet<Value> seen;
  // Channel pruning leaves the layers that produce the model's outputs
  // (the logits' classes) dense: the convolutions and matmuls reached
  // from the return without passing through another. BatchNorm running
  // statistics a training-mode export returns, and features returned for
  // distillation, are not such outputs.
  llvm::SmallPtrSet<Operation *, 4> outputLayers;
  if (method.kind == Method::Channel) {
    SmallVector<Value> work;
    for (OpOperand &r : body.getTerminator()->getOpOperands())
      if (!func.getResultAttr(r.getOperandNumber(),
                              TrainoptDialect::kFeatureAttrName))
        work.push_back(r.get());
    llvm::SmallDenseSet<Value> visited;
    while (!work.empty()) {
      Value v = work.pop_back_val();
      Operation *def = v.getDefiningOp();
      if (!def || !visited.insert(v).second)
        continue;
      if (auto bn = dyn_cast<BatchNormTrainOp>(def); bn && v != bn.getY())
        continue;
      if (isa<ConvOp, MatmulOp>(def))
        outputLayers.insert(def);
      else
        work.append(def->operand_begin(), def->operand_end());
    }
  }
  func.walk([&](Operation *op) {
    if (outputLayers.contains(op))
      return;
    std::optional<WeightUse> use = weightUseOf(op);
    if (!use)
      return;
    // After trainopt-quantize, the weight is fake-quantized there.
    Value w = use->operand->get();
    if (auto q = w.getDefiningOp<FakeQuantOp>())
      w = q.getX();
    StringAttr name = weightName(w);
    if (!name || seen.contains(w) ||
        llvm::any_of(excluded, [&](const llvm::GlobPattern &g) {
          return g.match(name.getValue());
        }))
      return;
    seen.insert(w);
    sites.push_back({cast<BlockArgument>(w), name, op->getLoc(),
                     use->channelAxis, use->reductionAxes});
  });
  if (sites.empty()) {
    func.emitError() << "--prune: the model has no convolution or matmul with "
                        "a trainable weight to prune";
    return signalPassFailure();
  }

  OpBuilder b(&getContext());
  b.setInsertionPointToStart(&body);
  TensorBuilder m(b, func.getLoc());
  auto i64 = RankedTensorType::get({}, b.getI64Type());
  FailureOr<BlockArgument> counter = addModelState(
      module, func, kStepName,
      DenseElementsAttr::get(i64, b.getIntegerAttr(b.getI64Type(), 0)),
      "prune");
  if (failed(counter))
    return signalPassFailure();
  Value step = *counter;

  // The schedule, in f64: whether this step updates, and the target.
  Type f64 = b.getF64Type();
  Value update, amount;
  if (!schedule.gradual) {
    update = m.equal(step, m.scalar(b.getI64Type(), schedule.start));
  } else {
    Value t = m.cast(step, f64);
    auto at = [&](int64_t v) { return m.scalar(f64, static_cast<double>(v)); };
    Value since = m.sub(t, at(schedule.start));
    Value span = at(schedule.end - schedule.start);
    Value every = at(schedule.every);
    Value onGrid = m.equal(m.mul(m.floor(m.div(since, every)), every), since);
    Value inside = m.logicalAnd(m.greaterEqual(t, at(schedule.start)),
                                m.lessEqual(t, at(schedule.end)));
    update = m.logicalAnd(
        inside, OrOp::create(m.b, onGrid, m.equal(t, at(schedule.end))));
    Value frac = m.min(m.max(m.div(since, span), m.scalar(f64, 0.0)),
                       m.scalar(f64, 1.0));
    Value left = m.sub(m.scalar(f64, 1.0), frac);
    amount = m.mul(m.sub(m.scalar(f64, 1.0), m.mul(m.mul(left, left), left)),
                   method.amount);
    if (schedule.rounds) {
      // Round r (0 .. R-1) at START + r P, P = (END - START) / (R - 1)
      // rounded down, the last at END; each prunes the same fraction of
      // the weights left: the sparsity after round r is
      // 1 - (1 - S)^((r + 1) / R).
      double rounds = static_cast<double>(schedule.rounds);
      Value period =
          at((schedule.end - schedule.start) / (schedule.rounds - 1));
      Value r = m.min(m.floor(m.div(since, period)), m.scalar(f64, rounds - 1));
      Value onRound = m.equal(m.mul(r, period), since);
      update = m.logicalAnd(
          inside, OrOp::create(m.b, onRound, m.equal(t, at(schedule.end))));
      r = m.where(m.equal(t, at(schedule.end)), m.scalar(f64, rounds - 1), r);
      amount =
          m.sub(m.scalar(f64, 1.0), m.pow(m.scalar(f64, 1.0 - method.amount),
                                          m.mul(m.add(r, 1.0), 1.0 / rounds)));
    }
  }
  // How many of `n` to prune now: round(amount * n), half to even as
  // Python's round in torch.nn.utils.prune; 0 when not updating, which
  // makes kth_smallest cheap.
  auto countOf = [&](int64_t n) {
    Type i64 = b.getI64Type();
    if (!schedule.gradual)
      return m.where(
          update,
          m.scalar(i64, std::nearbyint(method.amount * static_cast<double>(n))),
          m.scalar(i64, 0));
    Value k = m.roundHalfEven(m.mul(amount, static_cast<double>(n)));
    return m.cast(m.where(update, k, m.scalar(f64, 0.0)), i64);
  };

  // Masks and scores, per site.
  SmallVector<Value> oldMasks, scores;
  llvm::SetVector<Operation *> own;
  auto track = [&](Value v) {
    if (Operation *op = v.getDefiningOp())
      own.insert(op);
    return v;
  };
  SmallVector<Attribute> records;
  for (const Site &site : sites) {
    auto type = cast<RankedTensorType>(site.weight.getType());
    std::string maskName = (site.name.getValue() + ".prune_mask").str();
    FailureOr<BlockArgument> mask = addModelState(
        module, func, maskName,
        DenseElementsAttr::get(type, b.getFloatAttr(type.getElementType(), 1.0)),
        "prune");
    if (failed(mask))
      return signalPassFailure();
    oldMasks.push_back(*mask);
    scores.push_back(AbsOp::create(m.b, track(m.mul(site.weight, *mask))));
    records.push_back(b.getDictionaryAttr(
        {b.getNamedAttr("weight", site.name),
         b.getNamedAttr("mask", b.getStringAttr(maskName)),
         b.getNamedAttr("method", b.getStringAttr(method.name())),
         b.getNamedAttr("sparsity",
                        b.getF64FloatAttr(method.kind == Method::NOfM
                                              ? 1.0 - double(method.n) /
                                                          double(method.m)
                                              : method.amount))}));
  }

  // The new masks: 1 where a score is above its threshold.
  auto above = [&](Value scores, Value threshold) {
    return m.asFloat(m.greater(scores, threshold), scores);
  };
  SmallVector<Value> newMasks;
  if (method.kind == Method::Magnitude && scope == "global") {
    SmallVector<Value> flat;
    int64_t total = 0;
    for (Value s : scores) {
      RankedTensorType type = TensorBuilder::type(s);
      total += type.getNumElements();
      flat.push_back(m.reshape(
          s, RankedTensorType::get({type.getNumElements()},
                                   type.getElementType())));
    }
    Value all = flat.size() == 1 ? flat[0]
                                 : Value(ConcatOp::create(m.b, flat, 0));
    Value threshold = KthSmallestOp::create(m.b, all, countOf(total));
    for (Value s : scores)
      newMasks.push_back(above(s, threshold));
  } else {
    for (auto [site, s] : llvm::zip(sites, scores)) {
      RankedTensorType type = TensorBuilder::type(s);
      if (method.kind == Method::Magnitude) {
        Value threshold =
            KthSmallestOp::create(m.b, s, countOf(type.getNumElements()));
        newMasks.push_back(above(s, threshold));
      } else if (method.kind == Method::Channel) {
        SmallVector<int64_t> others, keptShape(type.getRank(), 1);
        for (int64_t d = 0, e = type.getRank(); d < e; ++d)
          if (d != site.channelAxis)
            others.push_back(d);
        int64_t channels = type.getDimSize(site.channelAxis);
        keptShape[site.channelAxis] = channels;
        Value norms = m.sum(s, others, false);
        Value threshold = KthSmallestOp::create(m.b, norms, countOf(channels));
        Value keep = above(norms, threshold);
        keep = m.reshape(keep, RankedTensorType::get(keptShape,
                                                     type.getElementType()));
        newMasks.push_back(m.broadcast(keep, type));
      } else {
        FailureOr<Value> mask = nOfMMask(m, site, s);
        if (failed(mask))
          return signalPassFailure();
        newMasks.push_back(*mask);
      }
    }
  }

  // Every other use of a weight reads it masked.
  SmallVector<std::pair<Value, Value>> assigns;
  for (auto [site, old, fresh] : llvm::zip(sites, oldMasks, newMasks)) {
    Value mask = m.where(update, fresh, old);
    assigns.push_back({old, mask});
    Value pruned = track(m.mul(site.weight, mask));
    site.weight.replaceUsesWithIf(pruned, [&](OpOperand &use) {
      return !own.contains(use.getOwner());
    });
  }
  b.setInsertionPoint(body.getTerminator());
  for (auto [state, value] : assigns)
    AssignOp::create(b, func.getLoc(), state, value);
  AssignOp::create(b, func.getLoc(), step,
                   m.add(step, m.scalar(b.getI64Type(), 1)));
  module->setAttr(TrainoptDialect::kPruningAttrName, b.getArrayAttr(records));
}

std::vector<TrainingOption> mlir::trainopt::stage_options::pruneOptions() {
  TrainoptPrunePass pass;
  return passOptionsOf(pass.anyOption(), pass.getArgument());
}
