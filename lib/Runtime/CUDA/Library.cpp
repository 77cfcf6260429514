//===- Library.cpp - `cuda.*` library calls -------------------------------===//
//
/// \file
/// cuda.matmul through cuBLASLt, cuda.conv* through cuDNN, pools and
/// scatter-add through the runtime's kernels (LibraryKernels.cu). The
/// descriptors are those of the CPU library (CPULibrary.h), row-major.
//
//===----------------------------------------------------------------------===//

#include "Library.h"

#include "LibraryKernels.h"
#include "trainopt/Runtime/CUDALibraryPlan.h"

#include <algorithm>
#include <type_traits>
#include <array>

using namespace trainopt::rt;
using namespace trainopt::rt::cuda;

namespace {

namespace calls = trainopt::calls;
using calls::kBF16;
using calls::kF16;
using calls::kF32;
using calls::kF64;
using calls::kI64;

/// A call's element type as cuBLASLt, cuDNN and the runtime's kernels name
/// it. bf16 and f16 (mixed precision) compute in f32: cuBLASLt's compute
/// type 32F, cuDNN's convolution type FLOAT, the kernels' ComputeT.
struct ElementKind {
  size_t bytes;
  cudaDataType_t blas;
  cudnnDataType_t dnn;
  const char *suffix; ///< of the runtime's kernels: trainopt_max_pool_<suffix>
  bool isF64, isNarrow;
};
ElementKind elementKind(int64_t code) {
  switch (code) {
  case kF64:
    return {8, CUDA_R_64F, CUDNN_DATA_DOUBLE, "f64", true, false};
  case kBF16:
    return {2, CUDA_R_16BF, CUDNN_DATA_BFLOAT16, "bf16", false, true};
  case kF16:
    return {2, CUDA_R_16F, CUDNN_DATA_HALF, "f16", false, true};
  default: // checked at load: F32
    return {4, CUDA_R_32F, CUDNN_DATA_FLOAT, "f32", false, false};
  }
}
/// cuBLASLt's recommended workspace on Hopper.
constexpr uint64_t kCublasLtWorkspace = uint64_t(32) << 20;

/// The largest power of two (up to 256) that divides every address.
uint32_t alignmentOf(std::initializer_list<CUdeviceptr> addresses) {
  uint32_t align = 256;
  for (CUdeviceptr a : addresses)
    while (align > 1 && a % align)
      align /= 2;
  return align;
}

//===----------------------------------------------------------------------===//
// Matmul: cuBLASLt
//===----------------------------------------------------------------------===//

/// Row-major out[M,N] = lhs[M,K] x rhs[K,N] is column-major
/// out^T[N,M] = rhs^T[N,K] x lhs^T[K,M]: cuBLASLt's A is our rhs and its B
/// our lhs, with no data movement.
class MatmulCall : public LibraryCall {
public:
  explicit MatmulCall(LibraryContext &context) : context_(context) {}
  ~MatmulCall() override {
    CublasLt &lt = context_.cublasLt;
    if (preference_)
      lt.cublasLtMatmulPreferenceDestroy(preference_);
    for (cublasLtMatrixLayout_t l : {a_, b_, c_})
      if (l)
        lt.cublasLtMatrixLayoutDestroy(l);
    if (desc_)
      lt.cublasLtMatmulDescDestroy(desc_);
  }

  bool plan(const calls::MatmulCall &desc,
            const std::vector<CUdeviceptr> &buffers, std::string &error) {
    CublasLt &lt = context_.cublasLt;
    int64_t m = desc.m, n = desc.n, k = desc.k;
    bool ta = desc.transposeLhs, tb = desc.transposeRhs;
    ElementKind kind = elementKind(desc.types.element);
    f64_ = kind.isF64;
    beta_ = desc.accumulateOut ? 1.0 : 0.0;
    MatmulBatchPlan batches = planMatmulBatches(desc);
    size_t elem = kind.bytes;
    for (const auto &o : batches.offsets)
      calls_.push_back({buffers[2] + o[0] * elem, buffers[0] + o[1] * elem,
                        buffers[1] + o[2] * elem});

    auto check = [&](cublasStatus_t s, const char *what) {
      if (s != CUBLAS_STATUS_SUCCESS)
        error = std::string("cuBLASLt ") + what + ": " + describeCublas(s);
      return s == CUBLAS_STATUS_SUCCESS;
    };
    cudaDataType_t type = kind.blas;
    // bf16/f16 inputs and output, f32 accumulation and scale (alpha, beta).
    cublasComputeType_t compute =
        f64_ ? CUBLAS_COMPUTE_64F
             : (context_.tf32 && !kind.isNarrow ? CUBLAS_COMPUTE_32F_FAST_TF32
                                                : CUBLAS_COMPUTE_32F);
    cudaDataType_t scaleType = f64_ ? CUDA_R_64F : CUDA_R_32F;
    if (!check(lt.cublasLtMatmulDescCreate(&desc_, compute, scaleType),
               "cannot create a matmul descriptor"))
      return false;
    cublasOperation_t opA = tb ? CUBLAS_OP_T : CUBLAS_OP_N;
    cublasOperation_t opB = ta ? CUBLAS_OP_T : CUBLAS_OP_N;
    if (!check(lt.cublasLtMatmulDescSetAttribute(
                   desc_, CUBLASLT_MATMUL_DESC_TRANSA, &opA, sizeof opA),
               "TRANSA") ||
        !check(lt.cublasLtMatmulDescSetAttribute(
                   desc_, CUBLASLT_MATMUL_DESC_TRANSB, &opB, sizeof opB),
               "TRANSB"))
      return false;
    // Column-major shapes as stored: A (rhs) is N x K, or K x N when
    // transposed; B (lhs) is K x M, or M x K when transposed.
    auto layout = [&](cublasLtMatrixLayout_t &l, int64_t rows, int64_t cols,
                      int64_t stride) {
      if (!check(lt.cublasLtMatrixLayoutCreate(&l, type, rows, cols, rows),
                 "cannot create a matrix layout"))
        return false;
      if (batches.batch == 1)
        return true;
      int32_t count = static_cast<int32_t>(batches.batch);
      return check(lt.cublasLtMatrixLayoutSetAttribute(
                       l, CUBLASLT_MATRIX_LAYOUT_BATCH_COUNT, &count,
                       sizeof count),
                   "batch count") &&
             check(lt.cublasLtMatrixLayoutSetAttribute(
                       l, CUBLASLT_MATRIX_LAYOUT_STRIDED_BATCH_OFFSET, &stride,
                       sizeof stride),
                   "batch stride");
    };
    if (batches.batch > INT32_MAX) {
      error = "cuBLASLt takes at most 2^31 - 1 batched products";
      return false;
    }
    if (!layout(a_, tb ? k : n, tb ? n : k, batches.strideRhs) ||
        !layout(b_, ta ? m : k, ta ? k : m, batches.strideLhs) ||
        !layout(c_, n, m, batches.strideOut))
      return false;

    if (!check(lt.cublasLtMatmulPreferenceCreate(&preference_),
               "cannot create a preference"))
      return false;
    uint64_t limit = kCublasLtWorkspace;
    uint32_t alignA = 256, alignB = 256, alignC = 256;
    for (const auto &c : calls_) {
      alignC = std::min(alignC, alignmentOf({c[0]}));
      alignB = std::min(alignB, alignmentOf({c[1]}));
      alignA = std::min(alignA, alignmentOf({c[2]}));
    }
    auto strideAlign = [&](int64_t stride) {
      return stride ? alignmentOf({CUdeviceptr(stride * elem)}) : 256u;
    };
    alignA = std::min(alignA, strideAlign(batches.strideRhs));
    alignB = std::min(alignB, strideAlign(batches.strideLhs));
    alignC = std::min(alignC, strideAlign(batches.strideOut));
    if (!check(lt.cublasLtMatmulPreferenceSetAttribute(
                   preference_, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES,
                   &limit, sizeof limit),
               "workspace preference") ||
        !check(lt.cublasLtMatmulPreferenceSetAttribute(
                   preference_, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES,
                   &alignA, sizeof alignA),
               "alignment preference") ||
        !check(lt.cublasLtMatmulPreferenceSetAttribute(
                   preference_, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES,
                   &alignB, sizeof alignB),
               "alignment preference") ||
        !check(lt.cublasLtMatmulPreferenceSetAttribute(
                   preference_, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES,
                   &alignC, sizeof alignC),
               "alignment preference") ||
        !check(lt.cublasLtMatmulPreferenceSetAttribute(
                   preference_, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES,
                   &alignC, sizeof alignC),
               "alignment preference"))
      return false;
    cublasLtMatmulHeuristicResult_t result = {};
    int found = 0;
    if (!check(lt.cublasLtMatmulAlgoGetHeuristic(context_.cublasLtHandle, desc_,
                                                 a_, b_, c_, c_, preference_, 1,
                                                 &result, &found),
               "found no algorithm"))
      return false;
    if (found == 0) {
      error = "cuBLASLt found no algorithm for M=" + std::to_string(m) +
              " N=" + std::to_string(n) + " K=" + std::to_string(k);
      return false;
    }
    algo_ = result.algo;
    workspace_ = result.workspaceSize;
    return true;
  }

  uint64_t workspaceBytes() const override { return workspace_; }

  bool enqueue(CUstream stream, CUdeviceptr workspace, uint64_t,
               std::string &error) override {
    float alpha32 = 1.0f, beta32 = static_cast<float>(beta_);
    double alpha64 = 1.0;
    const void *alpha = f64_ ? static_cast<const void *>(&alpha64) : &alpha32;
    const void *beta = f64_ ? static_cast<const void *>(&beta_) : &beta32;
    for (const auto &c : calls_) {
      cublasStatus_t s = context_.cublasLt.cublasLtMatmul(
          context_.cublasLtHandle, desc_, alpha,
          reinterpret_cast<const void *>(c[2]), a_,
          reinterpret_cast<const void *>(c[1]), b_, beta,
          reinterpret_cast<const void *>(c[0]), c_,
          reinterpret_cast<void *>(c[0]), c_, &algo_,
          reinterpret_cast<void *>(workspace), workspace_,
          reinterpret_cast<cudaStream_t>(stream));
      if (s != CUBLAS_STATUS_SUCCESS) {
        error = "cublasLtMatmul: " + describeCublas(s);
        return false;
      }
    }
    return true;
  }

private:
  LibraryContext &context_;
  bool f64_ = false;
  double beta_ = 0.0;
  cublasLtMatmulDesc_t desc_ = nullptr;
  cublasLtMatrixLayout_t a_ = nullptr, b_ = nullptr, c_ = nullptr;
  cublasLtMatmulPreference_t preference_ = nullptr;
  cublasLtMatmulAlgo_t algo_ = {};
  uint64_t workspace_ = 0;
  /// Per call: out, lhs, rhs.
  std::vector<std::array<CUdeviceptr, 3>> calls_;
};

//===----------------------------------------------------------------------===//
// Convolution: cuDNN
//===----------------------------------------------------------------------===//

enum class ConvKind { Forward, GradInput, GradFilter };

/// The first usable algorithm of cuDNN's ranked list: succeeded, within the
/// workspace limit, of an allowed math type; deterministic ones first, so a
/// run repeats bit for bit. Float32 without TF32 takes only FMA math
/// (DEFAULT_MATH permits TF32 on Ampere and later); nothing may convert
/// down to FP16 (TENSOR_OP_MATH_ALLOW_CONVERSION).
template <typename Perf>
int chooseAlgorithm(const Perf *perf, int count, bool f32, bool tf32,
                    uint64_t limit) {
  int fallback = -1;
  for (int i = 0; i < count; ++i) {
    if (perf[i].status != CUDNN_STATUS_SUCCESS || perf[i].memory > limit)
      continue;
    if (perf[i].mathType == CUDNN_TENSOR_OP_MATH_ALLOW_CONVERSION ||
        (f32 && !tf32 && perf[i].mathType != CUDNN_FMA_MATH))
      continue;
    if (perf[i].determinism == CUDNN_DETERMINISTIC)
      return i;
    if (fallback < 0)
      fallback = i;
  }
  return fallback;
}

class ConvCall : public LibraryCall {
public:
  ConvCall(LibraryContext &context, ConvKind kind)
      : context_(context), kind_(kind) {}
  ~ConvCall() override {
    Cudnn &dnn = context_.cudnn;
    for (cudnnTensorDescriptor_t t : {x_, y_, bias_})
      if (t)
        dnn.cudnnDestroyTensorDescriptor(t);
    if (w_)
      dnn.cudnnDestroyFilterDescriptor(w_);
    if (conv_)
      dnn.cudnnDestroyConvolutionDescriptor(conv_);
  }

  bool plan(const calls::ConvCall &desc,
            const std::vector<CUdeviceptr> &buffers, std::string &error) {
    Cudnn &dnn = context_.cudnn;
    cudnnHandle_t h = context_.cudnnHandle;
    ConvPlan p;
    if (!planConv(desc, p, error))
      return false;
    ElementKind kind = elementKind(desc.types.element);
    f64_ = kind.isF64;
    narrow_ = kind.isNarrow;
    cudnnDataType_t type = kind.dnn;
    // The convolution's compute type: f32 for bf16/f16 data.
    cudnnDataType_t computeType = narrow_ ? CUDNN_DATA_FLOAT : type;
    auto check = [&](cudnnStatus_t s, const char *what) {
      if (s != CUDNN_STATUS_SUCCESS)
        error =
            std::string("cuDNN ") + what + ": " + dnn.cudnnGetErrorString(s);
      return s == CUDNN_STATUS_SUCCESS;
    };
    int nb = 2 + p.dims;
    auto tensor = [&](cudnnTensorDescriptor_t &t, int64_t n, int64_t c,
                      const int *spatial) {
      int dims[5], strides[5];
      dims[0] = static_cast<int>(n);
      dims[1] = static_cast<int>(c);
      for (int d = 0; d < p.dims; ++d)
        dims[2 + d] = spatial[d];
      strides[nb - 1] = 1;
      for (int d = nb - 2; d >= 0; --d)
        strides[d] = strides[d + 1] * dims[d + 1];
      return check(dnn.cudnnCreateTensorDescriptor(&t), "tensor descriptor") &&
             check(dnn.cudnnSetTensorNdDescriptor(t, type, nb, dims, strides),
                   "tensor shape");
    };
    int ones[3] = {1, 1, 1};
    if (!tensor(x_, p.n, p.cin, p.in.data()) ||
        !tensor(y_, p.n, p.cout, p.out.data()) ||
        (p.hasBias && !tensor(bias_, 1, p.cout, ones)))
      return false;
    int filter[5] = {static_cast<int>(p.cout),
                     static_cast<int>(p.cin / p.groups)};
    for (int d = 0; d < p.dims; ++d)
      filter[2 + d] = p.kernel[d];
    if (!check(dnn.cudnnCreateFilterDescriptor(&w_), "filter descriptor") ||
        !check(dnn.cudnnSetFilterNdDescriptor(w_, type, CUDNN_TENSOR_NCHW, nb,
                                              filter),
               "filter shape") ||
        !check(dnn.cudnnCreateConvolutionDescriptor(&conv_),
               "convolution descriptor") ||
        !check(dnn.cudnnSetConvolutionNdDescriptor(
                   conv_, p.dims, p.pad.data(), p.stride.data(),
                   p.dilation.data(), CUDNN_CROSS_CORRELATION, computeType),
               "convolution shape") ||
        !check(dnn.cudnnSetConvolutionGroupCount(conv_,
                                                 static_cast<int>(p.groups)),
               "group count"))
      return false;
    // bf16/f16 convolutions run on tensor cores (f32 accumulation) whatever
    // --no-tf32 says: TF32 concerns f32 inputs only.
    bool tensorOps = narrow_ || (!f64_ && context_.tf32);
    if (!check(dnn.cudnnSetConvolutionMathType(
                   conv_,
                   f64_ ? CUDNN_DEFAULT_MATH
                        : (tensorOps ? CUDNN_TENSOR_OP_MATH : CUDNN_FMA_MATH)),
               "math type"))
      return false;

    constexpr int kMax = 16;
    int found = 0, pick = -1;
    cudnnMathType_t math = CUDNN_DEFAULT_MATH;
    size_t bytes = 0;
    switch (kind_) {
    case ConvKind::Forward: {
      x = buffers[0], w = buffers[1], y = buffers[p.hasBias ? 3 : 2];
      if (p.hasBias)
        b = buffers[2];
      cudnnConvolutionFwdAlgoPerf_t perf[kMax];
      if (!check(dnn.cudnnGetConvolutionForwardAlgorithm_v7(
                     h, x_, w_, conv_, y_, kMax, &found, perf),
                 "forward algorithm"))
        return false;
      pick = chooseAlgorithm(perf, found, !f64_ && !narrow_, context_.tf32,
                             context_.workspaceLimit);
      if (pick >= 0)
        fwd_ = perf[pick].algo, math = perf[pick].mathType;
      break;
    }
    case ConvKind::GradInput: {
      y = buffers[0], w = buffers[1], x = buffers[2];
      cudnnConvolutionBwdDataAlgoPerf_t perf[kMax];
      if (!check(dnn.cudnnGetConvolutionBackwardDataAlgorithm_v7(
                     h, w_, y_, conv_, x_, kMax, &found, perf),
                 "backward-data algorithm"))
        return false;
      pick = chooseAlgorithm(perf, found, !f64_ && !narrow_, context_.tf32,
                             context_.workspaceLimit);
      if (pick >= 0)
        data_ = perf[pick].algo, math = perf[pick].mathType;
      break;
    }
    case ConvKind::GradFilter: {
      x = buffers[0], y = buffers[1], w = buffers[2];
      cudnnConvolutionBwdFilterAlgoPerf_t perf[kMax];
      if (!check(dnn.cudnnGetConvolutionBackwardFilterAlgorithm_v7(
                     h, x_, y_, conv_, w_, kMax, &found, perf),
                 "backward-filter algorithm"))
        return false;
      pick = chooseAlgorithm(perf, found, !f64_ && !narrow_, context_.tf32,
                             context_.workspaceLimit);
      if (pick >= 0)
        filter_ = perf[pick].algo, math = perf[pick].mathType;
      break;
    }
    }
    if (pick < 0) {
      error = "cuDNN offers no algorithm for this convolution within a " +
              std::to_string(context_.workspaceLimit >> 20) + " MiB workspace";
      return false;
    }
    if (!check(dnn.cudnnSetConvolutionMathType(conv_, math), "math type"))
      return false;
    switch (kind_) {
    case ConvKind::Forward:
      if (!check(dnn.cudnnGetConvolutionForwardWorkspaceSize(h, x_, w_, conv_,
                                                             y_, fwd_, &bytes),
                 "workspace size"))
        return false;
      break;
    case ConvKind::GradInput:
      if (!check(dnn.cudnnGetConvolutionBackwardDataWorkspaceSize(
                     h, w_, y_, conv_, x_, data_, &bytes),
                 "workspace size"))
        return false;
      break;
    case ConvKind::GradFilter:
      if (!check(dnn.cudnnGetConvolutionBackwardFilterWorkspaceSize(
                     h, x_, y_, conv_, w_, filter_, &bytes),
                 "workspace size"))
        return false;
      break;
    }
    workspace_ = bytes;
    return true;
  }

  uint64_t workspaceBytes() const override { return workspace_; }

  bool enqueue(CUstream, CUdeviceptr workspace, uint64_t,
               std::string &error) override {
    Cudnn &dnn = context_.cudnn;
    cudnnHandle_t h = context_.cudnnHandle;
    float one32 = 1.0f, zero32 = 0.0f;
    double one64 = 1.0, zero64 = 0.0;
    const void *one = f64_ ? static_cast<const void *>(&one64) : &one32;
    const void *zero = f64_ ? static_cast<const void *>(&zero64) : &zero32;
    void *ws = reinterpret_cast<void *>(workspace);
    auto ptr = [](CUdeviceptr p) { return reinterpret_cast<void *>(p); };
    cudnnStatus_t s = CUDNN_STATUS_SUCCESS;
    switch (kind_) {
    case ConvKind::Forward:
      s = dnn.cudnnConvolutionForward(h, one, x_, ptr(x), w_, ptr(w), conv_,
                                      fwd_, ws, workspace_, zero, y_, ptr(y));
      if (s == CUDNN_STATUS_SUCCESS && bias_)
        s = dnn.cudnnAddTensor(h, one, bias_, ptr(b), one, y_, ptr(y));
      break;
    case ConvKind::GradInput:
      s = dnn.cudnnConvolutionBackwardData(h, one, w_, ptr(w), y_, ptr(y),
                                           conv_, data_, ws, workspace_, zero,
                                           x_, ptr(x));
      break;
    case ConvKind::GradFilter:
      s = dnn.cudnnConvolutionBackwardFilter(h, one, x_, ptr(x), y_, ptr(y),
                                             conv_, filter_, ws, workspace_,
                                             zero, w_, ptr(w));
      break;
    }
    if (s != CUDNN_STATUS_SUCCESS) {
      error = std::string("cuDNN: ") + dnn.cudnnGetErrorString(s);
      return false;
    }
    return true;
  }

private:
  LibraryContext &context_;
  ConvKind kind_;
  bool narrow_ = false;
  bool f64_ = false;
  cudnnTensorDescriptor_t x_ = nullptr, y_ = nullptr, bias_ = nullptr;
  cudnnFilterDescriptor_t w_ = nullptr;
  cudnnConvolutionDescriptor_t conv_ = nullptr;
  cudnnConvolutionFwdAlgo_t fwd_ = {};
  cudnnConvolutionBwdDataAlgo_t data_ = {};
  cudnnConvolutionBwdFilterAlgo_t filter_ = {};
  uint64_t workspace_ = 0;
  /// The input (or its gradient), filter (or its gradient), output (or its
  /// gradient) and bias.
  CUdeviceptr x = 0, w = 0, y = 0, b = 0;
};

//===----------------------------------------------------------------------===//
// Runtime kernels: pools, scatter-add
//===----------------------------------------------------------------------===//

/// `cuda.concat`: one 2-D copy per input, its rows into their columns of
/// the output's rows (cuMemcpy2DAsync, captured into the step's graph like
/// a launch).
class ConcatCall : public LibraryCall {
public:
  ConcatCall(LibraryContext &context, const calls::ConcatCall &desc,
             const std::vector<CUdeviceptr> &buffers)
      : context_(context) {
    size_t k = desc.rowBytes.size(), total = 0;
    for (int64_t bytes : desc.rowBytes)
      total += static_cast<size_t>(bytes);
    size_t offset = 0;
    for (size_t i = 0; i < k; ++i) {
      size_t bytes = static_cast<size_t>(desc.rowBytes[i]);
      if (bytes > 0 && desc.outer > 0) {
        CUDA_MEMCPY2D m = {};
        m.srcMemoryType = m.dstMemoryType = CU_MEMORYTYPE_DEVICE;
        m.srcDevice = buffers[i];
        m.srcPitch = bytes;
        m.dstDevice = buffers[k] + offset;
        m.dstPitch = total;
        m.WidthInBytes = bytes;
        m.Height = static_cast<size_t>(desc.outer);
        copies_.push_back(m);
      }
      offset += bytes;
    }
  }

  bool enqueue(CUstream stream, CUdeviceptr, uint64_t,
               std::string &error) override {
    for (const CUDA_MEMCPY2D &m : copies_) {
      CUresult r = context_.driver->cuMemcpy2DAsync(&m, stream);
      if (r != CUDA_SUCCESS) {
        error = "cuMemcpy2DAsync: " + context_.driver->describe(r);
        return false;
      }
    }
    return true;
  }

private:
  LibraryContext &context_;
  std::vector<CUDA_MEMCPY2D> copies_;
};

/// A launch of one of the runtime's kernels with a by-value parameter
/// struct followed by buffer pointers.
template <typename Params> class KernelCall : public LibraryCall {
public:
  KernelCall(LibraryContext &context, CUfunction fn, const Params &params,
             std::vector<CUdeviceptr> buffers, int64_t threads)
      : context_(context), fn_(fn), params_(params),
        buffers_(std::move(buffers)) {
    int64_t blocks = (threads + kBlock - 1) / kBlock;
    grid_ = static_cast<unsigned>(std::clamp<int64_t>(blocks, 1, 1 << 20));
  }

  bool enqueue(CUstream stream, CUdeviceptr, uint64_t,
               std::string &error) override {
    void *args[8] = {&params_};
    for (size_t i = 0; i < buffers_.size(); ++i)
      args[i + 1] = &buffers_[i];
    CUresult r = context_.driver->cuLaunchKernel(fn_, grid_, 1, 1, kBlock, 1, 1,
                                                 0, stream, args, nullptr);
    if (r != CUDA_SUCCESS) {
      error = "cuLaunchKernel: " + context_.driver->describe(r);
      return false;
    }
    return true;
  }

private:
  static constexpr unsigned kBlock = 256;
  LibraryContext &context_;
  CUfunction fn_;
  Params params_;
  std::vector<CUdeviceptr> buffers_;
  unsigned grid_ = 1;
};

PoolParams poolParams(const calls::PoolCall &desc) {
  PoolParams p = {};
  const calls::Window &w = desc.window;
  int64_t s = w.rank;
  p.planes = desc.n * desc.c;
  long long *fields[7] = {p.in, p.k, p.out, p.stride, p.dil, p.padB, p.padE};
  const int64_t *from[7] = {w.in,        w.kernel,    w.out,   w.strides,
                            w.dilations, w.padBegin, w.padEnd};
  int64_t lead = 3 - s;
  for (int f = 0; f < 7; ++f)
    for (int64_t d = 0; d < 3; ++d)
      fields[f][d] = d < lead ? (f >= 5 ? 0 : 1) : from[f][d - lead];
  p.includePad = desc.countIncludePad;
  return p;
}

} // namespace

LibraryCall::~LibraryCall() = default;

bool LibraryContext::needCublasLt(std::string &error) {
  if (cublasLtHandle)
    return true;
  if (!cublasLt.cublasLtCreate && !cublasLt.load(error))
    return false;
  cublasStatus_t s = cublasLt.cublasLtCreate(&cublasLtHandle);
  if (s != CUBLAS_STATUS_SUCCESS) {
    error = "cublasLtCreate: " + describeCublas(s);
    cublasLtHandle = nullptr;
    return false;
  }
  return true;
}

bool LibraryContext::needCudnn(CUstream stream, std::string &error) {
  if (cudnnHandle)
    return true;
  if (!cudnn.cudnnCreate && !cudnn.load(error))
    return false;
  cudnnStatus_t s = cudnn.cudnnCreate(&cudnnHandle);
  if (s == CUDNN_STATUS_SUCCESS)
    s = cudnn.cudnnSetStream(cudnnHandle,
                             reinterpret_cast<cudaStream_t>(stream));
  if (s != CUDNN_STATUS_SUCCESS) {
    error = std::string("cuDNN: ") + cudnn.cudnnGetErrorString(s);
    if (cudnnHandle)
      cudnn.cudnnDestroy(cudnnHandle);
    cudnnHandle = nullptr;
    return false;
  }
  return true;
}

CUfunction LibraryContext::kernel(const std::string &name, std::string &error) {
  CUfunction fn = nullptr;
  if (!kernels) {
    error = "this runtime was built without its CUDA library kernels (no "
            "nvcc at build time), so it cannot run '" +
            name + "'";
    return nullptr;
  }
  CUresult r = driver->cuModuleGetFunction(&fn, kernels, name.c_str());
  if (r != CUDA_SUCCESS) {
    error = "the runtime's kernel '" + name +
            "' is missing: " + driver->describe(r);
    return nullptr;
  }
  return fn;
}

void LibraryContext::release() {
  if (cublasLtHandle)
    cublasLt.cublasLtDestroy(cublasLtHandle);
  if (cudnnHandle)
    cudnn.cudnnDestroy(cudnnHandle);
  cublasLtHandle = nullptr;
  cudnnHandle = nullptr;
}

std::unique_ptr<LibraryCall> trainopt::rt::cuda::planLibraryCall(
    LibraryContext &context, CUstream stream, const std::string &function,
    const std::vector<int64_t> &ints, const std::vector<CUdeviceptr> &buffers,
    std::string &error) {
  // The descriptors passed checkLibraryCall at load; decoding them again
  // only types them (LibraryCalls.h).
  std::string suffix = elementKind(ints[0]).suffix;
  auto decode = [&](auto &desc) {
    return std::remove_reference_t<decltype(desc)>::decode(
        ints.data(), ints.size(), desc, error);
  };
  if (function == "cuda.matmul") {
    calls::MatmulCall desc;
    if (!decode(desc) || !context.needCublasLt(error))
      return nullptr;
    auto call = std::make_unique<MatmulCall>(context);
    if (!call->plan(desc, buffers, error))
      return nullptr;
    return call;
  }
  if (function == "cuda.conv" || function == "cuda.conv_grad_input" ||
      function == "cuda.conv_grad_filter") {
    if (!context.needCudnn(stream, error))
      return nullptr;
    ConvKind kind = function == "cuda.conv"              ? ConvKind::Forward
                    : function == "cuda.conv_grad_input" ? ConvKind::GradInput
                                                         : ConvKind::GradFilter;
    calls::ConvCall desc;
    if (!decode(desc))
      return nullptr;
    auto call = std::make_unique<ConvCall>(context, kind);
    if (!call->plan(desc, buffers, error))
      return nullptr;
    return call;
  }
  struct PoolFunction {
    const char *name, *kernel;
    bool avg, overInput;
  };
  static const PoolFunction pools[] = {
      {"cuda.max_pool", "trainopt_max_pool_", false, false},
      {"cuda.max_pool_grad", "trainopt_max_pool_grad_", false, true},
      {"cuda.avg_pool", "trainopt_avg_pool_", true, false},
      {"cuda.avg_pool_grad", "trainopt_avg_pool_grad_", true, true},
  };
  for (const PoolFunction &f : pools) {
    if (function != f.name)
      continue;
    CUfunction fn = context.kernel(f.kernel + suffix, error);
    if (!fn)
      return nullptr;
    calls::PoolCall desc;
    if (!calls::PoolCall::decode(ints.data(), ints.size(), f.avg, desc, error))
      return nullptr;
    PoolParams p = poolParams(desc);
    int64_t threads = p.planes * (f.overInput ? p.in[0] * p.in[1] * p.in[2]
                                              : p.out[0] * p.out[1] * p.out[2]);
    return std::make_unique<KernelCall<PoolParams>>(context, fn, p, buffers,
                                                    threads);
  }
  if (function == "cuda.scatter_add") {
    calls::ScatterAddCall desc;
    if (!decode(desc))
      return nullptr;
    std::string name = "trainopt_scatter_add_" + suffix +
                       (desc.indexElement == kI64 ? "_i64" : "_i32");
    CUfunction fn = context.kernel(name, error);
    if (!fn)
      return nullptr;
    ScatterAddParams p = {desc.outer, desc.outAxis, desc.numIndices,
                          desc.inner};
    return std::make_unique<KernelCall<ScatterAddParams>>(
        context, fn, p, buffers, p.outer * p.inner);
  }
  if (function == "cuda.concat") {
    calls::ConcatCall desc;
    if (!decode(desc))
      return nullptr;
    return std::make_unique<ConcatCall>(context, desc, buffers);
  }
  if (function == "cuda.kth_smallest") {
    calls::KthSmallestCall desc;
    if (!decode(desc))
      return nullptr;
    CUfunction fn = context.kernel("trainopt_kth_smallest_" + suffix, error);
    if (!fn)
      return nullptr;
    // One block (the kernel's radix select shares its histogram).
    return std::make_unique<KernelCall<KthSmallestParams>>(
        context, fn, KthSmallestParams{desc.count}, buffers, 1);
  }
  error = "no CUDA implementation of '" + function + "'";
  return nullptr;
}
