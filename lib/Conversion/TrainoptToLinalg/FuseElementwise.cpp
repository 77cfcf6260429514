//===- FuseElementwise.cpp - size-aware elementwise fusion ----------------===//
//
/// \file
/// Upstream elementwise fusion with a control function that refuses to
/// duplicate a small producer's work across a large consumer.
//
//===----------------------------------------------------------------------===//

#include "trainopt/Conversion/Passes.h"

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
      if (!producer || producer->hasOneUse() ||
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
      if (!producer || !consumer || !producer->hasOneUse())
        return false;
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
