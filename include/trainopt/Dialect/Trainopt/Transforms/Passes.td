//===- Passes.td - trainopt transformation passes ----------*- tablegen -*-===//

#ifndef TRAINOPT_DIALECT_TRAINOPT_TRANSFORMS_PASSES_TD
#define TRAINOPT_DIALECT_TRAINOPT_TRANSFORMS_PASSES_TD

include "mlir/Pass/PassBase.td"

def TrainoptAutodiff : Pass<"trainopt-autodiff", "ModuleOp"> {
  let summary = "Builds the gradient function of a loss by reverse-mode autodiff";
  let description = [{
    Reads the function `func`, whose result `loss` is a scalar floating-point
    loss, and adds `@<func>_grad` with the same arguments that returns the
    loss followed by the gradient of the loss with respect to every selected
    argument (trainable parameters by default), in argument order. Each
    gradient result carries `trainopt.grad_of`, the parameter symbol or the
    argument index.

    The pass knows no op by name: every op on a path from a selected argument
    to the loss must implement `DifferentiableOpInterface`, whose `buildVJP`
    gives the operands' cotangents from the results'. Fan-out cotangents are
    summed; integer values, masks, seeds and frozen parameters get none; an
    argument without a path to the loss gets a zero gradient. All ops that
    lack a VJP are reported together, with their locations, and the pass
    fails.

    Rationale: a separate function keeps `@forward` intact, so the forward
    part of the gradient function can be checked against it, and the
    optimizer pass consumes gradients as ordinary values.

    Before:
    ```mlir
    func.func @forward(%w: tensor<4xf32> {trainopt.param = @w}, %x: tensor<4xf32>) -> tensor<f32> {
      %0 = trainopt.mul %w, %x : (tensor<4xf32>, tensor<4xf32>) -> tensor<4xf32>
      %1 = trainopt.reduce_sum %0 : (tensor<4xf32>) -> tensor<f32>
      return %1 : tensor<f32>
    }
    ```
    After (added):
    ```mlir
    func.func @forward_grad(%w: tensor<4xf32> {trainopt.param = @w}, %x: tensor<4xf32>)
        -> (tensor<f32>, tensor<4xf32> {trainopt.grad_of = @w}) {
      ...
    }
    ```
  }];
  let options = [
    Option<"funcName", "func", "std::string", /*default=*/"\"forward\"",
           "The function to differentiate">,
    Option<"lossResult", "loss", "std::string", /*default=*/"\"\"",
           "The loss result: a trainopt.output name or a result index "
           "(default: the only 0-d floating-point result)">,
    Option<"wrt", "wrt", "std::string", /*default=*/"\"trainable\"",
           "Arguments to differentiate with respect to: 'trainable' "
           "(trainable parameters) or 'float' (every floating-point argument)">,
  ];
}

#endif // TRAINOPT_DIALECT_TRAINOPT_TRANSFORMS_PASSES_TD
