//===- FuseElementwise.cpp - size-aware elementwise fusion ----------------===//
//
/// \file
/// Upstream elementwise fusion with a control function that refuses to
/// duplicate a small producer's work across a large consumer, recomputes a
/// cheap producer in each of its users where that saves memory traffic,
/// and otherwise fuses a producer with later uses into one two-output op.
//
//===----------------------------------------------------------------------===//

#include "trainopt/Conversion/Passes.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Linalg/Transforms/Transforms.h"
#include "mlir/Transforms/GreedyPatternRewriteDriver.h"

namespace mlir::trainopt {
#define GEN_PASS_DEF_TRAINOPTFUSEELEMENTWISE
#include "trainopt/Conversion/Passes.h.inc"
} // namespace mlir::trainopt

using namespace mlir;

namespace {

int64_t iterations(linalg::LinalgOp op) {
  int64_t n = 1;
  for (int64_t r : op.getStaticLoopRanges())
    n *= r;
  return n;
}

/// Whether every use of `producer`'s results other than by `consumer` comes
/// after `consumer` in its block, so the fused op (placed at the consumer)
/// can serve them. Walks from the producer to the consumer looking for an
/// earlier user rather than asking `isBeforeInBlock`: every fusion inserts
/// an op, which invalidates the block's op order, and recomputing that
/// order for the whole training step dominated this pass.
bool otherUsesFollow(Operation *producer, Operation *consumer) {
  Block *block = consumer->getBlock();
  if (producer->getBlock() != block)
    return false;
  for (Operation *user : producer->getUsers())
    if (user->getBlock() != block)
      return false;
  for (Operation *op = producer->getNextNode(); op && op != consumer;
       op = op->getNextNode())
    for (Value operand : op->getOperands())
      if (operand.getDefiningOp() == producer)
        return false;
  return true;
}

/// Most operations (besides the yield) in the body of a producer that
/// fusion recomputes in each of its users.
constexpr int64_t kMaxRecomputedOps = 8;

/// Whether `map` reads its operand in the loops' order: each result a loop
/// dim, increasing, or the constant 0 of a broadcast dim.
bool inOrder(AffineMap map) {
  int64_t last = -1;
  for (AffineExpr e : map.getResults()) {
    if (auto c = dyn_cast<AffineConstantExpr>(e)) {
      if (c.getValue() != 0)
        return false;
      continue;
    }
    auto d = dyn_cast<AffineDimExpr>(e);
    if (!d || static_cast<int64_t>(d.getPosition()) <= last)
      return false;
    last = d.getPosition();
  }
  return true;
}

/// Whether recomputing an elementwise `producer` inside every one of its
/// users costs less memory traffic than writing its result once and reading
/// it in each. That is the case when every use is by a generic that can
/// fuse it over the same iteration space (so the producer disappears), and,
/// with k full-size inputs and u uses, u * k reads < k reads + 1 write + u
/// reads. BatchNorm's `x - mean` is the case in point: the variance, the
/// scale gradient and the input gradient each read it; recomputed, each
/// reads x instead, and nothing of x's size is written.
///
/// Only bodies of a few cheap arith ops qualify: recomputing a GELU's erf
/// or exp in its backward cost GPT more than the memory it saved.
bool cheaperToRecompute(linalg::GenericOp producer) {
  if (producer.getNumReductionLoops() != 0 || producer->getNumResults() != 1 ||
      static_cast<int64_t>(producer.getBody()->getOperations().size()) - 1 >
          kMaxRecomputedOps)
    return false;
  for (Operation &op : producer.getBody()->without_terminator())
    if (!isa<arith::ArithDialect>(op.getDialect()) ||
        isa<arith::RemFOp, arith::DivSIOp, arith::DivUIOp, arith::RemSIOp,
            arith::RemUIOp, arith::CeilDivSIOp, arith::CeilDivUIOp,
            arith::FloorDivSIOp>(op))
      return false;
  int64_t n = iterations(producer), uses = 0, full = 0;
  for (OpOperand &use : producer->getUses()) {
    auto user = dyn_cast<linalg::GenericOp>(use.getOwner());
    if (!user || user->getBlock() != producer->getBlock() ||
        iterations(user) != n || !linalg::areElementwiseOpsFusable(&use))
      return false;
    ++uses;
  }
  for (OpOperand *in : producer.getDpsInputOperands()) {
    // Inputs read in order, or broadcast: a transpose recomputed in its
    // users would make each of them read across the rows.
    if (!inOrder(producer.getMatchingIndexingMap(in)))
      return false;
    auto t = dyn_cast<ShapedType>(in->get().getType());
    if (!t || !t.hasStaticShape() || t.getNumElements() == n)
      ++full;
  }
  return uses > 1 && uses * full < full + 1 + uses;
}

/// Upstream's elementwise fusion keeps a producer that has other uses and
/// recomputes it inside the consumer: two kernels still run. Where the
/// producer's other uses all follow the consumer (an optimizer's new
/// momentum, used by the parameter update and returned as state), this
/// pattern makes the fused op also yield the producer's result and
/// replaces every use with it: one kernel, two outputs, one pass over
/// memory.
struct FuseIntoMultiOutput : public OpRewritePattern<linalg::GenericOp> {
  using OpRewritePattern::OpRewritePattern;

  LogicalResult matchAndRewrite(linalg::GenericOp consumer,
                                PatternRewriter &rewriter) const override {
    if (consumer.getNumReductionLoops() != 0)
      return failure();
    for (OpOperand &operand : consumer->getOpOperands()) {
      auto producer = operand.get().getDefiningOp<linalg::GenericOp>();
      // A consumer that reads the producer through two operands would,
      // fused, read its own result through the other one.
      if (!producer || producer->hasOneUse() || cheaperToRecompute(producer) ||
          llvm::count_if(
              consumer->getOperands(),
              [&](Value v) { return v.getDefiningOp() == producer; }) != 1 ||
          !linalg::areElementwiseOpsFusable(&operand) ||
          producer.getNumReductionLoops() != 0 ||
          iterations(producer) != iterations(consumer) ||
          !otherUsesFollow(producer, consumer))
        continue;
      FailureOr<linalg::ElementwiseOpFusionResult> fused =
          linalg::fuseElementwiseOps(rewriter, &operand);
      if (failed(fused))
        continue;
      for (auto [original, replacement] : fused->replacements)
        rewriter.replaceAllUsesWith(original, replacement);
      rewriter.eraseOp(consumer);
      if (producer->use_empty())
        rewriter.eraseOp(producer);
      return success();
    }
    return failure();
  }
};

struct FuseElementwisePass
    : public mlir::trainopt::impl::TrainoptFuseElementwiseBase<
          FuseElementwisePass> {
  void runOnOperation() override {
    linalg::ControlFusionFn control = [](OpOperand *fused) {
      auto producer = fused->get().getDefiningOp<linalg::LinalgOp>();
      auto consumer = dyn_cast<linalg::LinalgOp>(fused->getOwner());
      if (!producer || !consumer)
        return false;
      if (!producer->hasOneUse()) {
        auto generic = dyn_cast<linalg::GenericOp>(producer.getOperation());
        return generic && cheaperToRecompute(generic);
      }
      return iterations(producer) >= iterations(consumer);
    };
    RewritePatternSet patterns(&getContext());
    linalg::populateElementwiseOpsFusionPatterns(patterns, control);
    patterns.add<FuseIntoMultiOutput>(&getContext());
    linalg::populateEraseUnusedOperandsAndResultsPatterns(patterns);
    linalg::GenericOp::getCanonicalizationPatterns(patterns, &getContext());
    // The canonicalizer that follows folds and simplifies regions; here
    // both would revisit the whole step after every round of fusions (half
    // this pass's time on DenseNet-121, for the same result).
    GreedyRewriteConfig config;
    config.setRegionSimplificationLevel(GreedySimplifyRegionLevel::Disabled);
    config.enableFolding(false);
    if (failed(
            applyPatternsGreedily(getOperation(), std::move(patterns), config)))
      signalPassFailure();
  }
};

} // namespace
