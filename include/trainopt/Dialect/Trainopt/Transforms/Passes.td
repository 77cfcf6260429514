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
    summed; integer values, masks, seeds and frozen parameters get none,
    nor do the results of an op marked `trainopt.stop_gradient` (PyTorch's
    `detach`: straight-through estimators read `q + (x - stop(x))`); an
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
    Ensures that `func` returns a loss: a result with role `loss`
    (`trainopt.role = #trainopt<role loss>`, named `trainopt.output =
    "loss"`), which the later stages find by its role:

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
        -> (tensor<8x10xf32> {trainopt.output = "logits"},
            tensor<f32> {trainopt.output = "loss", trainopt.role = #trainopt<role loss>})
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

def TrainoptLowRank : Pass<"trainopt-low-rank", "ModuleOp"> {
  let summary = "Low-rank factorization of weights from their SVD";
  let description = [{
    With `low-rank` set, factors the weight W of every matmul (2-d, read
    directly or through a transpose) and ungrouped convolution of `func`
    that is a trainable parameter of its own (no other reader) and matches
    `low-rank-layers` (all when empty): the SVD of W's initial values as a
    matrix (a filter `[F, C, k...]` as `F x (C k...)`), computed at compile
    time by one-sided Jacobi in float64, gives `W ~ U V` with
    `U = U_r sqrt(S_r)` (m x r) and `V = sqrt(S_r) V_r^T` (r x n), two new
    trainable parameters `W.u` and `W.v` that replace W (which is removed):

    - a matmul `x W` becomes `(x U) V`, and `x W^T` becomes `(x V^T) U^T`;
    - a convolution becomes the same convolution (strides, padding,
      dilations) with the filter `V` (`[r, C, k...]`) to r channels, then a
      1 x 1 convolution with the filter `U` (`[F, r, 1...]`) and the bias.

    The rank is the smallest that keeps the fraction E of the squared
    singular values (`energy:E`) or a fixed R (`rank:R`, at most
    min(m, n)). A weight whose rank would not save parameters
    (`r (m + n) >= m n`) is left as it is. The module attribute
    `trainopt.low_rank` records each weight's rank and its parameters and
    forward FLOPs before and after (for `--report`), and the factored ones
    for the ONNX export, which writes the factored structure.

    Before (`low-rank=rank:2`):
    ```mlir
    %y = trainopt.matmul %x, %w {transpose_rhs = true} : (tensor<8x16xf32>, tensor<12x16xf32>) -> tensor<8x12xf32>
    ```
    After:
    ```mlir
    %t = trainopt.matmul %x, %v {transpose_rhs = true} : (tensor<8x16xf32>, tensor<2x16xf32>) -> tensor<8x2xf32>
    %y = trainopt.matmul %t, %u {transpose_rhs = true} : (tensor<8x2xf32>, tensor<12x2xf32>) -> tensor<8x12xf32>
    ```
  }];
  let options = [
    Option<"funcName", "func", "std::string", /*default=*/"\"forward\"",
           "The model function to factor">,
    Option<"lowRank", "low-rank", "std::string", /*default=*/"\"off\"",
           "Low-rank factorization: off, energy:E (keep the fraction E of "
           "the squared singular values) or rank:R">,
    ListOption<"layers", "low-rank-layers", "std::string",
               "Glob patterns of the weights to factor (default: all)">,
  ];
}

def TrainoptQuantize : Pass<"trainopt-quantize", "ModuleOp"> {
  let summary = "Quantization-aware training: fake-quantizes weights and their inputs";
  let description = [{
    With `quantize=int8` or `quantize=int4`, puts a `trainopt.fake_quant` on
    the weight of every convolution and matmul of `func` whose weight is a
    trainable parameter (the filter of `conv`, the `rhs` of `matmul`), and
    on the activation it multiplies, as
    `torch.ao.quantization` QAT does with `FakeQuantize` modules:

    - **weights:** signed, `[-128, 127]` or `[-8, 7]`; symmetric (zero
      point 0, scale `max(|min|, |max|) / ((quant_max - quant_min) / 2)`)
      or affine (`quantize-weight-scheme`); one scale per output channel
      (axis 0 of a filter, the output axis of a matmul weight) or per
      tensor (`quantize-granularity`);
    - **activations** (`quantize-activations`): unsigned, `[0, 255]` or
      `[0, 15]`, affine, per tensor. An activation that feeds several
      quantized ops is quantized once; one that is already fake-quantized
      is left alone.
    - **outputs** (`quantize-outputs`, with activations): the op's result,
      taken after a bias `add` of a matmul and after a `relu` that only it
      feeds, as PyTorch's QAT quantizes a module's output (point
      `W:output`); not when a BatchNorm reads it (PyTorch folds that
      BatchNorm into the convolution first; trainopt does not yet), nor
      when the model returns it (the logits stay in float). Every
      reader sees the quantized value. An input reached from a quantized
      value through `max_pool`, `reshape`, `relu`, `slice` or `transpose`,
      which keep values on the grid, is not quantized again: its point names the observer it
      inherits, and the QDQ export writes a QuantizeLinear/DequantizeLinear
      pair there with the same scale (exact), so that ONNX Runtime fuses
      QLinearConv and QGemm throughout.
    - `quantize-reduce-range` narrows int8 weights to `[-64, 63]`, as ONNX
      Runtime's quantizer's `reduce_range` does: x86 integer kernels
      without VNNI add products pairwise in saturating 16 bits
      (`vpmaddubsw`), which cannot overflow then (255 * 64 * 2 < 2^15), so
      the export stores int8 weights for ONNX Runtime's u8s8 kernels;
      8-bit weights are exported as uint8, shifted by 128, for its slower
      u8u8 kernels. (PyTorch's `fbgemm` configuration narrows the
      activations instead, which ONNX's QuantizeLinear, saturating at
      `[0, 255]`, cannot express.)

    Scales and zero points come from observers, each model state updated by
    the model itself (`trainopt.assign`): PyTorch's moving-average min/max
    observer (`MovingAverageMinMaxObserver`, per channel
    `MovingAveragePerChannelMinMaxObserver`), whose first observation sets
    the range and whose later ones move it by `observer-averaging`. One
    counter of observations (`qat.observations`) serves them all; from
    `observer-freeze-step` observations on (0: never) the ranges stay as
    they are, as after `torch.ao.quantization.disable_observer`. As in
    `FakeQuantize`, a training step quantizes with the range that includes
    its own batch; the eval step reads the ranges as they stand.

    The states of a point named P (a weight's parameter name, or the
    weight's name with `:input` or `:output` for its activations) are the frozen
    parameters `P.observer_min` and `P.observer_max` (0-d, or one value per
    channel), saved in checkpoints with the rest of the model state.
    `quantize-exclude` keeps weights matching any of its globs (and their
    inputs) in full precision.

    With `quantize=kmeans:K`, weights are shared instead (Han et al.'s Deep
    Compression): each weight's initial values are clustered by a
    one-dimensional k-means (linear initialization, Lloyd rounds, at compile
    time) into a trainable codebook `W.codebook` of K values and frozen
    codes `W.codes` (i32, the weight's shape); every use of the weight reads
    `trainopt.gather` of the codebook at the codes, so the gradients of the
    weights that share a centroid are summed into it (gather's VJP). The
    weight itself becomes model state, the shared values stored back by
    `trainopt.assign` every step, so checkpoints, `--save-params` and the
    ONNX export hold them. Inputs are not quantized. The observers' scale and zero point get no
    gradient (fake_quant's VJP gives none). Mixed precision (`amp`) and
    tensor or pipeline parallelism are refused with QAT for now.

    With `quantize=log:BITS`, each weight is read as power-of-two levels of
    a trainable latent weight `W.latent`: `sign(l) 2^min(k, hi)` with
    `k = round(log2 |l|)` and `hi` that of the largest `|l|` per output
    channel (or tensor), 0 where `k < hi - (2^(BITS-1) - 2)`; the read is
    `q + (l - stop(l))` (ops marked `trainopt.stop_gradient`), the
    straight-through estimator. The weight becomes model state holding the
    levels, stored back every step, as with `kmeans:K`.

    Before (`quantize=int8`):
    ```mlir
    %y = trainopt.matmul %x, %w {transpose_rhs = true} : (tensor<8x4xf32>, tensor<2x4xf32>) -> tensor<8x2xf32>
    ```
    After (observer arithmetic elided):
    ```mlir
    %xq = trainopt.fake_quant %x, %sx, %zx {quant_min = 0 : i64, quant_max = 255 : i64} : ...
    %wq = trainopt.fake_quant %w, %sw, %zw {quant_min = -128 : i64, quant_max = 127 : i64}
        : (tensor<2x4xf32>, tensor<2x1xf32>, tensor<2x1xf32>) -> tensor<2x4xf32>
    %y = trainopt.matmul %xq, %wq {transpose_rhs = true} : (tensor<8x4xf32>, tensor<2x4xf32>) -> tensor<8x2xf32>
    trainopt.assign %w_min, %new_w_min : tensor<2xf32>
    ...
    ```
  }];
  let options = [
    Option<"funcName", "func", "std::string", /*default=*/"\"forward\"",
           "The model function to quantize">,
    Option<"quantize", "quantize", "std::string", /*default=*/"\"off\"",
           "Quantization-aware training: off, int8, int4, log:BITS "
           "(power-of-two weights) or kmeans:K (weight sharing among K "
           "centroids)">,
    Option<"granularity", "quantize-granularity", "std::string",
           /*default=*/"\"per-channel\"",
           "Weight scales per-channel (one per output channel) or per-tensor">,
    Option<"weightScheme", "quantize-weight-scheme", "std::string",
           /*default=*/"\"symmetric\"",
           "Weight quantization: symmetric (zero point 0) or affine">,
    Option<"activations", "quantize-activations", "bool", /*default=*/"true",
           "Also fake-quantize the inputs of quantized convolutions and "
           "matmuls (unsigned, per tensor)">,
    Option<"outputs", "quantize-outputs", "bool", /*default=*/"true",
           "Also fake-quantize the outputs of quantized convolutions and "
           "matmuls (after their bias and a ReLU that only they feed; not "
           "one a BatchNorm reads), so the QDQ export runs on integer "
           "kernels">,
    Option<"reduceRange", "quantize-reduce-range", "bool",
           /*default=*/"false",
           "int8 weights in [-64, 63] (7 bits, ONNX Runtime's reduce_range), "
           "so x86 integer kernels without VNNI cannot saturate and the QDQ "
           "export stores int8 weights (ONNX Runtime's faster u8s8 "
           "kernels)">,
    ListOption<"exclude", "quantize-exclude", "std::string",
               "Glob patterns of weights kept in full precision">,
    Option<"averaging", "observer-averaging", "double", /*default=*/"0.01",
           "How far each observation moves an observer's range, in (0, 1] "
           "(PyTorch's averaging_constant)">,
    Option<"freezeStep", "observer-freeze-step", "int64_t", /*default=*/"0",
           "Observations after which the quantization ranges stay fixed "
           "(0: never)">,
  ];
}

def TrainoptPrune : Pass<"trainopt-prune", "ModuleOp"> {
  let summary = "Pruning: weights times masks that the model updates on a schedule";
  let description = [{
    With `prune` set, multiplies every use of the weight of each
    convolution and matmul of `func` whose weight is a trainable parameter
    (as `trainopt-quantize` finds them, through a transpose or a
    `fake_quant`) by a mask, model state named `W.prune_mask` (ones at
    first, saved in checkpoints), so the forward and therefore the
    gradient see the pruned weight, as `torch.nn.utils.prune` does with its
    `weight_orig * weight_mask`. The model recomputes its masks at the
    steps of `prune-schedule`, from the pruned weights' magnitudes, and
    stores them with `trainopt.assign`; a weight once pruned stays pruned.

    - `magnitude:S`: unstructured, the `round(S * n)` weights of smallest
      magnitude are zero, per layer (`prune-scope=layer`, as
      `l1_unstructured`) or over all pruned layers together
      (`prune-scope=global`, as `global_unstructured`);
    - `channel:l1:F`: structured, the `round(F * C)` output channels (a
      filter of a convolution, a neuron of a matmul) of smallest L1 norm
      are zero, as `ln_structured(n=1)`; the layers that produce the
      model's outputs (a classifier's classes) stay dense;
    - `N:M`: semi-structured, in every group of `M` consecutive weights
      along the reduction (input) axis, the `N` of largest magnitude stay
      (ties: the first). The reduction size must be a multiple of `M`.

    Thresholds come from `trainopt.kth_smallest`; weights tied at the
    threshold are all pruned. Schedules (`prune-schedule`), in training
    steps counted by the model (`prune.step`, one per training forward):
    `oneshot[:STEP]` prunes to the target at STEP (default 0, before the
    first update); `gradual:START,END,EVERY` raises the sparsity every EVERY
    steps from START to END along Zhu and Gupta's cubic ramp
    `S (1 - (1 - (t - START) / (END - START))^3)`; with
    `prune-iterative=R` (and `gradual:START,END`), R prune-retrain rounds
    instead, at `START + r P` (`P = (END - START) / (R - 1)` rounded down,
    the last at END), round r bringing the sparsity to
    `1 - (1 - S)^((r + 1) / R)` (each prunes the same fraction of the
    weights left, as Han et al.'s iterative pruning), the steps between
    them retraining what is left. The eval step reads the
    masks as they stand. The pruned weights are listed in the module
    attribute `trainopt.pruning`; the runtime reports their sparsity and
    the ONNX export multiplies the masks in. Tensor and pipeline
    parallelism and ZeRO-3 are refused with pruning for now.

    Before (`prune=magnitude:0.5`):
    ```mlir
    %y = trainopt.matmul %x, %w {transpose_rhs = true} : (tensor<8x4xf32>, tensor<2x4xf32>) -> tensor<8x2xf32>
    ```
    After (schedule arithmetic elided):
    ```mlir
    %score = trainopt.abs %wm : (tensor<2x4xf32>) -> tensor<2x4xf32>
    %t = trainopt.kth_smallest %score, %k : (tensor<2x4xf32>, tensor<i64>) -> tensor<f32>
    %keep = trainopt.greater %score, %t : (tensor<2x4xf32>, tensor<f32>) -> tensor<2x4xi1>
    ...
    %mask = trainopt.where %update, %new, %old : ...
    %wp = trainopt.mul %w, %mask : (tensor<2x4xf32>, tensor<2x4xf32>) -> tensor<2x4xf32>
    %y = trainopt.matmul %x, %wp {transpose_rhs = true} : ...
    trainopt.assign %old, %mask : tensor<2x4xf32>
    ```
  }];
  let options = [
    Option<"funcName", "func", "std::string", /*default=*/"\"forward\"",
           "The model function to prune">,
    Option<"prune", "prune", "std::string", /*default=*/"\"off\"",
           "Pruning: off, magnitude:SPARSITY, channel:l1:FRACTION or N:M "
           "(2:4)">,
    Option<"scope", "prune-scope", "std::string", /*default=*/"\"layer\"",
           "magnitude pruning's threshold per layer or global (over all "
           "pruned layers)">,
    Option<"scheduleSpec", "prune-schedule", "std::string",
           /*default=*/"\"oneshot\"",
           "When masks change: oneshot[:STEP] or gradual:START,END,EVERY "
           "(Zhu-Gupta cubic ramp; steps are training steps)">,
    ListOption<"exclude", "prune-exclude", "std::string",
               "Glob patterns of weights left dense">,
    Option<"iterative", "prune-iterative", "int64_t", /*default=*/"0",
           "Prune-retrain cycles: this many rounds spread over the "
           "schedule's gradual:START,END, each pruning the same fraction of "
           "the weights left (0: the cubic ramp)">,
  ];
}

def TrainoptDistill : Pass<"trainopt-distill", "ModuleOp"> {
  let summary = "Knowledge distillation: a frozen teacher's forward and its loss terms in the training step";
  let description = [{
    Runs after `trainopt-attach-loss` on a module that holds a teacher: a
    model function with `trainopt.teacher` and its parameters, frozen, as
    `trainopt-compile --teacher=T.onnx` imports it (named `teacher.*`, in
    inference form: BatchNorm on its running statistics, which
    `trainopt.frozen_stats` keeps in training; no Dropout). The teacher's
    ops are inlined into `func`, reading the student's inputs (by name, or
    the only input), so its forward runs in the same step; nothing of it is
    trainable and autodiff, which differentiates only what depends on a
    trainable parameter, gives it no backward pass and no optimizer state.

    - `distill=kl:T=4,alpha=0.7` (response-based, Hinton et al.): with the
      student's cross-entropy loss `CE` over logits `s` and the teacher's
      logits `t` of the same shape (the teacher output of the same name, or
      its only one), the loss becomes
      `(1 - alpha) CE + alpha T^2 KL(softmax(t/T) || softmax(s/T))`, the KL
      summed over the class axis and averaged over the other positions
      (PyTorch's `kl_div(..., reduction="batchmean")` for `[B, C]`).
    - `distill-feature=TEACHER:STUDENT[:mse]` (feature-based, FitNets),
      repeatable: adds `distill-feature-weight * mse(P(student), teacher)`
      for the two intermediate tensors, which the importer returns as
      results marked `trainopt.feature`. Their shapes must agree except in
      the channel axis (1 for rank 4 and 5, the last for rank 2 and 3);
      where the widths differ, `P` is a learned projection from the
      student's width to the teacher's (a 1x1 convolution or a linear map,
      parameter `distill.proj.STUDENT`, drawn as PyTorch draws a layer's
      weight, `U(-1/sqrt(fan_in), 1/sqrt(fan_in))`); otherwise it is the
      identity.

    The training loss is then the mixed one; `func` also returns metrics
    `task_loss` (the loss before distillation) and `distill_loss` (the
    terms added), and @eval_step reports the task loss
    (`trainopt.eval_loss`) and drops the teacher. Tensor and pipeline
    parallelism are refused.

    Before (`distill=kl:T=2,alpha=0.5`, the teacher's ops elided):
    ```mlir
    %l = trainopt.cross_entropy %s, %y {reduction = #trainopt<reduction mean>} : ...
    return %s, %l : ...
    ```
    After:
    ```mlir
    %t = ... the teacher's forward on the same inputs ...
    %ls = trainopt.log_softmax %s2 {axis = 1 : i64} : tensor<8x10xf32>
    %lt = trainopt.log_softmax %t2 {axis = 1 : i64} : tensor<8x10xf32>
    %kl = ... sum(exp(%lt) * (%lt - %ls)) / 8 ...
    %loss = ... 0.5 * %l + 0.5 * 4 * %kl ...
    return %s, %loss, %l, %d : ...
    ```
  }];
  let options = [
    Option<"funcName", "func", "std::string", /*default=*/"\"forward\"",
           "The student's model function">,
    Option<"distill", "distill", "std::string", /*default=*/"\"off\"",
           "Response-based distillation: off or kl[:T=TEMPERATURE,alpha=WEIGHT] "
           "(default T=4, alpha=0.7)">,
    ListOption<"features", "distill-feature", "std::string",
               "Feature-based distillation: TEACHER_TENSOR:STUDENT_TENSOR[:mse], "
               "ONNX tensor names">,
    Option<"featureWeight", "distill-feature-weight", "double",
           /*default=*/"1.0",
           "The weight of each feature term's mean squared error">,
  ];
}

def TrainoptAssignPrecision : Pass<"trainopt-assign-precision", "ModuleOp"> {
  let summary = "Runs the model in bf16 or fp16 where the precision policy allows";
  let description = [{
    Mixed-precision assignment (automatic mixed precision, AMP), between loss
    attachment and autodiff, so that the backward pass mirrors the forward
    through the casts' VJPs. With `amp=bf16` or `amp=fp16` it rewrites `func`
    op by op, in order, by a policy modelled on `torch.autocast`:

    - ops in the policy's `low_precision` list (matmul, conv) take every
      floating-point operand in the low type and produce it;
    - ops in its `fp32` list (softmax, losses, normalization, exp, log, pow,
      sums and means) take and produce f32;
    - every other op follows its inputs: the widest float type among its
      operands that are activations. Parameters and constants do not vote,
      so a bias added to a bf16 matmul is cast to bf16 (as in
      `torch.nn.functional.linear` under autocast) rather than pulling the
      sum up to f32.

    Each value is cast at most once to each type, so a weight's low-precision
    copy is made once per step, from its f32 master; parameters, optimizer
    state and the optimizer's arithmetic stay f32. The function's results
    keep their types (a low-precision output is cast back). A cleanup then
    folds cast chains that are exact (bf16 -> f32 -> bf16 is the identity;
    f32 -> bf16 -> f32 is not and stays) and casts of constants.

    Loss scaling (fp16's range ends at 65504, and small gradients flush to
    zero below 6e-8): with `loss-scale=dynamic` (the default under
    `amp=fp16`) or a fixed scale, the pass records the configuration on
    `func` as `trainopt.loss_scale = {init, dynamic, growth_interval,
    growth_factor, backoff_factor}`; `trainopt-build-train-step` then
    differentiates the loss times a `loss_scale` state, and
    `trainopt-transform-gradients` unscales, skips overflowed steps and
    updates the scale with `torch.amp.GradScaler`'s rule. bf16 has f32's
    range and takes no loss scaling: `loss-scale` with `amp=bf16` or
    `amp=off` is an error.

    `amp-policy` replaces the built-in policy (docs/mixed-precision.md gives
    its format and reasons) with a JSON file; `amp-keep-fp32` keeps the
    listed op kinds (`softmax`) or ONNX node names in f32. It fails, naming
    the option, on an unknown op kind or node name, on a model whose float
    parameters or inputs are not all f32, on an unreadable policy, or on a
    policy that puts BatchNorm in low precision (its running statistics are
    f32 model state; a policy that does not list it keeps it in f32). Ops of
    other dialects (a call) keep their types: their operands are cast back.

    Before (`amp=bf16`):
    ```mlir
    %y = trainopt.matmul %x, %w : (tensor<8x4xf32>, tensor<4x2xf32>) -> tensor<8x2xf32>
    %z = trainopt.add %y, %b : (tensor<8x2xf32>, tensor<2xf32>) -> tensor<8x2xf32>
    ```
    After:
    ```mlir
    %xl = trainopt.cast %x : tensor<8x4xf32> to tensor<8x4xbf16>
    %wl = trainopt.cast %w : tensor<4x2xf32> to tensor<4x2xbf16>
    %y = trainopt.matmul %xl, %wl : (tensor<8x4xbf16>, tensor<4x2xbf16>) -> tensor<8x2xbf16>
    %bl = trainopt.cast %b : tensor<2xf32> to tensor<2xbf16>
    %z = trainopt.add %y, %bl : (tensor<8x2xbf16>, tensor<2xbf16>) -> tensor<8x2xbf16>
    ```
  }];
  let options = [
    Option<"funcName", "func", "std::string", /*default=*/"\"forward\"",
           "The model function to assign precisions in">,
    Option<"amp", "amp", "std::string", /*default=*/"\"off\"",
           "Automatic mixed precision: off, bf16 or fp16">,
    Option<"policyPath", "amp-policy", "std::string", /*default=*/"\"\"",
           "A JSON precision policy replacing the built-in one "
           "(docs/mixed-precision.md)">,
    ListOption<"keepFp32", "amp-keep-fp32", "std::string",
               "Op kinds or ONNX node names kept in f32">,
    Option<"lossScale", "loss-scale", "std::string", /*default=*/"\"auto\"",
           "Loss scaling: dynamic, off, or a fixed scale S (auto: dynamic "
           "with --amp=fp16, off otherwise)">,
    Option<"lossScaleInit", "loss-scale-init", "double",
           /*default=*/"65536.0",
           "The dynamic loss scale's initial value (GradScaler init_scale)">,
    Option<"lossScaleGrowthInterval", "loss-scale-growth-interval", "int64_t",
           /*default=*/"2000",
           "Finite steps in a row after which the dynamic scale grows "
           "(GradScaler growth_interval)">,
    Option<"lossScaleGrowthFactor", "loss-scale-growth-factor", "double",
           /*default=*/"2.0",
           "What the dynamic scale is multiplied by when it grows "
           "(GradScaler growth_factor)">,
    Option<"lossScaleBackoffFactor", "loss-scale-backoff-factor", "double",
           /*default=*/"0.5",
           "What the dynamic scale is multiplied by after an overflow "
           "(GradScaler backoff_factor)">,
  ];
}

def TrainoptSplitPipeline : Pass<"trainopt-split-pipeline", "ModuleOp"> {
  let summary = "Keeps one pipeline stage of the model function";
  let description = [{
    Pipeline parallelism, first half. Over a `pp` axis of K > 1 ranks (the
    `shard.grid @mesh` of trainopt-partition-model) it cuts the model
    function `func`, loss included, into K stages at layer boundaries: the
    points of the op order where exactly one activation (a floating-point
    tensor) is live. It picks the K - 1 cuts that split the estimated FLOPs
    most evenly and keeps stage `stage` only, so each stage compiles to a
    program of its own:

    - the stage's parameters stay arguments; the others' are dropped (a
      parameter two stages read, as tied weights are, is an error naming
      it);
    - a stage after the first reads its input activation from an argument
      `trainopt.pipeline = "in"`, which autodiff differentiates so that its
      cotangent can go back;
    - a stage before the last returns its output activation
      (`trainopt.pipeline = "out"`) and, as its loss, `sum(out * cot)`,
      where `cot` is an argument `trainopt.pipeline = "cot"`: the VJP of
      that loss is the backward seeded with the next stage's cotangent.

    `trainopt.pipeline` on the function records the stage, the stage count,
    the cuts and the whole model's results, which every stage's eval step
    returns. Data inputs stay arguments of every stage. Without a pp axis
    the pass does nothing. trainopt-schedule-pipeline makes the 1F1B
    schedule of the stage after the optimizer.
  }];
  let options = [
    Option<"funcName", "func", "std::string", /*default=*/"\"forward\"",
           "The model function to split">,
    Option<"stage", "pipeline-stage", "int64_t", /*default=*/"0",
           "The pipeline stage to keep (trainopt-compile compiles every "
           "stage into the artifact; this picks the one --emit=*-mlir "
           "prints)">,
  ];
}

def TrainoptSchedulePipeline : Pass<"trainopt-schedule-pipeline", "ModuleOp"> {
  let summary = "Runs one pipeline stage's step over micro-batches, 1F1B";
  let description = [{
    Pipeline parallelism, second half, after trainopt-build-eval-step. On a
    stage that trainopt-split-pipeline kept, the step's batch is
    `micro-batches` (M) micro-batches of the compiled batch, whose inputs
    become M times as large along dim 0. `@train_step`'s call of the
    forward-and-backward function becomes the one-forward-one-backward
    (1F1B) schedule of PipeDream-Flush and Megatron-LM: K - 1 - stage
    forwards to fill the pipeline, then a backward after every forward,
    then the remaining backwards. Each forward runs the ops the stage's
    outputs need, receiving its input (`trainopt.recv`, offset -1) and
    sending its output (`trainopt.send`, offset 1); each backward runs the
    rest, receiving the output's cotangent and sending the input's. A
    micro-batch's activations live from its forward to its backward, and
    the memory plan sees exactly that. The gradients are summed over the
    micro-batches in order and divided by M, as gradient accumulation over
    M steps does; BatchNorm statistics are updated micro-batch after
    micro-batch; random ops draw with the step counter `step * M + i`.
    The loss is the micro-batches' mean on the last stage, all-reduced over
    pp so every stage reports it.

    `@eval_step` runs the M forwards in order; every stage returns the
    whole model's outputs and loss (the last stage's, all-reduced over pp).
    Without a pipeline the pass checks that `micro-batches` is 1.
  }];
  let options = [
    Option<"microBatches", "micro-batches", "int64_t", /*default=*/"1",
           "Micro-batches per pipeline step; the step reads M times "
           "--batch-size samples per data-parallel rank">,
  ];
}

def TrainoptBuildTrainStep : Pass<"trainopt-build-train-step", "ModuleOp"> {
  let summary = "Builds @train_step in gradient form from a function with a loss";
  let description = [{
    The first training-step stage. From `func`, whose result with role
    `loss` is the training loss (`trainopt-attach-loss`), it builds:

    - `@<func>_train(args..., step)`: the forward pass in training mode.
      `batch_norm_inference` over parameter statistics becomes
      `batch_norm_train` (PyTorch momentum `bn-momentum`, unbiased running
      variance), whose new running statistics are extra results tagged
      `trainopt.updates`; every `dropout` draws from a seed of `step`, so
      masks change every step.
    - `@<func>_train_grad` by autodiff (`trainopt-autodiff`).
    - `@train_step(params..., model state..., step, inputs...)` in
      *gradient form*: results are the new running statistics, one
      `num_batches_tracked` counter per BatchNorm (model state),
      `step + 1` (every updated value tagged `trainopt.updates = N`, the
      argument it replaces), the loss (role `loss`), and one result per
      trainable parameter with role `gradient` and `trainopt.grad_of`.

    The later stages (`trainopt-transform-gradients`,
    `trainopt-lr-schedule`, `trainopt-apply-optimizer`,
    `trainopt-build-eval-step`) finish the step; the named pipeline
    `trainopt-training-pipeline` runs them all. An artifact cannot be made
    from a step in gradient form.

    Before:
    ```mlir
    func.func @forward(%w: tensor<3xf32> {trainopt.param = @w}, %x: tensor<3xf32> {trainopt.input = "x"})
        -> (tensor<f32> {trainopt.output = "loss", trainopt.role = #trainopt<role loss>})
    ```
    After (added):
    ```mlir
    func.func @train_step(%w: tensor<3xf32> {trainopt.param = @w},
                          %step: tensor<i64> {trainopt.role = #trainopt<role step>, trainopt.state = "step"},
                          %x: tensor<3xf32> {trainopt.input = "x"})
        -> (tensor<i64> {trainopt.updates = 1 : i64},
            tensor<f32> {trainopt.output = "loss", trainopt.role = #trainopt<role loss>},
            tensor<3xf32> {trainopt.grad_of = @w, trainopt.role = #trainopt<role gradient>})
    ```
  }];
  let options = [
    Option<"funcName", "func", "std::string", /*default=*/"\"forward\"",
           "The function with a `loss` result">,
    Option<"bnMomentum", "bn-momentum", "double", /*default=*/"0.1",
           "BatchNorm running-statistics momentum, PyTorch convention">,
  ];
}

def TrainoptTransformGradients : Pass<"trainopt-transform-gradients", "ModuleOp"> {
  let summary = "Applies the gradient transforms of @train_step, in order";
  let description = [{
    Rewrites the `gradient` results of `@train_step` (gradient form, see
    `trainopt-build-train-step`) through an ordered list of transforms,
    each enabled by its option:

    1. `grad-accum = K`: every call adds its gradient to a `grad_accum`
       slot (optimizer state); the gradient becomes the slot's average, and
       a result with role `update_gate` says whether this call is the K-th
       (by `step`), when the slot is cleared. The optimizer applies its
       update only through the gate, and counts applied updates in an
       `optimizer_step` state for its schedule and bias corrections.
    2. Always: a `trainopt.grad_sync` marker per gradient, where
       data-parallel replicas combine their gradients
       (`trainopt-shard-step` replaces it).
    3. Loss scaling (when `trainopt.loss_scale` is set by
       `trainopt-assign-precision`): unscale, skip on inf/NaN, update the
       scale.
    4. The global L2 norm, returned as the metric `grad_norm` (before
       clipping, as PyTorch's `clip_grad_norm_` returns it). Always on.
    5. `clip-grad-value = v`: every element clamped to [-v, v].
    6. `clip-grad-norm = n`: all gradients scaled by
       min(1, n / (norm + 1e-6)).

    Each gate a transform adds is combined with the existing one by `and`.

    Before: `-> (..., tensor<3xf32> {trainopt.role = #trainopt<role gradient>, ...})`.
    After (`clip-grad-norm=1.0`): the same result is the clipped gradient,
    and `tensor<f32> {trainopt.output = "grad_norm", trainopt.role = #trainopt<role metric>}`
    is added.
  }];
  let options = [
    Option<"gradAccum", "grad-accum", "int64_t", /*default=*/"1",
           "Accumulate gradients over this many micro-batches (calls of "
           "@train_step) before each optimizer update">,
    Option<"clipGradNorm", "clip-grad-norm", "double", /*default=*/"0.0",
           "Scale gradients so their global L2 norm is at most this (0: off)">,
    Option<"clipGradValue", "clip-grad-value", "double", /*default=*/"0.0",
           "Clamp every gradient element to [-v, v] (0: off)">,
  ];
}

def TrainoptLRSchedule : Pass<"trainopt-lr-schedule", "ModuleOp"> {
  let summary = "Defines @lr_schedule, the learning rate as a function of the update count";
  let description = [{
    Adds `func.func private @lr_schedule(%updates: tensor<i64>) -> tensor<T>`
    (T: the element type of `@train_step`'s loss): the learning rate used
    for the update after `updates` earlier ones, as PyTorch's schedulers
    give it. `trainopt-apply-optimizer` calls it with its update count.

    Schedules: `constant`, `step` (`step-size`, `gamma`), `multistep`
    (`milestones`, `gamma`), `exponential` (`gamma`), `cosine` (linear
    `warmup-steps`, then cosine annealing to `min-lr` at `total-steps`),
    `linear-warmup`, `one-cycle` (`total-steps`, `pct-start`,
    `div-factor`, `final-div-factor`; cosine annealing). Options that do not
    apply to the schedule are errors that name them.

    After (`lr=0.1 lr-schedule=exponential gamma=0.5`):
    ```mlir
    func.func private @lr_schedule(%arg0: tensor<i64>) -> tensor<f32> {
      %0 = trainopt.cast %arg0 : tensor<i64> to tensor<f32>
      ...
      %3 = trainopt.pow %2, %0 : ...
      %4 = trainopt.mul %1, %3 : ...
      return %4 : tensor<f32>
    }
    ```
  }];
  let options = [
    Option<"lr", "lr", "double", /*default=*/"1e-3", "Learning rate">,
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
  ];
}

def TrainoptApplyOptimizer : Pass<"trainopt-apply-optimizer", "ModuleOp"> {
  let summary = "Replaces the gradients of @train_step by an optimizer update";
  let description = [{
    Consumes the `gradient` results (and the `update_gate`, if any) of
    `@train_step` in gradient form: adds the optimizer's slots per
    trainable parameter as `optimizer_state` arguments
    (`trainopt.state = "<PyTorch state name>"`, `trainopt.state_of`), and
    returns the new parameters and slots tagged `trainopt.updates`, and the
    metric `lr` (from `@lr_schedule`, see `trainopt-lr-schedule`, which
    must run first).

    Each optimizer is one definition in `Optimizers.cpp` (its
    hyperparameters with their defaults, slots and update rule); the pass
    knows none by name. A hyperparameter flag the chosen optimizer does
    not read is an error naming the optimizers that do. Under a gate the
    parameters and slots keep their values where it is false, and an
    `optimizer_step` state counts the updates applied; without one the
    update count is `step`.

    Optimizers: `sgd` (momentum, dampening, nesterov), `adam`, `adamw`
    (weight decay 1e-2 by default), `adagrad` (lr-decay), `rmsprop`
    (alpha, momentum), `lamb`, `lion` (beta1, beta2; betas 0.9, 0.99).

    Before: `-> (..., tensor<3xf32> {trainopt.grad_of = @w, trainopt.role = #trainopt<role gradient>})`.
    After (`optimizer=sgd`): `-> (..., tensor<3xf32> {trainopt.updates = 0 : i64}, ..., tensor<f32> {trainopt.output = "lr", ...})`.
  }];
  let options = [
    Option<"optimizer", "optimizer", "std::string", /*default=*/"\"sgd\"",
           "sgd, adam, adamw, adagrad, rmsprop, lamb or lion">,
    Option<"momentum", "momentum", "double", /*default=*/"0.0",
           "Momentum (sgd, rmsprop)">,
    Option<"dampening", "dampening", "double", /*default=*/"0.0",
           "Dampening of the momentum (sgd)">,
    Option<"nesterov", "nesterov", "bool", /*default=*/"false",
           "Nesterov momentum (sgd)">,
    Option<"weightDecay", "weight-decay", "double", /*default=*/"0.0",
           "Weight decay (default: 0, and 1e-2 for adamw as PyTorch)">,
    Option<"beta1", "beta1", "double", /*default=*/"0.9",
           "First-moment decay (adam, adamw, lamb, lion)">,
    Option<"beta2", "beta2", "double", /*default=*/"0.999",
           "Second-moment decay (adam, adamw, lamb; lion: 0.99)">,
    Option<"eps", "eps", "double", /*default=*/"1e-8",
           "Denominator term (default: 1e-8; adagrad 1e-10, lamb 1e-6)">,
    Option<"alpha", "alpha", "double", /*default=*/"0.99",
           "Smoothing constant (rmsprop)">,
    Option<"lrDecay", "lr-decay", "double", /*default=*/"0.0",
           "Learning-rate decay (adagrad)">,
    ListOption<"noWeightDecay", "no-weight-decay", "std::string",
               "Glob patterns of parameters without weight decay">,
  ];
}

def TrainoptBuildEvalStep : Pass<"trainopt-build-eval-step", "ModuleOp"> {
  let summary = "Builds @eval_step, the forward pass in inference mode";
  let description = [{
    Adds `@eval_step`, a copy of `func` in inference mode: `dropout` is the
    identity (its mask all true), and `batch_norm_train` becomes
    `batch_norm_inference` over the running statistics, which stay
    unchanged. State assignments are dropped: what read a state's new
    value reads the state as it stands (observers, masks), except for an
    assign marked `trainopt.derived` (a shared or log-quantized weight, a
    function of parameters alone), whose value is still computed from the
    parameters. Results with role `metric` are training's and are dropped;
    with `trainopt.eval_loss` on `func` (trainopt-distill), the loss is the
    metric it names (the task loss), and what only the dropped values read
    (the teacher's forward) goes too. Same arguments as `func`.
  }];
  let options = [
    Option<"funcName", "func", "std::string", /*default=*/"\"forward\"",
           "The model function">,
  ];
}

def TrainoptPartitionModel : Pass<"trainopt-partition-model", "ModuleOp"> {
  let summary = "Declares the device mesh and splits the model over its tp axis";
  let description = [{
    The first training stage. With a `mesh` (`dp=N[,tp=M][,pp=K]`),
    declares it as
    an upstream `shard.grid @mesh` with the axis names in `trainopt.axes`;
    trainopt-shard-step, the last stage, reads it from there.

    Over a `tp` axis larger than 1 it splits the model function `func`
    before autodiff, Megatron-LM style: every `matmul(x, W1)` (with an
    optional bias `+ b1`) followed, through unary elementwise ops only, by
    `matmul(., W2)` is a pair; W1 and b1 are split along the hidden
    features (column parallel, `trainopt.sharding = "tp:D"` and
    `trainopt.global_type` on the argument), W2 along the same features
    (row parallel). `x` enters the region through `trainopt.copy_to_group`
    (identity; its VJP all-reduces the input's cotangent) and the second
    product, a partial sum on each rank, is `trainopt.all_reduce`d before
    anything else reads it (a bias of the second matmul is added to the
    whole). Autodiff then derives the backward of the split forward, and
    every split parameter's gradient is its rank's part, exact. A matmul
    that does not fit the pattern (the last layer, a weight read twice)
    stays replicated; `trainopt.tp_decisions` on the function says why, and
    `--report` prints it. A tp that does not divide a split dimension is an
    error naming the parameter and its type. A `pp` axis is
    trainopt-split-pipeline's (with tp > 1 too, it is refused for now).

    With `sync-bn` and a `dp` axis, every
    `batch_norm_inference` of the model gets `trainopt.sync_stats`: when
    trainopt-build-train-step makes it a training BatchNorm, its statistics
    are all-reduced over dp (PyTorch's SyncBatchNorm); without it each rank
    normalizes with its own samples' statistics (DDP's default).

    Before (`mesh=tp=2`): `%h = trainopt.matmul %x, %w1 {transpose_rhs = true}
    : (tensor<8x4xf32>, tensor<6x4xf32>) -> tensor<8x6xf32>`.
    After: `%w1 : tensor<3x4xf32> {trainopt.sharding = "tp:0", ...}` and
    `trainopt.matmul %xc, %w1 ... -> tensor<8x3xf32>`.
  }];
  let dependentDialects = ["mlir::shard::ShardDialect"];
  let options = [
    Option<"funcName", "func", "std::string", /*default=*/"\"forward\"",
           "The model function to split">,
    Option<"mesh", "mesh", "std::string", /*default=*/"\"\"",
           "The device mesh, dp=N[,tp=M][,pp=K] (data parallel over N groups "
           "of K pipeline stages of M tensor-parallel processes; any axis "
           "may be left out); empty: one device">,
    Option<"syncBn", "sync-bn", "bool", /*default=*/"false",
           "BatchNorm statistics over the whole data-parallel group (the "
           "global batch) instead of each rank's own samples">,
  ];
}

def TrainoptShardStep : Pass<"trainopt-shard-step", "ModuleOp"> {
  let summary = "Partitions @train_step and @eval_step over a device mesh";
  let description = [{
    The sharding stage, after the optimizer (so optimizer state can be
    sharded) and the eval step. Without a mesh (the `shard.grid @mesh`
    that trainopt-partition-model declares) it only drops the
    `trainopt.grad_sync` markers: the single-device program is unchanged.

    With a mesh whose `dp` axis has N ranks the step becomes the program of
    one of N data-parallel ranks (docs/distributed.md). Each rank runs the
    model on its own `batch-size` samples, so the global batch is N times
    that; the local shapes are the compiled ones. The pass

    - names the mesh in `trainopt.mesh` on both entry points; inputs and
      labels get `trainopt.sharding = "dp:0"` (split on dim 0 over dp);
      the optimizer slots of a parameter split over tp get its sharding;
      everything else is replicated;
    - replaces the `grad_sync` markers by bucketed all-reduces: gradients
      are taken in the order the backward produces them and packed into
      buckets of at most `bucket-mb` MiB of one element type (a larger
      gradient is a bucket alone); each bucket's `trainopt.all_reduce` is
      placed right after its last gradient is computed, so it runs while
      the rest of the backward does, and each gradient becomes its
      bucket's sum times 1/N where the marker was;
    - averages the `loss` result over the ranks (an all-reduce times 1/N),
      so every rank reports the global batch's loss.

    With `zero = 1` (ZeRO-1), each trainable parameter's optimizer slots
    become flat shards: the parameter's elements, zero-padded to a multiple
    of N, split evenly (`trainopt.sharding = "dp:flat"` and
    `trainopt.global_type` on the slot). The update, which must be
    elementwise (every optimizer but LAMB), runs on this rank's shard of
    each operand (`trainopt.rank_slice`), and the new parameter is gathered
    back (`trainopt.all_gather`). A parameter whose update is not
    elementwise keeps its state whole. A parameter tensor parallelism split
    is flattened as this rank's part: its slots' sharding gains the level
    `dp:flat` after its own (`"tp:0,dp:flat"`).

    With `zero = 2` (ZeRO-2), a ZeRO-1 parameter's gradient is
    `trainopt.reduce_scatter`ed instead (its bucket's scattered gradients
    in one collective where the bucket's all-reduce was): each rank gets
    only the part of the sum its update reads, and the global norm sums
    the ranks' sums of squares of their parts (one all-reduce of scalars).
    A gradient read whole elsewhere stays all-reduced.

    With `zero = 3` (ZeRO-3), such a parameter is itself kept as its flat
    shard: every entry point that reads it gathers it whole at its start
    (the gathered value lives until its last reader in the backward: this
    build does not free and re-gather it between forward and backward),
    and the step returns the updated shard without gathering it.

    `trainopt.sharding_decisions` on `@train_step` says, per parameter,
    what it got and why.

    The cost model (`--report`, docs/distributed.md) is recorded as
    `trainopt.cost_model` on `@train_step`: a latency-bandwidth (alpha-beta)
    link from `link` and its overrides, and a compute rate.

    BatchNorm statistics stay local to each rank (PyTorch DDP semantics).
    ZeRO is refused with a `tp` axis larger than 1 for now.

    Before: `%s = trainopt.grad_sync %g {param = @fc.weight} : tensor<10xf32>`.
    After (a mesh `dp=2`):
    `%r = trainopt.all_reduce sum %g on @mesh axes = [0] : tensor<10xf32>`
    after `%g`'s definition, and `trainopt.mul %r, 0.5` in place of `%s`.
  }];
  let dependentDialects = ["mlir::shard::ShardDialect"];
  let options = [
    Option<"bucketMb", "bucket-mb", "double", /*default=*/"25.0",
           "Largest gradient bucket of one all-reduce, in MiB">,
    Option<"zero", "zero", "int64_t", /*default=*/"0",
           "ZeRO stage over dp: 0 replicates everything, 1 shards the "
           "optimizer state, 2 also the gradients, 3 also the parameters">,
    Option<"link", "link", "std::string", /*default=*/"\"shm\"",
           "The cost model's link between ranks: shm (shared memory: 2 us, "
           "10 GB/s), nvlink (10 us, 300 GB/s) or ib (InfiniBand HDR: "
           "10 us, 25 GB/s)">,
    Option<"linkLatencyUs", "link-latency-us", "double", /*default=*/"0.0",
           "The cost model's latency per message, in microseconds (0: the "
           "link's)">,
    Option<"linkGbps", "link-gbps", "double", /*default=*/"0.0",
           "The cost model's bandwidth per rank and direction, in GB/s (0: "
           "the link's)">,
    Option<"computeGflops", "compute-gflops", "double", /*default=*/"50.0",
           "The cost model's compute rate per rank, in GFLOP/s">,
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
