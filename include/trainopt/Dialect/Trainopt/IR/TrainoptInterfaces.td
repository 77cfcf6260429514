//===- TrainoptInterfaces.td - trainopt op interfaces ------*- tablegen -*-===//

#ifndef TRAINOPT_DIALECT_TRAINOPT_IR_TRAINOPTINTERFACES_TD
#define TRAINOPT_DIALECT_TRAINOPT_IR_TRAINOPTINTERFACES_TD

include "mlir/IR/OpBase.td"

def Trainopt_DifferentiableOpInterface
    : OpInterface<"DifferentiableOpInterface"> {
  let cppNamespace = "::mlir::trainopt";
  let description = [{
    An op whose vector-Jacobian product (VJP) is known. The autodiff pass
    knows no op by name: for every op on the path from a trainable parameter
    to the loss it calls `buildVJP` with the cotangents of the op's results
    and receives the cotangents of its operands.

    `resultGrads` has one entry per result; an entry is null when that result
    does not reach the loss (its cotangent is zero). `operandGrads` is filled
    with one entry per operand, each of the operand's type, or null where the
    operand gets no gradient (integer operands, seeds, masks, and operands
    whose derivative is zero almost everywhere).
  }];
  let methods = [
    InterfaceMethod<
      "Builds the cotangents of the operands from those of the results.",
      "::llvm::LogicalResult", "buildVJP",
      (ins "::mlir::OpBuilder &":$builder,
           "::llvm::ArrayRef<::mlir::Value>":$resultGrads,
           "::llvm::SmallVectorImpl<::mlir::Value> &":$operandGrads)>,
  ];
}

#endif // TRAINOPT_DIALECT_TRAINOPT_IR_TRAINOPTINTERFACES_TD
