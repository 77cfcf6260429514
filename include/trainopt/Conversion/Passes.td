//===- Passes.td - trainopt conversion passes --------------*- tablegen -*-===//

#ifndef TRAINOPT_CONVERSION_PASSES_TD
#define TRAINOPT_CONVERSION_PASSES_TD

include "mlir/Pass/PassBase.td"

def TrainoptConvertToLinalg : Pass<"trainopt-convert-to-linalg"> {
  let summary = "Lowers trainopt ops to linalg on tensors, keeping library ops";
  let description = [{
    Rewrites every trainopt op that generated code computes into
    `linalg.generic` ops on tensors (with `arith`, `math` and `tensor` in
    their bodies): elementwise ops with NumPy broadcasting become parallel
    generics whose broadcast operands use constant-0 or dropped dimensions;
    reductions, softmax, normalizations, losses and dropout become chains of
    reduction and elementwise generics; slices, transposes, pads, concats,
    gathers and triangles index their sources. Constants become
    `arith.constant`.

    Library ops stay as they are, because the backend calls a library for
    them (BLAS, im2col convolution, pooling, scatter): `matmul`, `conv`,
    `conv_grad_input`, `conv_grad_filter`, `max_pool`, `max_pool_grad`,
    `avg_pool`, `avg_pool_grad`, `scatter_add`. `reshape` also stays: it is a
    view of its operand's buffer.

    Elementwise arithmetic computes in the tensor's element type, as the
    compiled kernels will. Sums (`reduce_sum` and the sums inside
    mean, softmax, normalizations and losses) of f32, f16 and bf16
    accumulate in f64 and round once at the end: a gradient norm sums over
    millions of elements, where f32 accumulation loses 1e-4. Max and min
    reduce in the element type. (The reference evaluator computes every op
    in f64 and rounds its result.)

    Before:
    ```mlir
    %0 = trainopt.add %x, %b : (tensor<4x8xf32>, tensor<8xf32>) -> tensor<4x8xf32>
    ```
    After:
    ```mlir
    %e = tensor.empty() : tensor<4x8xf32>
    %0 = linalg.generic {indexing_maps = [(d0, d1) -> (d0, d1), (d0, d1) -> (d1),
           (d0, d1) -> (d0, d1)], iterator_types = ["parallel", "parallel"]}
           ins(%x, %b : tensor<4x8xf32>, tensor<8xf32>) outs(%e : tensor<4x8xf32>) {...}
    ```
  }];
  let dependentDialects = ["::mlir::linalg::LinalgDialect", "::mlir::arith::ArithDialect",
                           "::mlir::math::MathDialect", "::mlir::tensor::TensorDialect"];
}

def TrainoptFuseElementwise : Pass<"trainopt-fuse-elementwise"> {
  let summary = "Fuses elementwise linalg producers into consumers of the same size";
  let description = [{
    Upstream elementwise fusion (`populateElementwiseOpsFusionPatterns`)
    with a cost rule: a producer is fused into its consumer only when it has
    no other use and its iteration space is as large as the consumer's.
    Fusing a small producer (a scalar bias correction of Adam, a per-channel
    statistic) into a large consumer would recompute it for every element of
    the consumer; such producers stay separate kernels and the consumer
    reads their result.

    A producer with other uses is fused too when the consumer is
    elementwise over the same iteration count and every other use comes
    after the consumer: the fused op yields the producer's result as an
    extra output and serves those uses (an optimizer's new momentum, read by
    the parameter update and returned as state, is then one kernel with two
    outputs instead of two kernels).
  }];
  let dependentDialects = ["::mlir::linalg::LinalgDialect"];
}

def TrainoptDropUncalledFunctions
    : Pass<"trainopt-drop-uncalled-functions", "ModuleOp"> {
  let summary = "Erases the functions no entry point calls any more";
  let description = [{
    Once the inliner has put `@forward_train_grad`, `@forward` and their
    kind into the entry points (`train_step`, `eval_step`, or the functions
    named by `entry-points`), those functions are dead weight: lowering and
    fusing them was two thirds of the kernel pipeline's time on a large
    model, for code nothing runs. The pass erases every function that is
    not an entry point and that no symbol use refers to.
  }];
  let options = [
    ListOption<"entryPoints", "entry-points", "std::string",
               "Functions to keep whatever refers to them (default: train_step, eval_step)">,
  ];
}

def TrainoptOutlineKernels : Pass<"trainopt-outline-kernels", "ModuleOp"> {
  let summary = "Moves each linalg op of the entry points into its own kernel function";
  let description = [{
    After `trainopt-convert-to-linalg` and elementwise fusion, every
    `linalg.generic` left in an entry point (`train_step`, `eval_step`, or
    the functions named by `entry-points`) is one kernel: the pass moves it,
    with its `tensor.empty`/`linalg.fill` initializers and the constants its
    body uses, into a private function marked `trainopt.kernel`, and calls
    that function. Tensors the body reads through `tensor.extract` become
    arguments. What is left in the entry point is the step program: kernel
    calls, library ops, reshapes and constants, in schedule order.

    A kernel whose iterators are all parallel and whose output maps are
    identities is marked `trainopt.elementwise`: the memory planner may then
    give its result the buffer of an operand that dies there.

    The pass fails on an op in an entry point that is neither a kernel,
    a library op, a view, a constant nor a call.
  }];
  let options = [
    ListOption<"entryPoints", "entry-points", "std::string",
               "Functions whose bodies become step programs (default: train_step, eval_step)">,
  ];
  let dependentDialects = ["::mlir::func::FuncDialect"];
}

def TrainoptScheduleCollectives
    : Pass<"trainopt-schedule-collectives", "ModuleOp"> {
  let summary = "Issues each collective as soon as its inputs are computed";
  let description = [{
    At the kernel level (after `trainopt-outline-kernels`), moves each
    `trainopt.all_reduce`, `trainopt.reduce_scatter` and
    `trainopt.all_gather` of an entry point up to just after the last
    definition of its inputs (or the collective before it). The artifact starts it there and waits for
    it just before the first command that reads a result, so the kernels
    in between (the rest of the backward, for a gradient bucket) run while
    it communicates. No collective passes another: MPI matches the
    collectives of a group in the order each rank starts them, and the
    stages of a pipeline run different programs whose collectives must
    still come in one order. Sends and receives stay where the pipeline
    schedule put them.

    Before: `%g = call @k7(...)`, `%h = call @k8(...)`, then
    `trainopt.all_reduce %g`. After: the all-reduce right after `@k7`.
  }];
}

#endif // TRAINOPT_CONVERSION_PASSES_TD
