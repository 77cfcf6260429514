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

#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fcntl.h>
#include <string>
#include <sys/stat.h>
#include <unistd.h>
#include <vector>

using namespace trainopt::rt;

namespace {

using Options = TrainerOptions;

/// The artifact appended to this executable by trainopt-compile --emit=exe
/// (artifact bytes, uint64 length, "TOEXE001"), or false when there is none.
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
  Options options = parseTrainerFlags(
      std::vector<std::string>(argv + 1, argv + argc), embedded);
  if (options.help) {
    std::fputs(trainerHelp(), stdout);
    return 0;
  }
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
