//===- ApplyOptimizer.cpp - the optimizer stage ---------------------------===//
//
/// \file
/// Replaces the gradients of `@train_step` (gradient form) by the update of
/// the optimizer chosen by name from `optimizerDefs()`. Everything that is
/// the same for every optimizer lives here: flag validation from the
/// definitions' hyperparameter lists, weight-decay exclusions, the slots as
/// optimizer state, the update gate and its update counter, the learning
/// rate from `@lr_schedule`, and the results.
//
//===----------------------------------------------------------------------===//

#include "trainopt/Dialect/Trainopt/Transforms/Optimizers.h"
#include "trainopt/Dialect/Trainopt/Transforms/Passes.h"
#include "trainopt/Dialect/Trainopt/Transforms/TrainingPipeline.h"
#include "trainopt/Dialect/Trainopt/Transforms/TrainStep.h"

#include "mlir/IR/Builders.h"
#include "llvm/ADT/StringExtras.h"
#include "llvm/Support/GlobPattern.h"

namespace mlir::trainopt {
#define GEN_PASS_DEF_TRAINOPTAPPLYOPTIMIZER
#include "trainopt/Dialect/Trainopt/Transforms/Passes.h.inc"
} // namespace mlir::trainopt

using namespace mlir;
using namespace mlir::trainopt;

namespace {

/// The allowed range of a hyperparameter, whatever the optimizer.
struct Range {
  StringRef name;
  double lo, hi;
  bool hiOpen;
  const char *text;
};
const Range ranges[] = {
    {"momentum", 0.0, INFINITY, false, "must be >= 0"},
    {"dampening", 0.0, 1.0, false, "must be in [0, 1]"},
    {"weight-decay", 0.0, INFINITY, false, "must be >= 0"},
    {"beta1", 0.0, 1.0, true, "must be in [0, 1)"},
    {"beta2", 0.0, 1.0, true, "must be in [0, 1)"},
    {"eps", 0.0, INFINITY, false, "must be >= 0"},
    {"alpha", 0.0, 1.0, true, "must be in [0, 1)"},
    {"lr-decay", 0.0, INFINITY, false, "must be >= 0"},
};

struct TrainoptApplyOptimizerPass
    : public mlir::trainopt::impl::TrainoptApplyOptimizerBase<
          TrainoptApplyOptimizerPass> {
  using TrainoptApplyOptimizerBase::TrainoptApplyOptimizerBase;
  /// One option, to list all (TrainingPipeline.h).
  const llvm::cl::Option &anyOption() const { return optimizer; }

  /// The hyperparameter flags given, by their option names (Passes.td).
  llvm::StringMap<double> givenFlags() {
    llvm::StringMap<double> given;
    auto put = [&](auto &opt, double v) {
      if (opt.hasValue())
        given[opt.ArgStr] = v;
    };
    put(momentum, momentum);
    put(dampening, dampening);
    put(nesterov, nesterov ? 1.0 : 0.0);
    put(weightDecay, weightDecay);
    put(beta1, beta1);
    put(beta2, beta2);
    put(eps, eps);
    put(alpha, alpha);
    put(lrDecay, lrDecay);
    return given;
  }

  /// Checks the flags against `def` and fills in its defaults.
  FailureOr<Hyperparameters> hyperparameters(const OptimizerDef &def,
                                             Operation *anchor) {
    auto bad = [&](StringRef flag, const Twine &why) {
      return anchor->emitError() << "--" << flag << ": " << why;
    };
    llvm::StringMap<double> values;
    for (const Hyperparameter &h : def.hyperparameters)
      values[h.name] = h.defaultValue;
    for (auto &[name, v] : givenFlags()) {
      if (!values.count(name)) {
        SmallVector<StringRef> users;
        for (const OptimizerDef &d : optimizerDefs())
          if (llvm::any_of(d.hyperparameters, [&, n = name](const Hyperparameter &h) {
                return h.name == n;
              }))
            users.push_back(d.name);
        (void)bad(name, "does not apply to --optimizer=" + def.name +
                            " (it applies to " + llvm::join(users, ", ") + ")");
        return failure();
      }
      for (const Range &r : ranges)
        if (r.name == name &&
            !(v >= r.lo && (r.hiOpen ? v < r.hi : v <= r.hi))) {
          (void)bad(name, r.text);
          return failure();
        }
      values[name] = v;
    }
    if (!noWeightDecay.empty() && values.lookup("weight-decay") == 0.0) {
      (void)bad("no-weight-decay", "needs a weight decay");
      return failure();
    }
    for (const std::string &p : noWeightDecay)
      if (!llvm::GlobPattern::create(p)) {
        (void)bad("no-weight-decay", "'" + p + "' is not a valid glob");
        return failure();
      }
    Hyperparameters hp(std::move(values));
    if (std::string why = def.check(hp); !why.empty()) {
      auto [flag, rest] = StringRef(why).split(": ");
      (void)bad(flag, rest);
      return failure();
    }
    return hp;
  }

  double weightDecayFor(StringRef param, const Hyperparameters &hp) {
    for (const std::string &p : noWeightDecay)
      if (auto glob = llvm::GlobPattern::create(p); glob && glob->match(param))
        return 0.0;
    return hp("weight-decay");
  }

  void runOnOperation() override {
    ModuleOp module = getOperation();
    MLIRContext *ctx = &getContext();
    const OptimizerDef *def = lookupOptimizer(optimizer);
    if (!def) {
      SmallVector<StringRef> names;
      for (const OptimizerDef &d : optimizerDefs())
        names.push_back(d.name);
      module.emitError() << "--optimizer: must be one of "
                         << llvm::join(names, ", ") << ", got '" << optimizer
                         << "'";
      return signalPassFailure();
    }
    FailureOr<Hyperparameters> hp = hyperparameters(*def, module);
    if (failed(hp))
      return signalPassFailure();
    FailureOr<TrainStepFunction> step =
        TrainStepFunction::get(module, getArgument());
    if (failed(step))
      return signalPassFailure();
    auto schedule = module.lookupSymbol<func::FuncOp>(kLRScheduleName);
    if (!schedule) {
      module.emitError() << getArgument() << ": no @" << kLRScheduleName
                         << "; run trainopt-lr-schedule first";
      return signalPassFailure();
    }
    SmallVector<unsigned> gradResults =
        step->resultsWithRole(ValueRole::gradient);
    SmallVector<unsigned> gates = step->resultsWithRole(ValueRole::update_gate);
    Builder attrs(ctx);
    OpBuilder b = step->builderAtEnd();
    TensorBuilder m(b, step->func.getLoc());
    Value gate = gates.empty() ? Value() : step->result(gates[0]);

    // The update count: `step` itself, or under a gate a counter of the
    // updates applied.
    Value updates = step->step();
    if (gate) {
      BlockArgument counter = step->addStateArgument(
          updates.getType(),
          {attrs.getNamedAttr(TrainoptDialect::kStateAttrName,
                              attrs.getStringAttr("optimizer_step")),
           roleAttr(ctx, ValueRole::optimizer_state)});
      step->addUpdate(m.where(gate, m.add(counter, 1.0), counter), counter);
      updates = counter;
    }
    Value lr = func::CallOp::create(m.b, schedule, updates).getResult(0);

    SmallVector<StringRef> slotNames = def->slots(*hp);
    for (unsigned r : gradResults) {
      auto param = step->func.getResultAttrOfType<FlatSymbolRefAttr>(
          r, TrainoptDialect::kGradOfAttrName);
      BlockArgument p = param ? step->parameter(param.getValue())
                              : BlockArgument();
      if (!p) {
        step->func.emitError() << getArgument() << ": gradient result " << r
                               << " names no parameter argument";
        return signalPassFailure();
      }
      SmallVector<BlockArgument> slotArgs;
      SmallVector<Value> slots;
      for (StringRef name : slotNames) {
        slotArgs.push_back(step->addStateArgument(
            p.getType(),
            {attrs.getNamedAttr(TrainoptDialect::kStateAttrName,
                                attrs.getStringAttr(name)),
             attrs.getNamedAttr(TrainoptDialect::kStateOfAttrName, param),
             roleAttr(ctx, ValueRole::optimizer_state)}));
        slots.push_back(slotArgs.back());
      }
      Type pe = TensorBuilder::elementType(p);
      Value lrP = m.cast(lr, pe);
      Value count = m.add(m.cast(updates, pe), 1.0);
      OptimizerStep s{m,
                      *hp,
                      p,
                      step->result(r),
                      slots,
                      lrP,
                      updates,
                      count,
                      weightDecayFor(param.getValue(), *hp),
                      [&, param = param](Value local) {
                        return trainopt::sumOverParameter(m, step->func, param,
                                                          local);
                      }};
      OptimizerUpdate u = def->update(s);
      assert(u.slots.size() == slotArgs.size() && "slot count differs");
      if (gate) {
        u.param = m.where(gate, u.param, p);
        for (auto [v, old] : llvm::zip(u.slots, slotArgs))
          v = m.where(gate, v, old);
      }
      step->addUpdate(u.param, p);
      for (auto [v, arg] : llvm::zip(u.slots, slotArgs))
        step->addUpdate(v, arg);
    }
    step->addMetric(lr, "lr");
    SmallVector<unsigned> consumed(gradResults);
    consumed.append(gates);
    step->eraseResults(consumed);
    step->sinkMetrics();
  }
};

} // namespace

std::vector<TrainingOption> mlir::trainopt::stage_options::applyOptimizerOptions() {
  TrainoptApplyOptimizerPass pass;
  return passOptionsOf(pass.anyOption(), pass.getArgument());
}
