//===- ProbeValues.cpp - every intermediate value as a named output -------===//
//
/// \file
/// Makes a function return each of its intermediate values, tagged with a
/// name that says which op computed it from which probed operands, so the
/// reference evaluator and the compiled program can be compared value by
/// value (scripts/difftest.py). Branch decisions (i1 values) are returned
/// as f32 0/1, which every backend stores as plain floats.
//
//===----------------------------------------------------------------------===//

#include "trainopt/Dialect/Trainopt/Transforms/Passes.h"

#include "trainopt/Dialect/Trainopt/IR/TrainoptOps.h"

#include "mlir/IR/Builders.h"
#include "llvm/ADT/DenseMap.h"
#include "llvm/ADT/DenseSet.h"
#include "llvm/ADT/StringExtras.h"
#include "llvm/Support/Format.h"

namespace mlir::trainopt {
#define GEN_PASS_DEF_TRAINOPTPROBEVALUES
#include "trainopt/Dialect/Trainopt/Transforms/Passes.h.inc"
} // namespace mlir::trainopt

using namespace mlir;
using namespace mlir::trainopt;

namespace {

/// The ONNX node name in `loc` (through inlined call sites and fusions), or
/// "" for ops the training passes added (loss, gradient norm, optimizer).
std::string locationName(Location loc) {
  if (auto name = dyn_cast<NameLoc>(loc))
    return name.getName().str();
  if (auto site = dyn_cast<CallSiteLoc>(loc))
    return locationName(site.getCallee());
  if (auto fused = dyn_cast<FusedLoc>(loc))
    for (Location inner : fused.getLocations())
      if (std::string name = locationName(inner); !name.empty())
        return name;
  return "";
}

std::string joinDims(ArrayRef<int64_t> dims) {
  return llvm::join(llvm::map_range(dims, [](int64_t d) {
                      return std::to_string(d);
                    }),
                    "x");
}

/// The op's name in a probe: without the dialect prefix; a max-pool
/// gradient adds its window, which the tester needs to find window ties.
std::string probeOpName(Operation *op) {
  std::string name = op->getName().stripDialect().str();
  if (auto pool = dyn_cast<MaxPoolGradOp>(op))
    name += "[k=" + joinDims(pool.getKernelShape()) +
            ";s=" + joinDims(pool.getStrides()) +
            ";p=" + joinDims(pool.getPadding()) +
            ";d=" + joinDims(pool.getDilations()) + "]";
  return name;
}

/// `=V` for a splat floating-point or integer constant, else std::nullopt.
std::optional<std::string> splatConstant(Value v) {
  auto constant = v.getDefiningOp<ConstantOp>();
  if (!constant)
    return std::nullopt;
  auto dense = dyn_cast<DenseElementsAttr>(constant.getValue());
  if (!dense || !dense.isSplat())
    return std::nullopt;
  std::string text;
  llvm::raw_string_ostream os(text);
  if (isa<FloatType>(dense.getElementType()))
    os << llvm::format("%.17g",
                       dense.getSplatValue<APFloat>().convertToDouble());
  else
    os << dense.getSplatValue<APInt>().getSExtValue();
  return "=" + text;
}

struct TrainoptProbeValuesPass
    : public mlir::trainopt::impl::TrainoptProbeValuesBase<TrainoptProbeValuesPass> {
  using Base::Base;
  void runOnOperation() override;
};

} // namespace

void TrainoptProbeValuesPass::runOnOperation() {
  ModuleOp module = getOperation();
  auto func = module.lookupSymbol<func::FuncOp>(funcName);
  if (!func) {
    module.emitError() << "trainopt-probe-values: no function @" << funcName;
    return signalPassFailure();
  }
  // The values of a callee are not the caller's: the tester needs every op
  // of the step in one function, so calls must be inlined first.
  if (auto calls = func.getOps<func::CallOp>(); !calls.empty()) {
    func::CallOp call = *calls.begin();
    call.emitError() << "trainopt-probe-values: @" << funcName << " calls @"
                     << call.getCallee() << "; run -inline first";
    return signalPassFailure();
  }
  auto ret = cast<func::ReturnOp>(func.getBody().front().getTerminator());
  llvm::DenseSet<Value> returned(ret.getOperands().begin(),
                                 ret.getOperands().end());
  llvm::DenseMap<Value, int64_t> probeOf;
  SmallVector<Value> probes;
  SmallVector<std::string> names;
  OpBuilder b(func.getContext());
  // Collect first: the casts added for i1 values are not probed themselves.
  SmallVector<Operation *> ops;
  for (Operation &op : func.getBody().front().without_terminator())
    if (isa<TrainoptDialect>(op.getDialect()) && !isa<ConstantOp>(op))
      ops.push_back(&op);
  for (Operation *op : ops) {
    std::string refs;
    for (auto [i, operand] : llvm::enumerate(op->getOperands())) {
      if (i)
        refs += ",";
      if (auto it = probeOf.find(operand); it != probeOf.end())
        refs += std::to_string(it->second);
      else
        refs += splatConstant(operand).value_or("-");
    }
    for (Value result : op->getResults()) {
      auto type = dyn_cast<RankedTensorType>(result.getType());
      if (!type || returned.contains(result))
        continue;
      Type elt = type.getElementType();
      Value probe = result;
      if (elt.isInteger(1)) {
        b.setInsertionPointAfter(op);
        probe = CastOp::create(b, op->getLoc(), type.clone(b.getF32Type()),
                               result);
      } else if (!isa<FloatType>(elt)) {
        continue;
      }
      probeOf[result] = static_cast<int64_t>(probes.size());
      names.push_back("probe." + std::to_string(probes.size()) + ":" +
                      probeOpName(op) + ":" + refs + ":" +
                      locationName(op->getLoc()));
      probes.push_back(probe);
    }
  }
  if (probes.empty())
    return;
  unsigned end = func.getNumResults();
  SmallVector<unsigned> at(probes.size(), end);
  SmallVector<Type> types;
  SmallVector<DictionaryAttr> attrs;
  for (auto [probe, name] : llvm::zip(probes, names)) {
    types.push_back(probe.getType());
    attrs.push_back(b.getDictionaryAttr(b.getNamedAttr(
        TrainoptDialect::kOutputAttrName, b.getStringAttr(name))));
  }
  if (failed(func.insertResults(at, types, attrs))) {
    func.emitError() << "trainopt-probe-values: cannot add results";
    return signalPassFailure();
  }
  ret.getOperandsMutable().append(probes);
}
