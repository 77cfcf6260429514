//===- CAPISupport.h - for the libraries behind the C API --------*- C++
//-*-===//
//
/// \file
/// What the C API's implementations share (trainopt_runtime.h,
/// trainopt_compiler.h): the program handle and how a message reaches the
/// caller's error buffer. Not part of the public C API.
//
//===----------------------------------------------------------------------===//

#ifndef TRAINOPT_RUNTIME_CAPISUPPORT_H
#define TRAINOPT_RUNTIME_CAPISUPPORT_H

#include "trainopt/Runtime/Program.h"
#include "trainopt/Runtime/trainopt_runtime.h"

#include <algorithm>
#include <cstring>
#include <memory>
#include <string>

struct trainopt_program {
  std::unique_ptr<trainopt::rt::Program> program;
};

namespace trainopt::rt {

/// Copies `message` (cut to fit, NUL-terminated) into `error`.
inline void copyMessage(const std::string &message, char *error, size_t size) {
  if (error && size) {
    size_t n = std::min(size - 1, message.size());
    std::memcpy(error, message.data(), n);
    error[n] = '\0';
  }
}

/// TRAINOPT_ERROR, with `message` in `error`.
inline trainopt_status failWith(const std::string &message, char *error,
                                size_t size) {
  copyMessage(message, error, size);
  return TRAINOPT_ERROR;
}

} // namespace trainopt::rt

#endif // TRAINOPT_RUNTIME_CAPISUPPORT_H
