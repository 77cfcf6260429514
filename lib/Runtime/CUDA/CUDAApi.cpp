//===- CUDAApi.cpp - the CUDA driver, cuBLASLt and cuDNN, loaded ----------===//
//
/// \file
/// Finds and opens the CUDA libraries (CUDAApi.h) and resolves their
/// functions once per process.
//
//===----------------------------------------------------------------------===//

#include "CUDAApi.h"

#include <cstdlib>
#include <dlfcn.h>
#include <glob.h>
#include <vector>

using namespace trainopt::rt::cuda;

namespace {

/// Folders to try after the soname: the user's, the toolkit's, and those
/// of the PyPI wheels (nvidia-cublas, nvidia-cudnn-cu13) that PyTorch uses.
std::vector<std::string> searchFolders() {
  std::vector<std::string> folders;
  auto split = [&](const char *list) {
    std::string s = list ? list : "";
    size_t start = 0;
    while (start <= s.size()) {
      size_t end = s.find(':', start);
      if (end == std::string::npos)
        end = s.size();
      if (end > start)
        folders.push_back(s.substr(start, end - start));
      start = end + 1;
    }
  };
  split(std::getenv("TRAINOPT_CUDA_LIBRARY_PATH"));
  if (const char *home = std::getenv("CUDA_HOME"))
    folders.push_back(std::string(home) + "/lib64");
  folders.push_back("/usr/local/cuda/lib64");
  for (const char *pattern :
       {"/usr/local/lib/python3*/dist-packages/nvidia/*/lib",
        "/usr/local/lib/python3*/site-packages/nvidia/*/lib",
        "/usr/lib/python3/dist-packages/nvidia/*/lib"}) {
    glob_t found;
    if (glob(pattern, 0, nullptr, &found) == 0)
      for (size_t i = 0; i < found.gl_pathc; ++i)
        folders.push_back(found.gl_pathv[i]);
    globfree(&found);
  }
  return folders;
}

/// Opens `soname` (process-wide, never closed: the driver and libraries
/// keep state for the life of the process).
void *openLibrary(const char *soname, const char *what, std::string &error) {
  if (void *h = dlopen(soname, RTLD_NOW | RTLD_GLOBAL))
    return h;
  std::string first = dlerror();
  for (const std::string &folder : searchFolders()) {
    std::string path = folder + "/" + soname;
    if (void *h = dlopen(path.c_str(), RTLD_NOW | RTLD_GLOBAL))
      return h;
  }
  error = std::string("cannot load ") + what + " (" + soname + "): " + first +
          "; set TRAINOPT_CUDA_LIBRARY_PATH to the folder that has it";
  return nullptr;
}

template <typename T>
bool resolve(void *library, const char *symbol, const char *what, T &out,
             std::string &error) {
  out = reinterpret_cast<T>(dlsym(library, symbol));
  if (!out)
    error = std::string(what) + " has no function '" + symbol +
            "' (is it older than the CUDA 13 toolkit this runtime was built "
            "with?)";
  return out != nullptr;
}

#define TRAINOPT_STRINGIZE(x) #x
#define TRAINOPT_SYMBOL(x) TRAINOPT_STRINGIZE(x)
#define TRAINOPT_CUDA_RESOLVE(name)                                            \
  if (!resolve(library, TRAINOPT_SYMBOL(name), what, name, error))             \
    return false;

} // namespace

bool Driver::load(std::string &error) {
  const char *what = "the CUDA driver";
  void *library = openLibrary("libcuda.so.1", what, error);
  if (!library) {
    error += " (is an NVIDIA driver installed?)";
    return false;
  }
  TRAINOPT_CUDA_DRIVER_FUNCTIONS(TRAINOPT_CUDA_RESOLVE)
  return true;
}

std::string Driver::describe(CUresult result) const {
  const char *name = nullptr, *text = nullptr;
  if (cuGetErrorName)
    cuGetErrorName(result, &name);
  if (cuGetErrorString)
    cuGetErrorString(result, &text);
  std::string out = name ? name : "CUDA error " + std::to_string(result);
  if (text)
    out += std::string(" (") + text + ")";
  return out;
}

bool CublasLt::load(std::string &error) {
  const char *what = "cuBLASLt";
  void *library = openLibrary("libcublasLt.so.13", what, error);
  if (!library)
    return false;
  TRAINOPT_CUBLASLT_FUNCTIONS(TRAINOPT_CUDA_RESOLVE)
  return true;
}

bool Cudnn::load(std::string &error) {
  const char *what = "cuDNN";
  void *library = openLibrary("libcudnn.so.9", what, error);
  if (!library)
    return false;
  TRAINOPT_CUDNN_FUNCTIONS(TRAINOPT_CUDA_RESOLVE)
  return true;
}

std::string trainopt::rt::cuda::describeCublas(cublasStatus_t status) {
  switch (status) {
  case CUBLAS_STATUS_SUCCESS:
    return "CUBLAS_STATUS_SUCCESS";
  case CUBLAS_STATUS_NOT_INITIALIZED:
    return "CUBLAS_STATUS_NOT_INITIALIZED";
  case CUBLAS_STATUS_ALLOC_FAILED:
    return "CUBLAS_STATUS_ALLOC_FAILED";
  case CUBLAS_STATUS_INVALID_VALUE:
    return "CUBLAS_STATUS_INVALID_VALUE";
  case CUBLAS_STATUS_ARCH_MISMATCH:
    return "CUBLAS_STATUS_ARCH_MISMATCH";
  case CUBLAS_STATUS_MAPPING_ERROR:
    return "CUBLAS_STATUS_MAPPING_ERROR";
  case CUBLAS_STATUS_EXECUTION_FAILED:
    return "CUBLAS_STATUS_EXECUTION_FAILED";
  case CUBLAS_STATUS_INTERNAL_ERROR:
    return "CUBLAS_STATUS_INTERNAL_ERROR";
  case CUBLAS_STATUS_NOT_SUPPORTED:
    return "CUBLAS_STATUS_NOT_SUPPORTED";
  default:
    return "cuBLAS status " + std::to_string(int(status));
  }
}
