//===- TrainoptDialect.td - trainopt dialect definition ----*- tablegen -*-===//
//
// The trainopt dialect: value-semantics tensor ops for training programs.
//
//===----------------------------------------------------------------------===//

#ifndef TRAINOPT_DIALECT_TRAINOPT_IR_TRAINOPTDIALECT_TD
#define TRAINOPT_DIALECT_TRAINOPT_IR_TRAINOPTDIALECT_TD

include "mlir/IR/OpBase.td"
include "mlir/IR/AttrTypeBase.td"

def Trainopt_Dialect : Dialect {
  let name = "trainopt";
  let cppNamespace = "::mlir::trainopt";
  let summary = "High-level tensor ops for compiling neural-network training";
  let description = [{
    The `trainopt` dialect holds whole training programs at the level of
    neural-network operators: the imported forward function, the loss, and
    (after the training passes) the backward pass and optimizer update.

    Ops have value semantics on ranked, statically shaped tensors of `f64`,
    `f32`, `f16`, `bf16`, `i64`, `i32`, `i8` or `i1`. The batch size is fixed
    at compile time. Broadcasting follows NumPy (and ONNX multidirectional
    broadcasting). Parameters of a model are arguments of `@forward` that
    carry a `trainopt.param` attribute naming a `trainopt.parameter`
    declaration, which holds the shape, the initial value and whether the
    parameter is trained or frozen; data inputs carry `trainopt.input` and
    results `trainopt.output`.

    ```mlir
    trainopt.parameter @fc.weight trainable : tensor<10x784xf32>
    func.func @forward(%w: tensor<10x784xf32> {trainopt.param = @fc.weight},
                       %x: tensor<32x784xf32> {trainopt.input = "x"})
        -> (tensor<32x10xf32> {trainopt.output = "logits"}) {
      %y = trainopt.matmul %x, %w {transpose_rhs = true}
          : (tensor<32x784xf32>, tensor<10x784xf32>) -> tensor<32x10xf32>
      return %y : tensor<32x10xf32>
    }
    ```
  }];
  let hasConstantMaterializer = 1;
  let useDefaultAttributePrinterParser = 1;
  let hasRegionArgAttrVerify = 1;
  let hasRegionResultAttrVerify = 1;
  let extraClassDeclaration = [{
    /// Argument attribute naming the `trainopt.parameter` an argument binds.
    static constexpr ::llvm::StringLiteral kParamAttrName = "trainopt.param";
    /// Argument attribute naming a data input (ONNX graph input).
    static constexpr ::llvm::StringLiteral kInputAttrName = "trainopt.input";
    /// Result attribute naming a model output.
    static constexpr ::llvm::StringLiteral kOutputAttrName = "trainopt.output";
    /// Result attribute of a gradient: the parameter symbol or the argument
    /// index it is the gradient of.
    static constexpr ::llvm::StringLiteral kGradOfAttrName = "trainopt.grad_of";
    /// Argument attribute of training state: "step" or an optimizer slot
    /// ("momentum_buffer", "exp_avg", "exp_avg_sq", "sum", "square_avg").
    static constexpr ::llvm::StringLiteral kStateAttrName = "trainopt.state";
    /// Argument attribute of a state argument: its initial value (dense,
    /// of the argument's type); state without one starts at zero.
    static constexpr ::llvm::StringLiteral kInitAttrName = "trainopt.init";
    /// Function attribute of the model function and @train_step: the loss
    /// scaling configuration (trainopt-assign-precision), a dictionary
    /// {init, dynamic, growth_interval, growth_factor, backoff_factor}.
    static constexpr ::llvm::StringLiteral kLossScaleAttrName =
        "trainopt.loss_scale";
    /// Argument attribute: the parameter an optimizer slot belongs to.
    static constexpr ::llvm::StringLiteral kStateOfAttrName = "trainopt.state_of";
    /// Result attribute: the argument index this result replaces in place.
    static constexpr ::llvm::StringLiteral kUpdatesAttrName = "trainopt.updates";
    /// Argument and result attribute: the value's role (`#trainopt<role
    /// labels>`, ...), which the artifact maps to its value kind. Values
    /// without one are inputs (arguments) or outputs (results); names never
    /// decide a role.
    static constexpr ::llvm::StringLiteral kRoleAttrName = "trainopt.role";
    /// Attribute of the `shard.grid` a sharded program runs on: its axis
    /// names (`["dp", "tp"]`), one per dimension of the grid's shape.
    static constexpr ::llvm::StringLiteral kAxesAttrName = "trainopt.axes";
    /// Function attribute of a partitioned entry point: the grid symbol.
    static constexpr ::llvm::StringLiteral kMeshAttrName = "trainopt.mesh";
    /// Module attribute of a model trainopt-quantize rewrote: the tensors
    /// it fake-quantizes, one dictionary each (point, weight, input, axis,
    /// quant_min, quant_max, symmetric), for the QDQ export.
    static constexpr ::llvm::StringLiteral kQuantizationAttrName =
        "trainopt.quantization";
    /// Module attribute of a model trainopt-low-rank factored: one
    /// dictionary per weight considered (weight, rank, factored, kind,
    /// params_before/after, flops_before/after).
    static constexpr ::llvm::StringLiteral kLowRankAttrName =
        "trainopt.low_rank";
    /// Module attribute of a model trainopt-quantize shared the weights of
    /// (`kmeans:K`): one dictionary each (weight, codebook, clusters).
    static constexpr ::llvm::StringLiteral kWeightSharingAttrName =
        "trainopt.weight_sharing";
    /// Module attribute of a model trainopt-quantize quantized to
    /// power-of-two levels (`log:BITS`): one dictionary each (weight,
    /// latent, bits, axis).
    static constexpr ::llvm::StringLiteral kLogQuantizationAttrName =
        "trainopt.log_quantization";
    /// Module attribute of a model trainopt-prune rewrote: its pruned
    /// weights, one dictionary each (weight, mask, method, sparsity), for
    /// the runtime's sparsity report and the export's folding of masks.
    static constexpr ::llvm::StringLiteral kPruningAttrName =
        "trainopt.pruning";
    /// Argument and result attribute of a partitioned entry point: how the
    /// global value is split over the grid, `"dp:0"` (dim 0 over axis dp),
    /// `"dp:flat"` (flattened, zero-padded to a multiple of the axis size
    /// and split evenly: ZeRO's shards), `"dp:mean"` (each rank holds its
    /// own value and the whole is their mean: accumulated gradients before
    /// they are combined), or `""` / absent for replicated
    /// (docs/distributed.md).
    static constexpr ::llvm::StringLiteral kShardingAttrName =
        "trainopt.sharding";
    /// Pipeline parallelism (trainopt-split-pipeline): on a stage's model
    /// function, argument attribute "in" (the activation the previous
    /// stage sends) or "cot" (the cotangent of "out" the next stage sends
    /// back), result attribute "out" (the activation this stage sends);
    /// on @train_step and @eval_step, a dictionary {stage, stages,
    /// micro_batches}.
    static constexpr ::llvm::StringLiteral kPipelineAttrName =
        "trainopt.pipeline";
    /// Result attribute: an intermediate tensor the importer returns for a
    /// pass to compare (`--distill-feature`), not an output of the model;
    /// trainopt-distill removes the result.
    static constexpr ::llvm::StringLiteral kFeatureAttrName =
        "trainopt.feature";
    /// Function attribute of a distillation teacher's model function
    /// (`--teacher`), which trainopt-distill inlines into the student's.
    static constexpr ::llvm::StringLiteral kTeacherAttrName =
        "trainopt.teacher";
    /// Function attribute of the model function: the name of the metric
    /// result that @eval_step reports as its loss instead of the training
    /// loss (trainopt-distill: the task loss, without the teacher's terms).
    static constexpr ::llvm::StringLiteral kEvalLossAttrName =
        "trainopt.eval_loss";
    /// Module attribute of a model trainopt-distill gave a teacher: a
    /// dictionary {teacher_elements, temperature, alpha, features} for the
    /// report.
    static constexpr ::llvm::StringLiteral kDistillationAttrName =
        "trainopt.distillation";
    /// Argument attribute of a `flat`-sharded value: its global type.
    static constexpr ::llvm::StringLiteral kGlobalTypeAttrName =
        "trainopt.global_type";
  }];
}

//===----------------------------------------------------------------------===//
// Type constraints
//===----------------------------------------------------------------------===//

def Trainopt_AnyElement : AnyTypeOf<[F64, F32, F16, BF16, I64, I32, I8, I1]>;
def Trainopt_FloatElement : AnyTypeOf<[F64, F32, F16, BF16]>;
def Trainopt_IndexElement : AnyTypeOf<[I64, I32]>;

def Trainopt_Tensor : StaticShapeTensorOf<[F64, F32, F16, BF16, I64, I32, I8, I1]>;
def Trainopt_FloatTensor : StaticShapeTensorOf<[F64, F32, F16, BF16]>;
def Trainopt_NumericTensor : StaticShapeTensorOf<[F64, F32, F16, BF16, I64, I32, I8]>;
def Trainopt_SignedTensor : StaticShapeTensorOf<[F64, F32, F16, BF16, I64, I32, I8]>;
def Trainopt_IndexTensor : StaticShapeTensorOf<[I64, I32]>;
def Trainopt_BoolTensor : StaticShapeTensorOf<[I1]>;
def Trainopt_SeedTensor : 0DTensorOf<[I64]>;
def Trainopt_ScalarFloatTensor : 0DTensorOf<[F64, F32, F16, BF16]>;

//===----------------------------------------------------------------------===//
// Base op class
//===----------------------------------------------------------------------===//

class Trainopt_Op<string mnemonic, list<Trait> traits = []>
    : Op<Trainopt_Dialect, mnemonic, traits>;

#endif // TRAINOPT_DIALECT_TRAINOPT_IR_TRAINOPTDIALECT_TD
