//===- Library.h - `cuda.*` library calls ----------------------*- C++ -*-===//
//
/// \file
/// A `cuda.*` LibraryCall command, planned once when the program loads
/// (cuBLASLt layouts and algorithm, cuDNN descriptors and algorithm, the
/// launch shape of a runtime kernel) against the fixed device addresses of
/// its buffers, then enqueued on a stream each run (and so captured into
/// the entry point's CUDA graph).
//
//===----------------------------------------------------------------------===//

#ifndef TRAINOPT_LIB_RUNTIME_CUDA_LIBRARY_H
#define TRAINOPT_LIB_RUNTIME_CUDA_LIBRARY_H

#include "CUDAApi.h"

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace trainopt::rt::cuda {

/// What library calls share: the loaded APIs (cuBLASLt and cuDNN are loaded
/// on first use), their handles, the runtime's kernel module.
struct LibraryContext {
  Driver *driver = nullptr;
  CUmodule kernels = nullptr; ///< the runtime's own kernels (may be null)
  bool tf32 = true;
  /// Largest workspace a call may plan for.
  uint64_t workspaceLimit = uint64_t(256) << 20;

  CublasLt cublasLt;
  cublasLtHandle_t cublasLtHandle = nullptr;
  Cudnn cudnn;
  cudnnHandle_t cudnnHandle = nullptr;

  bool needCublasLt(std::string &error);
  bool needCudnn(CUstream stream, std::string &error);
  /// The runtime kernel `name`, or null with `error` set.
  CUfunction kernel(const std::string &name, std::string &error);
  void release();
};

class LibraryCall {
public:
  virtual ~LibraryCall();
  /// Bytes of the shared workspace this call needs.
  virtual uint64_t workspaceBytes() const { return 0; }
  /// Queues the call on `stream`.
  virtual bool enqueue(CUstream stream, CUdeviceptr workspace,
                       uint64_t workspaceBytes, std::string &error) = 0;
};

/// Plans `function` (a `cuda.*` name whose descriptor passed
/// checkLibraryCall) over the device buffers `buffers`.
std::unique_ptr<LibraryCall>
planLibraryCall(LibraryContext &context, CUstream stream,
                const std::string &function, const std::vector<int64_t> &ints,
                const std::vector<CUdeviceptr> &buffers, std::string &error);

} // namespace trainopt::rt::cuda

#endif // TRAINOPT_LIB_RUNTIME_CUDA_LIBRARY_H
