//===- TrainoptAttrs.td - trainopt enums and attributes ----*- tablegen -*-===//

#ifndef TRAINOPT_DIALECT_TRAINOPT_IR_TRAINOPTATTRS_TD
#define TRAINOPT_DIALECT_TRAINOPT_IR_TRAINOPTATTRS_TD

include "mlir/IR/EnumAttr.td"
include "trainopt/Dialect/Trainopt/IR/TrainoptDialect.td"

def Trainopt_Reduction : I32EnumAttr<"Reduction",
    "how a loss reduces over samples", [
      I32EnumAttrCase<"none", 0>,
      I32EnumAttrCase<"mean", 1>,
      I32EnumAttrCase<"sum", 2>,
    ]> {
  let cppNamespace = "::mlir::trainopt";
  let genSpecializedAttr = 0;
}
def Trainopt_ReductionAttr : EnumAttr<Trainopt_Dialect, Trainopt_Reduction,
                                      "reduction">;

def Trainopt_GeluApproximation : I32EnumAttr<"GeluApproximation",
    "the form of GELU", [
      I32EnumAttrCase<"none", 0>,
      I32EnumAttrCase<"tanh", 1>,
    ]> {
  let cppNamespace = "::mlir::trainopt";
  let genSpecializedAttr = 0;
}
def Trainopt_GeluApproximationAttr : EnumAttr<Trainopt_Dialect,
    Trainopt_GeluApproximation, "gelu_approximation">;

#endif // TRAINOPT_DIALECT_TRAINOPT_IR_TRAINOPTATTRS_TD
