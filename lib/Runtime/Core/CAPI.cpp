//===- CAPI.cpp - the runtime's C API over Program ------------------------===//
//
/// \file
/// `trainopt_runtime.h` as a thin layer over `trainopt::rt::Program`.
//
//===----------------------------------------------------------------------===//

#include "trainopt/Runtime/trainopt_runtime.h"

#include "trainopt/Runtime/Program.h"

#include <cstring>

using trainopt::rt::Program;
using trainopt::rt::ValueInfo;

struct trainopt_program {
  std::unique_ptr<Program> program;
};

static trainopt_status failWith(const std::string &message, char *error,
                                size_t size) {
  if (error && size) {
    size_t n = std::min(size - 1, message.size());
    std::memcpy(error, message.data(), n);
    error[n] = '\0';
  }
  return TRAINOPT_ERROR;
}

static size_t bytesOf(const std::vector<ValueInfo> &values,
                      const std::string &name) {
  for (const ValueInfo &v : values)
    if (v.name == name)
      return v.bytes;
  return 0;
}

extern "C" {

trainopt_status trainopt_program_load(const char *path, trainopt_program **out,
                                      char *error, size_t error_size) {
  if (!path || !out)
    return failWith("trainopt_program_load: null argument", error, error_size);
  std::string message;
  std::unique_ptr<Program> program = Program::load(path, message);
  if (!program)
    return failWith(message, error, error_size);
  *out = new trainopt_program{std::move(program)};
  return TRAINOPT_OK;
}

void trainopt_program_free(trainopt_program *program) { delete program; }

trainopt_status trainopt_program_run(trainopt_program *program,
                                     const char *entry, char *error,
                                     size_t error_size) {
  if (!program || !entry)
    return failWith("trainopt_program_run: null argument", error, error_size);
  std::string message;
  if (!program->program->run(entry, message))
    return failWith(message, error, error_size);
  return TRAINOPT_OK;
}

void *trainopt_program_persistent(trainopt_program *program, const char *name,
                                  size_t *bytes) {
  if (!program || !name)
    return nullptr;
  if (bytes)
    *bytes = bytesOf(program->program->persistentValues(), name);
  return program->program->persistent(name);
}

void *trainopt_program_input(trainopt_program *program, const char *entry,
                             const char *name, size_t *bytes) {
  if (!program || !entry || !name)
    return nullptr;
  if (bytes)
    *bytes = bytesOf(program->program->inputs(entry), name);
  return program->program->input(entry, name);
}

const void *trainopt_program_output(trainopt_program *program,
                                    const char *entry, const char *name,
                                    size_t *bytes) {
  if (!program || !entry || !name)
    return nullptr;
  if (bytes)
    *bytes = bytesOf(program->program->outputs(entry), name);
  return program->program->output(entry, name);
}

int64_t trainopt_program_batch_size(const trainopt_program *program) {
  return program ? program->program->batchSize() : 0;
}

void trainopt_program_set_threads(trainopt_program *program, int threads) {
  if (program)
    program->program->setThreads(threads);
}

} // extern "C"
