//===- Driver.cpp - the trainopt-compile command line as a library --------===//
//
/// \file
/// `trainopt-compile MODEL -o OUT [--emit=...] [--target=cpu]`: imports an
/// ONNX model, a trainopt graph or MLIR module, runs the training passes and
/// the backend, and writes what `--emit` asks for: the imported module, the
/// training module, the kernel module, a `.trainopt` artifact, or a
/// standalone training executable. The tool's main and the C API
/// (trainopt_compile, used by the Python package) both call
/// runCompileDriver, so every flag means the same in both.
//
//===----------------------------------------------------------------------===//

#include "trainopt/Compiler/Driver.h"

#include "trainopt/Artifact/ArtifactFile.h"
#include "trainopt/Artifact/artifact.pb.h"
#include "trainopt/Compiler/Compile.h"
#include "trainopt/Dialect/Trainopt/IR/TrainoptOps.h"
#include "trainopt/Dialect/Trainopt/Transforms/TrainingPipeline.h"
#include "trainopt/Import/ONNX/ONNXImporter.h"
#include "trainopt/InitAllDialects.h"
#include "trainopt/InitAllPasses.h"
#include "trainopt/Runtime/OnnxExport.h"
#include "trainopt/Support/Files.h"
#include "trainopt/Target/ArtifactPlan.h"
#include "trainopt/Target/CPU/CPUTarget.h"
#include "trainopt/Target/CUDA/CUDATarget.h"

#include "mlir/IR/AsmState.h"
#include "mlir/IR/Diagnostics.h"
#include "mlir/IR/MLIRContext.h"
#include "mlir/Parser/Parser.h"
#include "mlir/Pass/PassManager.h"
#include "mlir/Pass/PassRegistry.h"
#include "mlir/Support/FileUtilities.h"
#include "mlir/Support/Timing.h"
#include "llvm/ADT/ScopeExit.h"
#include "llvm/ADT/StringExtras.h"
#include "llvm/ADT/StringSet.h"
#include "llvm/Support/CommandLine.h"
#include "llvm/Support/FileSystem.h"
#include "llvm/Support/JSON.h"
#include "llvm/Support/MemoryBuffer.h"
#include "llvm/Support/Path.h"
#include "llvm/Support/Program.h"
#include "llvm/Support/ToolOutputFile.h"
#include "llvm/Support/WithColor.h"

#include <map>

using namespace llvm;

static cl::OptionCategory category("trainopt-compile options");

static cl::opt<std::string> inputPath(cl::Positional,
                                      cl::desc("<model.onnx | model.mlir>"),
                                      cl::cat(category));
static cl::opt<std::string> outputPath("o",
                                       cl::desc("Output file ('-' for stdout)"),
                                       cl::value_desc("file"),
                                       cl::cat(category));
static cl::opt<bool> listONNXOps(
    "list-onnx-ops",
    cl::desc("Print the supported ONNX ops as 'OP_TYPE SINCE_VERSION' lines "
             "and exit"),
    cl::init(false), cl::cat(category));
static cl::opt<bool> listTrainingFlags(
    "list-training-flags",
    cl::desc("Print every training flag as 'NAME<TAB>STAGE PASS<TAB>HELP' "
             "lines and exit"),
    cl::init(false), cl::cat(category));
static cl::opt<std::string>
    emit("emit",
         cl::desc("What to write: 'mlir' stops after import, 'train-mlir' "
                  "after the training passes (@train_step, @eval_step), "
                  "'kernel-mlir' after fusion and kernel outlining, "
                  "'artifact' a .trainopt file, 'exe' a standalone training "
                  "executable, 'ptx' (--target=cuda) the kernels' PTX "
                  "(default: 'artifact' when -o ends in .trainopt, else "
                  "'mlir')"),
         cl::init("mlir"), cl::cat(category));
static cl::opt<std::string> target("target",
                                   cl::desc("Backend: cpu (default) or cuda"),
                                   cl::init("cpu"), cl::cat(category));
static cl::opt<std::string>
    report("report",
           cl::desc("Print what the compiler decided (parameters, FLOPs per "
                    "step, kernels, arena size against its lower bound); "
                    "--report=FILE.json writes it as JSON"),
           cl::ValueOptional, cl::value_desc("file.json"), cl::cat(category));
static cl::opt<std::string>
    cpuName("cpu",
            cl::desc("LLVM CPU the kernels are compiled for (default: this "
                     "machine's, e.g. x86-64-v3 for a portable AVX2 build)"),
            cl::init(""), cl::cat(category));
static cl::opt<std::string>
    cudaArch("cuda-arch",
             cl::desc("GPU architecture of --target=cuda (default sm_90)"),
             cl::init("sm_90"), cl::value_desc("sm_XY"), cl::cat(category));
static cl::opt<std::string>
    cudaPath("cuda-path",
             cl::desc("CUDA toolkit for --target=cuda (libdevice); default "
                      "/usr/local/cuda"),
             cl::init("/usr/local/cuda"), cl::value_desc("dir"),
             cl::cat(category));
static cl::opt<std::string> keepIntermediates(
    "keep-intermediates",
    cl::desc("Directory to keep the kernel module and LLVM IR in"),
    cl::init(""), cl::value_desc("dir"), cl::cat(category));

namespace {
/// A training flag: an option of a training stage (trainingOptions()), with
/// the stage's name and help, forwarded to the pipeline as name=value.
struct StageFlag {
  const mlir::trainopt::TrainingOption *option;
  std::unique_ptr<cl::opt<std::string>> opt;
  /// Every value given, in order (cl::opt keeps only the last): a list
  /// flag given twice takes both lists, any other flag given twice is an
  /// error rather than a silent last-wins.
  std::unique_ptr<std::vector<std::string>> given =
      std::make_unique<std::vector<std::string>>();
};
} // namespace

/// The training flags, one per stage option (docs/cli.md lists them).
static std::vector<StageFlag> &trainingFlags() {
  static std::vector<StageFlag> flags = [] {
    std::vector<StageFlag> f;
    for (const mlir::trainopt::TrainingOption &o :
         mlir::trainopt::trainingOptions()) {
      f.push_back({&o, std::make_unique<cl::opt<std::string>>(
                           StringRef(o.name), cl::desc(o.help),
                           cl::value_desc(o.isList ? "a,b,..." : "value"),
                           cl::cat(category))});
      // A boolean alone (--nesterov) is true; it must not take the next
      // argument as its value.
      if (o.isFlag)
        f.back().opt->setValueExpectedFlag(cl::ValueOptional);
      f.back().opt->setCallback(
          [given = f.back().given.get()](const std::string &v) {
            given->push_back(v);
          });
    }
    return f;
  }();
  return flags;
}
static cl::opt<int64_t>
    batchSize("batch-size",
              cl::desc("Binds a symbolic batch dim (dim 0) of every input"),
              cl::init(0), cl::cat(category));
static cl::list<std::string>
    freeze("freeze",
           cl::desc("Comma-separated initializers that stay frozen "
                    "(not trained)"),
           cl::CommaSeparated, cl::cat(category));
static cl::list<std::string> constInputs(
    "const-input",
    cl::desc("NAME=FILE.pb binds graph input NAME to the serialized "
             "TensorProto in FILE.pb (repeatable)"),
    cl::cat(category));
static cl::opt<std::string> teacher(
    "teacher",
    cl::desc("Knowledge distillation: the teacher model (ONNX, or a trainopt "
             "MLIR module), run frozen in the training step; with --distill "
             "and/or --distill-feature"),
    cl::init(""), cl::cat(category));
static cl::opt<bool> pruneCompact(
    "prune-compact",
    cl::desc("With --prune=channel:l1:F at step 0 (--prune-schedule=oneshot): "
             "remove the pruned filters and neurons from the model before "
             "training, so the compiled step computes the smaller model"),
    cl::init(false), cl::cat(category));
/// What --prune-compact removed, a line per weight (for --report).
static std::vector<std::string> compactionReport;
static cl::opt<int64_t> kernelGroupOps(
    "kernel-group-ops",
    cl::desc("CPU: compile the kernels in groups of at least this many "
             "operations, side by side on the machine's threads (tuning and "
             "tests)"),
    cl::init(1500), cl::Hidden, cl::cat(category));

static cl::opt<int64_t>
    worldSize("world-size",
              cl::desc("With --mesh=auto: the number of processes to plan for"),
              cl::init(0), cl::cat(category));
static cl::opt<std::string> memoryBudget(
    "memory-budget",
    cl::desc("With --mesh=auto: the most memory a rank may use (bytes, or "
             "with a KiB, MiB or GiB suffix)"),
    cl::init(""), cl::cat(category));

static cl::opt<bool> timeReport(
    "time-report",
    cl::desc("Print the time of each compiler stage and pass to stderr "
             "(wall and user seconds, as a tree)"),
    cl::init(false), cl::cat(category));

static cl::opt<bool> probeValues(
    "probe-values",
    cl::desc("Also return every intermediate value of @train_step, named "
             "probe.K:OP:OPERANDS:NODE (trainopt-probe-values; for "
             "scripts/difftest.py)"),
    cl::init(false), cl::cat(category));
static cl::opt<bool> elideWeights(
    "elide-weights",
    cl::desc("Print parameter values as '...' (smaller, not re-parsable)"),
    cl::init(false), cl::cat(category));

/// Where errors, warnings and notes go, and where trainopt-run is
/// (runCompileDriver sets them for each call).
static raw_ostream *diagnosticStream = &errs();
static std::string runnerPath;
static raw_ostream &diagnosticOut() { return *diagnosticStream; }

static int fail(const Twine &message) {
  WithColor::error(diagnosticOut(), "trainopt-compile") << message << "\n";
  return 1;
}

static void printReport(const json::Object &r) {
  // A pipeline: each stage's program in turn.
  if (const json::Array *stages = r.getArray("stages")) {
    for (const json::Value &stage : *stages) {
      const json::Object &s = *stage.getAsObject();
      outs() << formatv("== pipeline stage {0} of {1} ==\n",
                        s.getInteger("pipeline_stage").value_or(0),
                        stages->size());
      printReport(s);
    }
    return;
  }
  auto num = [&](StringRef key) {
    if (auto v = r.getNumber(key))
      return *v;
    if (auto v = r.getInteger(key))
      return double(*v);
    return 0.0;
  };
  auto mib = [](double bytes) { return bytes / (1024.0 * 1024.0); };
  if (r.getString("target").value_or("cpu") == "cuda")
    outs() << formatv("target:               cuda ({0}; {1} GPU launches, "
                      "{2} bytes of PTX, {3} bytes of cubin)\n",
                      r.getString("cuda_arch").value_or("?"),
                      int64_t(num("gpu_launches")), int64_t(num("ptx_bytes")),
                      int64_t(num("cubin_bytes")));
  else
    outs() << formatv("target:               cpu ({0})\n",
                      r.getString("cpu").value_or("host"));
  outs() << formatv("parameters:           {0} ({1} trainable)\n",
                    int64_t(num("parameters")),
                    int64_t(num("trainable_parameters")));
  outs() << formatv("FLOPs per train step: {0:e3}\n", num("flops_per_step"));
  std::string split =
      r.getString("target").value_or("cpu") == "cuda"
          ? std::string()
          : formatv(" ({0} split by rows over threads; compiled {1})",
                    int64_t(num("row_split_launches")),
                    num("kernel_groups") > 1
                        ? formatv("in {0} groups side by side",
                                  int64_t(num("kernel_groups")))
                              .str()
                        : std::string("as one group"))
                .str();
  outs() << formatv("kernels:              {0} generated, {1} launches{2}, "
                    "{3} library calls, {4} copies\n",
                    int64_t(num("kernels")), int64_t(num("kernel_launches")),
                    split, int64_t(num("library_calls")),
                    int64_t(num("copies")));
  outs() << formatv("memory reuse:         {0} results in place, {1} "
                    "updates donated\n",
                    int64_t(num("in_place_results")),
                    int64_t(num("donated_updates")));
  outs() << formatv("arena:                {0:f3} MiB (lower bound {1:f3} "
                    "MiB; persistent {2:f3} MiB, scratch {3:f3} MiB vs "
                    "max-live {4:f3} MiB)\n",
                    mib(num("arena_bytes")),
                    mib(num("arena_lower_bound_bytes")),
                    mib(num("persistent_bytes")), mib(num("scratch_bytes")),
                    mib(num("scratch_lower_bound_bytes")));
  if (const json::Array *factored = r.getArray("low_rank")) {
    int64_t done = 0, params[2] = {0, 0}, flops[2] = {0, 0};
    for (const json::Value &v : *factored)
      if (const json::Object *l = v.getAsObject()) {
        done += l->getBoolean("factored").value_or(false);
        params[0] += l->getInteger("params_before").value_or(0);
        params[1] += l->getInteger("params_after").value_or(0);
        flops[0] += l->getInteger("flops_before").value_or(0);
        flops[1] += l->getInteger("flops_after").value_or(0);
      }
    outs() << formatv("low-rank:             {0} of {1} weights factored; "
                      "their parameters {2} -> {3}, forward FLOPs {4:e3} -> "
                      "{5:e3}\n",
                      done, factored->size(), params[0], params[1],
                      double(flops[0]), double(flops[1]));
    for (const json::Value &v : *factored)
      if (const json::Object *l = v.getAsObject())
        outs() << formatv(
            "  weight {0}: {1} rank {2}, parameters {3} -> {4}, FLOPs {5:e3} "
            "-> {6:e3}{7}\n",
            l->getString("weight").value_or("?"),
            l->getString("kind").value_or("?"),
            l->getInteger("rank").value_or(0),
            l->getInteger("params_before").value_or(0),
            l->getInteger("params_after").value_or(0),
            double(l->getInteger("flops_before").value_or(0)),
            double(l->getInteger("flops_after").value_or(0)),
            l->getBoolean("factored").value_or(false)
                ? ""
                : " (left whole: the rank saves nothing)");
  }
  if (const json::Array *lines = r.getArray("channel_compaction")) {
    outs() << "channel compaction:   the pruned filters and neurons removed "
              "before training (--prune-compact)\n";
    for (const json::Value &line : *lines)
      outs() << "  " << line.getAsString().value_or("?") << "\n";
  }
  if (const json::Array *pruned = r.getArray("pruning")) {
    int64_t elements = 0, zeros = 0;
    for (const json::Value &v : *pruned)
      if (const json::Object *p = v.getAsObject()) {
        int64_t n = p->getInteger("elements").value_or(0);
        elements += n;
        zeros += static_cast<int64_t>(
            std::llround(p->getNumber("sparsity").value_or(0) * n));
      }
    outs() << formatv("pruning:              {0} weights, {1} of {2} "
                      "parameters pruned at the schedule's end ({3:f3})\n",
                      pruned->size(), zeros, elements,
                      elements ? double(zeros) / double(elements) : 0.0);
    for (const json::Value &v : *pruned)
      if (const json::Object *p = v.getAsObject())
        outs() << formatv("  weight {0}: {1}, sparsity {2:f3} of {3}\n",
                          p->getString("weight").value_or("?"),
                          p->getString("method").value_or("?"),
                          p->getNumber("sparsity").value_or(0),
                          p->getInteger("elements").value_or(0));
  }
  if (const json::Array *logs = r.getArray("log_quantization")) {
    int64_t bits = 0;
    for (const json::Value &v : *logs)
      if (const json::Object *l = v.getAsObject())
        bits = l->getInteger("bits").value_or(0);
    outs() << formatv("log quantization:     {0} weights to {1} bits: sign "
                      "and 2^k for the {2} exponents k up to the largest "
                      "magnitude's, or 0 (straight-through gradients to the "
                      "latent weights W.latent)\n",
                      logs->size(), bits, (int64_t{1} << (bits - 1)) - 1);
    for (const json::Value &v : *logs)
      if (const json::Object *l = v.getAsObject())
        outs() << formatv(
            "  weight {0}: {1}\n", l->getString("weight").value_or("?"),
            l->getInteger("axis").value_or(-1) < 0 ? "per tensor"
                                                   : "per output channel");
  }
  if (const json::Object *d = r.getObject("distillation")) {
    outs() << formatv("distillation:         teacher of {0} parameters, "
                      "frozen (no gradients, no optimizer state)\n",
                      d->getInteger("teacher_elements").value_or(0));
    if (auto t = d->getNumber("temperature"))
      outs() << formatv(
          "  response: T {0}, alpha {1}: loss = {2} task + "
          "{1} T^2 KL(softmax(teacher/T) || softmax(student/T))\n",
          *t, d->getNumber("alpha").value_or(0),
          1.0 - d->getNumber("alpha").value_or(0));
    if (const json::Array *features = d->getArray("features"))
      for (const json::Value &v : *features)
        if (const json::Object *f = v.getAsObject()) {
          StringRef proj = f->getString("projection").value_or("");
          outs() << formatv("  feature: student '{0}' against teacher '{1}' "
                            "(mse{2})\n",
                            f->getString("student").value_or("?"),
                            f->getString("teacher").value_or("?"),
                            proj.empty() ? std::string()
                                         : ", through learned " + proj.str());
        }
  }
  if (const json::Object *mesh = r.getObject("mesh")) {
    std::string axes;
    for (const auto &[name, size] : *mesh)
      axes += (axes.empty() ? "" : ",") + name.str() + "=" +
              std::to_string(size.getAsInteger().value_or(0));
    outs() << formatv("mesh:                 {0} (the artifact is one rank's "
                      "program; shapes are per rank)\n",
                      axes);
    if (const json::Object *bytes = r.getObject("communication_bytes_per_step"))
      for (const auto &[op, n] : *bytes)
        outs() << formatv("communication:        {0}: {1:f3} MiB per rank per "
                          "train step\n",
                          op.str(), mib(double(n.getAsInteger().value_or(0))));
    if (const json::Object *model = r.getObject("cost_model"))
      outs() << formatv(
          "predicted step:       {0:f3} ms = compute {1:f3} ms + exposed "
          "communication {2:f3} of {3:f3} ms (alpha-beta model: {4}, "
          "{5} us, {6} GB/s; {7} GFLOP/s)\n",
          num("predicted_step_ms"), num("predicted_compute_ms"),
          num("predicted_exposed_communication_ms"),
          num("predicted_communication_ms"),
          model->getString("link").value_or("?"),
          model->getNumber("latency_us").value_or(0),
          model->getNumber("gbps").value_or(0),
          model->getNumber("compute_gflops").value_or(0));
    if (const json::Object *why = r.getObject("sharding_decisions"))
      for (const auto &[param, text] : *why)
        outs() << formatv("  parameter {0}: {1}\n", param.str(),
                          text.getAsString().value_or(""));
    if (const json::Array *list = r.getArray("train_step_collectives"))
      for (const json::Value &v : *list) {
        const json::Object *c = v.getAsObject();
        if (!c)
          continue;
        auto n = [&](StringRef k) { return c->getInteger(k).value_or(0); };
        outs() << formatv("  {0} #{1} over {2}: {3} tensors, {4} bytes; "
                          "starts at command {5}, waited for at {6} ({7} "
                          "commands overlap it)\n",
                          c->getString("op").value_or("?"), n("id"),
                          c->getString("group").value_or("?"), n("tensors"),
                          n("bytes"), n("start"), n("wait"),
                          n("overlapped_commands"));
      }
  }
  if (r.getInteger("fp32_arena_bytes"))
    outs() << formatv("arena without --amp:  {0:f3} MiB (this arena is "
                      "{1:f2}x of it)\n",
                      mib(num("fp32_arena_bytes")),
                      num("arena_bytes") / num("fp32_arena_bytes"));
}

static mlir::trainopt::CUDATargetOptions cudaOptions() {
  mlir::trainopt::CUDATargetOptions options;
  options.arch = cudaArch;
  options.cudaPath = cudaPath;
  options.keepDir = keepIntermediates;
  return options;
}

/// The standalone executable: trainopt-run with the artifact appended and a
/// trailer (artifact length, magic) it looks for in its own file.
static int writeExecutable(const std::string &artifactPath) {
  auto stub = MemoryBuffer::getFile(runnerPath, false, false);
  if (!stub)
    return fail("--emit=exe needs trainopt-run (" + runnerPath + ")");
  auto payload = MemoryBuffer::getFile(artifactPath, false, false);
  if (!payload)
    return fail("cannot read back " + artifactPath);
  std::string tmp = outputPath + ".tmp";
  {
    std::error_code ec;
    raw_fd_ostream os(tmp, ec);
    if (ec)
      return fail("cannot write '" + tmp + "': " + ec.message());
    os << (*stub)->getBuffer() << (*payload)->getBuffer();
    uint64_t size = (*payload)->getBufferSize();
    char trailer[16];
    for (int i = 0; i < 8; ++i)
      trailer[i] = static_cast<char>(size >> (8 * i));
    memcpy(trailer + 8, "TOEXE001", 8);
    os.write(trailer, 16);
    if (os.has_error())
      return fail("cannot write '" + tmp + "'");
  }
  if (std::error_code ec = sys::fs::rename(tmp, outputPath))
    return fail("cannot write '" + outputPath + "': " + ec.message());
  sys::fs::setPermissions(outputPath, sys::fs::all_read | sys::fs::all_exe |
                                          sys::fs::owner_write);
  return 0;
}

/// `--memory-budget`: bytes, or a number with a KiB/MiB/GiB suffix.
static std::optional<double> parseBytes(StringRef text) {
  double scale = 1;
  for (auto [suffix, factor] : {std::pair<StringRef, double>{"KiB", 1024.0},
                                {"MiB", 1048576.0},
                                {"GiB", 1073741824.0}})
    if (text.consume_back(suffix)) {
      scale = factor;
      break;
    }
  double v = 0;
  if (text.trim().getAsDouble(v) || !(v > 0))
    return std::nullopt;
  return v * scale;
}

/// `--mesh=auto`: plans each mesh the compiler can build for `worldSize`
/// ranks (data parallel with ZeRO stages 0 to 3, data x tensor parallel,
/// data x pipeline parallel)
/// with the cost model,
/// prints the ranking, and sets `options` to the fastest one whose memory
/// per rank fits the budget. The memory per rank is the arena plus the
/// runtime's collective buffers (docs/distributed.md).
static int chooseMesh(mlir::MLIRContext &context,
                      mlir::trainopt::CompileOptions &options) {
  std::optional<double> budget;
  if (!memoryBudget.empty() && !(budget = parseBytes(memoryBudget)))
    return fail("--memory-budget expects bytes or a number with KiB, MiB "
                "or GiB, got '" +
                memoryBudget + "'");
  auto &values = options.training.values;
  auto given = [&](StringRef name) {
    return llvm::find_if(values,
                         [&](const auto &v) { return v.first == name; });
  };
  std::vector<std::string> zeros = {"0", "1", "2", "3"};
  if (auto z = given("zero"); z != values.end())
    zeros = {z->second};
  struct Plan {
    std::string mesh, zero;
    /// The batch of one data-parallel group: the same global batch for
    /// every plan (--batch-size x world size).
    int64_t batch = 0;
    /// A pipeline's micro-batches per step (0: no pipeline).
    int64_t microBatches = 0;
    double ms = 0, bytes = 0;
  };
  int64_t batch = options.import.batchSize.value_or(0);
  // Every mesh dp x tp x pp of the world: with each ZeRO stage where dp >
  // 1, and a tensor-parallel group's batch t times --batch-size, a
  // pipeline's k micro-batches of it, so the global batch is the same.
  std::vector<Plan> candidates, plans;
  std::vector<std::string> impossible;
  for (int64_t t = 1; t <= worldSize; ++t)
    for (int64_t k = 1; k <= worldSize; ++k) {
      if (worldSize % (t * k))
        continue;
      int64_t d = worldSize / (t * k);
      std::string mesh;
      for (auto [name, size] :
           {std::pair<const char *, int64_t>{"dp", d}, {"tp", t}, {"pp", k}})
        if (size > 1)
          mesh += (mesh.empty() ? "" : ",") + std::string(name) + "=" +
                  std::to_string(size);
      if (t * k > 1 && batch <= 0) {
        impossible.push_back(mesh + ": needs --batch-size (the batch of a "
                                    "tensor-parallel group or pipeline "
                                    "comes from it)");
        continue;
      }
      for (const std::string &zero : zeros)
        if (d > 1 || zero == "0")
          candidates.push_back(
              {mesh, zero, t > 1 ? batch * t : batch, k > 1 ? k : 0});
    }
  for (Plan plan : candidates) {
    mlir::trainopt::CompileOptions candidate = options;
    candidate.timing = nullptr;
    candidate.reportFp32Arena = false;
    auto &v = candidate.training.values;
    llvm::erase_if(v, [](const auto &o) {
      return o.first == "mesh" || o.first == "zero" ||
             o.first == "micro-batches" || o.first == "pipeline-stage";
    });
    v.push_back({"mesh", plan.mesh});
    v.push_back({"zero", plan.zero});
    if (plan.microBatches > 0)
      v.push_back({"micro-batches", std::to_string(plan.microBatches)});
    if (plan.batch > 0)
      candidate.import.batchSize = plan.batch;
    // A tp that does not divide the model's dims, or a model with too few
    // layer boundaries for its pipeline, is not a plan, not an error.
    bool mayFail =
        plan.mesh.find("tp=") != std::string::npos || plan.microBatches > 0;
    std::string firstError;
    std::optional<mlir::ScopedDiagnosticHandler> quiet;
    if (mayFail)
      quiet.emplace(&context, [&](mlir::Diagnostic &d) {
        if (firstError.empty())
          firstError = d.str();
        return mlir::success();
      });
    // A pipeline's step takes as long as its slowest stage, and its memory
    // per rank is its largest stage's.
    int64_t stages = mlir::trainopt::pipelineStages(candidate);
    bool possible = true;
    for (int64_t s = 0; s < stages && possible; ++s) {
      mlir::trainopt::CompileOptions stage = candidate;
      if (stages > 1)
        stage.training.values.push_back({"pipeline-stage", std::to_string(s)});
      mlir::OwningOpRef<mlir::ModuleOp> module = mlir::trainopt::compileModule(
          context, stage, mlir::trainopt::CompileStage::Kernels);
      if (!module && mayFail) {
        impossible.push_back(plan.mesh + ": " + firstError);
        possible = false;
        break;
      }
      if (!module)
        return 1;
      ::trainopt::artifact::Artifact scratch;
      json::Object r;
      if (failed(mlir::trainopt::emitArtifactPlan(*module, stage.target,
                                                  stage.target, scratch, r)))
        return 1;
      auto num = [&](StringRef key) {
        return r.getNumber(key).value_or(double(r.getInteger(key).value_or(0)));
      };
      double reduced = 0, scattered = 0, gathered = 0, sent = 0;
      if (const json::Object *c = r.getObject("communication_bytes_per_step")) {
        reduced = c->getInteger("all_reduce").value_or(0);
        scattered = c->getInteger("reduce_scatter").value_or(0);
        gathered = c->getInteger("all_gather").value_or(0);
        sent = c->getInteger("send").value_or(0);
      }
      plan.ms = std::max(plan.ms, num("predicted_step_ms"));
      // The runtime's staging: an all-reduce's buffer and what it
      // receives, a reduce-scatter's and its part, an all-gather's copy of
      // its part, a send's copy.
      plan.bytes = std::max(plan.bytes, num("arena_bytes") + 2 * reduced +
                                            scattered * (1 + 1.0 / worldSize) +
                                            gathered / worldSize + sent);
    }
    quiet.reset();
    if (possible)
      plans.push_back(plan);
  }
  std::stable_sort(plans.begin(), plans.end(),
                   [](const Plan &a, const Plan &b) { return a.ms < b.ms; });
  const Plan *chosen = nullptr;
  for (const Plan &p : plans)
    if (!chosen && (!budget || p.bytes <= *budget))
      chosen = &p;
  outs() << formatv(
      "--mesh=auto for {0} ranks{1}:\n", worldSize.getValue(),
      budget
          ? formatv(", at most {0:f1} MiB per rank", *budget / 1048576.0).str()
          : std::string());
  for (const Plan &p : plans)
    outs() << formatv(
        "  {0} {1,-14} predicted step {2,9:f3} ms, {3,9:f2} "
        "MiB per rank{4}\n",
        &p == chosen ? "*" : " ",
        p.mesh + " zero=" + p.zero +
            (p.batch != batch
                 ? " (--batch-size=" + std::to_string(p.batch) + ")"
                 : std::string()) +
            (p.microBatches
                 ? " (--micro-batches=" + std::to_string(p.microBatches) + ")"
                 : std::string()),
        p.ms, p.bytes / 1048576.0,
        budget && p.bytes > *budget ? " (over the budget)" : "");
  for (const std::string &why : impossible)
    outs() << "    not possible: " << why << "\n";
  outs().flush();
  if (!chosen)
    return fail("--mesh=auto: no mesh for " + Twine(worldSize) +
                " ranks fits --memory-budget=" + memoryBudget);
  llvm::erase_if(values, [](const auto &o) {
    return o.first == "mesh" || o.first == "zero";
  });
  llvm::erase_if(values,
                 [](const auto &o) { return o.first == "micro-batches"; });
  values.push_back({"mesh", chosen->mesh});
  values.push_back({"zero", chosen->zero});
  if (chosen->microBatches > 0)
    values.push_back({"micro-batches", std::to_string(chosen->microBatches)});
  if (chosen->batch > 0)
    options.import.batchSize = chosen->batch;
  return 0;
}

/// Writes the artifact of `module`, or (null) of every pipeline stage.
static int writeArtifact(mlir::MLIRContext &context, mlir::ModuleOp module,
                         const mlir::trainopt::CompileOptions &options) {
  if (!keepIntermediates.empty())
    sys::fs::create_directories(keepIntermediates);
  trainopt::artifact::Artifact artifact;
  json::Object r;
  if (module
          ? failed(mlir::trainopt::buildArtifact(module, options, artifact, r))
          : failed(mlir::trainopt::buildPipelineArtifact(context, options,
                                                         artifact, r)))
    return 1;
  if (pruneCompact) {
    json::Array lines;
    for (const std::string &line : compactionReport)
      lines.push_back(line);
    r["channel_compaction"] = std::move(lines);
  }
  std::string artifactPath =
      emit == "exe" ? outputPath + ".trainopt.tmp" : std::string(outputPath);
  std::string writeError;
  if (!trainopt::artifact::writeArtifact(artifact, artifactPath, writeError))
    return fail(writeError);
  if (report.getNumOccurrences()) {
    if (report.empty()) {
      printReport(r);
    } else {
      std::error_code ec;
      raw_fd_ostream os(report, ec);
      if (ec)
        return fail("cannot write --report file '" + report +
                    "': " + ec.message());
      os << formatv("{0:2}", json::Value(std::move(r))) << "\n";
    }
  }
  if (emit == "exe") {
    int rc = writeExecutable(artifactPath);
    sys::fs::remove(artifactPath);
    return rc;
  }
  return 0;
}

/// --emit=ptx: the PTX module of every kernel, after the launch list.
static int writePTX(mlir::ModuleOp module) {
  auto kernels = mlir::trainopt::compileKernelsToPTX(module, cudaOptions());
  if (failed(kernels))
    return 1;
  std::string openError;
  std::unique_ptr<ToolOutputFile> out =
      mlir::openOutputFile(outputPath, &openError);
  if (!out)
    return fail("cannot open output '" + outputPath + "': " + openError);
  for (const mlir::trainopt::GPUKernel &k : kernels->kernels) {
    out->os() << "// ===== trainopt kernel " << k.name << "\n";
    for (const mlir::trainopt::GPULaunch &l : k.launches) {
      out->os() << "// launch " << l.entry << " grid " << l.grid << " block "
                << l.block << " buffers";
      for (int64_t b : l.buffers)
        out->os() << " " << b;
      out->os() << "\n";
    }
  }
  out->os() << kernels->ptx << "\n";
  if (out->os().has_error())
    return fail("cannot write '" + outputPath + "'");
  out->keep();
  return 0;
}

int mlir::trainopt::runCompileDriver(int argc, const char *const *argv,
                                     const CompileDriverEnvironment &env) {
  diagnosticStream = env.diagnostics ? env.diagnostics : &errs();
  runnerPath = env.runnerPath;
  (void)trainingFlags(); // registers the flags before parsing
  // A second call in one process (the C API) starts from the defaults.
  cl::ResetAllOptionOccurrences();
  for (StageFlag &flag : trainingFlags())
    flag.given->clear();
  compactionReport.clear();
  cl::HideUnrelatedOptions(category);
  if (!cl::ParseCommandLineOptions(argc, argv, "trainopt compiler\n",
                                   &diagnosticOut()))
    return 1;

  auto error = [](const Twine &message) { return fail(message); };
  if (listTrainingFlags) {
    for (const mlir::trainopt::TrainingOption &o :
         mlir::trainopt::trainingOptions())
      outs() << o.name << "\t" << o.stage << "\t" << o.help << "\n";
    return 0;
  }
  if (listONNXOps) {
    for (const mlir::trainopt::ONNXOpSupport &op :
         mlir::trainopt::getSupportedONNXOps())
      outs() << op.opType << " " << op.sinceVersion << "\n";
    return 0;
  }
  if (inputPath.empty())
    return error("no input model; usage: trainopt-compile MODEL.onnx -o OUT");
  if (outputPath.empty())
    return error("no output; pass -o FILE (or -o - for stdout)");
  // An output replaces only a regular file, and never the model it is made
  // from (Support/Files.h).
  std::string refused;
  if (outputPath != "-" && !::trainopt::mayReplace(outputPath, refused))
    return error("-o: " + refused + " (-o - writes to stdout)");
  if (outputPath != "-" && ::trainopt::sameFile(inputPath, outputPath))
    return error("-o '" + outputPath +
                 "' is the input model; write the output to another file");
  if (!emit.getNumOccurrences() && StringRef(outputPath).ends_with(".trainopt"))
    emit = "artifact";
  static const char *emits[] = {"mlir",     "train-mlir", "kernel-mlir",
                                "artifact", "exe",        "ptx"};
  if (!llvm::is_contained(emits, StringRef(emit)))
    return error("--emit=" + emit +
                 " is not one of mlir, train-mlir, "
                 "kernel-mlir, artifact, exe, ptx");
  bool training = emit != "mlir";
  bool backend = emit == "kernel-mlir" || emit == "artifact" || emit == "exe" ||
                 emit == "ptx";
  if (target != "cpu" && target != "cuda")
    return error("--target=" + target + " is not one of cpu, cuda");
  if (emit == "ptx" && target != "cuda")
    return error("--emit=ptx needs --target=cuda");
  std::string archError;
  if (cudaArch.getNumOccurrences() &&
      !mlir::trainopt::isValidCUDAArch(cudaArch, archError))
    return error(archError);
  if (report.getNumOccurrences() && emit != "artifact" && emit != "exe")
    return error("--report needs --emit=artifact or --emit=exe");
  if ((emit == "artifact" || emit == "exe") && outputPath == "-")
    return error("--emit=" + emit + " writes a binary file; pass -o FILE");
  // The pass pipeline from the flags the user gave (unset flags keep the
  // passes' defaults, so "not given" stays distinguishable).
  mlir::trainopt::TrainingPipelineOptions trainingOptions;
  for (StageFlag &flag : trainingFlags()) {
    if (!flag.opt->getNumOccurrences())
      continue;
    if (!training)
      return error("--" + flag.opt->ArgStr +
                   " needs --emit=train-mlir, kernel-mlir, artifact or exe");
    std::string value = flag.option->isFlag && flag.opt->empty()
                            ? std::string("true")
                            : std::string(*flag.opt);
    if (flag.given->size() > 1) {
      if (!flag.option->isList)
        return error("--" + flag.opt->ArgStr + " was given " +
                     Twine(flag.given->size()) + " times; give it once");
      value = llvm::join(*flag.given, ",");
    }
    trainingOptions.values.push_back({flag.option->name, value});
  }
  if (probeValues && !training)
    return error("--probe-values needs --emit=train-mlir, kernel-mlir, "
                 "artifact or exe");
  if (batchSize.getNumOccurrences() && batchSize <= 0)
    return error("--batch-size must be a positive integer, got " +
                 Twine(batchSize));

  mlir::DialectRegistry registry;
  mlir::trainopt::registerAllDialects(registry);
  mlir::trainopt::registerAllPasses();
  mlir::MLIRContext context(registry);
  // Import errors name the file, node and op themselves; print them plainly.
  mlir::ScopedDiagnosticHandler diagnostics(&context, [](mlir::Diagnostic &d) {
    raw_ostream &os =
        d.getSeverity() == mlir::DiagnosticSeverity::Error
            ? WithColor::error(diagnosticOut(), "trainopt-compile")
        : d.getSeverity() == mlir::DiagnosticSeverity::Warning
            ? WithColor::warning(diagnosticOut(), "trainopt-compile")
            : WithColor::note(diagnosticOut(), "trainopt-compile");
    os << d.str() << "\n";
    return mlir::success();
  });
  // Declared before the root scope, so it outlives it: it prints the
  // report (--time-report) when main returns.
  mlir::DefaultTimingManager timingManager;
  timingManager.setEnabled(timeReport);
  timingManager.setDisplayMode(mlir::DefaultTimingManager::DisplayMode::Tree);
  mlir::TimingScope rootTiming = timingManager.getRootScope();
  mlir::trainopt::CompileOptions options;
  options.inputPath = inputPath;
  if (timeReport)
    options.timing = &rootTiming;
  if (batchSize.getNumOccurrences())
    options.import.batchSize = batchSize;
  options.import.frozen.assign(freeze.begin(), freeze.end());
  for (const std::string &spec : constInputs) {
    auto [name, file] = StringRef(spec).split('=');
    if (name.empty() || file.empty())
      return error("--const-input expects NAME=FILE.pb, got '" + spec + "'");
    options.import.constantInputs.push_back({name.str(), file.str()});
  }
  options.teacherPath = teacher;
  options.training = std::move(trainingOptions);
  options.probeValues = probeValues;
  options.reportFp32Arena = report.getNumOccurrences() > 0;
  options.target = target;
  options.cpu.cpu = cpuName;
  options.cpu.keepDir = keepIntermediates;
  if (kernelGroupOps < 1)
    return error("--kernel-group-ops expects a positive number, got " +
                 std::to_string(kernelGroupOps));
  options.cpu.groupOps = kernelGroupOps;
  options.cuda = cudaOptions();
  bool autoMesh = llvm::any_of(options.training.values, [](const auto &v) {
    return v.first == "mesh" && v.second == "auto";
  });
  if (autoMesh != (worldSize.getNumOccurrences() > 0))
    return error(autoMesh ? "--mesh=auto needs --world-size=N"
                          : "--world-size needs --mesh=auto");
  if (autoMesh && worldSize < 1)
    return error("--world-size must be a positive integer, got " +
                 Twine(worldSize));
  if (!autoMesh && memoryBudget.getNumOccurrences())
    return error("--memory-budget needs --mesh=auto (rematerialization "
                 "under a budget is not implemented yet)");
  if (autoMesh && !backend)
    return error("--mesh=auto needs --emit=kernel-mlir, artifact or exe");
  // --prune-compact: the compacted model, in a directory of its own under
  // the same file name (the model's name), removed on return.
  SmallString<128> compactDir;
  llvm::scope_exit removeCompactDir([&] {
    if (!compactDir.empty())
      sys::fs::remove_directories(compactDir);
  });
  if (pruneCompact) {
    if (std::error_code ec =
            sys::fs::createUniqueDirectory("trainopt-compact", compactDir))
      return error("--prune-compact: cannot create a temporary directory: " +
                   ec.message());
    SmallString<128> compacted(compactDir);
    sys::path::append(compacted, sys::path::filename(inputPath));
    if (failed(mlir::trainopt::compactPrunedChannels(
            context, options, compacted.str().str(), compactionReport)))
      return 1;
  }
  if (autoMesh)
    if (int rc = chooseMesh(context, options))
      return rc;
  // A pipeline's artifact holds every stage, each compiled on its own.
  if ((emit == "artifact" || emit == "exe") &&
      mlir::trainopt::pipelineStages(options) > 1)
    return writeArtifact(context, nullptr, options);
  mlir::OwningOpRef<mlir::ModuleOp> module = mlir::trainopt::compileModule(
      context, options,
      backend    ? mlir::trainopt::CompileStage::Kernels
      : training ? mlir::trainopt::CompileStage::Train
                 : mlir::trainopt::CompileStage::Import);
  if (!module)
    return 1;
  if (emit == "artifact" || emit == "exe")
    return writeArtifact(context, *module, options);
  if (emit == "ptx")
    return writePTX(*module);

  std::string openError;
  std::unique_ptr<ToolOutputFile> out =
      mlir::openOutputFile(outputPath, &openError);
  if (!out)
    return error("cannot open output '" + outputPath + "': " + openError);
  mlir::OpPrintingFlags flags;
  if (elideWeights)
    flags.elideLargeResourceString(0);
  module->print(out->os(), flags);
  out->os() << "\n";
  if (out->os().has_error())
    return error("cannot write '" + outputPath + "'");
  out->keep();
  return 0;
}
