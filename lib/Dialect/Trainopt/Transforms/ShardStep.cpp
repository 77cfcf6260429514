//===- ShardStep.cpp - the sharding stage ---------------------------------===//
//
/// \file
/// `trainopt-shard-step`: the mesh, the sharding of the entry points'
/// values, and the data-parallel gradient combination (bucketed all-reduces
/// placed where the backward finishes each bucket). The strategy is ours;
/// the mesh is an upstream `shard.grid`, which the collectives name
/// (docs/distributed.md says what of the upstream dialect is reused).
//
//===----------------------------------------------------------------------===//

#include "trainopt/Dialect/Trainopt/IR/TensorBuilder.h"
#include "trainopt/Dialect/Trainopt/Transforms/Passes.h"
#include "trainopt/Dialect/Trainopt/Transforms/TrainStep.h"
#include "trainopt/Dialect/Trainopt/Transforms/TrainingPipeline.h"

#include "mlir/Dialect/Shard/IR/ShardDialect.h"
#include "mlir/Dialect/Shard/IR/ShardOps.h"
#include "mlir/IR/Builders.h"
#include "mlir/IR/IRMapping.h"
#include "llvm/ADT/MapVector.h"
#include "llvm/ADT/SetVector.h"
#include "llvm/ADT/StringExtras.h"

namespace mlir::trainopt {
#define GEN_PASS_DEF_TRAINOPTSHARDSTEP
#include "trainopt/Dialect/Trainopt/Transforms/Passes.h.inc"
} // namespace mlir::trainopt

using namespace mlir;
using namespace mlir::trainopt;

namespace {

/// Whether argument `i` of `f` is a batch value (an input or the labels).
bool isBatchArgument(func::FuncOp f, unsigned i) {
  std::optional<ValueRole> role = argumentRole(f, i);
  if (role)
    return *role == ValueRole::input || *role == ValueRole::labels;
  return f.getArgAttr(i, TrainoptDialect::kInputAttrName) != nullptr;
}

/// When `v` is ready: the position of its definition in its block (-1 for
/// a block argument) and, for a result of a call (the gradient function
/// autodiff built), the position where the callee computes it, so buckets
/// follow the backward's order.
std::pair<int64_t, int64_t>
readyAt(Value v, const llvm::DenseMap<Operation *, int64_t> &position) {
  Operation *def = v.getDefiningOp();
  if (!def)
    return {-1, -1};
  int64_t inner = -1;
  if (auto call = dyn_cast<func::CallOp>(def))
    if (auto callee = SymbolTable::lookupNearestSymbolFrom<func::FuncOp>(
            call, call.getCalleeAttr());
        callee && !callee.isExternal()) {
      Block &body = callee.getBody().front();
      Value returned =
          body.getTerminator()->getOperand(cast<OpResult>(v).getResultNumber());
      if (Operation *d = returned.getDefiningOp();
          d && d->getBlock() == &body) {
        for (Operation &op : body) {
          ++inner;
          if (&op == d)
            break;
        }
      }
    }
  return {position.lookup(def), inner};
}

/// Makes argument `a` of `f` a flat part over dp of what it held: its
/// sharding gains a last level "dp:flat" after any it had (tensor
/// parallelism's "tp:D", so "tp:D,dp:flat"), and its global type stays
/// the whole value's.
void flattenOverDp(func::FuncOp f, BlockArgument a, RankedTensorType held) {
  MLIRContext *ctx = f.getContext();
  unsigned i = a.getArgNumber();
  auto before =
      f.getArgAttrOfType<StringAttr>(i, TrainoptDialect::kShardingAttrName);
  auto global =
      f.getArgAttrOfType<TypeAttr>(i, TrainoptDialect::kGlobalTypeAttrName);
  f.setArgAttr(i, TrainoptDialect::kShardingAttrName,
               StringAttr::get(ctx, before ? before.getValue() + ",dp:flat"
                                           : Twine("dp:flat")));
  if (!(before && global))
    f.setArgAttr(i, TrainoptDialect::kGlobalTypeAttrName, TypeAttr::get(held));
}

/// ZeRO-1 for one parameter: its optimizer slots become flat shards of
/// 1/N of the parameter (zero-padded to a multiple of N), and the update
/// runs on this rank's shard of every operand; the updated parameter is
/// gathered back. Returns why it stays replicated, or "" when sharded.
std::string
shardOptimizerState(TrainStepFunction &step, unsigned paramResult,
                    BlockArgument param,
                    ArrayRef<std::pair<BlockArgument, unsigned>> slots,
                    FlatSymbolRefAttr grid, int16_t axis, int64_t ranks) {
  func::FuncOp f = step.func;
  auto shape = cast<RankedTensorType>(param.getType());
  int64_t numel = shape.getNumElements();
  int64_t chunk = (numel + ranks - 1) / ranks;
  for (auto [slot, result] : slots) {
    if (slot.getType() != shape)
      return "its optimizer state is not of its shape";
    if (auto init = f.getArgAttrOfType<DenseElementsAttr>(
            slot.getArgNumber(), TrainoptDialect::kInitAttrName);
        init && !init.isSplat())
      return "an optimizer slot starts from a value that is not uniform";
  }
  // The update: the elementwise ops from the parameter, its slots, rank-0
  // values and same-shaped inputs (the gradient) to the new values.
  llvm::SetVector<Operation *> region;
  llvm::SetVector<Value> inputs; // same-shaped values to take shards of
  SmallVector<Value> work{step.result(paramResult)};
  for (auto [slot, result] : slots)
    work.push_back(step.result(result));
  llvm::DenseSet<Value> seen;
  auto isSlot = [&](Value v) {
    return llvm::any_of(slots, [&](const auto &s) { return s.first == v; });
  };
  while (!work.empty()) {
    Value v = work.pop_back_val();
    if (!seen.insert(v).second)
      continue;
    auto t = dyn_cast<RankedTensorType>(v.getType());
    if (!t)
      return "its update reads a value that is not a tensor";
    if (t.getRank() == 0)
      continue; // a scalar broadcasts to any shard
    if (t.getShape() != shape.getShape()) {
      std::string s;
      llvm::raw_string_ostream os(s);
      os << "its update reads a value of type " << t
         << ", which does not split with the parameter";
      return s;
    }
    if (isSlot(v))
      continue;
    Operation *def = v.getDefiningOp();
    if (!def || !isa<TrainoptDialect>(def->getDialect()) ||
        !isElementwise(def)) {
      inputs.insert(v);
      continue;
    }
    region.insert(def);
    llvm::append_range(work, def->getOperands());
  }
  // Only the update may read the slots and what is computed from them
  // (LAMB's norms would need them whole). Values that do not depend on the
  // slots but have other readers (the gradient, which the norm reads) are
  // inputs instead: their shards are taken, the whole stays.
  llvm::DenseSet<Operation *> fromSlots;
  for (bool changed = true; changed;) {
    changed = false;
    for (Operation *op : region)
      if (!fromSlots.contains(op) &&
          llvm::any_of(op->getOperands(), [&](Value v) {
            Operation *d = v.getDefiningOp();
            return isSlot(v) || (d && fromSlots.contains(d));
          }))
        changed = fromSlots.insert(op).second || changed;
  }
  auto readOutside = [&](Value v) {
    return llvm::any_of(v.getUsers(), [&](Operation *user) {
      return !region.contains(user) && user != step.returnOp().getOperation();
    });
  };
  for (auto [slot, result] : slots)
    if (readOutside(slot))
      return "its optimizer state is read outside its elementwise update";
  for (bool changed = true; changed;) {
    changed = false;
    for (Operation *op : llvm::to_vector(region)) {
      if (!readOutside(op->getResult(0)))
        continue;
      if (fromSlots.contains(op))
        return "its update also feeds a reduction over the whole parameter "
               "(as LAMB's trust ratio does), which a shard cannot compute";
      region.remove(op);
      changed = true;
    }
  }
  if (fromSlots.empty() || region.empty())
    return "its update is not elementwise";
  // The inputs: what region ops read that is neither computed in the region
  // nor a slot nor a scalar.
  inputs.clear();
  for (Operation *op : region)
    for (Value v : op->getOperands()) {
      Operation *d = v.getDefiningOp();
      if (!isSlot(v) && !(d && region.contains(d)) &&
          cast<RankedTensorType>(v.getType()).getRank() > 0)
        inputs.insert(v);
    }

  // Shards of the inputs, the region on them, and the results.
  OpBuilder b(step.returnOp());
  TensorBuilder m(b, f.getLoc());
  MLIRContext *ctx = f.getContext();
  auto axes = b.getDenseI16ArrayAttr({axis});
  auto shardType = [&](Type element) {
    return RankedTensorType::get({chunk}, element);
  };
  IRMapping map;
  for (Value in : inputs) {
    Type element = getElementTypeOrSelf(in);
    Value flat = m.reshape(in, RankedTensorType::get({numel}, element));
    if (chunk * ranks != numel) {
      auto padType = RankedTensorType::get({chunk * ranks - numel}, element);
      Value zeros = ConstantOp::create(
          m.b, cast<DenseElementsAttr>(b.getZeroAttr(padType)));
      flat = ConcatOp::create(m.b, ValueRange{flat, zeros}, 0);
    }
    map.map(in, RankSliceOp::create(m.b, shardType(element), flat, grid, axes)
                    .getResult());
  }
  // The slots become shards.
  SmallVector<Type> argTypes(f.getArgumentTypes());
  for (auto [slot, result] : slots) {
    Type element = getElementTypeOrSelf(slot);
    slot.setType(shardType(element));
    argTypes[slot.getArgNumber()] = slot.getType();
    flattenOverDp(f, slot, shape);
    if (auto init = f.getArgAttrOfType<DenseElementsAttr>(
            slot.getArgNumber(), TrainoptDialect::kInitAttrName))
      f.setArgAttr(slot.getArgNumber(), TrainoptDialect::kInitAttrName,
                   init.resizeSplat(cast<ShapedType>(slot.getType())));
  }
  SmallVector<Operation *> ordered(region.begin(), region.end());
  llvm::sort(ordered,
             [](Operation *x, Operation *y) { return x->isBeforeInBlock(y); });
  for (Operation *op : ordered) {
    Operation *copy = b.clone(*op, map);
    copy->getResult(0).setType(
        shardType(getElementTypeOrSelf(op->getResult(0))));
  }
  // The new parameter, gathered; the new slots stay shards.
  Value newParam = map.lookupOrDefault(step.result(paramResult));
  Type element = getElementTypeOrSelf(newParam);
  Value whole =
      AllGatherOp::create(m.b, RankedTensorType::get({chunk * ranks}, element),
                          newParam, grid, axes);
  if (chunk * ranks != numel)
    whole = SliceOp::create(m.b, RankedTensorType::get({numel}, element), whole,
                            b.getDenseI64ArrayAttr({0}),
                            b.getDenseI64ArrayAttr({numel}),
                            b.getDenseI64ArrayAttr({1}));
  step.setResult(paramResult, m.reshape(whole, shape));
  // The slots' results become shards.
  for (auto [slot, result] : slots)
    step.retypeResult(result, map.lookupOrDefault(step.result(result)));
  SmallVector<Type> resultTypes(step.returnOp().getOperandTypes());
  f.setType(FunctionType::get(ctx, argTypes, resultTypes));
  // The full-size update is dead now.
  for (Operation *op : llvm::reverse(ordered))
    if (op->use_empty())
      op->erase();
  return "";
}

/// A gradient as data parallelism combines it: result `index` of bucket
/// `reduce`, and `mean`, that times 1/N, which the step reads.
struct CombinedGradient {
  AllReduceOp reduce;
  unsigned index = 0;
  Value mean;
};

/// ZeRO-2's view of a ZeRO-1 parameter's combined gradient: the shards
/// the update takes of it (reached through a flattening reshape and zero
/// padding) and the sums of its squares (the global norm).
struct ScatteredGradient {
  CombinedGradient combined;
  int64_t numel = 0;
  SmallVector<RankSliceOp> slices;
  SmallVector<ReduceSumOp> squares;
};

/// Fills `g`'s slices and squares; returns why the gradient must be
/// combined whole instead ("" when it need not).
std::string findShardReaders(ScatteredGradient &g) {
  SmallVector<Value> work{g.combined.mean};
  llvm::SmallPtrSet<Operation *, 8> seen; // mul(g, g) uses g twice
  while (!work.empty()) {
    Value v = work.pop_back_val();
    for (Operation *user : v.getUsers()) {
      if (!seen.insert(user).second)
        continue;
      if (isa<ReshapeOp>(user) ||
          (isa<ConcatOp>(user) && user->getOperand(0) == v)) {
        work.push_back(user->getResult(0));
        continue;
      }
      if (auto slice = dyn_cast<RankSliceOp>(user)) {
        g.slices.push_back(slice);
        continue;
      }
      // mul(g, g) summed over everything: a share of the norm.
      if (v == g.combined.mean && isa<MulOp>(user) &&
          user->getOperand(0) == v && user->getOperand(1) == v &&
          llvm::all_of(user->getUsers(), [](Operation *u) {
            auto sum = dyn_cast<ReduceSumOp>(u);
            return sum && sum.getType().getRank() == 0;
          })) {
        for (Operation *u : user->getUsers())
          g.squares.push_back(cast<ReduceSumOp>(u));
        continue;
      }
      return ("its combined gradient is also read by '" +
              user->getName().getStringRef() +
              "', which needs it whole")
          .str();
    }
  }
  if (g.slices.empty())
    return "its update does not read its gradient's shard";
  return "";
}

/// Erases `op` and the ops that only it read, up the chain.
void eraseDeadChain(Operation *op) {
  // An op may be reached twice (mul(g, g)); erased ones are not looked at.
  llvm::SetVector<Operation *> work;
  llvm::DenseSet<Operation *> erased;
  work.insert(op);
  while (!work.empty()) {
    Operation *o = work.pop_back_val();
    if (erased.contains(o) || !o->use_empty() || isa<func::CallOp>(o))
      continue;
    SmallVector<Operation *> defs;
    for (Value v : o->getOperands())
      if (Operation *d = v.getDefiningOp())
        defs.push_back(d);
    erased.insert(o);
    o->erase();
    for (Operation *d : defs)
      if (!erased.contains(d) && !isa<AllReduceOp, ReduceScatterOp>(d))
        work.insert(d);
  }
}

/// ZeRO-2: each gradient of `grads` is reduce-scattered instead of
/// all-reduced (a bucket's scattered gradients form one reduce-scatter in
/// its place), the update reads this rank's part of the sum directly, and
/// the global norm sums the ranks' sums of squares of their parts (one
/// all-reduce per element type, where the first sum of squares was).
void scatterGradients(MutableArrayRef<ScatteredGradient> grads,
                      FlatSymbolRefAttr grid, int16_t axis, int64_t ranks,
                      double inverse) {
  if (grads.empty())
    return;
  MLIRContext *ctx = grid.getContext();
  auto axes = DenseI16ArrayAttr::get(ctx, {axis});
  auto sum = CollectiveReductionAttr::get(ctx, CollectiveReduction::sum);
  llvm::MapVector<Operation *, SmallVector<ScatteredGradient *>> byBucket;
  for (ScatteredGradient &g : grads)
    byBucket[g.combined.reduce].push_back(&g);
  llvm::DenseMap<ScatteredGradient *, Value> part;
  for (auto &[op, members] : byBucket) {
    auto reduce = cast<AllReduceOp>(op);
    OpBuilder b(reduce);
    TensorBuilder m(b, reduce.getLoc());
    SmallVector<Value> inputs;
    SmallVector<Type> types;
    for (ScatteredGradient *g : members) {
      Value local = reduce.getInputs()[g->combined.index];
      Type element = getElementTypeOrSelf(local);
      int64_t chunk = (g->numel + ranks - 1) / ranks;
      Value flat =
          m.reshape(local, RankedTensorType::get({g->numel}, element));
      if (chunk * ranks != g->numel) {
        auto padType =
            RankedTensorType::get({chunk * ranks - g->numel}, element);
        flat = ConcatOp::create(
            b, reduce.getLoc(),
            ValueRange{flat, ConstantOp::create(
                                 b, reduce.getLoc(),
                                 cast<DenseElementsAttr>(
                                     b.getZeroAttr(padType)))},
            0);
      }
      inputs.push_back(flat);
      types.push_back(RankedTensorType::get({chunk}, element));
    }
    auto scatter = ReduceScatterOp::create(b, reduce.getLoc(), types, inputs,
                                           grid, axes, sum);
    for (auto [g, r] : llvm::zip(members, scatter.getResults()))
      part[g] = m.mul(r, inverse);
    // The bucket's other gradients stay all-reduced, in one collective.
    SmallVector<Value> kept;
    SmallVector<unsigned> keptIndex;
    for (auto [i, in] : llvm::enumerate(reduce.getInputs()))
      if (llvm::none_of(members, [&, i = i](ScatteredGradient *g) {
            return g->combined.index == i;
          })) {
        kept.push_back(in);
        keptIndex.push_back(i);
      }
    if (!kept.empty()) {
      auto rest = AllReduceOp::create(b, reduce.getLoc(), kept,
                                      reduce.getGridAttr(),
                                      reduce.getGridAxesAttr(),
                                      reduce.getReductionAttr());
      for (auto [i, r] : llvm::zip(keptIndex, rest.getResults()))
        reduce->getResult(i).replaceAllUsesWith(r);
    }
    // Each shard the update took is now this rank's part of the sum.
    for (ScatteredGradient *g : members)
      for (RankSliceOp slice : g->slices) {
        slice.replaceAllUsesWith(part[g]);
        eraseDeadChain(slice);
      }
  }
  // The norm: this rank's share of each sum of squares, combined.
  SmallVector<ReduceSumOp> squares;
  for (ScatteredGradient &g : grads)
    llvm::append_range(squares, g.squares);
  if (!squares.empty()) {
    Operation *first = *llvm::min_element(
        squares, [](ReduceSumOp x, ReduceSumOp y) {
          return x->isBeforeInBlock(y);
        });
    OpBuilder b(first);
    TensorBuilder m(b, first->getLoc());
    llvm::MapVector<Type, SmallVector<ReduceSumOp>> byElement;
    llvm::MapVector<Type, SmallVector<Value>> shares;
    for (ScatteredGradient &g : grads)
      for (ReduceSumOp square : g.squares) {
        Type element = getElementTypeOrSelf(square.getType());
        byElement[element].push_back(square);
        shares[element].push_back(m.sumSquares(part[&g]));
      }
    for (auto &[element, list] : byElement) {
      auto reduce = AllReduceOp::create(b, first->getLoc(), shares[element],
                                        grid, axes, sum);
      for (auto [square, r] : llvm::zip(list, reduce.getResults())) {
        square.replaceAllUsesWith(r);
        eraseDeadChain(square);
      }
    }
  }
  // The whole buckets' results (and their means) are unread now.
  for (auto &[op, members] : byBucket) {
    for (Value r : op->getResults())
      for (Operation *user : llvm::make_early_inc_range(r.getUsers()))
        eraseDeadChain(user);
    if (llvm::all_of(op->getResults(), [](Value r) { return r.use_empty(); }))
      op->erase();
  }
}

/// ZeRO-3 for parameter `param` (argument `arg` of the step, its update
/// result `paramResult`), whose optimizer state and gradient ZeRO-1 and -2
/// sharded: it is kept as its flat shard, gathered whole at the start of
/// every entry point that reads it, and the step returns the updated shard
/// instead of gathering it. `gatherTail` holds, per function, the last op
/// of the gathers placed so far.
void shardParameter(ModuleOp module, TrainStepFunction &step,
                    unsigned paramResult, BlockArgument arg,
                    FlatSymbolRefAttr param, FlatSymbolRefAttr grid,
                    int16_t axis, int64_t ranks,
                    llvm::DenseMap<Operation *, Operation *> &gatherTail) {
  MLIRContext *ctx = module.getContext();
  auto shape = cast<RankedTensorType>(arg.getType());
  Type element = shape.getElementType();
  int64_t numel = shape.getNumElements();
  int64_t chunk = (numel + ranks - 1) / ranks;
  auto shardType = RankedTensorType::get({chunk}, element);
  auto axes = DenseI16ArrayAttr::get(ctx, {axis});
  // The updated shard, before the gather ZeRO-1 put after it.
  Value result = step.result(paramResult);
  Operation *tail = result.getDefiningOp();
  while (tail && isa<ReshapeOp, SliceOp>(tail))
    tail = tail->getOperand(0).getDefiningOp();
  auto gathered = cast<AllGatherOp>(tail);
  step.retypeResult(paramResult, gathered.getInput());
  eraseDeadChain(result.getDefiningOp());

  auto reshard = [&](func::FuncOp f, BlockArgument a) {
    a.setType(shardType);
    flattenOverDp(f, a, shape);
    // After the gathers of earlier parameters, in the parameters' order.
    OpBuilder b = OpBuilder::atBlockBegin(&f.getBody().front());
    if (Operation *last = gatherTail.lookup(f))
      b.setInsertionPointAfter(last);
    TensorBuilder m(b, f.getLoc());
    auto gather = AllGatherOp::create(
        b, f.getLoc(), RankedTensorType::get({chunk * ranks}, element), a,
        grid, axes);
    Value whole = gather;
    if (chunk * ranks != numel)
      whole = SliceOp::create(b, f.getLoc(),
                              RankedTensorType::get({numel}, element), whole,
                              b.getDenseI64ArrayAttr({0}),
                              b.getDenseI64ArrayAttr({numel}),
                              b.getDenseI64ArrayAttr({1}));
    whole = m.reshape(whole, shape);
    gatherTail[f] = whole.getDefiningOp();
    a.replaceAllUsesExcept(whole, gather);
    // This rank's part of the gathered whole is the shard itself.
    SmallVector<RankSliceOp> slices;
    SmallVector<Value> work{whole};
    while (!work.empty()) {
      Value v = work.pop_back_val();
      for (Operation *user : v.getUsers()) {
        if (auto slice = dyn_cast<RankSliceOp>(user))
          slices.push_back(slice);
        else if (isa<ReshapeOp>(user) ||
                 (isa<ConcatOp>(user) && user->getOperand(0) == v))
          work.push_back(user->getResult(0));
      }
    }
    for (RankSliceOp slice : slices) {
      slice.replaceAllUsesWith(a);
      eraseDeadChain(slice);
    }
    f.setType(FunctionType::get(
        ctx, f.getBody().front().getArgumentTypes(),
        cast<func::ReturnOp>(f.getBody().front().getTerminator())
            .getOperandTypes()));
  };
  reshard(step.func, arg);
  for (auto f : module.getOps<func::FuncOp>()) {
    if (f == step.func || f.isExternal() ||
        !f->hasAttr(TrainoptDialect::kMeshAttrName))
      continue;
    for (BlockArgument a : f.getArguments())
      if (f.getArgAttrOfType<FlatSymbolRefAttr>(
              a.getArgNumber(), TrainoptDialect::kParamAttrName) == param)
        reshard(f, a);
  }
}

struct TrainoptShardStepPass
    : public mlir::trainopt::impl::TrainoptShardStepBase<
          TrainoptShardStepPass> {
  using TrainoptShardStepBase::TrainoptShardStepBase;
  /// One option, to list all (TrainingPipeline.h).
  const llvm::cl::Option &anyOption() const { return bucketMb; }

  void runOnOperation() override {
    ModuleOp module = getOperation();
    auto bad = [&](StringRef flag, const Twine &why) {
      module.emitError() << "--" << flag << ": " << why;
      signalPassFailure();
    };
    // The mesh trainopt-partition-model declared.
    auto grid = module.lookupSymbol<shard::GridOp>(kMeshSymbolName);
    auto names =
        grid ? grid->getAttrOfType<ArrayAttr>(TrainoptDialect::kAxesAttrName)
             : ArrayAttr();
    if (!grid || !names) {
      module.walk([](GradSyncOp sync) {
        sync.replaceAllUsesWith(sync.getGradient());
        sync.erase();
      });
      return;
    }
    if (!(bucketMb > 0.0))
      return bad("bucket-mb", "must be > 0");
    if (zero < 0 || zero > 3)
      return bad("zero", "must be 0, 1, 2 or 3");
    // A mask's threshold ranks the whole weight, which ZeRO-3 never holds
    // between steps.
    if (zero == 3 && module->hasAttr(TrainoptDialect::kPruningAttrName))
      return bad("zero", "3 with --prune is not supported yet (the masks "
                         "rank whole weights)");
    // The alpha-beta link (docs/distributed.md gives the defaults' sources).
    double latencyUs = 0, gbps = 0;
    if (link == "shm") {
      latencyUs = 2;
      gbps = 10;
    } else if (link == "nvlink") {
      latencyUs = 10;
      gbps = 300;
    } else if (link == "ib") {
      latencyUs = 10;
      gbps = 25;
    } else {
      return bad("link", "'" + link + "' is not shm, nvlink or ib");
    }
    if (linkLatencyUs < 0 || linkGbps < 0 || !(computeGflops > 0))
      return bad(linkLatencyUs < 0 ? "link-latency-us"
                 : linkGbps < 0    ? "link-gbps"
                                   : "compute-gflops",
                 "must be >= 0 (the link-* flags) or > 0 (compute-gflops)");
    if (linkLatencyUs > 0)
      latencyUs = linkLatencyUs;
    if (linkGbps > 0)
      gbps = linkGbps;

    OpBuilder b(module.getBodyRegion());
    auto gridRef = FlatSymbolRefAttr::get(grid.getSymNameAttr());
    int16_t dpAxis = -1;
    int64_t dp = 1;
    for (auto [i, name] : llvm::enumerate(names.getAsValueRange<StringAttr>()))
      if (name == "dp") {
        dpAxis = static_cast<int16_t>(i);
        dp = grid.getShape()[i];
      }

    for (StringRef entry :
         {StringRef(kTrainStepName), StringRef("eval_step")}) {
      auto f = module.lookupSymbol<func::FuncOp>(entry);
      if (!f)
        continue;
      f->setAttr(TrainoptDialect::kMeshAttrName, gridRef);
      if (dpAxis < 0)
        continue;
      for (unsigned i = 0; i < f.getNumArguments(); ++i)
        if (isBatchArgument(f, i))
          f.setArgAttr(i, TrainoptDialect::kShardingAttrName,
                       b.getStringAttr("dp:0"));
    }

    FailureOr<TrainStepFunction> step =
        TrainStepFunction::get(module, getArgument());
    if (failed(step))
      return signalPassFailure();
    step->func->setAttr(
        "trainopt.cost_model",
        b.getDictionaryAttr(
            {b.getNamedAttr("link", b.getStringAttr(link)),
             b.getNamedAttr("latency_us", b.getF64FloatAttr(latencyUs)),
             b.getNamedAttr("gbps", b.getF64FloatAttr(gbps)),
             b.getNamedAttr("compute_gflops",
                            b.getF64FloatAttr(computeGflops))}));
    // Tensor parallelism (trainopt-partition-model): a split parameter's
    // optimizer slots are split with it, and its decision comes first.
    llvm::StringMap<std::string> tpDecision;
    for (auto f : module.getOps<func::FuncOp>())
      if (auto d = f->getAttrOfType<DictionaryAttr>("trainopt.tp_decisions"))
        for (NamedAttribute a : d)
          tpDecision[a.getName()] = cast<StringAttr>(a.getValue()).str();
    func::FuncOp stepFunc = step->func;
    for (BlockArgument arg : stepFunc.getArguments()) {
      auto of = stepFunc.getArgAttrOfType<FlatSymbolRefAttr>(
          arg.getArgNumber(), TrainoptDialect::kStateOfAttrName);
      if (!of)
        continue;
      for (BlockArgument p : stepFunc.getArguments())
        if (stepFunc.getArgAttrOfType<FlatSymbolRefAttr>(
                p.getArgNumber(), TrainoptDialect::kParamAttrName) == of &&
            p.getType() == arg.getType())
          for (StringRef name : {TrainoptDialect::kShardingAttrName,
                                 TrainoptDialect::kGlobalTypeAttrName})
            if (Attribute a = stepFunc.getArgAttr(p.getArgNumber(), name))
              stepFunc.setArgAttr(arg.getArgNumber(), name, a);
    }
    SmallVector<GradSyncOp> syncs;
    step->func.walk([&](GradSyncOp s) { syncs.push_back(s); });
    if (dp == 1) {
      for (GradSyncOp s : syncs) {
        s.replaceAllUsesWith(s.getGradient());
        s.erase();
      }
      // This program's parameters only (a pipeline stage holds some).
      SmallVector<NamedAttribute> decisions;
      for (const auto &entry : tpDecision)
        if (step->parameter(entry.getKey()))
          decisions.push_back(b.getNamedAttr(
              entry.getKey(), b.getStringAttr(entry.getValue())));
      step->func->setAttr("trainopt.sharding_decisions",
                          b.getDictionaryAttr(decisions));
      return;
    }
    Block &body = step->func.getBody().front();
    llvm::DenseMap<Operation *, int64_t> position;
    for (auto [i, op] : llvm::enumerate(body))
      position[&op] = i;
    for (GradSyncOp s : syncs)
      if (s->getBlock() != &body) {
        s.emitOpError("must be in @train_step's body to be sharded");
        return signalPassFailure();
      }
    auto dpAxes = b.getDenseI16ArrayAttr({dpAxis});
    auto sum =
        CollectiveReductionAttr::get(&getContext(), CollectiveReduction::sum);
    double inverse = 1.0 / static_cast<double>(dp);
    // The gradients in the order the backward completes them.
    llvm::stable_sort(syncs, [&](GradSyncOp x, GradSyncOp y) {
      return readyAt(x.getGradient(), position) <
             readyAt(y.getGradient(), position);
    });
    // Buckets of one element type, closed when the next gradient would pass
    // the cap; placed after their last gradient's definition.
    const uint64_t cap = static_cast<uint64_t>(bucketMb * 1024.0 * 1024.0);
    struct Bucket {
      Type element;
      uint64_t bytes = 0;
      SmallVector<GradSyncOp> syncs;
    };
    SmallVector<Bucket> buckets;
    llvm::DenseMap<Type, size_t> open;
    for (GradSyncOp s : syncs) {
      auto t = cast<RankedTensorType>(s.getGradient().getType());
      uint64_t bytes = static_cast<uint64_t>(t.getNumElements()) *
                       ((t.getElementTypeBitWidth() + 7) / 8);
      auto it = open.find(t.getElementType());
      if (it == open.end() || (buckets[it->second].bytes + bytes > cap &&
                               !buckets[it->second].syncs.empty())) {
        buckets.push_back({t.getElementType()});
        open[t.getElementType()] = buckets.size() - 1;
        it = open.find(t.getElementType());
      }
      buckets[it->second].bytes += bytes;
      buckets[it->second].syncs.push_back(s);
    }
    llvm::DenseMap<Attribute, CombinedGradient> combined;
    // Buckets are placed in readiness order: a bucket whose last gradient
    // comes from the same op as the previous bucket's goes after it.
    Operation *previous = nullptr;
    for (Bucket &bucket : buckets) {
      SmallVector<Value> grads;
      Value last;
      for (GradSyncOp s : bucket.syncs) {
        grads.push_back(s.getGradient());
        if (!last ||
            readyAt(s.getGradient(), position) > readyAt(last, position))
          last = s.getGradient();
      }
      // After the last gradient's definition; once the gradient function
      // is inlined, trainopt-schedule-collectives moves it up to where the
      // backward computes that gradient.
      Operation *after = last.getDefiningOp();
      if (previous && (!after || after->isBeforeInBlock(previous)))
        after = previous;
      if (after)
        b.setInsertionPointAfter(after);
      else
        b.setInsertionPointToStart(&body);
      auto reduce =
          AllReduceOp::create(b, last.getLoc(), grads, gridRef, dpAxes, sum);
      previous = reduce;
      for (auto [i, s, r] :
           llvm::enumerate(bucket.syncs, reduce.getResults())) {
        b.setInsertionPoint(s);
        TensorBuilder m(b, s.getLoc());
        Value mean = m.mul(r, inverse);
        combined[s.getParamAttr()] = {reduce, static_cast<unsigned>(i), mean};
        s.replaceAllUsesWith(mean);
        s.erase();
      }
    }

    // Accumulated gradients are each rank's own until they are combined:
    // a checkpoint holds their mean (docs/distributed.md).
    for (BlockArgument arg : step->func.getArguments())
      if (auto state = step->func.getArgAttrOfType<StringAttr>(
              arg.getArgNumber(), TrainoptDialect::kStateAttrName);
          state && state.getValue() == "grad_accum")
        step->func.setArgAttr(arg.getArgNumber(),
                              TrainoptDialect::kShardingAttrName,
                              b.getStringAttr("dp:mean"));

    // ZeRO-1: each trainable parameter's optimizer state, flat over dp.
    SmallVector<NamedAttribute> decisions;
    SmallVector<ScatteredGradient> scattered;
    SmallVector<std::tuple<unsigned, BlockArgument, FlatSymbolRefAttr>> zero3;
    auto note = [&](StringRef param, const Twine &why) {
      auto tp = tpDecision.find(param);
      decisions.push_back(b.getNamedAttr(
          param, b.getStringAttr(tp == tpDecision.end()
                                     ? why.str()
                                     : tp->getValue() + "; " + why.str())));
    };
    for (unsigned i = 0, e = step->returnOp().getNumOperands(); i < e; ++i) {
      auto updates = step->func.getResultAttrOfType<IntegerAttr>(
          i, TrainoptDialect::kUpdatesAttrName);
      if (!updates)
        continue;
      BlockArgument arg = step->func.getArgument(updates.getInt());
      auto param = step->func.getArgAttrOfType<FlatSymbolRefAttr>(
          arg.getArgNumber(), TrainoptDialect::kParamAttrName);
      auto declared = param ? SymbolTable::lookupNearestSymbolFrom<ParameterOp>(
                                  step->func, param)
                            : ParameterOp();
      // Frozen values (BatchNorm statistics) are model state, not trained.
      if (!declared || !declared.getTrainable())
        continue;
      SmallVector<std::pair<BlockArgument, unsigned>> slots;
      for (unsigned j = 0; j < e; ++j) {
        auto u = step->func.getResultAttrOfType<IntegerAttr>(
            j, TrainoptDialect::kUpdatesAttrName);
        if (!u)
          continue;
        unsigned a = u.getInt();
        auto of = step->func.getArgAttrOfType<FlatSymbolRefAttr>(
            a, TrainoptDialect::kStateOfAttrName);
        auto state = step->func.getArgAttrOfType<StringAttr>(
            a, TrainoptDialect::kStateAttrName);
        // Accumulated gradients are combined whole, before the update.
        if (of == param && state && state.getValue() != "grad_accum")
          slots.push_back({step->func.getArgument(a), j});
      }
      std::string replicated = "replicated over dp (data parallel)";
      if (zero < 1) {
        note(param.getValue(), replicated);
        continue;
      }
      if (slots.empty()) {
        note(param.getValue(), replicated + "; its optimizer has no state "
                                            "to shard");
        continue;
      }
      std::string why =
          shardOptimizerState(*step, i, arg, slots, gridRef, dpAxis, dp);
      if (!why.empty()) {
        note(param.getValue(),
             replicated + "; optimizer state kept whole: " + why);
        continue;
      }
      std::string sharded = "its " + std::to_string(slots.size()) +
                            " optimizer slot(s) flat over dp (ZeRO-1), each "
                            "rank updating 1/" +
                            std::to_string(dp) + " of it";
      auto found = combined.find(param);
      ScatteredGradient g;
      if (zero >= 2 && found != combined.end()) {
        g.combined = found->second;
        g.numel = cast<RankedTensorType>(arg.getType()).getNumElements();
        why = findShardReaders(g);
      } else if (zero >= 2) {
        why = "its gradient is not combined by a bucket";
      }
      if (zero < 2) {
        note(param.getValue(), "replicated over dp; " + sharded);
      } else if (!why.empty()) {
        note(param.getValue(), "replicated over dp; " + sharded +
                                   "; gradient all-reduced whole: " + why);
      } else {
        scattered.push_back(std::move(g));
        zero3.push_back({i, arg, param});
        note(param.getValue(),
             (zero == 3 ? "flat over dp (ZeRO-3), gathered whole at the "
                          "start of each step; "
                        : "replicated over dp; ") +
                 sharded + "; its gradient reduce-scattered (ZeRO-2)");
      }
    }
    scatterGradients(scattered, gridRef, dpAxis, dp, inverse);
    llvm::DenseMap<Operation *, Operation *> gatherTail;
    if (zero == 3)
      for (auto [result, arg, param] : zero3)
        shardParameter(module, *step, result, arg, param, gridRef, dpAxis, dp,
                       gatherTail);
    step->func->setAttr("trainopt.sharding_decisions",
                        b.getDictionaryAttr(decisions));

    // The loss every rank reports: the global batch's.
    FailureOr<Value> loss = step->loss(getArgument());
    if (failed(loss))
      return signalPassFailure();
    for (unsigned i : step->resultsWithRole(ValueRole::loss)) {
      b.setInsertionPoint(step->returnOp());
      TensorBuilder m(b, loss->getLoc());
      auto reduce = AllReduceOp::create(b, loss->getLoc(), ValueRange{*loss},
                                        gridRef, dpAxes, sum);
      step->setResult(i, m.mul(reduce.getResult(0), inverse));
    }
  }
};

} // namespace

std::vector<TrainingOption> mlir::trainopt::stage_options::shardStepOptions() {
  TrainoptShardStepPass pass;
  return passOptionsOf(pass.anyOption(), pass.getArgument());
}
