//===- Trainer.cpp - the training loop as a library -----------------------===//
//
/// \file
/// Implements Trainer.h: data and feeding by signature, evaluation, the
/// loop with metrics, checkpoints and resume, and the final exports.
//
//===----------------------------------------------------------------------===//

#include "trainopt/Runtime/Trainer.h"

#include "trainopt/Artifact/artifact.pb.h"
#include "trainopt/Runtime/Batches.h"
#include "trainopt/Runtime/CPULibrary.h"
#include "trainopt/Runtime/Checkpoint.h"
#include "trainopt/Runtime/Data.h"
#include "trainopt/Runtime/OnnxExport.h"
#include "trainopt/Runtime/Program.h"
#include "trainopt/Runtime/Sharding.h"
#include "trainopt/Support/Files.h"

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fcntl.h>
#include <fstream>
#include <limits>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>
#include <vector>

using namespace trainopt::rt;

namespace {

/// Whether the progress bar holds the cursor: a message first ends its line.
bool barShown = false;

using Options = TrainerOptions;

const char *kHelp =
    R"(USAGE: trainopt-run MODEL.trainopt --data=DATA (--epochs N | --steps N)
                    [flags]

Trains a model compiled by trainopt-compile: feeds batches to train_step,
evaluates with eval_step, checkpoints, resumes, and saves the result.
Value flags are written --flag=VALUE or --flag VALUE. An executable written
by trainopt-compile --emit=exe carries its model and takes no MODEL.

Data (the first axis of every array is the sample axis):
  --data=DATA           training data, one of:
                          DIR            MNIST-style directory with
                                         train-images-idx3-ubyte and
                                         train-labels-idx1-ubyte (or .gz)
                          IMAGES,LABELS  two IDX or .npy files
                          FILE.npz       an archive with one array per
                                         input, named after it (token ids,
                                         several inputs), or x and y
                          tokens:FILE    a token file (llm.c's .bin with
                                         its header, or raw uint16 ids; see
                                         --token-bytes) cut into windows of
                                         the model's sequence length T:
                                         inputs x and next tokens y
  --token-bytes=N       bytes per token of a headerless token file: 2
                        (uint16, default) or 4 (uint32)
  --eval-data=DATA      evaluation data, the same forms (a DIR uses
                        t10k-images-idx3-ubyte and t10k-labels-idx1-ubyte)
                        Each input of the program is fed the array named
                        after it, else the labels (by role) y and the only
                        other input x, in the input's dtype. A sample must
                        have as many elements as one row of the input (28x28
                        data fits [B,1,28,28] or [B,784]); integer labels
                        must lie in [0, C) when eval_step's logits are
                        [B, C]. Float data inputs are normalized; labels
                        and integer inputs are fed as they are.

Length (exactly one; with --resume, the total counted from step 0):
  --epochs N            train N epochs (every full batch once; the last
                        partial batch is dropped)
  --steps N             train N steps

Batches:
  --seed S              shuffle seed (default 0); epoch e is shuffled from
                        S + e
  --no-shuffle          feed the samples in file order
  --scale X             normalization x' = (x * X - M) / S; X defaults to
  --mean M              1/255 for uint8 data, else 1; M to 0; S to 1
  --std S

Runtime:
  --threads N           threads of the CPU kernels and libraries (0: all;
                        default: all, or under mpirun the cores of this
                        node divided by its ranks)
  --cpu-conv K          the CPU convolution kernels: auto (default: onednn
                        when libdnnl.so.2 loads, else builtin), onednn
                        (oneDNN's blocked kernels) or builtin (im2col +
                        OpenBLAS); with either, bits independent of
                        --threads
  --cuda-device N       the GPU (CUDA ordinal, default 0) for cuda artifacts
  --no-cuda-graph       launch a cuda artifact's commands one by one instead
                        of replaying each entry point as a CUDA graph
  --no-tf32             full float32 arithmetic in cuBLASLt and cuDNN (by
                        default float32 matmuls and convolutions may use TF32
                        tensor cores, as PyTorch's allow_tf32)
  --cuda-sync           wait for the GPU after every command, so a fault
                        names its command (slow)
  --cuda-info           print the GPU a cuda artifact would run on, or why
                        there is none, and exit (0: a GPU is usable)

Several processes (a sharded artifact, trainopt-compile --mesh; start
it with mpirun -np N, docs/distributed.md):
  --collective-timeout S  a collective that has not finished after S
                        seconds ends the job with an error naming it and
                        the rank (default 300)
  --reduce-order=rank|mpi  rank: sums in rank order, the same bits on every
                        rank and for every run (default); mpi: MPI's own
                        all-reduce

Output:
  --quiet               no progress output (the summary is still printed)
  --explain-overflow    on every step skipped by loss scaling (--amp=fp16),
                        name the first value of the step, forward then
                        backward, that is inf or NaN, with its op and its
                        ONNX node, input or parameter (needs
                        trainopt-compile --probe-values)
  --check-numerics      after every step, check every value of train_step
                        (an artifact compiled with --probe-values) and stop
                        at the first that is not finite, naming its op, its
                        ONNX node and the step
  --allow-nan           train on when the loss is NaN or inf (by default the
                        run stops after that step with an error)
  --profile             time every command of the compiled program and print,
                        per entry point, the time per run and the costliest
                        kernels and library calls
  --log-every N         without a terminal, a progress line every N steps
                        (default: about 10 per epoch); on a terminal, a
                        progress bar
  --metrics=FILE.jsonl  one JSON object per step (step, epoch, loss, lr,
                        grad_norm, other scalar outputs of train_step,
                        step_ms: this step from its run to its outputs read,
                        t_ms: since the first step of this run started),
                        then one with "summary": true; appended to when
                        resuming
  --no-train-eval       skip the final evaluation on the training data
  --eval-every-epoch    evaluate on --eval-data after every epoch

Checkpoints:
  --checkpoint-dir=DIR  where checkpoints go (created if missing); one is
                        always written at the end of the run
  --checkpoint-every=N  also write one every N steps
  --keep-checkpoints=K  keep the K newest (default 3; 0 keeps all)
  --resume              continue from the newest checkpoint in
                        --checkpoint-dir
  --resume=FILE         continue from the checkpoint FILE

Results:
  --save-params=FILE.npz   every persistent value (parameters, optimizer and
                           model state, step counter) by name, uncompressed
  --dump-eval=FILE.npz     eval_step's inputs and outputs on the first eval
                           batch
  --dump-eval-batches=N    with --dump-eval: the first N eval batches,
                           concatenated (0: every full batch)
  --dump-step=FILE.npz     train_step's outputs and metrics after the last
                           step (with trainopt-compile --probe-values: every
                           intermediate value)
  --export-onnx=FILE.onnx  the trained model as an inference ONNX model
  --export-dtype=fp32|bf16|fp16
                           the exported weights' type (default fp32); bf16
                           and fp16 store them at half the size, cast to
                           float32 in the graph
  --compact                with --export-onnx, for a model pruned by channel
                           (--prune=channel:l1:F): remove the pruned
                           channels and the inputs that read them, so the
                           exported model is smaller (docs/compression.md)

  --help                this text

Exit status: 0 on success, 2 for a usage error, 1 for an error while running.
)";

int64_t parseInteger(const std::string &flag, const std::string &text,
                     int64_t min, const char *expected) {
  errno = 0;
  char *end = nullptr;
  long long v = std::strtoll(text.c_str(), &end, 10);
  if (text.empty() || *end != '\0' || errno == ERANGE || v < min ||
      !(std::isdigit(static_cast<unsigned char>(text[0])) ||
        (text[0] == '-' && text.size() > 1)))
    usageError(flag + " expects " + expected + ", got '" + text + "'");
  return v;
}

double parseReal(const std::string &flag, const std::string &text) {
  errno = 0;
  char *end = nullptr;
  double v = std::strtod(text.c_str(), &end);
  if (text.empty() || *end != '\0' || errno == ERANGE || !std::isfinite(v))
    usageError(flag + " expects a finite number, got '" + text + "'");
  return v;
}

/// `embedded`: this executable carries its model (trainopt-compile
/// --emit=exe), so no MODEL argument is taken.
Options parseFlags(const std::vector<std::string> &args, bool embedded) {
  Options o;
  for (size_t i = 0; i < args.size(); ++i) {
    const std::string &arg = args[i];
    if (arg == "--help" || arg == "-h") {
      o.help = true;
      return o;
    }
    if (arg.rfind("-", 0) != 0 || arg == "-") {
      if (embedded)
        usageError("unexpected argument '" + arg +
                   "': this executable carries its model");
      if (!o.model.empty())
        usageError("unexpected argument '" + arg + "' (the model is '" +
                   o.model + "')");
      o.model = arg;
      continue;
    }
    size_t eq = arg.find('=');
    std::string flag = arg.substr(0, eq);
    std::optional<std::string> inlineValue;
    if (eq != std::string::npos)
      inlineValue = arg.substr(eq + 1);

    auto noValue = [&]() {
      if (inlineValue)
        usageError(flag + " takes no value, got '" + arg + "'");
    };
    auto value = [&]() -> std::string {
      if (inlineValue)
        return *inlineValue;
      if (i + 1 >= args.size())
        usageError(flag + " expects a value");
      return args[++i];
    };
    auto path = [&]() {
      std::string v = value();
      if (v.empty())
        usageError(flag + " expects a file name");
      return v;
    };

    if (flag == "--data")
      o.data = path();
    else if (flag == "--eval-data")
      o.evalData = path();
    else if (flag == "--token-bytes") {
      int64_t bytes = parseInteger(flag, value(), 2, "2 or 4");
      if (bytes != 2 && bytes != 4)
        usageError("--token-bytes expects 2 or 4, got " +
                   std::to_string(bytes));
      o.tokenBytes = static_cast<unsigned>(bytes);
    } else if (flag == "--epochs")
      o.epochs = parseInteger(flag, value(), 1, "a positive integer");
    else if (flag == "--steps")
      o.steps = parseInteger(flag, value(), 1, "a positive integer");
    else if (flag == "--seed") {
      std::string v = value();
      errno = 0;
      char *end = nullptr;
      unsigned long long s = std::strtoull(v.c_str(), &end, 10);
      if (v.empty() || !std::isdigit(static_cast<unsigned char>(v[0])) ||
          *end != '\0' || errno == ERANGE)
        usageError("--seed expects a non-negative integer, got '" + v + "'");
      o.seed = s;
      o.seedGiven = true;
    } else if (flag == "--no-shuffle") {
      noValue();
      o.shuffle = false;
    } else if (flag == "--scale")
      o.scale = parseReal(flag, value());
    else if (flag == "--mean")
      o.mean = parseReal(flag, value());
    else if (flag == "--std") {
      o.std = parseReal(flag, value());
      if (o.std == 0.0)
        usageError("--std must not be 0");
    } else if (flag == "--threads")
      o.threads = parseInteger(flag, value(), 0, "a non-negative integer");
    else if (flag == "--cpu-conv") {
      o.cpuConv = value();
      if (o.cpuConv != "auto" && o.cpuConv != "onednn" &&
          o.cpuConv != "builtin")
        usageError("--cpu-conv expects auto, onednn or builtin, got '" +
                   o.cpuConv + "'");
    } else if (flag == "--cuda-device")
      o.cuda.device = static_cast<int>(
          parseInteger(flag, value(), 0, "a non-negative integer"));
    else if (flag == "--no-cuda-graph") {
      noValue();
      o.cuda.graphs = false;
    } else if (flag == "--no-tf32") {
      noValue();
      o.cuda.tf32 = false;
    } else if (flag == "--cuda-sync") {
      noValue();
      o.cuda.syncEachCommand = true;
    } else if (flag == "--cuda-info") {
      noValue();
      o.cudaInfo = true;
    } else if (flag == "--log-every")
      o.logEvery = parseInteger(flag, value(), 1, "a positive integer");
    else if (flag == "--collective-timeout") {
      double t = parseReal(flag, value());
      if (!(t > 0))
        usageError(flag + " expects seconds > 0, got '" + flag + "'");
      o.collectives.timeoutSeconds = t;
    } else if (flag == "--reduce-order") {
      std::string v = value();
      if (v != "rank" && v != "mpi")
        usageError(flag + " expects rank or mpi, got '" + v + "'");
      o.collectives.deterministic = v == "rank";
    } else if (flag == "--quiet") {
      noValue();
      o.quiet = true;
    } else if (flag == "--explain-overflow") {
      noValue();
      o.explainOverflow = true;
    } else if (flag == "--check-numerics") {
      noValue();
      o.checkNumerics = true;
    } else if (flag == "--allow-nan") {
      noValue();
      o.allowNan = true;
    } else if (flag == "--profile") {
      noValue();
      o.profile = true;
    } else if (flag == "--metrics")
      o.metrics = path();
    else if (flag == "--no-train-eval") {
      noValue();
      o.trainEval = false;
    } else if (flag == "--eval-every-epoch") {
      noValue();
      o.evalEveryEpoch = true;
    } else if (flag == "--checkpoint-dir")
      o.checkpointDir = path();
    else if (flag == "--checkpoint-every")
      o.checkpointEvery = parseInteger(flag, value(), 1, "a positive integer");
    else if (flag == "--keep-checkpoints")
      o.keepCheckpoints =
          parseInteger(flag, value(), 0, "a non-negative integer");
    else if (flag == "--resume") {
      // Only the `--resume=FILE` form takes a value: a bare `--resume`
      // followed by the model must not swallow it.
      o.resume = true;
      if (inlineValue) {
        if (inlineValue->empty())
          usageError("--resume= expects a checkpoint file");
        o.resumePath = *inlineValue;
      }
    } else if (flag == "--save-params")
      o.saveParams = path();
    else if (flag == "--dump-eval")
      o.dumpEval = path();
    else if (flag == "--dump-eval-batches")
      o.dumpEvalBatches =
          parseInteger(flag, value(), 0, "a non-negative integer");
    else if (flag == "--dump-step")
      o.dumpStep = path();
    else if (flag == "--export-onnx")
      o.exportOnnx = path();
    else if (flag == "--compact")
      o.compact = true;
    else if (flag == "--export-dtype") {
      o.exportDtype = value();
      if (o.exportDtype != "fp32" && o.exportDtype != "bf16" &&
          o.exportDtype != "fp16")
        usageError("--export-dtype expects fp32, bf16 or fp16, got '" +
                   o.exportDtype + "'");
    } else
      usageError("unknown flag '" + flag + "'");
  }

  if (o.cudaInfo)
    return o;
  if (o.exportDtype != "fp32" && o.exportOnnx.empty())
    usageError("--export-dtype needs --export-onnx");
  if (o.compact && o.exportOnnx.empty())
    usageError("--compact needs --export-onnx");
  if (o.model.empty() && !embedded)
    usageError("no model given (trainopt-run MODEL.trainopt --data=... "
               "--epochs N)");
  if (o.data.empty())
    usageError("--data is required");
  if (o.epochs.has_value() == o.steps.has_value())
    usageError("give exactly one of --epochs N and --steps N");
  if (o.checkpointEvery > 0 && o.checkpointDir.empty())
    usageError("--checkpoint-every needs --checkpoint-dir");
  if (o.resume && o.resumePath.empty() && o.checkpointDir.empty())
    usageError("--resume needs --checkpoint-dir (or --resume=FILE)");
  if (o.evalEveryEpoch && o.evalData.empty())
    usageError("--eval-every-epoch needs --eval-data");
  if (!o.dumpEval.empty() && o.evalData.empty())
    usageError("--dump-eval needs --eval-data");
  if (o.dumpEvalBatches != 1 && o.dumpEval.empty())
    usageError("--dump-eval-batches needs --dump-eval");
  // Outputs replace only regular files (Support/Files.h): refused
  // before any training, not after it.
  for (auto [flag, path] : {std::pair<const char *, const std::string *>{
                                "--save-params", &o.saveParams},
                            {"--dump-eval", &o.dumpEval},
                            {"--dump-step", &o.dumpStep},
                            {"--export-onnx", &o.exportOnnx}}) {
    std::string refused;
    if (!path->empty() && !trainopt::mayReplace(*path, refused))
      usageError(std::string(flag) + ": " + refused);
  }
  return o;
}

//===----------------------------------------------------------------------===//
// Values
//===----------------------------------------------------------------------===//

std::string shapeString(const std::vector<int64_t> &shape) {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); ++i)
    s += (i ? ", " : "") + std::to_string(shape[i]);
  return s + "]";
}

const char *kindName(ValueKind k) {
  switch (k) {
  case ValueKind::Parameter:
    return "parameter";
  case ValueKind::OptimizerState:
    return "optimizer_state";
  case ValueKind::ModelState:
    return "model_state";
  case ValueKind::Step:
    return "step";
  case ValueKind::Input:
    return "input";
  case ValueKind::Labels:
    return "labels";
  case ValueKind::Metric:
    return "metric";
  case ValueKind::Output:
    return "output";
  case ValueKind::Loss:
    return "loss";
  }
  return "?";
}

/// Element `i` of `data` (of type `t`) as a double.
/// A program's value storage, or a runtime error (on a GPU, a failed run
/// shows up when its outputs are read).
const void *outputOf(const Program &program, const std::string &entry,
                     const std::string &name) {
  const void *data = program.output(entry, name);
  if (!data)
    runtimeError(program.lastError().empty()
                     ? "no output '" + name + "' of " + entry
                     : program.lastError());
  return data;
}
void *inputOf(Program &program, const std::string &entry,
              const std::string &name) {
  void *data = program.input(entry, name);
  if (!data)
    runtimeError(program.lastError().empty()
                     ? "no input '" + name + "' of " + entry
                     : program.lastError());
  return data;
}
void *persistentOf(Program &program, const std::string &name) {
  void *data = program.persistent(name);
  if (!data)
    runtimeError(program.lastError().empty()
                     ? "no persistent value '" + name + "'"
                     : program.lastError());
  return data;
}

double elementAt(const void *data, DType t, int64_t i) {
  return elementAsDouble(static_cast<const uint8_t *>(data), t, i);
}

/// `v` for JSON: the shortest decimal that reads back as the same value of
/// `t` (a float32 loss prints as 0.1234, not 0.123399995); null when not
/// finite.
std::string jsonNumber(double v, DType t = DType::F64) {
  if (!std::isfinite(v))
    return "null";
  char buf[40];
  if (v == std::floor(v) && std::fabs(v) < 1e15) {
    std::snprintf(buf, sizeof(buf), "%.0f", v);
    return buf;
  }
  for (int precision = 1; precision <= 17; ++precision) {
    std::snprintf(buf, sizeof(buf), "%.*g", precision, v);
    double back = std::strtod(buf, nullptr);
    if (t == DType::F32 || t == DType::F16
            ? static_cast<float>(back) == static_cast<float>(v)
            : back == v)
      break;
  }
  return buf;
}

std::string jsonString(const std::string &s) {
  std::string out = "\"";
  for (char c : s) {
    if (c == '"' || c == '\\')
      out += '\\';
    if (static_cast<unsigned char>(c) < 0x20) {
      char buf[8];
      std::snprintf(buf, sizeof(buf), "\\u%04x", c);
      out += buf;
      continue;
    }
    out += c;
  }
  return out + "\"";
}

//===----------------------------------------------------------------------===//
// Data
//===----------------------------------------------------------------------===//

/// Named arrays with the same number of samples (first axis): `x` and `y`
/// from a directory or IMAGES,LABELS, or every array of an .npz. The
/// program's inputs are bound to them by name (bind()).
struct Dataset {
  std::string spec;
  std::vector<std::pair<std::string, Array>> arrays;
  /// Where each array came from, for messages.
  std::vector<std::string> files;
  int64_t samples() const { return arrays[0].second.shape[0]; }
  /// The index of the array called `name`, if any.
  std::optional<size_t> find(const std::string &name) const {
    for (size_t i = 0; i < arrays.size(); ++i)
      if (arrays[i].first == name)
        return i;
    return std::nullopt;
  }
  std::string names() const {
    std::string out;
    for (const auto &a : arrays)
      out += (out.empty() ? "" : ", ") + a.first;
    return out;
  }
};

bool isDirectory(const std::string &path) {
  struct stat st;
  return ::stat(path.c_str(), &st) == 0 && S_ISDIR(st.st_mode);
}

bool exists(const std::string &path) {
  struct stat st;
  return ::stat(path.c_str(), &st) == 0;
}

/// One array from an IDX or .npy file.
Array readSingle(const std::string &flag, const std::string &path) {
  std::vector<std::pair<std::string, Array>> arrays;
  std::string error;
  if (!readArrays(path, arrays, error))
    runtimeError(flag + ": " + error);
  if (arrays.size() != 1 || !arrays[0].first.empty())
    runtimeError(flag + ": '" + path +
                 "' is an .npz archive; IMAGES,LABELS expects two IDX or "
                 ".npy files (pass the .npz alone for arrays x and y)");
  return std::move(arrays[0].second);
}

/// Loads DATA: a directory, IMAGES,LABELS, an .npz, or `tokens:FILE` (a
/// token file cut into windows of `window` tokens, the length of the
/// model's [B, T] token input; 0 when it has none).
Dataset loadDataset(const std::string &flag, const std::string &spec, bool eval,
                    int64_t window, unsigned tokenBytes) {
  Dataset d;
  d.spec = spec;
  if (spec.rfind("tokens:", 0) == 0) {
    std::string file = spec.substr(7);
    if (window < 1)
      usageError(flag + "=tokens:FILE needs a model whose data input is a "
                        "[B, T] integer tensor (token ids)");
    Array x, y;
    std::string error;
    if (!readTokenWindows(file, window, tokenBytes, x, y, error))
      runtimeError(flag + ": " + error);
    d.arrays.push_back({"x", std::move(x)});
    d.arrays.push_back({"y", std::move(y)});
    d.files = {file + " (inputs)", file + " (next tokens)"};
    return d;
  }
  auto addFile = [&](const std::string &name, const std::string &file) {
    d.arrays.push_back({name, readSingle(flag, file)});
    d.files.push_back(file);
  };
  if (size_t comma = spec.find(','); comma != std::string::npos) {
    std::string xFile = spec.substr(0, comma), yFile = spec.substr(comma + 1);
    if (xFile.empty() || yFile.empty() || yFile.find(',') != std::string::npos)
      usageError(flag + " expects DIR, IMAGES,LABELS or FILE.npz, got '" +
                 spec + "'");
    addFile("x", xFile);
    addFile("y", yFile);
  } else if (isDirectory(spec)) {
    const char *prefix = eval ? "t10k" : "train";
    auto find = [&](const std::string &stem) {
      std::string base = spec + "/" + prefix + stem;
      for (const std::string &candidate : {base, base + ".gz"})
        if (exists(candidate))
          return candidate;
      runtimeError(flag + ": directory '" + spec + "' has neither " + prefix +
                   stem + " nor " + prefix + stem + ".gz");
    };
    addFile("x", find("-images-idx3-ubyte"));
    addFile("y", find("-labels-idx1-ubyte"));
  } else {
    std::string error;
    if (!readArrays(spec, d.arrays, error))
      runtimeError(flag + ": " + error);
    if (d.arrays.size() == 1 && d.arrays[0].first.empty())
      runtimeError(flag + ": '" + spec +
                   "' holds a single array; expected a directory, "
                   "IMAGES,LABELS, or an .npz with arrays x and y (or one "
                   "per input, named after it)");
    if (d.arrays.empty())
      runtimeError(flag + ": '" + spec + "' holds no arrays");
    for (const auto &a : d.arrays)
      d.files.push_back(spec + ":" + a.first);
  }
  for (size_t i = 0; i < d.arrays.size(); ++i) {
    const Array &a = d.arrays[i].second;
    if (a.shape.empty() || a.shape[0] == 0)
      runtimeError(flag + ": '" + d.files[i] + "' has no samples (shape " +
                   shapeString(a.shape) + ")");
    if (a.shape[0] != d.arrays[0].second.shape[0])
      runtimeError(flag + ": '" + d.files[0] + "' has " +
                   std::to_string(d.arrays[0].second.shape[0]) +
                   " samples but '" + d.files[i] + "' has shape " +
                   shapeString(a.shape));
  }
  return d;
}

/// What an entry point is fed: its inputs (data and labels, by role) in
/// signature order.
struct Feed {
  std::string entry;
  std::vector<const ValueInfo *> inputs;
  /// The labels among `inputs`, if any.
  const ValueInfo *labels = nullptr;
  int64_t batch = 0;
  /// Whether input `v` is normalized: data (not labels) of a float type.
  static bool normalized(const ValueInfo &v) {
    return v.kind == ValueKind::Input && isFloat(v.dtype);
  }
};

/// The sequence length T of the feed's integer data input [B, T], the
/// window of a token-file dataset; 0 if there is none.
int64_t tokenWindow(const Feed &feed) {
  for (const ValueInfo *v : feed.inputs)
    if (v->kind == ValueKind::Input && !isFloat(v->dtype) &&
        v->shape.size() == 2)
      return v->shape[1];
  return 0;
}

Feed findFeed(const Program &program, const std::string &model,
              const std::string &entry, bool needLabels) {
  Feed f;
  f.entry = entry;
  for (const ValueInfo &v : program.inputs(entry)) {
    if (v.kind != ValueKind::Input && v.kind != ValueKind::Labels)
      continue;
    if (v.kind == ValueKind::Labels) {
      if (f.labels)
        runtimeError("'" + model + "': " + entry + " has two labels inputs, '" +
                     f.labels->name + "' and '" + v.name +
                     "'; trainopt-run feeds one");
      f.labels = &v;
    }
    if (v.shape.empty() || v.shape[0] < 1)
      runtimeError("'" + model + "': input '" + v.name + "' of " + entry +
                   " has no batch axis (shape " + shapeString(v.shape) + ")");
    if (f.inputs.empty())
      f.batch = v.shape[0];
    else if (v.shape[0] != f.batch)
      runtimeError("'" + model + "': input '" + v.name + "' of " + entry +
                   " has shape " + shapeString(v.shape) +
                   ", expected a leading batch axis of " +
                   std::to_string(f.batch) + " like '" + f.inputs[0]->name +
                   "'");
    f.inputs.push_back(&v);
  }
  if (f.inputs.empty() || (needLabels && !f.labels))
    runtimeError("'" + model + "': " + entry + " takes " +
                 (f.inputs.empty() ? std::string("no batch input")
                                   : std::string("no labels input")) +
                 "; trainopt-run needs " +
                 (needLabels ? "data and labels" : "a data input"));
  return f;
}

/// The array of `d` each input of `f` is fed from: the one named after the
/// input, else `y` for the labels and `x` for the only other input. Checks
/// that the samples fit the inputs and, when `classes` is known, that
/// integer labels are class indices.
std::vector<size_t> bind(const std::string &flag, const Dataset &d,
                         const Feed &f, int64_t classes) {
  std::vector<size_t> columns;
  size_t dataInputs = f.inputs.size() - (f.labels ? 1 : 0);
  int64_t n = d.samples();
  for (const ValueInfo *v : f.inputs) {
    std::optional<size_t> c = d.find(v->name);
    if (!c && v == f.labels)
      c = d.find("y");
    if (!c && v != f.labels && dataInputs == 1)
      c = d.find("x");
    if (!c)
      runtimeError(flag + ": '" + d.spec + "' has no array for " +
                   (v == f.labels ? "the labels '" : "input '") + v->name +
                   "' of " + f.entry + " (it has " + d.names() +
                   "); name an .npz array after the input" +
                   (v == f.labels     ? std::string(" or 'y'")
                    : dataInputs == 1 ? std::string(" or 'x'")
                                      : std::string()));
    const Array &a = d.arrays[*c].second;
    const std::string &file = d.files[*c];
    int64_t have = a.numElements() / n, want = v->numElements() / f.batch;
    if (have != want) {
      std::vector<int64_t> sampleShape(a.shape.begin() + 1, a.shape.end());
      runtimeError(flag + ": '" + file + "' has samples of shape " +
                   shapeString(sampleShape) + " (" + std::to_string(have) +
                   " elements; data shape " + shapeString(a.shape) +
                   "), which do not fit " + f.entry + "'s input '" + v->name +
                   "' of shape " + shapeString(v->shape) + " (" +
                   std::to_string(want) + " elements per sample)");
    }
    if (v == f.labels && !isFloat(v->dtype)) {
      for (int64_t i = 0, e = a.numElements(); i < e; ++i) {
        double x = a.at(i);
        if (isFloat(a.dtype) && (!std::isfinite(x) || x != std::floor(x)))
          runtimeError(flag + ": '" + file + "' label " + jsonNumber(x) +
                       " at index " + std::to_string(i) +
                       " is not an integer class index");
        if (classes > 0 && (x < 0 || x >= static_cast<double>(classes)))
          runtimeError(flag + ": '" + file + "' label " + jsonNumber(x) +
                       " at index " + std::to_string(i) + " is outside [0, " +
                       std::to_string(classes) + "): the model's logits have " +
                       std::to_string(classes) + " classes");
      }
    }
    columns.push_back(*c);
  }
  return columns;
}

/// The normalization of `d`'s data: --scale, --mean and --std, with uint8
/// data (images) scaled by 1/255 by default.
Normalization normalizationFor(const Options &o, const Dataset &d,
                               const Feed &f,
                               const std::vector<size_t> &columns) {
  Normalization n;
  bool bytes = false;
  for (size_t i = 0; i < f.inputs.size(); ++i)
    if (Feed::normalized(*f.inputs[i]))
      bytes |= d.arrays[columns[i]].second.dtype == DType::U8;
  n.scale = o.scale ? *o.scale : bytes ? 1.0 / 255.0 : 1.0;
  n.mean = o.mean;
  n.std = o.std;
  return n;
}

/// Writes `f.batch` samples of `d` into `f`'s inputs, in the order
/// `sampleAt(r)`; the arithmetic is BatchStream's, so evaluation sees what
/// training sees.
template <typename SampleAt>
void feedRows(Program &program, const Feed &f, const Dataset &d,
              const std::vector<size_t> &columns, const Normalization &norm,
              SampleAt sampleAt) {
  int64_t n = d.samples();
  for (size_t i = 0; i < f.inputs.size(); ++i) {
    const ValueInfo &v = *f.inputs[i];
    const Array &a = d.arrays[columns[i]].second;
    int64_t size = a.numElements() / n;
    bool normalize = Feed::normalized(v);
    auto *dst = static_cast<uint8_t *>(inputOf(program, f.entry, v.name));
    for (int64_t r = 0; r < f.batch; ++r) {
      int64_t s = sampleAt(r);
      for (int64_t k = 0; k < size; ++k)
        storeElement(dst, v.dtype, r * size + k,
                     batchValue(a, s * size + k, normalize, norm));
    }
  }
}

//===----------------------------------------------------------------------===//
// Evaluation
//===----------------------------------------------------------------------===//

/// What eval_step reports, found once.
struct EvalSignature {
  bool available = false;
  Feed feed;
  /// The [B, C] logits, if any.
  const ValueInfo *logits = nullptr;
  int64_t classes = 0;
  /// The scalar loss, if any.
  const ValueInfo *loss = nullptr;
};

EvalSignature findEval(const Program &program, const std::string &model) {
  EvalSignature e;
  if (!program.hasEntryPoint("eval_step"))
    return e;
  e.available = true;
  e.feed = findFeed(program, model, "eval_step", /*needLabels=*/false);
  const ValueInfo *rank2 = nullptr;
  int rank2Count = 0;
  for (const ValueInfo &v : program.outputs("eval_step")) {
    bool fits =
        v.shape.size() == 2 && v.shape[0] == e.feed.batch && v.shape[1] > 0;
    if (v.name == "logits" && fits)
      e.logits = &v;
    if (v.kind == ValueKind::Output && fits) {
      rank2 = &v;
      ++rank2Count;
    }
    if (v.kind == ValueKind::Loss && v.numElements() == 1)
      e.loss = &v;
  }
  if (!e.logits && rank2Count == 1)
    e.logits = rank2;
  if (e.logits)
    e.classes = e.logits->shape[1];
  return e;
}

struct EvalResult {
  double loss = std::numeric_limits<double>::quiet_NaN();
  double accuracy = std::numeric_limits<double>::quiet_NaN();
  int64_t samples = 0;
};

/// Runs eval_step over every sample of `d` in order. The last partial batch
/// is padded with copies of its real samples, and only real rows count.
/// With [B, C] logits the loss is the exact per-sample log-softmax
/// cross-entropy; otherwise the mean of eval_step's loss over full batches.
/// A data-parallel program shares the batches out over its ranks (batch i
/// on rank i mod N, with rank 0's model state, as PyTorch DDP broadcasts
/// its buffers) and sums the totals.
EvalResult evaluate(Program &program, const EvalSignature &sig,
                    const Dataset &d, const std::vector<size_t> &columns,
                    const Normalization &norm) {
  EvalResult result;
  Communicator *comm = program.communicator();
  // A mesh without a dp axis (tensor parallel only) is one data-parallel
  // group.
  bool dataParallel = comm && comm->groupSize("dp") > 0;
  int64_t ranks = dataParallel ? comm->groupSize("dp") : 1;
  int64_t rank = dataParallel ? comm->coordinate("dp") : 0;
  std::string error;
  if (comm)
    for (const ValueInfo &v : program.persistentValues())
      if (v.kind == ValueKind::ModelState &&
          !comm->broadcast(persistentOf(program, v.name),
                           static_cast<int64_t>(v.bytes), 0,
                           "model state '" + v.name + "'", error))
        runtimeError(error);
  const Feed &f = sig.feed;
  int64_t n = d.samples();
  const Array *labels = nullptr;
  for (size_t i = 0; i < f.inputs.size(); ++i)
    if (f.inputs[i] == f.labels)
      labels = &d.arrays[columns[i]].second;
  bool perSample = sig.logits && labels && labels->numElements() == n &&
                   !isFloat(f.labels->dtype);
  double lossSum = 0, correct = 0;
  int64_t fullBatches = 0;
  // Every rank runs eval_step equally often (a ZeRO-3 eval_step gathers
  // the parameters): a rank past the last batch runs batch 0 again and
  // ignores it.
  int64_t batches = (n + f.batch - 1) / f.batch;
  struct Uncounted { // the step's communication figures leave evaluation out
    Communicator *comm;
    ~Uncounted() {
      if (comm)
        comm->countCollectives(true);
    }
  } uncounted{comm};
  if (comm)
    comm->countCollectives(false);
  for (int64_t round = 0; round * ranks < batches; ++round) {
    int64_t batch = round * ranks + rank;
    bool real = batch < batches;
    int64_t start = real ? batch * f.batch : 0;
    int64_t rows = std::min(f.batch, n - start);
    feedRows(program, f, d, columns, norm,
             [&](int64_t r) { return start + (r < rows ? r : r % rows); });
    if (!program.run("eval_step", error))
      runtimeError(error);
    if (!real)
      continue;
    if (perSample) {
      const void *z = outputOf(program, "eval_step", sig.logits->name);
      int64_t c = sig.classes;
      for (int64_t r = 0; r < rows; ++r) {
        int64_t label = static_cast<int64_t>(labels->at(start + r));
        double best = -std::numeric_limits<double>::infinity(), max = best;
        int64_t arg = 0;
        for (int64_t k = 0; k < c; ++k) {
          double v = elementAt(z, sig.logits->dtype, r * c + k);
          if (v > best) {
            best = v;
            arg = k;
          }
          max = std::max(max, v);
        }
        double sum = 0;
        for (int64_t k = 0; k < c; ++k)
          sum += std::exp(elementAt(z, sig.logits->dtype, r * c + k) - max);
        lossSum += max + std::log(sum) -
                   elementAt(z, sig.logits->dtype, r * c + label);
        correct += arg == label;
      }
    } else if (sig.loss && rows == f.batch) {
      lossSum += elementAt(outputOf(program, "eval_step", sig.loss->name),
                           sig.loss->dtype, 0);
      ++fullBatches;
    }
  }
  if (dataParallel) {
    double totals[3] = {lossSum, correct, static_cast<double>(fullBatches)};
    if (!comm->allReduce(totals, 3, DType::F64, ReduceKind::Sum, "dp",
                         "evaluation totals", error))
      runtimeError(error);
    lossSum = totals[0];
    correct = totals[1];
    fullBatches = static_cast<int64_t>(totals[2]);
  }
  result.samples = n;
  if (perSample) {
    result.loss = lossSum / static_cast<double>(n);
    result.accuracy = correct / static_cast<double>(n);
  } else if (fullBatches > 0) {
    result.loss = lossSum / static_cast<double>(fullBatches);
  }
  return result;
}

/// The most memory this process has held (resident, in bytes).
uint64_t peakResidentBytes() {
  struct rusage usage;
  if (::getrusage(RUSAGE_SELF, &usage) != 0)
    return 0;
  return static_cast<uint64_t>(usage.ru_maxrss) * 1024; // Linux: KiB
}

/// The summary's communication figures of a sharded run (rank 0's; the
/// ranks are symmetric), or nothing.
std::string communicationFields(const Communicator *comm) {
  if (!comm)
    return "";
  const CollectiveStats &s = comm->stats();
  return ", \"ranks\": " + std::to_string(comm->size()) +
         ", \"collectives\": " + std::to_string(s.collectives) +
         ", \"comm_bytes_reduced\": " + std::to_string(s.bytesReduced) +
         ", \"comm_bytes_sent\": " + std::to_string(s.bytesSent) +
         ", \"comm_active_s\": " + jsonNumber(s.activeSeconds) +
         ", \"comm_exposed_s\": " + jsonNumber(s.exposedSeconds);
}

std::string describeResult(const EvalResult &r) {
  char buf[160];
  std::string acc =
      std::isfinite(r.accuracy)
          ? (std::snprintf(buf, sizeof(buf), "%.2f%%", 100.0 * r.accuracy),
             std::string(buf))
          : std::string("n/a");
  std::string loss =
      std::isfinite(r.loss)
          ? (std::snprintf(buf, sizeof(buf), "%.6f", r.loss), std::string(buf))
          : std::string("n/a");
  return "loss " + loss + "  accuracy " + acc + "  (" +
         std::to_string(r.samples) + " samples)";
}

//===----------------------------------------------------------------------===//
// Progress and metrics
//===----------------------------------------------------------------------===//

std::string formatDuration(double seconds) {
  if (!std::isfinite(seconds) || seconds < 0)
    return "?";
  long s = std::lround(seconds);
  char buf[32];
  if (s >= 3600)
    std::snprintf(buf, sizeof(buf), "%ld:%02ld:%02ld", s / 3600, s / 60 % 60,
                  s % 60);
  else
    std::snprintf(buf, sizeof(buf), "%ld:%02ld", s / 60, s % 60);
  return buf;
}

/// Drops the lines of an earlier, interrupted run that lie beyond the
/// checkpoint it resumes from, so the file reads as one uninterrupted run.
void trimMetrics(const std::string &path, uint64_t step) {
  // Only a regular file is rewritten (Support/Files.h); a pipe or a
  // device is appended to as it is.
  std::string refused;
  if (!trainopt::mayReplace(path, refused))
    return;
  std::ifstream in(path);
  if (!in)
    return;
  auto numberAfter = [](const std::string &line, const std::string &key,
                        double &v) {
    size_t at = line.find("\"" + key + "\": ");
    if (at == std::string::npos)
      return false;
    v = std::strtod(line.c_str() + at + key.size() + 4, nullptr);
    return true;
  };
  std::string kept, line;
  while (std::getline(in, line)) {
    double v;
    if (line.rfind("{\"step\": ", 0) == 0 && numberAfter(line, "step", v) &&
        v > static_cast<double>(step))
      continue;
    if (line.find("\"summary\": true") != std::string::npos &&
        numberAfter(line, "steps", v) && v > static_cast<double>(step))
      continue;
    kept += line + "\n";
  }
  in.close();
  std::string tmp = path + ".tmp";
  std::ofstream out(tmp, std::ios::trunc);
  out << kept;
  out.close();
  if (!out || std::rename(tmp.c_str(), path.c_str()) != 0)
    runtimeError("--metrics: cannot rewrite '" + path +
                 "': " + std::strerror(errno));
}

double secondsSince(std::chrono::steady_clock::time_point t) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t)
      .count();
}

//===----------------------------------------------------------------------===//
// The run
//===----------------------------------------------------------------------===//

/// A copy of a persistent value as an array.
/// A copy of the value `v` stored at `data`.
Array arrayOf(const ValueInfo &v, const void *data) {
  Array a;
  a.shape = v.shape;
  a.dtype = v.dtype;
  const auto *p = static_cast<const uint8_t *>(data);
  a.bytes.assign(p, p + v.numElements() * dtypeSize(v.dtype));
  return a;
}

/// The sharding of value `v` (checked when the program was loaded).
Sharding shardingOf(const ValueInfo &v) {
  std::string why;
  std::optional<Sharding> s = Sharding::parse(v.sharding, why);
  if (!s)
    runtimeError("value '" + v.name + "': sharding '" + v.sharding +
                 "': " + why);
  return *s;
}

/// The size of each mesh axis (1 without a communicator), as Sharding.h's
/// functions take it.
std::function<int64_t(const std::string &)> axisSizes(Communicator *comm) {
  return [comm](const std::string &axis) -> int64_t {
    return comm ? comm->groupSize(axis) : 1;
  };
}

/// The shape value `v` has after levels [0, k) of `sharding`.
std::vector<int64_t> shapeAtLevel(const Sharding &sharding, size_t k,
                                  const ValueInfo &v, Communicator *comm) {
  std::string why;
  std::optional<std::vector<int64_t>> shape =
      sharding.shapeAt(k, v.globalShape, axisSizes(comm), why);
  if (!shape)
    runtimeError("value '" + v.name + "': sharding '" + v.sharding +
                 "': " + why);
  return *shape;
}

/// A copy of persistent value `v`, whole: a sharded value is gathered
/// level by level of its sharding, innermost first, from every rank of the
/// level's axis, so every rank must call this for it. (An AXIS=S level,
/// a pipeline stage, stays: acrossStages gathers the stages.)
Array persistentArray(Program &program, const ValueInfo &v) {
  const void *local = persistentOf(program, v.name);
  if (v.sharding.empty())
    return arrayOf(v, local);
  Communicator *comm = program.communicator();
  Sharding sharding = shardingOf(v);
  std::vector<uint8_t> value = arrayOf(v, local).bytes;
  std::string error;
  for (size_t k = sharding.levels.size(); k-- > 0;) {
    const ShardLevel &level = sharding.levels[k];
    if (level.kind == ShardLevel::Kind::Stage)
      continue;
    int64_t ranks = comm ? comm->groupSize(level.axis) : 1;
    std::vector<uint8_t> gathered(value.size() * ranks);
    if (!comm)
      gathered = value;
    else if (!comm->allGatherBytes(value.data(),
                                   static_cast<int64_t>(value.size()),
                                   gathered.data(), level.axis,
                                   "the parts of '" + v.name + "'", error))
      runtimeError(error);
    std::vector<const uint8_t *> parts;
    std::vector<uint64_t> sizes(ranks, value.size());
    for (int64_t r = 0; r < ranks; ++r)
      parts.push_back(gathered.data() + r * value.size());
    if (!joinParts(level, shapeAtLevel(sharding, k, v, comm), v.dtype, parts,
                   sizes, value, error))
      runtimeError("value '" + v.name + "': " + error);
  }
  Array a;
  a.shape = v.globalShape;
  a.dtype = v.dtype;
  a.bytes = std::move(value);
  return a;
}

/// One persistent value of the whole model: its signature, its layout in a
/// sharded checkpoint's manifest, and (when asked for) its whole bytes.
struct ModelValue {
  ValueSignature signature;
  std::string sharding;
  Array array;
};

/// This rank's persistent values, whole (sharded ones gathered: every rank
/// calls it) when `bytes`, else signatures only. On a pipeline a value's
/// manifest layout names its stage, "pp=S".
std::vector<ModelValue> modelValues(Program &program, bool bytes) {
  Communicator *comm = program.communicator();
  int stage = comm && comm->groupSize("pp") > 1 ? comm->coordinate("pp") : -1;
  std::vector<ModelValue> out;
  for (const ValueInfo &v : program.persistentValues()) {
    ModelValue m;
    m.signature = {v.name, kindName(v.kind), v.dtype,
                   v.sharding.empty() ? v.shape : v.globalShape};
    // The stage's own layout after its level: "pp=S,dp:flat".
    m.sharding = stage < 0 ? v.sharding
                 : v.sharding.empty()
                     ? "pp=" + std::to_string(stage)
                     : "pp=" + std::to_string(stage) + "," + v.sharding;
    if (bytes)
      m.array = persistentArray(program, v);
    out.push_back(std::move(m));
  }
  return out;
}

/// Pipeline parallelism: every stage's values, gathered over pp and merged
/// in stage order (a name several stages hold, the step counter, from the
/// first). Every rank calls it. Without a pp axis: `mine` as it is.
std::vector<ModelValue> acrossStages(Program &program,
                                     std::vector<ModelValue> mine) {
  Communicator *comm = program.communicator();
  int stages = comm ? comm->groupSize("pp") : 0;
  if (stages <= 1)
    return mine;
  std::string out;
  auto put = [&](const void *p, size_t n) {
    out.append(static_cast<const char *>(p), n);
  };
  auto putU64 = [&](uint64_t x) { put(&x, sizeof x); };
  auto putString = [&](const std::string &t) {
    putU64(t.size());
    put(t.data(), t.size());
  };
  putU64(mine.size());
  for (const ModelValue &m : mine) {
    putString(m.signature.name);
    putString(m.signature.kind);
    putString(m.sharding);
    putU64(static_cast<uint64_t>(m.signature.dtype));
    putU64(m.signature.shape.size());
    for (int64_t d : m.signature.shape)
      putU64(static_cast<uint64_t>(d));
    putU64(m.array.bytes.size());
    put(m.array.bytes.data(), m.array.bytes.size());
  }
  std::string error;
  std::vector<uint64_t> sizes;
  if (!comm->allGather(out.size(), sizes, "the pipeline stages' sizes", error))
    runtimeError(error);
  uint64_t most = *std::max_element(sizes.begin(), sizes.end());
  out.resize(most);
  std::vector<uint8_t> all(most * stages);
  if (!comm->allGatherBytes(out.data(), static_cast<int64_t>(most), all.data(),
                            "pp", "the pipeline stages' values", error))
    runtimeError(error);
  std::vector<ModelValue> merged;
  std::set<std::string> seen;
  for (int s = 0; s < stages; ++s) {
    const uint8_t *p = all.data() + uint64_t(s) * most;
    auto getU64 = [&]() {
      uint64_t x;
      std::memcpy(&x, p, sizeof x);
      p += sizeof x;
      return x;
    };
    auto getString = [&]() {
      uint64_t n = getU64();
      std::string t(reinterpret_cast<const char *>(p), n);
      p += n;
      return t;
    };
    for (uint64_t i = 0, n = getU64(); i < n; ++i) {
      ModelValue m;
      m.signature.name = getString();
      m.signature.kind = getString();
      m.sharding = getString();
      m.signature.dtype = static_cast<DType>(getU64());
      m.signature.shape.resize(getU64());
      for (int64_t &d : m.signature.shape)
        d = static_cast<int64_t>(getU64());
      m.array.dtype = m.signature.dtype;
      m.array.shape = m.signature.shape;
      uint64_t bytes = getU64();
      m.array.bytes.assign(p, p + bytes);
      p += bytes;
      if (seen.insert(m.signature.name).second)
        merged.push_back(std::move(m));
    }
  }
  return merged;
}

/// A pruned weight's sparsity now: the zeros of its mask.
struct LayerSparsity {
  std::string weight;
  double target = 0;
  int64_t elements = 0, zeros = 0;
};

/// The sparsity of each weight the artifact lists as pruned, from `values`.
std::vector<LayerSparsity> sparsityOf(const Program &program,
                                      const std::vector<ModelValue> &values) {
  std::vector<LayerSparsity> out;
  for (const auto &p : program.artifact().pruned_tensors()) {
    LayerSparsity l{p.weight(), p.sparsity()};
    for (const ModelValue &m : values)
      if (m.signature.name == p.mask()) {
        l.elements = m.array.numElements();
        for (int64_t i = 0; i < l.elements; ++i)
          l.zeros += m.array.at(i) == 0.0;
      }
    out.push_back(l);
  }
  return out;
}

/// Zeroes each pruned weight in `values` where its mask is zero, so an
/// export holds the weights the model computes with.
/// The weights pruned by output channel (what --compact removes).
std::vector<std::string> channelPruned(const Program &program) {
  std::vector<std::string> out;
  for (const auto &p : program.artifact().pruned_tensors())
    if (p.method() == "channel_l1")
      out.push_back(p.weight());
  return out;
}

/// The value named `name` of `values`, or null.
ModelValue *findValue(std::vector<ModelValue> &values,
                      const std::string &name) {
  for (ModelValue &m : values)
    if (m.signature.name == name)
      return &m;
  return nullptr;
}

void foldPruningMasks(const Program &program, std::vector<ModelValue> &values) {
  auto find = [&](const std::string &name) { return findValue(values, name); };
  for (const auto &p : program.artifact().pruned_tensors()) {
    ModelValue *w = find(p.weight()), *mask = find(p.mask());
    if (!w || !mask || w->array.numElements() != mask->array.numElements())
      runtimeError("--export-onnx: the pruned weight '" + p.weight() +
                   "' or its mask '" + p.mask() + "' is missing");
    int64_t n = w->array.numElements();
    size_t width = n ? w->array.bytes.size() / static_cast<size_t>(n) : 0;
    for (int64_t i = 0; i < n; ++i)
      if (mask->array.at(i) == 0.0)
        std::memset(w->array.bytes.data() + i * width, 0, width);
  }
}

/// The weights the model derives from others, recomputed from the final
/// values for the export: a shared weight is codebook[codes] and a
/// log-quantized one the levels of its latent weight (Quantize.cpp), where
/// the model's own copy is the one its last forward read, a step behind.
/// The levels are computed as the model does (log(|l|) times 1 / ln 2, in
/// the weight's precision, rounded half to even); a latent weight within an
/// ulp of a level's boundary may round the other way.
void decodeDerivedWeights(const Program &program,
                          std::vector<ModelValue> &values) {
  auto find = [&](const std::string &name) { return findValue(values, name); };
  for (const auto &t : program.artifact().shared_tensors()) {
    ModelValue *w = find(t.weight()), *book = find(t.codebook()),
               *codes = find(t.codes());
    if (!w || !book || !codes || w->array.dtype != book->array.dtype ||
        w->array.numElements() != codes->array.numElements())
      runtimeError("--export-onnx: the shared weight '" + t.weight() +
                   "', its codebook or its codes are missing");
    size_t width = dtypeSize(w->array.dtype);
    int64_t clusters = book->array.numElements();
    for (int64_t i = 0, n = w->array.numElements(); i < n; ++i) {
      int64_t c = codes->array.intAt(i);
      if (c < 0 || c >= clusters)
        runtimeError("--export-onnx: a code of '" + t.weight() +
                     "' is out of its codebook");
      std::memcpy(w->array.bytes.data() + i * width,
                  book->array.bytes.data() + c * width, width);
    }
  }
  for (const auto &t : program.artifact().log_quantized_tensors()) {
    ModelValue *w = find(t.weight()), *latent = find(t.latent());
    if (!w || !latent || w->array.shape != latent->array.shape ||
        w->array.dtype != latent->array.dtype)
      runtimeError("--export-onnx: the log-quantized weight '" + t.weight() +
                   "' or its latent weight is missing");
    const std::vector<int64_t> &shape = w->array.shape;
    int64_t axis = t.axis(), inner = 1;
    int64_t channels = axis < 0 ? 1 : shape[static_cast<size_t>(axis)];
    for (size_t d = static_cast<size_t>(axis + 1);
         axis >= 0 && d < shape.size(); ++d)
      inner *= shape[d];
    int64_t n = w->array.numElements();
    auto channelOf = [&](int64_t i) {
      return axis < 0 ? 0 : (i / inner) % channels;
    };
    bool single = w->array.dtype != DType::F64;
    // log2 as the model computes it, in the weight's precision.
    auto exponent = [&](double a) {
      if (single)
        return static_cast<double>(
            std::nearbyint(std::log(static_cast<float>(a)) *
                           static_cast<float>(1.0 / std::log(2.0))));
      return std::nearbyint(std::log(a) * (1.0 / std::log(2.0)));
    };
    std::vector<double> top(static_cast<size_t>(channels), 0.0);
    for (int64_t i = 0; i < n; ++i)
      top[channelOf(i)] =
          std::max(top[channelOf(i)], std::fabs(latent->array.at(i)));
    double span = static_cast<double>((int64_t{1} << (t.bits() - 1)) - 2);
    for (int64_t i = 0; i < n; ++i) {
      double l = latent->array.at(i);
      double hi = exponent(top[channelOf(i)]);
      double k = exponent(std::fabs(l));
      double q = k >= hi - span
                     ? std::copysign(std::pow(2.0, std::min(k, hi)), l)
                     : 0.0;
      storeElement(w->array.bytes.data(), w->array.dtype, i, q);
    }
  }
}

/// Writes the whole value `bytes` into persistent value `v`: a sharded
/// value takes this rank's part, level by level of its sharding (zero past
/// the last element of a flat part; every rank the whole of an AXIS:mean
/// value).
void setPersistent(Program &program, const ValueInfo &v,
                   const std::vector<uint8_t> &bytes) {
  void *local = persistentOf(program, v.name);
  if (v.sharding.empty()) {
    std::memcpy(local, bytes.data(), std::min(bytes.size(), v.bytes));
    return;
  }
  Communicator *comm = program.communicator();
  std::string why;
  std::optional<std::vector<uint8_t>> value = partOfWhole(
      shardingOf(v), bytes, v.globalShape, v.dtype, axisSizes(comm),
      [&](const std::string &axis) -> int64_t {
        return comm ? comm->coordinate(axis) : 0;
      },
      why);
  if (!value)
    runtimeError("value '" + v.name + "': sharding '" + v.sharding +
                 "': " + why);
  std::memset(local, 0, v.bytes);
  std::memcpy(local, value->data(), std::min<size_t>(value->size(), v.bytes));
}

/// What identifies the training data for --resume: FNV-1a over each bound
/// array's dtype and shape and the bytes of its first and last `batch`
/// samples (cheap for any size; a checkpoint taken with other data of the
/// same sample count is refused). Never 0 (0: "none recorded").
uint64_t fingerprintOf(const Dataset &d, const std::vector<size_t> &columns,
                       int64_t batch) {
  uint64_t h = 1469598103934665603ull;
  auto mix = [&](const void *data, size_t n) {
    const uint8_t *p = static_cast<const uint8_t *>(data);
    for (size_t i = 0; i < n; ++i)
      h = (h ^ p[i]) * 1099511628211ull;
  };
  for (size_t c : columns) {
    const Array &a = d.arrays[c].second;
    uint8_t dtype = static_cast<uint8_t>(a.dtype);
    mix(&dtype, 1);
    for (int64_t dim : a.shape)
      mix(&dim, sizeof dim);
    size_t rows = a.shape.empty() ? 1 : static_cast<size_t>(a.shape[0]);
    size_t rowBytes = rows ? a.bytes.size() / rows : 0;
    size_t head = std::min(a.bytes.size(), rowBytes * batch);
    mix(a.bytes.data(), head);
    mix(a.bytes.data() + (a.bytes.size() - head), head);
  }
  return h ? h : 1;
}

/// Every value of `ckpt` into the program's persistent value of that name.
void setPersistentValues(Program &program, const Checkpoint &ckpt) {
  for (const CheckpointValue &value : ckpt.values)
    for (const ValueInfo &v : program.persistentValues())
      if (v.name == value.signature.name)
        setPersistent(program, v, value.bytes);
}

/// A probe of `train_step` (trainopt-compile --probe-values), named
/// probe.K:OP:OPERANDS:NODE: OPERANDS are the probe numbers, splat
/// constants (=V) or - of the op's operands; NODE is the ONNX node, input
/// or parameter ("" for values the training passes added).
struct Probe {
  const ValueInfo *value;
  std::string number, op, node;
  std::vector<std::string> operands;
};

/// The probes of `program`, in the step's order (forward, then backward).
std::vector<Probe> probesOf(const Program &program) {
  std::vector<Probe> probes;
  for (const ValueInfo &v : program.outputs("train_step")) {
    if (v.name.rfind("probe.", 0) != 0)
      continue;
    size_t c1 = v.name.find(':'), c2 = v.name.find(':', c1 + 1),
           c3 = v.name.find(':', c2 + 1);
    if (c1 == std::string::npos || c2 == std::string::npos ||
        c3 == std::string::npos)
      continue; // not a name the probe pass writes
    Probe p{&v,
            v.name.substr(6, c1 - 6),
            v.name.substr(c1 + 1, c2 - c1 - 1),
            v.name.substr(c3 + 1),
            {}};
    std::string refs = v.name.substr(c2 + 1, c3 - c2 - 1);
    for (size_t at = 0; !refs.empty();) {
      size_t comma = refs.find(',', at);
      p.operands.push_back(refs.substr(at, comma - at));
      if (comma == std::string::npos)
        break;
      at = comma + 1;
    }
    probes.push_back(std::move(p));
  }
  return probes;
}

/// The index of the first element of `v` (at `data`) that is NaN or inf,
/// or its element count when there is none: a typed scan for the float
/// types (--check-numerics runs it on every value of every step).
int64_t firstNonFiniteElement(const void *data, const ValueInfo &v) {
  int64_t n = v.numElements();
  auto scan = [&](const auto *x) {
    for (int64_t i = 0; i < n; ++i)
      if (!std::isfinite(x[i]))
        return i;
    return n;
  };
  switch (v.dtype) {
  case DType::F32:
    return scan(static_cast<const float *>(data));
  case DType::F64:
    return scan(static_cast<const double *>(data));
  default:
    for (int64_t i = 0; i < n; ++i)
      if (!std::isfinite(elementAt(data, v.dtype, i)))
        return i;
    return n;
  }
}

/// Where a step's first non-finite value comes from: the first probe with
/// a non-finite element although none of its operands has one ("" when no
/// probe has one). A value that is inf by construction (an attention
/// mask's -inf, from a splat "=-inf" operand) has a non-finite operand and
/// is passed over.
std::string firstNonFinite(const Program &program,
                           const std::vector<Probe> &probes) {
  std::set<std::string> nonFinite; // probe numbers
  for (const Probe &p : probes) {
    bool inherited = false;
    for (const std::string &ref : p.operands)
      inherited |= nonFinite.count(ref) > 0 ||
                   (ref.size() > 1 && ref[0] == '=' &&
                    !std::isfinite(std::strtod(ref.c_str() + 1, nullptr)));
    const void *data = outputOf(program, "train_step", p.value->name);
    int64_t i = firstNonFiniteElement(data, *p.value);
    if (i == p.value->numElements())
      continue;
    nonFinite.insert(p.number);
    if (inherited)
      continue;
    std::string at = p.node.empty() ? " (added by the training passes)"
                                    : " at ONNX node '" + p.node + "'";
    return "probe." + p.number + ", the result of " + p.op + at + " (element " +
           std::to_string(i) + ")";
  }
  return "";
}

/// Prints where the overflow of a skipped step starts (firstNonFinite).
void explainOverflow(const Program &program, const std::vector<Probe> &probes,
                     uint64_t step) {
  std::string where = firstNonFinite(program, probes);
  if (!where.empty()) {
    std::fprintf(stderr,
                 "step %llu skipped: the first value that is not finite is "
                 "%s\n",
                 static_cast<unsigned long long>(step), where.c_str());
    return;
  }
  std::fprintf(stderr,
               "step %llu skipped, but no probed value becomes inf or NaN "
               "from finite operands (the scaled gradient norm passed "
               "float32's range, or a non-finite value came in)\n",
               static_cast<unsigned long long>(step));
}

} // namespace

[[noreturn]] void trainopt::rt::usageError(const std::string &message) {
  throw TrainerError(kUsageError, message);
}
[[noreturn]] void trainopt::rt::runtimeError(const std::string &message) {
  throw TrainerError(kRuntimeError, message);
}

void trainopt::rt::reportTrainerError(const TrainerError &error) {
  if (barShown)
    std::fputc('\n', stderr);
  barShown = false;
  std::fprintf(stderr, "trainopt-run: error: %s\n", error.what());
  if (error.code == kUsageError)
    std::fprintf(stderr, "run 'trainopt-run --help' for the flags\n");
}

/// The run, with the program it loads left in `program` for train().
static int trainWith(const TrainerOptions &given,
                     std::unique_ptr<Program> &program) {
  TrainerOptions o = given;
  std::string error;
  LoadOptions load;
  load.cuda = o.cuda;
  load.cuda.profile = o.profile;
  load.collectives = o.collectives;
  program = Program::load(o.model, load, error);
  std::string model = o.model;
  if (!o.embeddedName.empty()) {
    ::unlink(o.model.c_str());
    model = o.embeddedName;
    if (!program)
      error = "the model embedded in '" + model + "': " + error;
  }
  if (!program)
    runtimeError(error);
  // What --export-onnx writes, checked now rather than after training.
  if (!given.exportOnnx.empty() &&
      !checkOnnxExport(*program, "'" + model + "'", o.exportDtype,
                       given.compact, error))
    runtimeError(error);
  // A sharded program: this rank's part of the data-parallel group. Rank 0
  // alone reports and writes files; every rank holds the same parameters.
  Communicator *comm = program->communicator();
  int rank = comm ? comm->rank() : 0;
  // (A mesh without a dp axis is one data-parallel group.)
  int64_t dp = comm ? std::max(comm->groupSize("dp"), 1) : 1;
  int dpRank = comm ? std::max(comm->coordinate("dp"), 0) : 0;
  if (rank != 0) {
    o.quiet = true;
    o.explainOverflow = false;
    o.metrics.clear();
    o.saveParams.clear();
    o.exportOnnx.clear();
    o.dumpEval.clear();
    o.dumpStep.clear();
    o.profile = false;
  }
  std::string convError;
  if (!setConvKernels(o.cpuConv == "onednn"    ? ConvKernels::OneDnn
                      : o.cpuConv == "builtin" ? ConvKernels::Builtin
                                               : ConvKernels::Auto,
                      convError))
    runtimeError(convError);
  if (o.threads)
    program->setThreads(static_cast<int>(*o.threads));
  else if (comm)
    program->setThreads(launchInfo().coresPerRank);
  if (program->target() == "cuda" && !o.quiet)
    std::fprintf(stderr, "running on %s\n",
                 program->deviceDescription().c_str());
  program->setProfiling(o.profile);
  if (!program->hasEntryPoint("train_step"))
    runtimeError("'" + model +
                 "' has no train_step (compile it with --emit=train-mlir)");
  Feed train = findFeed(*program, model, "train_step", /*needLabels=*/true);
  EvalSignature eval = findEval(*program, model);
  if (!eval.available && (!o.evalData.empty() || o.trainEval))
    std::fprintf(stderr,
                 "trainopt-run: warning: '%s' has no eval_step; skipping "
                 "evaluation\n",
                 model.c_str());
  if (!eval.available && !o.dumpEval.empty())
    runtimeError("--dump-eval: '" + model + "' has no eval_step");

  // Data.
  Dataset trainData = loadDataset("--data", o.data, /*eval=*/false,
                                  tokenWindow(train), o.tokenBytes);
  std::vector<size_t> trainColumns =
      bind("--data", trainData, train, eval.classes);
  std::optional<Dataset> evalData;
  std::vector<size_t> evalColumns, trainEvalColumns;
  if (!o.evalData.empty()) {
    evalData = loadDataset("--eval-data", o.evalData, /*eval=*/true,
                           tokenWindow(train), o.tokenBytes);
    if (eval.available)
      evalColumns = bind("--eval-data", *evalData, eval.feed, eval.classes);
  }
  if (eval.available)
    trainEvalColumns = bind("--data", trainData, eval.feed, eval.classes);
  Normalization trainNorm = normalizationFor(o, trainData, train, trainColumns);
  auto evalNorm = [&]() {
    return normalizationFor(o, *evalData, eval.feed, evalColumns);
  };

  // Where to start.
  uint64_t seed = o.seed;
  bool shuffle = o.shuffle;
  uint64_t step = 0;
  BatchPosition position;
  double trainTime = 0, epochLossSum = 0;
  uint64_t epochLossCount = 0;
  int64_t samples = trainData.samples();
  // The global batch: every data-parallel rank's batch (docs/distributed.md).
  int64_t globalBatch = train.batch * dp;
  int64_t batchesPerEpoch = samples / globalBatch;
  if (batchesPerEpoch < 1)
    runtimeError(
        "--data: '" + trainData.spec + "' has " + std::to_string(samples) +
        " samples, fewer than one batch of " + std::to_string(globalBatch) +
        (dp > 1 ? " (" + std::to_string(train.batch) + " on each of " +
                      std::to_string(dp) + " ranks)"
                : std::string()));
  uint64_t totalSteps =
      o.steps ? *o.steps : static_cast<uint64_t>(*o.epochs) * batchesPerEpoch;
  uint64_t dataFingerprint =
      fingerprintOf(trainData, trainColumns, globalBatch);
  // The whole model's values (every stage's, on a pipeline).
  std::vector<ValueSignature> signature;
  for (ModelValue &m : acrossStages(*program, modelValues(*program, false)))
    signature.push_back(std::move(m.signature));
  if (o.resume) {
    std::string path = o.resumePath;
    if (path.empty() && !findLatestCheckpoint(o.checkpointDir, path, error))
      runtimeError("--resume: " + error);
    Checkpoint ckpt;
    if (!readCheckpoint(path, ckpt, error) ||
        !checkCompatible(ckpt, path, program->modelName(), signature, error))
      runtimeError("--resume: " + error);
    uint64_t ckptSamples = ckpt.counter("train_samples");
    uint64_t ckptBatch = ckpt.counter("batch_size");
    // Same count and batch, other samples: the resumed run would not
    // continue the one checkpointed (a checkpoint written without a
    // fingerprint, by an older trainopt or the Python package, warns).
    uint64_t ckptData = ckpt.counter("data_fingerprint", 0);
    if (ckptData && ckptData != dataFingerprint)
      runtimeError("--resume: checkpoint '" + path +
                   "' was taken with other training data than --data '" +
                   o.data +
                   "' (the fingerprint of the arrays' shapes and first and "
                   "last batches differs); resume with the data it was "
                   "trained on, or start a new run");
    if (!ckptData)
      std::fprintf(stderr,
                   "trainopt-run: warning: checkpoint '%s' records no "
                   "fingerprint of its training data; --data is assumed to "
                   "be the same\n",
                   path.c_str());
    if (ckptSamples != static_cast<uint64_t>(samples) ||
        ckptBatch != static_cast<uint64_t>(globalBatch))
      runtimeError("--resume: checkpoint '" + path + "' was taken with " +
                   std::to_string(ckptSamples) +
                   " training samples in (global) batches of " +
                   std::to_string(ckptBatch) + "; --data has " +
                   std::to_string(samples) + " samples in batches of " +
                   std::to_string(globalBatch));
    if (ckpt.step > totalSteps)
      runtimeError("--resume: checkpoint '" + path + "' is at step " +
                   std::to_string(ckpt.step) + ", beyond the " +
                   std::to_string(totalSteps) + " steps of this run");
    if (o.seedGiven && o.seed != ckpt.seed)
      std::fprintf(stderr,
                   "trainopt-run: warning: --seed %llu ignored: resuming with "
                   "the checkpoint's seed %llu\n",
                   static_cast<unsigned long long>(o.seed),
                   static_cast<unsigned long long>(ckpt.seed));
    if (o.shuffle != ckpt.shuffle)
      std::fprintf(stderr,
                   "trainopt-run: warning: resuming %s shuffling, as the "
                   "checkpoint was taken\n",
                   ckpt.shuffle ? "with" : "without");
    if (ckpt.metric("scale", trainNorm.scale) != trainNorm.scale ||
        ckpt.metric("mean", trainNorm.mean) != trainNorm.mean ||
        ckpt.metric("std", trainNorm.std) != trainNorm.std)
      std::fprintf(stderr, "trainopt-run: warning: the normalization differs "
                           "from the checkpoint's; the resumed run will not "
                           "repeat the original\n");
    setPersistentValues(*program, ckpt);
    seed = ckpt.seed;
    shuffle = ckpt.shuffle;
    step = ckpt.step;
    position.epoch = ckpt.epoch;
    position.batch = ckpt.batch;
    trainTime = ckpt.metric("time_s");
    epochLossSum = ckpt.metric("epoch_loss_sum");
    epochLossCount = ckpt.counter("epoch_loss_count");
    if (!o.quiet)
      std::fprintf(stderr, "resuming from '%s' at step %llu\n", path.c_str(),
                   static_cast<unsigned long long>(step));
  }

  BatchStream stream;
  std::vector<BatchColumn> columns;
  for (size_t i = 0; i < train.inputs.size(); ++i)
    columns.push_back({trainData.arrays[trainColumns[i]].second,
                       Feed::normalized(*train.inputs[i])});
  if (!BatchStream::create(std::move(columns), train.batch, shuffle, seed,
                           trainNorm, stream, error) ||
      !stream.shard(dpRank, dp, error))
    runtimeError("--data: " + error);
  stream.seek(position);
  // The position after the last batch that ran (the stream reads one batch
  // ahead, so on a GPU the next batch is prepared while a step computes).
  BatchPosition consumed = stream.position();

  // Flags checked against the program before any file is touched.
  // --explain-overflow: the probes, parsed once.
  std::vector<Probe> probes;
  if (o.explainOverflow) {
    bool scaled = false;
    for (const ValueInfo &v : program->outputs("train_step"))
      scaled |= v.kind == ValueKind::Metric && v.name == "skipped";
    if (!scaled)
      usageError("--explain-overflow: '" + o.model +
                 "' has no loss scaling (compile with --amp=fp16)");
    probes = probesOf(*program);
    if (probes.empty())
      usageError("--explain-overflow: '" + o.model +
                 "' has no probes; compile it with trainopt-compile "
                 "--probe-values");
  }
  if (o.checkNumerics) {
    probes = probesOf(*program);
    if (probes.empty())
      usageError("--check-numerics: '" + o.model +
                 "' has no probes to check; compile it with trainopt-compile "
                 "--probe-values (which returns every value of the step)");
  }
  // The directory and any missing parents, as docs/cli.md says.
  if (!o.checkpointDir.empty() && rank == 0 &&
      !trainopt::createDirectories(o.checkpointDir, error))
    runtimeError("--checkpoint-dir: " + error);

  FILE *metrics = nullptr;
  if (!o.metrics.empty()) {
    if (o.resume)
      trimMetrics(o.metrics, step);
    metrics = std::fopen(o.metrics.c_str(), o.resume ? "a" : "w");
    if (!metrics)
      runtimeError("--metrics: cannot open '" + o.metrics +
                   "': " + std::strerror(errno));
  }

  // Scalar outputs of train_step, reported every step: the loss (by its
  // kind), lr and grad_norm (metrics, by name) first.
  std::vector<const ValueInfo *> scalars;
  const ValueInfo *lossInfo = nullptr, *lrInfo = nullptr;
  for (const ValueInfo &v : program->outputs("train_step"))
    if (v.kind == ValueKind::Loss && v.numElements() == 1)
      scalars.push_back(lossInfo = &v);
  for (const char *name : {"lr", "grad_norm"})
    for (const ValueInfo &v : program->outputs("train_step"))
      if (v.kind == ValueKind::Metric && v.name == name && v.numElements() == 1)
        scalars.push_back(&v);
  for (const ValueInfo &v : program->outputs("train_step"))
    if (v.numElements() == 1 &&
        std::find(scalars.begin(), scalars.end(), &v) == scalars.end() &&
        (v.kind == ValueKind::Metric || v.kind == ValueKind::Output))
      scalars.push_back(&v);
  // `skipped` (loss scaling): 1 on a step whose gradients overflowed.
  const ValueInfo *gradNormInfo = nullptr;
  for (const ValueInfo &v : program->outputs("train_step"))
    if (v.kind == ValueKind::Metric && v.name == "grad_norm" &&
        v.numElements() == 1)
      gradNormInfo = &v;
  const ValueInfo *skippedInfo = nullptr;
  for (const ValueInfo *v : scalars)
    if (v->kind == ValueKind::Metric && v->name == "lr")
      lrInfo = v;
    else if (v->kind == ValueKind::Metric && v->name == "skipped")
      skippedInfo = v;
  uint64_t skippedSteps = 0;

  // A checkpoint's metadata and values: whole (sharded values gathered:
  // every rank must call it), or this rank's own for a sharded checkpoint
  // (rank 0 every value, the others their sharded ones).
  // A sharded checkpoint's replicated values are in the files of the ranks
  // at coordinate 0 of every axis but pp (rank 0, and each pipeline
  // stage's first).
  bool writesReplicated = true;
  if (comm)
    for (const auto &[axis, size] : comm->mesh().axes)
      writesReplicated =
          writesReplicated && (axis == "pp" || comm->coordinate(axis) == 0);
  auto makeCheckpoint = [&](bool whole) {
    Checkpoint c = whole ? checkpointOf(*program) : Checkpoint();
    c.modelName = program->modelName();
    c.step = step;
    BatchPosition pos = consumed;
    c.epoch = pos.epoch;
    c.batch = pos.batch;
    c.seed = seed;
    c.shuffle = shuffle;
    c.counters = {{"train_samples", static_cast<uint64_t>(samples)},
                  {"batch_size", static_cast<uint64_t>(globalBatch)},
                  {"epoch_loss_count", epochLossCount},
                  {"data_fingerprint", dataFingerprint}};
    c.metrics = {{"time_s", trainTime},
                 {"epoch_loss_sum", epochLossSum},
                 {"scale", trainNorm.scale},
                 {"mean", trainNorm.mean},
                 {"std", trainNorm.std}};
    for (const ValueInfo &v : program->persistentValues()) {
      if (whole || (!writesReplicated && v.sharding.empty()))
        continue;
      Array a = arrayOf(v, persistentOf(*program, v.name));
      c.values.push_back(
          {{v.name, kindName(v.kind), v.dtype, a.shape}, std::move(a.bytes)});
    }
    return c;
  };
  // Resuming from the newest checkpoint of the directory: the current step
  // is already saved there.
  uint64_t checkpointedStep =
      o.resume && o.resumePath.empty() ? step : UINT64_MAX;
  auto saveCheckpoint = [&]() {
    std::string path;
    if (!comm) {
      if (!writeCheckpoint(o.checkpointDir, makeCheckpoint(true), path,
                           error) ||
          !keepLast(o.checkpointDir, static_cast<size_t>(o.keepCheckpoints),
                    error))
        runtimeError("--checkpoint-dir: " + error);
      checkpointedStep = step;
      return;
    }
    // Several ranks: a sharded checkpoint (Checkpoint.h), committed by one
    // rename once every rank's file is on disk. Writing may take a while:
    // the barriers wait ten times the collective timeout plus a second per
    // 10 MB of this rank's persistent values (as slow a disk as a network
    // file system under load), so a rank that hangs while the others write
    // still ends the job. The replicated values are rank 0's (its
    // BatchNorm statistics, as DDP).
    uint64_t fileBytes = 0;
    for (const ValueInfo &v : program->persistentValues())
      fileBytes += v.bytes;
    double patience = 10 * o.collectives.timeoutSeconds +
                      static_cast<double>(fileBytes) / 1e7;
    auto barrier = [&](const char *what) {
      if (!comm->barrier(what, error, patience))
        runtimeError(error);
    };
    if (rank == 0 && !beginShardedCheckpoint(o.checkpointDir, step, error))
      runtimeError("--checkpoint-dir: " + error);
    barrier("checkpoint directory");
    if (!writeCheckpointShard(o.checkpointDir, rank, makeCheckpoint(false),
                              error))
      runtimeError("--checkpoint-dir: " + error);
    barrier("checkpoint files");
    std::vector<ModelValue> values =
        acrossStages(*program, modelValues(*program, false));
    if (rank == 0) {
      ShardManifest manifest;
      const Mesh &mesh = comm->mesh();
      manifest.mesh = mesh.axes;
      for (int64_t r = 0; r < mesh.size(); ++r) {
        // Row-major, as the communicator's groups.
        std::vector<int64_t> coords(mesh.axes.size());
        int64_t stride = 1;
        for (size_t k = mesh.axes.size(); k-- > 0;) {
          coords[k] = (r / stride) % mesh.axes[k].second;
          stride *= mesh.axes[k].second;
        }
        manifest.coordinates.push_back(std::move(coords));
      }
      for (ModelValue &m : values)
        manifest.values.push_back({std::move(m.signature), m.sharding});
      if (!commitShardedCheckpoint(o.checkpointDir, step, manifest, path,
                                   error) ||
          !keepLast(o.checkpointDir, static_cast<size_t>(o.keepCheckpoints),
                    error))
        runtimeError("--checkpoint-dir: " + error);
    }
    barrier("checkpoint commit");
    checkpointedStep = step;
  };

  // Progress.
  bool bar = !o.quiet && ::isatty(STDERR_FILENO);
  uint64_t epochSteps = std::min<uint64_t>(batchesPerEpoch, totalSteps);
  uint64_t logEvery =
      o.logEvery ? *o.logEvery : std::max<uint64_t>(1, epochSteps / 10);
  uint64_t totalEpochs = (totalSteps + batchesPerEpoch - 1) / batchesPerEpoch;
  uint64_t startStep = step;
  auto runStart = std::chrono::steady_clock::now();
  auto lastDraw = runStart - std::chrono::seconds(1);
  double lastLr = std::numeric_limits<double>::quiet_NaN();
  auto progress = [&](bool force) {
    double elapsed = secondsSince(runStart);
    uint64_t done = step - startStep;
    double rate = elapsed > 0 ? done * globalBatch / elapsed : 0;
    double eta =
        done > 0 ? (totalSteps - step) * (elapsed / done) : std::nan("");
    double meanLoss =
        epochLossCount ? epochLossSum / epochLossCount : std::nan("");
    char loss[32];
    std::snprintf(loss, sizeof(loss), "%.4f", meanLoss);
    uint64_t epoch = consumed.epoch + 1;
    if (bar) {
      if (!force && std::chrono::steady_clock::now() - lastDraw <
                        std::chrono::milliseconds(100))
        return;
      lastDraw = std::chrono::steady_clock::now();
      constexpr int width = 24;
      int filled =
          static_cast<int>(width * step / std::max<uint64_t>(1, totalSteps));
      std::string b(filled, '=');
      if (filled < width)
        b += '>' + std::string(width - filled - 1, ' ');
      std::fprintf(stderr,
                   "\r\033[Kepoch %llu/%llu [%s] %llu/%llu loss %s  %.0f "
                   "samples/s  ETA %s",
                   static_cast<unsigned long long>(epoch),
                   static_cast<unsigned long long>(totalEpochs), b.c_str(),
                   static_cast<unsigned long long>(step),
                   static_cast<unsigned long long>(totalSteps), loss, rate,
                   formatDuration(eta).c_str());
      std::fflush(stderr);
      barShown = true;
    } else if (!o.quiet) {
      std::fprintf(stderr,
                   "epoch %llu/%llu step %llu/%llu loss %s lr %s %.0f "
                   "samples/s ETA %s\n",
                   static_cast<unsigned long long>(epoch),
                   static_cast<unsigned long long>(totalEpochs),
                   static_cast<unsigned long long>(step),
                   static_cast<unsigned long long>(totalSteps), loss,
                   jsonNumber(lastLr, DType::F32).c_str(), rate,
                   formatDuration(eta).c_str());
    }
  };
  auto endBarLine = [&]() {
    if (barShown) {
      std::fputc('\n', stderr);
      barShown = false;
    }
  };

  // Training.
  std::vector<std::pair<std::string, Array>> stepOutputs;
  // On a GPU the next batch is written and its upload started while the
  // current step computes (the inputs alternate between two buffer sets);
  // on the CPU the step has finished when `run` returns.
  bool pipelined = program->target() == "cuda";
  bool staged = false;
  auto writeBatch = [&]() {
    std::vector<BatchSlot> slots;
    for (const ValueInfo *v : train.inputs)
      slots.push_back({inputOf(*program, "train_step", v->name), v->dtype});
    stream.next(slots);
  };
  while (step < totalSteps) {
    auto stepStart = std::chrono::steady_clock::now();
    if (!staged)
      writeBatch();
    auto runStartTime = std::chrono::steady_clock::now();
    if (!program->run("train_step", error))
      runtimeError(error);
    ++step;
    // Kept before anything else runs: eval_step may reuse the arena.
    if (!o.dumpStep.empty() && step == totalSteps)
      for (const ValueInfo &v : program->outputs("train_step"))
        stepOutputs.push_back(
            {v.name, arrayOf(v, outputOf(*program, "train_step", v.name))});
    BatchPosition pos = consumed = stream.position();
    staged = pipelined && step < totalSteps;
    if (staged) {
      writeBatch();
      if (!program->stageInputs("train_step", error))
        runtimeError(error);
    }
    if (lossInfo) {
      double loss = elementAt(outputOf(*program, "train_step", lossInfo->name),
                              lossInfo->dtype, 0);
      epochLossSum += loss;
      ++epochLossCount;
    }
    if (lrInfo)
      lastLr = elementAt(outputOf(*program, "train_step", lrInfo->name),
                         lrInfo->dtype, 0);
    if (skippedInfo &&
        elementAt(outputOf(*program, "train_step", skippedInfo->name),
                  skippedInfo->dtype, 0) != 0) {
      ++skippedSteps;
      if (o.explainOverflow) {
        endBarLine();
        explainOverflow(*program, probes, step);
      }
    }
    if (metrics) {
      std::string line = "{\"step\": " + std::to_string(step) +
                         ", \"epoch\": " + std::to_string(pos.epoch + 1);
      for (const ValueInfo *v : scalars)
        line += ", " + jsonString(v->name) + ": " +
                jsonNumber(elementAt(outputOf(*program, "train_step", v->name),
                                     v->dtype, 0),
                           v->dtype);
      char ms[32];
      std::snprintf(ms, sizeof(ms), "%.3f", secondsSince(runStartTime) * 1e3);
      line += ", \"step_ms\": " + std::string(ms);
      std::snprintf(ms, sizeof(ms), "%.3f", secondsSince(runStart) * 1e3);
      line += ", \"t_ms\": " + std::string(ms) + "}\n";
      if (std::fputs(line.c_str(), metrics) < 0 || std::fflush(metrics) != 0)
        runtimeError("--metrics: cannot write '" + o.metrics +
                     "': " + std::strerror(errno));
    }
    // A step that made a non-finite value: --check-numerics names the first
    // one; a non-finite loss stops the run unless --allow-nan. Steps loss
    // scaling skips are its business. Every rank must stop at the same
    // step: with several ranks the gradient norm decides (the step
    // all-reduces it, where each rank's loss is its own), and
    // --check-numerics agrees by an all-reduce of its own (uncounted).
    {
      auto scalar = [&](const ValueInfo *v) {
        return elementAt(outputOf(*program, "train_step", v->name), v->dtype,
                         0);
      };
      bool skipped = skippedInfo && scalar(skippedInfo) != 0;
      double loss = lossInfo ? scalar(lossInfo) : 0.0;
      const ValueInfo *decider = comm && gradNormInfo ? gradNormInfo : lossInfo;
      double decided = decider ? scalar(decider) : 0.0;
      std::string where = o.checkNumerics && !skipped
                              ? firstNonFinite(*program, probes)
                              : std::string();
      double bad[2] = {where.empty() ? 0.0 : 1.0,
                       !skipped && !std::isfinite(decided) ? 1.0 : 0.0};
      if (comm && o.checkNumerics) {
        comm->countCollectives(false);
        bool agreed = comm->allReduce(bad, 2, DType::F64, ReduceKind::Max, "",
                                      "the numerics check", error);
        comm->countCollectives(true);
        if (!agreed)
          runtimeError(error);
      }
      std::string at = "step " + std::to_string(step) + " (epoch " +
                       std::to_string(pos.epoch + 1) + ")";
      if (bad[0] != 0 || (o.checkNumerics && bad[1] != 0)) {
        endBarLine();
        runtimeError(
            "--check-numerics: " + at +
            (where.empty()
                 ? std::string(": another rank made a value that is "
                               "not finite")
                 : ": the first value that is not finite is " + where) +
            "; training stopped");
      }
      if (bad[1] != 0 && !o.allowNan) {
        endBarLine();
        auto what = [](double v) {
          return std::string(std::isnan(v) ? "NaN" : "infinite");
        };
        runtimeError((decider == gradNormInfo && decider != lossInfo
                          ? "the gradient norm is " + what(decided)
                          : "the loss is " + what(decided)) +
                     " at " + at +
                     "; training stopped. --check-numerics (with an artifact "
                     "compiled with --probe-values) names the op that made it; "
                     "--allow-nan trains on");
      }
    }
    trainTime += secondsSince(stepStart);
    bool epochEnd = pos.batch == batchesPerEpoch;
    if (!o.quiet &&
        (bar || step % logEvery == 0 || step == totalSteps || epochEnd))
      progress(step == totalSteps || epochEnd);
    if (epochEnd) {
      if (!o.quiet) {
        endBarLine();
        std::fprintf(stderr, "epoch %llu: mean train_step loss %.6f\n",
                     static_cast<unsigned long long>(pos.epoch + 1),
                     epochLossCount ? epochLossSum / epochLossCount
                                    : std::nan(""));
      }
      if (o.evalEveryEpoch && eval.available) {
        // Every rank evaluates its share; rank 0 reports.
        EvalResult r =
            evaluate(*program, eval, *evalData, evalColumns, evalNorm());
        endBarLine();
        if (rank == 0)
          std::fprintf(stderr, "epoch %llu: eval %s\n",
                       static_cast<unsigned long long>(pos.epoch + 1),
                       describeResult(r).c_str());
      }
      epochLossSum = 0;
      epochLossCount = 0;
    }
    if (o.checkpointEvery > 0 &&
        step % static_cast<uint64_t>(o.checkpointEvery) == 0)
      saveCheckpoint();
  }
  endBarLine();
  if (!program->synchronize(error))
    runtimeError(error);
  if (!o.checkpointDir.empty() && checkpointedStep != step)
    saveCheckpoint();

  // Summary.
  std::optional<EvalResult> trainResult, evalResult;
  if (eval.available && o.trainEval)
    trainResult =
        evaluate(*program, eval, trainData, trainEvalColumns, trainNorm);
  if (eval.available && evalData)
    evalResult = evaluate(*program, eval, *evalData, evalColumns, evalNorm());
  double samplesPerSecond = trainTime > 0
                                ? (step - startStep) * globalBatch / trainTime
                                : std::nan("");
  double epochs = static_cast<double>(step) / batchesPerEpoch;
  // Pruning: each mask's zeros (every rank gathers).
  std::vector<LayerSparsity> sparsity;
  if (program->artifact().pruned_tensors_size())
    sparsity = sparsityOf(*program, modelValues(*program, true));
  int64_t prunedElements = 0, prunedZeros = 0;
  for (const LayerSparsity &l : sparsity)
    prunedElements += l.elements, prunedZeros += l.zeros;
  auto fraction = [](int64_t part, int64_t whole) {
    return whole ? static_cast<double>(part) / static_cast<double>(whole) : 0.0;
  };
  // Rank 0 reports; the others still join the collectives below.
  if (rank == 0) {
    std::printf(
        "trained %llu steps (%.2f epochs) in %.2f s, %.0f samples/s%s\n",
        static_cast<unsigned long long>(step), epochs, trainTime,
        samplesPerSecond,
        dp > 1 ? (" on " + std::to_string(dp) + " ranks").c_str() : "");
    if (comm && comm->stats().collectives > 0 && step > startStep) {
      const CollectiveStats &cs = comm->stats();
      double steps = static_cast<double>(step - startStep);
      std::printf("communication: %.3f MiB reduced, %.3f MiB gathered "
                  "and %.3f MiB sent per step by each rank; %.1f%% of %.2f ms "
                  "per step hidden behind compute\n",
                  cs.bytesReduced / steps / 1048576.0,
                  cs.bytesGathered / steps / 1048576.0,
                  cs.bytesSent / steps / 1048576.0,
                  cs.activeSeconds > 0
                      ? 100.0 * (1.0 - cs.exposedSeconds / cs.activeSeconds)
                      : 100.0,
                  1e3 * cs.activeSeconds / steps);
    }
    if (skippedInfo)
      std::printf("skipped %llu of %llu steps (gradients overflowed the loss "
                  "scale; this run's steps only)\n",
                  static_cast<unsigned long long>(skippedSteps),
                  static_cast<unsigned long long>(step - startStep));
    if (!sparsity.empty()) {
      std::string layers;
      for (const LayerSparsity &l : sparsity) {
        char text[32];
        std::snprintf(text, sizeof text, " %.3f", fraction(l.zeros, l.elements));
        layers += (layers.empty() ? "" : ", ") + l.weight + text;
      }
      std::printf("sparsity %.3f of %lld pruned weights (%s)\n",
                  fraction(prunedZeros, prunedElements),
                  static_cast<long long>(prunedElements), layers.c_str());
    }
    if (trainResult)
      std::printf("train %s\n", describeResult(*trainResult).c_str());
    if (evalResult)
      std::printf("eval  %s\n", describeResult(*evalResult).c_str());
  }
  std::fflush(stdout);
  if (metrics) {
    auto sparsityFields = [&]() -> std::string {
      if (sparsity.empty())
        return "";
      std::string layers;
      for (const LayerSparsity &l : sparsity)
        layers += (layers.empty() ? "" : ", ") + jsonString(l.weight) + ": " +
                  jsonNumber(fraction(l.zeros, l.elements));
      return ", \"sparsity\": " +
             jsonNumber(fraction(prunedZeros, prunedElements)) +
             ", \"layer_sparsity\": {" + layers + "}";
    };
    auto field = [](const std::optional<EvalResult> &r, bool loss) {
      return r ? jsonNumber(loss ? r->loss : r->accuracy) : "null";
    };
    std::string line =
        "{\"summary\": true, \"train_loss\": " + field(trainResult, true) +
        ", \"train_accuracy\": " + field(trainResult, false) +
        ", \"eval_loss\": " + field(evalResult, true) +
        ", \"eval_accuracy\": " + field(evalResult, false) +
        ", \"steps\": " + std::to_string(step) +
        ", \"epochs\": " + jsonNumber(epochs) +
        ", \"time_s\": " + jsonNumber(trainTime) +
        ", \"samples_per_s\": " + jsonNumber(samplesPerSecond) +
        communicationFields(comm) + sparsityFields() +
        ", \"device\": " + jsonString(program->deviceDescription()) +
        ", \"device_bytes\": " + std::to_string(program->deviceBytes()) +
        ", \"peak_rss_bytes\": " + std::to_string(peakResidentBytes()) + "}\n";
    bool ok = std::fputs(line.c_str(), metrics) >= 0;
    ok = (std::fclose(metrics) == 0) && ok;
    if (!ok)
      runtimeError("--metrics: cannot write '" + o.metrics + "'");
  }

  // Results.
  if (!o.dumpStep.empty() && !writeNpz(o.dumpStep, stepOutputs, error))
    runtimeError("--dump-step: " + error);
  if (!given.saveParams.empty()) {
    // Every rank gathers the sharded values (and a pipeline's stages');
    // rank 0 writes.
    std::vector<std::pair<std::string, Array>> arrays;
    for (ModelValue &m : acrossStages(*program, modelValues(*program, true)))
      arrays.push_back({m.signature.name, std::move(m.array)});
    if (rank == 0 && !writeNpz(o.saveParams, arrays, error))
      runtimeError("--save-params: " + error);
  }
  // Every rank runs the dump's eval_step (it may gather ZeRO-3
  // parameters); rank 0 writes.
  if (!given.dumpEval.empty()) {
    const Dataset &d = *evalData;
    int64_t rows = std::min(eval.feed.batch, d.samples());
    // The first batch (wrapping around a set smaller than one), or the
    // first N full batches, each value's batches concatenated on dim 0
    // (a scalar, such as the loss, then has one entry per batch).
    int64_t full = d.samples() / eval.feed.batch;
    int64_t batches =
        given.dumpEvalBatches == 0
            ? std::max<int64_t>(full, 1)
            : std::min(given.dumpEvalBatches, std::max<int64_t>(full, 1));
    std::vector<std::pair<std::string, Array>> arrays;
    auto add = [&](const ValueInfo &v, const void *data, size_t &k) {
      Array a = arrayOf(v, data);
      if (batches > 1 && a.shape.empty())
        a.shape = {1};
      if (k == arrays.size()) {
        arrays.push_back({v.name, std::move(a)});
      } else {
        Array &all = arrays[k].second;
        all.bytes.insert(all.bytes.end(), a.bytes.begin(), a.bytes.end());
        all.shape[0] += a.shape[0];
      }
      ++k;
    };
    for (int64_t b = 0; b < batches; ++b) {
      feedRows(*program, eval.feed, d, evalColumns, evalNorm(),
               [&](int64_t r) { return b * rows + r % rows; });
      // Inputs are copied before the run: the memory plan may reuse their
      // storage for temporaries once they are read.
      size_t k = 0;
      for (const ValueInfo &v : program->inputs("eval_step"))
        add(v, inputOf(*program, "eval_step", v.name), k);
      if (!program->run("eval_step", error))
        runtimeError(error);
      for (const ValueInfo &v : program->outputs("eval_step"))
        add(v, outputOf(*program, "eval_step", v.name), k);
    }
    if (rank == 0 && !writeNpz(given.dumpEval, arrays, error))
      runtimeError("--dump-eval: " + error);
  }
  if (!given.exportOnnx.empty()) {
    // Every rank gathers the sharded values; rank 0 writes.
    std::vector<std::string> compacted;
    if (!exportTrainedOnnx(*program, given.exportOnnx, o.exportDtype,
                           given.compact, compacted, error))
      runtimeError("--export-onnx: " + error);
    for (const std::string &line : compacted)
      std::printf("compacted %s\n", line.c_str());
  }
  if (o.profile)
    std::fputs(program->profileReport().c_str(), stdout);
  return 0;
}

int trainopt::rt::train(const TrainerOptions &given) {
  std::unique_ptr<Program> program;
  try {
    return trainWith(given, program);
  } catch (const TrainerError &e) {
    // A rank that fails ends the whole job: the others would wait for it
    // in their next collective until the timeout.
    Communicator *comm = program ? program->communicator() : nullptr;
    if (!comm)
      throw;
    reportTrainerError(e);
    comm->abort(e.code);
  }
  return kRuntimeError; // not reached: abort ends the process
}

/// The artifact appended to this executable by trainopt-compile --emit=exe
/// (artifact bytes, uint64 length, "TOEXE001"), or false when there is none.

TrainerOptions
trainopt::rt::parseTrainerFlags(const std::vector<std::string> &args,
                                bool embedded) {
  return parseFlags(args, embedded);
}

const char *trainopt::rt::trainerHelp() { return kHelp; }

namespace {
std::vector<QuantizedTensor> quantizedTensorsOf(const Program &program) {
  std::vector<QuantizedTensor> quantized;
  for (const auto &q : program.artifact().quantized_tensors())
    quantized.push_back({q.point(), q.weight(), q.input(), q.axis(),
                         q.quant_min(), q.quant_max(), q.symmetric(),
                         q.output()});
  return quantized;
}

ExportDType exportDTypeOf(const std::string &dtype) {
  return dtype == "bf16"   ? ExportDType::BF16
         : dtype == "fp16" ? ExportDType::F16
                           : ExportDType::F32;
}
} // namespace

bool trainopt::rt::checkOnnxExport(const Program &program,
                                   const std::string &model,
                                   const std::string &dtype, bool compact,
                                   std::string &error) {
  if (dtype != "fp32" && dtype != "bf16" && dtype != "fp16") {
    error = "--export-dtype: expected fp32, bf16 or fp16, got '" + dtype + "'";
    return false;
  }
  if (program.artifact().onnx_model().empty()) {
    error = "--export-onnx: " + model +
            " holds no ONNX model to export (it was compiled from a trainopt "
            "graph or MLIR module, not an ONNX file)";
    return false;
  }
  std::vector<QuantizedTensor> quantized = quantizedTensorsOf(program);
  if (!canExportQuantized(program.artifact().onnx_model(), quantized,
                          exportDTypeOf(dtype), error)) {
    error = "--export-onnx: " + error;
    return false;
  }
  if (compact && channelPruned(program).empty()) {
    error = "--compact: " + model +
            " has no weights pruned by channel (trainopt-compile "
            "--prune=channel:l1:FRACTION)";
    return false;
  }
  if (compact &&
      (!quantized.empty() || program.artifact().low_rank_tensors_size() > 0)) {
    error = "--compact: not for a quantized or low-rank model yet";
    return false;
  }
  return true;
}

bool trainopt::rt::exportTrainedOnnx(Program &program, const std::string &path,
                                     const std::string &dtype, bool compact,
                                     std::vector<std::string> &compacted,
                                     std::string &error) {
  try {
    // Every rank gathers the sharded values (ZeRO-3 parameters, a
    // pipeline's stages); rank 0 writes.
    std::vector<ModelValue> whole =
        acrossStages(program, modelValues(program, true));
    decodeDerivedWeights(program, whole);
    foldPruningMasks(program, whole);
    std::vector<NamedTensor> values;
    for (const ModelValue &m : whole)
      values.push_back({m.signature.name, m.signature.dtype, m.array.shape,
                        m.array.bytes.data()});
    std::vector<LowRankTensor> lowRank;
    for (const auto &t : program.artifact().low_rank_tensors())
      lowRank.push_back({t.weight(), t.u(), t.v(), t.kind()});
    Communicator *comm = program.communicator();
    if (comm && comm->rank() != 0)
      return true;
    return exportOnnx(
        program.artifact().onnx_model(), values, path, error,
        exportDTypeOf(dtype), quantizedTensorsOf(program), lowRank,
        compact ? channelPruned(program) : std::vector<std::string>(),
        &compacted);
  } catch (const TrainerError &e) {
    error = e.what();
    return false;
  }
}

Checkpoint trainopt::rt::checkpointOf(Program &program) {
  Checkpoint c;
  c.modelName = program.modelName();
  for (const ValueInfo &v : program.persistentValues()) {
    Array a = persistentArray(program, v);
    c.values.push_back(
        {{v.name, kindName(v.kind), v.dtype, a.shape}, std::move(a.bytes)});
  }
  return c;
}

bool trainopt::rt::restoreCheckpoint(Program &program, const std::string &path,
                                     Checkpoint &ckpt, std::string &error) {
  try {
    std::vector<ValueSignature> signature;
    for (ModelValue &m : acrossStages(program, modelValues(program, false)))
      signature.push_back(std::move(m.signature));
    if (!readCheckpoint(path, ckpt, error) ||
        !checkCompatible(ckpt, path, program.modelName(), signature, error))
      return false;
    setPersistentValues(program, ckpt);
    return true;
  } catch (const TrainerError &e) {
    error = e.what();
    return false;
  }
}
