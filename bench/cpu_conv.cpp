//===- cpu_conv.cpp - Convolution kernels on the CPU: ours against oneDNN -===//
//
/// \file
/// Times forward, backward-data and backward-filter convolutions of
/// ResNet-18 at batch 16 and 3x64x64 (its 3x3 and 7x7 layers and a 1x1
/// downsample), the way the issue on CPU speed asks: our im2col + OpenBLAS
/// SGEMM one sample at a time (what the runtime did), the same with the
/// whole batch folded into the GEMM's N, and oneDNN 2.6 (Debian libdnnl-dev)
/// on plain NCHW memory and on its own blocked layout (reorders not
/// counted, then counted). A last column times the filter gradient the way
/// the runtime runs it on oneDNN (lib/Runtime/CPU/OneDnn.cpp): split over
/// output channels into fixed parts, each a one-thread primitive, the parts
/// shared over the threads, reorders counted. Each row prints GFLOP/s, the
/// totals milliseconds; the FLOP count is 2 N Cout P Cin Kh Kw per
/// direction.
///
/// Not built by CMake (it links oneDNN, which the runtime only loads):
///   g++ -O3 -march=native -fopenmp bench/cpu_conv.cpp -o /tmp/cpu_conv \
///     -ldnnl -lopenblas && OMP_NUM_THREADS=2 /tmp/cpu_conv
//
//===----------------------------------------------------------------------===//

#include <cblas.h>
#include <oneapi/dnnl/dnnl.hpp>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <functional>
#include <string>
#include <unordered_map>
#include <vector>

#include <omp.h>

namespace {

struct Shape {
  const char *name;
  int n, cin, cout, h, k, s, pad;
  int oh() const { return (h + 2 * pad - k) / s + 1; }
  double gflop() const {
    return 2.0 * n * cout * oh() * oh() * cin * k * k / 1e9;
  }
};

double timeMs(const std::function<void()> &fn) {
  fn();
  std::vector<double> t;
  for (int i = 0; i < 7; ++i) {
    auto a = std::chrono::steady_clock::now();
    fn();
    t.push_back(std::chrono::duration<double, std::milli>(
                    std::chrono::steady_clock::now() - a)
                    .count());
  }
  std::sort(t.begin(), t.end());
  return t[t.size() / 2];
}

/// col[(c, ky, kx), s * p + o] for samples [0, S) of x (S x C x H x H).
void im2col(const float *x, int S, const Shape &sh, float *col) {
  int oh = sh.oh(), p = oh * oh, ld = S * p;
  for (int c = 0; c < sh.cin; ++c)
    for (int ky = 0; ky < sh.k; ++ky)
      for (int kx = 0; kx < sh.k; ++kx) {
        float *row = col + ((c * sh.k + ky) * sh.k + kx) * ld;
        for (int s = 0; s < S; ++s) {
          const float *plane = x + (s * sh.cin + c) * sh.h * sh.h;
          for (int oy = 0; oy < oh; ++oy) {
            int iy = oy * sh.s - sh.pad + ky;
            for (int ox = 0; ox < oh; ++ox) {
              int ix = ox * sh.s - sh.pad + kx;
              row[s * p + oy * oh + ox] =
                  iy >= 0 && iy < sh.h && ix >= 0 && ix < sh.h
                      ? plane[iy * sh.h + ix]
                      : 0.f;
            }
          }
        }
      }
}

void col2im(const float *col, int S, const Shape &sh, float *dx) {
  int oh = sh.oh(), p = oh * oh, ld = S * p;
  std::fill(dx, dx + S * sh.cin * sh.h * sh.h, 0.f);
  for (int c = 0; c < sh.cin; ++c)
    for (int ky = 0; ky < sh.k; ++ky)
      for (int kx = 0; kx < sh.k; ++kx) {
        const float *row = col + ((c * sh.k + ky) * sh.k + kx) * ld;
        for (int s = 0; s < S; ++s) {
          float *plane = dx + (s * sh.cin + c) * sh.h * sh.h;
          for (int oy = 0; oy < oh; ++oy) {
            int iy = oy * sh.s - sh.pad + ky;
            if (iy < 0 || iy >= sh.h)
              continue;
            for (int ox = 0; ox < oh; ++ox) {
              int ix = ox * sh.s - sh.pad + kx;
              if (ix >= 0 && ix < sh.h)
                plane[iy * sh.h + ix] += row[s * p + oy * oh + ox];
            }
          }
        }
      }
}

/// Runs gemm(lo, len) over the rows [0, m) cut into blocks of at least 32
/// (a multiple of 16), shared over `threads` threads, single-threaded BLAS.
template <typename Fn> void splitRows(int m, int threads, const Fn &gemm) {
  int parts = std::max(1, std::min(8, m / 32));
  int block = ((m + parts - 1) / parts + 15) / 16 * 16;
  parts = (m + block - 1) / block;
#pragma omp parallel for num_threads(threads) schedule(dynamic)
  for (int b = 0; b < parts; ++b)
    gemm(b * block, std::min(m, (b + 1) * block) - b * block);
}

/// Our im2col convolution. With S = 1, one GEMM per sample, the samples
/// shared over the threads (what the runtime did). With S = N, the whole
/// batch folded into one GEMM's columns: im2col over the channels, the GEMM
/// cut into row blocks, each single-threaded, shared over the threads.
struct Im2col {
  const Shape &sh;
  int S, threads;
  const float *x, *w, *dy;
  float *y, *dx, *dw;

  int p() const { return sh.oh() * sh.oh(); }
  int kk() const { return sh.cin * sh.k * sh.k; }

  void forward() const {
    openblas_set_num_threads(1);
    int P = p(), K = kk();
    if (S == 1) {
#pragma omp parallel for num_threads(threads) schedule(dynamic)
      for (int n = 0; n < sh.n; ++n) {
        thread_local std::vector<float> col;
        col.resize(size_t(K) * P);
        im2col(x + size_t(n) * sh.cin * sh.h * sh.h, 1, sh, col.data());
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, sh.cout, P, K,
                    1.f, w, K, col.data(), P, 0.f, y + size_t(n) * sh.cout * P,
                    P);
      }
      return;
    }
    static std::vector<float> col, out;
    int N = sh.n * P;
    col.resize(size_t(K) * N);
    out.resize(size_t(sh.cout) * N);
    im2col(x, sh.n, sh, col.data());
    splitRows(sh.cout, threads, [&](int lo, int len) {
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, len, N, K, 1.f,
                  w + size_t(lo) * K, K, col.data(), N, 0.f,
                  out.data() + size_t(lo) * N, N);
    });
#pragma omp parallel for num_threads(threads)
    for (int n = 0; n < sh.n; ++n)
      for (int f = 0; f < sh.cout; ++f)
        std::copy_n(out.data() + size_t(f) * N + n * P, P,
                    y + (size_t(n) * sh.cout + f) * P);
  }

  void backwardData() const {
    openblas_set_num_threads(1);
    int P = p(), K = kk();
    if (S == 1) {
#pragma omp parallel for num_threads(threads) schedule(dynamic)
      for (int n = 0; n < sh.n; ++n) {
        thread_local std::vector<float> col;
        col.resize(size_t(K) * P);
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, K, P, sh.cout, 1.f,
                    w, K, dy + size_t(n) * sh.cout * P, P, 0.f, col.data(), P);
        col2im(col.data(), 1, sh, dx + size_t(n) * sh.cin * sh.h * sh.h);
      }
      return;
    }
    static std::vector<float> col, g;
    int N = sh.n * P;
    col.resize(size_t(K) * N);
    g.resize(size_t(sh.cout) * N);
    gather(g.data());
    splitRows(K, threads, [&](int lo, int len) {
      cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, len, N, sh.cout, 1.f,
                  w + lo, K, g.data(), N, 0.f, col.data() + size_t(lo) * N, N);
    });
    col2im(col.data(), sh.n, sh, dx);
  }

  void backwardFilter() const {
    openblas_set_num_threads(1);
    int P = p(), K = kk();
    if (S == 1) {
      // Eight fixed chunks of samples, summed in order.
      int chunks = std::min(8, sh.n), per = sh.n / chunks;
      size_t wsize = size_t(sh.cout) * K;
      static std::vector<float> partial;
      partial.resize(chunks * wsize);
#pragma omp parallel for num_threads(threads) schedule(dynamic)
      for (int c = 0; c < chunks; ++c) {
        thread_local std::vector<float> col;
        col.resize(size_t(K) * P);
        for (int n = c * per; n < (c + 1) * per; ++n) {
          im2col(x + size_t(n) * sh.cin * sh.h * sh.h, 1, sh, col.data());
          cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, sh.cout, K, P,
                      1.f, dy + size_t(n) * sh.cout * P, P, col.data(), P,
                      n == c * per ? 0.f : 1.f, partial.data() + c * wsize, K);
        }
      }
      std::copy_n(partial.data(), wsize, dw);
      for (int c = 1; c < chunks; ++c)
        for (size_t i = 0; i < wsize; ++i)
          dw[i] += partial[c * wsize + i];
      return;
    }
    static std::vector<float> col, g;
    int N = sh.n * P;
    col.resize(size_t(K) * N);
    g.resize(size_t(sh.cout) * N);
    gather(g.data());
    im2col(x, sh.n, sh, col.data());
    splitRows(sh.cout, threads, [&](int lo, int len) {
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, len, K, N, 1.f,
                  g.data() + size_t(lo) * N, N, col.data(), N, 0.f,
                  dw + size_t(lo) * K, K);
    });
  }

  /// dy (N x Cout x P) as [Cout, N * P].
  void gather(float *g) const {
    int P = p(), N = sh.n * P;
#pragma omp parallel for num_threads(threads)
    for (int n = 0; n < sh.n; ++n)
      for (int f = 0; f < sh.cout; ++f)
        std::copy_n(dy + (size_t(n) * sh.cout + f) * P, P,
                    g + size_t(f) * N + n * P);
  }
};

using namespace dnnl;
using tag = memory::format_tag;
using dt = memory::data_type;

/// oneDNN forward, backward-data and backward-weights on NCHW (kPlain), on
/// the layouts it prefers with reorders excluded (kBlocked), or on those with
/// every operand reordered from and to NCHW in each call (kReordered), as a
/// runtime that keeps NCHW between calls would need.
enum Mode { kPlain, kBlocked, kReordered };
struct OneDnn {
  engine eng{engine::kind::cpu, 0};
  stream str{eng};
  const Shape &sh;
  Mode mode;
  double fwd = 0, bwdData = 0, bwdWeights = 0;
  std::string impl;

  OneDnn(const Shape &sh, Mode mode) : sh(sh), mode(mode) {}

  /// Times `prim` with `inputs` and `output` given as (argument, the
  /// primitive's memory descriptor, the plain one).
  struct Arg {
    int arg;
    memory::desc want, plain;
  };
  double time(const primitive &prim, std::vector<Arg> inputs, Arg output) {
    std::unordered_map<int, memory> args;
    std::vector<std::pair<memory, memory>> in;
    for (const Arg &a : inputs) {
      memory m(a.want, eng);
      fill(m);
      args[a.arg] = m;
      if (mode == kReordered) {
        memory user(a.plain, eng);
        fill(user);
        in.emplace_back(user, m);
      }
    }
    memory out(output.want, eng), user(output.plain, eng);
    args[output.arg] = out;
    return timeMs([&] {
      for (auto &[from, to] : in)
        reorder(from, to).execute(str, from, to);
      prim.execute(str, args);
      if (mode == kReordered)
        reorder(out, user).execute(str, out, user);
      str.wait();
    });
  }

  void run() {
    memory::dims src{sh.n, sh.cin, sh.h, sh.h},
        wei{sh.cout, sh.cin, sh.k, sh.k}, dst{sh.n, sh.cout, sh.oh(), sh.oh()},
        strides{sh.s, sh.s}, pad{sh.pad, sh.pad};
    tag a = mode == kPlain ? tag::nchw : tag::any,
        b = mode == kPlain ? tag::oihw : tag::any;
    memory::desc srcD(src, dt::f32, a), weiD(wei, dt::f32, b),
        dstD(dst, dt::f32, a), srcP(src, dt::f32, tag::nchw),
        weiP(wei, dt::f32, tag::oihw), dstP(dst, dt::f32, tag::nchw);
    convolution_forward::desc fd(prop_kind::forward_training,
                                 algorithm::convolution_direct, srcD, weiD,
                                 dstD, strides, pad, pad);
    convolution_forward::primitive_desc fpd(fd, eng);
    impl = fpd.impl_info_str();
    fwd = time(convolution_forward(fpd),
               {{DNNL_ARG_SRC, fpd.src_desc(), srcP},
                {DNNL_ARG_WEIGHTS, fpd.weights_desc(), weiP}},
               {DNNL_ARG_DST, fpd.dst_desc(), dstP});
    convolution_backward_data::desc bd(algorithm::convolution_direct, srcD,
                                       weiD, dstD, strides, pad, pad);
    convolution_backward_data::primitive_desc bpd(bd, eng, fpd);
    bwdData = time(convolution_backward_data(bpd),
                   {{DNNL_ARG_DIFF_DST, bpd.diff_dst_desc(), dstP},
                    {DNNL_ARG_WEIGHTS, bpd.weights_desc(), weiP}},
                   {DNNL_ARG_DIFF_SRC, bpd.diff_src_desc(), srcP});
    convolution_backward_weights::desc wd(algorithm::convolution_direct, srcD,
                                          weiD, dstD, strides, pad, pad);
    convolution_backward_weights::primitive_desc wpd(wd, eng, fpd);
    bwdWeights = time(convolution_backward_weights(wpd),
                      {{DNNL_ARG_SRC, wpd.src_desc(), srcP},
                       {DNNL_ARG_DIFF_DST, wpd.diff_dst_desc(), dstP}},
                      {DNNL_ARG_DIFF_WEIGHTS, wpd.diff_weights_desc(), weiP});
  }

  static void fill(memory &m) {
    fill(static_cast<float *>(m.get_data_handle()),
         m.get_desc().get_size() / sizeof(float));
  }
  static void fill(float *p, size_t n) {
    for (size_t i = 0; i < n; ++i)
      p[i] = float((i * 2654435761u) % 1000) / 1000.f - 0.5f;
  }
};

/// The runtime's oneDNN filter gradient (OneDnn.cpp, buildGradFilterPlan):
/// `parts` one-thread primitives over slices of the output channels, with
/// user scratchpads, reading their slice of dy in place through a strided
/// descriptor; x reordered once. Milliseconds.
double partsBwdWeights(const Shape &sh, int threads) {
  int parts = 1;
  while (parts < 8 && sh.cout % (16 * parts) == 0 &&
         sh.cout / (2 * parts) >= 16)
    parts *= 2;
  engine eng{engine::kind::cpu, 0};
  stream str(eng);
  int ocb = sh.cout / parts, P = sh.oh() * sh.oh();
  memory::dims src{sh.n, sh.cin, sh.h, sh.h}, strides{sh.s, sh.s},
      pad{sh.pad, sh.pad}, wei{ocb, sh.cin, sh.k, sh.k},
      dst{sh.n, ocb, sh.oh(), sh.oh()};
  std::vector<float> x(size_t(sh.n) * sh.cin * sh.h * sh.h),
      dy(size_t(sh.n) * sh.cout * P),
      dw(size_t(sh.cout) * sh.cin * sh.k * sh.k);
  OneDnn::fill(x.data(), x.size());
  OneDnn::fill(dy.data(), dy.size());
  omp_set_num_threads(1);
  memory::desc srcA(src, dt::f32, tag::any), weiA(wei, dt::f32, tag::any),
      dstA(dst, dt::f32, tag::any);
  convolution_forward::primitive_desc fpd({prop_kind::forward_training,
                                           algorithm::convolution_direct, srcA,
                                           weiA, dstA, strides, pad, pad},
                                          eng);
  primitive_attr attr;
  attr.set_scratchpad_mode(scratchpad_mode::user);
  convolution_backward_weights::primitive_desc wpd(
      {algorithm::convolution_direct, srcA, weiA, dstA, strides, pad, pad},
      attr, eng, fpd);
  memory srcUser({src, dt::f32, tag::nchw}, eng, x.data()),
      srcB(wpd.src_desc(), eng);
  reorder srcReorder(srcUser, srcB);
  struct Part {
    convolution_backward_weights prim;
    memory dyUser, dyB, dwB, dwUser, scratch;
    reorder in, out;
  };
  std::vector<Part> ps;
  for (int b = 0; b < parts; ++b) {
    memory::desc slice(dst, dt::f32,
                       memory::dims{memory::dim(sh.cout) * P, P, sh.oh(), 1});
    memory dyUser(slice, eng, dy.data() + size_t(b) * ocb * P),
        dyB(wpd.diff_dst_desc(), eng), dwB(wpd.diff_weights_desc(), eng),
        dwUser({wei, dt::f32, tag::oihw}, eng,
               dw.data() + size_t(b) * ocb * sh.cin * sh.k * sh.k);
    ps.push_back({convolution_backward_weights(wpd), dyUser, dyB, dwB, dwUser,
                  memory(wpd.scratchpad_desc(), eng), reorder(dyUser, dyB),
                  reorder(dwB, dwUser)});
  }
  return timeMs([&] {
    omp_set_num_threads(threads);
    srcReorder.execute(str, srcUser, srcB);
    str.wait();
#pragma omp parallel for num_threads(threads) schedule(dynamic)
    for (int b = 0; b < parts; ++b) {
      Part &p = ps[b];
      stream s(eng);
      p.in.execute(s, p.dyUser, p.dyB);
      p.prim.execute(s, {{DNNL_ARG_SRC, srcB},
                         {DNNL_ARG_DIFF_DST, p.dyB},
                         {DNNL_ARG_DIFF_WEIGHTS, p.dwB},
                         {DNNL_ARG_SCRATCHPAD, p.scratch}});
      p.out.execute(s, p.dwB, p.dwUser);
      s.wait();
    }
  });
}

} // namespace

int main() {
  const int threads = 2;
  omp_set_num_threads(threads);
  Shape shapes[] = {
      {"conv1 3-64 k7s2 64", 16, 3, 64, 64, 7, 2, 3},
      {"l1 64-64 k3 16", 16, 64, 64, 16, 3, 1, 1},
      {"l2a 64-128 k3s2 16", 16, 64, 128, 16, 3, 2, 1},
      {"l2 128-128 k3 8", 16, 128, 128, 8, 3, 1, 1},
      {"l2d 64-128 k1s2 16", 16, 64, 128, 16, 1, 2, 0},
      {"l3a 128-256 k3s2 8", 16, 128, 256, 8, 3, 2, 1},
      {"l3 256-256 k3 4", 16, 256, 256, 4, 3, 1, 1},
      {"l4a 256-512 k3s2 4", 16, 256, 512, 4, 3, 2, 1},
      {"l4 512-512 k3 2", 16, 512, 512, 2, 3, 1, 1},
  };
  std::printf("GFLOP/s per direction (fwd / bwd-data / bwd-filter), %d "
              "threads, batch 16\n",
              threads);
  std::printf("%-20s %7s | %-17s | %-17s | %-17s | %-17s | %-17s | %-7s | %s\n",
              "layer", "GFLOP", "ours per sample", "ours batch folded",
              "oneDNN nchw", "oneDNN blocked", "oneDNN blocked+reorders",
              "parts", "oneDNN kernel (blocked)");
  double total[5][3] = {}, partsTotal = 0;
  for (const Shape &sh : shapes) {
    size_t xs = size_t(sh.n) * sh.cin * sh.h * sh.h,
           ws = size_t(sh.cout) * sh.cin * sh.k * sh.k,
           ys = size_t(sh.n) * sh.cout * sh.oh() * sh.oh();
    std::vector<float> x(xs), w(ws), dy(ys), y(ys), dx(xs), dw(ws);
    for (std::vector<float> *v : {&x, &w, &dy})
      for (size_t i = 0; i < v->size(); ++i)
        (*v)[i] = float((i * 2654435761u) % 1000) / 1000.f - 0.5f;
    double ms[5][3];
    const int samples[2] = {1, sh.n};
    for (int v = 0; v < 2; ++v) {
      Im2col k{sh,        samples[v], threads,   x.data(), w.data(),
               dy.data(), y.data(),   dx.data(), dw.data()};
      ms[v][0] = timeMs([&] { k.forward(); });
      ms[v][1] = timeMs([&] { k.backwardData(); });
      ms[v][2] = timeMs([&] { k.backwardFilter(); });
      // The two variants must agree (up to the order of the sums).
      static std::vector<float> ref[3];
      const std::vector<float> *got[3] = {&y, &dx, &dw};
      for (int d = 0; d < 3; ++d) {
        if (v == 0) {
          ref[d] = *got[d];
          continue;
        }
        for (size_t i = 0; i < ref[d].size(); ++i)
          if (std::abs(ref[d][i] - (*got[d])[i]) >
              1e-4f * (1 + std::abs(ref[d][i]))) {
            std::printf("%s: direction %d differs at %zu: %g vs %g\n", sh.name,
                        d, i, ref[d][i], (*got[d])[i]);
            return 1;
          }
      }
    }
    std::string impl;
    for (int v = 0; v < 3; ++v) {
      OneDnn d(sh, Mode(v));
      d.run();
      ms[2 + v][0] = d.fwd;
      ms[2 + v][1] = d.bwdData;
      ms[2 + v][2] = d.bwdWeights;
      impl = d.impl;
    }
    std::printf("%-20s %7.3f", sh.name, sh.gflop());
    for (int v = 0; v < 5; ++v) {
      std::printf(" |");
      for (int d = 0; d < 3; ++d) {
        std::printf(" %5.0f", sh.gflop() / ms[v][d] * 1e3);
        total[v][d] += ms[v][d];
      }
    }
    double parts = partsBwdWeights(sh, threads);
    partsTotal += parts;
    std::printf(" | %7.0f | %s\n", sh.gflop() / parts * 1e3, impl.c_str());
  }
  std::printf("%-28s", "total ms");
  for (int v = 0; v < 5; ++v) {
    std::printf(" |");
    for (int d = 0; d < 3; ++d)
      std::printf(" %5.1f", total[v][d]);
  }
  std::printf(" | %7.1f\n", partsTotal);
  return 0;
}
