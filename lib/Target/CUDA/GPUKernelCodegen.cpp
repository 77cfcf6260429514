//===- GPUKernelCodegen.cpp - kernels to PTX ------------------------------===//
//
/// \file
/// Implements compileKernelsToPTX (CUDATarget.h). Per outlined kernel:
///
/// 1. the bufferized memref function (KernelModule.h), loops folded;
/// 2. every linalg.generic gets its parallel loops first (reductions stay
///    innermost, computed by one thread), then `convert-linalg-to-parallel-
///    loops`;
/// 3. every outermost scf.parallel is folded to one dim and tiled by the
///    block size; `gpu-map-parallel-loops` maps the tiles to blocks and the
///    iterations to threads, `convert-parallel-loops-to-gpu` makes the
///    launches; constants are sunk into the launch bodies, so every launch
///    takes only buffers;
/// 4. `gpu-kernel-outlining`, `nvvm-attach-target` (arch, O3, libdevice),
///    `convert-gpu-to-nvvm` with bare-pointer buffers, and
///    `gpu-module-to-binary{format=isa}`: LLVM's NVPTX back end writes PTX.
///
/// The host side that remains is a list of `gpu.launch_func` with constant
/// 1-D grids and blocks over the function's buffers (or views of them),
/// which becomes the kernel's launch list.
//
//===----------------------------------------------------------------------===//

#include "trainopt/Target/CUDA/CUDATarget.h"

#include "trainopt/Target/KernelModule.h"

#include "mlir/Dialect/Affine/IR/AffineOps.h"
#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/Dialect/GPU/IR/GPUDialect.h"
#include "mlir/Dialect/GPU/Transforms/Passes.h"
#include "mlir/Dialect/LLVMIR/NVVMDialect.h"
#include "mlir/Dialect/Linalg/IR/Linalg.h"
#include "mlir/Dialect/Linalg/Transforms/Transforms.h"
#include "mlir/Dialect/MemRef/IR/MemRef.h"
#include "mlir/Dialect/SCF/IR/SCF.h"
#include "mlir/Dialect/SCF/Transforms/Transforms.h"
#include "mlir/Dialect/SCF/Utils/Utils.h"
#include "mlir/IR/PatternMatch.h"
#include "mlir/Pass/PassManager.h"
#include "mlir/Pass/PassRegistry.h"
#include "mlir/Target/LLVM/NVVM/Target.h"
#include "mlir/Target/LLVMIR/Dialect/All.h"
#include "mlir/Transforms/GreedyPatternRewriteDriver.h"
#include "mlir/Transforms/RegionUtils.h"
#include "llvm/Support/FileSystem.h"
#include "llvm/Support/raw_ostream.h"

#include <numeric>

using namespace mlir;
using mlir::trainopt::CUDATargetOptions;
using mlir::trainopt::GPUKernel;
using mlir::trainopt::GPUKernels;
using mlir::trainopt::GPULaunch;

namespace {

LogicalResult fail(Operation *op, const Twine &message) {
  return op->emitError() << "CUDA code generation: " << message;
}

/// Puts the parallel loops of every generic before its reductions.
LogicalResult parallelLoopsFirst(ModuleOp kmod) {
  SmallVector<linalg::GenericOp> generics;
  kmod.walk([&](linalg::GenericOp g) { generics.push_back(g); });
  IRRewriter rewriter(kmod.getContext());
  for (linalg::GenericOp g : generics) {
    SmallVector<unsigned> order;
    SmallVector<utils::IteratorType> iterators = g.getIteratorTypesArray();
    for (unsigned d = 0; d < iterators.size(); ++d)
      if (linalg::isParallelIterator(iterators[d]))
        order.push_back(d);
    for (unsigned d = 0; d < iterators.size(); ++d)
      if (!linalg::isParallelIterator(iterators[d]))
        order.push_back(d);
    bool identity = true;
    for (unsigned d = 0; d < order.size(); ++d)
      identity &= order[d] == d;
    if (identity)
      continue;
    rewriter.setInsertionPoint(g);
    if (failed(linalg::interchangeGenericOp(rewriter, g, order)))
      return fail(g, "cannot put the parallel loops first");
  }
  return success();
}

/// Reductions at least this long get a block of threads per output.
constexpr int64_t kBlockReductionMin = 256;

/// How output `i` of a reduction generic folds a value into its
/// accumulator: the op that combines the output's block argument with the
/// rest of the body and is yielded directly (`out = f(ins) + out`), its
/// gpu.all_reduce kind and identity.
struct Combiner {
  Operation *op = nullptr;
  gpu::AllReduceOperation kind;
  double identity = 0;
};

std::optional<Combiner> combinerOf(linalg::GenericOp g, unsigned i) {
  Block &body = g.getRegion().front();
  BlockArgument acc = body.getArgument(g.getNumDpsInputs() + i);
  if (!acc.hasOneUse())
    return std::nullopt;
  Operation *op = *acc.getUsers().begin();
  auto yield = cast<linalg::YieldOp>(body.getTerminator());
  if (op->getNumResults() != 1 || yield.getOperand(i) != op->getResult(0) ||
      op->getNumOperands() != 2 || op->getOperand(0) == op->getOperand(1))
    return std::nullopt;
  double inf = std::numeric_limits<double>::infinity();
  Combiner c;
  c.op = op;
  if (isa<arith::AddFOp>(op))
    c.kind = gpu::AllReduceOperation::ADD, c.identity = 0;
  else if (isa<arith::MulFOp>(op))
    c.kind = gpu::AllReduceOperation::MUL, c.identity = 1;
  else if (isa<arith::MaximumFOp>(op))
    c.kind = gpu::AllReduceOperation::MAXIMUMF, c.identity = -inf;
  else if (isa<arith::MaxNumFOp>(op))
    c.kind = gpu::AllReduceOperation::MAXNUMF, c.identity = -inf;
  else if (isa<arith::MinimumFOp>(op))
    c.kind = gpu::AllReduceOperation::MINIMUMF, c.identity = inf;
  else if (isa<arith::MinNumFOp>(op))
    c.kind = gpu::AllReduceOperation::MINNUMF, c.identity = inf;
  else
    return std::nullopt;
  return c;
}

/// Splits `linear` into indices over `extents` (row-major).
SmallVector<Value> delinearize(OpBuilder &b, Location loc, Value linear,
                               ArrayRef<int64_t> extents) {
  SmallVector<Value> out(extents.size());
  for (size_t i = extents.size(); i-- > 0;) {
    Value extent = arith::ConstantIndexOp::create(b, loc, extents[i]);
    out[i] = i == 0 ? linear : arith::RemUIOp::create(b, loc, linear, extent);
    if (i > 0)
      linear = arith::DivUIOp::create(b, loc, linear, extent);
  }
  return out;
}

/// The linalg.fill that initializes `buffer` right before `g` (only views
/// between them), which the reduction kernel can take over, or null.
linalg::FillOp fillBefore(linalg::GenericOp g, Value buffer) {
  Value base = buffer;
  if (auto view = base.getDefiningOp<memref::CollapseShapeOp>())
    base = view.getSrc();
  else if (auto view = base.getDefiningOp<memref::ExpandShapeOp>())
    base = view.getSrc();
  for (Operation *op = g->getPrevNode(); op; op = op->getPrevNode()) {
    if (isa<memref::CollapseShapeOp, memref::ExpandShapeOp>(op))
      continue;
    auto fill = dyn_cast<linalg::FillOp>(op);
    if (!fill || !fill.hasPureBufferSemantics())
      return nullptr;
    Value target = fill.getOutputs()[0];
    if (target != buffer && target != base)
      continue; // the fill of another output
    // A constant value: the launch sinks it and keeps taking only buffers.
    return fill.getInputs()[0].getDefiningOp<arith::ConstantOp>() ? fill
                                                                   : nullptr;
  }
  return nullptr;
}

/// Rewrites every float reduction generic (outputs that fold one value per
/// iteration with add, mul, max or min: `combinerOf`) into a gpu.launch
/// whose threads accumulate in registers from the combiner's identity and
/// fold the result into the output once; the linalg.fill that initializes
/// an output right before is folded in too (its value replaces the load),
/// which saves a launch. (convert-linalg-to-parallel-loops would load and
/// store the output at every iteration.)
///
/// A reduction of at least kBlockReductionMin terms gets one block per
/// output: its threads stride over the reduction and combine through
/// gpu.all_reduce (warp shuffles and shared memory), and thread 0 writes;
/// otherwise each thread computes one output. A thread per output, each
/// running a long reduction, would leave the GPU nearly idle for the sums of
/// a bias gradient, a BatchNorm statistic or a loss. The order of a block's
/// sum differs from the CPU's (a tree, not a row).
void reductionKernels(ModuleOp kmod) {
  SmallVector<linalg::GenericOp> generics;
  kmod.walk([&](linalg::GenericOp g) { generics.push_back(g); });
  for (linalg::GenericOp g : generics) {
    if (!g.hasPureBufferSemantics() || g.getNumReductionLoops() == 0)
      continue;
    SmallVector<int64_t> ranges = g.getStaticLoopRanges();
    SmallVector<utils::IteratorType> iterators = g.getIteratorTypesArray();
    SmallVector<unsigned> parallelDims, reductionDims;
    SmallVector<int64_t> parallelExtents, reductionExtents;
    int64_t p = 1, r = 1;
    bool ok = true;
    for (unsigned d = 0; d < ranges.size(); ++d) {
      ok &= !ShapedType::isDynamic(ranges[d]);
      if (linalg::isParallelIterator(iterators[d])) {
        parallelDims.push_back(d), parallelExtents.push_back(ranges[d]);
        p *= ranges[d];
      } else {
        reductionDims.push_back(d), reductionExtents.push_back(ranges[d]);
        r *= ranges[d];
      }
    }
    if (!ok || r < 1 || p > INT32_MAX || p < 1)
      continue;
    SmallVector<Combiner> combiners;
    for (unsigned i = 0; i < g.getNumDpsInits() && ok; ++i) {
      OpOperand *init = g.getDpsInitOperand(i);
      auto type = dyn_cast<MemRefType>(init->get().getType());
      std::optional<Combiner> c = combinerOf(g, i);
      AffineMap map = g.getMatchingIndexingMap(init);
      // Each output element belongs to exactly one parallel iteration.
      ok = type && (type.getElementType().isF32() ||
                    type.getElementType().isF64()) &&
           c && map.isProjectedPermutation() &&
           map.getNumResults() == parallelDims.size();
      for (AffineExpr e : map.getResults())
        for (unsigned d : reductionDims)
          ok &= ok && !e.isFunctionOfDim(d);
      if (ok)
        combiners.push_back(*c);
    }
    if (!ok)
      continue;
    // Fills to take over; two outputs may not share one.
    SmallVector<linalg::FillOp> fills;
    for (unsigned i = 0; i < combiners.size(); ++i) {
      linalg::FillOp f = fillBefore(g, g.getDpsInitOperand(i)->get());
      if (llvm::is_contained(fills, f))
        f = nullptr;
      fills.push_back(f);
    }

    OpBuilder b(g);
    Location loc = g.getLoc();
    auto index = [&](int64_t v) -> Value {
      return arith::ConstantIndexOp::create(b, loc, v);
    };
    bool perBlock = r >= kBlockReductionMin;
    // A block per output: 1024 threads while the blocks fit two to an SM
    // of the largest GPUs, else 256.
    int64_t block = perBlock ? (p <= 264 ? 1024 : 256)
                             : std::min<int64_t>(256, (p + 31) / 32 * 32);
    int64_t grid = perBlock ? p : (p + block - 1) / block;
    Value one = index(1);
    auto launch = gpu::LaunchOp::create(b, loc, index(grid), one, one,
                                        index(block), one, one);
    Block &body = launch.getBody().front();
    b.setInsertionPointToStart(&body);
    gpu::TerminatorOp::create(b, loc);
    b.setInsertionPointToStart(&body);
    Value tid = launch.getThreadIds().x;
    Value bid = launch.getBlockIds().x;
    // The output this thread (or block) computes, and whether it has one.
    Value linear = bid, active;
    if (!perBlock) {
      linear = arith::AddIOp::create(
          b, loc, arith::MulIOp::create(b, loc, bid, index(block)), tid);
      active = arith::CmpIOp::create(b, loc, arith::CmpIPredicate::ult,
                                     linear, index(p));
      auto guard = scf::IfOp::create(b, loc, active, /*withElseRegion=*/false);
      b.setInsertionPointToStart(&guard.getThenRegion().front());
    }
    SmallVector<Value> ivs(ranges.size());
    SmallVector<Value> pIdx = delinearize(b, loc, linear, parallelExtents);
    for (auto [k, d] : llvm::enumerate(parallelDims))
      ivs[d] = pIdx[k];
    // Operand `o`'s element at the current loop indices.
    auto load = [&](OpBuilder &lb, OpOperand &o) -> Value {
      Value v = o.get();
      if (!isa<MemRefType>(v.getType()))
        return v;
      SmallVector<Value> at;
      AffineMap map = g.getMatchingIndexingMap(&o);
      for (unsigned k = 0; k < map.getNumResults(); ++k)
        at.push_back(affine::AffineApplyOp::create(lb, loc, map.getSubMap({k}),
                                                   ivs));
      return memref::LoadOp::create(lb, loc, v, at);
    };
    SmallVector<Value> inits;
    for (auto [i, c] : llvm::enumerate(combiners)) {
      Type t = cast<MemRefType>(g.getDpsInitOperand(i)->get().getType())
                   .getElementType();
      inits.push_back(
          arith::ConstantOp::create(b, loc, b.getFloatAttr(t, c.identity)));
    }
    Block &gbody = g.getRegion().front();
    // Folds the reduction's element `rIv` into `accs` (one per output)
    // with the generic's body.
    auto foldAt = [&](OpBuilder &lb, Value rIv,
                      ValueRange accs) -> SmallVector<Value> {
      SmallVector<Value> rIdx = delinearize(lb, loc, rIv, reductionExtents);
      for (auto [k, d] : llvm::enumerate(reductionDims))
        ivs[d] = rIdx[k];
      IRMapping mapping;
      for (OpOperand *in : g.getDpsInputOperands())
        mapping.map(gbody.getArgument(in->getOperandNumber()), load(lb, *in));
      for (unsigned i = 0; i < combiners.size(); ++i)
        mapping.map(gbody.getArgument(g.getNumDpsInputs() + i), accs[i]);
      for (Operation &op : gbody.without_terminator()) {
        if (auto idx = dyn_cast<linalg::IndexOp>(op)) {
          mapping.map(idx.getResult(), ivs[idx.getDim()]);
          continue;
        }
        lb.clone(op, mapping);
      }
      SmallVector<Value> next;
      for (Value v : gbody.getTerminator()->getOperands())
        next.push_back(mapping.lookupOrDefault(v));
      return next;
    };
    // combine(a, b) for output i: the combiner with a as the accumulator.
    auto combine = [&](OpBuilder &cb, unsigned i, Value a, Value v) {
      const Combiner &c = combiners[i];
      BlockArgument acc = gbody.getArgument(g.getNumDpsInputs() + i);
      IRMapping mapping;
      mapping.map(acc, a);
      mapping.map(c.op->getOperand(0) == acc ? c.op->getOperand(1)
                                            : c.op->getOperand(0),
                  v);
      return cb.clone(*c.op, mapping)->getResult(0);
    };
    SmallVector<Value> accs;
    size_t n = combiners.size();
    if (perBlock) {
      // Four independent accumulators per thread, so four loads are in
      // flight rather than one chain of load-add: the main loop takes
      // elements t, t + B, t + 2B, t + 3B per step of 4B, the rest go to
      // the first accumulator.
      constexpr int64_t kUnroll = 4;
      int64_t mainEnd = std::max<int64_t>(r - (kUnroll - 1) * block, 0);
      SmallVector<Value> init4;
      for (int64_t u = 0; u < kUnroll; ++u)
        init4.append(inits.begin(), inits.end());
      auto main = scf::ForOp::create(
          b, loc, tid, index(mainEnd), index(kUnroll * block), init4,
          [&](OpBuilder &lb, Location, Value iv, ValueRange all) {
            SmallVector<Value> next;
            for (int64_t u = 0; u < kUnroll; ++u) {
              Value at = u == 0 ? iv
                                : arith::AddIOp::create(
                                      lb, loc, iv,
                                      arith::ConstantIndexOp::create(
                                          lb, loc, u * block));
              SmallVector<Value> folded =
                  foldAt(lb, at, all.slice(u * n, n));
              next.append(folded.begin(), folded.end());
            }
            scf::YieldOp::create(lb, loc, next);
          });
      // Where the main loop stopped: tid + ceil((mainEnd - tid) / 4B) * 4B.
      Value left = arith::MaxSIOp::create(
          b, loc, arith::SubIOp::create(b, loc, index(mainEnd), tid),
          index(0));
      Value steps = arith::CeilDivUIOp::create(b, loc, left,
                                              index(kUnroll * block));
      Value restStart = arith::AddIOp::create(
          b, loc, tid,
          arith::MulIOp::create(b, loc, steps, index(kUnroll * block)));
      SmallVector<Value> first(main.getResults().take_front(n));
      auto rest = scf::ForOp::create(
          b, loc, restStart, index(r), index(block), first,
          [&](OpBuilder &lb, Location, Value iv, ValueRange a) {
            scf::YieldOp::create(lb, loc, foldAt(lb, iv, a));
          });
      accs.assign(rest.getResults().begin(), rest.getResults().end());
      for (int64_t u = 1; u < kUnroll; ++u)
        for (unsigned i = 0; i < n; ++i)
          accs[i] = combine(b, i, accs[i], main.getResult(u * n + i));
    } else {
      auto loop = scf::ForOp::create(
          b, loc, index(0), index(r), one, inits,
          [&](OpBuilder &lb, Location, Value iv, ValueRange a) {
            scf::YieldOp::create(lb, loc, foldAt(lb, iv, a));
          });
      accs.assign(loop.getResults().begin(), loop.getResults().end());
    }
    // The outputs do not depend on the reduction dims (checked above).
    for (unsigned d : reductionDims)
      ivs[d] = index(0);
    SmallVector<Value> reduced(accs);
    if (perBlock) {
      for (auto [i, c] : llvm::enumerate(combiners))
        reduced[i] = gpu::AllReduceOp::create(
            b, loc, accs[i],
            gpu::AllReduceOperationAttr::get(b.getContext(), c.kind),
            b.getUnitAttr());
      Value first = arith::CmpIOp::create(b, loc, arith::CmpIPredicate::eq,
                                          tid, index(0));
      auto ifOp = scf::IfOp::create(b, loc, first, /*withElseRegion=*/false);
      b.setInsertionPointToStart(&ifOp.getThenRegion().front());
    }
    for (auto [i, c] : llvm::enumerate(combiners)) {
      OpOperand *init = g.getDpsInitOperand(i);
      Value old = fills[i] ? fills[i].getInputs()[0] : load(b, *init);
      Value result = combine(b, i, old, reduced[i]);
      SmallVector<Value> at;
      AffineMap map = g.getMatchingIndexingMap(init);
      for (unsigned k = 0; k < map.getNumResults(); ++k)
        at.push_back(
            affine::AffineApplyOp::create(b, loc, map.getSubMap({k}), ivs));
      memref::StoreOp::create(b, loc, result, init->get(), at);
    }
    g.erase();
    for (linalg::FillOp f : fills)
      if (f)
        f.erase();
  }
}

/// Wraps each run of top-level work outside a parallel loop (a sum down to
/// a scalar, the store that initializes it) in a one-iteration parallel
/// loop, so it becomes a one-thread kernel. (A block-wide tree reduction
/// would be faster for the large sums; see the CUDA issue.)
void wrapSerialWork(ModuleOp kmod) {
  for (auto func : kmod.getOps<func::FuncOp>()) {
    Block &body = func.getBody().front();
    // Constants first, so they dominate the loops made below.
    for (Operation &op : llvm::make_early_inc_range(body))
      if (isa<arith::ConstantOp>(op))
        op.moveBefore(&body.front());
    SmallVector<SmallVector<Operation *>> runs(1);
    for (Operation &op : body) {
      if (isa<arith::ConstantOp>(op))
        continue;
      if (!isa<scf::ParallelOp, gpu::LaunchOp, memref::CollapseShapeOp,
               memref::ExpandShapeOp, func::ReturnOp>(op)) {
        runs.back().push_back(&op);
        continue;
      }
      if (!runs.back().empty())
        runs.emplace_back();
    }
    for (ArrayRef<Operation *> run : runs) {
      if (run.empty())
        continue;
      OpBuilder b(run.front());
      Location loc = run.front()->getLoc();
      Value zero = arith::ConstantIndexOp::create(b, loc, 0);
      Value one = arith::ConstantIndexOp::create(b, loc, 1);
      auto loop = scf::ParallelOp::create(b, loc, ValueRange{zero},
                                          ValueRange{one}, ValueRange{one});
      Operation *terminator = loop.getBody()->getTerminator();
      for (Operation *op : run)
        op->moveBefore(terminator);
    }
  }
}

/// Folds each outermost scf.parallel to one dim and tiles it by `block`.
void foldAndTileParallelLoops(ModuleOp kmod, int64_t block) {
  SmallVector<scf::ParallelOp> outer;
  kmod.walk([&](scf::ParallelOp p) {
    if (!p->getParentOfType<scf::ParallelOp>())
      outer.push_back(p);
  });
  IRRewriter rewriter(kmod.getContext());
  for (scf::ParallelOp p : outer) {
    unsigned dims = p.getNumLoops();
    if (dims > 1) {
      std::vector<unsigned> all(dims);
      std::iota(all.begin(), all.end(), 0);
      rewriter.setInsertionPoint(p);
      collapseParallelLoops(rewriter, p, {all});
    }
  }
  outer.clear();
  kmod.walk([&](scf::ParallelOp p) {
    if (!p->getParentOfType<scf::ParallelOp>())
      outer.push_back(p);
  });
  for (scf::ParallelOp p : outer)
    scf::tileParallelLoop(p, {block}, /*noMinMaxBounds=*/true);
}

/// Moves the constants a launch body uses into it, so the kernel takes
/// only buffers.
void sinkConstants(ModuleOp kmod) {
  kmod.walk([](gpu::LaunchOp launch) {
    SetVector<Value> above;
    getUsedValuesDefinedAbove(launch.getBody(), above);
    OpBuilder b(launch.getBody());
    b.setInsertionPointToStart(&launch.getBody().front());
    for (Value v : above) {
      Operation *def = v.getDefiningOp();
      if (!def || !isa<arith::ConstantOp>(def))
        continue;
      Value copy = b.clone(*def)->getResult(0);
      replaceAllUsesInRegionWith(v, copy, launch.getBody());
    }
  });
}

/// The name of the one GPU module every kernel is moved into.
constexpr StringLiteral kGPUModule = "trainopt_kernels";

/// Moves the kernel of every outlined gpu.module into one module, named
/// after the module it came from (the names are unique), and points the
/// launches at it: one PTX module, one ptxas run, one module load.
LogicalResult mergeGPUModules(ModuleOp kmod) {
  SmallVector<gpu::GPUModuleOp> modules(kmod.getOps<gpu::GPUModuleOp>());
  if (modules.empty())
    return success();
  OpBuilder b(modules.front());
  auto merged = gpu::GPUModuleOp::create(b, kmod.getLoc(), kGPUModule);
  SymbolTable mergedSymbols(merged);
  llvm::StringMap<std::string> renamed; // "module::func" -> new name
  for (gpu::GPUModuleOp m : modules) {
    for (Operation &op : llvm::make_early_inc_range(m.getBody()->getOperations())) {
      auto func = dyn_cast<gpu::GPUFuncOp>(op);
      if (!func)
        continue;
      renamed[(m.getName() + "::" + func.getName()).str()] = m.getName().str();
      func->moveBefore(merged.getBody(), merged.getBody()->end());
      func.setName(m.getName());
    }
  }
  WalkResult walk = kmod.walk([&](gpu::LaunchFuncOp launch) {
    auto it = renamed.find((launch.getKernelModuleName().getValue() + "::" +
                            launch.getKernelName().getValue())
                               .str());
    if (it == renamed.end())
      return WalkResult::interrupt();
    SmallVector<FlatSymbolRefAttr> nested = {
        FlatSymbolRefAttr::get(b.getStringAttr(it->second))};
    launch.setKernelAttr(
        SymbolRefAttr::get(b.getStringAttr(kGPUModule), nested));
    return WalkResult::advance();
  });
  for (gpu::GPUModuleOp m : modules)
    m.erase();
  return failure(walk.wasInterrupted());
}

/// The kernel buffer (argument index) `v` is, through views, or -1.
int64_t bufferIndex(Value v) {
  while (Operation *def = v.getDefiningOp()) {
    if (!isa<memref::CollapseShapeOp, memref::ExpandShapeOp>(def))
      return -1;
    v = def->getOperand(0);
  }
  auto arg = dyn_cast<BlockArgument>(v);
  return arg ? arg.getArgNumber() : -1;
}

std::optional<int64_t> constantIndex(Value v) {
  APInt value;
  if (auto c = v.getDefiningOp<arith::ConstantIndexOp>())
    return c.value();
  return std::nullopt;
}

} // namespace

bool mlir::trainopt::isValidCUDAArch(const std::string &arch,
                                     std::string &error) {
  bool ok = arch.size() > 3 && arch.compare(0, 3, "sm_") == 0;
  for (size_t i = 3; ok && i < arch.size(); ++i)
    ok = std::isdigit(static_cast<unsigned char>(arch[i])) ||
         (i + 1 == arch.size() && (arch[i] == 'a' || arch[i] == 'f'));
  if (!ok)
    error = "--cuda-arch=" + arch +
            " is not a GPU architecture (expected sm_<digits>, e.g. sm_90)";
  return ok;
}

FailureOr<GPUKernels>
mlir::trainopt::compileKernelsToPTX(ModuleOp module,
                                    const CUDATargetOptions &options) {
  MLIRContext *ctx = module.getContext();
  ctx->loadDialect<affine::AffineDialect, gpu::GPUDialect, NVVM::NVVMDialect,
                   scf::SCFDialect>();
  DialectRegistry registry;
  NVVM::registerNVVMTargetInterfaceExternalModels(registry);
  registerAllToLLVMIRTranslations(registry);
  ctx->appendDialectRegistry(registry);

  SmallVector<func::FuncOp> kernels;
  for (auto f : module.getOps<func::FuncOp>())
    if (f->hasAttr("trainopt.kernel"))
      kernels.push_back(f);
  if (kernels.empty())
    return GPUKernels();
  FailureOr<OwningOpRef<ModuleOp>> bufferized =
      buildBufferizedKernels(module, kernels);
  if (failed(bufferized))
    return failure();
  ModuleOp kmod = **bufferized;
  if (failed(foldKernelLoops(kmod)) || failed(parallelLoopsFirst(kmod)))
    return fail(module, "shaping the kernel loops failed");
  reductionKernels(kmod);

  PassManager toLoops(ctx, ModuleOp::getOperationName());
  if (failed(parsePassPipeline(
          "func.func(convert-linalg-to-parallel-loops),canonicalize",
          toLoops)) ||
      failed(toLoops.run(kmod)))
    return fail(module, "lowering the kernels to parallel loops failed");
  wrapSerialWork(kmod);
  foldAndTileParallelLoops(kmod, options.blockSize);

  PassManager toGPU(ctx, ModuleOp::getOperationName());
  if (failed(parsePassPipeline(
          "func.func(gpu-map-parallel-loops,convert-parallel-loops-to-gpu),"
          "lower-affine,canonicalize",
          toGPU)) ||
      failed(toGPU.run(kmod)))
    return fail(module, "mapping the loops to GPU blocks and threads failed");
  sinkConstants(kmod);
  if (!options.keepDir.empty()) {
    std::error_code ec;
    llvm::raw_fd_ostream os(options.keepDir + "/kernels-gpu.mlir", ec);
    if (!ec)
      kmod.print(os);
  }

  std::string libdevice =
      options.cudaPath + "/nvvm/libdevice/libdevice.10.bc";
  if (!llvm::sys::fs::exists(libdevice))
    return fail(module, "libdevice not found at " + libdevice +
                            " (set the CUDA toolkit path)");
  PassManager outline(ctx, ModuleOp::getOperationName());
  if (failed(parsePassPipeline("gpu-kernel-outlining", outline)) ||
      failed(outline.run(kmod)) || failed(mergeGPUModules(kmod)))
    return fail(module, "outlining the GPU kernels failed");
  {
    // gpu.all_reduce (block reductions) to shuffles and shared memory, and
    // 64-bit shuffles (float64 sums) to pairs of 32-bit ones.
    RewritePatternSet patterns(ctx);
    populateGpuRewritePatterns(patterns);
    if (failed(applyPatternsGreedily(kmod, std::move(patterns))))
      return fail(module, "lowering the block reductions failed");
  }
  std::string pipeline =
      "nvvm-attach-target{chip=" + options.arch + " O=3 l=" + libdevice +
      "},gpu.module(convert-scf-to-cf,convert-gpu-to-nvvm{use-bare-ptr-memref-"
      "call-conv=1},canonicalize,reconcile-unrealized-casts)";
  PassManager toNVVM(ctx, ModuleOp::getOperationName());
  if (failed(parsePassPipeline(pipeline, toNVVM)) || failed(toNVVM.run(kmod)))
    return fail(module, "lowering the kernels to NVVM failed");
  if (!options.keepDir.empty()) {
    std::error_code ec;
    llvm::raw_fd_ostream os(options.keepDir + "/kernels-nvvm.mlir", ec);
    if (!ec)
      kmod.print(os);
  }

  // The launch lists, before the GPU modules become binaries.
  GPUKernels result;
  for (auto func : kmod.getOps<func::FuncOp>()) {
    GPUKernel kernel;
    kernel.name = func.getSymName().str();
    WalkResult walk = func.walk([&](Operation *op) {
      auto launch = dyn_cast<gpu::LaunchFuncOp>(op);
      if (!launch) {
        if (isa<memref::AllocOp, memref::CopyOp>(op)) {
          (void)fail(op, "kernel '" + kernel.name +
                             "' needs a temporary buffer, which GPU "
                             "kernels cannot allocate");
          return WalkResult::interrupt();
        }
        if (isa<linalg::LinalgOp, scf::ForOp, scf::ParallelOp>(op)) {
          (void)fail(op, "a loop of kernel '" + kernel.name +
                             "' was not mapped to the GPU");
          return WalkResult::interrupt();
        }
        return WalkResult::advance();
      }
      GPULaunch l;
      l.entry = launch.getKernelName().str();
      std::optional<int64_t> gx = constantIndex(launch.getGridSizeX());
      std::optional<int64_t> bx = constantIndex(launch.getBlockSizeX());
      std::optional<int64_t> gy = constantIndex(launch.getGridSizeY());
      std::optional<int64_t> by = constantIndex(launch.getBlockSizeY());
      if (!gx || !bx || gy != 1 || by != 1) {
        (void)fail(launch, "kernel '" + kernel.name +
                               "': the launch shape is not a constant 1-D "
                               "grid and block");
        return WalkResult::interrupt();
      }
      l.grid = *gx;
      l.block = *bx;
      for (Value arg : launch.getKernelOperands()) {
        int64_t index = bufferIndex(arg);
        if (index < 0) {
          (void)fail(launch, "kernel '" + kernel.name +
                                 "': a launch argument is not one of its "
                                 "buffers");
          return WalkResult::interrupt();
        }
        l.buffers.push_back(index);
      }
      kernel.launches.push_back(std::move(l));
      return WalkResult::advance();
    });
    if (walk.wasInterrupted())
      return failure();
    result.kernels.push_back(std::move(kernel));
  }

  PassManager toBinary(ctx, ModuleOp::getOperationName());
  if (failed(parsePassPipeline("gpu-module-to-binary{format=isa}", toBinary)) ||
      failed(toBinary.run(kmod)))
    return fail(module, "generating PTX failed");
  for (auto binary : kmod.getOps<gpu::BinaryOp>())
    for (Attribute a : binary.getObjects())
      if (auto object = dyn_cast<gpu::ObjectAttr>(a))
        result.ptx = object.getObject().getValue().str();
  if (result.ptx.empty() && !result.kernels.empty())
    return fail(module, "the NVPTX back end wrote no PTX");
  return result;
}
