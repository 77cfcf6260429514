//===- CAPI.cpp - the runtime's C API over Program ------------------------===//
//
/// \file
/// `trainopt_runtime.h` as a thin layer over `trainopt::rt::Program`.
//
//===----------------------------------------------------------------------===//

#include "trainopt/Runtime/trainopt_runtime.h"

#include "trainopt/Runtime/CAPISupport.h"
#include "trainopt/Runtime/Program.h"

#include <cstring>
#include <string>

using trainopt::rt::DType;
using trainopt::rt::Program;
using trainopt::rt::ValueInfo;
using trainopt::rt::ValueKind;

// The C enums are the runtime's, value for value.
static_assert(static_cast<int>(ValueKind::Parameter) == TRAINOPT_ROLE_PARAMETER &&
              static_cast<int>(ValueKind::OptimizerState) ==
                  TRAINOPT_ROLE_OPTIMIZER_STATE &&
              static_cast<int>(ValueKind::ModelState) ==
                  TRAINOPT_ROLE_MODEL_STATE &&
              static_cast<int>(ValueKind::Step) == TRAINOPT_ROLE_STEP &&
              static_cast<int>(ValueKind::Input) == TRAINOPT_ROLE_INPUT &&
              static_cast<int>(ValueKind::Labels) == TRAINOPT_ROLE_LABELS &&
              static_cast<int>(ValueKind::Metric) == TRAINOPT_ROLE_METRIC &&
              static_cast<int>(ValueKind::Output) == TRAINOPT_ROLE_OUTPUT &&
              static_cast<int>(ValueKind::Loss) == TRAINOPT_ROLE_LOSS);
static_assert(static_cast<int>(DType::F64) == TRAINOPT_F64 &&
              static_cast<int>(DType::F32) == TRAINOPT_F32 &&
              static_cast<int>(DType::F16) == TRAINOPT_F16 &&
              static_cast<int>(DType::I64) == TRAINOPT_I64 &&
              static_cast<int>(DType::I32) == TRAINOPT_I32 &&
              static_cast<int>(DType::I16) == TRAINOPT_I16 &&
              static_cast<int>(DType::I8) == TRAINOPT_I8 &&
              static_cast<int>(DType::U8) == TRAINOPT_U8 &&
              static_cast<int>(DType::Bool) == TRAINOPT_BOOL &&
              static_cast<int>(DType::BF16) == TRAINOPT_BF16);

using trainopt::rt::failWith;

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

/// The values of `set`, or null when `entry` names no entry point.
static const std::vector<ValueInfo> *valueSet(const trainopt_program *program,
                                              const char *entry,
                                              trainopt_value_set set) {
  const Program &p = *program->program;
  if (set == TRAINOPT_VALUES_PERSISTENT)
    return &p.persistentValues();
  if (!entry || !p.hasEntryPoint(entry))
    return nullptr;
  if (set == TRAINOPT_VALUES_INPUTS)
    return &p.inputs(entry);
  if (set == TRAINOPT_VALUES_OUTPUTS)
    return &p.outputs(entry);
  return nullptr;
}

int64_t trainopt_program_num_values(const trainopt_program *program,
                                    const char *entry,
                                    trainopt_value_set set) {
  if (!program)
    return -1;
  const std::vector<ValueInfo> *values = valueSet(program, entry, set);
  return values ? static_cast<int64_t>(values->size()) : -1;
}

trainopt_status trainopt_program_value(const trainopt_program *program,
                                       const char *entry,
                                       trainopt_value_set set, int64_t index,
                                       trainopt_value_info *out, char *error,
                                       size_t error_size) {
  if (!program || !out)
    return failWith("trainopt_program_value: null argument", error,
                    error_size);
  const std::vector<ValueInfo> *values = valueSet(program, entry, set);
  if (!values)
    return failWith(std::string("trainopt_program_value: no entry point '") +
                        (entry ? entry : "(null)") + "'",
                    error, error_size);
  if (index < 0 || index >= static_cast<int64_t>(values->size()))
    return failWith("trainopt_program_value: index " + std::to_string(index) +
                        " is outside [0, " + std::to_string(values->size()) +
                        ")",
                    error, error_size);
  const ValueInfo &v = (*values)[index];
  out->name = v.name.c_str();
  out->role = static_cast<trainopt_role>(v.kind);
  out->dtype = static_cast<trainopt_dtype>(v.dtype);
  out->rank = static_cast<int32_t>(v.shape.size());
  out->shape = v.shape.data();
  out->bytes = v.bytes;
  return TRAINOPT_OK;
}

int64_t trainopt_program_batch_size(const trainopt_program *program) {
  return program ? program->program->batchSize() : 0;
}

void trainopt_program_set_threads(trainopt_program *program, int threads) {
  if (program)
    program->program->setThreads(threads);
}

} // extern "C"
