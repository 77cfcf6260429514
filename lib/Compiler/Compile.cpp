//===- Compile.cpp - the compiler as a library ----------------------------===//
//
/// \file
/// The stages of `trainopt-compile`, without its flags and files.
//
//===----------------------------------------------------------------------===//

#include "trainopt/Compiler/Compile.h"

#include "trainopt/Artifact/artifact.pb.h"
#include "trainopt/Dialect/Trainopt/IR/TrainoptOps.h"
#include "trainopt/Dialect/Trainopt/Transforms/Distill.h"
#include "trainopt/Import/Graph/GraphImporter.h"
#include "trainopt/Runtime/OnnxExport.h"
#include "trainopt/Target/ArtifactPlan.h"

#include "mlir/Parser/Parser.h"
#include "mlir/Pass/PassManager.h"
#include "mlir/Pass/PassRegistry.h"
#include "llvm/ADT/StringSet.h"
#include "llvm/Support/MemoryBuffer.h"
#include "llvm/Support/Path.h"

using namespace mlir;
using namespace mlir::trainopt;

bool mlir::trainopt::isMLIRFile(StringRef path) {
  auto buffer = llvm::MemoryBuffer::getFileSlice(path, 4096, 0);
  if (!buffer) // short files: the slice fails past the end
    buffer = llvm::MemoryBuffer::getFile(path);
  if (!buffer)
    return false;
  StringRef text = (*buffer)->getBuffer().ltrim();
  for (StringRef start :
       {"module", "func.func", "trainopt.", "shard.", "//", "#", "\""})
    if (text.starts_with(start))
      return true;
  return false;
}

/// The model at `path`: a trainopt graph (graph.proto), a trainopt MLIR
/// module, or ONNX imported with `import`.
static OwningOpRef<ModuleOp> importModel(MLIRContext &context, StringRef path,
                                         const ONNXImportOptions &import) {
  if (isGraphFile(path)) {
    if (!import.frozen.empty() || !import.constantInputs.empty() ||
        !import.extraOutputs.empty()) {
      emitError(UnknownLoc::get(&context))
          << "--freeze, --const-input and --distill-feature apply to ONNX "
             "models; '"
          << path
          << "' is a trainopt graph (mark parameters trainable or "
             "not in the graph)";
      return nullptr;
    }
    GraphImportOptions options;
    options.batchSize = import.batchSize;
    return importGraph(&context, path, options);
  }
  if (!isMLIRFile(path))
    return importONNXModel(&context, path, import);
  // A trainopt module (from --emit=mlir, the Python frontend or a test).
  if (import.batchSize || !import.frozen.empty() ||
      !import.constantInputs.empty()) {
    emitError(UnknownLoc::get(&context))
        << "--batch-size, --freeze and --const-input apply to ONNX models; '"
        << path << "' is an MLIR module";
    return nullptr;
  }
  return parseSourceFile<ModuleOp>(path, &context);
}

/// The student and its teacher (--teacher) in one module: each imported
/// with the tensors that --distill-feature compares as extra results.
static OwningOpRef<ModuleOp> importWithTeacher(MLIRContext &context,
                                               const CompileOptions &options) {
  ONNXImportOptions student = options.import;
  ONNXImportOptions teacher;
  teacher.batchSize = options.import.batchSize;
  teacher.inference = true;
  for (const auto &[name, value] : options.training.values) {
    if (name != "distill-feature")
      continue;
    SmallVector<StringRef> specs;
    StringRef(value).split(specs, ',');
    for (StringRef spec : specs) {
      std::string t, s;
      if (!parseFeatureSpec(spec, t, s))
        continue; // trainopt-distill reports it
      teacher.extraOutputs.push_back(t);
      student.extraOutputs.push_back(s);
    }
  }
  OwningOpRef<ModuleOp> module =
      importModel(context, options.inputPath,
                  isMLIRFile(options.inputPath) ? options.import : student);
  if (!module)
    return nullptr;
  // Without --batch-size, a symbolic batch dim of the teacher's inputs
  // takes the student's.
  if (auto forward = module->lookupSymbol<func::FuncOp>("forward");
      forward && !teacher.batchSize)
    for (unsigned i = 0; i < forward.getNumArguments(); ++i) {
      auto t = dyn_cast<RankedTensorType>(forward.getArgument(i).getType());
      if (!forward.getArgAttr(i, TrainoptDialect::kParamAttrName) && t &&
          t.getRank() > 0) {
        teacher.batchSize = t.getDimSize(0);
        break;
      }
    }
  OwningOpRef<ModuleOp> teacherModule = importModel(
      context, options.teacherPath,
      isMLIRFile(options.teacherPath) ? ONNXImportOptions() : teacher);
  if (!teacherModule) {
    emitError(UnknownLoc::get(&context))
        << "--teacher=" << options.teacherPath
        << ": the teacher cannot be imported (above)"
        << (teacher.extraOutputs.empty()
                ? ""
                : "; --distill-feature names its tensors by their ONNX names");
    return nullptr;
  }
  if (failed(attachTeacher(*module, *teacherModule, options.teacherPath)))
    return nullptr;
  return module;
}

/// The bytes of a value of `type` (saturating at UINT64_MAX), or nullopt
/// for a type that is not a static tensor.
static std::optional<uint64_t> tensorBytes(Type type) {
  auto t = dyn_cast<RankedTensorType>(type);
  if (!t || !t.hasStaticShape() || !t.getElementType().isIntOrFloat())
    return std::nullopt;
  uint64_t bytes = (t.getElementType().getIntOrFloatBitWidth() + 7) / 8;
  for (int64_t d : t.getShape())
    if (__builtin_mul_overflow(bytes, static_cast<uint64_t>(d), &bytes))
      return UINT64_MAX;
  return bytes;
}

/// Refuses a model whose tensors (at the bound batch size) could not be
/// held: any one over 1 TiB, before a pass plans or allocates anything
/// (a batch of 2^40 used to run for a minute, then abort out of memory).
/// The message gives the largest tensor and what the forward pass's
/// values would take in all.
static LogicalResult checkTensorSizes(ModuleOp module,
                                      const CompileOptions &options) {
  constexpr uint64_t kLimit = uint64_t(1) << 40;
  auto forward = module.lookupSymbol<func::FuncOp>("forward");
  if (!forward)
    return success();
  uint64_t total = 0, largestBytes = 0;
  Value largest;
  auto visit = [&](Value v) {
    std::optional<uint64_t> bytes = tensorBytes(v.getType());
    if (!bytes)
      return;
    if (*bytes > largestBytes) {
      largest = v;
      largestBytes = *bytes;
    }
    if (__builtin_add_overflow(total, *bytes, &total))
      total = UINT64_MAX;
  };
  for (BlockArgument a : forward.getArguments())
    visit(a);
  forward.walk([&](Operation *op) {
    for (Value r : op->getResults())
      visit(r);
  });
  if (largestBytes <= kLimit)
    return success();
  auto bytesText = [](uint64_t b) {
    return b == UINT64_MAX ? std::string("over 2^64 bytes")
                           : std::to_string(b) + " bytes";
  };
  std::string where;
  llvm::raw_string_ostream os(where);
  if (auto arg = dyn_cast<BlockArgument>(largest)) {
    if (auto name = forward.getArgAttrOfType<StringAttr>(
            arg.getArgNumber(), TrainoptDialect::kInputAttrName))
      os << "input '" << name.getValue() << "'";
    else
      os << "argument " << arg.getArgNumber();
  } else
    os << "'" << largest.getDefiningOp()->getName() << "' at "
       << largest.getDefiningOp()->getLoc();
  InFlightDiagnostic d = emitError(UnknownLoc::get(module.getContext()));
  d << "the model's tensors are too large to plan";
  if (options.import.batchSize)
    d << " at --batch-size=" << *options.import.batchSize;
  d << ": " << where << " is " << largest.getType() << ", "
    << bytesText(largestBytes)
    << " (the limit is 1 TiB per tensor); the forward pass's values alone "
       "take "
    << bytesText(total);
  return failure();
}

OwningOpRef<ModuleOp>
mlir::trainopt::compileModule(MLIRContext &context,
                              const CompileOptions &options,
                              CompileStage stopAfter) {
  TimingScope untimed;
  TimingScope &timing = options.timing ? *options.timing : untimed;
  TimingScope importTime = timing.nest("import");
  OwningOpRef<ModuleOp> module =
      options.teacherPath.empty()
          ? importModel(context, options.inputPath, options.import)
          : importWithTeacher(context, options);
  importTime.stop();
  if (module && failed(checkTensorSizes(*module, options)))
    return nullptr;
  if (!module || stopAfter == CompileStage::Import)
    return module;
  PassManager training(&context, ModuleOp::getOperationName());
  std::string why;
  if (failed(buildTrainingPipeline(training, options.training,
                                   [&](const Twine &message) {
                                     why = message.str();
                                     return failure();
                                   }))) {
    emitError(UnknownLoc::get(&context)) << why;
    return nullptr;
  }
  if (options.probeValues &&
      failed(parsePassPipeline("inline,trainopt-probe-values", training))) {
    emitError(UnknownLoc::get(&context)) << "cannot build the probe pipeline";
    return nullptr;
  }
  TimingScope trainingTime = timing.nest("training passes");
  if (options.timing)
    training.enableTiming(trainingTime);
  if (failed(training.run(*module)))
    return nullptr;
  trainingTime.stop();
  if (stopAfter == CompileStage::Train)
    return module;
  PassManager backend(&context, ModuleOp::getOperationName());
  buildCPUKernelPipeline(backend); // the tensor-level pipeline of both targets
  TimingScope backendTime = timing.nest("kernel passes");
  if (options.timing)
    backend.enableTiming(backendTime);
  if (failed(backend.run(*module)))
    return nullptr;
  return module;
}

LogicalResult mlir::trainopt::compactPrunedChannels(
    MLIRContext &context, CompileOptions &options,
    const std::string &compactedPath, std::vector<std::string> &report) {
  auto fail = [&](const Twine &why) {
    emitError(UnknownLoc::get(&context)) << "--prune-compact: " << why;
    return failure();
  };
  std::string method, schedule = "oneshot";
  for (const auto &[name, value] : options.training.values) {
    if (name == "prune")
      method = value;
    else if (name == "prune-schedule")
      schedule = value;
    else if (name == "prune-iterative")
      return fail("removes the channels once, at compile time; "
                  "--prune-iterative prunes in rounds");
  }
  StringRef spec = method;
  double fraction = 0;
  if (!spec.consume_front("channel:l1:") || spec.getAsDouble(fraction))
    return fail("needs --prune=channel:l1:FRACTION (structured pruning), got "
                "--prune=" +
                (method.empty() ? std::string("off") : method));
  if (schedule != "oneshot" && schedule != "oneshot:0")
    return fail("needs the channels chosen at step 0 from the model's "
                "weights (--prune-schedule=oneshot), got --prune-schedule=" +
                schedule);
  if (isMLIRFile(options.inputPath) || isGraphFile(options.inputPath))
    return fail("applies to ONNX models; '" + options.inputPath + "' is " +
                (isMLIRFile(options.inputPath) ? "an MLIR module"
                                               : "a trainopt graph"));
  // The weights trainopt-prune prunes, as it chooses them.
  OwningOpRef<ModuleOp> module =
      compileModule(context, options, CompileStage::Train);
  if (!module)
    return failure();
  std::vector<std::string> weights;
  if (auto pruned =
          (*module)->getAttrOfType<ArrayAttr>(TrainoptDialect::kPruningAttrName))
    for (auto entry : pruned.getAsRange<DictionaryAttr>())
      weights.push_back(entry.getAs<StringAttr>("weight").str());
  auto buffer = llvm::MemoryBuffer::getFile(options.inputPath);
  if (!buffer)
    return fail("cannot read '" + options.inputPath + "'");
  std::string bytes, error;
  std::vector<std::string> compacted;
  if (!::trainopt::rt::pruneAndCompactChannels(
          (*buffer)->getBuffer().str(), weights, fraction, bytes, compacted,
          report, error))
    return fail("'" + options.inputPath + "': " + error);
  std::error_code ec;
  llvm::raw_fd_ostream out(compactedPath, ec);
  out << bytes;
  out.close();
  if (ec || out.has_error())
    return fail("cannot write the compacted model to '" + compactedPath + "'");
  options.inputPath = compactedPath;
  // The compacted weights need no masks: every channel left stays. The
  // others keep theirs.
  if (compacted.size() == weights.size()) {
    llvm::erase_if(options.training.values, [](const auto &v) {
      return StringRef(v.first).starts_with("prune");
    });
  } else if (!compacted.empty()) {
    std::string exclude;
    for (const std::string &w : compacted) {
      if (!exclude.empty())
        exclude += ",";
      for (char c : w) { // a glob that matches the name only
        if (StringRef("*?[]{}\\").contains(c))
          exclude += '\\';
        exclude += c;
      }
    }
    options.training.values.push_back({"prune-exclude", exclude});
  }
  return success();
}

/// The ONNX model as the artifact keeps it: parameter data removed (the
/// runtime holds the trained values), everything else as given. An MLIR
/// input has none (so `trainopt-run --export-onnx` says it cannot export).
static bool strippedModel(ModuleOp module, StringRef inputPath,
                          std::string &out) {
  if (isMLIRFile(inputPath) || isGraphFile(inputPath))
    return false;
  auto buffer = llvm::MemoryBuffer::getFile(inputPath);
  if (!buffer)
    return false;
  llvm::StringSet<> parameters;
  module.walk([&](ParameterOp p) { parameters.insert(p.getSymName()); });
  std::string error;
  return ::trainopt::rt::stripInitializerData(
      (*buffer)->getBuffer().str(), out, error,
      [&](const std::string &name) { return !parameters.contains(name); });
}

/// The training options that belong to mixed precision (its stage's own).
static bool isAmpOption(StringRef name) {
  return llvm::any_of(stage_options::assignPrecisionOptions(),
                      [&](const TrainingOption &o) { return o.name == name; });
}

/// Under --amp with `reportFp32Arena`: the arena of the same model planned
/// without mixed precision, beside the AMP arena in `report`.
static LogicalResult reportFp32Arena(ModuleOp module,
                                     const CompileOptions &options,
                                     llvm::json::Object &report) {
  bool amp = llvm::any_of(options.training.values, [](const auto &v) {
    return v.first == "amp" && v.second != "off";
  });
  if (!options.reportFp32Arena || !amp)
    return success();
  CompileOptions fp32 = options;
  fp32.timing = nullptr;
  fp32.probeValues = false;
  llvm::erase_if(fp32.training.values,
                 [](const auto &v) { return isAmpOption(v.first); });
  OwningOpRef<ModuleOp> plain =
      compileModule(*module.getContext(), fp32, CompileStage::Kernels);
  if (!plain)
    return failure();
  ::trainopt::artifact::Artifact scratch;
  llvm::json::Object plainReport;
  if (failed(emitArtifactPlan(*plain, options.target, options.target, scratch,
                              plainReport)))
    return failure();
  report["fp32_arena_bytes"] = *plainReport.getInteger("arena_bytes");
  return success();
}

LogicalResult mlir::trainopt::buildArtifact(ModuleOp module,
                                            const CompileOptions &options,
                                            ::trainopt::artifact::Artifact &artifact,
                                            llvm::json::Object &report) {
  artifact.set_producer("trainopt-compile 0.1");
  artifact.set_model_name(llvm::sys::path::stem(options.inputPath).str());
  TimingScope untimed;
  TimingScope artifactTime =
      (options.timing ? *options.timing : untimed).nest("artifact");
  if (options.target == "cuda") {
    if (failed(emitCUDAArtifact(module, options.cuda, artifact, report)))
      return failure();
  } else {
    if (failed(emitCPUArtifact(module, options.cpu, artifact, report,
                               artifactTime)))
      return failure();
    report["cpu"] =
        options.cpu.cpu.empty() ? std::string("host") : options.cpu.cpu;
  }
  if (failed(reportFp32Arena(module, options, report)))
    return failure();
  for (const auto &entry : artifact.entry_points())
    for (const auto &v : entry.arguments())
      if (v.kind() == ::trainopt::artifact::Value::INPUT &&
          v.type().shape_size())
        artifact.set_batch_size(v.type().shape(0));
  std::string onnx;
  if (strippedModel(module, options.inputPath, onnx))
    artifact.set_onnx_model(std::move(onnx));
  if (auto points = module->getAttrOfType<ArrayAttr>(
          TrainoptDialect::kQuantizationAttrName))
    for (auto point : points.getAsRange<DictionaryAttr>()) {
      ::trainopt::artifact::QuantizedTensor *q =
          artifact.add_quantized_tensors();
      q->set_point(point.getAs<StringAttr>("point").str());
      q->set_weight(point.getAs<StringAttr>("weight").str());
      q->set_input(point.getAs<BoolAttr>("input").getValue());
      q->set_output(point.getAs<BoolAttr>("output").getValue());
      q->set_axis(point.getAs<IntegerAttr>("axis").getInt());
      q->set_quant_min(point.getAs<IntegerAttr>("quant_min").getInt());
      q->set_quant_max(point.getAs<IntegerAttr>("quant_max").getInt());
      q->set_symmetric(point.getAs<BoolAttr>("symmetric").getValue());
    }
  if (auto pruned = module->getAttrOfType<ArrayAttr>(
          TrainoptDialect::kPruningAttrName)) {
    llvm::json::Array layers;
    for (auto entry : pruned.getAsRange<DictionaryAttr>()) {
      ::trainopt::artifact::PrunedTensor *p = artifact.add_pruned_tensors();
      p->set_weight(entry.getAs<StringAttr>("weight").str());
      p->set_mask(entry.getAs<StringAttr>("mask").str());
      p->set_method(entry.getAs<StringAttr>("method").str());
      p->set_sparsity(entry.getAs<FloatAttr>("sparsity").getValueAsDouble());
      auto param = module.lookupSymbol<ParameterOp>(p->weight());
      layers.push_back(llvm::json::Object{
          {"weight", p->weight()},
          {"method", p->method()},
          {"sparsity", p->sparsity()},
          {"elements", param ? cast<RankedTensorType>(param.getType()).getNumElements() : 0}});
    }
    report["pruning"] = std::move(layers);
  }
  if (auto factored =
          module->getAttrOfType<ArrayAttr>(TrainoptDialect::kLowRankAttrName)) {
    llvm::json::Array layers;
    for (auto entry : factored.getAsRange<DictionaryAttr>()) {
      std::string weight = entry.getAs<StringAttr>("weight").str();
      std::string kind = entry.getAs<StringAttr>("kind").str();
      int64_t rank = entry.getAs<IntegerAttr>("rank").getInt();
      bool done = entry.getAs<BoolAttr>("factored").getValue();
      if (done) {
        ::trainopt::artifact::LowRankTensor *t =
            artifact.add_low_rank_tensors();
        t->set_weight(weight);
        t->set_u(weight + ".u");
        t->set_v(weight + ".v");
        t->set_kind(kind);
        t->set_rank(rank);
      }
      llvm::json::Object layer{{"weight", weight},
                               {"kind", kind},
                               {"rank", rank},
                               {"factored", done}};
      for (const char *key :
           {"params_before", "params_after", "flops_before", "flops_after"})
        layer[key] = entry.getAs<IntegerAttr>(key).getInt();
      layers.push_back(std::move(layer));
    }
    report["low_rank"] = std::move(layers);
  }
  if (auto shared = module->getAttrOfType<ArrayAttr>(
          TrainoptDialect::kWeightSharingAttrName))
    for (auto entry : shared.getAsRange<DictionaryAttr>()) {
      ::trainopt::artifact::SharedTensor *t = artifact.add_shared_tensors();
      t->set_weight(entry.getAs<StringAttr>("weight").str());
      t->set_codebook(entry.getAs<StringAttr>("codebook").str());
      t->set_codes(t->weight() + ".codes");
    }
  if (auto logs = module->getAttrOfType<ArrayAttr>(
          TrainoptDialect::kLogQuantizationAttrName)) {
    llvm::json::Array weights;
    for (auto entry : logs.getAsRange<DictionaryAttr>()) {
      ::trainopt::artifact::LogQuantizedTensor *t =
          artifact.add_log_quantized_tensors();
      t->set_weight(entry.getAs<StringAttr>("weight").str());
      t->set_latent(entry.getAs<StringAttr>("latent").str());
      t->set_bits(entry.getAs<IntegerAttr>("bits").getInt());
      t->set_axis(entry.getAs<IntegerAttr>("axis").getInt());
    }
    for (auto entry : logs.getAsRange<DictionaryAttr>())
      weights.push_back(llvm::json::Object{
          {"weight", entry.getAs<StringAttr>("weight").str()},
          {"latent", entry.getAs<StringAttr>("latent").str()},
          {"bits", entry.getAs<IntegerAttr>("bits").getInt()},
          {"axis", entry.getAs<IntegerAttr>("axis").getInt()}});
    report["log_quantization"] = std::move(weights);
  }
  if (auto distilled = module->getAttrOfType<DictionaryAttr>(
          TrainoptDialect::kDistillationAttrName)) {
    llvm::json::Object d{
        {"teacher_elements",
         distilled.getAs<IntegerAttr>("teacher_elements").getInt()}};
    if (auto t = distilled.getAs<FloatAttr>("temperature"))
      d["temperature"] = t.getValueAsDouble();
    if (auto a = distilled.getAs<FloatAttr>("alpha"))
      d["alpha"] = a.getValueAsDouble();
    llvm::json::Array features;
    for (auto f :
         distilled.getAs<ArrayAttr>("features").getAsRange<DictionaryAttr>())
      features.push_back(llvm::json::Object{
          {"teacher", f.getAs<StringAttr>("teacher").str()},
          {"student", f.getAs<StringAttr>("student").str()},
          {"projection", f.getAs<StringAttr>("projection").str()}});
    d["features"] = std::move(features);
    report["distillation"] = std::move(d);
  }
  report["model"] = artifact.model_name();
  report["batch_size"] = artifact.batch_size();
  std::string reportJson;
  llvm::raw_string_ostream(reportJson)
      << llvm::json::Value(llvm::json::Object(report));
  artifact.set_report_json(reportJson);
  return success();
}

int64_t mlir::trainopt::pipelineStages(const CompileOptions &options) {
  int64_t stages = 1;
  for (const auto &[name, value] : options.training.values) {
    if (name != "mesh")
      continue;
    SmallVector<StringRef> axes;
    StringRef(value).split(axes, ',');
    for (StringRef axis : axes) {
      auto [key, size] = axis.trim().split('=');
      int64_t n = 0;
      if (key.trim() == "pp" && !size.trim().getAsInteger(10, n) && n > 0)
        stages = n;
    }
  }
  return stages;
}

LogicalResult mlir::trainopt::buildPipelineArtifact(
    MLIRContext &context, const CompileOptions &options,
    ::trainopt::artifact::Artifact &artifact, llvm::json::Object &report) {
  int64_t stages = pipelineStages(options);
  llvm::json::Array stageReports;
  for (int64_t s = 0; s < stages; ++s) {
    CompileOptions stage = options;
    llvm::erase_if(stage.training.values,
                   [](const auto &v) { return v.first == "pipeline-stage"; });
    stage.training.values.push_back({"pipeline-stage", std::to_string(s)});
    OwningOpRef<ModuleOp> module =
        compileModule(context, stage, CompileStage::Kernels);
    if (!module)
      return failure();
    ::trainopt::artifact::Artifact program;
    llvm::json::Object stageReport;
    if (failed(buildArtifact(*module, stage, program, stageReport)))
      return failure();
    if (s == 0) {
      artifact.set_producer(program.producer());
      artifact.set_model_name(program.model_name());
      artifact.set_target(program.target());
      artifact.set_batch_size(program.batch_size());
      *artifact.mutable_mesh() = program.mesh();
      artifact.set_onnx_model(program.onnx_model());
    }
    // The bundle keeps the one copy of the ONNX model.
    program.clear_onnx_model();
    artifact.add_pipeline_stages(program.SerializeAsString());
    stageReport["pipeline_stage"] = s;
    stageReports.push_back(std::move(stageReport));
  }
  report["model"] = artifact.model_name();
  report["batch_size"] = artifact.batch_size();
  report["stages"] = std::move(stageReports);
  std::string reportJson;
  llvm::raw_string_ostream(reportJson)
      << llvm::json::Value(llvm::json::Object(report));
  artifact.set_report_json(reportJson);
  return success();
}
