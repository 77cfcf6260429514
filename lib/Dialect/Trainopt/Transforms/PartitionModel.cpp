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

/// The column-parallel start of a block: matmul(x, W) with W a 2-D
/// parameter it alone reads, and an optional bias `+ b` only that add
/// reads. `out` is the bias's result, or the matmul's.
struct Projection {
  BlockArgument w, b;
  AddOp bias;
  int64_t wDim = 0, features = 0;
  Value out;
};

FailureOr<Projection> matchProjection(func::FuncOp f, MatmulOp first,
                                      std::string &why) {
  Projection p;
  p.w = ownParameter(f, first.getRhs(), first, 2);
  if (first.getTransposeLhs() || !p.w) {
    why = first.getTransposeLhs()
              ? "its matmul transposes its input"
              : "its matmul's weight is not a 2-D parameter read by it alone";
    return failure();
  }
  p.wDim = first.getTransposeRhs() ? 0 : 1;
  p.features = cast<RankedTensorType>(p.w.getType()).getDimSize(p.wDim);
  p.out = first.getResult();
  if (auto add = p.out.hasOneUse() ? dyn_cast<AddOp>(*p.out.getUsers().begin())
                                   : AddOp()) {
    Value other = add.getLhs() == p.out ? add.getRhs() : add.getLhs();
    if (BlockArgument b = ownParameter(f, other, add, 1);
        b && cast<RankedTensorType>(b.getType()).getDimSize(0) == p.features) {
      p.b = b;
      p.bias = add;
      p.out = add.getResult();
    }
  }
  return p;
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
  FailureOr<Projection> p = matchProjection(f, first, why);
  if (failed(p))
    return failure();
  blk.w1 = p->w;
  blk.b1 = p->b;
  blk.bias1 = p->bias;
  blk.w1Dim = p->wDim;
  blk.hidden = p->features;
  Value h = p->out;
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

/// Attention with its heads split over tp (Megatron-LM): the fused
/// projection matmul(x, W_qkv) [+ b_qkv], split into q, k and v along the
/// features, the per-head computation (reshapes that make the heads a dim,
/// transposes, batched matmuls, softmax, elementwise ops with broadcast
/// constants such as the causal mask), back to features, then
/// matmul(., W_o). Each rank computes its 1/tp of the heads: W_qkv and
/// b_qkv keep each rank's part of each of q, k and v (`"tp:D/3"`), W_o
/// its rows for those features (row parallel), and the partial products
/// are all-reduced.
struct Attention {
  MatmulOp first, second;
  BlockArgument w1, b1, w2;
  AddOp bias1;
  SplitOp split;
  int64_t w1Dim = 0, w2Dim = 0, blocks = 0;
  /// The per-head ops in program order, with the dim of their results that
  /// the heads (or the features holding them) are split along.
  SmallVector<std::pair<Operation *, int64_t>> region;
};

/// The dim of `op`'s result that holds the heads when its operands' are
/// `dimOf`'s (-1: `op` cannot be split along the heads).
int64_t headDim(Operation *op, const llvm::DenseMap<Value, int64_t> &dimOf,
                int64_t tp) {
  auto known = [&](Value v) {
    auto it = dimOf.find(v);
    return it == dimOf.end() ? int64_t(-1) : it->second;
  };
  auto shape = [](Value v) {
    return cast<RankedTensorType>(v.getType()).getShape();
  };
  if (auto r = dyn_cast<ReshapeOp>(op)) {
    // The heads stay whole rows of the same outer block: dim d of the input
    // and d' of the result with the same product before them.
    int64_t d = known(r.getX());
    ArrayRef<int64_t> in = shape(r.getX()), out = shape(r.getResult());
    int64_t before = 1;
    for (int64_t i = 0; i < d; ++i)
      before *= in[i];
    for (int64_t j = 0, prod = 1; j < static_cast<int64_t>(out.size());
         prod *= out[j], ++j)
      if (prod == before && out[j] % tp == 0 && out[j] > 1)
        return j;
    return -1;
  }
  if (auto t = dyn_cast<TransposeOp>(op)) {
    int64_t d = known(t.getX());
    for (auto [i, p] : llvm::enumerate(t.getPermutation()))
      if (p == d)
        return static_cast<int64_t>(i);
    return -1;
  }
  if (auto m = dyn_cast<MatmulOp>(op)) {
    // A batched matmul of two per-head operands, the heads a batch dim.
    int64_t a = known(m.getLhs()), b = known(m.getRhs());
    int64_t rank = shape(m.getLhs()).size();
    return a == b && a >= 0 && a < rank - 2 &&
                   static_cast<int64_t>(shape(m.getRhs()).size()) == rank
               ? a
               : -1;
  }
  if (auto sm = dyn_cast<SoftmaxOp>(op)) {
    int64_t d = known(sm.getX());
    int64_t rank = shape(sm.getX()).size();
    // The attribute is an I64Attr read as uint64_t: -1 is the last dim.
    int64_t axis = static_cast<int64_t>(sm.getAxis());
    axis = axis < 0 ? axis + rank : axis;
    return axis == d ? -1 : d;
  }
  if (isElementwise(op)) {
    // The per-head operands agree; the others broadcast along the heads.
    int64_t rank = shape(op->getResult(0)).size(), d = -1;
    for (Value o : op->getOperands())
      if (int64_t k = known(o); k >= 0) {
        if ((d >= 0 && k != d) || static_cast<int64_t>(shape(o).size()) != rank)
          return -1;
        d = k;
      }
    for (Value o : op->getOperands()) {
      if (known(o) >= 0)
        continue;
      int64_t pos = d - (rank - static_cast<int64_t>(shape(o).size()));
      if (pos >= 0 && shape(o)[pos] != 1)
        return -1;
    }
    return d;
  }
  return -1;
}

/// The attention block that starts at `first`, or why there is none.
/// `split` is set once the q, k, v split is found: then `why` is the
/// attention's own reason.
FailureOr<Attention> matchAttention(func::FuncOp f, MatmulOp first, int64_t tp,
                                    std::string &why, bool &split) {
  Attention at;
  at.first = first;
  FailureOr<Projection> p = matchProjection(f, first, why);
  if (failed(p))
    return failure();
  at.w1 = p->w;
  at.b1 = p->b;
  at.bias1 = p->bias;
  at.w1Dim = p->wDim;
  Value h = p->out;
  auto single = [](Value v) -> Operation * {
    return v.hasOneUse() ? *v.getUsers().begin() : nullptr;
  };
  int64_t rank = cast<RankedTensorType>(h.getType()).getRank();
  at.split = dyn_cast_or_null<SplitOp>(single(h));
  if (!at.split ||
      (static_cast<int64_t>(at.split.getAxis()) != rank - 1 &&
       static_cast<int64_t>(at.split.getAxis()) != -1) ||
      at.split.getSizes().size() < 2 || !llvm::all_equal(at.split.getSizes())) {
    why = "its matmul is not followed, through a bias and elementwise ops, "
          "by a second one to pair with (column then row split), nor split "
          "into equal parts (an attention's q, k and v)";
    return failure();
  }
  at.blocks = static_cast<int64_t>(at.split.getSizes().size());
  split = true;
  // The per-head region, in program order from the split.
  llvm::DenseMap<Value, int64_t> dimOf;
  for (Value r : at.split.getResults())
    dimOf[r] = rank - 1;
  for (Operation *op = at.split->getNextNode(); op; op = op->getNextNode()) {
    if (!llvm::any_of(op->getOperands(),
                      [&](Value v) { return dimOf.count(v); }))
      continue;
    auto m = dyn_cast<MatmulOp>(op);
    if (m && !dimOf.count(m.getRhs()) &&
        dimOf.lookup(m.getLhs()) ==
            TensorBuilder::type(m.getLhs()).getRank() - 1) {
      // The output projection: its contraction runs over the heads'
      // features.
      if (at.second) {
        why = "the attention's heads reach two output projections";
        return failure();
      }
      at.second = m;
      continue;
    }
    int64_t d = headDim(op, dimOf, tp);
    if (d < 0 || op->getNumResults() != 1) {
      why = isa<ReshapeOp>(op)
                ? ("a reshape of the attention does not make a dim of whole "
                   "heads that tp=" +
                   Twine(tp) + " divides")
                      .str()
                : ("'" + op->getName().getStringRef() +
                   "' cannot be computed per head (it reduces over the "
                   "heads, or this pass does not split it)")
                      .str();
      return failure();
    }
    dimOf[op->getResult(0)] = d;
    at.region.push_back({op, d});
  }
  if (!at.second || at.second.getTransposeLhs()) {
    why = "the attention's heads do not reach an output projection";
    return failure();
  }
  // Every per-head value is read inside the region or by the projection.
  for (auto &[value, d] : dimOf)
    for (Operation *u : value.getUsers())
      if (u != at.second.getOperation() &&
          !llvm::any_of(at.region,
                        [&](const auto &r) { return r.first == u; })) {
        why = "a per-head value is read outside the attention";
        return failure();
      }
  at.w2 = ownParameter(f, at.second.getRhs(), at.second, 2);
  if (!at.w2) {
    why = "the output projection's weight is not a 2-D parameter read by it "
          "alone";
    return failure();
  }
  at.w2Dim = at.second.getTransposeRhs() ? 1 : 0;
  int64_t perPart = at.split.getSizes()[0];
  if (cast<RankedTensorType>(at.w2.getType()).getDimSize(at.w2Dim) != perPart ||
      perPart % tp) {
    why = "the output projection does not read the heads' features whole, "
          "or tp does not divide them";
    return failure();
  }
  return at;
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

  /// Splits attention `at` over the heads: the shards of its weights, the
  /// projection's input entering the group, the per-head values' types
  /// (their head dim divided by tp), and the sum of the output
  /// projection's partial products.
  template <typename Shard>
  bool splitAttention(Attention &at, FlatSymbolRefAttr gridRef,
                      DenseI16ArrayAttr tpAxes, Shard &shard) {
    int64_t tp = 0;
    auto grid =
        SymbolTable::lookupNearestSymbolFrom<shard::GridOp>(at.first, gridRef);
    tp = grid.getShape()[tpAxes[0]];
    if (!shard(at.w1, at.w1Dim, at.blocks) ||
        (at.b1 && !shard(at.b1, 0, at.blocks)) || !shard(at.w2, at.w2Dim))
      return false;
    OpBuilder b(at.first);
    at.first.getLhsMutable().assign(CopyToGroupOp::create(
        b, at.first.getLoc(), at.first.getLhs(), gridRef, tpAxes));
    at.first.getResult().setType(split(at.first.getType(), -1, tp));
    if (at.bias1)
      at.bias1.getResult().setType(split(at.bias1.getType(), -1, tp));
    SmallVector<int64_t> sizes;
    for (int64_t n : at.split.getSizes())
      sizes.push_back(n / tp);
    at.split.setSizes(sizes);
    for (Value r : at.split.getResults())
      r.setType(split(r.getType(), -1, tp));
    for (auto [op, d] : at.region)
      op->getResult(0).setType(split(op->getResult(0).getType(), d, tp));
    b.setInsertionPointAfter(at.second);
    auto sum =
        CollectiveReductionAttr::get(&getContext(), CollectiveReduction::sum);
    auto reduce = AllReduceOp::create(b, at.second.getLoc(),
                                      ValueRange{at.second.getResult()},
                                      gridRef, tpAxes, sum);
    at.second.getResult().replaceAllUsesExcept(reduce.getResult(0), reduce);
    return true;
  }

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
    for (auto [index, each] : llvm::enumerate(*axes)) {
      // Copies for the lambda: C++17 lambdas cannot capture bindings.
      int64_t i = index, ranks = each.second;
      if (syncBn && each.first == "dp")
        f.walk([&](Operation *bn) {
          if (!isa<BatchNormInferenceOp, BatchNormTrainOp>(bn))
            return;
          bn->setAttr(
              kSyncStatsAttrName,
              b.getDictionaryAttr(
                  {b.getNamedAttr("grid", gridRef),
                   b.getNamedAttr("axes", b.getDenseI16ArrayAttr({int16_t(i)})),
                   b.getNamedAttr("ranks", b.getI64IntegerAttr(ranks))}));
        });
    }
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
    auto shard = [&](BlockArgument a, int64_t dim, int64_t blocks = 1) {
      auto global = cast<RankedTensorType>(a.getType());
      if (global.getDimSize(dim) % (tp * blocks)) {
        f.emitError() << "--mesh: tp=" << tp << " does not divide dim " << dim
                      << " of parameter @" << paramName(f, a) << " ("
                      << global << ")";
        return false;
      }
      a.setType(split(global, dim, tp));
      f.setArgAttr(a.getArgNumber(), TrainoptDialect::kShardingAttrName,
                   b.getStringAttr("tp:" + std::to_string(dim) +
                                   (blocks > 1 ? "/" + std::to_string(blocks)
                                               : std::string())));
      f.setArgAttr(a.getArgNumber(), TrainoptDialect::kGlobalTypeAttrName,
                   TypeAttr::get(global));
      return true;
    };
    for (MatmulOp m : matmuls) {
      if (done.contains(m))
        continue;
      FailureOr<Block2> blk = matchBlock(f, m, why);
      std::string pairWhy = why;
      bool attention = false;
      FailureOr<Attention> at = failed(blk)
                                    ? matchAttention(f, m, tp, why, attention)
                                    : FailureOr<Attention>();
      if (failed(blk) && succeeded(at)) {
        if (!splitAttention(*at, gridRef, tpAxes, shard))
          return signalPassFailure();
        done.insert(at->second);
        std::string pair = "the attention of @" + paramName(f, at->w1).str() +
                           " and @" + paramName(f, at->w2).str();
        note(paramName(f, at->w1),
             "column-parallel over tp by heads (dim " + Twine(at->w1Dim) +
                 " split as " + Twine(at->blocks) + " blocks, 1/" + Twine(tp) +
                 " of the heads of each per rank), " + pair);
        if (at->b1)
          note(paramName(f, at->b1),
               "split over tp with its weight's heads, " + pair);
        note(paramName(f, at->w2),
             "row-parallel over tp (dim " + Twine(at->w2Dim) +
                 " split, the "
                 "features of this rank's heads; the partial products "
                 "all-reduced), " +
                 pair);
        continue;
      }
      if (failed(blk)) {
        if (BlockArgument w = dyn_cast<BlockArgument>(m.getRhs());
            w && f.getArgAttr(w.getArgNumber(), TrainoptDialect::kParamAttrName))
          note(paramName(f, w),
               "replicated over tp: " + (attention ? why : pairWhy));
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
