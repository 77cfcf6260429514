//===- AttachLoss.cpp - make a function return its training loss ----------===//
//
/// \file
/// Names the model's own loss, or appends the requested loss over an output
/// and a new labels argument.
//
//===----------------------------------------------------------------------===//

#include "trainopt/Dialect/Trainopt/Transforms/Passes.h"
#include "trainopt/Dialect/Trainopt/Transforms/TrainingPipeline.h"

#include "trainopt/Dialect/Trainopt/IR/TrainoptOps.h"

#include "mlir/IR/Builders.h"
#include "mlir/IR/TypeUtilities.h"

#include <limits>

namespace mlir::trainopt {
#define GEN_PASS_DEF_TRAINOPTATTACHLOSS
#include "trainopt/Dialect/Trainopt/Transforms/Passes.h.inc"
} // namespace mlir::trainopt

using namespace mlir;
using namespace mlir::trainopt;

/// The function argument a model's own loss takes its labels from (through
/// reshapes and casts), if any.
static std::optional<BlockArgument> labelArgument(Operation *loss) {
  if (!isa_and_nonnull<CrossEntropyOp, NllLossOp, MseLossOp>(loss))
    return std::nullopt;
  Value v = loss->getOperand(1);
  while (Operation *def = v.getDefiningOp()) {
    if (!isa<ReshapeOp, CastOp>(def))
      return std::nullopt;
    v = def->getOperand(0);
  }
  return cast<BlockArgument>(v);
}

/// Whether `v` is a reduced loss computed by the model.
static bool isModelLoss(Value v) {
  Operation *def = v.getDefiningOp();
  if (!def)
    return false;
  std::optional<Reduction> reduction;
  if (auto ce = dyn_cast<CrossEntropyOp>(def))
    reduction = ce.getReduction();
  else if (auto nll = dyn_cast<NllLossOp>(def))
    reduction = nll.getReduction();
  else if (auto mse = dyn_cast<MseLossOp>(def))
    reduction = mse.getReduction();
  return reduction && *reduction != Reduction::none;
}

namespace {
struct TrainoptAttachLossPass
    : public mlir::trainopt::impl::TrainoptAttachLossBase<
          TrainoptAttachLossPass> {
  using TrainoptAttachLossBase::TrainoptAttachLossBase;
  /// One option, to list all (TrainingPipeline.h).
  const llvm::cl::Option &anyOption() const { return funcName; }

  void runOnOperation() override {
    ModuleOp module = getOperation();
    auto func = module.lookupSymbol<func::FuncOp>(funcName);
    if (!func) {
      module.emitError() << "trainopt-attach-loss: no function @" << funcName;
      return signalPassFailure();
    }
    if (failed(attach(func)))
      signalPassFailure();
  }

  LogicalResult attach(func::FuncOp func) {
    auto ret = cast<func::ReturnOp>(func.getBody().front().getTerminator());
    StringAttr lossName = StringAttr::get(&getContext(), "loss");
    // The model's own loss.
    std::optional<unsigned> own;
    for (auto [i, v] : llvm::enumerate(ret.getOperands()))
      if (isModelLoss(v)) {
        if (own)
          return func.emitError()
                 << "the model computes several losses (results " << *own
                 << " and " << i << "); trainopt trains one";
        own = i;
      }
    if (own) {
      if (!loss.empty())
        return func.emitError()
               << "--loss=" << loss << " conflicts with the loss the model "
               << "computes itself (result " << *own << ")";
      func.setResultAttr(*own, TrainoptDialect::kOutputAttrName, lossName);
      NamedAttribute lossRole = roleAttr(&getContext(), ValueRole::loss);
      func.setResultAttr(*own, lossRole.getName(), lossRole.getValue());
      // The labels are the input the loss compares the scores with, by
      // role whatever the model calls it.
      if (auto arg = labelArgument(ret.getOperand(*own).getDefiningOp()))
        func.setArgAttr(arg->getArgNumber(), TrainoptDialect::kRoleAttrName,
                        ValueRoleAttr::get(&getContext(), ValueRole::labels));
      return success();
    }
    if (loss.empty())
      return func.emitError() << "the model computes no loss; pass "
                                 "--loss=cross_entropy|nll|mse";

    // The output the loss applies to.
    std::optional<unsigned> input;
    if (lossInput.empty()) {
      // Features returned for trainopt-distill are not outputs.
      SmallVector<unsigned> outputs;
      for (unsigned i = 0; i < func.getNumResults(); ++i)
        if (!func.getResultAttr(i, TrainoptDialect::kFeatureAttrName))
          outputs.push_back(i);
      if (outputs.size() != 1)
        return func.emitError() << "the model has " << outputs.size()
                                << " outputs; choose one with --loss-input";
      input = outputs.front();
    } else {
      for (unsigned i = 0; i < func.getNumResults(); ++i)
        if (auto n = func.getResultAttrOfType<StringAttr>(
                i, TrainoptDialect::kOutputAttrName))
          if (n.getValue() == lossInput)
            input = i;
      if (!input)
        return func.emitError() << "--loss-input=" << lossInput
                                << " names no output of the model";
    }
    Value scores = ret.getOperand(*input);
    auto st = cast<RankedTensorType>(scores.getType());
    if (!isa<FloatType>(st.getElementType()))
      return func.emitError()
             << "--loss applies to output " << *input << " of type " << st
             << ", which is not floating point";
    std::optional<Reduction> red = symbolizeReduction(reduction);
    if (!red || *red == Reduction::none)
      return func.emitError() << "--loss-reduction must be mean or sum, got '"
                              << reduction << "'";
    if (labelSmoothing < 0.0 || labelSmoothing > 1.0 ||
        (labelSmoothing != 0.0 && loss != "cross_entropy"))
      return func.emitError() << "--label-smoothing=" << labelSmoothing
                              << " needs --loss=cross_entropy and a value in "
                                 "[0, 1]";
    bool hasIgnore = ignoreIndex != std::numeric_limits<int64_t>::min();
    if (hasIgnore && loss == "mse")
      return func.emitError() << "--ignore-index does not apply to --loss=mse";

    // The labels argument.
    RankedTensorType labelsType;
    if (loss == "mse") {
      labelsType = st;
    } else if (loss == "cross_entropy" || loss == "nll") {
      int64_t rank = st.getRank();
      auto given = static_cast<int64_t>(classAxis);
      int64_t axis = given < 0 ? given + rank : given;
      if (rank < 1 || axis < 0 || axis >= rank)
        return func.emitError()
               << "--class-axis=" << given << " does not fit output " << *input
               << " of type " << st;
      // Dim 0 is the batch: classes there would make every sample one
      // class of a single prediction.
      if (axis == 0 && rank >= 2)
        return func.emitError()
               << "--class-axis=" << given << " is the batch axis of output "
               << *input << " of type " << st
               << "; the classes are on axis 1 (or -1 for [B, T, V] token "
                  "logits)";
      SmallVector<int64_t> shape(st.getShape());
      shape.erase(shape.begin() + axis);
      labelsType =
          RankedTensorType::get(shape, IntegerType::get(&getContext(), 64));
    } else {
      return func.emitError() << "--loss must be cross_entropy, nll or mse, "
                                 "got '"
                              << loss << "'";
    }
    for (unsigned i = 0; i < func.getNumArguments(); ++i)
      if (auto n = func.getArgAttrOfType<StringAttr>(
              i, TrainoptDialect::kInputAttrName))
        if (n.getValue() == labels)
          return func.emitError()
                 << "--labels=" << labels << " names an existing input";
    unsigned labelIndex = func.getNumArguments();
    if (failed(func.insertArgument(
            labelIndex, labelsType,
            DictionaryAttr::get(
                &getContext(),
                {NamedAttribute(TrainoptDialect::kInputAttrName,
                                StringAttr::get(&getContext(), labels)),
                 roleAttr(&getContext(), ValueRole::labels)}),
            func.getLoc())))
      return failure();
    Value labelArg = func.getArgument(labelIndex);

    OpBuilder b(ret);
    Location loc = scores.getLoc();
    auto redAttr = ReductionAttr::get(&getContext(), *red);
    Value value;
    if (loss == "mse") {
      value = MseLossOp::create(b, loc, scores, labelArg, redAttr);
    } else {
      SmallVector<NamedAttribute> attrs{
          b.getNamedAttr("reduction", redAttr),
          b.getNamedAttr("class_axis", b.getI64IntegerAttr(classAxis))};
      if (hasIgnore)
        attrs.push_back(
            b.getNamedAttr("ignore_index", b.getI64IntegerAttr(ignoreIndex)));
      Type resultType = RankedTensorType::get({}, st.getElementType());
      if (loss == "cross_entropy") {
        if (labelSmoothing != 0.0)
          attrs.push_back(b.getNamedAttr("label_smoothing",
                                         b.getF64FloatAttr(labelSmoothing)));
        value = CrossEntropyOp::create(b, loc, resultType,
                                       ValueRange{scores, labelArg}, attrs);
      } else {
        value = NllLossOp::create(b, loc, resultType,
                                  ValueRange{scores, labelArg}, attrs);
      }
    }
    SmallVector<Value> results(ret.getOperands());
    results.push_back(value);
    func::ReturnOp::create(b, ret.getLoc(), results);
    ret.erase();
    SmallVector<Attribute> resultAttrs;
    for (unsigned i = 0; i < func.getNumResults(); ++i)
      resultAttrs.push_back(func.getResultAttrDict(i)
                                ? Attribute(func.getResultAttrDict(i))
                                : b.getDictionaryAttr({}));
    resultAttrs.push_back(b.getDictionaryAttr(
        {b.getNamedAttr(TrainoptDialect::kOutputAttrName, lossName),
         roleAttr(&getContext(), ValueRole::loss)}));
    func.setType(
        b.getFunctionType(func.getArgumentTypes(),
                          llvm::to_vector(ValueRange(results).getTypes())));
    func.setAllResultAttrs(resultAttrs);
    return success();
  }
};
} // namespace

std::vector<TrainingOption> mlir::trainopt::stage_options::attachLossOptions() {
  TrainoptAttachLossPass pass;
  return passOptionsOf(pass.anyOption(), pass.getArgument());
}
