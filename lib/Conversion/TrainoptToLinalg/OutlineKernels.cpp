//===- OutlineKernels.cpp - one function per kernel -----------------------===//
//
/// \file
/// Moves every `linalg.generic` of an entry point into a private kernel
/// function and calls it, leaving the entry point as the step program the
/// backends turn into commands (DESIGN.md section 2, "fusion into kernels").
//
//===----------------------------------------------------------------------===//

#include "trainopt/Conversion/Passes.h"

#include "trainopt/Dialect/Trainopt/IR/TrainoptOps.h"

#include "mlir/IR/IRMapping.h"
#include "mlir/IR/SymbolTable.h"
#include "llvm/ADT/SetVector.h"
#include "llvm/ADT/StringSet.h"

namespace mlir::trainopt {
#define GEN_PASS_DEF_TRAINOPTDROPUNCALLEDFUNCTIONS
#define GEN_PASS_DEF_TRAINOPTOUTLINEKERNELS
#include "trainopt/Conversion/Passes.h.inc"
} // namespace mlir::trainopt

using namespace mlir;
using namespace mlir::trainopt;

namespace {

/// The initializer chain of an `outs` operand: tensor.empty, optionally
/// filled. Returns the ops to clone, producers first, or failure.
LogicalResult initChain(Value init, llvm::SetVector<Operation *> &ops) {
  Operation *def = init.getDefiningOp();
  if (auto empty = dyn_cast_or_null<tensor::EmptyOp>(def)) {
    ops.insert(empty);
    return success();
  }
  if (auto fill = dyn_cast_or_null<linalg::FillOp>(def)) {
    if (failed(initChain(fill.getOutputs()[0], ops)))
      return failure();
    Operation *value = fill.getInputs()[0].getDefiningOp();
    if (!isa_and_nonnull<arith::ConstantOp>(value))
      return failure();
    ops.insert(value);
    ops.insert(fill);
    return success();
  }
  return failure();
}

/// The entry points a pass option names, or the two steps by default.
SmallVector<std::string> entryPointsOr(ArrayRef<std::string> named) {
  if (named.empty())
    return {"train_step", "eval_step"};
  return SmallVector<std::string>(named.begin(), named.end());
}

bool isElementwise(linalg::GenericOp g) {
  if (g.getNumReductionLoops() != 0)
    return false;
  for (OpOperand &out : g.getDpsInitsMutable())
    if (!g.getMatchingIndexingMap(&out).isIdentity())
      return false;
  return true;
}

struct OutlineKernelsPass
    : public mlir::trainopt::impl::TrainoptOutlineKernelsBase<
          OutlineKernelsPass> {
  using Base::Base;

  void runOnOperation() override {
    ModuleOp module = getOperation();
    for (const std::string &name : entryPointsOr(entryPoints)) {
      auto func = module.lookupSymbol<func::FuncOp>(name);
      if (!func)
        continue;
      if (failed(outline(module, func)))
        return signalPassFailure();
    }
    deduplicateKernels(module);
  }

  /// Structurally identical kernels (the repeated blocks of a ResNet, the
  /// layers of a Transformer, forward and backward copies of one pattern)
  /// become one: calls of a duplicate call the first. Fewer kernels to
  /// compile and to load (ResNet-50 at batch 8: about 1560 kernels to 290,
  /// compile time 15 s to 5.4 s); every launch still names the kernel it
  /// runs.
  void deduplicateKernels(ModuleOp module) {
    llvm::StringMap<func::FuncOp> byText;
    llvm::StringMap<StringRef> canonicalOf;
    SmallVector<func::FuncOp> duplicates;
    OpPrintingFlags flags;
    flags.useLocalScope();
    for (auto kernel : module.getOps<func::FuncOp>()) {
      if (!kernel->hasAttr("trainopt.kernel"))
        continue;
      std::string text;
      llvm::raw_string_ostream os(text);
      kernel.print(os, flags);
      // The text without the kernel's own name.
      std::string name = ("@" + kernel.getSymName()).str();
      size_t at = text.find(name);
      if (at != std::string::npos)
        text.replace(at, name.size(), "@kernel");
      auto [it, inserted] = byText.try_emplace(text, kernel);
      if (!inserted) {
        canonicalOf[kernel.getSymName()] = it->second.getSymName();
        duplicates.push_back(kernel);
      }
    }
    if (duplicates.empty())
      return;
    module.walk([&](func::CallOp call) {
      auto it = canonicalOf.find(call.getCallee());
      if (it != canonicalOf.end())
        call.setCallee(it->second);
    });
    for (func::FuncOp kernel : duplicates)
      kernel.erase();
  }

  LogicalResult outline(ModuleOp module, func::FuncOp func) {
    SymbolTable symbols(module);
    unsigned counter = 0;
    for (Operation &op : llvm::make_early_inc_range(func.getBody().front())) {
      auto generic = dyn_cast<linalg::GenericOp>(&op);
      if (!generic)
        continue;
      // A set: outputs may share a fill value (found by ASan: a constant
      // listed twice was erased twice).
      llvm::SetVector<Operation *> chain;
      for (Value init : generic.getDpsInits())
        if (failed(initChain(init, chain)))
          return generic.emitOpError(
              "has an output that is not a fresh tensor; cannot outline it");
      // Kernel arguments: the generic's inputs, then tensors its body reads.
      llvm::SetVector<Value> args;
      for (Value in : generic.getDpsInputs())
        args.insert(in);
      SmallVector<Operation *> constants;
      generic.getRegion().walk([&](Operation *inner) {
        for (Value v : inner->getOperands()) {
          if (generic.getRegion().isAncestor(v.getParentRegion()))
            continue;
          Operation *def = v.getDefiningOp();
          if (def && def->hasTrait<OpTrait::ConstantLike>() &&
              !isa<RankedTensorType>(v.getType()))
            constants.push_back(def);
          else
            args.insert(v);
        }
      });

      OpBuilder b(module.getContext());
      b.setInsertionPointToEnd(module.getBody());
      std::string name =
          (func.getSymName() + "_k" + Twine(counter++)).str();
      SmallVector<Type> argTypes;
      for (Value v : args)
        argTypes.push_back(v.getType());
      auto kernel = func::FuncOp::create(
          b, generic.getLoc(), name,
          b.getFunctionType(argTypes, generic->getResultTypes()));
      kernel.setPrivate();
      kernel->setAttr("trainopt.kernel", b.getUnitAttr());
      if (isElementwise(generic))
        kernel->setAttr("trainopt.elementwise", b.getUnitAttr());
      symbols.insert(kernel);
      Block *body = kernel.addEntryBlock();
      b.setInsertionPointToStart(body);
      IRMapping map;
      for (auto [v, arg] : llvm::zip(args, body->getArguments()))
        map.map(v, arg);
      for (Operation *c : constants)
        if (!map.contains(c->getResult(0)))
          b.clone(*c, map);
      for (Operation *c : chain)
        if (!map.contains(c->getResult(0)))
          b.clone(*c, map);
      Operation *clone = b.clone(*generic, map);
      func::ReturnOp::create(b, generic.getLoc(), clone->getResults());

      b.setInsertionPoint(generic);
      auto call = func::CallOp::create(b, generic.getLoc(), kernel,
                                       args.getArrayRef());
      generic->replaceAllUsesWith(call.getResults());
      generic->erase();
      for (Operation *c : llvm::reverse(chain))
        if (c->use_empty())
          c->erase();
    }
    // Drop what the kernels no longer need, then check what is left.
    SmallVector<Operation *> ops;
    for (Operation &op : func.getBody().front())
      ops.push_back(&op);
    for (Operation *op : llvm::reverse(ops))
      if (op->use_empty() && isPure(op) && !op->hasTrait<OpTrait::IsTerminator>())
        op->erase();
    for (Operation &op : func.getBody().front()) {
      if (isa<func::CallOp, func::ReturnOp, arith::ConstantOp, ReshapeOp>(op) ||
          isLibraryOp(&op) || isCollectiveOp(&op))
        continue;
      return op.emitOpError("cannot be part of a step program; expected a "
                            "kernel, a library op, a collective, a view or a "
                            "constant");
    }
    return success();
  }
};

struct DropUncalledFunctionsPass
    : public mlir::trainopt::impl::TrainoptDropUncalledFunctionsBase<
          DropUncalledFunctionsPass> {
  using Base::Base;

  void runOnOperation() override {
    ModuleOp module = getOperation();
    SymbolTable symbols(module);
    // The functions that the entry points and the module's other ops
    // (parameters, globals) refer to, directly or through other functions,
    // in one walk of each; the rest is erased.
    llvm::StringSet<> live;
    SmallVector<Operation *> worklist;
    auto reach = [&](StringRef name) {
      if (!live.insert(name).second)
        return;
      if (auto func = symbols.lookup<func::FuncOp>(name))
        worklist.push_back(func);
    };
    for (const std::string &name : entryPointsOr(entryPoints))
      reach(name);
    for (Operation &op : module.getBody()->getOperations())
      if (!isa<func::FuncOp>(op))
        worklist.push_back(&op);
    while (!worklist.empty())
      worklist.pop_back_val()->walk([&](Operation *op) {
        op->getAttrDictionary().walk([&](SymbolRefAttr ref) {
          reach(ref.getRootReference().getValue());
        });
      });
    for (auto func : llvm::make_early_inc_range(module.getOps<func::FuncOp>()))
      if (!live.contains(func.getSymName()))
        symbols.erase(func);
  }
};

} // namespace
