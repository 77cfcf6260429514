//===- LossHandlers.cpp - ONNX loss ops -----------------------------------===//
//
/// \file
/// Handlers for the ONNX training losses. They map to the trainopt loss ops
/// with the class axis 1 of ONNX.
//
//===----------------------------------------------------------------------===//

#include "ImportContext.h"

using namespace mlir;
using namespace mlir::trainopt;
using namespace mlir::trainopt::onnx_import;

namespace {

/// The common attributes: reduction and ignore_index.
FailureOr<SmallVector<NamedAttribute>> lossAttrs(NodeContext &n) {
  FailureOr<std::string> reduction =
      n.check(n.attrs.getString("reduction", std::string("mean")));
  if (failed(reduction))
    return failure();
  std::optional<Reduction> r = symbolizeReduction(*reduction);
  if (!r)
    return n.fail("reduction '" + *reduction +
                  "' is not one of none, mean, sum");
  SmallVector<NamedAttribute> attrs{
      n.named("reduction", ReductionAttr::get(n.getContext(), *r)),
      n.named("class_axis", n.builder.getI64IntegerAttr(1))};
  if (n.attrs.has("ignore_index")) {
    FailureOr<int64_t> ignore = n.check(n.attrs.getInt("ignore_index"));
    if (failed(ignore))
      return failure();
    attrs.push_back(
        n.named("ignore_index", n.builder.getI64IntegerAttr(*ignore)));
  }
  return attrs;
}

template <typename OpTy> LogicalResult labelLoss(NodeContext &n) {
  FailureOr<Value> scores = n.required(0), labels = n.required(1);
  FailureOr<SmallVector<NamedAttribute>> attrs = lossAttrs(n);
  if (failed(scores) || failed(labels) || failed(attrs))
    return failure();
  if (n.inputType(0).getRank() < 2)
    return n.fail("scores must have rank >= 2 ([N, C, ...])");
  SmallVector<Value> operands{*scores, *labels};
  if (n.input(2))
    operands.push_back(n.input(2));
  FailureOr<Value> loss = n.create<OpTy>(operands, *attrs);
  if (failed(loss))
    return failure();
  n.setOutput(0, *loss);
  if constexpr (std::is_same_v<OpTy, CrossEntropyOp>) {
    if (n.outputRequested(1)) {
      FailureOr<Value> logp = n.create<LogSoftmaxOp>(
          {*scores}, {n.named("axis", n.builder.getI64IntegerAttr(1))},
          n.inputType(0));
      if (failed(logp))
        return failure();
      n.setOutput(1, *logp);
    }
  }
  return success();
}

} // namespace

void onnx_import::registerLossHandlers(HandlerTable &t) {
  t.on("SoftmaxCrossEntropyLoss", 13, labelLoss<CrossEntropyOp>);
  t.on("NegativeLogLikelihoodLoss", 13, labelLoss<NllLossOp>);
}
