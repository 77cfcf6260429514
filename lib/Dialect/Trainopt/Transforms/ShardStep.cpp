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
#include "llvm/ADT/StringExtras.h"

namespace mlir::trainopt {
#define GEN_PASS_DEF_TRAINOPTSHARDSTEP
#include "trainopt/Dialect/Trainopt/Transforms/Passes.h.inc"
} // namespace mlir::trainopt

using namespace mlir;
using namespace mlir::trainopt;

namespace {

inline constexpr llvm::StringLiteral kGridName = "mesh";

/// `dp=2,tp=1`: axis names and sizes, in the order given.
FailureOr<SmallVector<std::pair<std::string, int64_t>>>
parseMesh(StringRef text, std::string &why) {
  SmallVector<std::pair<std::string, int64_t>> axes;
  SmallVector<StringRef> items;
  text.split(items, ',');
  for (StringRef item : items) {
    auto [name, value] = item.trim().split('=');
    int64_t size = 0;
    if (value.getAsInteger(10, size) || size < 1) {
      why = "'" + item.str() + "' is not AXIS=N with N >= 1";
      return failure();
    }
    if (name != "dp" && name != "tp" && name != "pp") {
      why = "unknown axis '" + name.str() + "' (expected dp, tp or pp)";
      return failure();
    }
    if (llvm::any_of(axes,
                     [&, n = name](const auto &a) { return a.first == n; })) {
      why = "axis '" + name.str() + "' is given twice";
      return failure();
    }
    axes.push_back({name.str(), size});
  }
  return axes;
}

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

struct TrainoptShardStepPass
    : public mlir::trainopt::impl::TrainoptShardStepBase<
          TrainoptShardStepPass> {
  using TrainoptShardStepBase::TrainoptShardStepBase;
  /// One option, to list all (TrainingPipeline.h).
  const llvm::cl::Option &anyOption() const { return mesh; }

  void runOnOperation() override {
    ModuleOp module = getOperation();
    auto bad = [&](StringRef flag, const Twine &why) {
      module.emitError() << "--" << flag << ": " << why;
      signalPassFailure();
    };
    if (mesh.empty()) {
      module.walk([](GradSyncOp sync) {
        sync.replaceAllUsesWith(sync.getGradient());
        sync.erase();
      });
      return;
    }
    std::string why;
    FailureOr<SmallVector<std::pair<std::string, int64_t>>> axes =
        parseMesh(mesh, why);
    if (failed(axes))
      return bad("mesh", why);
    for (const auto &[name, size] : *axes)
      if (name != "dp" && size > 1)
        return bad("mesh", name + "=" + Twine(size) + ": " +
                               (name == "tp" ? "tensor" : "pipeline") +
                               " parallelism is not implemented yet; this "
                               "build shards over dp only");
    if (!(bucketMb > 0.0))
      return bad("bucket-mb", "must be > 0");
    if (module.lookupSymbol(kGridName))
      return bad("mesh", "the module already has a symbol @" + kGridName);

    // The grid, first in the module so every entry point sees it.
    OpBuilder b(module.getBodyRegion());
    b.setInsertionPointToStart(module.getBody());
    SmallVector<int64_t> shape;
    SmallVector<Attribute> names;
    for (const auto &[name, size] : *axes) {
      shape.push_back(size);
      names.push_back(b.getStringAttr(name));
    }
    auto grid = shard::GridOp::create(b, module.getLoc(), kGridName, shape);
    grid->setAttr(TrainoptDialect::kAxesAttrName, b.getArrayAttr(names));
    auto gridRef = FlatSymbolRefAttr::get(grid.getSymNameAttr());
    int16_t dpAxis = -1;
    int64_t dp = 1;
    for (auto [i, axis] : llvm::enumerate(*axes))
      if (axis.first == "dp") {
        dpAxis = static_cast<int16_t>(i);
        dp = axis.second;
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
    SmallVector<GradSyncOp> syncs;
    step->func.walk([&](GradSyncOp s) { syncs.push_back(s); });
    if (dp == 1) {
      for (GradSyncOp s : syncs) {
        s.replaceAllUsesWith(s.getGradient());
        s.erase();
      }
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
      for (auto [s, r] : llvm::zip(bucket.syncs, reduce.getResults())) {
        b.setInsertionPoint(s);
        TensorBuilder m(b, s.getLoc());
        s.replaceAllUsesWith(m.mul(r, inverse));
        s.erase();
      }
    }

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
