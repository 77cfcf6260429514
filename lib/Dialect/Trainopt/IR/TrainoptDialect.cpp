//===- TrainoptDialect.cpp - trainopt dialect -----------------------------===//
//
/// \file
/// Registers the trainopt ops and attributes, verifies the argument and
/// result attributes that bind functions to parameters, inputs and outputs,
/// and parses/prints the custom pieces of `trainopt.parameter`.
//
//===----------------------------------------------------------------------===//

#include "trainopt/Dialect/Trainopt/IR/TrainoptDialect.h"
#include "trainopt/Dialect/Trainopt/IR/TrainoptOps.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/IR/Builders.h"
#include "mlir/IR/DialectImplementation.h"
#include "mlir/IR/OpImplementation.h"
#include "mlir/Transforms/InliningUtils.h"
#include "llvm/ADT/StringSet.h"
#include "llvm/ADT/TypeSwitch.h"

using namespace mlir;
using namespace mlir::trainopt;

#include "trainopt/Dialect/Trainopt/IR/TrainoptDialect.cpp.inc"
#include "trainopt/Dialect/Trainopt/IR/TrainoptEnums.cpp.inc"

#define GET_ATTRDEF_CLASSES
#include "trainopt/Dialect/Trainopt/IR/TrainoptAttrs.cpp.inc"

namespace {
/// Every trainopt op is pure and region-free, so calls to functions made of
/// them (the forward and gradient functions a train step calls) inline.
struct TrainoptInlinerInterface : public DialectInlinerInterface {
  using DialectInlinerInterface::DialectInlinerInterface;
  bool isLegalToInline(Operation *, Operation *, bool) const final {
    return true;
  }
  bool isLegalToInline(Region *, Region *, bool, IRMapping &) const final {
    return true;
  }
  bool isLegalToInline(Operation *, Region *, bool, IRMapping &) const final {
    return true;
  }
};
} // namespace

void TrainoptDialect::initialize() {
  addInterfaces<TrainoptInlinerInterface>();
  addOperations<
#define GET_OP_LIST
#include "trainopt/Dialect/Trainopt/IR/TrainoptOps.cpp.inc"
      >();
  addAttributes<
#define GET_ATTRDEF_LIST
#include "trainopt/Dialect/Trainopt/IR/TrainoptAttrs.cpp.inc"
      >();
}

Operation *TrainoptDialect::materializeConstant(OpBuilder &builder,
                                                Attribute value, Type type,
                                                Location loc) {
  auto elements = dyn_cast<ElementsAttr>(value);
  if (!elements || elements.getType() != type)
    return nullptr;
  return ConstantOp::create(builder, loc, elements);
}

/// `trainopt.role` must be a role.
static LogicalResult verifyRoleAttr(Operation *op, StringRef what,
                                    unsigned index, NamedAttribute attr) {
  if (!isa<ValueRoleAttr>(attr.getValue()))
    return op->emitError() << "'" << TrainoptDialect::kRoleAttrName << "' on "
                           << what << " " << index
                           << " must be a #trainopt<role ...>, got "
                           << attr.getValue();
  return success();
}

std::optional<ValueRole> mlir::trainopt::argumentRole(FunctionOpInterface f,
                                                      unsigned i) {
  if (auto r = f.getArgAttrOfType<ValueRoleAttr>(i, TrainoptDialect::kRoleAttrName))
    return r.getValue();
  return std::nullopt;
}

std::optional<ValueRole> mlir::trainopt::resultRole(FunctionOpInterface f,
                                                    unsigned i) {
  if (auto r =
          f.getResultAttrOfType<ValueRoleAttr>(i, TrainoptDialect::kRoleAttrName))
    return r.getValue();
  return std::nullopt;
}

NamedAttribute mlir::trainopt::roleAttr(MLIRContext *ctx, ValueRole role) {
  return NamedAttribute(StringAttr::get(ctx, TrainoptDialect::kRoleAttrName),
                        ValueRoleAttr::get(ctx, role));
}

LogicalResult TrainoptDialect::verifyRegionArgAttribute(Operation *op,
                                                        unsigned regionIndex,
                                                        unsigned argIndex,
                                                        NamedAttribute attr) {
  auto func = dyn_cast<FunctionOpInterface>(op);
  if (attr.getName() == kRoleAttrName)
    return verifyRoleAttr(op, "argument", argIndex, attr);
  if (attr.getName() == kStateAttrName) {
    if (!isa<StringAttr>(attr.getValue()))
      return op->emitError() << "'" << kStateAttrName << "' on argument "
                             << argIndex << " must be a string";
    return success();
  }
  if (attr.getName() == kInitAttrName) {
    auto init = dyn_cast<DenseElementsAttr>(attr.getValue());
    Type argType = func ? func.getArgumentTypes()[argIndex] : Type();
    if (!init || (argType && init.getType() != argType))
      return op->emitError()
             << "'" << kInitAttrName << "' on argument " << argIndex
             << " must be dense elements of the argument's "
                "type";
    return success();
  }
  if (attr.getName() == kStateOfAttrName) {
    if (!isa<FlatSymbolRefAttr>(attr.getValue()))
      return op->emitError() << "'" << kStateOfAttrName << "' on argument "
                             << argIndex << " must be a parameter symbol";
    return success();
  }
  if (attr.getName() == kShardingAttrName) {
    // Levels, outermost first (docs/distributed.md, "Shardings"):
    // AXIS:DIM[/BLOCKS] (tensor parallelism; BLOCKS: a fused projection's
    // q, k and v each split), AXIS:flat (last: ZeRO's flat part of what
    // the levels before left), AXIS:mean (alone).
    auto sharding = dyn_cast<StringAttr>(attr.getValue());
    if (!sharding)
      return op->emitError() << "'" << kShardingAttrName << "' on argument "
                             << argIndex << " must be a string";
    Type argType = func ? func.getArgumentTypes()[argIndex] : Type();
    auto tt = dyn_cast_or_null<RankedTensorType>(argType);
    SmallVector<StringRef> levels;
    if (!sharding.getValue().empty())
      sharding.getValue().split(levels, ',');
    bool flat = sharding.getValue().ends_with(":flat");
    llvm::StringSet<> axes;
    for (auto [k, level] : llvm::enumerate(levels)) {
      auto [axis, how] = level.split(':');
      auto [dimText, blocksText] = how.split('/');
      int64_t dim = -1, blocks = 1;
      bool last = k + 1 == levels.size();
      bool ok =
          !axis.empty() && level.contains(':') && axes.insert(axis).second;
      if (how == "flat")
        ok = ok && last;
      else if (how == "mean")
        ok = ok && levels.size() == 1;
      else
        ok = ok && !dimText.getAsInteger(10, dim) && dim >= 0 &&
             (blocksText.empty() ||
              (!blocksText.getAsInteger(10, blocks) && blocks >= 1)) &&
             // Without a flat level the argument has the dims.
             (flat || !tt || dim < tt.getRank());
      if (!ok)
        return op->emitError()
               << "'" << kShardingAttrName << "' on argument " << argIndex
               << " must be levels \"AXIS:DIM[/BLOCKS]\" (a dim of the "
                  "argument, BLOCKS >= 1), then at most one \"AXIS:flat\", "
                  "over distinct axes, or \"AXIS:mean\" alone; got "
               << attr.getValue();
    }
    return success();
  }
  if (attr.getName() == kGlobalTypeAttrName) {
    auto type = dyn_cast<TypeAttr>(attr.getValue());
    if (!type || !isa<RankedTensorType>(type.getValue()))
      return op->emitError() << "'" << kGlobalTypeAttrName << "' on argument "
                             << argIndex << " must be a ranked tensor type";
    return success();
  }
  if (attr.getName() == kPipelineAttrName) {
    auto kind = dyn_cast<StringAttr>(attr.getValue());
    if (!kind || (kind.getValue() != "in" && kind.getValue() != "cot"))
      return op->emitError()
             << "'" << kPipelineAttrName << "' on argument " << argIndex
             << " must be \"in\" or \"cot\", got " << attr.getValue();
    return success();
  }
  if (attr.getName() == kInputAttrName) {
    if (!isa<StringAttr>(attr.getValue()))
      return op->emitError()
             << "'" << kInputAttrName << "' on argument " << argIndex
             << " must be a string, got " << attr.getValue();
    return success();
  }
  if (attr.getName() != kParamAttrName)
    return op->emitError() << "unknown trainopt argument attribute '"
                           << attr.getName().getValue() << "'";
  auto ref = dyn_cast<FlatSymbolRefAttr>(attr.getValue());
  if (!ref)
    return op->emitError() << "'" << kParamAttrName << "' on argument "
                           << argIndex << " must be a symbol reference, got "
                           << attr.getValue();
  if (!func || regionIndex != 0)
    return op->emitError() << "'" << kParamAttrName
                           << "' is only valid on function arguments";
  Operation *table = SymbolTable::getNearestSymbolTable(op->getParentOp());
  if (!table)
    return success();
  auto param = dyn_cast_or_null<ParameterOp>(
      SymbolTable::lookupSymbolIn(table, ref.getAttr()));
  if (!param)
    return op->emitError() << "argument " << argIndex
                           << " refers to unknown parameter " << ref;
  Type argType = func.getArgumentTypes()[argIndex];
  // A ZeRO-3 shard binds the parameter whose type is its global type.
  if (auto global = func.getArgAttrOfType<TypeAttr>(argIndex,
                                                    kGlobalTypeAttrName))
    argType = global.getValue();
  if (param.getType() != argType)
    return op->emitError() << "argument " << argIndex << " of type " << argType
                           << " binds parameter " << ref << " of type "
                           << param.getType();
  return success();
}

LogicalResult TrainoptDialect::verifyRegionResultAttribute(
    Operation *op, unsigned regionIndex, unsigned resultIndex,
    NamedAttribute attr) {
  if (attr.getName() == kRoleAttrName)
    return verifyRoleAttr(op, "result", resultIndex, attr);
  if (attr.getName() == kGradOfAttrName) {
    if (!isa<FlatSymbolRefAttr, IntegerAttr>(attr.getValue()))
      return op->emitError()
             << "'" << kGradOfAttrName << "' on result " << resultIndex
             << " must be a parameter symbol or an argument "
                "index, got "
             << attr.getValue();
    return success();
  }
  if (attr.getName() == kUpdatesAttrName) {
    if (!isa<IntegerAttr>(attr.getValue()))
      return op->emitError() << "'" << kUpdatesAttrName << "' on result "
                             << resultIndex << " must be an argument index";
    return success();
  }
  if (attr.getName() == kPipelineAttrName) {
    auto kind = dyn_cast<StringAttr>(attr.getValue());
    if (!kind || kind.getValue() != "out")
      return op->emitError()
             << "'" << kPipelineAttrName << "' on result " << resultIndex
             << " must be \"out\", got " << attr.getValue();
    return success();
  }
  if (attr.getName() == kFeatureAttrName) {
    if (!isa<UnitAttr>(attr.getValue()))
      return op->emitError() << "'" << kFeatureAttrName << "' on result "
                             << resultIndex << " is a unit attribute";
    return success();
  }
  if (attr.getName() != kOutputAttrName)
    return op->emitError() << "unknown trainopt result attribute '"
                           << attr.getName().getValue() << "'";
  if (!isa<StringAttr>(attr.getValue()))
    return op->emitError() << "'" << kOutputAttrName << "' on result "
                           << resultIndex << " must be a string, got "
                           << attr.getValue();
  return success();
}

//===----------------------------------------------------------------------===//
// Custom directives of trainopt.parameter
//===----------------------------------------------------------------------===//

namespace mlir::trainopt {

/// `trainable` or `frozen`: the trainability is always spelled out.
ParseResult parseTrainability(OpAsmParser &parser, UnitAttr &trainable) {
  if (succeeded(parser.parseOptionalKeyword("trainable"))) {
    trainable = parser.getBuilder().getUnitAttr();
    return success();
  }
  if (succeeded(parser.parseOptionalKeyword("frozen")))
    return success();
  return parser.emitError(parser.getCurrentLocation(),
                          "expected 'trainable' or 'frozen'");
}

void printTrainability(OpAsmPrinter &printer, Operation *, UnitAttr trainable) {
  printer << (trainable ? "trainable" : "frozen");
}

} // namespace mlir::trainopt
