//===- CUDALibraryRunner.cpp - one library call on the GPU ----------------===//
//
/// \file
/// Implements CUDALibraryRunner.h.
//
//===----------------------------------------------------------------------===//

#include "CUDALibraryRunner.h"

#include "trainopt/Runtime/CUDADevice.h"

#include <cstring>

using namespace trainopt::rt;

bool trainopt::rt::cudaAvailable(std::string &why) {
  static int state = -1; // probe once per process
  static std::string reason;
  if (state < 0) {
    std::string description;
    state = probeCUDA(description, reason) ? 1 : 0;
  }
  why = reason;
  return state == 1;
}

bool trainopt::rt::runCUDALibraryCall(
    const std::string &function, const std::vector<int64_t> &ints,
    std::vector<std::vector<unsigned char>> &buffers, std::string &error) {
  CUDAProgramSpec spec;
  spec.source = function;
  CUDAEntry entry;
  entry.name = "call";
  CUDACommand call;
  call.kind = CUDACommand::Library;
  call.what = "library call " + function;
  call.function = function;
  call.ints = ints;
  uint64_t offset = 0;
  for (const auto &b : buffers) {
    ArenaRegion r{offset, b.size()};
    call.buffers.push_back(r);
    entry.inputs.push_back(r);
    entry.outputs.push_back(r);
    offset += (b.size() + 255) / 256 * 256 + 256;
  }
  spec.arenaSize = offset;
  entry.commands.push_back(call);
  spec.entries.push_back(entry);
  CUDAOptions options;
  options.tf32 = false;
  std::unique_ptr<CUDAProgram> program =
      CUDAProgram::create(spec, options, error);
  if (!program)
    return false;
  std::vector<std::vector<unsigned char>> first;
  for (int run = 0; run < 2; ++run) {
    for (size_t i = 0; i < buffers.size(); ++i) {
      void *in = program->input(0, i);
      if (!in) {
        error = program->lastError();
        return false;
      }
      if (!buffers[i].empty())
        std::memcpy(in, buffers[i].data(), buffers[i].size());
    }
    if (!program->run(0, error))
      return false;
    std::vector<std::vector<unsigned char>> out;
    for (size_t i = 0; i < buffers.size(); ++i) {
      const void *o = program->output(0, i);
      if (!o) {
        error = program->lastError();
        return false;
      }
      const auto *bytes = static_cast<const unsigned char *>(o);
      out.emplace_back(bytes, bytes + buffers[i].size());
    }
    if (run == 0) {
      first = std::move(out);
    } else if (out != first) {
      error = "the CUDA graph replay of " + function +
              " gave other bytes than the eager run";
      return false;
    }
  }
  buffers = std::move(first);
  return true;
}
