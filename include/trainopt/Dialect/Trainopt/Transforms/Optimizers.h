//===- Optimizers.h - the optimizers, each defined once ---------*- C++ -*-===//
//
/// \file
/// Every optimizer trainopt-apply-optimizer knows is one `OptimizerDef`: its
/// name, the hyperparameters it reads with their defaults, its slots
/// (optimizer state per parameter, named as PyTorch names them) and its
/// update rule, written with `TensorBuilder`. The pass validates flags,
/// creates the slots, applies the update gate and emits the results from
/// these definitions; it has no branch on an optimizer's name. Adding an
/// optimizer is adding a definition to `optimizerDefs()` (docs/writing-a-
/// pass.md walks through Lion).
//
//===----------------------------------------------------------------------===//

#ifndef TRAINOPT_DIALECT_TRAINOPT_TRANSFORMS_OPTIMIZERS_H
#define TRAINOPT_DIALECT_TRAINOPT_TRANSFORMS_OPTIMIZERS_H

#include "trainopt/Dialect/Trainopt/IR/TensorBuilder.h"

#include "llvm/ADT/StringMap.h"

#include <functional>
#include <string>

namespace mlir::trainopt {

/// A hyperparameter an optimizer reads: the trainopt-apply-optimizer option
/// of the same name, and the value used when the flag is not given.
struct Hyperparameter {
  llvm::StringLiteral name;
  double defaultValue;
};

/// The hyperparameters of one optimizer, defaults filled in (booleans as 0
/// or 1).
class Hyperparameters {
public:
  explicit Hyperparameters(llvm::StringMap<double> values)
      : values(std::move(values)) {}
  double operator()(StringRef name) const {
    auto it = values.find(name);
    assert(it != values.end() && "hyperparameter the optimizer does not "
                                 "declare");
    return it->second;
  }

private:
  llvm::StringMap<double> values;
};

/// What an update rule sees for one trainable parameter.
struct OptimizerStep {
  TensorBuilder &m;
  const Hyperparameters &hp;
  Value param;
  /// The gradient after the gradient transforms.
  Value grad;
  /// The current slots, in the order of `OptimizerDef::slots`.
  ArrayRef<Value> slots;
  /// The learning rate, 0-d, in the parameter's element type.
  Value lr;
  /// Updates applied before this one (0-d i64) and the 1-based count of
  /// this update in the parameter's element type (bias corrections).
  Value updates, count;
  /// The weight decay of this parameter (`no-weight-decay` applied).
  double weightDecay;
  /// The sum over the whole parameter of a 0-d sum over this rank's part
  /// (the identity unless tensor parallelism splits the parameter).
  std::function<Value(Value)> sumOverParameter;
};

/// The new parameter and slots, the slots in `OptimizerDef::slots` order.
struct OptimizerUpdate {
  Value param;
  SmallVector<Value> slots;
};

struct OptimizerDef {
  llvm::StringLiteral name;
  /// One line for the docs and the flag's help.
  llvm::StringLiteral summary;
  /// Every hyperparameter it reads; a flag for any other is an error.
  ArrayRef<Hyperparameter> hyperparameters;
  /// The slot names (PyTorch's state names).
  SmallVector<StringRef> (*slots)(const Hyperparameters &hp);
  /// Constraints between hyperparameters: an empty string, or the error
  /// (starting with the flag it names, without the dashes).
  std::string (*check)(const Hyperparameters &hp);
  OptimizerUpdate (*update)(OptimizerStep &s);
};

/// Every optimizer, in the order the docs list them.
ArrayRef<OptimizerDef> optimizerDefs();
/// The optimizer named `name`, or null.
const OptimizerDef *lookupOptimizer(StringRef name);

} // namespace mlir::trainopt

#endif // TRAINOPT_DIALECT_TRAINOPT_TRANSFORMS_OPTIMIZERS_H
