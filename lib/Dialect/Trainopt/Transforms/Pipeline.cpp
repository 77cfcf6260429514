//===- Pipeline.cpp - pipeline parallelism: stages and the 1F1B schedule --===//
//
/// \file
/// `trainopt-split-pipeline` keeps one stage of the model function;
/// `trainopt-schedule-pipeline` runs that stage's step over micro-batches
/// in the one-forward-one-backward order, with sends and receives between
/// the stages (docs/distributed.md, "Pipeline parallelism").
//
//===----------------------------------------------------------------------===//

#include "trainopt/Dialect/Trainopt/IR/TensorBuilder.h"
#include "trainopt/Dialect/Trainopt/IR/TrainoptOps.h"
#include "trainopt/Dialect/Trainopt/Transforms/Passes.h"
#include "trainopt/Dialect/Trainopt/Transforms/TrainStep.h"
#include "trainopt/Dialect/Trainopt/Transforms/TrainingPipeline.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/Dialect/Shard/IR/ShardOps.h"
#include "mlir/IR/IRMapping.h"
#include "llvm/ADT/BitVector.h"
#include "llvm/ADT/SetVector.h"

#include <set>

namespace mlir::trainopt {
#define GEN_PASS_DEF_TRAINOPTSPLITPIPELINE
#define GEN_PASS_DEF_TRAINOPTSCHEDULEPIPELINE
#include "trainopt/Dialect/Trainopt/Transforms/Passes.h.inc"
} // namespace mlir::trainopt

using namespace mlir;
using namespace mlir::trainopt;

namespace {

/// Estimated FLOPs of a model op, to balance the stages: a multiply-add per
/// product term for matmuls and convolutions, one per result element else.
double opFlops(Operation *op) {
  double out = 0;
  for (Value r : op->getResults())
    if (auto t = dyn_cast<RankedTensorType>(r.getType()))
      out += static_cast<double>(t.getNumElements());
  if (auto mm = dyn_cast<MatmulOp>(op)) {
    auto lhs = cast<RankedTensorType>(mm.getLhs().getType());
    int64_t k = lhs.getDimSize(lhs.getRank() - (mm.getTransposeLhs() ? 2 : 1));
    return 2 * out * static_cast<double>(k);
  }
  if (auto conv = dyn_cast<ConvOp>(op)) {
    auto w = cast<RankedTensorType>(conv.getFilter().getType());
    return 2 * out *
           static_cast<double>(w.getNumElements() /
                               std::max<int64_t>(w.getDimSize(0), 1));
  }
  return out;
}

bool isFloatTensor(Value v) {
  return isa<RankedTensorType>(v.getType()) &&
         isa<FloatType>(getElementTypeOrSelf(v.getType()));
}

struct TrainoptSplitPipelinePass
    : public mlir::trainopt::impl::TrainoptSplitPipelineBase<
          TrainoptSplitPipelinePass> {
  using TrainoptSplitPipelineBase::TrainoptSplitPipelineBase;
  /// One option, to list all (TrainingPipeline.h).
  const llvm::cl::Option &anyOption() const { return stage; }

  void runOnOperation() override {
    ModuleOp module = getOperation();
    auto [axis, stages] = meshAxis(module, "pp");
    auto bad = [&](const Twine &why) {
      module.emitError() << getArgument() << ": " << why;
      signalPassFailure();
    };
    if (stages == 1) {
      if (stage != 0)
        return bad("--pipeline-stage=" + Twine(stage) +
                   " needs a mesh with a pp axis");
      return;
    }
    if (stage < 0 || stage >= stages)
      return bad("--pipeline-stage=" + Twine(stage) + " is not a stage of pp=" +
                 Twine(stages) + " (0 to " + Twine(stages - 1) + ")");
    auto f = module.lookupSymbol<func::FuncOp>(funcName);
    if (!f || f.isExternal())
      return bad("no function @" + funcName);
    if (f->hasAttr(TrainoptDialect::kLossScaleAttrName))
      return bad("loss scaling (--amp=fp16) with pipeline parallelism is not "
                 "implemented yet; use --amp=bf16");
    Block &body = f.getBody().front();
    auto ret = cast<func::ReturnOp>(body.getTerminator());
    SmallVector<Operation *> ops;
    for (Operation &op : body.without_terminator())
      ops.push_back(&op);
    int64_t n = static_cast<int64_t>(ops.size());
    llvm::DenseMap<Operation *, int64_t> index;
    for (auto [i, op] : llvm::enumerate(ops))
      index[op] = static_cast<int64_t>(i);

    // Live activations at each boundary p (between ops p - 1 and p): values
    // of non-constant ops before p read at or after p (the return is n).
    SmallVector<int64_t> liveCount(n + 2, 0);
    SmallVector<std::pair<int64_t, int64_t>> spans;
    SmallVector<Value> spanValue;
    for (Operation *op : ops) {
      if (isa<ConstantOp>(op))
        continue;
      // A model result (such as a BatchNorm's new running statistics) is
      // returned by the stage that computes it: only ops' reads count.
      for (Value r : op->getResults()) {
        int64_t last = -1;
        for (Operation *user : r.getUsers())
          if (user != ret)
            last = std::max(last, index.lookup(user));
        if (last > index[op]) {
          spans.push_back({index[op] + 1, last});
          spanValue.push_back(r);
          liveCount[index[op] + 1] += 1;
          liveCount[last + 1] -= 1;
        }
      }
    }
    // Layer boundaries only: the ops of one ONNX node (one location, as a
    // Gemm's matmul and bias add) stay in one stage.
    llvm::DenseMap<Location, std::pair<int64_t, int64_t>> nodeSpan;
    for (auto [i, op] : llvm::enumerate(ops)) {
      // An ONNX node's ops carry its name; ops the passes add do not.
      if (isa<ConstantOp>(op) || !isa<NameLoc>(op->getLoc()))
        continue;
      auto [it, fresh] = nodeSpan.try_emplace(
          op->getLoc(), std::make_pair(int64_t(i), int64_t(i)));
      if (!fresh)
        it->second.second = static_cast<int64_t>(i);
    }
    SmallVector<int64_t> insideNode(n + 2, 0);
    for (auto &entry : nodeSpan) {
      insideNode[entry.second.first + 1] += 1;
      insideNode[entry.second.second + 1] -= 1;
    }
    SmallVector<int64_t> candidates;
    for (int64_t p = 1, count = 0, inside = 0; p < n; ++p) {
      count += liveCount[p];
      inside += insideNode[p];
      if (count == 1 && inside == 0)
        candidates.push_back(p);
      if (getenv("PPDEBUG") && count <= 2)
        llvm::errs() << "p " << p << " count " << count << " inside " << inside
                     << " " << ops[p - 1]->getName() << ops[p - 1]->getLoc()
                     << "\n";
    }
    auto liveAt = [&](int64_t p) {
      for (auto [span, v] : llvm::zip(spans, spanValue))
        if (span.first <= p && p <= span.second)
          return v;
      return Value();
    };
    llvm::erase_if(candidates,
                   [&](int64_t p) { return !isFloatTensor(liveAt(p)); });
    if (getenv("PPDEBUG"))
      for (int64_t p : candidates)
        llvm::errs() << "cand " << p << " " << ops[p - 1]->getName() << " "
                     << ops[p - 1]->getLoc() << "\n";
    if (static_cast<int64_t>(candidates.size()) < stages - 1)
      return bad("pp=" + Twine(stages) + " needs " + Twine(stages - 1) +
                 " layer boundaries (points where one activation is live); @" +
                 funcName + " has " + Twine(candidates.size()));

    // The cuts: the candidate nearest k/K of the FLOPs, in order.
    SmallVector<double> prefix(n + 1, 0.0);
    for (auto [i, op] : llvm::enumerate(ops))
      prefix[i + 1] = prefix[i] + opFlops(op);
    SmallVector<int64_t> cuts = {0};
    size_t next = 0;
    for (int64_t k = 1; k < stages; ++k) {
      double target =
          prefix[n] * static_cast<double>(k) / static_cast<double>(stages);
      // Leave enough candidates for the cuts still to come.
      size_t lastAllowed = candidates.size() - static_cast<size_t>(stages - k);
      size_t best = next;
      for (size_t c = next; c <= lastAllowed; ++c)
        if (std::abs(prefix[candidates[c]] - target) <
            std::abs(prefix[candidates[best]] - target))
          best = c;
      cuts.push_back(candidates[best]);
      next = best + 1;
    }
    cuts.push_back(n);
    int64_t begin = cuts[stage], end = cuts[stage + 1];

    // A parameter read by two stages (tied weights) cannot be split.
    auto stageOf = [&](Operation *op) {
      int64_t i = index.lookup(op);
      return static_cast<int64_t>(llvm::upper_bound(cuts, i) - cuts.begin()) -
             1;
    };
    for (BlockArgument arg : f.getArguments()) {
      auto param = f.getArgAttrOfType<FlatSymbolRefAttr>(
          arg.getArgNumber(), TrainoptDialect::kParamAttrName);
      if (!param)
        continue;
      std::set<int64_t> readers;
      for (Operation *user : arg.getUsers())
        if (user != ret && !isa<ConstantOp>(user))
          readers.insert(stageOf(user));
      if (readers.size() > 1)
        return bad("parameter '" + param.getValue() + "' is read by stages " +
                   Twine(*readers.begin()) + " and " + Twine(*readers.rbegin()) +
                   " (tied weights); pipeline stages cannot share a "
                   "parameter");
    }

    OpBuilder b(&getContext());
    MLIRContext *ctx = &getContext();
    // The whole model's results, which every stage's eval step returns:
    // their types, attributes, how micro-batches combine them ("batch":
    // concatenated along dim 0, "mean": averaged, "last": the last
    // micro-batch's, for values the batch does not change), and the stage
    // that computes each (an argument passed through: the last).
    llvm::DenseSet<Value> fromBatch;
    for (BlockArgument arg : f.getArguments())
      if (f.getArgAttr(arg.getArgNumber(), TrainoptDialect::kInputAttrName))
        fromBatch.insert(arg);
    int64_t microBatch = -1;
    for (Value v : fromBatch)
      microBatch = cast<RankedTensorType>(v.getType()).getDimSize(0);
    for (Operation *op : ops)
      if (llvm::any_of(op->getOperands(),
                       [&](Value v) { return fromBatch.contains(v); }))
        fromBatch.insert(op->result_begin(), op->result_end());
    SmallVector<Attribute> resultTypes, resultAttrs, resultKinds;
    SmallVector<int64_t> resultStage;
    for (unsigned i = 0; i < f.getNumResults(); ++i) {
      Value v = ret.getOperand(i);
      auto t = cast<RankedTensorType>(v.getType());
      resultTypes.push_back(TypeAttr::get(t));
      DictionaryAttr d = f.getResultAttrDict(i);
      resultAttrs.push_back(d ? d : b.getDictionaryAttr({}));
      StringRef kind = !fromBatch.contains(v)          ? "last"
                       : t.getRank() == 0              ? "mean"
                       : t.getDimSize(0) == microBatch ? "batch"
                                                       : "last";
      resultKinds.push_back(b.getStringAttr(kind));
      Operation *def = v.getDefiningOp();
      resultStage.push_back(def && index.count(def) ? stageOf(def)
                                                    : stages - 1);
    }
    SmallVector<Attribute> cutAttrs;
    for (int64_t c : cuts)
      cutAttrs.push_back(b.getI64IntegerAttr(c));
    f->setAttr(
        TrainoptDialect::kPipelineAttrName,
        b.getDictionaryAttr(
            {b.getNamedAttr("stage", b.getI64IntegerAttr(stage)),
             b.getNamedAttr("stages", b.getI64IntegerAttr(stages)),
             b.getNamedAttr("axis", b.getI64IntegerAttr(axis)),
             b.getNamedAttr("cuts", b.getArrayAttr(cutAttrs)),
             b.getNamedAttr("result_types", b.getArrayAttr(resultTypes)),
             b.getNamedAttr("result_attrs", b.getArrayAttr(resultAttrs)),
             b.getNamedAttr("result_kinds", b.getArrayAttr(resultKinds)),
             b.getNamedAttr("result_stages", b.getI64ArrayAttr(resultStage))}));

    // Constants the stage reads from before it are copied into it.
    b.setInsertionPoint(begin < n ? ops[begin] : ret.getOperation());
    for (int64_t i = begin; i < end; ++i)
      for (OpOperand &use : ops[i]->getOpOperands())
        if (auto c = use.get().getDefiningOp<ConstantOp>();
            c && index.lookup(c) < begin)
          use.set(b.clone(*c)->getResult(0));
    // A new last argument like `v`, marked `trainopt.pipeline = kind`.
    auto pipelineArgument = [&](Value v, StringRef kind) {
      unsigned at = f.getNumArguments();
      (void)f.insertArgument(
          at, v.getType(),
          b.getDictionaryAttr({b.getNamedAttr(
              TrainoptDialect::kPipelineAttrName, b.getStringAttr(kind))}),
          v.getLoc());
      return body.getArgument(at);
    };
    // The input activation.
    if (stage > 0) {
      Value in = liveAt(begin);
      in.replaceUsesWithIf(pipelineArgument(in, "in"), [&](OpOperand &use) {
        Operation *user = use.getOwner();
        return user == ret || index.lookup(user) >= begin;
      });
    }
    // The stage's results: its own model results; before the last stage,
    // first the output activation and the loss that seeds the backward
    // with the output's cotangent.
    SmallVector<Value> results;
    SmallVector<Attribute> attrs;
    if (stage < stages - 1) {
      Value out = liveAt(end);
      Value cot = pipelineArgument(out, "cot");
      b.setInsertionPoint(ret);
      TensorBuilder m(b, ret.getLoc());
      results = {out, m.sumAll(m.mul(out, cot))};
      attrs = {
          b.getDictionaryAttr({b.getNamedAttr(
              TrainoptDialect::kPipelineAttrName, b.getStringAttr("out"))}),
          b.getDictionaryAttr({b.getNamedAttr(TrainoptDialect::kOutputAttrName,
                                              b.getStringAttr("loss")),
                               roleAttr(ctx, ValueRole::loss)})};
    }
    for (unsigned i = 0; i < ret.getNumOperands(); ++i)
      if (resultStage[i] == stage)
        results.push_back(ret.getOperand(i)), attrs.push_back(resultAttrs[i]);
    b.setInsertionPoint(ret);
    func::ReturnOp::create(b, ret.getLoc(), results);
    ret.erase();
    f.setType(b.getFunctionType(
        f.getArgumentTypes(), llvm::to_vector(ValueRange(results).getTypes())));
    for (auto [i, a] : llvm::enumerate(attrs))
      f.setResultAttrs(i, cast<DictionaryAttr>(a));
    // Drop the other stages' ops (users first) and parameters.
    for (int64_t i = n - 1; i >= 0; --i)
      if (i < begin || i >= end) {
        if (!ops[i]->use_empty()) {
          InFlightDiagnostic d = ops[i]->emitOpError()
                                 << "of pipeline stage " << stageOf(ops[i])
                                 << " is still read by stage " << stage;
          return signalPassFailure();
        }
        ops[i]->erase();
      }
    llvm::BitVector unused(f.getNumArguments());
    for (BlockArgument arg : f.getArguments())
      if (arg.use_empty() &&
          f.getArgAttr(arg.getArgNumber(), TrainoptDialect::kParamAttrName))
        unused.set(arg.getArgNumber());
    if (failed(f.eraseArguments(unused)))
      return signalPassFailure();
  }
};

/// One stage's step, as trainopt-split-pipeline left it.
struct StageInfo {
  int64_t stage = 0, stages = 1;
  int16_t axis = 0;
  DictionaryAttr attr;
  bool first() const { return stage == 0; }
  bool last() const { return stage == stages - 1; }
};

/// The arguments of `f` marked `trainopt.pipeline = kind`.
std::optional<unsigned> pipelineArgument(func::FuncOp f, StringRef kind) {
  for (unsigned i = 0; i < f.getNumArguments(); ++i)
    if (auto k = f.getArgAttrOfType<StringAttr>(
            i, TrainoptDialect::kPipelineAttrName);
        k && k.getValue() == kind)
      return i;
  return std::nullopt;
}

/// M micro-batches of the batch: a data input's dim 0 grows M times.
RankedTensorType batchOf(Type microBatch, int64_t m) {
  auto t = cast<RankedTensorType>(microBatch);
  SmallVector<int64_t> shape(t.getShape());
  shape[0] *= m;
  return t.clone(shape);
}

/// Rows [i*b, (i+1)*b) of a batch input.
Value microBatchOf(TensorBuilder &m, Value batch, int64_t i, int64_t rows) {
  auto t = TensorBuilder::type(batch);
  SmallVector<int64_t> start(t.getRank(), 0), limit(t.getShape()),
      stride(t.getRank(), 1);
  start[0] = i * rows;
  limit[0] = (i + 1) * rows;
  return SliceOp::create(m.b, batch, start, limit, stride);
}

/// The entry point's batch inputs (data and labels) grow to M
/// micro-batches.
void growBatch(func::FuncOp f, int64_t m) {
  for (BlockArgument arg : f.getArguments())
    if (f.getArgAttr(arg.getArgNumber(), TrainoptDialect::kInputAttrName))
      arg.setType(batchOf(arg.getType(), m));
  f.setType(FunctionType::get(f.getContext(),
                              f.getBody().front().getArgumentTypes(),
                              f.getResultTypes()));
}

/// The stage's "in" and "cot" arguments go: the schedule receives them.
void dropPipelineArguments(func::FuncOp f) {
  llvm::BitVector erase(f.getNumArguments());
  for (BlockArgument arg : f.getArguments())
    if (f.getArgAttr(arg.getArgNumber(), TrainoptDialect::kPipelineAttrName))
      erase.set(arg.getArgNumber());
  (void)f.eraseArguments(erase);
}

struct TrainoptSchedulePipelinePass
    : public mlir::trainopt::impl::TrainoptSchedulePipelineBase<
          TrainoptSchedulePipelinePass> {
  using TrainoptSchedulePipelineBase::TrainoptSchedulePipelineBase;
  /// One option, to list all (TrainingPipeline.h).
  const llvm::cl::Option &anyOption() const { return microBatches; }

  LogicalResult bad(const Twine &why) {
    getOperation().emitError() << getArgument() << ": " << why;
    return failure();
  }

  void runOnOperation() override {
    ModuleOp module = getOperation();
    if (microBatches < 1) {
      (void)bad("--micro-batches must be >= 1, got " + Twine(microBatches));
      return signalPassFailure();
    }
    func::FuncOp forward;
    for (auto f : module.getOps<func::FuncOp>())
      if (f->hasAttr(TrainoptDialect::kPipelineAttrName) && !forward &&
          !f.isExternal() && f.getSymName() != kTrainStepName &&
          f.getSymName() != "eval_step")
        forward = f;
    if (!forward) {
      if (microBatches != 1) {
        (void)bad("--micro-batches=" + Twine(microBatches) +
                  " needs a pipeline (--mesh with pp > 1); for gradient "
                  "accumulation use --grad-accum");
        return signalPassFailure();
      }
      return;
    }
    StageInfo info;
    info.attr = forward->getAttrOfType<DictionaryAttr>(
        TrainoptDialect::kPipelineAttrName);
    info.stage = cast<IntegerAttr>(info.attr.get("stage")).getInt();
    info.stages = cast<IntegerAttr>(info.attr.get("stages")).getInt();
    info.axis =
        static_cast<int16_t>(cast<IntegerAttr>(info.attr.get("axis")).getInt());
    auto grid = module.lookupSymbol<shard::GridOp>(kMeshSymbolName);
    if (!grid) {
      (void)bad("no @" + kMeshSymbolName + " grid");
      return signalPassFailure();
    }
    auto gridRef = FlatSymbolRefAttr::get(grid.getSymNameAttr());
    OpBuilder b(&getContext());
    DictionaryAttr stepAttr = b.getDictionaryAttr(
        {b.getNamedAttr("stage", b.getI64IntegerAttr(info.stage)),
         b.getNamedAttr("stages", b.getI64IntegerAttr(info.stages)),
         b.getNamedAttr("micro_batches", b.getI64IntegerAttr(microBatches))});
    if (auto step = module.lookupSymbol<func::FuncOp>(kTrainStepName)) {
      for (unsigned i = 0; i < step.getNumArguments(); ++i)
        if (auto state = step.getArgAttrOfType<StringAttr>(
                i, TrainoptDialect::kStateAttrName);
            state && state.getValue() == "grad_accum") {
          (void)bad("--grad-accum with pipeline parallelism is not "
                    "implemented; --micro-batches=K accumulates K "
                    "micro-batches per step");
          return signalPassFailure();
        }
      if (failed(scheduleTrainStep(step, info, gridRef)))
        return signalPassFailure();
      step->setAttr(TrainoptDialect::kPipelineAttrName, stepAttr);
    }
    if (auto eval = module.lookupSymbol<func::FuncOp>("eval_step")) {
      if (failed(scheduleEvalStep(eval, info, gridRef)))
        return signalPassFailure();
      eval->setAttr(TrainoptDialect::kPipelineAttrName, stepAttr);
    }
  }

  /// The sum over pp of `v`: one stage's value where the others give
  /// zeros.
  Value fromOneStage(TensorBuilder &m, Value v, const StageInfo &info) {
    return sumOverMeshAxis(m, v, info.axis);
  }

  Value send(TensorBuilder &m, Value v, int64_t offset, FlatSymbolRefAttr grid,
             const StageInfo &info) {
    SendOp::create(m.b, v, grid, m.b.getDenseI16ArrayAttr({info.axis}),
                   m.b.getI64IntegerAttr(offset));
    return v;
  }
  Value recv(TensorBuilder &m, Type type, int64_t offset,
             FlatSymbolRefAttr grid, const StageInfo &info) {
    return RecvOp::create(m.b, type, grid,
                          m.b.getDenseI16ArrayAttr({info.axis}),
                          m.b.getI64IntegerAttr(offset));
  }

  LogicalResult scheduleTrainStep(func::FuncOp step, const StageInfo &info,
                                  FlatSymbolRefAttr gridRef) {
    // The call of the forward-and-backward function.
    func::CallOp call;
    step.walk([&](func::CallOp c) {
      auto callee = SymbolTable::lookupNearestSymbolFrom<func::FuncOp>(
          step, c.getCalleeAttr());
      if (callee && pipelineArgument(callee, info.last() ? "in" : "cot"))
        call = c;
    });
    if (!call)
      return bad("@train_step calls no function of the pipeline stage");
    auto grad = SymbolTable::lookupNearestSymbolFrom<func::FuncOp>(
        step, call.getCalleeAttr());
    Block &gbody = grad.getBody().front();
    auto gret = cast<func::ReturnOp>(gbody.getTerminator());
    std::optional<unsigned> inArg = pipelineArgument(grad, "in"),
                            cotArg = pipelineArgument(grad, "cot");
    int64_t m = microBatches;

    // The grad function's results: output (or loss), state updates,
    // gradients (the last is the input's, on a stage after the first).
    std::optional<unsigned> outResult, lossResult, inGrad;
    SmallVector<unsigned> updates, paramGrads;
    for (unsigned i = 0; i < grad.getNumResults(); ++i) {
      if (grad.getResultAttr(i, TrainoptDialect::kPipelineAttrName))
        outResult = i;
      else if (grad.getResultAttr(i, TrainoptDialect::kUpdatesAttrName))
        updates.push_back(i);
      else if (auto of =
                   grad.getResultAttr(i, TrainoptDialect::kGradOfAttrName)) {
        if (isa<IntegerAttr>(of))
          inGrad = i;
        else
          paramGrads.push_back(i);
      } else if (resultRole(grad, i) == ValueRole::loss) {
        lossResult = i;
      }
    }
    if (!lossResult || (!info.last() && !outResult) ||
        (!info.first() && !inGrad))
      return bad("@" + grad.getSymName() +
                 " is not the forward and backward of a pipeline stage");
    // Every other result must be unused.
    for (unsigned i = 0; i < call.getNumResults(); ++i)
      if (!call.getResult(i).use_empty() && i != *lossResult &&
          !llvm::is_contained(updates, i) && !llvm::is_contained(paramGrads, i))
        return bad("@train_step reads result " + Twine(i) + " of @" +
                   grad.getSymName() +
                   ", which a pipeline stage does not "
                   "return whole");

    // Forward part: what the stage's output (its loss, on the last stage)
    // and the state updates need; the backward part is the rest.
    llvm::DenseSet<Operation *> fwd;
    SmallVector<Value> roots;
    roots.push_back(gret.getOperand(info.last() ? *lossResult : *outResult));
    for (unsigned u : updates)
      roots.push_back(gret.getOperand(u));
    SmallVector<Value> work(roots);
    while (!work.empty()) {
      Operation *def = work.pop_back_val().getDefiningOp();
      if (!def || !fwd.insert(def).second)
        continue;
      llvm::append_range(work, def->getOperands());
    }
    if (cotArg && llvm::any_of(gbody.getArgument(*cotArg).getUsers(),
                               [&](Operation *u) { return fwd.contains(u); }))
      return bad("the forward part of @" + grad.getSymName() +
                 " reads the output's cotangent");
    SmallVector<Operation *> fwdOps, bwdOps;
    for (Operation &op : gbody.without_terminator())
      (fwd.contains(&op) ? fwdOps : bwdOps).push_back(&op);

    // The step's batch: M micro-batches.
    growBatch(step, m);
    SmallVector<Value> operands(call.getOperands());
    OpBuilder b(call);
    TensorBuilder tm(b, call.getLoc());
    std::optional<unsigned> stepOperand;
    for (unsigned i = 0; i < grad.getNumArguments(); ++i)
      if (auto s = grad.getArgAttrOfType<StringAttr>(
              i, TrainoptDialect::kStateAttrName);
          s && s.getValue() == "step")
        stepOperand = i;
    SmallVector<std::pair<unsigned, int64_t>> batchOperands;
    for (unsigned i = 0; i < grad.getNumArguments(); ++i)
      if (grad.getArgAttr(i, TrainoptDialect::kInputAttrName))
        batchOperands.push_back(
            {i,
             cast<RankedTensorType>(grad.getArgumentTypes()[i]).getDimSize(0)});
    // Which argument each state update replaces.
    SmallVector<std::pair<unsigned, unsigned>> stateChain;
    for (unsigned u : updates)
      stateChain.push_back(
          {static_cast<unsigned>(grad.getResultAttrOfType<IntegerAttr>(
                                         u, TrainoptDialect::kUpdatesAttrName)
                                     .getInt()),
           u});

    SmallVector<IRMapping> maps(m);
    SmallVector<Value> gradSums(paramGrads.size());
    Value lossSum;
    auto runForward = [&](int64_t i) {
      IRMapping &map = maps[i];
      for (auto [a, v] : llvm::zip(gbody.getArguments(), operands))
        map.map(a, v);
      if (stepOperand)
        map.map(gbody.getArgument(*stepOperand),
                tm.add(tm.mul(operands[*stepOperand], static_cast<double>(m)),
                       static_cast<double>(i)));
      for (auto [a, rows] : batchOperands)
        map.map(gbody.getArgument(a), microBatchOf(tm, operands[a], i, rows));
      if (i > 0)
        for (auto [a, u] : stateChain)
          map.map(gbody.getArgument(a), maps[i - 1].lookup(gret.getOperand(u)));
      if (inArg)
        map.map(gbody.getArgument(*inArg),
                recv(tm, grad.getArgumentTypes()[*inArg], -1, gridRef, info));
      for (Operation *op : fwdOps)
        tm.b.clone(*op, map);
      if (!info.last())
        send(tm, map.lookup(gret.getOperand(*outResult)), 1, gridRef, info);
      else {
        Value loss = map.lookup(gret.getOperand(*lossResult));
        lossSum = lossSum ? tm.add(lossSum, loss) : loss;
      }
    };
    auto runBackward = [&](int64_t i) {
      IRMapping &map = maps[i];
      if (cotArg)
        map.map(gbody.getArgument(*cotArg),
                recv(tm, grad.getArgumentTypes()[*cotArg], 1, gridRef, info));
      for (Operation *op : bwdOps)
        tm.b.clone(*op, map);
      for (auto [t, r] : llvm::enumerate(paramGrads)) {
        Value g = map.lookup(gret.getOperand(r));
        gradSums[t] = gradSums[t] ? tm.add(gradSums[t], g) : g;
      }
      if (!info.first())
        send(tm, map.lookup(gret.getOperand(*inGrad)), -1, gridRef, info);
    };
    // 1F1B: fill with K - 1 - stage forwards, then alternate, then drain.
    int64_t warmup = std::min<int64_t>(info.stages - 1 - info.stage, m);
    for (int64_t i = 0; i < warmup; ++i)
      runForward(i);
    for (int64_t i = 0; i < m - warmup; ++i) {
      runForward(warmup + i);
      runBackward(i);
    }
    for (int64_t i = m - warmup; i < m; ++i)
      runBackward(i);

    double inverse = 1.0 / static_cast<double>(m);
    Value lossMean;
    if (info.last())
      lossMean = m > 1 ? tm.mul(lossSum, inverse) : lossSum;
    else
      lossMean = tm.zerosLike(call.getResult(*lossResult));
    call.getResult(*lossResult)
        .replaceAllUsesWith(fromOneStage(tm, lossMean, info));
    for (auto [t, r] : llvm::enumerate(paramGrads))
      call.getResult(r).replaceAllUsesWith(m > 1 ? tm.mul(gradSums[t], inverse)
                                                 : gradSums[t]);
    for (auto [a, u] : stateChain)
      call.getResult(u).replaceAllUsesWith(
          maps[m - 1].lookup(gret.getOperand(u)));
    call.erase();
    // A BatchNorm's update counter counts the micro-batches it normalized.
    auto ret = cast<func::ReturnOp>(step.getBody().front().getTerminator());
    for (unsigned r = 0; r < ret.getNumOperands(); ++r) {
      auto updates = step.getResultAttrOfType<IntegerAttr>(
          r, TrainoptDialect::kUpdatesAttrName);
      auto state = updates
                       ? step.getArgAttrOfType<StringAttr>(
                             updates.getInt(), TrainoptDialect::kStateAttrName)
                       : StringAttr();
      if (!state || state.getValue() != "num_batches_tracked")
        continue;
      OpBuilder rb(ret);
      TensorBuilder rm(rb, ret.getLoc());
      ret.setOperand(r, rm.add(step.getArgument(updates.getInt()),
                               static_cast<double>(m)));
    }
    dropPipelineArguments(step);
    return success();
  }

  LogicalResult scheduleEvalStep(func::FuncOp eval, const StageInfo &info,
                                 FlatSymbolRefAttr gridRef) {
    int64_t m = microBatches;
    Block &body = eval.getBody().front();
    auto ret = cast<func::ReturnOp>(body.getTerminator());
    std::optional<unsigned> inArg = pipelineArgument(eval, "in");
    SmallVector<Operation *> ops;
    for (Operation &op : body.without_terminator())
      ops.push_back(&op);
    auto resultTypes = cast<ArrayAttr>(info.attr.get("result_types"));
    auto resultAttrs = cast<ArrayAttr>(info.attr.get("result_attrs"));
    auto resultKinds = cast<ArrayAttr>(info.attr.get("result_kinds"));
    auto resultStages = cast<ArrayAttr>(info.attr.get("result_stages"));
    // The eval step's results: the output and the seeding loss before the
    // last stage (not evaluated), then this stage's model results in order.
    unsigned first = info.last() ? 0 : 2;
    SmallVector<unsigned> own;
    for (auto [r, stage] : llvm::enumerate(resultStages))
      if (cast<IntegerAttr>(stage).getInt() == info.stage)
        own.push_back(r);
    if (ret.getNumOperands() != first + own.size())
      return bad("@eval_step does not return the results of pipeline stage " +
                 Twine(info.stage));
    llvm::DenseSet<Operation *> needed;
    SmallVector<Value> work;
    for (unsigned i = 0; i < ret.getNumOperands(); ++i)
      if (i == 0 || i >= first)
        work.push_back(ret.getOperand(i));
    while (!work.empty()) {
      Operation *def = work.pop_back_val().getDefiningOp();
      if (!def || !needed.insert(def).second)
        continue;
      llvm::append_range(work, def->getOperands());
    }
    SmallVector<std::pair<unsigned, int64_t>> batchArgs;
    for (unsigned i = 0; i < eval.getNumArguments(); ++i)
      if (eval.getArgAttr(i, TrainoptDialect::kInputAttrName))
        batchArgs.push_back(
            {i,
             cast<RankedTensorType>(eval.getArgumentTypes()[i]).getDimSize(0)});
    growBatch(eval, m);
    OpBuilder b(ret);
    TensorBuilder tm(b, ret.getLoc());
    // Per model result of this stage, the micro-batches' values.
    llvm::DenseMap<unsigned, SmallVector<Value>> parts;
    for (int64_t i = 0; i < m; ++i) {
      IRMapping map;
      for (auto [a, rows] : batchArgs)
        map.map(body.getArgument(a),
                microBatchOf(tm, body.getArgument(a), i, rows));
      if (inArg)
        map.map(body.getArgument(*inArg),
                recv(tm, eval.getArgumentTypes()[*inArg], -1, gridRef, info));
      for (Operation *op : ops)
        if (needed.contains(op))
          tm.b.clone(*op, map);
      if (!info.last())
        send(tm, map.lookup(ret.getOperand(0)), 1, gridRef, info);
      for (auto [k, r] : llvm::enumerate(own))
        parts[r].push_back(map.lookupOrDefault(ret.getOperand(first + k)));
    }
    // The whole model's results on every stage, each summed over pp from
    // the stage that computes it (zeros elsewhere).
    SmallVector<Value> results;
    SmallVector<Type> types;
    for (auto [r, typeAttr] : llvm::enumerate(resultTypes)) {
      auto t = cast<RankedTensorType>(cast<TypeAttr>(typeAttr).getValue());
      StringRef kind = cast<StringAttr>(resultKinds[r]).getValue();
      auto wholeType = kind == "batch" ? batchOf(t, m) : t;
      Value whole;
      auto it = parts.find(r);
      if (it == parts.end()) {
        whole = ConstantOp::create(
            tm.b, DenseElementsAttr::get(
                      wholeType, tm.b.getZeroAttr(wholeType.getElementType())));
      } else if (kind == "batch" && m > 1) {
        whole = ConcatOp::create(tm.b, it->second, 0).getResult();
      } else if (kind == "mean" && m > 1) {
        whole = it->second[0];
        for (int64_t i = 1; i < m; ++i)
          whole = tm.add(whole, it->second[i]);
        whole = tm.mul(whole, 1.0 / static_cast<double>(m));
      } else {
        whole = it->second.back();
      }
      if (t.getElementType().isInteger(1))
        return bad("eval result " + Twine(r) +
                   " is boolean; a pipeline "
                   "cannot sum it over its stages");
      results.push_back(fromOneStage(tm, whole, info));
      types.push_back(results.back().getType());
    }
    func::ReturnOp::create(b, ret.getLoc(), results);
    ret.erase();
    for (Operation *op : llvm::reverse(ops))
      op->erase();
    eval.setType(
        FunctionType::get(eval.getContext(), eval.getArgumentTypes(), types));
    for (auto [r, attrs] : llvm::enumerate(resultAttrs))
      eval.setResultAttrs(r, cast<DictionaryAttr>(attrs));
    dropPipelineArguments(eval);
    return success();
  }
};

} // namespace

std::vector<TrainingOption>
mlir::trainopt::stage_options::splitPipelineOptions() {
  TrainoptSplitPipelinePass pass;
  return passOptionsOf(pass.anyOption(), pass.getArgument());
}

std::vector<TrainingOption>
mlir::trainopt::stage_options::schedulePipelineOptions() {
  TrainoptSchedulePipelinePass pass;
  return passOptionsOf(pass.anyOption(), pass.getArgument());
}
