//===- CUDAApi.h - the CUDA driver, cuBLASLt and cuDNN, loaded --*- C++ -*-===//
//
/// \file
/// The CUDA runtime part reaches the driver (libcuda.so.1), cuBLASLt
/// (libcublasLt.so.13) and cuDNN (libcudnn.so.9) through dlopen, so the
/// runtime binaries start on machines without a GPU (and run CPU artifacts
/// there), and a CUDA artifact fails with a message that names the missing
/// library instead of a loader error. The headers of the CUDA toolkit give
/// the types; each function is looked up under the versioned symbol the
/// header maps its name to (cuMemAlloc -> cuMemAlloc_v2).
///
/// Libraries are searched by soname, then in $TRAINOPT_CUDA_LIBRARY_PATH
/// (colon-separated), $CUDA_HOME/lib64, /usr/local/cuda/lib64 and the
/// `nvidia/<package>/lib` folders of the PyPI CUDA wheels.
//
//===----------------------------------------------------------------------===//

#ifndef TRAINOPT_LIB_RUNTIME_CUDA_CUDAAPI_H
#define TRAINOPT_LIB_RUNTIME_CUDA_CUDAAPI_H

#include <cublasLt.h>
#include <cuda.h>
#include <cudnn.h>

#include <string>

namespace trainopt::rt::cuda {

#define TRAINOPT_CUDA_DRIVER_FUNCTIONS(X)                                      \
  X(cuInit)                                                                    \
  X(cuDriverGetVersion)                                                        \
  X(cuGetErrorName)                                                            \
  X(cuGetErrorString)                                                          \
  X(cuDeviceGetCount)                                                          \
  X(cuDeviceGet)                                                               \
  X(cuDeviceGetName)                                                           \
  X(cuDeviceGetAttribute)                                                      \
  X(cuDeviceTotalMem)                                                          \
  X(cuDevicePrimaryCtxRetain)                                                  \
  X(cuDevicePrimaryCtxRelease)                                                 \
  X(cuCtxSetCurrent)                                                           \
  X(cuCtxSynchronize)                                                          \
  X(cuMemGetInfo)                                                              \
  X(cuMemAlloc)                                                                \
  X(cuMemFree)                                                                 \
  X(cuMemHostAlloc)                                                            \
  X(cuMemFreeHost)                                                             \
  X(cuMemcpyHtoD)                                                              \
  X(cuMemcpyDtoH)                                                              \
  X(cuMemcpyHtoDAsync)                                                         \
  X(cuMemcpyDtoHAsync)                                                         \
  X(cuMemcpyDtoDAsync)                                                         \
  X(cuMemcpy2DAsync)                                                           \
  X(cuMemsetD8Async)                                                           \
  X(cuMemsetD16Async)                                                          \
  X(cuMemsetD32Async)                                                          \
  X(cuModuleLoadDataEx)                                                        \
  X(cuModuleUnload)                                                            \
  X(cuModuleGetFunction)                                                       \
  X(cuFuncGetAttribute)                                                        \
  X(cuFuncGetParamInfo)                                                        \
  X(cuLaunchKernel)                                                            \
  X(cuStreamCreate)                                                            \
  X(cuStreamDestroy)                                                           \
  X(cuStreamSynchronize)                                                       \
  X(cuStreamWaitEvent)                                                         \
  X(cuStreamBeginCapture)                                                      \
  X(cuStreamEndCapture)                                                        \
  X(cuGraphInstantiate)                                                        \
  X(cuGraphLaunch)                                                             \
  X(cuGraphDestroy)                                                            \
  X(cuGraphExecDestroy)                                                        \
  X(cuEventCreate)                                                             \
  X(cuEventDestroy)                                                            \
  X(cuEventRecord)                                                             \
  X(cuEventSynchronize)                                                        \
  X(cuEventElapsedTime)

#define TRAINOPT_CUBLASLT_FUNCTIONS(X)                                         \
  X(cublasLtCreate)                                                            \
  X(cublasLtDestroy)                                                           \
  X(cublasLtGetVersion)                                                        \
  X(cublasLtMatmulDescCreate)                                                  \
  X(cublasLtMatmulDescDestroy)                                                 \
  X(cublasLtMatmulDescSetAttribute)                                            \
  X(cublasLtMatrixLayoutCreate)                                                \
  X(cublasLtMatrixLayoutDestroy)                                               \
  X(cublasLtMatrixLayoutSetAttribute)                                          \
  X(cublasLtMatmulPreferenceCreate)                                            \
  X(cublasLtMatmulPreferenceDestroy)                                           \
  X(cublasLtMatmulPreferenceSetAttribute)                                      \
  X(cublasLtMatmulAlgoGetHeuristic)                                            \
  X(cublasLtMatmul)

#define TRAINOPT_CUDNN_FUNCTIONS(X)                                            \
  X(cudnnGetVersion)                                                           \
  X(cudnnGetErrorString)                                                       \
  X(cudnnCreate)                                                               \
  X(cudnnDestroy)                                                              \
  X(cudnnSetStream)                                                            \
  X(cudnnCreateTensorDescriptor)                                               \
  X(cudnnDestroyTensorDescriptor)                                              \
  X(cudnnSetTensorNdDescriptor)                                                \
  X(cudnnCreateFilterDescriptor)                                               \
  X(cudnnDestroyFilterDescriptor)                                              \
  X(cudnnSetFilterNdDescriptor)                                                \
  X(cudnnCreateConvolutionDescriptor)                                          \
  X(cudnnDestroyConvolutionDescriptor)                                         \
  X(cudnnSetConvolutionNdDescriptor)                                           \
  X(cudnnSetConvolutionGroupCount)                                             \
  X(cudnnSetConvolutionMathType)                                               \
  X(cudnnGetConvolutionForwardAlgorithm_v7)                                    \
  X(cudnnGetConvolutionBackwardDataAlgorithm_v7)                               \
  X(cudnnGetConvolutionBackwardFilterAlgorithm_v7)                             \
  X(cudnnGetConvolutionForwardWorkspaceSize)                                   \
  X(cudnnGetConvolutionBackwardDataWorkspaceSize)                              \
  X(cudnnGetConvolutionBackwardFilterWorkspaceSize)                            \
  X(cudnnConvolutionForward)                                                   \
  X(cudnnConvolutionBackwardData)                                              \
  X(cudnnConvolutionBackwardFilter)                                            \
  X(cudnnAddTensor)

#define TRAINOPT_CUDA_DECLARE(name) decltype(&::name) name = nullptr;

/// The driver's functions. `load` fails (with a message naming what is
/// missing) when libcuda.so.1 cannot be loaded or lacks a function.
struct Driver {
  TRAINOPT_CUDA_DRIVER_FUNCTIONS(TRAINOPT_CUDA_DECLARE)
  bool load(std::string &error);
  /// "CUDA_ERROR_X (description)" for a driver result.
  std::string describe(CUresult result) const;
};

struct CublasLt {
  TRAINOPT_CUBLASLT_FUNCTIONS(TRAINOPT_CUDA_DECLARE)
  bool load(std::string &error);
};

struct Cudnn {
  TRAINOPT_CUDNN_FUNCTIONS(TRAINOPT_CUDA_DECLARE)
  bool load(std::string &error);
};

#undef TRAINOPT_CUDA_DECLARE

/// "CUBLAS_STATUS_X" for a cuBLAS status.
std::string describeCublas(cublasStatus_t status);

} // namespace trainopt::rt::cuda

#endif // TRAINOPT_LIB_RUNTIME_CUDA_CUDAAPI_H
