//===- KernelModule.cpp - outlined kernels as bufferized functions --------===//
//
/// \file
/// Implements KernelModule.h.
//
//===----------------------------------------------------------------------===//

#include "trainopt/Target/KernelModule.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Bufferization/IR/Bufferization.h"
#include "mlir/Dialect/Linalg/IR/Linalg.h"
#include "mlir/Dialect/Linalg/Transforms/Transforms.h"
#include "mlir/Dialect/MemRef/IR/MemRef.h"
#include "mlir/Dialect/Tensor/IR/Tensor.h"
#include "mlir/IR/IRMapping.h"
#include "mlir/Pass/PassManager.h"
#include "mlir/Pass/PassRegistry.h"
#include "mlir/Transforms/GreedyPatternRewriteDriver.h"

using namespace mlir;

namespace {

/// Rewrites tensor kernel `kernel` as a memref function in `into`.
void buildDestinationPassingKernel(func::FuncOp kernel, ModuleOp into) {
  OpBuilder b(into.getContext());
  b.setInsertionPointToEnd(into.getBody());
  SmallVector<Type> argTypes;
  auto toMemref = [](Type t) {
    auto tt = cast<RankedTensorType>(t);
    return MemRefType::get(tt.getShape(), tt.getElementType());
  };
  for (Type t : kernel.getArgumentTypes())
    argTypes.push_back(toMemref(t));
  for (Type t : kernel.getResultTypes())
    argTypes.push_back(toMemref(t));
  auto func = func::FuncOp::create(b, kernel.getLoc(), kernel.getSymName(),
                                   b.getFunctionType(argTypes, {}));
  Block *body = func.addEntryBlock();
  b.setInsertionPointToStart(body);
  IRMapping map;
  unsigned numInputs = kernel.getNumArguments();
  for (unsigned i = 0; i < numInputs; ++i) {
    Value t = bufferization::ToTensorOp::create(
        b, kernel.getLoc(), kernel.getArgumentTypes()[i], body->getArgument(i),
        b.getUnitAttr(), UnitAttr());
    map.map(kernel.getArgument(i), t);
  }
  for (Operation &op : kernel.getBody().front()) {
    if (auto ret = dyn_cast<func::ReturnOp>(op)) {
      for (auto [i, v] : llvm::enumerate(ret.getOperands())) {
        auto m = bufferization::MaterializeInDestinationOp::create(
            b, ret.getLoc(), TypeRange{}, map.lookup(v),
            body->getArgument(numInputs + i));
        m.setRestrict(true);
        m.setWritable(true);
      }
      func::ReturnOp::create(b, ret.getLoc());
      continue;
    }
    b.clone(op, map);
  }
}

/// Groups of consecutive loops of `op` that fold into one loop without
/// changing what any operand reads or writes: same iterator type, and
/// contiguous in every indexing map.
SmallVector<ReassociationIndices> foldableLoops(linalg::LinalgOp op) {
  SmallVector<ReassociationIndices> groups;
  unsigned loops = op.getNumLoops();
  if (loops < 2)
    return groups;
  SmallVector<AffineMap> maps = op.getIndexingMapsArray();
  // Upstream folding handles dim results only (not a broadcast written as
  // a constant 0 index).
  if (!llvm::all_of(maps, [](AffineMap m) { return m.isProjectedPermutation(); }))
    return groups;
  SmallVector<utils::IteratorType> iterators = op.getIteratorTypesArray();
  ReassociationIndices run{0};
  for (unsigned d = 1; d <= loops; ++d) {
    if (d < loops && iterators[d] == iterators[run.front()]) {
      ReassociationIndices trial = run;
      trial.push_back(d);
      if (linalg::areDimSequencesPreserved(maps, {trial})) {
        run = std::move(trial);
        continue;
      }
    }
    if (run.size() > 1)
      groups.push_back(run);
    run = {static_cast<int64_t>(d)};
  }
  return groups;
}

/// Marks the float additions in reduction bodies reassociable.
void allowReassociatedSums(ModuleOp module) {
  module.walk([](linalg::GenericOp op) {
    if (op.getNumReductionLoops() == 0)
      return;
    op.getRegion().walk([](arith::AddFOp add) {
      add.setFastmath(add.getFastmath() | arith::FastMathFlags::reassoc);
    });
  });
}

/// An op whose outputs share one init value (two sums both starting from
/// one `linalg.fill`) gets a copy of the init's producer per extra output,
/// so each output bufferizes into its own destination rather than into a
/// temporary allocation copied out afterwards.
void giveEachInitItsOwnValue(ModuleOp kmod) {
  kmod.walk([](DestinationStyleOpInterface op) {
    llvm::SmallPtrSet<Value, 4> seen;
    for (OpOperand &init : op.getDpsInitsMutable()) {
      if (seen.insert(init.get()).second)
        continue;
      Operation *def = init.get().getDefiningOp();
      if (!def || !isa<linalg::FillOp, tensor::EmptyOp>(def))
        continue;
      OpBuilder b(def);
      init.set(b.clone(*def)->getResult(0));
    }
  });
}

} // namespace

FailureOr<OwningOpRef<ModuleOp>>
mlir::trainopt::buildBufferizedKernels(ModuleOp module,
                                       ArrayRef<func::FuncOp> kernels) {
  MLIRContext *ctx = module.getContext();
  ctx->loadDialect<arith::ArithDialect, bufferization::BufferizationDialect,
                   linalg::LinalgDialect, memref::MemRefDialect,
                   func::FuncDialect>();
  OwningOpRef<ModuleOp> kmod = ModuleOp::create(UnknownLoc::get(ctx));
  for (func::FuncOp k : kernels)
    buildDestinationPassingKernel(k, *kmod);
  giveEachInitItsOwnValue(*kmod);
  PassManager bufferize(ctx, ModuleOp::getOperationName());
  if (failed(parsePassPipeline(
          "eliminate-empty-tensors,one-shot-bufferize,canonicalize", bufferize)))
    return module.emitError("kernel code generation: cannot build the "
                            "bufferization pipeline");
  if (failed(bufferize.run(*kmod)))
    return module.emitError("kernel code generation: bufferizing the kernels "
                            "failed");
  return kmod;
}

LogicalResult mlir::trainopt::foldKernelLoops(ModuleOp kmod) {
  RewritePatternSet patterns(kmod.getContext());
  linalg::ControlDropUnitDims dropUnitDims;
  linalg::populateFoldUnitExtentDimsPatterns(patterns, dropUnitDims);
  linalg::populateCollapseDimensions(patterns, foldableLoops);
  if (failed(applyPatternsGreedily(kmod, std::move(patterns))))
    return failure();
  allowReassociatedSums(kmod);
  return success();
}
