//===- Autodiff.cpp - reverse-mode automatic differentiation --------------===//
//
/// \file
/// Builds the gradient function of a loss through DifferentiableOpInterface:
/// an activity analysis finds the ops on a path from a selected argument to
/// the loss, then a reverse sweep asks each of them for its VJP and sums the
/// cotangents of values with several uses.
//
//===----------------------------------------------------------------------===//

#include "trainopt/Dialect/Trainopt/Transforms/Passes.h"
#include "trainopt/Dialect/Trainopt/Transforms/TrainStep.h"

#include "trainopt/Dialect/Trainopt/IR/TrainoptOps.h"

#include "mlir/IR/Builders.h"
#include "mlir/IR/IRMapping.h"
#include "mlir/IR/SymbolTable.h"
#include "mlir/IR/TypeUtilities.h"
#include "llvm/ADT/DenseSet.h"

namespace mlir::trainopt {
#define GEN_PASS_DEF_TRAINOPTAUTODIFF
#include "trainopt/Dialect/Trainopt/Transforms/Passes.h.inc"
} // namespace mlir::trainopt

using namespace mlir;
using namespace mlir::trainopt;

static bool isFloatTensor(Value v) {
  return isa<FloatType>(getElementTypeOrSelf(v.getType()));
}

/// Whether argument `i` of `func` is selected for differentiation.
static bool isSelected(func::FuncOp func, unsigned i, GradientArguments wrt) {
  if (!isFloatTensor(func.getArgument(i)))
    return false;
  if (wrt == GradientArguments::Float)
    return true;
  // A pipeline stage's input activation: its cotangent goes back to the
  // previous stage.
  if (auto kind = func.getArgAttrOfType<StringAttr>(
          i, TrainoptDialect::kPipelineAttrName))
    return kind.getValue() == "in";
  auto ref = func.getArgAttrOfType<FlatSymbolRefAttr>(
      i, TrainoptDialect::kParamAttrName);
  if (!ref)
    return false;
  auto param = SymbolTable::lookupNearestSymbolFrom<ParameterOp>(func, ref);
  return param && param.getTrainable();
}

FailureOr<func::FuncOp> mlir::trainopt::differentiate(func::FuncOp func,
                                                      unsigned lossIndex,
                                                      GradientArguments wrt,
                                                      bool keepResults) {
  Block &body = func.getBody().front();
  auto ret = cast<func::ReturnOp>(body.getTerminator());
  Value loss = ret.getOperand(lossIndex);
  auto lossType = dyn_cast<RankedTensorType>(loss.getType());
  if (!lossType || lossType.getRank() != 0 || !isFloatTensor(loss))
    return func.emitError() << "result " << lossIndex
                            << " is the loss and must be a 0-d floating-point "
                               "tensor, got "
                            << loss.getType();

  // The gradient function: a copy of the body up to the loss.
  OpBuilder builder(func);
  builder.setInsertionPointAfter(func);
  auto grad = cast<func::FuncOp>(builder.clone(*func));
  grad.setSymName((func.getSymName() + "_grad").str());
  SymbolTable::setSymbolVisibility(grad,
                                   SymbolTable::getSymbolVisibility(func));
  if (auto module = func->getParentOfType<ModuleOp>()) {
    SymbolTable table(module);
    if (table.lookup(grad.getSymName()) != grad.getOperation()) {
      grad.erase();
      return func.emitError() << "cannot add @" << func.getSymName()
                              << "_grad: the symbol exists";
    }
  }
  Block &gbody = grad.getBody().front();
  auto gret = cast<func::ReturnOp>(gbody.getTerminator());
  loss = gret.getOperand(lossIndex);

  // Activity: values that depend on a selected argument through floats...
  llvm::DenseSet<Value> varied;
  SmallVector<unsigned> selected;
  for (unsigned i = 0; i < grad.getNumArguments(); ++i)
    if (isSelected(grad, i, wrt)) {
      selected.push_back(i);
      varied.insert(gbody.getArgument(i));
    }
  for (Operation &op : gbody.without_terminator())
    if (!op.hasAttr(kStopGradientAttrName) &&
        llvm::any_of(op.getOperands(),
                     [&](Value v) { return varied.contains(v); }))
      for (Value r : op.getResults())
        if (isFloatTensor(r))
          varied.insert(r);
  // ...and that the loss depends on.
  llvm::DenseSet<Value> useful{loss};
  for (Operation &op : llvm::reverse(gbody.without_terminator()))
    if (llvm::any_of(op.getResults(),
                     [&](Value v) { return useful.contains(v); }))
      for (Value v : op.getOperands())
        useful.insert(v);
  auto active = [&](Value v) {
    return varied.contains(v) && useful.contains(v);
  };

  // Reverse sweep.
  builder.setInsertionPoint(gret);
  DenseMap<Value, Value> cotangent;
  auto accumulate = [&](Value v, Value g) {
    auto it = cotangent.find(v);
    if (it == cotangent.end())
      cotangent[v] = g;
    else
      it->second = AddOp::create(builder, g.getLoc(), it->second, g);
  };
  cotangent[loss] = ConstantOp::create(
      builder, loss.getLoc(),
      DenseElementsAttr::get(
          lossType, builder.getFloatAttr(lossType.getElementType(), 1.0)));
  SmallVector<Operation *> ops;
  for (Operation &op : gbody.without_terminator())
    ops.push_back(&op);
  SmallVector<Operation *> missing;
  for (Operation *op : llvm::reverse(ops)) {
    if (!llvm::any_of(op->getResults(), active))
      continue;
    SmallVector<Value> resultGrads;
    bool any = false;
    for (Value r : op->getResults()) {
      auto it = cotangent.find(r);
      resultGrads.push_back(it == cotangent.end() ? Value() : it->second);
      any |= it != cotangent.end();
    }
    if (!any)
      continue;
    auto diff = dyn_cast<DifferentiableOpInterface>(op);
    if (!diff) {
      missing.push_back(op);
      continue;
    }
    SmallVector<Value> operandGrads;
    if (failed(diff.buildVJP(builder, resultGrads, operandGrads)))
      return op->emitError() << "failed to build the VJP";
    for (auto [operand, g] : llvm::zip(op->getOperands(), operandGrads))
      if (g && active(operand))
        accumulate(operand, g);
  }
  if (!missing.empty()) {
    InFlightDiagnostic diag = func.emitError()
                              << "cannot differentiate @" << func.getSymName()
                              << ": " << missing.size()
                              << (missing.size() == 1 ? " op has" : " ops have")
                              << " no VJP";
    for (Operation *op : missing)
      diag.attachNote(op->getLoc()) << "'" << op->getName() << "' has no VJP";
    grad.erase();
    return failure();
  }

  // Results: the loss, then one gradient per selected argument.
  SmallVector<Value> results;
  SmallVector<Attribute> resultAttrs;
  if (keepResults) {
    for (auto [i, v] : llvm::enumerate(gret.getOperands())) {
      results.push_back(v);
      DictionaryAttr attrs = grad.getResultAttrDict(i);
      resultAttrs.push_back(attrs ? attrs : builder.getDictionaryAttr({}));
    }
  } else {
    results.push_back(loss);
    resultAttrs.push_back(builder.getDictionaryAttr({}));
  }
  for (unsigned i : selected) {
    Value arg = gbody.getArgument(i);
    auto it = cotangent.find(arg);
    Value g = it != cotangent.end()
                  ? it->second
                  : ConstantOp::create(
                        builder, arg.getLoc(),
                        DenseElementsAttr::get(
                            cast<RankedTensorType>(arg.getType()),
                            builder.getFloatAttr(
                                getElementTypeOrSelf(arg.getType()), 0.0)));
    results.push_back(g);
    Attribute of = grad.getArgAttr(i, TrainoptDialect::kParamAttrName);
    if (!of)
      of = builder.getI64IntegerAttr(i);
    resultAttrs.push_back(builder.getDictionaryAttr(
        builder.getNamedAttr(TrainoptDialect::kGradOfAttrName, of)));
  }
  func::ReturnOp::create(builder, gret.getLoc(), results);
  gret.erase();
  grad.setType(
      builder.getFunctionType(grad.getArgumentTypes(),
                              llvm::to_vector(ValueRange(results).getTypes())));
  grad.setAllResultAttrs(resultAttrs);
  // Forward values that no longer reach a result are dead; users come
  // after their operands, so one reverse pass removes whole chains.
  SmallVector<Operation *> order;
  for (Operation &op : gbody.without_terminator())
    order.push_back(&op);
  for (Operation *op : llvm::reverse(order))
    if (op->use_empty() && isPure(op))
      op->erase();
  return grad;
}

namespace {
struct TrainoptAutodiffPass
    : public mlir::trainopt::impl::TrainoptAutodiffBase<TrainoptAutodiffPass> {
  using TrainoptAutodiffBase::TrainoptAutodiffBase;

  void runOnOperation() override {
    ModuleOp module = getOperation();
    auto func = module.lookupSymbol<func::FuncOp>(funcName);
    if (!func) {
      module.emitError() << "trainopt-autodiff: no function @" << funcName;
      return signalPassFailure();
    }
    GradientArguments which;
    if (wrt == "trainable")
      which = GradientArguments::Trainable;
    else if (wrt == "float")
      which = GradientArguments::Float;
    else {
      module.emitError() << "trainopt-autodiff: wrt must be 'trainable' or "
                            "'float', got '"
                         << wrt << "'";
      return signalPassFailure();
    }
    FailureOr<unsigned> index = findLoss(func);
    if (failed(index) || failed(differentiate(func, *index, which)))
      return signalPassFailure();
  }

  FailureOr<unsigned> findLoss(func::FuncOp func) {
    unsigned n = func.getNumResults();
    if (!lossResult.empty()) {
      for (unsigned i = 0; i < n; ++i)
        if (auto name = func.getResultAttrOfType<StringAttr>(
                i, TrainoptDialect::kOutputAttrName))
          if (name.getValue() == lossResult)
            return i;
      unsigned index;
      if (!StringRef(lossResult).getAsInteger(10, index) && index < n)
        return index;
      return func.emitError() << "trainopt-autodiff: no result '" << lossResult
                              << "' (expected an output name or an index "
                                 "below "
                              << n << ")";
    }
    std::optional<unsigned> found;
    for (unsigned i = 0; i < n; ++i) {
      auto t = dyn_cast<RankedTensorType>(func.getResultTypes()[i]);
      if (t && t.getRank() == 0 && isa<FloatType>(t.getElementType())) {
        if (found)
          return func.emitError() << "trainopt-autodiff: several 0-d float "
                                     "results; choose one with loss=";
        found = i;
      }
    }
    if (!found)
      return func.emitError()
             << "trainopt-autodiff: no 0-d floating-point result to use as "
                "the loss";
    return *found;
  }
};
} // namespace
