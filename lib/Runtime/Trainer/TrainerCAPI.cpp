//===- TrainerCAPI.cpp - trainopt_train ------------------------------------===//
//
/// \file
/// The trainer behind the C API (trainopt_runtime.h).
//
//===----------------------------------------------------------------------===//

#include "trainopt/Runtime/Trainer.h"
#include "trainopt/Runtime/trainopt_runtime.h"

#include <algorithm>
#include <cstring>

using namespace trainopt::rt;

extern "C" trainopt_status trainopt_train(int argc, const char *const *argv,
                                          char *error, size_t error_size) {
  auto failWith = [&](const std::string &message) {
    if (error && error_size) {
      size_t n = std::min(error_size - 1, message.size());
      std::memcpy(error, message.data(), n);
      error[n] = '\0';
    }
    return TRAINOPT_ERROR;
  };
  if (argc < 0 || (argc > 0 && !argv))
    return failWith("trainopt_train: null argument");
  std::vector<std::string> args;
  for (int i = 0; i < argc; ++i) {
    if (!argv[i])
      return failWith("trainopt_train: argument " + std::to_string(i) +
                      " is null");
    args.push_back(argv[i]);
  }
  try {
    TrainerOptions options = parseTrainerFlags(args, /*embedded=*/false);
    if (options.help)
      return failWith("trainopt_train: --help is for trainopt-run");
    return train(options) == 0 ? TRAINOPT_OK
                               : failWith("trainopt_train: training failed");
  } catch (const TrainerError &e) {
    return failWith(e.what());
  }
}
