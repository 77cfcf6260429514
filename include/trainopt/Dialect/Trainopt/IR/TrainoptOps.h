//===- TrainoptOps.h - trainopt operations ----------------------*- C++ -*-===//
//
/// \file
/// Declares the trainopt operations and the shape helpers their verifiers,
/// type inference and the importer share.
//
//===----------------------------------------------------------------------===//

#ifndef TRAINOPT_DIALECT_TRAINOPT_IR_TRAINOPTOPS_H
#define TRAINOPT_DIALECT_TRAINOPT_IR_TRAINOPTOPS_H

#include "trainopt/Dialect/Trainopt/IR/TrainoptDialect.h"

#include "mlir/Bytecode/BytecodeOpInterface.h"
#include "mlir/IR/BuiltinTypes.h"
#include "mlir/IR/OpDefinition.h"
#include "mlir/IR/SymbolTable.h"
#include "mlir/Interfaces/FunctionInterfaces.h"
#include "mlir/Interfaces/InferTypeOpInterface.h"
#include "mlir/Interfaces/SideEffectInterfaces.h"

namespace mlir {
namespace trainopt {

/// Expands an empty reduction axis list to all axes of a tensor of `rank`.
llvm::SmallVector<int64_t> expandReducedAxes(llvm::ArrayRef<int64_t> axes,
                                             int64_t rank);

/// Computes the NumPy broadcast of `shapes`; fails when two dims differ and
/// neither is 1.
llvm::FailureOr<llvm::SmallVector<int64_t>>
broadcastShapes(llvm::ArrayRef<llvm::ArrayRef<int64_t>> shapes);

/// Infers the result of a broadcasting elementwise op with `elementType`.
llvm::LogicalResult
inferBroadcastResult(std::optional<Location> loc, llvm::ArrayRef<Type> operands,
                     Type elementType,
                     llvm::SmallVectorImpl<Type> &inferredReturnTypes);

/// Infers the result of a reduction of `x` over `axes`.
llvm::LogicalResult
inferReduceResult(std::optional<Location> loc, RankedTensorType x,
                  llvm::ArrayRef<int64_t> axes, bool keepdims,
                  llvm::SmallVectorImpl<Type> &inferredReturnTypes);

/// Infers the result of a pooling window over the spatial dims of `input`.
llvm::LogicalResult
inferPoolResult(std::optional<Location> loc, RankedTensorType input,
                llvm::ArrayRef<int64_t> kernel, llvm::ArrayRef<int64_t> strides,
                llvm::ArrayRef<int64_t> padding,
                llvm::ArrayRef<int64_t> dilations,
                llvm::SmallVectorImpl<Type> &inferredReturnTypes);

/// Number of elements of a static shape, or failure on a negative dim or
/// int64 overflow.
llvm::FailureOr<int64_t> checkedElementCount(llvm::ArrayRef<int64_t> shape);

/// The `trainopt.role` of argument (result) `i` of `f`, if it has one.
std::optional<ValueRole> argumentRole(FunctionOpInterface f, unsigned i);
std::optional<ValueRole> resultRole(FunctionOpInterface f, unsigned i);
/// The `trainopt.role = #trainopt<role ROLE>` attribute.
NamedAttribute roleAttr(MLIRContext *ctx, ValueRole role);

} // namespace trainopt
} // namespace mlir

#include "trainopt/Dialect/Trainopt/IR/TrainoptInterfaces.h.inc"

#define GET_OP_CLASSES
#include "trainopt/Dialect/Trainopt/IR/TrainoptOps.h.inc"

#endif // TRAINOPT_DIALECT_TRAINOPT_IR_TRAINOPTOPS_H
