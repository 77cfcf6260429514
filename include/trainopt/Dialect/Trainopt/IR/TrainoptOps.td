//===- TrainoptOps.td - trainopt op umbrella ---------------*- tablegen -*-===//

#ifndef TRAINOPT_DIALECT_TRAINOPT_IR_TRAINOPTOPS_TD
#define TRAINOPT_DIALECT_TRAINOPT_IR_TRAINOPTOPS_TD

include "trainopt/Dialect/Trainopt/IR/TrainoptDialect.td"
include "trainopt/Dialect/Trainopt/IR/TrainoptAttrs.td"
include "trainopt/Dialect/Trainopt/IR/TrainoptInterfaces.td"
include "trainopt/Dialect/Trainopt/IR/MathOps.td"
include "trainopt/Dialect/Trainopt/IR/NNOps.td"
include "trainopt/Dialect/Trainopt/IR/TensorOps.td"
include "trainopt/Dialect/Trainopt/IR/LossOps.td"
include "trainopt/Dialect/Trainopt/IR/CollectiveOps.td"

#endif // TRAINOPT_DIALECT_TRAINOPT_IR_TRAINOPTOPS_TD
