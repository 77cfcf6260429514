//===- LossOps.td - trainopt loss functions ----------------*- tablegen -*-===//

#ifndef TRAINOPT_DIALECT_TRAINOPT_IR_LOSSOPS_TD
#define TRAINOPT_DIALECT_TRAINOPT_IR_LOSSOPS_TD

include "trainopt/Dialect/Trainopt/IR/TrainoptDialect.td"
include "trainopt/Dialect/Trainopt/IR/TrainoptAttrs.td"
include "mlir/Interfaces/InferTypeOpInterface.td"
include "mlir/Interfaces/SideEffectInterfaces.td"
include "trainopt/Dialect/Trainopt/IR/TrainoptInterfaces.td"

def Trainopt_CrossEntropyOp : Trainopt_Op<"cross_entropy", [Pure, DeclareOpInterfaceMethods<Trainopt_DifferentiableOpInterface>,
    InferTypeOpAdaptor]> {
  let summary = "softmax cross-entropy against integer class labels";
  let description = [{
    `logits` has the classes on `class_axis` (1 for `[N, C, d...]` as in
    ONNX and PyTorch, -1 for token logits `[B, T, V]`); `labels` has the
    logits shape without that axis. Per position the loss is
    `-(1 - s) * log p[label] - s / C * sum_c log p[c]` with
    `s = label_smoothing`, times `weight[label]` when a class weight is
    given. Positions whose label equals `ignore_index` contribute nothing.
    `mean` divides by the summed weight of the counted positions (their
    number without weights), `sum` adds them up, `none` returns the
    per-position losses (shape of `labels`).

    ```mlir
    %l = trainopt.cross_entropy %logits, %labels {reduction = mean, ignore_index = -100 : i64,
        label_smoothing = 1.0e-1 : f64} : (tensor<32x10xf32>, tensor<32xi64>) -> tensor<f32>
    ```
  }];
  let arguments = (ins Trainopt_FloatTensor:$logits, Trainopt_IndexTensor:$labels,
                       Optional<Trainopt_FloatTensor>:$weight,
                       DefaultValuedAttr<I64Attr, "1">:$class_axis,
                       Trainopt_ReductionAttr:$reduction,
                       OptionalAttr<I64Attr>:$ignore_index,
                       DefaultValuedAttr<F64Attr, "0.0">:$label_smoothing);
  let results = (outs Trainopt_FloatTensor:$loss);
  let assemblyFormat = [{
    $logits `,` $labels (`,` $weight^)? attr-dict `:` functional-type(operands, results)
  }];
}

def Trainopt_NllLossOp : Trainopt_Op<"nll_loss", [Pure, DeclareOpInterfaceMethods<Trainopt_DifferentiableOpInterface>, InferTypeOpAdaptor]> {
  let summary = "negative log-likelihood of integer labels given log-probabilities";
  let description = [{
    Per position `-weight[label] * log_probs[label]` along `class_axis`;
    `ignore_index` and the reductions are those of `trainopt.cross_entropy`.

    ```mlir
    %l = trainopt.nll_loss %logp, %labels {reduction = mean}
        : (tensor<32x10xf32>, tensor<32xi64>) -> tensor<f32>
    ```
  }];
  let arguments = (ins Trainopt_FloatTensor:$log_probs, Trainopt_IndexTensor:$labels,
                       Optional<Trainopt_FloatTensor>:$weight,
                       DefaultValuedAttr<I64Attr, "1">:$class_axis,
                       Trainopt_ReductionAttr:$reduction,
                       OptionalAttr<I64Attr>:$ignore_index);
  let results = (outs Trainopt_FloatTensor:$loss);
  let assemblyFormat = [{
    $log_probs `,` $labels (`,` $weight^)? attr-dict `:` functional-type(operands, results)
  }];
}

def Trainopt_MseLossOp : Trainopt_Op<"mse_loss", [Pure, DeclareOpInterfaceMethods<Trainopt_DifferentiableOpInterface>, InferTypeOpAdaptor,
    AllTypesMatch<["input", "target"]>]> {
  let summary = "mean squared error";
  let description = [{
    `(input - target)^2` elementwise, reduced by `reduction`.

    ```mlir
    %l = trainopt.mse_loss %pred, %target {reduction = mean}
        : (tensor<32x1xf32>, tensor<32x1xf32>) -> tensor<f32>
    ```
  }];
  let arguments = (ins Trainopt_FloatTensor:$input, Trainopt_FloatTensor:$target,
                       Trainopt_ReductionAttr:$reduction);
  let results = (outs Trainopt_FloatTensor:$loss);
  let assemblyFormat = "$input `,` $target attr-dict `:` functional-type(operands, results)";
}

#endif // TRAINOPT_DIALECT_TRAINOPT_IR_LOSSOPS_TD
