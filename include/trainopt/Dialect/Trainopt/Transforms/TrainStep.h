//===- TrainStep.h - the training step between its stages -------*- C++ -*-===//
//
/// \file
/// The contract between the passes that build `@train_step`
/// (docs/architecture.md, "The training step as stages"):
///
/// - trainopt-build-train-step writes it in *gradient form*: arguments
///   `(params..., model state..., step, inputs..., labels...)`; results: the
///   updated model state (`trainopt.updates = N`), `step + 1`, the loss
///   (role `loss`) and one result per trainable parameter with role
///   `gradient` and `trainopt.grad_of = @param`.
/// - trainopt-transform-gradients rewrites the gradient results in place
///   (accumulation, the norm metric, clipping; later loss scaling and
///   all-reduce), adds its own state arguments, and may add a 0-d `i1`
///   result with role `update_gate`: the optimizer applies the update only
///   where it is true.
/// - trainopt-lr-schedule defines `@lr_schedule(updates: i64) -> lr`.
/// - trainopt-apply-optimizer consumes the gradients and the gate: it adds
///   the optimizer state, the parameter updates and the `lr` metric.
///
/// Every stage finds values by role and attribute, never by name, and edits
/// the function through `TrainStepFunction`, which keeps the
/// `trainopt.updates` indices right when state arguments are inserted.
//
//===----------------------------------------------------------------------===//

#ifndef TRAINOPT_DIALECT_TRAINOPT_TRANSFORMS_TRAINSTEP_H
#define TRAINOPT_DIALECT_TRAINOPT_TRANSFORMS_TRAINSTEP_H

#include "trainopt/Dialect/Trainopt/IR/TensorBuilder.h"
#include "trainopt/Dialect/Trainopt/IR/TrainoptOps.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/IR/BuiltinOps.h"

namespace mlir::trainopt {

/// The name of the training step and of the schedule function.
inline constexpr llvm::StringLiteral kTrainStepName = "train_step";
inline constexpr llvm::StringLiteral kLRScheduleName = "lr_schedule";

class TrainStepFunction {
public:
  /// `@train_step` of `module`; emits an error naming `stage` and fails when
  /// there is none or it has no `step` argument.
  static FailureOr<TrainStepFunction> get(ModuleOp module, StringRef stage);

  /// Op handles are values; `mutable` lets the const queries call them.
  mutable func::FuncOp func;

  func::ReturnOp returnOp() const {
    return cast<func::ReturnOp>(func.getBody().front().getTerminator());
  }
  /// The argument with role `step`.
  BlockArgument step() const;
  /// The argument `trainopt.param = @name`, or null.
  BlockArgument parameter(StringRef name) const;
  /// The one result with role `loss`; emits an error naming `stage` and
  /// fails when there is not exactly one.
  FailureOr<Value> loss(StringRef stage) const;
  /// The result indices with `role`, in order.
  SmallVector<unsigned> resultsWithRole(ValueRole role) const;
  Value result(unsigned i) const { return returnOp().getOperand(i); }

  /// Inserts a state argument just before the step argument, with `attrs`
  /// (which should give its role and `trainopt.state`), and shifts the
  /// `trainopt.updates` of later arguments.
  BlockArgument addStateArgument(Type type, ArrayRef<NamedAttribute> attrs);
  /// Appends a result.
  void addResult(Value value, ArrayRef<NamedAttribute> attrs);
  /// Appends a result that is the new value of argument `arg`.
  void addUpdate(Value value, BlockArgument arg);
  /// Appends a metric named `name`.
  void addMetric(Value value, StringRef name);
  /// Replaces result `i` with a value of the same type.
  void setResult(unsigned i, Value value);
  /// Replaces result `i` with a value of another type (a shard), updating
  /// the function's type.
  void retypeResult(unsigned i, Value value);
  void eraseResults(ArrayRef<unsigned> indices);
  /// Moves the results with role `metric` or `loss` after every other
  /// result, keeping their order.
  void sinkMetrics();

  /// A builder before the return.
  OpBuilder builderAtEnd() const {
    OpBuilder b(returnOp());
    return b;
  }
};

/// The name of the trainable float parameter that `v` is, when `v` is an
/// argument of `func`'s entry block bound to one; null otherwise. What the
/// compression passes rewrite.
StringAttr trainableParameterOf(ModuleOp module, func::FuncOp func, Value v);

/// Where a convolution's filter or a matmul's rhs (the weight) enters the
/// op: `operand` reads the weight, the op's own operand or that of a
/// transpose only the op reads (PyTorch's Linear on a 3-d input), which is
/// then `transpose`; the weight's output-channel axis and the axes the op
/// sums it over, both in the weight's stored layout. What the compression
/// passes (quantize, prune, low-rank) rewrite.
struct WeightUse {
  OpOperand *operand = nullptr;
  TransposeOp transpose;
  int64_t channelAxis = 0;
  SmallVector<int64_t> reductionAxes;
};
/// The weight use of `op` (a conv or matmul), or nothing for other ops.
std::optional<WeightUse> weightUseOf(Operation *op);

/// Declares a parameter for a model pass (trainopt-quantize's observers
/// and codebooks, trainopt-prune's masks): `name` initialized to `init`,
/// frozen (model state) unless `trainable`, bound to a new last argument of
/// `func`, which it returns. Fails with an error naming `flag` when the
/// model already has a symbol `name`.
FailureOr<BlockArgument> addModelState(ModuleOp module, func::FuncOp func,
                                       StringRef name, ElementsAttr init,
                                       StringRef flag, bool trainable = false);

/// Ops that act element by element with one result (a rank-0 operand
/// broadcasts), so they compute any part of their result from the same
/// parts of their operands: what ZeRO's sharded update and tensor
/// parallelism's split activations are written with.
bool isElementwise(Operation *op);

/// The symbol of the device mesh (a `shard.grid`) trainopt-partition-model
/// declares and trainopt-shard-step reads.
inline constexpr llvm::StringLiteral kMeshSymbolName = "mesh";

/// Axis `name` of the module's mesh: {its index on the grid, its size}, or
/// {-1, 1} without such an axis.
std::pair<int16_t, int64_t> meshAxis(ModuleOp module, StringRef name);

/// `v` summed over axis `axis` of the module's mesh (@mesh): an
/// `all_reduce sum` of one tensor.
Value sumOverMeshAxis(TensorBuilder &m, Value v, int16_t axis);

/// The tp axis of the mesh when `f`'s argument for parameter `param` is
/// split over tp (sharding "tp:DIM[/BLOCKS]", which
/// trainopt-partition-model sets), else -1: every rank holds it whole.
int16_t splitAxis(func::FuncOp f, FlatSymbolRefAttr param);

/// The sum over the whole parameter `param` of `local`, a 0-d sum over
/// this rank's part of it: all-reduced over the split axis, if any.
/// Whole-parameter reductions (LAMB's trust ratio) go through it.
Value sumOverParameter(TensorBuilder &m, func::FuncOp f,
                       FlatSymbolRefAttr param, Value local);

/// On a BatchNorm of the model: the statistics are taken over
/// a data-parallel group when trainopt-build-train-step makes it a training
/// BatchNorm (`--sync-bn`): {grid, axes, ranks}.
inline constexpr llvm::StringLiteral kSyncStatsAttrName = "trainopt.sync_stats";

/// On a BatchNorm in inference form: its statistics stay as they are in
/// training too (a distillation teacher's), so trainopt-build-train-step
/// does not make it a training BatchNorm.
inline constexpr llvm::StringLiteral kFrozenStatsAttrName =
    "trainopt.frozen_stats";

/// On any op: its results have no derivative (autodiff treats them as
/// constants), as `x.detach()` in PyTorch. Straight-through estimators
/// read `q + (x - stop(x))`: the value q, the gradient of x.
inline constexpr llvm::StringLiteral kStopGradientAttrName =
    "trainopt.stop_gradient";

/// On a `trainopt.assign`: the state holds a function of parameters alone
/// (a shared or log-quantized weight), which inference computes from the
/// parameters as they stand rather than reading the state, a step behind.
inline constexpr llvm::StringLiteral kDerivedAttrName = "trainopt.derived";

/// `f` in inference form: state assignments dropped (reads of a state's
/// new value read the state, except for derived state), Dropout the
/// identity, BatchNorm on its
/// running statistics. What @eval_step and a distillation teacher run.
void toInferenceMode(func::FuncOp f);

} // namespace mlir::trainopt

#endif // TRAINOPT_DIALECT_TRAINOPT_TRANSFORMS_TRAINSTEP_H
