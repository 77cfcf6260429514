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

def Trainopt_Distribution : I32EnumAttr<"Distribution",
    "the distribution of trainopt.random", [
      I32EnumAttrCase<"uniform", 0>,
      I32EnumAttrCase<"normal", 1>,
    ]> {
  let cppNamespace = "::mlir::trainopt";
  let genSpecializedAttr = 0;
}
def Trainopt_DistributionAttr : EnumAttr<Trainopt_Dialect,
    Trainopt_Distribution, "distribution">;

// Roles of the values of a training step. `loss` is the metric the
// gradients are taken of. `gradient` and `update_gate` exist only between
// the training-step stages (trainopt-build-train-step produces gradients,
// the gradient transforms may add a gate, trainopt-apply-optimizer consumes
// both); an artifact never has them.
def Trainopt_CollectiveReduction : I32EnumAttr<"CollectiveReduction",
    "how a collective combines the ranks' values", [
      I32EnumAttrCase<"sum", 0>,
      I32EnumAttrCase<"max", 1>,
      I32EnumAttrCase<"min", 2>,
    ]> {
  let cppNamespace = "::mlir::trainopt";
  let genSpecializedAttr = 0;
}
def Trainopt_CollectiveReductionAttr : EnumAttr<Trainopt_Dialect, Trainopt_CollectiveReduction,
                                       "collective_reduction"> {
  // No space of its own: the op's format puts one before it.
  let assemblyFormat = "`` $value";
}

def Trainopt_ValueRole : I32EnumAttr<"ValueRole",
    "what a function argument or result is to the training runtime", [
      I32EnumAttrCase<"input", 0>,
      I32EnumAttrCase<"labels", 1>,
      I32EnumAttrCase<"parameter", 2>,
      I32EnumAttrCase<"optimizer_state", 3>,
      I32EnumAttrCase<"model_state", 4>,
      I32EnumAttrCase<"step", 5>,
      I32EnumAttrCase<"metric", 6>,
      I32EnumAttrCase<"output", 7>,
      I32EnumAttrCase<"loss", 8>,
      I32EnumAttrCase<"gradient", 9>,
      I32EnumAttrCase<"update_gate", 10>,
    ]> {
  let cppNamespace = "::mlir::trainopt";
  let genSpecializedAttr = 0;
}
def Trainopt_ValueRoleAttr : EnumAttr<Trainopt_Dialect, Trainopt_ValueRole,
                                      "role">;

#endif // TRAINOPT_DIALECT_TRAINOPT_IR_TRAINOPTATTRS_TD
