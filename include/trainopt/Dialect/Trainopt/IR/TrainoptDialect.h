//===- TrainoptDialect.h - trainopt dialect ---------------------*- C++ -*-===//
//
/// \file
/// Declares the trainopt dialect, its enums and attributes.
//
//===----------------------------------------------------------------------===//

#ifndef TRAINOPT_DIALECT_TRAINOPT_IR_TRAINOPTDIALECT_H
#define TRAINOPT_DIALECT_TRAINOPT_IR_TRAINOPTDIALECT_H

#include "mlir/IR/BuiltinAttributes.h"
#include "mlir/IR/Dialect.h"

#include "trainopt/Dialect/Trainopt/IR/TrainoptDialect.h.inc"
#include "trainopt/Dialect/Trainopt/IR/TrainoptEnums.h.inc"

#define GET_ATTRDEF_CLASSES
#include "trainopt/Dialect/Trainopt/IR/TrainoptAttrs.h.inc"

#endif // TRAINOPT_DIALECT_TRAINOPT_IR_TRAINOPTDIALECT_H
