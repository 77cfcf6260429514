//===- LibraryKernels.cu - the CUDA library's own kernels -----------------===//
//
/// \file
/// Pooling, scatter-add and fill kernels for `cuda.*` library calls whose
/// semantics (the evaluator's, lib/Evaluator) cuDNN does not give: see
/// LibraryKernels.h. One thread per output element, 64-bit indices, grid
/// stride loops so any size fits a bounded grid. bf16 and f16 tensors
/// (mixed precision) are read into f32 and computed there, as the CPU
/// library does; scatter-add alone rounds at every addition (it adds into
/// the output in place).
//
//===----------------------------------------------------------------------===//

#include "LibraryKernels.h"
#include "trainopt/Runtime/WindowMath.h"

#include <cuda_bf16.h>
#include <cuda_fp16.h>

using trainopt::rt::cuda::FillParams;
using trainopt::rt::cuda::KthSmallestParams;
using trainopt::rt::cuda::PoolParams;
using trainopt::rt::cuda::ScatterAddParams;

namespace {

/// The type a tensor of element type T is computed in: f32 for the 16-bit
/// storage types, else T; `ld` and `st` convert (round to nearest even).
template <typename T> struct Compute { using type = T; };
template <> struct Compute<__nv_bfloat16> { using type = float; };
template <> struct Compute<__half> { using type = float; };
template <typename T> using ComputeT = typename Compute<T>::type;

__device__ inline float ld(__nv_bfloat16 v) { return __bfloat162float(v); }
__device__ inline float ld(__half v) { return __half2float(v); }
__device__ inline float ld(float v) { return v; }
__device__ inline double ld(double v) { return v; }
template <typename T> __device__ inline T st(ComputeT<T> v);
template <> __device__ inline __nv_bfloat16 st(float v) {
  return __float2bfloat16_rn(v);
}
template <> __device__ inline __half st(float v) { return __float2half_rn(v); }
template <> __device__ inline float st(float v) { return v; }
template <> __device__ inline double st(double v) { return v; }

#define GRID_STRIDE(i, n)                                                      \
  for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < (n); \
       i += (long long)gridDim.x * blockDim.x)

/// The taps [lo, hi) of dim d that land inside the input for output o
/// (WindowMath.h, shared with the CPU library).
__device__ inline void tapRange(const PoolParams &p, int d, long long o,
                                long long &lo, long long &hi) {
  trainopt::rt::windowTaps<long long>(o, p.in[d], p.k[d], p.stride[d],
                                      p.dil[d], p.padB[d], lo, hi);
}

__device__ inline long long paddedTaps(const PoolParams &p, int d,
                                       long long o) {
  return trainopt::rt::windowPaddedTaps<long long>(
      o, p.in[d], p.k[d], p.stride[d], p.dil[d], p.padB[d], p.padE[d]);
}

/// Splits a plane offset into three spatial positions.
__device__ inline void unflatten(const long long *dims, long long at,
                                 long long pos[3]) {
  pos[2] = at % dims[2];
  at /= dims[2];
  pos[1] = at % dims[1];
  pos[0] = at / dims[1];
}

/// Calls fn(at) with the input offset (in its plane) of each tap of window
/// `o` that lies inside the input, in window order.
template <typename Fn>
__device__ void forEachTap(const PoolParams &p, const long long o[3],
                           const Fn &fn) {
  long long lo[3], hi[3], base[3];
  for (int d = 0; d < 3; ++d) {
    tapRange(p, d, o[d], lo[d], hi[d]);
    base[d] = o[d] * p.stride[d] - p.padB[d];
  }
  for (long long kd = lo[0]; kd < hi[0]; ++kd)
    for (long long kh = lo[1]; kh < hi[1]; ++kh)
      for (long long kw = lo[2]; kw < hi[2]; ++kw)
        fn(((base[0] + kd * p.dil[0]) * p.in[1] + base[1] + kh * p.dil[1]) *
               p.in[2] +
           base[2] + kw * p.dil[2]);
}

/// The input offset (in its plane) of the first maximum of window `o`, in
/// window order with strict `>` (the CPU library's rule), or -1.
template <typename T>
__device__ long long windowArgmax(const PoolParams &p, const T *x,
                                  const long long o[3]) {
  long long best = -1;
  ComputeT<T> bestValue = 0;
  forEachTap(p, o, [&](long long at) {
    if (best < 0 || ld(x[at]) > bestValue)
      best = at, bestValue = ld(x[at]);
  });
  return best;
}

/// Calls fn(o[3], flat) for each window that has input position `pos` as a
/// tap, in row-major output order.
template <typename Fn>
__device__ void forEachWindowOf(const PoolParams &p, const long long pos[3],
                                const Fn &fn) {
  long long first[3], last[3];
  for (int d = 0; d < 3; ++d) {
    long long shifted = pos[d] + p.padB[d]; // = o * stride + k * dil
    long long reach = (p.k[d] - 1) * p.dil[d];
    long long lo = shifted - reach <= 0
                       ? 0
                       : (shifted - reach + p.stride[d] - 1) / p.stride[d];
    first[d] = lo;
    last[d] = min(p.out[d] - 1, shifted / p.stride[d]);
  }
  long long o[3];
  for (o[0] = first[0]; o[0] <= last[0]; ++o[0]) {
    if ((pos[0] + p.padB[0] - o[0] * p.stride[0]) % p.dil[0])
      continue;
    for (o[1] = first[1]; o[1] <= last[1]; ++o[1]) {
      if ((pos[1] + p.padB[1] - o[1] * p.stride[1]) % p.dil[1])
        continue;
      for (o[2] = first[2]; o[2] <= last[2]; ++o[2]) {
        if ((pos[2] + p.padB[2] - o[2] * p.stride[2]) % p.dil[2])
          continue;
        fn(o, (o[0] * p.out[1] + o[1]) * p.out[2] + o[2]);
      }
    }
  }
}

template <typename T>
__device__ void maxPool(PoolParams p, const T *x, T *y) {
  long long inSize = p.in[0] * p.in[1] * p.in[2];
  long long outSize = p.out[0] * p.out[1] * p.out[2];
  GRID_STRIDE(i, p.planes * outSize) {
    long long plane = i / outSize, o[3];
    unflatten(p.out, i % outSize, o);
    // std::max's rule: a NaN never replaces the running maximum, which
    // starts at -inf (a window with no tap inside the input gives -inf).
    ComputeT<T> acc = -ComputeT<T>(INFINITY);
    const T *xp = x + plane * inSize;
    forEachTap(p, o, [&](long long at) {
      ComputeT<T> v = ld(xp[at]);
      acc = acc < v ? v : acc;
    });
    y[i] = st<T>(acc);
  }
}

template <typename T>
__device__ void maxPoolGrad(PoolParams p, const T *x, const T *dy, T *dx) {
  long long inSize = p.in[0] * p.in[1] * p.in[2];
  long long outSize = p.out[0] * p.out[1] * p.out[2];
  GRID_STRIDE(i, p.planes * inSize) {
    long long plane = i / inSize, at = i % inSize, pos[3];
    unflatten(p.in, at, pos);
    const T *xp = x + plane * inSize;
    const T *dyp = dy + plane * outSize;
    ComputeT<T> sum = 0;
    forEachWindowOf(p, pos, [&](const long long o[3], long long flat) {
      if (windowArgmax(p, xp, o) == at)
        sum += ld(dyp[flat]);
    });
    dx[i] = st<T>(sum);
  }
}

__device__ inline long long avgCount(const PoolParams &p,
                                     const long long o[3]) {
  long long count = 1;
  for (int d = 0; d < 3; ++d) {
    if (p.includePad) {
      count *= paddedTaps(p, d, o[d]);
    } else {
      long long lo, hi;
      tapRange(p, d, o[d], lo, hi);
      count *= hi - lo;
    }
  }
  return count > 1 ? count : 1;
}

template <typename T>
__device__ void avgPool(PoolParams p, const T *x, T *y) {
  long long inSize = p.in[0] * p.in[1] * p.in[2];
  long long outSize = p.out[0] * p.out[1] * p.out[2];
  GRID_STRIDE(i, p.planes * outSize) {
    long long plane = i / outSize, o[3];
    unflatten(p.out, i % outSize, o);
    const T *xp = x + plane * inSize;
    double acc = 0.0;
    forEachTap(p, o, [&](long long at) { acc += ld(xp[at]); });
    y[i] = st<T>(static_cast<ComputeT<T>>(acc / avgCount(p, o)));
  }
}

template <typename T>
__device__ void avgPoolGrad(PoolParams p, const T *dy, T *dx) {
  long long inSize = p.in[0] * p.in[1] * p.in[2];
  long long outSize = p.out[0] * p.out[1] * p.out[2];
  GRID_STRIDE(i, p.planes * inSize) {
    long long plane = i / inSize, pos[3];
    unflatten(p.in, i % inSize, pos);
    const T *dyp = dy + plane * outSize;
    ComputeT<T> sum = 0;
    forEachWindowOf(p, pos, [&](const long long o[3], long long flat) {
      sum += static_cast<ComputeT<T>>(static_cast<double>(ld(dyp[flat])) /
                                      avgCount(p, o));
    });
    dx[i] = st<T>(sum);
  }
}

/// One thread per (outer, inner) column: zero it, then add the updates in
/// index order.
template <typename T, typename I>
__device__ void scatterAdd(ScatterAddParams p, const I *indices,
                           const T *updates, T *out) {
  GRID_STRIDE(c, p.outer * p.inner) {
    long long o = c / p.inner, i = c % p.inner;
    T *column = out + o * p.axis * p.inner + i;
    for (long long a = 0; a < p.axis; ++a)
      column[a * p.inner] = st<T>(0);
    const T *src = updates + o * p.count * p.inner + i;
    for (long long q = 0; q < p.count; ++q) {
      long long v = static_cast<long long>(indices[q]);
      if (v < -p.axis || v >= p.axis)
        continue;
      if (v < 0)
        v += p.axis;
      column[v * p.inner] =
          st<T>(ld(column[v * p.inner]) + ld(src[q * p.inner]));
    }
  }
}

/// Keys that order floats as IEEE 754's total order does (the CPU
/// library's orderKey).
__device__ inline unsigned long long orderKey(double v) {
  unsigned long long u = __double_as_longlong(v);
  return (u >> 63) ? ~u : u | (1ull << 63);
}
__device__ inline unsigned int orderKey(float v) {
  unsigned int u = __float_as_uint(v);
  return (u >> 31) ? ~u : u | 0x80000000u;
}
__device__ inline double fromOrderKey(unsigned long long k) {
  return __longlong_as_double((k >> 63) ? k & ~(1ull << 63) : ~k);
}
__device__ inline float fromOrderKey(unsigned int k) {
  return __uint_as_float((k >> 31) ? k & ~0x80000000u : ~k);
}

/// One block: eight bits of the key at a time from the top, a histogram of
/// the elements that share the digits chosen so far, then the digit whose
/// bin holds the k-th. Exact, and the same element as the CPU's
/// nth_element; linear in `count` per digit.
template <typename T>
__device__ void kthSmallest(KthSmallestParams p, const T *x,
                            const long long *kp, T *out) {
  using C = ComputeT<T>;
  using K = decltype(orderKey(C()));
  constexpr int kBits = sizeof(K) * 8;
  __shared__ unsigned long long hist[256];
  __shared__ K prefix, chosen;
  __shared__ long long rank;
  if (blockIdx.x != 0)
    return;
  long long k = *kp;
  if (k <= 0 || k > p.count) {
    if (threadIdx.x == 0)
      *out = st<T>(k <= 0 ? -INFINITY : INFINITY);
    return;
  }
  if (threadIdx.x == 0)
    prefix = 0, chosen = 0, rank = k - 1;
  for (int shift = kBits - 8; shift >= 0; shift -= 8) {
    for (int b = threadIdx.x; b < 256; b += blockDim.x)
      hist[b] = 0;
    __syncthreads();
    for (long long i = threadIdx.x; i < p.count; i += blockDim.x) {
      K key = orderKey(ld(x[i]));
      if ((key & chosen) == prefix)
        atomicAdd(&hist[(key >> shift) & 255], 1ull);
    }
    __syncthreads();
    if (threadIdx.x == 0) {
      unsigned long long below = 0;
      for (int b = 0; b < 256; ++b) {
        if (below + hist[b] > static_cast<unsigned long long>(rank)) {
          prefix |= static_cast<K>(b) << shift;
          rank -= static_cast<long long>(below);
          break;
        }
        below += hist[b];
      }
      chosen |= static_cast<K>(255) << shift;
    }
    __syncthreads();
  }
  if (threadIdx.x == 0)
    *out = st<T>(fromOrderKey(prefix));
}

} // namespace

extern "C" {

#define TRAINOPT_POOL_KERNELS(T, suffix)                                       \
  __global__ void trainopt_max_pool_##suffix(PoolParams p, const T *x, T *y) {  \
    maxPool(p, x, y);                                                          \
  }                                                                            \
  __global__ void trainopt_max_pool_grad_##suffix(PoolParams p, const T *x,    \
                                                  const T *dy, T *dx) {       \
    maxPoolGrad(p, x, dy, dx);                                                 \
  }                                                                            \
  __global__ void trainopt_avg_pool_##suffix(PoolParams p, const T *x, T *y) {  \
    avgPool(p, x, y);                                                          \
  }                                                                            \
  __global__ void trainopt_avg_pool_grad_##suffix(PoolParams p, const T *dy,   \
                                                  T *dx) {                    \
    avgPoolGrad(p, dy, dx);                                                    \
  }                                                                            \
  __global__ void trainopt_scatter_add_##suffix##_i64(                         \
      ScatterAddParams p, const long long *indices, const T *updates,          \
      T *out) {                                                                \
    scatterAdd(p, indices, updates, out);                                      \
  }                                                                            \
  __global__ void trainopt_scatter_add_##suffix##_i32(                         \
      ScatterAddParams p, const int *indices, const T *updates, T *out) {      \
    scatterAdd(p, indices, updates, out);                                      \
  }                                                                            \
  __global__ void trainopt_kth_smallest_##suffix(                              \
      KthSmallestParams p, const T *x, const long long *k, T *out) {           \
    kthSmallest(p, x, k, out);                                                 \
  }

TRAINOPT_POOL_KERNELS(float, f32)
TRAINOPT_POOL_KERNELS(double, f64)
TRAINOPT_POOL_KERNELS(__nv_bfloat16, bf16)
TRAINOPT_POOL_KERNELS(__half, f16)

__global__ void trainopt_fill64(FillParams p, unsigned long long *out) {
  GRID_STRIDE(i, p.words) { out[i] = p.pattern; }
}

} // extern "C"
