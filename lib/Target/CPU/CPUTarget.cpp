//===- CPUTarget.cpp - the CPU backend ------------------------------------===//
//
/// \file
/// The kernel pipeline (shared with the CUDA target) and the CPU artifact:
/// the target-independent plan (ArtifactPlan.h) with `cpu.*` library calls,
/// plus the kernels compiled into one shared object (KernelCodegen.cpp),
/// whose row-range kernels the launches mark for splitting over threads.
//
//===----------------------------------------------------------------------===//

#include "trainopt/Target/CPU/CPUTarget.h"

#include "KernelCodegen.h"

#include "trainopt/Artifact/artifact.pb.h"
#include "trainopt/Conversion/Passes.h"
#include "trainopt/Target/ArtifactPlan.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/Pass/PassManager.h"
#include "mlir/Pass/PassRegistry.h"
#include "mlir/Transforms/Passes.h"

using namespace mlir;
using namespace mlir::trainopt;
namespace art = ::trainopt::artifact;

void mlir::trainopt::buildCPUKernelPipeline(OpPassManager &pm) {
  pm.addPass(createInlinerPass());
  pm.addPass(createTrainoptDropUncalledFunctions());
  // Per function, so @train_step and @eval_step are lowered side by side.
  OpPassManager &perFunction = pm.nest<func::FuncOp>();
  perFunction.addPass(createTrainoptConvertToLinalg());
  perFunction.addPass(createCanonicalizerPass());
  // Before fusion, while the forward's and the VJPs' identical ops are
  // still separate kernels: BatchNorm's and LayerNorm's backward get the
  // forward's statistics this way (TensorBuilder::moments).
  perFunction.addPass(createCSEPass());
  perFunction.addPass(createTrainoptFuseElementwise());
  perFunction.addPass(createCanonicalizerPass());
  perFunction.addPass(createCSEPass());
  pm.addPass(createTrainoptOutlineKernels());
  pm.addPass(createTrainoptScheduleCollectives());
  pm.addPass(createSymbolDCEPass());
}

void mlir::trainopt::registerCPUPipelines() {
  PassPipelineRegistration<>(
      "trainopt-cpu-kernel-pipeline",
      "Inline, drop uncalled functions, lower trainopt to linalg, fuse "
      "elementwise chains (per function), outline kernels and "
      "start collectives early (the tensor-level part of --target=cpu)",
      [](OpPassManager &pm) { buildCPUKernelPipeline(pm); });
}

LogicalResult mlir::trainopt::emitCPUArtifact(ModuleOp module,
                                              const CPUTargetOptions &options,
                                              art::Artifact &artifact,
                                              llvm::json::Object &report,
                                              TimingScope &timing) {
  TimingScope planTime = timing.nest("memory plan and commands");
  FailureOr<SmallVector<func::FuncOp>> kernels =
      emitArtifactPlan(module, "cpu", "cpu", artifact, report);
  planTime.stop();
  if (failed(kernels))
    return failure();
  TimingScope codegenTime = timing.nest("kernel code generation");
  FailureOr<CompiledKernels> compiled =
      compileKernels(module, *kernels, options, codegenTime);
  if (failed(compiled))
    return failure();
  int64_t rowSplit = 0;
  for (art::EntryPoint &ep : *artifact.mutable_entry_points())
    for (art::Command &c : *ep.mutable_commands()) {
      if (!c.has_launch())
        continue;
      auto it = compiled->parallel.find(c.launch().kernel());
      if (it == compiled->parallel.end())
        continue;
      c.mutable_launch()->set_parallel_rows(it->second.rows);
      c.mutable_launch()->set_work(it->second.work);
      ++rowSplit;
    }
  art::KernelBinary *binary = artifact.add_kernels();
  binary->set_name("cpu");
  binary->set_format(art::KernelBinary::CPU_SHARED_OBJECT);
  binary->set_target(options.cpu.empty() ? "host" : options.cpu);
  binary->set_binary(std::move(compiled->object));
  report["row_split_launches"] = rowSplit;
  report["kernel_groups"] = compiled->groups;
  report["kernel_object_bytes"] =
      static_cast<int64_t>(binary->binary().size());
  return success();
}
