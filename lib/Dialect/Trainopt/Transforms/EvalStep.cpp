//===- EvalStep.cpp - @eval_step ------------------------------------------===//
//
/// \file
/// The last training-step stage: the model function in inference mode.
//
//===----------------------------------------------------------------------===//

#include "trainopt/Dialect/Trainopt/IR/TrainoptOps.h"
#include "trainopt/Dialect/Trainopt/Transforms/Passes.h"
#include "trainopt/Dialect/Trainopt/Transforms/TrainStep.h"
#include "trainopt/Dialect/Trainopt/Transforms/TrainingPipeline.h"

#include "mlir/IR/Builders.h"
#include "mlir/IR/SymbolTable.h"
#include "mlir/Interfaces/SideEffectInterfaces.h"
#include "llvm/ADT/BitVector.h"

namespace mlir::trainopt {
#define GEN_PASS_DEF_TRAINOPTBUILDEVALSTEP
#include "trainopt/Dialect/Trainopt/Transforms/Passes.h.inc"
} // namespace mlir::trainopt

using namespace mlir;
using namespace mlir::trainopt;

void mlir::trainopt::toInferenceMode(func::FuncOp f) {
  OpBuilder b(f.getContext());
  // Inference changes no state: what reads a state's updated value
  // reads the state as it stands (as BatchNorm reads its running
  // statistics).
  SmallVector<AssignOp> assigns;
  f.walk([&](AssignOp a) { assigns.push_back(a); });
  for (AssignOp a : assigns) {
    if (!a->hasAttr(kDerivedAttrName))
      a.getValue().replaceAllUsesExcept(a.getState(), a);
    a.erase();
  }
  SmallVector<DropoutOp> dropouts;
  f.walk([&](DropoutOp d) { dropouts.push_back(d); });
  for (DropoutOp d : dropouts) {
    d.getY().replaceAllUsesWith(d.getX());
    b.setInsertionPoint(d);
    d.getMask().replaceAllUsesWith(ConstantOp::create(
        b, d.getLoc(),
        DenseElementsAttr::get(cast<RankedTensorType>(d.getMask().getType()),
                               true)));
    d.erase();
  }
  SmallVector<BatchNormTrainOp> bns;
  f.walk([&](BatchNormTrainOp bn) { bns.push_back(bn); });
  for (BatchNormTrainOp bn : bns) {
    // Inference reads the running statistics and leaves them unchanged.
    b.setInsertionPoint(bn);
    auto inf = BatchNormInferenceOp::create(
        b, bn.getLoc(), bn.getX().getType(), bn.getX(), bn.getScale(),
        bn.getBias(), bn.getRunningMean(), bn.getRunningVar(),
        bn.getEpsilonAttr());
    bn.getY().replaceAllUsesWith(inf.getY());
    bn.getNewRunningMean().replaceAllUsesWith(bn.getRunningMean());
    bn.getNewRunningVar().replaceAllUsesWith(bn.getRunningVar());
    bn.erase();
  }
}

/// The training-only terms of the loss gone (trainopt-distill's teacher):
/// with `trainopt.eval_loss`, the loss is the metric it names. Metrics are
/// the training step's; evaluation returns outputs and the loss.
static void dropTrainingTerms(func::FuncOp eval) {
  auto named =
      eval->getAttrOfType<StringAttr>(TrainoptDialect::kEvalLossAttrName);
  eval->removeAttr(TrainoptDialect::kEvalLossAttrName);
  auto ret = cast<func::ReturnOp>(eval.getBody().front().getTerminator());
  Value evalLoss;
  llvm::BitVector metrics(eval.getNumResults());
  for (unsigned i = 0; i < eval.getNumResults(); ++i) {
    if (resultRole(eval, i) != ValueRole::metric)
      continue;
    metrics.set(i);
    auto name = eval.getResultAttrOfType<StringAttr>(
        i, TrainoptDialect::kOutputAttrName);
    if (named && name == named)
      evalLoss = ret.getOperand(i);
  }
  if (evalLoss)
    for (unsigned i = 0; i < eval.getNumResults(); ++i)
      if (resultRole(eval, i) == ValueRole::loss)
        ret->setOperand(i, evalLoss);
  ret->eraseOperands(metrics);
  (void)eval.eraseResults(metrics);
  // What only the dropped terms read (the teacher's forward).
  for (Operation *op = eval.getBody().front().getTerminator()->getPrevNode();
       op;) {
    Operation *prev = op->getPrevNode();
    if (isOpTriviallyDead(op))
      op->erase();
    op = prev;
  }
}

namespace {
struct TrainoptBuildEvalStepPass
    : public mlir::trainopt::impl::TrainoptBuildEvalStepBase<
          TrainoptBuildEvalStepPass> {
  using TrainoptBuildEvalStepBase::TrainoptBuildEvalStepBase;
  /// One option, to list all (TrainingPipeline.h).
  const llvm::cl::Option &anyOption() const { return funcName; }

  void runOnOperation() override {
    ModuleOp module = getOperation();
    auto forward = module.lookupSymbol<func::FuncOp>(funcName);
    if (!forward) {
      module.emitError() << getArgument() << ": no function @" << funcName;
      return signalPassFailure();
    }
    if (module.lookupSymbol("eval_step")) {
      module.emitError() << getArgument()
                         << ": the module already has an @eval_step";
      return signalPassFailure();
    }
    SymbolTable symbols(module);
    OpBuilder b(&getContext());
    b.setInsertionPointToEnd(module.getBody());
    auto eval = cast<func::FuncOp>(b.clone(*forward));
    eval.setSymName("eval_step");
    symbols.insert(eval);
    toInferenceMode(eval);
    dropTrainingTerms(eval);
  }
};
} // namespace

std::vector<TrainingOption> mlir::trainopt::stage_options::buildEvalStepOptions() {
  TrainoptBuildEvalStepPass pass;
  return passOptionsOf(pass.anyOption(), pass.getArgument());
}
