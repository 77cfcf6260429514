//===- PartitionModel.cpp - the mesh and tensor parallelism ---------------===//
//
/// \file
/// `trainopt-partition-model`, the first training stage: declares the mesh
/// (an upstream `shard.grid`) and, over its `tp` axis, splits the model
/// function's consecutive matmul pairs Megatron-style, before autodiff
/// derives the backward from the split forward. Data parallelism and ZeRO
/// come last (trainopt-shard-step), once the step exists.
//
//===----------------------------------------------------------------------===//

#include "trainopt/Dialect/Trainopt/IR/TensorBuilder.h"
#include "trainopt/Dialect/Trainopt/Transforms/Passes.h"
#include "trainopt/Dialect/Trainopt/Transforms/TrainStep.h"
#include "trainopt/Dialect/Trainopt/Transforms/TrainingPipeline.h"

#include "mlir/Dialect/Shard/IR/ShardDialect.h"
#include "mlir/Dialect/Shard/IR/ShardOps.h"
#include "mlir/IR/Builders.h"
#include "llvm/ADT/SetVector.h"
#include "llvm/ADT/StringSet.h"

namespace mlir::trainopt {
#define GEN_PASS_DEF_TRAINOPTPARTITIONMODEL
#include "trainopt/Dialect/Trainopt/Transforms/Passes.h.inc"
} // namespace mlir::trainopt

using namespace mlir;
using namespace mlir::trainopt;

namespace {

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

/// A trainable 2-D (weight) or 1-D (bias) parameter argument of `f` that
/// only `user` reads, or null.
BlockArgument ownParameter(func::FuncOp f, Value v, Operation *user,
                           int64_t rank) {
  auto arg = dyn_cast<BlockArgument>(v);
  if (!arg || arg.getOwner() != &f.getBody().front() ||
      !f.getArgAttr(arg.getArgNumber(), TrainoptDialect::kParamAttrName) ||
      cast<RankedTensorType>(arg.getType()).getRank() != rank ||
      !llvm::all_of(arg.getUsers(), [&](Operation *u) { return u == user; }))
    return {};
  return arg;
}

/// The parameter name of argument `a`.
StringRef paramName(func::FuncOp f, BlockArgument a) {
  return f.getArgAttrOfType<FlatSymbolRefAttr>(a.getArgNumber(),
                                               TrainoptDialect::kParamAttrName)
      .getValue();
}

/// One Megatron MLP block: matmul(x, W1) [+ b1], elementwise ops (with
/// scalar constants), matmul(., W2) [+ b2]. W1 is split along its output features (column
/// parallel) with b1, W2 along its input features (row parallel); b2 stays
/// whole and is added after the partial products are summed.
struct Block2 {
  MatmulOp first, second;
  BlockArgument w1, b1, w2;
  AddOp bias1;
  SmallVector<Operation *> chain; // elementwise ops between the two
  int64_t hidden = 0;
  int64_t w1Dim = 0, w2Dim = 0; // the split dims
};

/// The block that starts at `first`, or why there is none.
FailureOr<Block2> matchBlock(func::FuncOp f, MatmulOp first,
                             std::string &why) {
  Block2 blk;
  blk.first = first;
  if (first.getTransposeLhs()) {
    why = "its matmul transposes its input";
    return failure();
  }
  blk.w1 = ownParameter(f, first.getRhs(), first, 2);
  if (!blk.w1) {
    why = "its matmul's weight is not a 2-D parameter read by it alone";
    return failure();
  }
  auto w1 = cast<RankedTensorType>(blk.w1.getType());
  blk.w1Dim = first.getTransposeRhs() ? 0 : 1;
  blk.hidden = w1.getDimSize(blk.w1Dim);
  Value h = first.getResult();
  auto single = [](Value v) -> Operation * {
    return v.hasOneUse() ? *v.getUsers().begin() : nullptr;
  };
  if (auto add = dyn_cast_or_null<AddOp>(single(h))) {
    Value other = add.getLhs() == h ? add.getRhs() : add.getLhs();
    if (BlockArgument b = ownParameter(f, other, add, 1);
        b && cast<RankedTensorType>(b.getType()).getDimSize(0) == blk.hidden) {
      blk.b1 = b;
      blk.bias1 = add;
      h = add.getResult();
    }
  }
  // The elementwise ops from h to the second matmul (GELU is a small DAG
  // of them), each result of h's shape, every other operand a scalar.
  llvm::SetVector<Value> region;
  region.insert(h);
  MatmulOp second;
  bool ok = true;
  for (size_t i = 0; ok && i < region.size(); ++i)
    for (Operation *u : region[i].getUsers()) {
      if (auto m = dyn_cast<MatmulOp>(u); m && m.getLhs() == region[i]) {
        ok = ok && (!second || second == m);
        second = m;
        continue;
      }
      ok = ok && isElementwise(u) &&
           u->getResult(0).getType() == h.getType();
      if (ok && region.insert(u->getResult(0)))
        blk.chain.push_back(u);
    }
  // Their other operands are scalars (checked once the region is whole: an
  // op may read two region values found at different times).
  ok = ok && llvm::all_of(blk.chain, [&](Operation *op) {
         return llvm::all_of(op->getOperands(), [&](Value o) {
           return region.contains(o) ||
                  cast<RankedTensorType>(o.getType()).getRank() == 0;
         });
       });
  // Every region value is read inside it or by the second matmul only.
  bool closed =
      ok && second && !second.getTransposeLhs() &&
      llvm::all_of(region, [&](Value v) {
        return llvm::all_of(v.getUsers(), [&](Operation *u) {
          return u == second.getOperation() ||
                 llvm::is_contained(blk.chain, u);
        });
      });
  if (!closed) {
    why = "its matmul is not followed, through a bias and elementwise ops, "
          "by a second one to pair with (column then row split)";
    return failure();
  }
  blk.second = second;
  blk.w2 = ownParameter(f, second.getRhs(), second, 2);
  if (!blk.w2) {
    why = "the following matmul's weight is not a 2-D parameter read by it "
          "alone";
    return failure();
  }
  blk.w2Dim = second.getTransposeRhs() ? 1 : 0;
  if (cast<RankedTensorType>(blk.w2.getType()).getDimSize(blk.w2Dim) !=
      blk.hidden) {
    why = "the two weights do not share the hidden dimension";
    return failure();
  }
  return blk;
}

/// `t` with dim `d` divided by `n`.
RankedTensorType split(Type t, int64_t d, int64_t n) {
  auto r = cast<RankedTensorType>(t);
  SmallVector<int64_t> shape(r.getShape());
  if (d < 0)
    d += r.getRank();
  shape[d] /= n;
  return r.clone(shape);
}

struct TrainoptPartitionModelPass
    : public mlir::trainopt::impl::TrainoptPartitionModelBase<
          TrainoptPartitionModelPass> {
  using TrainoptPartitionModelBase::TrainoptPartitionModelBase;
  /// One option, to list all (TrainingPipeline.h).
  const llvm::cl::Option &anyOption() const { return mesh; }

  void runOnOperation() override {
    ModuleOp module = getOperation();
    if (mesh.empty())
      return;
    auto bad = [&](const Twine &why) {
      module.emitError() << "--mesh: " << why;
      signalPassFailure();
    };
    std::string why;
    FailureOr<SmallVector<std::pair<std::string, int64_t>>> axes =
        parseMesh(mesh, why);
    if (failed(axes))
      return bad(why);
    int64_t pp = 1, tpSize = 1;
    for (const auto &[name, size] : *axes) {
      pp = name == "pp" ? size : pp;
      tpSize = name == "tp" ? size : tpSize;
    }
    if (pp > 1 && tpSize > 1)
      return bad("pp=" + Twine(pp) + " with tp=" + Twine(tpSize) +
                 ": pipeline and tensor parallelism together are not "
                 "implemented yet");
    if (module.lookupSymbol(kMeshSymbolName))
      return bad("the module already has a symbol @" + kMeshSymbolName);
    auto f = module.lookupSymbol<func::FuncOp>(funcName);
    if (!f || f.isExternal()) {
      module.emitError() << "trainopt-partition-model: no function @"
                         << funcName;
      return signalPassFailure();
    }

    // The grid, first in the module so every function sees it.
    OpBuilder b(module.getBodyRegion());
    b.setInsertionPointToStart(module.getBody());
    SmallVector<int64_t> shape;
    SmallVector<Attribute> names;
    int16_t tpAxis = -1;
    int64_t tp = 1;
    for (auto [i, axis] : llvm::enumerate(*axes)) {
      shape.push_back(axis.second);
      names.push_back(b.getStringAttr(axis.first));
      if (axis.first == "tp") {
        tpAxis = static_cast<int16_t>(i);
        tp = axis.second;
      }
    }
    auto grid = shard::GridOp::create(b, module.getLoc(), kMeshSymbolName, shape);
    grid->setAttr(TrainoptDialect::kAxesAttrName, b.getArrayAttr(names));
    auto gridRef = FlatSymbolRefAttr::get(grid.getSymNameAttr());
    // --sync-bn: BatchNorm statistics over the data-parallel group.
    for (auto [i, axis] : llvm::enumerate(*axes))
      if (syncBn && axis.first == "dp")
        f.walk([&](Operation *bn) {
          if (!isa<BatchNormInferenceOp, BatchNormTrainOp>(bn))
            return;
          bn->setAttr(
              kSyncStatsAttrName,
              b.getDictionaryAttr(
                  {b.getNamedAttr("grid", gridRef),
                   b.getNamedAttr("axes", b.getDenseI16ArrayAttr({int16_t(i)})),
                   b.getNamedAttr("ranks", b.getI64IntegerAttr(axis.second))}));
        });
    if (tp == 1)
      return;
    auto tpAxes = b.getDenseI16ArrayAttr({tpAxis});

    // The blocks, in program order; a matmul of a finished block is not
    // the start of another.
    SmallVector<NamedAttribute> decisions;
    llvm::StringSet<> noted;
    auto note = [&](StringRef param, const Twine &text) {
      if (noted.insert(param).second)
        decisions.push_back(
            b.getNamedAttr(param, b.getStringAttr(text.str())));
    };
    llvm::DenseSet<Operation *> done;
    SmallVector<MatmulOp> matmuls;
    f.walk([&](MatmulOp m) { matmuls.push_back(m); });
    auto shard = [&](BlockArgument a, int64_t dim) {
      auto global = cast<RankedTensorType>(a.getType());
      if (global.getDimSize(dim) % tp) {
        f.emitError() << "--mesh: tp=" << tp << " does not divide dim " << dim
                      << " of parameter @" << paramName(f, a) << " ("
                      << global << ")";
        return false;
      }
      a.setType(split(global, dim, tp));
      f.setArgAttr(a.getArgNumber(), TrainoptDialect::kShardingAttrName,
                   b.getStringAttr("tp:" + std::to_string(dim)));
      f.setArgAttr(a.getArgNumber(), TrainoptDialect::kGlobalTypeAttrName,
                   TypeAttr::get(global));
      return true;
    };
    for (MatmulOp m : matmuls) {
      if (done.contains(m))
        continue;
      FailureOr<Block2> blk = matchBlock(f, m, why);
      if (failed(blk)) {
        if (BlockArgument w = dyn_cast<BlockArgument>(m.getRhs());
            w && f.getArgAttr(w.getArgNumber(), TrainoptDialect::kParamAttrName))
          note(paramName(f, w), "replicated over tp: " + why);
        continue;
      }
      done.insert(blk->second);
      // Column parallel: W1 (and b1) split along the hidden features; its
      // input enters the region.
      if (!shard(blk->w1, blk->w1Dim) ||
          (blk->b1 && !shard(blk->b1, 0)) || !shard(blk->w2, blk->w2Dim))
        return signalPassFailure();
      b.setInsertionPoint(blk->first);
      Value x = blk->first.getLhs();
      blk->first.getLhsMutable().assign(
          CopyToGroupOp::create(b, blk->first.getLoc(), x, gridRef, tpAxes));
      SmallVector<Value> hidden{blk->first.getResult()};
      if (blk->bias1)
        hidden.push_back(blk->bias1.getResult());
      for (Value v : hidden)
        v.setType(split(v.getType(), -1, tp));
      for (Operation *op : blk->chain)
        op->getResult(0).setType(split(op->getResult(0).getType(), -1, tp));
      // Row parallel: each rank's product is a partial sum over its hidden
      // features; the sum over tp is whole again.
      b.setInsertionPointAfter(blk->second);
      auto sum = CollectiveReductionAttr::get(&getContext(),
                                              CollectiveReduction::sum);
      auto reduce = AllReduceOp::create(b, blk->second.getLoc(),
                                        ValueRange{blk->second.getResult()},
                                        gridRef, tpAxes, sum);
      blk->second.getResult().replaceAllUsesExcept(reduce.getResult(0),
                                                   reduce);
      std::string pair = "the pair of @" + paramName(f, blk->w1).str() +
                         " and @" + paramName(f, blk->w2).str();
      note(paramName(f, blk->w1),
           "column-parallel over tp (dim " + Twine(blk->w1Dim) +
               " split, 1/" + Twine(tp) + " of its output features per rank), " +
               pair);
      if (blk->b1)
        note(paramName(f, blk->b1), "split over tp with its weight's output "
                                    "features, " +
                                        pair);
      note(paramName(f, blk->w2),
           "row-parallel over tp (dim " + Twine(blk->w2Dim) + " split, 1/" +
               Twine(tp) +
               " of its input features per rank; the partial products "
               "all-reduced), " +
               pair);
    }
    f.setType(FunctionType::get(&getContext(),
                                f.getBody().front().getArgumentTypes(),
                                f.getResultTypes()));
    f->setAttr("trainopt.tp_decisions", b.getDictionaryAttr(decisions));
  }
};

} // namespace

std::vector<TrainingOption>
mlir::trainopt::stage_options::partitionModelOptions() {
  TrainoptPartitionModelPass pass;
  return passOptionsOf(pass.anyOption(), pass.getArgument());
}
