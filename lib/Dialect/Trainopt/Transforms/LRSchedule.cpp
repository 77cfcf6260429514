//===- LRSchedule.cpp - the learning-rate schedule stage ------------------===//
//
/// \file
/// Defines `@lr_schedule(updates) -> lr` with the semantics of PyTorch's
/// schedulers (StepLR, MultiStepLR, ExponentialLR, cosine annealing with
/// linear warmup, OneCycleLR), computed in the graph from the update count
/// so a resumed run continues the schedule exactly.
//
//===----------------------------------------------------------------------===//

#include "trainopt/Dialect/Trainopt/IR/TensorBuilder.h"
#include "trainopt/Dialect/Trainopt/Transforms/Passes.h"
#include "trainopt/Dialect/Trainopt/Transforms/TrainingPipeline.h"
#include "trainopt/Dialect/Trainopt/Transforms/TrainStep.h"

#include "mlir/IR/Builders.h"
#include "mlir/IR/SymbolTable.h"

#include <cmath>

namespace mlir::trainopt {
#define GEN_PASS_DEF_TRAINOPTLRSCHEDULE
#include "trainopt/Dialect/Trainopt/Transforms/Passes.h.inc"
} // namespace mlir::trainopt

using namespace mlir;
using namespace mlir::trainopt;

namespace {
struct TrainoptLRSchedulePass
    : public mlir::trainopt::impl::TrainoptLRScheduleBase<
          TrainoptLRSchedulePass> {
  using TrainoptLRScheduleBase::TrainoptLRScheduleBase;
  /// One option, to list all (TrainingPipeline.h).
  const llvm::cl::Option &anyOption() const { return lr; }

  void runOnOperation() override;

private:
  LogicalResult validate(Operation *anchor);
  /// The learning rate after `step` updates (a 0-d tensor of `elt`).
  Value learningRate(TensorBuilder &m, Value step, Type elt);
};
} // namespace

LogicalResult TrainoptLRSchedulePass::validate(Operation *anchor) {
  auto bad = [&](StringRef flag, const Twine &why) {
    return anchor->emitError() << "--" << flag << ": " << why;
  };
  if (!(lr > 0.0))
    return bad("lr", "must be positive");
  // Schedules and their options.
  StringRef s = schedule;
  static const char *schedules[] = {"constant",    "step",   "multistep",
                                    "exponential", "cosine", "linear-warmup",
                                    "one-cycle"};
  if (!llvm::is_contained(schedules, s))
    return bad("lr-schedule", "must be constant, step, multistep, "
                              "exponential, cosine, linear-warmup or "
                              "one-cycle, got '" +
                                  schedule + "'");
  if (warmupSteps.hasValue() && s != "cosine" && s != "linear-warmup")
    return bad("warmup-steps", "applies to cosine and linear-warmup");
  if ((s == "linear-warmup") && warmupSteps <= 0)
    return bad("warmup-steps", "must be positive for linear-warmup");
  if (totalSteps.hasValue() && s != "cosine" && s != "one-cycle")
    return bad("total-steps", "applies to cosine and one-cycle");
  if ((s == "cosine" || s == "one-cycle") && totalSteps <= warmupSteps)
    return bad("total-steps", "must be greater than --warmup-steps for " + s);
  if (stepSize.hasValue() != (s == "step") || (s == "step" && stepSize <= 0))
    return bad("step-size", "is required by, and only by, --lr-schedule=step "
                            "(a positive number of steps)");
  if (!milestones.empty() != (s == "multistep"))
    return bad("milestones", "are required by, and only by, "
                             "--lr-schedule=multistep");
  if (gamma.hasValue() && s != "step" && s != "multistep" && s != "exponential")
    return bad("gamma", "applies to step, multistep and exponential");
  if (minLr.hasValue() && s != "cosine")
    return bad("min-lr", "applies only to --lr-schedule=cosine");
  if ((pctStart.hasValue() || divFactor.hasValue() ||
       finalDivFactor.hasValue()) &&
      s != "one-cycle")
    return bad("pct-start", "pct-start, div-factor and final-div-factor "
                            "apply only to --lr-schedule=one-cycle");
  return success();
}

Value TrainoptLRSchedulePass::learningRate(TensorBuilder &m, Value step,
                                           Type elt) {
  Value s = m.cast(step, elt); // steps taken before this one
  Value base = m.scalar(elt, lr);
  StringRef kind = schedule;
  if (kind == "constant")
    return base;
  if (kind == "step") {
    Value k = m.floor(m.div(s, m.scalar(elt, stepSize)));
    return m.mul(base, m.pow(m.scalar(elt, gamma), k));
  }
  if (kind == "multistep") {
    Value passed = m.scalar(elt, 0.0);
    for (int64_t milestone : milestones)
      passed = m.add(passed, m.cast(m.greaterEqual(s, m.scalar(elt, milestone)),
                                    elt));
    return m.mul(base, m.pow(m.scalar(elt, gamma), passed));
  }
  if (kind == "exponential")
    return m.mul(base, m.pow(m.scalar(elt, gamma), s));
  Value one = m.scalar(elt, 1.0);
  if (kind == "linear-warmup")
    return m.mul(base, m.min(one, m.div(m.add(s, 1.0), m.scalar(elt, warmupSteps))));
  if (kind == "cosine") {
    // Linear warmup to lr, then cosine annealing to min-lr.
    double span = static_cast<double>(totalSteps - warmupSteps);
    Value t = m.min(m.max(m.sub(s, m.scalar(elt, warmupSteps)), m.scalar(elt, 0.0)),
                    m.scalar(elt, span));
    Value cosine = m.add(
        m.mul(
            m.mul(m.add(m.cos(m.mul(t, M_PI / span)), 1.0),
                  0.5),
            lr - minLr),
        minLr);
    if (warmupSteps <= 0)
      return cosine;
    Value warm = m.mul(base, m.div(m.add(s, 1.0), m.scalar(elt, warmupSteps)));
    return m.where(m.less(s, m.scalar(elt, warmupSteps)), warm,
                   cosine);
  }
  // one-cycle (PyTorch OneCycleLR, cosine annealing, two phases).
  double initial = lr / divFactor, final = initial / finalDivFactor;
  double up = pctStart * static_cast<double>(totalSteps) - 1.0;
  double down = static_cast<double>(totalSteps) - 1.0 - up;
  auto anneal = [&](double from, double to, Value pct) {
    Value cosOut = m.add(m.cos(m.mul(pct, M_PI)), 1.0);
    return m.add(m.mul(cosOut, (from - to) / 2.0), m.scalar(elt, to));
  };
  Value pctUp = m.min(m.div(s, m.scalar(elt, std::max(up, 1e-12))), one);
  Value pctDown = m.min(
      m.max(m.div(m.sub(s, m.scalar(elt, up)), m.scalar(elt, std::max(down, 1e-12))),
            m.scalar(elt, 0.0)),
      one);
  return m.where(m.lessEqual(s, m.scalar(elt, up)),
                 anneal(initial, lr, pctUp), anneal(lr, final, pctDown));
}


void TrainoptLRSchedulePass::runOnOperation() {
  ModuleOp module = getOperation();
  if (failed(validate(module)))
    return signalPassFailure();
  FailureOr<TrainStepFunction> step = TrainStepFunction::get(module, getArgument());
  if (failed(step))
    return signalPassFailure();
  FailureOr<Value> loss = step->loss(getArgument());
  if (failed(loss))
    return signalPassFailure();
  if (module.lookupSymbol(kLRScheduleName)) {
    module.emitError() << getArgument() << ": the module already has a @"
                       << kLRScheduleName;
    return signalPassFailure();
  }
  Type elt = TensorBuilder::elementType(*loss);
  OpBuilder b(&getContext());
  b.setInsertionPointAfter(step->func);
  auto i64Scalar = RankedTensorType::get({}, b.getI64Type());
  auto fn = func::FuncOp::create(
      b, step->func.getLoc(), kLRScheduleName,
      b.getFunctionType({i64Scalar}, {RankedTensorType::get({}, elt)}));
  fn.setPrivate();
  SymbolTable(module).insert(fn);
  Block *body = fn.addEntryBlock();
  b.setInsertionPointToStart(body);
  TensorBuilder m(b, fn.getLoc());
  Value rate = learningRate(m, body->getArgument(0), elt);
  func::ReturnOp::create(b, fn.getLoc(), rate);
}

std::vector<TrainingOption> mlir::trainopt::stage_options::lrScheduleOptions() {
  TrainoptLRSchedulePass pass;
  return passOptionsOf(pass.anyOption(), pass.getArgument());
}
