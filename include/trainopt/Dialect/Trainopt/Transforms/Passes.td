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

def TrainoptAttachLoss : Pass<"trainopt-attach-loss", "ModuleOp"> {
  let summary = "Makes the function return a scalar training loss";
  let description = [{
    Ensures that `func` returns a loss, as a result named `loss`
    (`trainopt.output = "loss"`):

    - If the model computes its own loss (a result produced by
      `trainopt.cross_entropy`, `trainopt.nll_loss` or `trainopt.mse_loss`
      with a `mean` or `sum` reduction, e.g. an ONNX
      `SoftmaxCrossEntropyLoss`), that result is named `loss`, and `loss`
      must be empty.
    - Otherwise `loss` (`cross_entropy`, `nll` or `mse`) is applied to the
      output `loss-input` (default: the only output) and a new argument for
      the labels, named by `labels` (`trainopt.input`). Cross-entropy and NLL
      take integer labels of the output's shape without the class axis
      (`class-axis`, 1 as in PyTorch and ONNX, -1 for `[B, T, V]` token
      logits); MSE takes targets of the output's type.

    It fails, naming the option, when the model has no loss and none is
    requested, when both are, or when an option does not fit the model.

    Before (`loss=cross_entropy`):
    ```mlir
    func.func @forward(%x: tensor<8x784xf32>) -> (tensor<8x10xf32> {trainopt.output = "logits"})
    ```
    After:
    ```mlir
    func.func @forward(%x: tensor<8x784xf32>, %labels: tensor<8xi64> {trainopt.input = "labels"})
        -> (tensor<8x10xf32> {trainopt.output = "logits"}, tensor<f32> {trainopt.output = "loss"})
    ```
  }];
  let options = [
    Option<"funcName", "func", "std::string", /*default=*/"\"forward\"",
           "The function to attach the loss to">,
    Option<"loss", "loss", "std::string", /*default=*/"\"\"",
           "The loss to attach: cross_entropy, nll or mse (empty: use the "
           "model's own loss)">,
    Option<"labels", "labels", "std::string", /*default=*/"\"labels\"",
           "The name of the new labels argument">,
    Option<"lossInput", "loss-input", "std::string", /*default=*/"\"\"",
           "The output the loss applies to (default: the only output)">,
    Option<"classAxis", "class-axis", "int64_t", /*default=*/"1",
           "The class axis of the scores (1 or -1)">,
    Option<"reduction", "loss-reduction", "std::string", /*default=*/"\"mean\"",
           "How the loss reduces: mean or sum">,
    Option<"labelSmoothing", "label-smoothing", "double", /*default=*/"0.0",
           "Label smoothing of cross_entropy, in [0, 1]">,
    Option<"ignoreIndex", "ignore-index", "int64_t",
           /*default=*/"std::numeric_limits<int64_t>::min()",
           "Labels equal to this value do not count (cross_entropy, nll; "
           "default: none)">,
  ];
}

def TrainoptBuildTrainStep : Pass<"trainopt-build-train-step", "ModuleOp"> {
  let summary = "Builds @train_step and @eval_step from a function with a loss";
  let description = [{
    From `func` (whose result named `loss` is the training loss, see
    `trainopt-attach-loss`) builds:

    - `@train_step(params..., model state..., optimizer state..., step,
      inputs..., labels...) -> (params'..., model state'..., optimizer
      state'..., step', loss, grad_norm, lr)`: the forward pass in training
      mode, the gradients (`trainopt-autodiff`), gradient clipping, the
      learning rate of the schedule at `step`, and the optimizer update, with
      PyTorch's semantics and defaults. Every updated value is a result
      tagged `trainopt.updates = N`, the argument it replaces (the runtime
      updates those buffers in place).
    - `@eval_step(params..., model state..., inputs..., labels...) ->
      (outputs..., loss)`: the forward pass in inference mode.

    Training mode: `batch_norm_inference` over frozen statistics becomes
    `batch_norm_train` whose updated running statistics are model state
    (PyTorch momentum `bn-momentum`, unbiased running variance), with one
    update counter per BatchNorm (`num_batches_tracked`), and every
    `dropout` draws from `seed(step)` so masks change every step. Inference
    mode: BatchNorm uses the running statistics, dropout is the identity.

    With `grad-accum = K`, every call of `@train_step` adds its gradient to
    a `grad_accum` slot; every K-th call (by `step`) applies the optimizer to
    the average and clears the slot, the others leave parameters and
    optimizer state unchanged. The schedule and bias corrections count
    optimizer updates, `floor(step / K)`.

    Optimizers: `sgd` (momentum, dampening, nesterov, weight decay), `adam`,
    `adamw`, `adagrad`, `rmsprop`, `lamb`. Schedules: `constant`, `step`,
    `multistep`, `exponential`, `cosine` (with `warmup-steps`),
    `linear-warmup`, `one-cycle`. Options that do not apply to the chosen
    optimizer or schedule are errors that name them.
  }];
  let options = [
    Option<"funcName", "func", "std::string", /*default=*/"\"forward\"",
           "The function with a `loss` result">,
    Option<"optimizer", "optimizer", "std::string", /*default=*/"\"sgd\"",
           "sgd, adam, adamw, adagrad, rmsprop or lamb">,
    Option<"lr", "lr", "double", /*default=*/"1e-3", "Learning rate">,
    Option<"momentum", "momentum", "double", /*default=*/"0.0",
           "Momentum (sgd, rmsprop)">,
    Option<"dampening", "dampening", "double", /*default=*/"0.0",
           "Dampening of the momentum (sgd)">,
    Option<"nesterov", "nesterov", "bool", /*default=*/"false",
           "Nesterov momentum (sgd)">,
    Option<"weightDecay", "weight-decay", "double", /*default=*/"-1.0",
           "Weight decay (default: 0, and 1e-2 for adamw as PyTorch)">,
    Option<"beta1", "beta1", "double", /*default=*/"0.9",
           "First-moment decay (adam, adamw, lamb)">,
    Option<"beta2", "beta2", "double", /*default=*/"0.999",
           "Second-moment decay (adam, adamw, lamb)">,
    Option<"eps", "eps", "double", /*default=*/"-1.0",
           "Denominator term (default: 1e-8; adagrad 1e-10, lamb 1e-6)">,
    Option<"alpha", "alpha", "double", /*default=*/"0.99",
           "Smoothing constant (rmsprop)">,
    Option<"lrDecay", "lr-decay", "double", /*default=*/"0.0",
           "Learning-rate decay (adagrad)">,
    Option<"schedule", "lr-schedule", "std::string",
           /*default=*/"\"constant\"",
           "constant, step, multistep, exponential, cosine, linear-warmup "
           "or one-cycle">,
    Option<"warmupSteps", "warmup-steps", "int64_t", /*default=*/"0",
           "Linear warmup steps (cosine, linear-warmup)">,
    Option<"totalSteps", "total-steps", "int64_t", /*default=*/"0",
           "Steps of the whole run (cosine, one-cycle)">,
    Option<"stepSize", "step-size", "int64_t", /*default=*/"0",
           "Steps between decays (step)">,
    Option<"gamma", "gamma", "double", /*default=*/"0.1",
           "Decay factor (step, multistep, exponential)">,
    ListOption<"milestones", "milestones", "int64_t",
               "Steps at which the rate decays (multistep)">,
    Option<"minLr", "min-lr", "double", /*default=*/"0.0",
           "Final learning rate (cosine)">,
    Option<"pctStart", "pct-start", "double", /*default=*/"0.3",
           "Fraction of the run spent increasing the rate (one-cycle)">,
    Option<"divFactor", "div-factor", "double", /*default=*/"25.0",
           "Initial rate is lr / div-factor (one-cycle)">,
    Option<"finalDivFactor", "final-div-factor", "double",
           /*default=*/"1e4",
           "Final rate is the initial rate / final-div-factor (one-cycle)">,
    Option<"clipGradNorm", "clip-grad-norm", "double", /*default=*/"0.0",
           "Scale gradients so their global L2 norm is at most this (0: off)">,
    Option<"clipGradValue", "clip-grad-value", "double", /*default=*/"0.0",
           "Clamp every gradient element to [-v, v] (0: off)">,
    ListOption<"noWeightDecay", "no-weight-decay", "std::string",
               "Glob patterns of parameters without weight decay">,
    Option<"bnMomentum", "bn-momentum", "double", /*default=*/"0.1",
           "BatchNorm running-statistics momentum, PyTorch convention">,
    Option<"gradAccum", "grad-accum", "int64_t", /*default=*/"1",
           "Accumulate gradients over this many micro-batches (calls of "
           "@train_step) before each optimizer update">,
  ];
}

def TrainoptProbeValues : Pass<"trainopt-probe-values", "ModuleOp"> {
  let summary = "Returns every intermediate value of a function as a named output";
  let description = [{
    A debugging pass for the differential tester
    (`scripts/difftest.py`): every floating-point result of a trainopt op in
    `func` (forward activations, every cotangent, the optimizer's
    temporaries) becomes an extra result, and every `i1` result (the branch
    decisions of `relu`, `clip`, `max`, `where`, ... and of their VJPs) an
    extra result cast to f32 (0 or 1). The same probed function runs in the
    reference evaluator and, compiled, in the runtime, so both sides can be
    compared value by value.

    Each extra result is tagged `trainopt.output` with the name
    `probe.<k>:<op>:<operands>:<location>`: `k` numbers the probes in
    program order; `op` is the op name without the dialect prefix
    (`max_pool_grad` adds its window as `[k=3x3;s=2x2;p=1x1x1x1;d=1x1]`);
    `operands` lists, comma-separated, each operand's probe number, `=V`
    for a splat constant of value V, or `-`; `location` is the op's ONNX
    node name (empty for ops the training passes added). Values the
    function already returns, constants and non-float, non-i1 values are
    not probed. The pass fails on a `func.call` in `func`: run `-inline`
    first, so the values of the whole step are in one function.

    The arithmetic is unchanged: the compiled program keeps its kernels and
    library calls; probed values are only kept alive as outputs.

    Before:
    ```mlir
    func.func @train_step(%x: tensor<4xf32>) -> tensor<f32> {
      %0 = trainopt.relu %x : tensor<4xf32> loc("r")
      %1 = trainopt.reduce_sum %0 : (tensor<4xf32>) -> tensor<f32>
      return %1 : tensor<f32>
    }
    ```
    After:
    ```mlir
    func.func @train_step(%x: tensor<4xf32>)
        -> (tensor<f32>, tensor<4xf32> {trainopt.output = "probe.0:relu:-:r"}) {
      %0 = trainopt.relu %x : tensor<4xf32> loc("r")
      %1 = trainopt.reduce_sum %0 : (tensor<4xf32>) -> tensor<f32>
      return %1, %0 : tensor<f32>, tensor<4xf32>
    }
    ```
  }];
  let options = [
    Option<"funcName", "func", "std::string", /*default=*/"\"train_step\"",
           "The function whose values are probed">,
  ];
}

#endif // TRAINOPT_DIALECT_TRAINOPT_TRANSFORMS_PASSES_TD
