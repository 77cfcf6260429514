//===- trainopt-run.cpp - train a compiled model --------------------------===//
//
/// \file
/// `trainopt-run MODEL.trainopt --data=... (--epochs N | --steps N)`: the
/// flags around the trainer library (include/trainopt/Runtime/Trainer.h),
/// which feeds batches to `train_step`, reports progress and per-step
/// metrics, checkpoints and resumes bit-identically, evaluates with
/// `eval_step`, and saves the trained values. The same binary with an
/// artifact appended (trainopt-compile --emit=exe) trains that artifact.
///
/// Part of the runtime: no MLIR or LLVM, so flags are parsed by hand. Exit
/// status: 0 on success, 2 for a usage error (a bad flag or flag value), 1
/// for anything that fails while running (a file, the model, a checkpoint).
//
//===----------------------------------------------------------------------===//

#include "trainopt/Runtime/Trainer.h"

#include "trainopt/Artifact/artifact.pb.h"
#include "trainopt/Runtime/Batches.h"
#include "trainopt/Runtime/Checkpoint.h"
#include "trainopt/Runtime/Data.h"
#include "trainopt/Runtime/OnnxExport.h"
#include "trainopt/Runtime/Program.h"

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
#include <string>
#include <sys/stat.h>
#include <unistd.h>
#include <vector>

using namespace trainopt::rt;

namespace {

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
  --threads N           threads of the CPU kernels and libraries (0: all)
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

Output:
  --quiet               no progress output (the summary is still printed)
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
  --dump-step=FILE.npz     train_step's outputs and metrics after the last
                           step (with trainopt-compile --probe-values: every
                           intermediate value)
  --export-onnx=FILE.onnx  the trained model as an inference ONNX model

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
Options parseOptions(int argc, char **argv, bool embedded) {
  Options o;
  std::vector<std::string> args(argv + 1, argv + argc);
  for (size_t i = 0; i < args.size(); ++i) {
    const std::string &arg = args[i];
    if (arg == "--help" || arg == "-h") {
      std::fputs(kHelp, stdout);
      std::exit(0);
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
    else if (flag == "--epochs")
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
    else if (flag == "--cuda-device")
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
    }
    else if (flag == "--log-every")
      o.logEvery = parseInteger(flag, value(), 1, "a positive integer");
    else if (flag == "--quiet") {
      noValue();
      o.quiet = true;
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
    else if (flag == "--dump-step")
      o.dumpStep = path();
    else if (flag == "--export-onnx")
      o.exportOnnx = path();
    else
      usageError("unknown flag '" + flag + "'");
  }

  if (o.cudaInfo)
    return o;
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
  return o;
}

//===----------------------------------------------------------------------===//
// Values
//===----------------------------------------------------------------------===//


bool embeddedArtifact(std::string &bytes) {
  int fd = ::open("/proc/self/exe", O_RDONLY | O_CLOEXEC);
  if (fd < 0)
    return false;
  struct stat st;
  uint8_t trailer[16];
  bool found = ::fstat(fd, &st) == 0 && st.st_size >= 16 &&
               ::pread(fd, trailer, 16, st.st_size - 16) == 16 &&
               std::memcmp(trailer + 8, "TOEXE001", 8) == 0;
  uint64_t size = 0;
  for (int i = 0; found && i < 8; ++i)
    size |= uint64_t(trailer[i]) << (8 * i);
  found = found && size <= static_cast<uint64_t>(st.st_size) - 16;
  if (found) {
    bytes.resize(size);
    off_t at = st.st_size - 16 - static_cast<off_t>(size);
    size_t done = 0;
    while (done < size) {
      ssize_t n = ::pread(fd, bytes.data() + done, size - done, at + done);
      if (n <= 0)
        break;
      done += static_cast<size_t>(n);
    }
    found = done == size;
  }
  ::close(fd);
  return found;
}


int run(int argc, char **argv) {
  std::string artifact;
  bool embedded = embeddedArtifact(artifact);
  Options options = parseOptions(argc, argv, embedded);
  if (options.cudaInfo) {
    std::string description, error;
    if (!probeCUDA(description, error)) {
      std::printf("no usable GPU: %s\n", error.c_str());
      return kRuntimeError;
    }
    std::printf("%s\n", description.c_str());
    return 0;
  }
  if (!embedded)
    return train(options);
  // Program::load reads a file: hand it a private copy of the artifact,
  // removed once loaded.
  const char *tmpdir = std::getenv("TMPDIR");
  std::string path =
      std::string(tmpdir && *tmpdir ? tmpdir : "/tmp") + "/trainopt-run-XXXXXX";
  int fd = ::mkstemp(path.data());
  if (fd < 0)
    runtimeError("cannot create a temporary file for the embedded model in '" +
                 path + "': " + std::strerror(errno));
  bool ok = ::write(fd, artifact.data(), artifact.size()) ==
            static_cast<ssize_t>(artifact.size());
  ok = (::close(fd) == 0) && ok;
  if (!ok) {
    ::unlink(path.c_str());
    runtimeError("cannot write the embedded model to '" + path + "'");
  }
  options.model = path;
  options.embeddedName = argv[0];
  return train(options);
}

} // namespace

int main(int argc, char **argv) {
  try {
    return run(argc, argv);
  } catch (const TrainerError &e) {
    reportTrainerError(e);
    return e.code;
  }
}
