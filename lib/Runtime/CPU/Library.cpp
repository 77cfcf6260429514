//===- Library.cpp - CPU functions behind LibraryCall commands ------------===//
//
/// \file
/// Matmul is one CBLAS GEMM per batch (or one for the whole batch when the
/// rhs is shared and the lhs is not transposed, folding the batch into M),
/// threaded by OpenBLAS.
///
/// f32 convolutions and their input gradients go to oneDNN when it loads
/// (OneDnn.cpp; --cpu-conv). Otherwise, and for filter gradients, f64 and
/// when oneDNN has no primitive, convolutions and their gradients are
/// im2col/col2im around GEMMs, one sample at a time (a 1x1 stride-1
/// unpadded convolution skips im2col), except for two shapes: small planes
/// fold the whole batch into one GEMM (foldsBatch) and depthwise
/// convolutions run directly per plane (isDepthwise).
/// On a 2-core x86 machine with MNIST/CIFAR-sized layers (N = 64..128,
/// Cin = 1..64, 14x14 and 28x28, 3x3 and 5x5), per-sample im2col was as fast
/// as an im2col matrix over a chunk of samples for Cin >= 16 and up to 3x
/// faster for Cin = 1: the per-sample matrices stay in L2, while the batched
/// one also needs a transposing copy of the output. OpenBLAS's threading of
/// these small GEMMs stalled badly whenever another process held a core, so
/// the samples are instead shared out dynamically on a persistent thread
/// pool, with BLAS single-threaded inside. Pools use the same thread pool.
/// Scratch memory lives in thread-local buffers that only grow, and the
/// pool's threads persist, so repeated calls make no large allocations.
///
/// Every loop nest treats the spatial dims as three, padding a lower rank
/// with leading unit dims (size 1, kernel 1, stride 1, no padding).
///
/// bf16 and f16 calls (mixed precision) are stored narrow and computed in
/// f32: their buffers are widened into f32 staging buffers, the f32 code
/// runs, and the written buffers are rounded back. This machine class (x86
/// without AVX-512 BF16) has no faster bf16 GEMM: Debian's OpenBLAS 0.3.21
/// is built without `cblas_sbgemm`, and oneDNN 2.6 (libdnnl-dev) creates no
/// bf16 matmul primitive without AVX-512, while its f32 matmul ran at half
/// OpenBLAS's SGEMM speed (256x1024x1024: 80 against 163 GFLOP/s, 2
/// threads). The widening costs O(size) against the GEMM's O(M N K).
//
//===----------------------------------------------------------------------===//

#include "trainopt/Runtime/CPULibrary.h"

#include "OneDnn.h"

#include "trainopt/Artifact/LibraryCalls.h"

#include "trainopt/Runtime/NarrowFloat.h"
#include "trainopt/Runtime/WindowMath.h"

#include <cblas.h>
#include <dlfcn.h>

#if defined(__x86_64__)
#include <immintrin.h>
#endif

#include <algorithm>
#include <atomic>
#include <cassert>
#include <climits>
#include <cmath>
#include <condition_variable>
#include <cstring>
#include <functional>
#include <limits>
#include <mutex>
#include <thread>
#include <type_traits>
#include <unordered_map>
#include <vector>

using namespace trainopt::rt;

namespace {

/// Element type codes of the artifact.
namespace calls = trainopt::calls;
using calls::kBF16;
using calls::kF16;
using calls::kF32;
using calls::kF64;
using calls::kI32;
using calls::kI64;

/// Below this many element operations a loop runs on the calling thread.
constexpr int64_t kMinParallelWork = 1 << 15;
/// Below this many loop iterations a generated kernel runs on one thread.
constexpr int64_t kMinKernelParallelWork = 1 << 16;

std::atomic<int> libraryThreadCount{0};
/// Whether f32 convolutions go to oneDNN first (setConvKernels).
std::atomic<bool> convOnOneDnn{true};

int libraryThreads() {
  int t = libraryThreadCount.load(std::memory_order_relaxed);
  if (t > 0)
    return t;
  return std::max(1u, std::thread::hardware_concurrency());
}

/// Persistent workers that run one job at a time; the caller of run() is
/// worker 0. Workers sleep on a condition variable between jobs, so they
/// do not compete with OpenBLAS's threads.
class ThreadPool {
public:
  /// Runs job(worker) on workers [0, threads) and waits for all of them.
  void run(int threads, const std::function<void(int)> &job) {
    std::lock_guard<std::mutex> serial(runMutex);
    {
      std::unique_lock<std::mutex> lock(mutex);
      while (static_cast<int>(workers.size()) < threads - 1) {
        int index = static_cast<int>(workers.size()) + 1;
        workers.emplace_back([this, index] { loop(index); });
      }
      current = &job;
      active = threads;
      pending = threads - 1;
      ++generation;
    }
    wake.notify_all();
    job(0);
    std::unique_lock<std::mutex> lock(mutex);
    done.wait(lock, [&] { return pending == 0; });
    current = nullptr;
  }

private:
  void loop(int index) {
    uint64_t seen = 0;
    std::unique_lock<std::mutex> lock(mutex);
    for (;;) {
      wake.wait(lock, [&] { return generation != seen; });
      seen = generation;
      if (index >= active)
        continue;
      const std::function<void(int)> *job = current;
      lock.unlock();
      (*job)(index);
      lock.lock();
      if (--pending == 0)
        done.notify_one();
    }
  }

  std::mutex runMutex, mutex;
  std::condition_variable wake, done;
  std::vector<std::thread> workers;
  const std::function<void(int)> *current = nullptr;
  int active = 0, pending = 0;
  uint64_t generation = 0;
};

/// Never destroyed: its workers block forever and exit with the process.
ThreadPool &threadPool() {
  static ThreadPool *pool = new ThreadPool;
  return *pool;
}

/// The number of threads parallelFor would use for `count` units of `cost`
/// element operations.
int64_t parallelThreads(int64_t count, int64_t cost) {
  int64_t threads = std::min<int64_t>(libraryThreads(), count);
  int64_t total;
  if (threads <= 1 ||
      (!__builtin_mul_overflow(count, cost, &total) && total < kMinParallelWork))
    return 1;
  return threads;
}

/// Runs fn(begin, end, worker) over [0, count) in blocks of `grain` units
/// handed out dynamically (a thread slowed by another process takes fewer),
/// on parallelThreads(count, cost) threads.
template <typename Fn>
void parallelFor(int64_t count, int64_t cost, int64_t grain, const Fn &fn) {
  int64_t threads = parallelThreads(count, cost);
  if (threads <= 1) {
    if (count > 0)
      fn(int64_t(0), count, 0);
    return;
  }
  std::atomic<int64_t> next{0};
  threadPool().run(static_cast<int>(threads), [&](int worker) {
    for (;;) {
      int64_t begin = next.fetch_add(grain, std::memory_order_relaxed);
      if (begin >= count)
        return;
      fn(begin, std::min(count, begin + grain), worker);
    }
  });
}

/// OpenBLAS, opened on first use rather than linked, so the runtime
/// binaries start (and run cuda artifacts) on machines without it.
struct Blas {
  decltype(&cblas_sgemm) sgemm = nullptr;
  decltype(&cblas_dgemm) dgemm = nullptr;
  decltype(&openblas_set_num_threads) setThreads = nullptr;
  decltype(&openblas_get_num_threads) getThreads = nullptr;
  std::string error;
};

const Blas &blas() {
  static const Blas b = [] {
    Blas b;
    void *h = nullptr;
    for (const char *name : {"libopenblas.so.0", "libopenblas.so"})
      if ((h = dlopen(name, RTLD_NOW | RTLD_LOCAL)))
        break;
    if (!h) {
      b.error = std::string("cannot load OpenBLAS (libopenblas.so.0): ") +
                dlerror();
      return b;
    }
    b.sgemm = reinterpret_cast<decltype(b.sgemm)>(dlsym(h, "cblas_sgemm"));
    b.dgemm = reinterpret_cast<decltype(b.dgemm)>(dlsym(h, "cblas_dgemm"));
    b.setThreads = reinterpret_cast<decltype(b.setThreads)>(
        dlsym(h, "openblas_set_num_threads"));
    b.getThreads = reinterpret_cast<decltype(b.getThreads)>(
        dlsym(h, "openblas_get_num_threads"));
    if (!b.sgemm || !b.dgemm || !b.setThreads || !b.getThreads) {
      b.error = "libopenblas.so.0 lacks cblas_sgemm, cblas_dgemm or "
                "openblas_set_num_threads";
      b.sgemm = nullptr;
      return b;
    }
    // One BLAS thread: the library's own pool spreads the work (see
    // setLibraryThreads).
    b.setThreads(1);
    return b;
  }();
  return b;
}

/// Sets OpenBLAS to one thread while alive (when `single`): the callers run
/// their GEMMs from several library threads at once.
class SingleThreadedBlas {
public:
  explicit SingleThreadedBlas(bool single)
      : previous(single ? blas().getThreads() : 1) {
    if (previous > 1)
      blas().setThreads(1);
  }
  ~SingleThreadedBlas() {
    if (previous > 1)
      blas().setThreads(previous);
  }

private:
  int previous;
};

/// A grow-only thread-local scratch buffer; `slot` selects one of two.
template <typename T> T *scratch(int slot, int64_t elements) {
  thread_local std::vector<double> buffers[2];
  std::vector<double> &b = buffers[slot];
  size_t doubles = (static_cast<size_t>(elements) * sizeof(T) + 7) / 8;
  if (b.size() < doubles)
    b.resize(doubles);
  return reinterpret_cast<T *>(b.data());
}

//===----------------------------------------------------------------------===//
// GEMM
//===----------------------------------------------------------------------===//

/// Row-major C = op(A) op(B) + beta * C.
void gemm(bool ta, bool tb, int64_t m, int64_t n, int64_t k, const float *a,
          int64_t lda, const float *b, int64_t ldb, float beta, float *c,
          int64_t ldc) {
  blas().sgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans,
              tb ? CblasTrans : CblasNoTrans, m, n, k, 1.0f, a, lda, b, ldb,
              beta, c, ldc);
}
void gemm(bool ta, bool tb, int64_t m, int64_t n, int64_t k, const double *a,
          int64_t lda, const double *b, int64_t ldb, double beta, double *c,
          int64_t ldc) {
  blas().dgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans,
              tb ? CblasTrans : CblasNoTrans, m, n, k, 1.0, a, lda, b, ldb,
              beta, c, ldc);
}

/// Below this many multiply-adds a matmul runs on the calling thread.
constexpr int64_t kMinParallelGemm = 1 << 20;

/// A large matmul is cut into at most this many blocks.
constexpr int64_t kMaxGemmBlocks = 8;

/// From this many rows of C, parallelGemm cuts C into blocks of rows
/// whatever its width. OpenBLAS 0.3.21 (Zen kernels), two threads, GFLOP/s
/// in blocks of columns against rows: [1024 x 1024] by K 256 132 / 173,
/// [1024 x 256] by K 1024 128 / 183, [512 x 512] by K 1024 (A transposed)
/// 150 / 170, a folded filter gradient [512 x 4608] by K 64 (B transposed)
/// 101 / 137; below, the wider dim won: [256 x 1024] by K 1024 164 / 141,
/// [128 x 2048] by K 1152 162 / 135.
constexpr int64_t kGemmRowBlocksFrom = 512;

/// Runs fn(lo, len) over the blocks of [0, span) that parallelGemm cuts:
/// at most kMaxGemmBlocks, each a multiple of 16 (the widest SIMD
/// micro-kernel), shared over the library's threads. The blocks depend on
/// the span only, so the bits do not depend on the thread count.
template <typename Fn>
void gemmBlocks(int64_t span, int64_t macs, const Fn &fn) {
  if (span <= 0)
    return;
  int64_t parts = std::clamp<int64_t>(span / 32, 1, kMaxGemmBlocks);
  int64_t block = ((span + parts - 1) / parts + 15) / 16 * 16;
  parts = (span + block - 1) / block;
  parallelFor(parts, macs / parts, 1, [&](int64_t first, int64_t last, int) {
    for (int64_t p = first; p < last; ++p)
      fn(p * block, std::min(span, (p + 1) * block) - p * block);
  });
}

/// gemm() shared out over the library's threads: C's rows (from
/// kGemmRowBlocksFrom rows, else the wider of its two dims) are cut into
/// blocks of at least 32 (a multiple of 16, the widest SIMD micro-kernel),
/// each a single-threaded GEMM over the whole K. The
/// blocks depend on the shape only, never on the thread count, and BLAS may
/// round a block differently from the whole, so a one-thread run computes
/// the same blocks: the bits do not depend on the thread count. Not for use
/// inside another parallelFor.
template <typename T>
void parallelGemm(bool ta, bool tb, int64_t m, int64_t n, int64_t k,
                  const T *a, int64_t lda, const T *b, int64_t ldb, T beta,
                  T *c, int64_t ldc) {
  int64_t macs = m * n * k;
  bool byColumns = m < kGemmRowBlocksFrom && n >= m;
  int64_t span = byColumns ? n : m;
  if (span / 32 <= 1 || macs < kMinParallelGemm) {
    gemm(ta, tb, m, n, k, a, lda, b, ldb, beta, c, ldc);
    return;
  }
  gemmBlocks(span, macs, [&](int64_t lo, int64_t len) {
    if (byColumns)
      gemm(ta, tb, m, len, k, a, lda, tb ? b + lo * ldb : b + lo, ldb, beta,
           c + lo, ldc);
    else
      gemm(ta, tb, len, n, k, ta ? a + lo : a + lo * lda, lda, b, ldb, beta,
           c + lo * ldc, ldc);
  });
}

//===----------------------------------------------------------------------===//
// Descriptors
//===----------------------------------------------------------------------===//

/// The spatial window of a conv or pool, as three dims.
struct Window {
  int64_t in[3], k[3], out[3], stride[3], dil[3], padB[3], padE[3];

  /// The descriptor's window, its S dims right-aligned in three (the
  /// leading ones of size 1, no padding).
  explicit Window(const calls::Window &cw) {
    int64_t s = cw.rank, lead = 3 - s;
    int64_t *fields[7] = {in, k, out, stride, dil, padB, padE};
    const int64_t *from[7] = {cw.in,        cw.kernel,    cw.out,
                              cw.strides,   cw.dilations, cw.padBegin,
                              cw.padEnd};
    for (int f = 0; f < 7; ++f)
      for (int64_t d = 0; d < 3; ++d)
        fields[f][d] = d < lead ? (f >= 5 ? 0 : 1) : from[f][d - lead];
  }
  int64_t inSize() const { return in[0] * in[1] * in[2]; }
  int64_t kSize() const { return k[0] * k[1] * k[2]; }
  int64_t outSize() const { return out[0] * out[1] * out[2]; }
  /// Whether im2col would be the identity.
  bool isIdentity() const {
    for (int d = 0; d < 3; ++d)
      if (k[d] != 1 || stride[d] != 1 || padB[d] != 0 || padE[d] != 0)
        return false;
    return true;
  }
};

/// The kernel taps [lo, hi) of dim `d` that land inside the input for
/// output position `o` (WindowMath.h).
inline void tapRange(const Window &w, int d, int64_t o, int64_t &lo,
                     int64_t &hi) {
  windowTaps<int64_t>(o, w.in[d], w.k[d], w.stride[d], w.dil[d], w.padB[d], lo,
                      hi);
}

/// The taps of dim `d` inside the input or its end padding
/// (count_include_pad).
inline int64_t paddedTaps(const Window &w, int d, int64_t o) {
  return windowPaddedTaps<int64_t>(o, w.in[d], w.k[d], w.stride[d], w.dil[d],
                                   w.padB[d], w.padE[d]);
}

struct ConvDesc {
  int64_t s, hasBias, n, cin, cout, groups;
  Window w;
  explicit ConvDesc(const calls::ConvCall &call)
      : s(call.window.rank), hasBias(call.hasBias), n(call.n), cin(call.cin),
        cout(call.cout), groups(call.groups), w(call.window) {}
};

struct PoolDesc {
  int64_t s, n, c;
  bool includePad = false;
  Window w;
  explicit PoolDesc(const calls::PoolCall &call)
      : s(call.window.rank), n(call.n), c(call.c),
        includePad(call.countIncludePad), w(call.window) {}
};

/// A descriptor that checkLibraryCall accepted at load time.
template <typename Call>
Call decoded(const int64_t *ints, size_t numInts) {
  Call call;
  std::string error;
  bool ok = Call::decode(ints, numInts, call, error);
  assert(ok && "descriptor not checked at load time");
  (void)ok;
  return call;
}
template <bool Average>
calls::PoolCall decodedPool(const int64_t *ints, size_t numInts) {
  calls::PoolCall call;
  std::string error;
  bool ok = calls::PoolCall::decode(ints, numInts, Average, call, error);
  assert(ok && "descriptor not checked at load time");
  (void)ok;
  return call;
}

//===----------------------------------------------------------------------===//
// Matmul
//===----------------------------------------------------------------------===//

template <typename T>
void matmulImpl(const calls::MatmulCall &call, void *const *buffers) {
  int64_t r = call.outBatch.size();
  const int64_t *outB = call.outBatch.data(), *lB = call.lhsBatch.data(),
                *rB = call.rhsBatch.data();
  int64_t m = call.m, n = call.n, k = call.k;
  bool ta = call.transposeLhs, tb = call.transposeRhs;
  T beta = call.accumulateOut ? T(1) : T(0);
  const T *lhs = static_cast<const T *>(buffers[0]);
  const T *rhs = static_cast<const T *>(buffers[1]);
  T *out = static_cast<T *>(buffers[2]);
  int64_t batch = 1, lCount = 1, rCount = 1;
  for (int64_t d = 0; d < r; ++d)
    batch *= outB[d], lCount *= lB[d], rCount *= rB[d];
  int64_t lda = ta ? m : k, ldb = tb ? k : n;
  if (rCount == 1 && !ta && lCount == batch && batch * m <= INT_MAX) {
    parallelGemm(false, tb, batch * m, n, k, lhs, lda, rhs, ldb, beta, out,
                 n);
    return;
  }
  if (batch == 1) {
    parallelGemm(ta, tb, m, n, k, lhs, lda, rhs, ldb, beta, out, n);
    return;
  }
  // Element offsets of each batch's lhs and rhs (strides 0 where broadcast).
  std::vector<int64_t> lStride(r), rStride(r), idx(r, 0);
  for (int64_t d = r - 1, ls = m * k, rs = k * n; d >= 0; --d) {
    lStride[d] = lB[d] == 1 ? 0 : ls;
    rStride[d] = rB[d] == 1 ? 0 : rs;
    ls *= lB[d], rs *= rB[d];
  }
  std::vector<int64_t> lOff(batch), rOff(batch);
  for (int64_t b = 1; b < batch; ++b) {
    lOff[b] = lOff[b - 1], rOff[b] = rOff[b - 1];
    for (int64_t d = r - 1; d >= 0; --d) {
      lOff[b] += lStride[d], rOff[b] += rStride[d];
      if (++idx[d] < outB[d])
        break;
      lOff[b] -= lStride[d] * outB[d], rOff[b] -= rStride[d] * outB[d];
      idx[d] = 0;
    }
  }
  // Batches are independent: one GEMM each, shared out over threads.
  parallelFor(batch, m * n * k, 1, [&](int64_t first, int64_t last, int) {
    for (int64_t b = first; b < last; ++b)
      gemm(ta, tb, m, n, k, lhs + lOff[b], lda, rhs + rOff[b], ldb, beta,
           out + b * m * n, n);
  });
}

//===----------------------------------------------------------------------===//
// im2col / col2im
//===----------------------------------------------------------------------===//

/// Output positions [lo, hi) of a row whose input index ow * stride + off
/// lies in [0, in).
inline void rowRange(int64_t outW, int64_t inW, int64_t stride, int64_t off,
                     int64_t &lo, int64_t &hi) {
  lo = off >= 0 ? 0 : (-off + stride - 1) / stride;
  int64_t room = inW - off;
  hi = room <= 0 ? 0 : std::min(outW, (room + stride - 1) / stride);
  lo = std::min(lo, outW);
  hi = std::max(hi, lo);
}

/// Fills `col` ([cinG * K rows, P columns], rows `ld` elements apart) with
/// the windows of the `cinG` channels at `x` (each [in...]).
template <typename T>
void im2col(const T *x, int64_t cinG, const Window &w, T *col, int64_t ld) {
  int64_t inSize = w.inSize();
  T *row = col;
  for (int64_t c = 0; c < cinG; ++c) {
    const T *xp = x + c * inSize;
    for (int64_t kd = 0; kd < w.k[0]; ++kd)
      for (int64_t kh = 0; kh < w.k[1]; ++kh)
        for (int64_t kw = 0; kw < w.k[2]; ++kw, row += ld) {
          T *dst = row;
          int64_t off = kw * w.dil[2] - w.padB[2];
          int64_t lo, hi;
          rowRange(w.out[2], w.in[2], w.stride[2], off, lo, hi);
          for (int64_t od = 0; od < w.out[0]; ++od) {
            int64_t id = od * w.stride[0] + kd * w.dil[0] - w.padB[0];
            for (int64_t oh = 0; oh < w.out[1]; ++oh, dst += w.out[2]) {
              int64_t ih = oh * w.stride[1] + kh * w.dil[1] - w.padB[1];
              if (id < 0 || id >= w.in[0] || ih < 0 || ih >= w.in[1]) {
                std::fill(dst, dst + w.out[2], T(0));
                continue;
              }
              const T *src = xp + (id * w.in[1] + ih) * w.in[2];
              std::fill(dst, dst + lo, T(0));
              if (w.stride[2] == 1)
                std::memcpy(dst + lo, src + lo + off, (hi - lo) * sizeof(T));
              else
                for (int64_t ow = lo; ow < hi; ++ow)
                  dst[ow] = src[ow * w.stride[2] + off];
              std::fill(dst + hi, dst + w.out[2], T(0));
            }
          }
        }
  }
}

/// The transpose of im2col: adds the windows in `col` (rows `ld` elements
/// apart) into the `cinG` channels at `x`.
template <typename T>
void col2im(const T *col, int64_t cinG, const Window &w, T *x, int64_t ld) {
  int64_t inSize = w.inSize();
  const T *row = col;
  for (int64_t c = 0; c < cinG; ++c) {
    T *xp = x + c * inSize;
    for (int64_t kd = 0; kd < w.k[0]; ++kd)
      for (int64_t kh = 0; kh < w.k[1]; ++kh)
        for (int64_t kw = 0; kw < w.k[2]; ++kw, row += ld) {
          const T *src = row;
          int64_t off = kw * w.dil[2] - w.padB[2];
          int64_t lo, hi;
          rowRange(w.out[2], w.in[2], w.stride[2], off, lo, hi);
          for (int64_t od = 0; od < w.out[0]; ++od) {
            int64_t id = od * w.stride[0] + kd * w.dil[0] - w.padB[0];
            for (int64_t oh = 0; oh < w.out[1]; ++oh, src += w.out[2]) {
              int64_t ih = oh * w.stride[1] + kh * w.dil[1] - w.padB[1];
              if (id < 0 || id >= w.in[0] || ih < 0 || ih >= w.in[1])
                continue;
              T *dst = xp + (id * w.in[1] + ih) * w.in[2];
              if (w.stride[2] == 1)
                for (int64_t ow = lo; ow < hi; ++ow)
                  dst[ow + off] += src[ow];
              else
                for (int64_t ow = lo; ow < hi; ++ow)
                  dst[ow * w.stride[2] + off] += src[ow];
            }
          }
        }
  }
}

//===----------------------------------------------------------------------===//
// Convolution
//===----------------------------------------------------------------------===//

/// The shape of one convolution call, with the per-group sizes.
struct ConvShape {
  ConvDesc c;
  int64_t cinG, coutG, p, inSize, kk;
  bool identity;
  explicit ConvShape(const calls::ConvCall &call)
      : c(call), cinG(c.cin / c.groups), coutG(c.cout / c.groups),
        p(c.w.outSize()), inSize(c.w.inSize()), kk(cinG * c.w.kSize()),
        identity(c.w.isIdentity()) {}
  /// Element operations of one sample, for parallelFor.
  int64_t sampleCost() const { return c.cout * p * kk; }
};

/// Runs fn(n, worker) for every sample, sharing the samples across the
/// library threads with BLAS single-threaded, or on this thread with BLAS
/// threaded when there is only one sample.
template <typename Fn> void forEachSample(const ConvShape &s, const Fn &fn) {
  bool split = parallelThreads(s.c.n, s.sampleCost()) > 1;
  SingleThreadedBlas blas(split);
  parallelFor(s.c.n, s.sampleCost(), 1,
              [&](int64_t begin, int64_t end, int worker) {
                for (int64_t n = begin; n < end; ++n)
                  fn(n, worker);
              });
}

/// Runs the call on oneDNN when it is selected and has a primitive for it
/// (filter gradients only where oneDnnGradFilterWins).
template <typename T>
bool onOneDnn(ConvDirection direction, const calls::ConvCall &call,
              void *const *buffers) {
  if constexpr (std::is_same_v<T, float>)
    return convOnOneDnn.load(std::memory_order_relaxed) &&
           oneDnnConv(direction, call, buffers, libraryThreads());
  return false;
}

/// A convolution whose output planes have fewer positions than this folds
/// the whole batch into its GEMMs' columns (see foldsBatch).
constexpr int64_t kFoldBelowPositions = 256;
/// The folded im2col matrix may take at most this many bytes.
constexpr int64_t kFoldBytes = int64_t(64) << 20;

/// Whether the call computes its GEMMs over the whole batch at once: an
/// im2col matrix of [Cin K, N P] and one GEMM of N P columns, cut into
/// blocks by parallelGemm, instead of one GEMM of P columns per sample.
/// Deep layers of image models have small planes (ResNet-18 at 64x64: P = 16
/// and 4 in its last stages), where a per-sample GEMM of so few columns runs
/// at a few GFLOP/s and a filter gradient becomes N rank-P updates of the
/// whole filter. Folding costs a copy of the output (or of its gradient)
/// between [N, Cout, P] and [Cout, N P], O(N Cout P) against the GEMM's
/// O(N Cout P Cin K). Grouped convolutions keep the per-sample path. The
/// choice depends on the shape only, so the bits do not depend on the
/// thread count.
template <typename T> bool foldsBatch(const ConvShape &s) {
  int64_t bytes;
  return s.c.groups == 1 && s.c.n > 1 && s.p < kFoldBelowPositions &&
         !__builtin_mul_overflow(s.kk * s.p, s.c.n * int64_t(sizeof(T)),
                                 &bytes) &&
         bytes <= kFoldBytes && s.c.n * s.p <= INT_MAX && s.kk <= INT_MAX;
}

/// Copies per-sample planes `a` ([N, C, P]) into the folded matrix `b`
/// ([C, N P]), or back when `!toFolded`, adding bias[c] when given.
template <typename T>
void foldCopy(const ConvShape &s, int64_t channels, bool toFolded,
              const T *from, T *to, const T *bias = nullptr) {
  int64_t p = s.p, np = s.c.n * p;
  parallelFor(s.c.n, channels * p, 1, [&](int64_t first, int64_t last, int) {
    for (int64_t n = first; n < last; ++n)
      for (int64_t ch = 0; ch < channels; ++ch) {
        int64_t plane = (n * channels + ch) * p, row = ch * np + n * p;
        const T *src = from + (toFolded ? plane : row);
        T *dst = to + (toFolded ? row : plane);
        if (bias)
          for (int64_t i = 0; i < p; ++i)
            dst[i] = src[i] + bias[ch];
        else
          std::copy(src, src + p, dst);
      }
  });
}

/// The folded im2col matrix of the whole batch ([Cin K, N P]).
template <typename T> T *foldedIm2col(const ConvShape &s, const T *x) {
  int64_t np = s.c.n * s.p;
  T *col = scratch<T>(0, s.kk * np);
  parallelFor(s.c.n, s.kk * s.p, 1, [&](int64_t first, int64_t last, int) {
    for (int64_t n = first; n < last; ++n)
      im2col(x + n * s.c.cin * s.inSize, s.c.cin, s.c.w, col + n * s.p, np);
  });
  return col;
}

template <typename T>
void foldedConv(const ConvShape &s, const T *x, const T *wt, const T *bias,
                T *y) {
  int64_t np = s.c.n * s.p;
  const T *col = foldedIm2col(s, x);
  T *out = scratch<T>(1, s.c.cout * np);
  parallelGemm(false, false, s.c.cout, np, s.kk, wt, s.kk, col, np, T(0), out,
               np);
  foldCopy(s, s.c.cout, false, out, y, bias);
}

template <typename T>
void foldedConvGradInput(const ConvShape &s, const T *dy, const T *wt, T *dx) {
  int64_t np = s.c.n * s.p;
  T *g = scratch<T>(1, s.c.cout * np);
  foldCopy(s, s.c.cout, true, dy, g);
  T *col = scratch<T>(0, s.kk * np);
  parallelGemm(true, false, s.kk, np, s.c.cout, wt, s.kk, g, np, T(0), col, np);
  parallelFor(s.c.n, s.kk * s.p, 1, [&](int64_t first, int64_t last, int) {
    for (int64_t n = first; n < last; ++n) {
      T *dxn = dx + n * s.c.cin * s.inSize;
      std::fill(dxn, dxn + s.c.cin * s.inSize, T(0));
      col2im(col + n * s.p, s.c.cin, s.c.w, dxn, np);
    }
  });
}

template <typename T>
void foldedConvGradFilter(const ConvShape &s, const T *x, const T *dy, T *dw) {
  int64_t np = s.c.n * s.p;
  T *g = scratch<T>(1, s.c.cout * np);
  foldCopy(s, s.c.cout, true, dy, g);
  const T *col = foldedIm2col(s, x);
  parallelGemm(false, true, s.c.cout, s.kk, np, g, np, col, np, T(0), dw, s.kk);
}

//===----------------------------------------------------------------------===//
// Tap GEMMs: filter gradients on small planes
//===----------------------------------------------------------------------===//

/// A stride-1 filter gradient whose output plane has at most this many
/// positions runs as tap GEMMs (usesTapGemms). Measured with --profile on
/// the models of bench/cpu_step_time.py: ResNet-18's three 512-channel 3x3
/// layers on 2x2 planes 22.1 -> 12.0 ms a step, ResNet-50's two 15.0 ->
/// 7.5 ms, DenseNet-121's sixteen 10.3 -> 3.1 ms. With 4x4 planes (16
/// positions) included it lost: DenseNet-121's forty filter gradients on
/// 4x4 and 2x2 planes took 12.1 ms against 8.7 with 2x2 alone.
/// The forward and input gradient stay on oneDNN: as tap GEMMs they need
/// the filter repacked, which costs as much as oneDNN's reorder, and their
/// GEMMs ran slower (ResNet-18's three layers 13.2 -> 17.1 ms a direction).
constexpr int64_t kTapGemmPositions = 4;

/// Output positions [p, p + len) that kernel tap `tap` reads from input
/// positions [q, q + len), both within one sample's plane.
struct TapRun {
  int64_t tap, p, q, len;
};

/// The runs of a stride-1, undilated window without depth, by tap in order:
/// one per output row whose input row exists, merged where they follow each
/// other in both planes (the middle column of taps of a padded window).
std::vector<TapRun> tapRuns(const Window &w) {
  std::vector<TapRun> runs;
  for (int64_t kh = 0; kh < w.k[1]; ++kh)
    for (int64_t kw = 0; kw < w.k[2]; ++kw) {
      int64_t tap = kh * w.k[2] + kw, off = kw - w.padB[2], lo, hi;
      rowRange(w.out[2], w.in[2], 1, off, lo, hi);
      for (int64_t row = 0; lo < hi && row < w.out[1]; ++row) {
        int64_t in = row + kh - w.padB[1];
        if (in < 0 || in >= w.in[1])
          continue;
        TapRun run{tap, row * w.out[2] + lo, in * w.in[2] + lo + off, hi - lo};
        if (!runs.empty() && runs.back().tap == tap &&
            runs.back().p + runs.back().len == run.p &&
            runs.back().q + runs.back().len == run.q)
          runs.back().len += run.len;
        else
          runs.push_back(run);
      }
    }
  return runs;
}

/// Whether a filter gradient runs as tap GEMMs. On a small plane most of
/// an im2col GEMM multiplies padding (a 3x3 kernel padded by 1 on a 2x2
/// plane: 20 of its 36 tap-position products; ResNet's last stage at 64x64
/// inputs). As tap GEMMs, each kernel tap's gradient is one GEMM per run of
/// positions it reaches: [Cout, run * N] by [run * N, Cin], on activations
/// laid out [C, P, N]. Ungrouped, stride 1, undilated, no depth, more than
/// one tap.
bool usesTapGemms(const ConvShape &s) {
  const Window &w = s.c.w;
  if (s.c.groups != 1 || w.kSize() <= 1 || s.p > kTapGemmPositions ||
      w.k[0] != 1 || w.in[0] != 1 || w.out[0] != 1)
    return false;
  for (int d = 1; d < 3; ++d)
    if (w.stride[d] != 1 || w.dil[d] != 1)
      return false;
  return true;
}

/// Copies `channels` planes of `positions` per sample from [N, C, P] to
/// [C, P, N].
template <typename T>
void toCpn(int64_t n, int64_t channels, int64_t positions, const T *from,
           T *to) {
  parallelFor(channels, n * positions, 1,
              [&](int64_t first, int64_t last, int) {
                for (int64_t c = first; c < last; ++c)
                  for (int64_t i = 0; i < positions; ++i)
                    for (int64_t s = 0; s < n; ++s)
                      to[(c * positions + i) * n + s] =
                          from[(s * channels + c) * positions + i];
              });
}

/// Copies a filter gradient from [K, Cout, Cin] to [Cout, Cin, K]: per
/// output channel, a [Cin, K] slab (within L1) written tap by tap.
template <typename T>
void fromKoi(int64_t cout, int64_t cin, int64_t taps, const T *from, T *to) {
  parallelFor(cout, cin * taps, 1, [&](int64_t first, int64_t last, int) {
    for (int64_t o = first; o < last; ++o)
      for (int64_t t = 0; t < taps; ++t) {
        const T *row = from + (t * cout + o) * cin;
        T *slab = to + o * cin * taps + t;
        for (int64_t i = 0; i < cin; ++i)
          slab[i * taps] = row[i];
      }
  });
}

/// The filter gradient as tap GEMMs (usesTapGemms): per tap t, dW_t
/// ([Cout, Cin], scratch slot 0) sums dy's run columns times x's, from
/// [C, P, N] copies of both (slot 1); then dW_t is interleaved into
/// [Cout, Cin, K]. Blocks of output channels (gemmBlocks) share the
/// threads; each block adds its runs in one order, so the bits do not
/// depend on the thread count.
template <typename T>
void tapConvGradFilter(const ConvShape &s, const T *x, const T *dy, T *dw) {
  const ConvDesc &c = s.c;
  int64_t taps = c.w.kSize(), pin = s.inSize, pout = s.p, n = c.n, macs = 0;
  std::vector<TapRun> runs = tapRuns(c.w);
  for (const TapRun &r : runs)
    macs += c.cout * c.cin * r.len * n;
  T *koi = scratch<T>(0, taps * c.cout * c.cin);
  T *xc = scratch<T>(1, (c.cin * pin + c.cout * pout) * n);
  T *yc = xc + c.cin * pin * n;
  toCpn(n, c.cin, pin, x, xc);
  toCpn(n, c.cout, pout, dy, yc);
  gemmBlocks(c.cout, macs, [&](int64_t lo, int64_t len) {
    // A tap's first run overwrites its rows; a tap without runs is zero.
    std::vector<bool> written(taps, false);
    for (const TapRun &r : runs) {
      gemm(false, true, len, c.cin, r.len * n, yc + (lo * pout + r.p) * n,
           pout * n, xc + r.q * n, pin * n, written[r.tap] ? T(1) : T(0),
           koi + (r.tap * c.cout + lo) * c.cin, c.cin);
      written[r.tap] = true;
    }
    for (int64_t t = 0; t < taps; ++t)
      if (!written[t])
        std::fill(koi + (t * c.cout + lo) * c.cin,
                  koi + (t * c.cout + lo + len) * c.cin, T(0));
  });
  fromKoi(c.cout, c.cin, taps, koi, dw);
}

/// Whether the call is depthwise (one input channel per group, any number
/// of output channels per group, as in MobileNet): each output plane is
/// computed directly from one input plane. As a GEMM per sample and group it
/// would be N * groups calls of a few hundred multiply-adds each;
/// MobileNetV2's depthwise layers ran at under 1 GFLOP/s that way.
bool isDepthwise(const ConvShape &s) { return s.c.groups > 1 && s.cinG == 1; }

/// Calls fn(tap, in, out, lo, hi, off) for every kernel tap and every output
/// row whose input row lies inside the input: outputs out + [lo, hi) of the
/// row read inputs in + ow * stride + off.
template <typename Fn> void forEachTapRow(const Window &w, const Fn &fn) {
  int64_t tap = 0;
  for (int64_t kd = 0; kd < w.k[0]; ++kd)
    for (int64_t kh = 0; kh < w.k[1]; ++kh)
      for (int64_t kw = 0; kw < w.k[2]; ++kw, ++tap) {
        int64_t off = kw * w.dil[2] - w.padB[2], lo, hi;
        rowRange(w.out[2], w.in[2], w.stride[2], off, lo, hi);
        if (lo == hi)
          continue;
        for (int64_t od = 0; od < w.out[0]; ++od) {
          int64_t id = od * w.stride[0] + kd * w.dil[0] - w.padB[0];
          if (id < 0 || id >= w.in[0])
            continue;
          for (int64_t oh = 0; oh < w.out[1]; ++oh) {
            int64_t ih = oh * w.stride[1] + kh * w.dil[1] - w.padB[1];
            if (ih >= 0 && ih < w.in[1])
              fn(tap, (id * w.in[1] + ih) * w.in[2],
                 (od * w.out[1] + oh) * w.out[2], lo, hi, off);
          }
        }
      }
}

/// Output planes per block of a depthwise loop: about 8 blocks a thread.
int64_t planeGrain(int64_t planes) {
  return std::max<int64_t>(1, planes / (8 * libraryThreads()));
}

template <typename T>
void depthwiseConv(const ConvShape &s, const T *x, const T *wt, const T *bias,
                   T *y) {
  const ConvDesc &c = s.c;
  int64_t k = c.w.kSize(), st = c.w.stride[2];
  parallelFor(c.n * c.cout, s.p * k, planeGrain(c.n * c.cout),
              [&](int64_t first, int64_t last, int) {
                for (int64_t plane = first; plane < last; ++plane) {
                  int64_t f = plane % c.cout;
                  const T *xp =
                      x + (plane / c.cout * c.cin + f / s.coutG) * s.inSize;
                  const T *wf = wt + f * k;
                  T *yp = y + plane * s.p;
                  std::fill(yp, yp + s.p, bias ? bias[f] : T(0));
                  forEachTapRow(c.w, [&](int64_t tap, int64_t in, int64_t out,
                                         int64_t lo, int64_t hi, int64_t off) {
                    T wv = wf[tap];
                    const T *src = xp + in + off;
                    T *dst = yp + out;
                    if (st == 1)
                      for (int64_t ow = lo; ow < hi; ++ow)
                        dst[ow] += wv * src[ow];
                    else
                      for (int64_t ow = lo; ow < hi; ++ow)
                        dst[ow] += wv * src[ow * st];
                  });
                }
              });
}

template <typename T>
void depthwiseConvGradInput(const ConvShape &s, const T *dy, const T *wt,
                            T *dx) {
  const ConvDesc &c = s.c;
  int64_t k = c.w.kSize(), st = c.w.stride[2];
  // One input plane per unit: its coutG output planes add into it in order.
  parallelFor(
      c.n * c.cin, s.coutG * s.p * k, planeGrain(c.n * c.cin),
      [&](int64_t first, int64_t last, int) {
        for (int64_t plane = first; plane < last; ++plane) {
          int64_t n = plane / c.cin, ch = plane % c.cin;
          T *dxp = dx + plane * s.inSize;
          std::fill(dxp, dxp + s.inSize, T(0));
          for (int64_t j = 0; j < s.coutG; ++j) {
            int64_t f = ch * s.coutG + j;
            const T *dyp = dy + (n * c.cout + f) * s.p, *wf = wt + f * k;
            forEachTapRow(c.w, [&](int64_t tap, int64_t in, int64_t out,
                                   int64_t lo, int64_t hi, int64_t off) {
              T wv = wf[tap];
              const T *src = dyp + out;
              T *dst = dxp + in + off;
              if (st == 1)
                for (int64_t ow = lo; ow < hi; ++ow)
                  dst[ow] += wv * src[ow];
              else
                for (int64_t ow = lo; ow < hi; ++ow)
                  dst[ow * st] += wv * src[ow];
            });
          }
        }
      });
}

/// Channels per vector in depthwiseConvGradFilter (8 floats: one AVX2
/// register).
constexpr int64_t kChannelLanes = 8;

#if defined(__x86_64__)
/// Whether this CPU has AVX2 and FMA. The library is built for baseline
/// x86-64 (SSE2); the depthwise filter gradient's float loops below are
/// also compiled for AVX2 + FMA and run that way where it has them. The
/// bits are then this machine's: FMA rounds once where SSE2 rounds twice
/// (still the same for every thread count).
bool hasAvx2Fma() {
  static const bool has =
      __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
  return has;
}

/// dst[i * 8 + lane] = src[lane][i] for i in [0, count): eight planes
/// interleaved, 8x8 blocks transposed in registers.
__attribute__((target("avx2,fma"))) void
interleave8Avx2(const float *const *src, int64_t count, float *dst) {
  int64_t i = 0;
  for (; i + 8 <= count; i += 8) {
    __m256 r[8], t[8], s[8];
    for (int lane = 0; lane < 8; ++lane)
      r[lane] = _mm256_loadu_ps(src[lane] + i);
    for (int k = 0; k < 4; ++k) {
      t[2 * k] = _mm256_unpacklo_ps(r[2 * k], r[2 * k + 1]);
      t[2 * k + 1] = _mm256_unpackhi_ps(r[2 * k], r[2 * k + 1]);
    }
    // Rows 0-3 (s[0..3]) and 4-7 (s[4..7]) of columns (0, 4), (1, 5),
    // (2, 6), (3, 7).
    for (int h = 0; h < 2; ++h)
      for (int k = 0; k < 2; ++k) {
        s[4 * h + 2 * k] =
            _mm256_shuffle_ps(t[4 * h + k], t[4 * h + k + 2], 0x44);
        s[4 * h + 2 * k + 1] =
            _mm256_shuffle_ps(t[4 * h + k], t[4 * h + k + 2], 0xEE);
      }
    for (int c = 0; c < 4; ++c) {
      _mm256_storeu_ps(dst + (i + c) * 8,
                       _mm256_permute2f128_ps(s[c], s[c + 4], 0x20));
      _mm256_storeu_ps(dst + (i + c + 4) * 8,
                       _mm256_permute2f128_ps(s[c], s[c + 4], 0x31));
    }
  }
  for (; i < count; ++i)
    for (int lane = 0; lane < 8; ++lane)
      dst[i * 8 + lane] = src[lane][i];
}

/// sums[lane] = sum over samples s < n and pairs j in [begin, end) of
/// dy[s][outAt[j]][lane] * x[s][inAt[j]][lane], with x and dy in blocks of
/// eight channels (the samples `xStep` and `dyStep` floats apart). Four
/// partial sums, added in a fixed order.
__attribute__((target("avx2,fma"))) void
tapSumsAvx2(const float *x, const float *dy, int64_t xStep, int64_t dyStep,
            int64_t n, const int64_t *outAt, const int64_t *inAt, int64_t begin,
            int64_t end, float *sums) {
  __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
  for (int64_t s = 0; s < n; ++s) {
    const float *xs = x + s * xStep, *dys = dy + s * dyStep;
    int64_t j = begin;
    for (; j + 4 <= end; j += 4) {
      a0 = _mm256_fmadd_ps(_mm256_loadu_ps(dys + outAt[j] * 8),
                           _mm256_loadu_ps(xs + inAt[j] * 8), a0);
      a1 = _mm256_fmadd_ps(_mm256_loadu_ps(dys + outAt[j + 1] * 8),
                           _mm256_loadu_ps(xs + inAt[j + 1] * 8), a1);
      a2 = _mm256_fmadd_ps(_mm256_loadu_ps(dys + outAt[j + 2] * 8),
                           _mm256_loadu_ps(xs + inAt[j + 2] * 8), a2);
      a3 = _mm256_fmadd_ps(_mm256_loadu_ps(dys + outAt[j + 3] * 8),
                           _mm256_loadu_ps(xs + inAt[j + 3] * 8), a3);
    }
    for (; j < end; ++j)
      a0 = _mm256_fmadd_ps(_mm256_loadu_ps(dys + outAt[j] * 8),
                           _mm256_loadu_ps(xs + inAt[j] * 8), a0);
  }
  _mm256_storeu_ps(sums,
                   _mm256_add_ps(_mm256_add_ps(a0, a1), _mm256_add_ps(a2, a3)));
}
#endif

template <typename T>
void depthwiseConvGradFilter(const ConvShape &s, const T *x, const T *dy,
                             T *dw) {
  const ConvDesc &c = s.c;
  int64_t k = c.w.kSize(), st = c.w.stride[2], lanes = kChannelLanes;
  // MobileNetV2's planes are as small as 2x2, where any loop over one plane
  // is all overhead (the other directions' row loops ran at 1-2 GFLOP/s
  // here). So the channels become the vector: x and dy are copied into
  // blocks of eight channels, position-major ([N, C/8, positions, 8]; for a
  // channel multiplier, each output channel's lane holds its input
  // channel), and each tap's (output, input) position pairs, the same for
  // every plane, drive vector multiply-adds over eight filters at once.
  std::vector<int64_t> outAt, inAt, tapEnd(k, 0);
  forEachTapRow(c.w, [&](int64_t tap, int64_t in, int64_t out, int64_t lo,
                         int64_t hi, int64_t off) {
    for (int64_t ow = lo; ow < hi; ++ow) {
      outAt.push_back(out + ow);
      inAt.push_back(in + off + ow * st);
    }
    tapEnd[tap] = static_cast<int64_t>(outAt.size());
  });
  for (int64_t tap = 1; tap < k; ++tap)
    tapEnd[tap] = std::max(tapEnd[tap], tapEnd[tap - 1]);
  int64_t blocks = (c.cout + lanes - 1) / lanes;
#if defined(__x86_64__)
  bool avx2 = hasAvx2Fma();
#endif
  T *xb = scratch<T>(0, c.n * blocks * s.inSize * lanes);
  T *dyb = scratch<T>(1, c.n * blocks * s.p * lanes);
  parallelFor(c.n * blocks, (s.inSize + s.p) * lanes, 1,
              [&](int64_t first, int64_t last, int) {
                for (int64_t nb = first; nb < last; ++nb) {
                  int64_t n = nb / blocks, f0 = nb % blocks * lanes;
                  T *xd = xb + nb * s.inSize * lanes,
                    *dyd = dyb + nb * s.p * lanes;
                  // Eight planes read side by side, the block written in order;
                  // lanes past the last channel read zeros.
                  static const T zeros[1] = {T(0)};
                  const T *xp[kChannelLanes], *dyp[kChannelLanes];
                  int64_t step[kChannelLanes];
                  for (int64_t lane = 0; lane < lanes; ++lane) {
                    int64_t f = f0 + lane;
                    bool real = f < c.cout;
                    xp[lane] =
                        real ? x + (n * c.cin + f / s.coutG) * s.inSize : zeros;
                    dyp[lane] = real ? dy + (n * c.cout + f) * s.p : zeros;
                    step[lane] = real;
                  }
#if defined(__x86_64__)
                  if constexpr (std::is_same_v<T, float>)
                    if (avx2 && f0 + lanes <= c.cout) {
                      interleave8Avx2(xp, s.inSize, xd);
                      interleave8Avx2(dyp, s.p, dyd);
                      continue;
                    }
#endif
                  for (int64_t i = 0; i < s.inSize; ++i)
                    for (int64_t lane = 0; lane < kChannelLanes; ++lane)
                      xd[i * kChannelLanes + lane] = xp[lane][i * step[lane]];
                  for (int64_t o = 0; o < s.p; ++o)
                    for (int64_t lane = 0; lane < kChannelLanes; ++lane)
                      dyd[o * kChannelLanes + lane] = dyp[lane][o * step[lane]];
                }
              });
  int64_t pairs = static_cast<int64_t>(outAt.size());
  parallelFor(
      blocks, c.n * pairs * lanes, 1, [&](int64_t first, int64_t last, int) {
        for (int64_t b = first; b < last; ++b)
          for (int64_t tap = 0; tap < k; ++tap) {
            int64_t begin = tap ? tapEnd[tap - 1] : 0, end = tapEnd[tap];
#if defined(__x86_64__)
            if constexpr (std::is_same_v<T, float>)
              if (avx2) {
                float sums[kChannelLanes];
                tapSumsAvx2(xb + b * s.inSize * lanes, dyb + b * s.p * lanes,
                            blocks * s.inSize * lanes, blocks * s.p * lanes,
                            c.n, outAt.data(), inAt.data(), begin, end, sums);
                for (int64_t lane = 0; lane < lanes; ++lane)
                  if (b * lanes + lane < c.cout)
                    dw[(b * lanes + lane) * k + tap] = sums[lane];
                continue;
              }
#endif
            // Two partial sums per lane, so consecutive multiply-adds do not
            // wait on each other.
            T even[kChannelLanes] = {}, odd[kChannelLanes] = {};
            for (int64_t n = 0; n < c.n; ++n) {
              const T *xd = xb + (n * blocks + b) * s.inSize * lanes;
              const T *dyd = dyb + (n * blocks + b) * s.p * lanes;
              int64_t j = begin;
              for (; j + 2 <= end; j += 2) {
                const T *u0 = dyd + outAt[j] * kChannelLanes;
                const T *v0 = xd + inAt[j] * kChannelLanes;
                const T *u1 = dyd + outAt[j + 1] * kChannelLanes;
                const T *v1 = xd + inAt[j + 1] * kChannelLanes;
                for (int64_t lane = 0; lane < kChannelLanes; ++lane) {
                  even[lane] += u0[lane] * v0[lane];
                  odd[lane] += u1[lane] * v1[lane];
                }
              }
              if (j < end) {
                const T *u = dyd + outAt[j] * kChannelLanes;
                const T *v = xd + inAt[j] * kChannelLanes;
                for (int64_t lane = 0; lane < kChannelLanes; ++lane)
                  even[lane] += u[lane] * v[lane];
              }
            }
            for (int64_t lane = 0; lane < lanes; ++lane)
              if (b * lanes + lane < c.cout)
                dw[(b * lanes + lane) * k + tap] = even[lane] + odd[lane];
          }
      });
}

template <typename T> void convImpl(const calls::ConvCall &call, void *const *buffers) {
  ConvShape s(call);
  const ConvDesc &c = s.c;
  if (onOneDnn<T>(ConvDirection::Forward, call, buffers))
    return;
  if (isDepthwise(s)) {
    depthwiseConv(s, static_cast<const T *>(buffers[0]),
                  static_cast<const T *>(buffers[1]),
                  c.hasBias ? static_cast<const T *>(buffers[2]) : nullptr,
                  static_cast<T *>(buffers[c.hasBias ? 3 : 2]));
    return;
  }
  if (foldsBatch<T>(s)) {
    foldedConv(s, static_cast<const T *>(buffers[0]),
               static_cast<const T *>(buffers[1]),
               c.hasBias ? static_cast<const T *>(buffers[2]) : nullptr,
               static_cast<T *>(buffers[c.hasBias ? 3 : 2]));
    return;
  }
  const T *x = static_cast<const T *>(buffers[0]);
  const T *wt = static_cast<const T *>(buffers[1]);
  const T *bias = c.hasBias ? static_cast<const T *>(buffers[2]) : nullptr;
  T *y = static_cast<T *>(buffers[c.hasBias ? 3 : 2]);
  int64_t p = s.p;
  forEachSample(s, [&](int64_t n, int) {
    T *col = s.identity ? nullptr : scratch<T>(0, s.kk * p);
    for (int64_t g = 0; g < c.groups; ++g) {
      const T *xg = x + (n * c.cin + g * s.cinG) * s.inSize;
      if (!s.identity)
        im2col(xg, s.cinG, c.w, col, p);
      gemm(false, false, s.coutG, p, s.kk, wt + g * s.coutG * s.kk, s.kk,
           s.identity ? xg : col, p, T(0), y + (n * c.cout + g * s.coutG) * p,
           p);
    }
    if (bias)
      for (int64_t f = 0; f < c.cout; ++f) {
        T *row = y + (n * c.cout + f) * p, b = bias[f];
        for (int64_t i = 0; i < p; ++i)
          row[i] += b;
      }
  });
}

template <typename T>
void convGradInputImpl(const calls::ConvCall &call, void *const *buffers) {
  ConvShape s(call);
  const ConvDesc &c = s.c;
  if (onOneDnn<T>(ConvDirection::GradInput, call, buffers))
    return;
  if (isDepthwise(s)) {
    depthwiseConvGradInput(s, static_cast<const T *>(buffers[0]),
                           static_cast<const T *>(buffers[1]),
                           static_cast<T *>(buffers[2]));
    return;
  }
  if (foldsBatch<T>(s)) {
    foldedConvGradInput(s, static_cast<const T *>(buffers[0]),
                        static_cast<const T *>(buffers[1]),
                        static_cast<T *>(buffers[2]));
    return;
  }
  const T *dy = static_cast<const T *>(buffers[0]);
  const T *wt = static_cast<const T *>(buffers[1]);
  T *dx = static_cast<T *>(buffers[2]);
  int64_t p = s.p;
  forEachSample(s, [&](int64_t n, int) {
    if (!s.identity)
      std::fill(dx + n * c.cin * s.inSize, dx + (n + 1) * c.cin * s.inSize,
                T(0));
    T *col = s.identity ? nullptr : scratch<T>(0, s.kk * p);
    for (int64_t g = 0; g < c.groups; ++g) {
      T *dxg = dx + (n * c.cin + g * s.cinG) * s.inSize;
      gemm(true, false, s.kk, p, s.coutG, wt + g * s.coutG * s.kk, s.kk,
           dy + (n * c.cout + g * s.coutG) * p, p, T(0),
           s.identity ? dxg : col, p);
      if (!s.identity)
        col2im(col, s.cinG, c.w, dxg, p);
    }
  });
}

/// A filter gradient sums its samples in at most this many fixed chunks:
/// each chunk in sample order, then the chunks in chunk order, so the
/// result depends neither on the thread count nor on which thread ran which
/// chunk (training is reproducible run to run).
constexpr int64_t kGradFilterChunks = 8;
/// The partial sums of the chunks may take at most this many bytes.
constexpr int64_t kGradFilterPartialBytes = int64_t(64) << 20;

/// A filter gradient whose batch has fewer output positions (N P) than
/// this stays builtin.
constexpr int64_t kOneDnnGradFilterPositions = 128;

/// Whether the filter gradient runs on oneDNN (in fixed one-thread parts,
/// OneDnn.cpp). Ungrouped only. On the deepest layers of ResNet-18 at 64x64
/// (2x2 outputs, N P = 64) foldedConvGradFilter was faster: 70 against 41
/// and 58 GFLOP/s with reorders; from 4x4 outputs (N P = 256) oneDNN led,
/// 128 against 49 (bench/cpu_conv.cpp, docs/performance.md).
bool oneDnnGradFilterWins(const ConvShape &s) {
  return s.c.groups == 1 && s.c.n * s.p >= kOneDnnGradFilterPositions;
}

template <typename T>
void convGradFilterImpl(const calls::ConvCall &call, void *const *buffers) {
  ConvShape s(call);
  const ConvDesc &c = s.c;
  if (usesTapGemms(s)) {
    tapConvGradFilter(s, static_cast<const T *>(buffers[0]),
                      static_cast<const T *>(buffers[1]),
                      static_cast<T *>(buffers[2]));
    return;
  }
  if (oneDnnGradFilterWins(s) &&
      onOneDnn<T>(ConvDirection::GradFilter, call, buffers))
    return;
  if (isDepthwise(s)) {
    depthwiseConvGradFilter(s, static_cast<const T *>(buffers[0]),
                            static_cast<const T *>(buffers[1]),
                            static_cast<T *>(buffers[2]));
    return;
  }
  if (foldsBatch<T>(s)) {
    foldedConvGradFilter(s, static_cast<const T *>(buffers[0]),
                         static_cast<const T *>(buffers[1]),
                         static_cast<T *>(buffers[2]));
    return;
  }
  const T *x = static_cast<const T *>(buffers[0]);
  const T *dy = static_cast<const T *>(buffers[1]);
  T *dw = static_cast<T *>(buffers[2]);
  int64_t p = s.p, wSize = c.cout * s.kk;
  if (c.n == 0) {
    std::fill(dw, dw + wSize, T(0));
    return;
  }
  int64_t chunks = std::min<int64_t>(
      {c.n, kGradFilterChunks,
       1 + kGradFilterPartialBytes / int64_t(wSize * sizeof(T))});
  int64_t per = (c.n + chunks - 1) / chunks;
  chunks = (c.n + per - 1) / per;
  // Chunk 0 sums into dw, the others into partial sums (this thread's
  // scratch; the workers use their own slot 0 for im2col).
  T *partials = chunks > 1 ? scratch<T>(1, (chunks - 1) * wSize) : nullptr;
  SingleThreadedBlas blas(parallelThreads(chunks, per * s.sampleCost()) > 1);
  parallelFor(chunks, per * s.sampleCost(), 1,
              [&](int64_t first, int64_t last, int) {
    T *col = s.identity ? nullptr : scratch<T>(0, s.kk * p);
    for (int64_t chunk = first; chunk < last; ++chunk) {
      T *acc = chunk == 0 ? dw : partials + (chunk - 1) * wSize;
      int64_t begin = chunk * per, end = std::min(c.n, begin + per);
      for (int64_t n = begin; n < end; ++n)
        for (int64_t g = 0; g < c.groups; ++g) {
          const T *xg = x + (n * c.cin + g * s.cinG) * s.inSize;
          if (!s.identity)
            im2col(xg, s.cinG, c.w, col, p);
          gemm(false, true, s.coutG, s.kk, p,
               dy + (n * c.cout + g * s.coutG) * p, p, s.identity ? xg : col,
               p, n == begin ? T(0) : T(1), acc + g * s.coutG * s.kk, s.kk);
        }
    }
  });
  for (int64_t chunk = 1; chunk < chunks; ++chunk) {
    const T *part = partials + (chunk - 1) * wSize;
    for (int64_t i = 0; i < wSize; ++i)
      dw[i] += part[i];
  }
}

//===----------------------------------------------------------------------===//
// Pooling
//===----------------------------------------------------------------------===//

/// The tap ranges inside the input of every output position of each dim,
/// the same for every plane: computed once per call, so the plane loops do
/// no divisions (recomputing them per window made ResNet's 3x3/2 max-pool
/// gradient take 4.6 ms of a step).
struct WindowTaps {
  std::vector<int64_t> lo[3], hi[3];
  explicit WindowTaps(const Window &w) {
    for (int d = 0; d < 3; ++d) {
      lo[d].resize(w.out[d]);
      hi[d].resize(w.out[d]);
      for (int64_t o = 0; o < w.out[d]; ++o)
        tapRange(w, d, o, lo[d][o], hi[d][o]);
    }
  }
};

/// Calls fn(outIndex, base[3], lo[3], hi[3], od, oh, ow) for every output
/// position of a plane, with the tap ranges inside the input.
template <typename Fn>
void forEachWindow(const Window &w, const WindowTaps &taps, const Fn &fn) {
  int64_t lo[3], hi[3], o = 0;
  for (int64_t od = 0; od < w.out[0]; ++od) {
    lo[0] = taps.lo[0][od], hi[0] = taps.hi[0][od];
    for (int64_t oh = 0; oh < w.out[1]; ++oh) {
      lo[1] = taps.lo[1][oh], hi[1] = taps.hi[1][oh];
      for (int64_t ow = 0; ow < w.out[2]; ++ow, ++o) {
        lo[2] = taps.lo[2][ow], hi[2] = taps.hi[2][ow];
        int64_t base[3] = {od * w.stride[0] - w.padB[0],
                           oh * w.stride[1] - w.padB[1],
                           ow * w.stride[2] - w.padB[2]};
        fn(o, base, lo, hi, od, oh, ow);
      }
    }
  }
}

/// Input offset of tap (kd, kh, kw) of a window at `base`.
inline int64_t tapOffset(const Window &w, const int64_t *base, int64_t kd,
                         int64_t kh, int64_t kw) {
  return ((base[0] + kd * w.dil[0]) * w.in[1] + base[1] + kh * w.dil[1]) *
             w.in[2] +
         base[2] + kw * w.dil[2];
}

/// Whether the pool is 1-D or 2-D with every window inside the input (no
/// padding, no dilation): then the plane loops below need no tap ranges.
bool plainWindows(const Window &w) {
  if (w.in[0] != 1 || w.k[0] != 1 || w.out[0] != 1)
    return false;
  for (int d = 1; d < 3; ++d)
    if (w.padB[d] != 0 || w.padE[d] != 0 || w.dil[d] != 1)
      return false;
  return true;
}

/// Calls fn(o, at) for every output position o of a plane of a pool with
/// plainWindows, `at` the input offset of its window's first tap.
template <typename Fn> void forEachPlainWindow(const Window &w, const Fn &fn) {
  for (int64_t oh = 0, o = 0; oh < w.out[1]; ++oh)
    for (int64_t ow = 0; ow < w.out[2]; ++ow, ++o)
      fn(o, oh * w.stride[1] * w.in[2] + ow * w.stride[2]);
}

/// Planes per block of a pool's parallel loop: about 8 blocks a thread.
int64_t poolGrain(const PoolDesc &d) {
  return std::max<int64_t>(1, d.n * d.c / (8 * libraryThreads()));
}

template <typename T>
void maxPoolImpl(const calls::PoolCall &call, void *const *buffers) {
  PoolDesc d(call);
  const Window &w = d.w;
  const T *x = static_cast<const T *>(buffers[0]);
  T *y = static_cast<T *>(buffers[1]);
  int64_t inSize = w.inSize(), outSize = w.outSize();
  WindowTaps taps(w);
  parallelFor(d.n * d.c, outSize * w.kSize(), poolGrain(d),
              [&](int64_t b, int64_t e, int) {
    for (int64_t plane = b; plane < e; ++plane) {
      const T *xp = x + plane * inSize;
      T *yp = y + plane * outSize;
      if (plainWindows(w)) {
        forEachPlainWindow(w, [&](int64_t o, int64_t at) {
          T acc = -std::numeric_limits<T>::infinity();
          for (int64_t kh = 0; kh < w.k[1]; ++kh)
            for (int64_t kw = 0; kw < w.k[2]; ++kw) {
              T v = xp[at + kh * w.in[2] + kw];
              acc = acc < v ? v : acc;
            }
          yp[o] = acc;
        });
        continue;
      }
      forEachWindow(w, taps,
                    [&](int64_t o, const int64_t *base, const int64_t *lo,
                        const int64_t *hi, int64_t, int64_t, int64_t) {
                      T acc = -std::numeric_limits<T>::infinity();
                      for (int64_t kd = lo[0]; kd < hi[0]; ++kd)
                        for (int64_t kh = lo[1]; kh < hi[1]; ++kh) {
                          const T *row = xp + tapOffset(w, base, kd, kh, 0);
                          for (int64_t kw = lo[2]; kw < hi[2]; ++kw) {
                            T v = row[kw * w.dil[2]];
                            // std::max(acc, v): a NaN never replaces acc.
                            acc = acc < v ? v : acc;
                          }
                        }
                      yp[o] = acc;
                    });
    }
  });
}

/// One tap of a max-pool gradient's search: `best` moves to `at` when its
/// value is greater, so the first maximum in window order wins ties (and a
/// NaN never replaces the best so far; one in the first tap stays, as in the
/// evaluator). Selects rather than branches: which tap holds the
/// maximum is data, and the mispredicted branches took most of the time.
template <typename T>
inline void keepFirstMax(const T *x, int64_t at, int64_t &best, T &bestValue) {
  T v = x[at];
  bool greater = v > bestValue;
  best = greater ? at : best;
  bestValue = greater ? v : bestValue;
}

template <typename T>
void maxPoolGradImpl(const calls::PoolCall &call, void *const *buffers) {
  PoolDesc d(call);
  const Window &w = d.w;
  const T *x = static_cast<const T *>(buffers[0]);
  const T *dy = static_cast<const T *>(buffers[1]);
  T *dx = static_cast<T *>(buffers[2]);
  int64_t inSize = w.inSize(), outSize = w.outSize();
  WindowTaps taps(w);
  parallelFor(d.n * d.c, outSize * w.kSize(), poolGrain(d),
              [&](int64_t b, int64_t e, int) {
    for (int64_t plane = b; plane < e; ++plane) {
      const T *xp = x + plane * inSize;
      const T *dyp = dy + plane * outSize;
      T *dxp = dx + plane * inSize;
      std::fill(dxp, dxp + inSize, T(0));
      if (plainWindows(w)) {
        forEachPlainWindow(w, [&](int64_t o, int64_t at) {
          int64_t best = at;
          T bestValue = xp[at];
          for (int64_t kh = 0; kh < w.k[1]; ++kh)
            for (int64_t kw = 0; kw < w.k[2]; ++kw)
              keepFirstMax(xp, at + kh * w.in[2] + kw, best, bestValue);
          dxp[best] += dyp[o];
        });
        continue;
      }
      forEachWindow(w, taps,
                    [&](int64_t o, const int64_t *base, const int64_t *lo,
                        const int64_t *hi, int64_t, int64_t, int64_t) {
                      if (lo[0] == hi[0] || lo[1] == hi[1] || lo[2] == hi[2])
                        return;
                      int64_t best = tapOffset(w, base, lo[0], lo[1], lo[2]);
                      T bestValue = xp[best];
                      for (int64_t kd = lo[0]; kd < hi[0]; ++kd)
                        for (int64_t kh = lo[1]; kh < hi[1]; ++kh) {
                          int64_t row = tapOffset(w, base, kd, kh, 0);
                          for (int64_t kw = lo[2]; kw < hi[2]; ++kw)
                            keepFirstMax(xp, row + kw * w.dil[2], best,
                                         bestValue);
                        }
                      dxp[best] += dyp[o];
                    });
    }
  });
}

/// The divisor of the window at (od, oh, ow).
inline int64_t avgCount(const Window &w, bool includePad, const int64_t *lo,
                        const int64_t *hi, int64_t od, int64_t oh,
                        int64_t ow) {
  int64_t count;
  if (includePad)
    count = paddedTaps(w, 0, od) * paddedTaps(w, 1, oh) * paddedTaps(w, 2, ow);
  else
    count = (hi[0] - lo[0]) * (hi[1] - lo[1]) * (hi[2] - lo[2]);
  return std::max<int64_t>(count, 1);
}

template <typename T>
void avgPoolImpl(const calls::PoolCall &call, void *const *buffers) {
  PoolDesc d(call);
  const Window &w = d.w;
  const T *x = static_cast<const T *>(buffers[0]);
  T *y = static_cast<T *>(buffers[1]);
  int64_t inSize = w.inSize(), outSize = w.outSize();
  WindowTaps taps(w);
  parallelFor(d.n * d.c, outSize * w.kSize(), poolGrain(d),
              [&](int64_t b, int64_t e, int) {
    for (int64_t plane = b; plane < e; ++plane) {
      const T *xp = x + plane * inSize;
      T *yp = y + plane * outSize;
      forEachWindow(w, taps,
                    [&](int64_t o, const int64_t *base, const int64_t *lo,
                        const int64_t *hi, int64_t od, int64_t oh, int64_t ow) {
                      double acc = 0.0;
                      for (int64_t kd = lo[0]; kd < hi[0]; ++kd)
                        for (int64_t kh = lo[1]; kh < hi[1]; ++kh) {
                          const T *row = xp + tapOffset(w, base, kd, kh, 0);
                          for (int64_t kw = lo[2]; kw < hi[2]; ++kw)
                            acc += row[kw * w.dil[2]];
                        }
                      yp[o] = static_cast<T>(
                          acc / avgCount(w, d.includePad, lo, hi, od, oh, ow));
                    });
    }
  });
}

template <typename T>
void avgPoolGradImpl(const calls::PoolCall &call, void *const *buffers) {
  PoolDesc d(call);
  const Window &w = d.w;
  const T *dy = static_cast<const T *>(buffers[0]);
  T *dx = static_cast<T *>(buffers[1]);
  int64_t inSize = w.inSize(), outSize = w.outSize();
  WindowTaps taps(w);
  parallelFor(d.n * d.c, outSize * w.kSize(), poolGrain(d),
              [&](int64_t b, int64_t e, int) {
    for (int64_t plane = b; plane < e; ++plane) {
      const T *dyp = dy + plane * outSize;
      T *dxp = dx + plane * inSize;
      std::fill(dxp, dxp + inSize, T(0));
      forEachWindow(w, taps,
                    [&](int64_t o, const int64_t *base, const int64_t *lo,
                        const int64_t *hi, int64_t od, int64_t oh, int64_t ow) {
                      T share = static_cast<T>(
                          static_cast<double>(dyp[o]) /
                          avgCount(w, d.includePad, lo, hi, od, oh, ow));
                      for (int64_t kd = lo[0]; kd < hi[0]; ++kd)
                        for (int64_t kh = lo[1]; kh < hi[1]; ++kh) {
                          T *row = dxp + tapOffset(w, base, kd, kh, 0);
                          for (int64_t kw = lo[2]; kw < hi[2]; ++kw)
                            row[kw * w.dil[2]] += share;
                        }
                    });
    }
  });
}

//===----------------------------------------------------------------------===//
// Scatter-add
//===----------------------------------------------------------------------===//

template <typename T, typename I>
void scatterAddImpl(const calls::ScatterAddCall &call, void *const *buffers) {
  int64_t outer = call.outer, axis = call.outAxis, count = call.numIndices,
          inner = call.inner;
  const I *indices = static_cast<const I *>(buffers[0]);
  const T *updates = static_cast<const T *>(buffers[1]);
  T *out = static_cast<T *>(buffers[2]);
  std::fill(out, out + outer * axis * inner, T(0));
  for (int64_t o = 0; o < outer; ++o)
    for (int64_t p = 0; p < count; ++p) {
      int64_t v = static_cast<int64_t>(indices[p]);
      if (v < -axis || v >= axis)
        continue;
      if (v < 0)
        v += axis;
      T *dst = out + (o * axis + v) * inner;
      const T *src = updates + (o * count + p) * inner;
      for (int64_t i = 0; i < inner; ++i)
        dst[i] += src[i];
    }
}

//===----------------------------------------------------------------------===//
// Concat
//===----------------------------------------------------------------------===//

/// A row copy of each input into its place in each output row (a byte
/// copy, any element type), the (row, input) pieces shared over the
/// library's threads.
void concatEntry(const int64_t *ints, size_t numInts, const double *, size_t,
                 void *const *buffers) {
  auto call = decoded<calls::ConcatCall>(ints, numInts);
  int64_t k = static_cast<int64_t>(call.rowBytes.size()), total = 0;
  std::vector<int64_t> offsets;
  for (int64_t bytes : call.rowBytes) {
    offsets.push_back(total);
    total += bytes;
  }
  char *out = static_cast<char *>(buffers[k]);
  int64_t pieces = call.outer * k;
  // Cost per piece in the units parallelFor weighs work in (about one
  // operation each): a copy moves several bytes per operation.
  int64_t cost = std::max<int64_t>(1, total / k / 8);
  parallelFor(pieces, cost, 1, [&](int64_t begin, int64_t end, int) {
    for (int64_t piece = begin; piece < end; ++piece) {
      int64_t row = piece / k, i = piece % k, bytes = call.rowBytes[i];
      if (bytes > 0)
        std::memcpy(out + row * total + offsets[i],
                    static_cast<const char *>(buffers[i]) + row * bytes,
                    static_cast<size_t>(bytes));
    }
  });
}

//===----------------------------------------------------------------------===//
// k-th smallest
//===----------------------------------------------------------------------===//

/// Unsigned keys that order floats as IEEE 754's total order does.
uint32_t orderKey(float v) {
  uint32_t u;
  std::memcpy(&u, &v, sizeof u);
  return (u & 0x80000000u) ? ~u : u | 0x80000000u;
}
uint64_t orderKey(double v) {
  uint64_t u;
  std::memcpy(&u, &v, sizeof u);
  return (u & (uint64_t{1} << 63)) ? ~u : u | (uint64_t{1} << 63);
}
template <typename T, typename K> T fromOrderKey(K key) {
  constexpr K top = K{1} << (sizeof(K) * 8 - 1);
  K u = (key & top) ? key & ~top : ~key;
  T v;
  std::memcpy(&v, &u, sizeof v);
  return v;
}

template <typename T>
void kthSmallestImpl(const calls::KthSmallestCall &call, void *const *buffers) {
  const T *x = static_cast<const T *>(buffers[0]);
  int64_t k = *static_cast<const int64_t *>(buffers[1]);
  T *out = static_cast<T *>(buffers[2]);
  if (k <= 0 || k > call.count) {
    *out = k <= 0 ? -std::numeric_limits<T>::infinity()
                  : std::numeric_limits<T>::infinity();
    return;
  }
  using Key = decltype(orderKey(T()));
  std::vector<Key> keys(static_cast<size_t>(call.count));
  for (int64_t i = 0; i < call.count; ++i)
    keys[i] = orderKey(x[i]);
  std::nth_element(keys.begin(), keys.begin() + (k - 1), keys.end());
  *out = fromOrderKey<T>(keys[k - 1]);
}

//===----------------------------------------------------------------------===//
// bf16 and f16: stored narrow, computed in f32
//===----------------------------------------------------------------------===//

/// How a call uses one of its buffers.
struct BufferUse {
  int64_t elements = 0;
  bool read = false, written = false;
  /// Whether it holds the call's float elements (not indices).
  bool isFloat = true;
};
using BufferUses = std::vector<BufferUse>;

BufferUse in(int64_t elements) { return {elements, true, false, true}; }
BufferUse out(int64_t elements) { return {elements, false, true, true}; }

BufferUses matmulUses(const calls::MatmulCall &c) {
  int64_t batch = 1, l = 1, r = 1;
  for (size_t d = 0; d < c.outBatch.size(); ++d)
    batch *= c.outBatch[d], l *= c.lhsBatch[d], r *= c.rhsBatch[d];
  BufferUse o = out(batch * c.m * c.n);
  o.read = c.accumulateOut;
  return {in(l * c.m * c.k), in(r * c.k * c.n), o};
}
/// Input, filter and output elements of a convolution.
struct ConvSizes {
  int64_t x, w, y;
  explicit ConvSizes(const calls::ConvCall &call) {
    ConvShape s(call);
    x = s.c.n * s.c.cin * s.inSize;
    w = s.c.cout * s.kk;
    y = s.c.n * s.c.cout * s.p;
  }
};
BufferUses convUses(const calls::ConvCall &c) {
  ConvSizes z(c);
  BufferUses u = {in(z.x), in(z.w)};
  if (c.hasBias)
    u.push_back(in(c.cout));
  u.push_back(out(z.y));
  return u;
}
BufferUses convGradInputUses(const calls::ConvCall &c) {
  ConvSizes z(c);
  return {in(z.y), in(z.w), out(z.x)};
}
BufferUses convGradFilterUses(const calls::ConvCall &c) {
  ConvSizes z(c);
  return {in(z.x), in(z.y), out(z.w)};
}
/// Input and output elements of a pool.
std::pair<int64_t, int64_t> poolSizes(const calls::PoolCall &c) {
  Window w(c.window);
  return {c.n * c.c * w.inSize(), c.n * c.c * w.outSize()};
}
BufferUses maxPoolUses(const calls::PoolCall &c) {
  auto [x, y] = poolSizes(c);
  return {in(x), out(y)};
}
BufferUses maxPoolGradUses(const calls::PoolCall &c) {
  auto [x, y] = poolSizes(c);
  return {in(x), in(y), out(x)};
}
BufferUses avgPoolGradUses(const calls::PoolCall &c) {
  auto [x, y] = poolSizes(c);
  return {in(y), out(x)};
}
BufferUses scatterAddUses(const calls::ScatterAddCall &c) {
  BufferUse indices = in(c.numIndices);
  indices.isFloat = false;
  return {indices, in(c.outer * c.numIndices * c.inner),
          out(c.outer * c.outAxis * c.inner)};
}
BufferUses kthSmallestUses(const calls::KthSmallestCall &c) {
  BufferUse k = in(1);
  k.isFloat = false;
  return {in(c.count), k, out(1)};
}

/// Converts `count` elements between a narrow type (kBF16, kF16) and f32,
/// over the library threads when large.
void widen(int64_t element, const void *from, float *to, int64_t count) {
  const uint16_t *h = static_cast<const uint16_t *>(from);
  parallelFor(count, 1, 1 << 16, [&](int64_t begin, int64_t end, int) {
    if (element == kBF16)
      for (int64_t i = begin; i < end; ++i)
        to[i] = bf16ToFloat(h[i]);
    else
      for (int64_t i = begin; i < end; ++i)
        to[i] = halfToFloat(h[i]);
  });
}
void narrow(int64_t element, const float *from, void *to, int64_t count) {
  uint16_t *h = static_cast<uint16_t *>(to);
  parallelFor(count, 1, 1 << 16, [&](int64_t begin, int64_t end, int) {
    if (element == kBF16)
      for (int64_t i = begin; i < end; ++i)
        h[i] = floatToBf16(from[i]);
    else
      for (int64_t i = begin; i < end; ++i)
        h[i] = floatToHalf(from[i]);
  });
}

/// Runs `run(wideBuffers)` on f32 copies of a narrow call's float buffers:
/// the read ones widened before, the written ones rounded back after. The
/// staging buffers are this thread's and only grow.
template <typename Fn>
void widened(int64_t element, const BufferUses &uses, void *const *buffers,
             const Fn &run) {
  constexpr size_t kMaxBuffers = 4;
  thread_local std::vector<float> staging[kMaxBuffers];
  assert(uses.size() <= kMaxBuffers && "more buffers than staging slots");
  void *wide[kMaxBuffers] = {};
  for (size_t i = 0; i < uses.size(); ++i) {
    const BufferUse &u = uses[i];
    if (!u.isFloat) {
      wide[i] = buffers[i];
      continue;
    }
    std::vector<float> &st = staging[i];
    if (st.size() < static_cast<size_t>(u.elements))
      st.resize(u.elements);
    if (u.read)
      widen(element, buffers[i], st.data(), u.elements);
    wide[i] = st.data();
  }
  run(static_cast<void *const *>(wide));
  for (size_t i = 0; i < uses.size(); ++i)
    if (uses[i].isFloat && uses[i].written)
      narrow(element, staging[i].data(), buffers[i], uses[i].elements);
}

//===----------------------------------------------------------------------===//
// Entry points
//===----------------------------------------------------------------------===//

#define TRAINOPT_FLOAT_ENTRY(name, impl, decode, uses)                         \
  void name(const int64_t *ints, size_t numInts, const double *, size_t,       \
            void *const *buffers) {                                            \
    auto call = decode(ints, numInts);                                         \
    if (call.types.element == kF32)                                            \
      impl<float>(call, buffers);                                              \
    else if (call.types.element == kF64)                                       \
      impl<double>(call, buffers);                                             \
    else                                                                       \
      widened(call.types.element, uses(call), buffers,                         \
              [&](void *const *wide) { impl<float>(call, wide); });            \
  }

TRAINOPT_FLOAT_ENTRY(matmulEntry, matmulImpl, decoded<calls::MatmulCall>,
                     matmulUses)
TRAINOPT_FLOAT_ENTRY(convEntry, convImpl, decoded<calls::ConvCall>, convUses)
TRAINOPT_FLOAT_ENTRY(convGradInputEntry, convGradInputImpl,
                     decoded<calls::ConvCall>, convGradInputUses)
TRAINOPT_FLOAT_ENTRY(convGradFilterEntry, convGradFilterImpl,
                     decoded<calls::ConvCall>, convGradFilterUses)
TRAINOPT_FLOAT_ENTRY(maxPoolEntry, maxPoolImpl, decodedPool<false>, maxPoolUses)
TRAINOPT_FLOAT_ENTRY(maxPoolGradEntry, maxPoolGradImpl, decodedPool<false>,
                     maxPoolGradUses)
TRAINOPT_FLOAT_ENTRY(avgPoolEntry, avgPoolImpl, decodedPool<true>, maxPoolUses)
TRAINOPT_FLOAT_ENTRY(avgPoolGradEntry, avgPoolGradImpl, decodedPool<true>,
                     avgPoolGradUses)
TRAINOPT_FLOAT_ENTRY(kthSmallestEntry, kthSmallestImpl,
                     decoded<calls::KthSmallestCall>, kthSmallestUses)
#undef TRAINOPT_FLOAT_ENTRY

template <typename T>
void scatterAddByIndex(const calls::ScatterAddCall &call,
                       void *const *buffers) {
  if (call.indexElement == kI64)
    scatterAddImpl<T, int64_t>(call, buffers);
  else
    scatterAddImpl<T, int32_t>(call, buffers);
}

void scatterAddEntry(const int64_t *ints, size_t numInts, const double *,
                     size_t, void *const *buffers) {
  auto call = decoded<calls::ScatterAddCall>(ints, numInts);
  if (call.types.element == kF32)
    scatterAddByIndex<float>(call, buffers);
  else if (call.types.element == kF64)
    scatterAddByIndex<double>(call, buffers);
  else
    widened(call.types.element, scatterAddUses(call), buffers,
            [&](void *const *wide) { scatterAddByIndex<float>(call, wide); });
}

//===----------------------------------------------------------------------===//
// Validation
//===----------------------------------------------------------------------===//

/// Checks one call, recording the first problem in `error`.
class CallChecker {
public:
  CallChecker(const std::string &name, const int64_t *ints, size_t numInts,
              const uint64_t *bufferBytes, size_t numBuffers,
              std::string &error)
      : name(name), ints(ints), numInts(numInts), bufferBytes(bufferBytes),
        numBuffers(numBuffers), error(error) {}

  bool fail(const std::string &message) {
    error = name + ": " + message;
    return false;
  }

  /// Decodes the descriptor (LibraryCalls.h) into `call`.
  template <typename Call> bool decode(Call &call) {
    std::string why;
    return Call::decode(ints, numInts, call, why) || fail(why);
  }
  bool decodePool(bool average, calls::PoolCall &call) {
    std::string why;
    return calls::PoolCall::decode(ints, numInts, average, call, why) ||
           fail(why);
  }
  bool buffers(size_t n) {
    if (numBuffers == n)
      return true;
    return fail("expects " + std::to_string(n) + " buffers, got " +
                std::to_string(numBuffers));
  }
  /// The element and accumulate types this library implements: F64 or F32
  /// accumulating in the element type, BF16 or F16 accumulating in F32.
  /// Sets `elem` to the element size.
  bool types(const calls::Types &t, int64_t &elem) {
    bool narrow = t.element == kBF16 || t.element == kF16;
    if (t.element != kF32 && t.element != kF64 && !narrow)
      return fail("expects element type F64 (1), F32 (2), F16 (3) or BF16 "
                  "(4), got " +
                  std::to_string(t.element));
    int64_t accumulate = narrow ? kF32 : t.element;
    if (t.accumulate != accumulate)
      return fail(
          "accumulates in element type " + std::to_string(t.accumulate) +
          "; this library accumulates element type " +
          std::to_string(t.element) + " in " + std::to_string(accumulate));
    elem = narrow ? 2 : t.element == kF32 ? 4 : 8;
    return true;
  }
  bool atLeastValue(int64_t v, int64_t min, const char *what) {
    if (v >= min)
      return true;
    return fail("expects " + std::string(what) + " >= " + std::to_string(min) +
                ", got " + std::to_string(v));
  }
  bool atMostInt(int64_t v, const char *what) {
    if (v <= INT_MAX)
      return true;
    return fail(std::string(what) + " " + std::to_string(v) +
                " exceeds the BLAS int range");
  }

  /// The product of `factors` (each >= 0), or false on overflow.
  bool product(std::initializer_list<int64_t> factors, int64_t &result) {
    result = 1;
    for (int64_t f : factors)
      if (__builtin_mul_overflow(result, f, &result))
        return fail("sizes overflow int64");
    return true;
  }
  /// Buffer `i` holds at least `elements` of `elem` bytes.
  bool fits(size_t i, int64_t elements, int64_t elem, const char *what) {
    int64_t bytes;
    if (__builtin_mul_overflow(elements, elem, &bytes))
      return fail("sizes overflow int64");
    if (static_cast<uint64_t>(bytes) <= bufferBytes[i])
      return true;
    return fail("expects " + std::string(what) + " (buffer " +
                std::to_string(i) + ") of at least " + std::to_string(bytes) +
                " bytes, got " + std::to_string(bufferBytes[i]));
  }

  /// A conv or pool window; sets the total input and output spatial sizes
  /// and the kernel size.
  bool window(const calls::Window &w, int64_t &inSize, int64_t &kSize,
              int64_t &outSize) {
    const int64_t *in = w.in, *k = w.kernel, *out = w.out, *str = w.strides,
                  *dil = w.dilations, *pb = w.padBegin, *pe = w.padEnd;
    inSize = kSize = outSize = 1;
    for (int64_t d = 0; d < w.rank; ++d) {
      std::string dim = " of spatial dim " + std::to_string(d);
      if (in[d] < 1 || k[d] < 1 || out[d] < 1)
        return fail("expects positive input, kernel and output sizes" + dim +
                    ", got " + std::to_string(in[d]) + ", " +
                    std::to_string(k[d]) + ", " + std::to_string(out[d]));
      if (str[d] < 1 || dil[d] < 1)
        return fail("expects strides and dilations >= 1" + dim + ", got " +
                    std::to_string(str[d]) + " and " + std::to_string(dil[d]));
      if (pb[d] < 0 || pe[d] < 0)
        return fail("expects padding >= 0" + dim + ", got " +
                    std::to_string(pb[d]) + " and " + std::to_string(pe[d]));
      int64_t span, padded;
      if (__builtin_mul_overflow(dil[d], k[d] - 1, &span) ||
          __builtin_add_overflow(in[d], pb[d], &padded) ||
          __builtin_add_overflow(padded, pe[d], &padded))
        return fail("window sizes overflow int64" + dim);
      int64_t expected = padded <= span ? 0 : (padded - span - 1) / str[d] + 1;
      if (out[d] != expected)
        return fail("expects output size " + std::to_string(expected) + dim +
                    " (input " + std::to_string(in[d]) + ", kernel " +
                    std::to_string(k[d]) + ", stride " +
                    std::to_string(str[d]) + ", dilation " +
                    std::to_string(dil[d]) + ", padding " +
                    std::to_string(pb[d]) + "+" + std::to_string(pe[d]) +
                    "), got " + std::to_string(out[d]));
      if (!product({inSize, in[d]}, inSize) || !product({kSize, k[d]}, kSize) ||
          !product({outSize, out[d]}, outSize))
        return false;
    }
    return true;
  }

  const std::string &name;
  const int64_t *ints;
  size_t numInts;
  const uint64_t *bufferBytes;
  size_t numBuffers;
  std::string &error;
};

bool checkMatmul(CallChecker &c) {
  calls::MatmulCall call;
  int64_t elem;
  if (!c.decode(call) || !c.types(call.types, elem) || !c.buffers(3))
    return false;
  int64_t batch = 1, lCount = 1, rCount = 1;
  for (size_t d = 0; d < call.outBatch.size(); ++d) {
    int64_t o = call.outBatch[d], l = call.lhsBatch[d], r = call.rhsBatch[d];
    if (o < 1)
      return c.fail("expects positive batch dims, got " + std::to_string(o) +
                    " at " + std::to_string(d));
    if ((l != 1 && l != o) || (r != 1 && r != o))
      return c.fail("expects operand batch dim " + std::to_string(d) +
                    " to be 1 or " + std::to_string(o) + ", got " +
                    std::to_string(l) + " and " + std::to_string(r));
    if (!c.product({batch, o}, batch) || !c.product({lCount, l}, lCount) ||
        !c.product({rCount, r}, rCount))
      return false;
  }
  for (int64_t v : {call.m, call.n, call.k})
    if (!c.atLeastValue(v, 1, "M, N and K") || !c.atMostInt(v, "M, N or K"))
      return false;
  int64_t m = call.m, n = call.n, k = call.k;
  int64_t lhs, rhs, out;
  return c.product({lCount, m, k}, lhs) && c.product({rCount, k, n}, rhs) &&
         c.product({batch, m, n}, out) && c.fits(0, lhs, elem, "lhs") &&
         c.fits(1, rhs, elem, "rhs") && c.fits(2, out, elem, "out");
}

enum class ConvKind { Forward, GradInput, GradFilter };

bool checkConv(CallChecker &c, ConvKind kind) {
  calls::ConvCall call;
  int64_t elem;
  if (!c.decode(call) || !c.types(call.types, elem))
    return false;
  int64_t hasBias = call.hasBias;
  if (kind != ConvKind::Forward && hasBias)
    return c.fail("expects hasBias = 0");
  if (!c.buffers(3 + hasBias))
    return false;
  for (int64_t v : {call.n, call.cin, call.cout, call.groups})
    if (!c.atLeastValue(v, 1, "N, Cin, Cout and groups"))
      return false;
  int64_t n = call.n, cin = call.cin, cout = call.cout, groups = call.groups;
  if (cin % groups || cout % groups)
    return c.fail("expects groups " + std::to_string(groups) +
                  " to divide Cin " + std::to_string(cin) + " and Cout " +
                  std::to_string(cout));
  int64_t inSize, kSize, outSize;
  if (!c.window(call.window, inSize, kSize, outSize))
    return false;
  int64_t cinG = cin / groups, coutG = cout / groups;
  int64_t x, w, y, kk, colBytes;
  if (!c.product({n, cin, inSize}, x) || !c.product({cout, cinG, kSize}, w) ||
      !c.product({n, cout, outSize}, y) || !c.product({cinG, kSize}, kk) ||
      !c.product({kk, outSize, elem}, colBytes) ||
      !c.atMostInt(kk, "Cin/groups * kernel size") ||
      !c.atMostInt(outSize, "output spatial size") ||
      !c.atMostInt(coutG, "Cout/groups"))
    return false;
  switch (kind) {
  case ConvKind::Forward:
    return c.fits(0, x, elem, "input") && c.fits(1, w, elem, "filter") &&
           (!hasBias || c.fits(2, cout, elem, "bias")) &&
           c.fits(2 + hasBias, y, elem, "out");
  case ConvKind::GradInput:
    return c.fits(0, y, elem, "gradOut") && c.fits(1, w, elem, "filter") &&
           c.fits(2, x, elem, "gradInput");
  case ConvKind::GradFilter:
    return c.fits(0, x, elem, "input") && c.fits(1, y, elem, "gradOut") &&
           c.fits(2, w, elem, "gradFilter");
  }
  return false;
}

enum class PoolKind { Max, MaxGrad, Avg, AvgGrad };

bool checkPool(CallChecker &c, PoolKind kind) {
  bool avg = kind == PoolKind::Avg || kind == PoolKind::AvgGrad;
  calls::PoolCall call;
  int64_t elem;
  if (!c.decodePool(avg, call) || !c.types(call.types, elem) ||
      !c.buffers(kind == PoolKind::MaxGrad ? 3 : 2) ||
      !c.atLeastValue(call.n, 1, "N") || !c.atLeastValue(call.c, 1, "C"))
    return false;
  int64_t inSize, kSize, outSize, x, y;
  if (!c.window(call.window, inSize, kSize, outSize) ||
      !c.product({call.n, call.c, inSize}, x) ||
      !c.product({call.n, call.c, outSize}, y))
    return false;
  switch (kind) {
  case PoolKind::Max:
  case PoolKind::Avg:
    return c.fits(0, x, elem, "input") && c.fits(1, y, elem, "out");
  case PoolKind::MaxGrad:
    return c.fits(0, x, elem, "input") && c.fits(1, y, elem, "gradOut") &&
           c.fits(2, x, elem, "gradInput");
  case PoolKind::AvgGrad:
    return c.fits(0, y, elem, "gradOut") && c.fits(1, x, elem, "gradInput");
  }
  return false;
}

bool checkScatterAdd(CallChecker &c) {
  calls::ScatterAddCall call;
  int64_t elem;
  if (!c.decode(call) || !c.types(call.types, elem) || !c.buffers(3))
    return false;
  if (call.indexElement != kI64 && call.indexElement != kI32)
    return c.fail("expects index element type I64 (5) or I32 (6), got " +
                  std::to_string(call.indexElement));
  if (!c.atLeastValue(call.outer, 1, "outer") ||
      !c.atLeastValue(call.outAxis, 1, "outAxis") ||
      !c.atLeastValue(call.numIndices, 0, "numIndices") ||
      !c.atLeastValue(call.inner, 1, "inner"))
    return false;
  int64_t updates, out;
  return c.product({call.outer, call.numIndices, call.inner}, updates) &&
         c.product({call.outer, call.outAxis, call.inner}, out) &&
         c.fits(0, call.numIndices, call.indexElement == kI64 ? 8 : 4,
                "indices") &&
         c.fits(1, updates, elem, "updates") && c.fits(2, out, elem, "out");
}

bool checkConcat(CallChecker &c) {
  calls::ConcatCall call;
  if (!c.decode(call))
    return false;
  if (call.types.element < kF64 || call.types.element > calls::kI1 ||
      call.types.accumulate != call.types.element)
    return c.fail("expects a known element type (1 to 8) accumulated in "
                  "itself, got " +
                  std::to_string(call.types.element) + " in " +
                  std::to_string(call.types.accumulate));
  size_t k = call.rowBytes.size();
  if (!c.buffers(k + 1) || !c.atLeastValue(call.outer, 0, "outer"))
    return false;
  int64_t total = 0;
  for (size_t i = 0; i < k; ++i) {
    if (!c.atLeastValue(call.rowBytes[i], 0, "row bytes"))
      return false;
    if (__builtin_add_overflow(total, call.rowBytes[i], &total))
      return c.fail("sizes overflow int64");
    int64_t bytes;
    if (!c.product({call.outer, call.rowBytes[i]}, bytes) ||
        !c.fits(i, bytes, 1, "input"))
      return false;
  }
  int64_t out;
  return c.product({call.outer, total}, out) && c.fits(k, out, 1, "out");
}

bool checkKthSmallest(CallChecker &c) {
  calls::KthSmallestCall call;
  int64_t elem;
  return c.decode(call) && c.types(call.types, elem) && c.buffers(3) &&
         c.atLeastValue(call.count, 1, "count") &&
         c.fits(0, call.count, elem, "x") && c.fits(1, 1, 8, "k") &&
         c.fits(2, 1, elem, "out");
}

struct Entry {
  LibraryFunction fn;
  bool (*check)(CallChecker &);
};

const std::unordered_map<std::string, Entry> &libraryTable() {
  static const std::unordered_map<std::string, Entry> table = {
      {"cpu.matmul", {matmulEntry, checkMatmul}},
      {"cpu.conv",
       {convEntry,
        [](CallChecker &c) { return checkConv(c, ConvKind::Forward); }}},
      {"cpu.conv_grad_input",
       {convGradInputEntry,
        [](CallChecker &c) { return checkConv(c, ConvKind::GradInput); }}},
      {"cpu.conv_grad_filter",
       {convGradFilterEntry,
        [](CallChecker &c) { return checkConv(c, ConvKind::GradFilter); }}},
      {"cpu.max_pool",
       {maxPoolEntry,
        [](CallChecker &c) { return checkPool(c, PoolKind::Max); }}},
      {"cpu.max_pool_grad",
       {maxPoolGradEntry,
        [](CallChecker &c) { return checkPool(c, PoolKind::MaxGrad); }}},
      {"cpu.avg_pool",
       {avgPoolEntry,
        [](CallChecker &c) { return checkPool(c, PoolKind::Avg); }}},
      {"cpu.avg_pool_grad",
       {avgPoolGradEntry,
        [](CallChecker &c) { return checkPool(c, PoolKind::AvgGrad); }}},
      {"cpu.scatter_add", {scatterAddEntry, checkScatterAdd}},
      {"cpu.kth_smallest", {kthSmallestEntry, checkKthSmallest}},
      {"cpu.concat", {concatEntry, checkConcat}},
  };
  return table;
}

} // namespace

LibraryFunction trainopt::rt::findLibraryFunction(const std::string &name) {
  auto it = libraryTable().find(name);
  return it == libraryTable().end() ? nullptr : it->second.fn;
}

bool trainopt::rt::checkLibraryCall(const std::string &name,
                                    const int64_t *ints, size_t numInts,
                                    const double *floats, size_t numFloats,
                                    const uint64_t *bufferBytes,
                                    size_t numBuffers, std::string &error) {
  (void)floats;
  // `cuda.*` calls share the CPU descriptors (CUDALibraryPlan.h).
  std::string cpuName =
      name.compare(0, 5, "cuda.") == 0 ? "cpu." + name.substr(5) : name;
  auto it = libraryTable().find(cpuName);
  if (it == libraryTable().end()) {
    error = "unknown library function '" + name + "'";
    return false;
  }
  CallChecker checker(name, ints, numInts, bufferBytes, numBuffers, error);
  bool needsBlas = cpuName == "cpu.matmul" || cpuName.rfind("cpu.conv", 0) == 0;
  if (name.compare(0, 4, "cpu.") == 0 && needsBlas && !blas().sgemm)
    return checker.fail("needs OpenBLAS: " + blas().error);
  if (numFloats != 0)
    return checker.fail("expects no float args, got " +
                        std::to_string(numFloats));
  return it->second.check(checker);
}

bool trainopt::rt::setConvKernels(ConvKernels kernels, std::string &error) {
  std::string why;
  if (kernels == ConvKernels::OneDnn && !oneDnnAvailable(why)) {
    error = "--cpu-conv=onednn: " + why;
    return false;
  }
  convOnOneDnn.store(kernels != ConvKernels::Builtin,
                     std::memory_order_relaxed);
  return true;
}

void trainopt::rt::setLibraryThreads(int threads) {
  int t = threads > 0 ? threads
                      : static_cast<int>(
                            std::max(1u, std::thread::hardware_concurrency()));
  libraryThreadCount.store(t, std::memory_order_relaxed);
  // OpenBLAS itself stays single-threaded: the library's own pool spreads
  // convolutions over samples. Measured on the 2-core CI machine, the
  // MLP's step (six 256-row GEMMs) takes 3.6 ms with one OpenBLAS thread,
  // 6.6 ms with two, and 17 ms with two after the pool has run.
  if (blas().setThreads)
    blas().setThreads(1);
}

void trainopt::rt::parallelRows(
    int64_t rows, int64_t work,
    const std::function<void(int64_t, int64_t)> &fn) {
  if (rows <= 0)
    return;
  // A generated kernel does about one operation per iteration; waking the
  // pool costs about as much as 64K of them.
  int64_t threads = std::min<int64_t>(libraryThreads(), rows);
  if (threads <= 1 || work < kMinKernelParallelWork) {
    fn(0, rows);
    return;
  }
  // Four blocks per thread: a thread slowed by another process takes fewer.
  int64_t grain = std::max<int64_t>(1, (rows + threads * 4 - 1) / (threads * 4));
  parallelFor(rows, std::max<int64_t>(1, work / rows), grain,
              [&](int64_t begin, int64_t end, int) { fn(begin, end); });
}
