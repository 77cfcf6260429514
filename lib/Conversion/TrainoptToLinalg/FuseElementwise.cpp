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
    linalg::populateEraseUnusedOperandsAndResultsPatterns(patterns);
    linalg::GenericOp::getCanonicalizationPatterns(patterns, &getContext());
    if (failed(applyPatternsGreedily(getOperation(), std::move(patterns))))
      signalPassFailure();
  }
};

} // namespace
