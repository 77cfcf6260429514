//===- Evaluator.h - reference evaluator of the trainopt dialect -*- C++
//-*-===//
//
/// \file
/// An obviously-correct interpreter of `trainopt` functions on host tensors,
/// independent of every code generator. It is the test oracle of the passes:
/// run the IR before and after a pass and compare. Clarity over speed: every
/// op is a direct loop nest over its definition, computed in double and
/// rounded to the result element type.
//
//===----------------------------------------------------------------------===//

#ifndef TRAINOPT_EVALUATOR_EVALUATOR_H
#define TRAINOPT_EVALUATOR_EVALUATOR_H

#include "trainopt/Evaluator/HostTensor.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/IR/BuiltinOps.h"

namespace mlir::trainopt {

/// Evaluates `func` on `arguments` (one per function argument, of the
/// argument types). Calls to other functions of the module are followed.
/// Fails with a diagnostic at the offending op.
FailureOr<SmallVector<HostTensor>>
evaluateFunction(func::FuncOp func, ArrayRef<HostTensor> arguments);

/// The initial value of argument `index` of `func`: that of the
/// `trainopt.parameter` it binds, or a state argument's `trainopt.init`.
std::optional<HostTensor> parameterInitialValue(func::FuncOp func,
                                                unsigned index);

} // namespace mlir::trainopt

#endif // TRAINOPT_EVALUATOR_EVALUATOR_H
