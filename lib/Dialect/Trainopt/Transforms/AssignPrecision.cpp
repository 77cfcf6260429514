//===- AssignPrecision.cpp - mixed-precision assignment by policy ---------===//
//
/// \file
/// Rewrites the model function to run in bf16 or fp16 where the precision
/// policy allows, by inserting casts (Passes.td, trainopt-assign-precision).
/// The policy is data: a JSON file, built in (DefaultPrecisionPolicy.json)
/// or given by `amp-policy`.
//
//===----------------------------------------------------------------------===//

#include "trainopt/Dialect/Trainopt/Transforms/Passes.h"
#include "trainopt/Dialect/Trainopt/Transforms/TrainingPipeline.h"

#include "trainopt/Dialect/Trainopt/IR/TensorBuilder.h"
#include "trainopt/Dialect/Trainopt/IR/TrainoptOps.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/IR/Builders.h"
#include "mlir/IR/Verifier.h"
#include "mlir/Interfaces/InferTypeOpInterface.h"
#include "mlir/Interfaces/SideEffectInterfaces.h"
#include "mlir/Transforms/GreedyPatternRewriteDriver.h"
#include "llvm/ADT/StringSet.h"
#include "llvm/Support/FormatVariadic.h"
#include "llvm/Support/JSON.h"
#include "llvm/Support/MemoryBuffer.h"

#include <cmath>

namespace mlir::trainopt {
#define GEN_PASS_DEF_TRAINOPTASSIGNPRECISION
#include "trainopt/Dialect/Trainopt/Transforms/Passes.h.inc"
} // namespace mlir::trainopt

using namespace mlir;
using namespace mlir::trainopt;

/// The built-in policy, DefaultPrecisionPolicy.json, as a string literal.
static constexpr const char kDefaultPolicy[] =
#include "DefaultPrecisionPolicy.inc"
    ;

namespace {

/// Where the policy puts an op kind.
enum class Precision { Low, F32 };

struct PrecisionPolicy {
  /// Op kind (the op name without `trainopt.`) -> its precision; kinds not
  /// listed follow their inputs.
  llvm::StringMap<Precision> kinds;
};

/// The op kinds of the trainopt dialect.
llvm::StringSet<> opKinds(MLIRContext *ctx) {
  llvm::StringSet<> kinds;
  for (RegisteredOperationName name : ctx->getRegisteredOperations())
    if (name.getDialectNamespace() == TrainoptDialect::getDialectNamespace())
      kinds.insert(name.getStringRef().drop_front(
          TrainoptDialect::getDialectNamespace().size() + 1));
  return kinds;
}

/// Parses a policy (format: docs/mixed-precision.md). `source` names it in
/// errors.
FailureOr<PrecisionPolicy> parsePolicy(StringRef text, StringRef source,
                                       MLIRContext *ctx, Location loc) {
  auto fail = [&](const Twine &why) {
    emitError(loc) << "--amp-policy " << source << ": " << why;
    return failure();
  };
  llvm::Expected<llvm::json::Value> json = llvm::json::parse(text);
  if (!json)
    return fail("not JSON: " + llvm::toString(json.takeError()));
  const llvm::json::Object *root = json->getAsObject();
  if (!root)
    return fail("expects a JSON object");
  std::optional<int64_t> version = root->getInteger("version");
  if (version != 1)
    return fail("expects \"version\": 1, got " +
                (root->get("version")
                     ? llvm::formatv("{0}", *root->get("version")).str()
                     : std::string("none")));
  llvm::StringSet<> known = opKinds(ctx);
  PrecisionPolicy policy;
  for (const auto &[key, value] : *root) {
    StringRef list = key;
    if (list == "version" || list == "about")
      continue;
    Precision p;
    if (list == "low_precision")
      p = Precision::Low;
    else if (list == "fp32")
      p = Precision::F32;
    else
      return fail("unknown key \"" + list +
                  "\" (expects version, about, low_precision, fp32)");
    const llvm::json::Object *kinds = value.getAsObject();
    if (!kinds)
      return fail("\"" + list + "\" expects an object of op kind -> reason");
    for (const auto &entry : *kinds) {
      StringRef kind = entry.first;
      if (!known.contains(kind))
        return fail("\"" + list + "\": unknown op kind '" + kind + "'");
      if (!policy.kinds.try_emplace(kind, p).second)
        return fail("op kind '" + kind + "' is in both lists");
    }
  }
  // trainopt-build-train-step finds a BatchNorm's running statistics as
  // parameters and updates them in place: they stay f32 operands, so
  // BatchNorm is f32 whether the policy lists it or not.
  for (StringRef kind : {"batch_norm_inference", "batch_norm_train"}) {
    auto [it, added] = policy.kinds.try_emplace(kind, Precision::F32);
    if (!added && it->second != Precision::F32)
      return fail("'" + kind +
                  "' must be in \"fp32\" (its running statistics are f32 "
                  "model state)");
  }
  return policy;
}

/// The ONNX node name a location carries (the importer's NameLoc), or "".
StringRef nodeName(Location loc) {
  StringRef name;
  loc->walk([&](Location l) {
    if (auto n = dyn_cast<NameLoc>(l)) {
      name = n.getName().getValue();
      return WalkResult::interrupt();
    }
    return WalkResult::advance();
  });
  return name;
}

constexpr auto isFloatTensor = TensorBuilder::isFloatTensor;
constexpr auto elementTypeOf = TensorBuilder::elementType;

/// Rewrites one function by the policy.
class Assigner {
public:
  Assigner(func::FuncOp func, const PrecisionPolicy &policy, Type low,
           const llvm::StringSet<> &keep)
      : func(func), policy(policy), low(low), keep(keep),
        f32(Float32Type::get(func.getContext())) {}

  LogicalResult run() {
    Block &body = func.getBody().front();
    for (Operation &op : llvm::make_early_inc_range(body.without_terminator()))
      if (failed(assign(&op)))
        return failure();
    // The results keep their types: a low-precision output is cast back.
    Operation *ret = body.getTerminator();
    for (OpOperand &operand : ret->getOpOperands()) {
      Type want = func.getResultTypes()[operand.getOperandNumber()];
      if (operand.get().getType() != want)
        operand.set(castTo(operand.get(),
                           cast<RankedTensorType>(want).getElementType()));
    }
    return success();
  }

  /// Every cast this assigner made (for the cleanup).
  SmallVector<Operation *> casts;

private:
  /// Whether `v` is computed from parameters and constants alone.
  bool isWeightLike(Value v) {
    auto [it, inserted] = weightLike.try_emplace(v, false);
    if (!inserted)
      return it->second;
    bool result;
    if (auto arg = dyn_cast<BlockArgument>(v))
      result = static_cast<bool>(
          func.getArgAttr(arg.getArgNumber(), TrainoptDialect::kParamAttrName));
    else
      result = llvm::all_of(v.getDefiningOp()->getOperands(),
                            [&](Value o) { return isWeightLike(o); });
    weightLike[v] = result;
    return result;
  }

  /// `v` as a tensor of element type `to`: one cast per value and type,
  /// placed right after the value's definition so that every later user can
  /// share it.
  Value castTo(Value v, Type to) {
    if (elementTypeOf(v) == to)
      return v;
    Value &cached = castCache[{v, to}];
    if (cached)
      return cached;
    OpBuilder b(func.getContext());
    if (Operation *def = v.getDefiningOp())
      b.setInsertionPointAfter(def);
    else
      b.setInsertionPointToStart(&func.getBody().front());
    auto type = cast<RankedTensorType>(v.getType()).clone(to);
    // A cast is located at its value: the producing op (its ONNX node), or
    // the input or parameter, by name (--explain-overflow names it).
    Location loc = v.getLoc();
    if (auto arg = dyn_cast<BlockArgument>(v)) {
      unsigned i = arg.getArgNumber();
      if (auto name = func.getArgAttrOfType<StringAttr>(
              i, TrainoptDialect::kInputAttrName))
        loc = NameLoc::get(name, loc);
      else if (auto param = func.getArgAttrOfType<FlatSymbolRefAttr>(
                   i, TrainoptDialect::kParamAttrName))
        loc = NameLoc::get(param.getAttr(), loc);
    }
    auto c = CastOp::create(b, loc, type, v);
    casts.push_back(c);
    cached = c.getResult();
    return cached;
  }

  /// The precision `op` runs in, or null to leave it alone.
  Type precisionOf(Operation *op) {
    StringRef kind = op->getName().stripDialect();
    if (keep.contains(kind) || keep.contains(nodeName(op->getLoc())))
      return f32;
    auto it = policy.kinds.find(kind);
    if (it != policy.kinds.end())
      return it->second == Precision::Low ? low : f32;
    // Follows its activation inputs: the widest of their float types; an op
    // on weights alone (a weight transform, or after a weight-only matmul)
    // follows all its float inputs.
    auto widestOf = [&](bool activationsOnly) {
      Type widest;
      for (Value v : op->getOperands())
        if (isFloatTensor(v.getType()) &&
            !(activationsOnly && isWeightLike(v))) {
          Type t = elementTypeOf(v);
          if (!widest ||
              t.getIntOrFloatBitWidth() > widest.getIntOrFloatBitWidth())
            widest = t;
        }
      return widest;
    };
    Type widest = widestOf(/*activationsOnly=*/true);
    return widest ? widest : widestOf(/*activationsOnly=*/false);
  }

  LogicalResult assign(Operation *op) {
    // An op of another dialect (a call) keeps its types: its operands are
    // cast back to what they were.
    if (!isa<TrainoptDialect>(op->getDialect())) {
      for (OpOperand &operand : op->getOpOperands())
        if (auto it = originalType.find(operand.get());
            it != originalType.end())
          operand.set(castTo(operand.get(),
                             cast<RankedTensorType>(it->second)
                                 .getElementType()));
      return success();
    }
    // Casts the model makes itself say their own types.
    if (isa<CastOp, ConstantOp>(op) ||
        !llvm::any_of(op->getOperandTypes(), isFloatTensor))
      return success();
    Type to = precisionOf(op);
    if (!to)
      return success();
    for (OpOperand &operand : op->getOpOperands())
      if (isFloatTensor(operand.get().getType()))
        operand.set(castTo(operand.get(), to));
    // Results (the operands may have changed here or upstream): inferred
    // from the operands where the op can, otherwise float results take the
    // op's precision.
    SmallVector<Type> types;
    if (auto infer = dyn_cast<InferTypeOpInterface>(op)) {
      if (failed(infer.inferReturnTypes(
              op->getContext(), op->getLoc(), op->getOperands(),
              op->getRawDictionaryAttrs(), op->getPropertiesStorage(),
              op->getRegions(), types)))
        return op->emitOpError("cannot infer its result types in ") << to;
    } else {
      for (Type t : op->getResultTypes())
        types.push_back(isFloatTensor(t) ? cast<RankedTensorType>(t).clone(to)
                                         : t);
    }
    for (auto [result, type] : llvm::zip_equal(op->getResults(), types))
      if (result.getType() != type) {
        originalType.try_emplace(result, result.getType());
        result.setType(type);
      }
    return success();
  }

  func::FuncOp func;
  const PrecisionPolicy &policy;
  Type low;
  const llvm::StringSet<> &keep;
  Type f32;
  DenseMap<Value, bool> weightLike;
  /// The type a retyped result had before.
  DenseMap<Value, Type> originalType;
  DenseMap<std::pair<Value, Type>, Value> castCache;
};

struct TrainoptAssignPrecisionPass
    : public mlir::trainopt::impl::TrainoptAssignPrecisionBase<
          TrainoptAssignPrecisionPass> {
  using TrainoptAssignPrecisionBase::TrainoptAssignPrecisionBase;
  /// One option, to list all (TrainingPipeline.h).
  const llvm::cl::Option &anyOption() const { return funcName; }

  void runOnOperation() override {
    if (failed(runOnModule(getOperation())))
      signalPassFailure();
  }

  /// The loss-scaling configuration (`trainopt.loss_scale`) the options
  /// ask for: null without loss scaling; fails on a bad option.
  FailureOr<DictionaryAttr> lossScaling(MLIRContext *ctx, Location loc) {
    // fp16 only; dynamic by default there.
    std::optional<double> fixedScale;
    bool scaling =
        lossScale == "dynamic" || (lossScale == "auto" && amp == "fp16");
    if (lossScale != "auto" && lossScale != "dynamic" && lossScale != "off") {
      double s;
      if (StringRef(lossScale).getAsDouble(s) || !(s > 0.0) || std::isinf(s))
        return emitError(loc) << "--loss-scale: expects dynamic, off or a "
                                 "positive scale, got '"
                              << lossScale << "'";
      fixedScale = s;
      scaling = true;
      if (lossScaleInit.hasValue())
        return emitError(loc) << "--loss-scale-init: applies to "
                                 "--loss-scale=dynamic; --loss-scale="
                              << lossScale << " is the scale itself";
    }
    if (lossScale != "auto" && lossScale != "off" && amp != "fp16")
      return emitError(loc) << "--loss-scale: "
                            << (amp == "bf16" ? "bf16 has f32's range "
                                                "and needs no loss "
                                                "scaling"
                                              : "loss scaling is for "
                                                "fp16 training")
                            << "; it applies with --amp=fp16";
    if (!(lossScaleInit > 0.0) || std::isinf(lossScaleInit))
      return emitError(loc) << "--loss-scale-init: expects a positive "
                               "finite scale, got "
                            << lossScaleInit;
    if (lossScaleGrowthInterval < 1)
      return emitError(loc) << "--loss-scale-growth-interval: expects >= 1, "
                               "got "
                            << static_cast<int64_t>(lossScaleGrowthInterval);
    if (!(lossScaleGrowthFactor > 1.0))
      return emitError(loc) << "--loss-scale-growth-factor: expects > 1, got "
                            << lossScaleGrowthFactor;
    if (!(lossScaleBackoffFactor > 0.0 && lossScaleBackoffFactor < 1.0))
      return emitError(loc) << "--loss-scale-backoff-factor: expects a value "
                               "in (0, 1), got "
                            << lossScaleBackoffFactor;
    if (!scaling || amp != "fp16")
      return DictionaryAttr();
    Builder b(ctx);
    return b.getDictionaryAttr(
        {b.getNamedAttr("init",
                        b.getF64FloatAttr(fixedScale.value_or(lossScaleInit))),
         b.getNamedAttr("dynamic", b.getBoolAttr(!fixedScale)),
         b.getNamedAttr("growth_interval",
                        b.getI64IntegerAttr(lossScaleGrowthInterval)),
         b.getNamedAttr("growth_factor",
                        b.getF64FloatAttr(lossScaleGrowthFactor)),
         b.getNamedAttr("backoff_factor",
                        b.getF64FloatAttr(lossScaleBackoffFactor))});
  }

  LogicalResult runOnModule(ModuleOp module) {
    MLIRContext *ctx = module.getContext();
    Location loc = module.getLoc();
    if (amp != "off" && amp != "bf16" && amp != "fp16")
      return emitError(loc)
             << "--amp: expects off, bf16 or fp16, got '" << amp << "'";
    FailureOr<DictionaryAttr> scaling = lossScaling(ctx, loc);
    if (failed(scaling))
      return failure();
    if (amp == "off") {
      if (!policyPath.empty() || !keepFp32.empty())
        return emitError(loc)
               << (policyPath.empty() ? "--amp-keep-fp32" : "--amp-policy")
               << " needs --amp=bf16 or --amp=fp16";
      return success();
    }
    auto func = module.lookupSymbol<func::FuncOp>(funcName);
    if (!func)
      return module.emitError()
             << "trainopt-assign-precision: no function @" << funcName;
    if (func.walk([](FakeQuantOp) { return WalkResult::interrupt(); })
            .wasInterrupted())
      return emitError(loc) << "--amp=" << amp
                            << " with quantization-aware training "
                               "(--quantize): not supported yet";
    for (BlockArgument arg : func.getArguments())
      if (isFloatTensor(arg.getType()) && !elementTypeOf(arg).isF32()) {
        auto name = func.getArgAttrOfType<StringAttr>(
            arg.getArgNumber(), TrainoptDialect::kInputAttrName);
        auto param = func.getArgAttrOfType<FlatSymbolRefAttr>(
            arg.getArgNumber(), TrainoptDialect::kParamAttrName);
        return emitError(loc)
               << "--amp=" << amp << ": mixed precision starts from an f32 "
               << "model, but "
               << (param
                       ? "parameter '" + param.getValue().str() + "'"
                       : "input '" +
                             (name ? name.str()
                                   : "#" + std::to_string(arg.getArgNumber())) +
                             "'")
               << " is " << elementTypeOf(arg);
      }

    std::string text = kDefaultPolicy, source = "(built in)";
    if (!policyPath.empty()) {
      auto buffer = llvm::MemoryBuffer::getFile(policyPath, /*IsText=*/true);
      if (!buffer)
        return emitError(loc)
               << "--amp-policy " << policyPath
               << ": cannot read: " << buffer.getError().message();
      text = (*buffer)->getBuffer().str();
      source = policyPath;
    }
    FailureOr<PrecisionPolicy> policy = parsePolicy(text, source, ctx, loc);
    if (failed(policy))
      return failure();

    llvm::StringSet<> known = opKinds(ctx), nodes, keep;
    func.walk([&](Operation *op) {
      StringRef n = nodeName(op->getLoc());
      if (!n.empty())
        nodes.insert(n);
    });
    for (const std::string &name : keepFp32) {
      if (!known.contains(name) && !nodes.contains(name))
        return emitError(loc) << "--amp-keep-fp32: '" << name
                              << "' is neither an op kind nor a node name "
                                 "of the model";
      keep.insert(name);
    }

    if (*scaling)
      func->setAttr(TrainoptDialect::kLossScaleAttrName, *scaling);
    Type low = amp == "bf16" ? Type(BFloat16Type::get(ctx))
                             : Type(Float16Type::get(ctx));
    Assigner assigner(func, *policy, low, keep);
    if (failed(assigner.run()))
      return failure();
    // Cleanup: exact cast chains and casts of constants fold (CastOp::fold);
    // casts left without users go.
    GreedyRewriteConfig config;
    config.setStrictness(GreedyRewriteStrictness::ExistingAndNewOps);
    (void)applyOpPatternsGreedily(assigner.casts, FrozenRewritePatternSet(),
                                  config);
    // Constants and model casts whose only users were folded casts.
    SmallVector<Operation *> ops;
    func.walk([&](Operation *op) { ops.push_back(op); });
    for (Operation *op : llvm::reverse(ops))
      if (isa<CastOp, ConstantOp>(op) && isOpTriviallyDead(op))
        op->erase();
    if (failed(verify(func)))
      return func.emitError()
             << "trainopt-assign-precision: the rewritten function does not "
                "verify (an op rejects the precision the policy gives it; "
                "keep it in f32 with --amp-keep-fp32)";
    return success();
  }
};
} // namespace

std::vector<TrainingOption>
mlir::trainopt::stage_options::assignPrecisionOptions() {
  TrainoptAssignPrecisionPass pass;
  return passOptionsOf(pass.anyOption(), pass.getArgument());
}
