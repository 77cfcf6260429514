//===- CPULibraryTest.cpp - tests of the CPU library functions ------------===//
//
/// \file
/// Every function against a naive loop nest written here from the op
/// definitions (the reference evaluator's loops: every output element,
/// every kernel tap, in double), in f32 and f64, and in bf16 and f16 (stored
/// 16-bit, computed in f32: mixed precision), on small shapes that
/// exercise strides, dilations, asymmetric padding, groups, bias, 1-3
/// spatial dims, broadcast batches and transposes; and the load-time checks.
/// Convolutions run with both of the library's kernels (ConvKernels: the
/// builtin ones and oneDNN).
///
/// Built a second time with TRAINOPT_TEST_CUDA_LIBRARY as
/// TrainoptCUDALibraryTests: the same cases then run the `cuda.*` functions
/// on a GPU (CUDALibraryRunner.h, TF32 off), and skip without one.
//
//===----------------------------------------------------------------------===//

#include "trainopt/Runtime/CPULibrary.h"

#include "trainopt/Artifact/LibraryCalls.h"
#include "trainopt/Runtime/NarrowFloat.h"

#ifdef TRAINOPT_TEST_CUDA_LIBRARY
#include "CUDALibraryRunner.h"
#include "trainopt/Runtime/CUDALibraryPlan.h"
#define CPULibraryTest CUDALibraryTest
#endif

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <random>
#include <string>
#include <type_traits>
#include <vector>

using namespace trainopt::rt;

namespace {

using Ints = std::vector<int64_t>;
namespace calls = trainopt::calls;
using Values = std::vector<double>;
using Bytes = std::vector<unsigned char>;

int64_t product(const Ints &v) {
  int64_t p = 1;
  for (int64_t x : v)
    p *= x;
  return p;
}

Ints unravel(int64_t linear, const Ints &shape) {
  Ints idx(shape.size());
  for (int64_t d = static_cast<int64_t>(shape.size()) - 1; d >= 0; --d) {
    idx[d] = linear % shape[d];
    linear /= shape[d];
  }
  return idx;
}

Values randomValues(std::mt19937 &rng, int64_t n) {
  std::uniform_real_distribution<double> dist(-1.0, 1.0);
  Values v(n);
  for (double &x : v)
    x = dist(rng);
  return v;
}

/// Small integers, so that pooling windows have ties.
Values tiedValues(std::mt19937 &rng, int64_t n) {
  std::uniform_int_distribution<int> dist(-2, 2);
  Values v(n);
  for (double &x : v)
    x = dist(rng);
  return v;
}

/// A 16-bit float element (bf16 or f16), held as its bits; converts to and
/// from double through float, rounding to nearest even.
template <uint16_t (*Narrow)(float), float (*Widen)(uint16_t), int64_t Code,
          int Bits>
struct Float16 {
  static constexpr int64_t kCode = Code;
  /// Significant bits (for the tolerance).
  static constexpr int kBits = Bits;
  uint16_t bits = 0;
  Float16() = default;
  explicit Float16(double v) : bits(Narrow(static_cast<float>(v))) {}
  operator double() const { return Widen(bits); }
};
using BF16 = Float16<floatToBf16, bf16ToFloat, calls::kBF16, 8>;
using F16 = Float16<floatToHalf, halfToFloat, calls::kF16, 11>;

template <typename T> int64_t etype() {
  if constexpr (std::is_same_v<T, float>)
    return calls::kF32;
  else if constexpr (std::is_same_v<T, double>)
    return calls::kF64;
  else
    return T::kCode;
}

template <typename T> Bytes toBytes(const Values &v) {
  Bytes b(v.size() * sizeof(T));
  for (size_t i = 0; i < v.size(); ++i) {
    T x = static_cast<T>(v[i]);
    std::memcpy(b.data() + i * sizeof(T), &x, sizeof(T));
  }
  return b;
}

template <typename T> Values fromBytes(const Bytes &b) {
  Values v(b.size() / sizeof(T));
  for (size_t i = 0; i < v.size(); ++i) {
    T x;
    std::memcpy(&x, b.data() + i * sizeof(T), sizeof(T));
    v[i] = x;
  }
  return v;
}

/// Rounds `v` to T, so references see the inputs the library sees.
template <typename T> Values rounded(Values v) {
  for (double &x : v)
    x = static_cast<T>(x);
  return v;
}

/// Checks and runs `name` on `buffers`, which it updates in place.
void invoke(const std::string &name, const Ints &ints,
            std::vector<Bytes> &buffers) {
  std::vector<uint64_t> sizes;
  std::vector<void *> pointers;
  for (Bytes &b : buffers) {
    sizes.push_back(b.size());
    pointers.push_back(b.data());
  }
  std::string error;
  ASSERT_TRUE(checkLibraryCall(name, ints.data(), ints.size(), nullptr, 0,
                               sizes.data(), sizes.size(), error))
      << error;
#ifdef TRAINOPT_TEST_CUDA_LIBRARY
  ASSERT_TRUE(runCUDALibraryCall("cuda." + name.substr(4), ints, buffers,
                                 error))
      << error;
  return;
#endif
  LibraryFunction fn = findLibraryFunction(name);
  ASSERT_NE(fn, nullptr);
  fn(ints.data(), ints.size(), nullptr, 0, pointers.data());
}

template <typename T>
void expectNear(const Values &actual, const Values &expected,
                const std::string &what) {
  ASSERT_EQ(actual.size(), expected.size()) << what;
  // 16-bit types: the result's rounding (half an ulp) and the f32 sums'.
  double tol;
  if constexpr (sizeof(T) == 2)
    tol = std::ldexp(1.0, 1 - T::kBits);
  else
    tol = sizeof(T) == 4 ? 2e-4 : 1e-10;
  int reported = 0;
  for (size_t i = 0; i < actual.size(); ++i) {
    if (std::isinf(expected[i]) && actual[i] == expected[i])
      continue;
    if (std::fabs(actual[i] - expected[i]) > tol * (1 + std::fabs(expected[i])))
      if (reported++ < 5)
        ADD_FAILURE() << what << ": element " << i << " is " << actual[i]
                      << ", expected " << expected[i];
  }
}

//===----------------------------------------------------------------------===//
// Windows (conv and pool) and their references
//===----------------------------------------------------------------------===//

struct Win {
  Ints in, k, stride, dil, padB, padE;
  size_t rank() const { return in.size(); }
  Ints out() const {
    Ints o;
    for (size_t d = 0; d < rank(); ++d)
      o.push_back((in[d] + padB[d] + padE[d] - dil[d] * (k[d] - 1) - 1) /
                      stride[d] +
                  1);
    return o;
  }
  /// The descriptor's window (LibraryCalls.h).
  calls::Window window() const {
    calls::Window w;
    w.rank = rank();
    Ints o = out();
    for (size_t d = 0; d < rank(); ++d) {
      w.in[d] = in[d], w.kernel[d] = k[d], w.out[d] = o[d];
      w.strides[d] = stride[d], w.dilations[d] = dil[d];
      w.padBegin[d] = padB[d], w.padEnd[d] = padE[d];
    }
    return w;
  }
};

/// One kernel tap of one output position: its input position, as in the
/// evaluator's windowTap.
struct Tap {
  int64_t index; // linear spatial index into the input, when inside
  bool inside, inPadded;
};

/// taps[o * K + k] for every output position o and kernel tap k.
std::vector<Tap> allTaps(const Win &w) {
  Ints out = w.out();
  int64_t p = product(out), kSize = product(w.k);
  std::vector<Tap> taps;
  for (int64_t o = 0; o < p; ++o) {
    Ints oi = unravel(o, out);
    for (int64_t kl = 0; kl < kSize; ++kl) {
      Ints ki = unravel(kl, w.k);
      Tap t{0, true, true};
      for (size_t d = 0; d < w.rank(); ++d) {
        int64_t pos = oi[d] * w.stride[d] + ki[d] * w.dil[d] - w.padB[d];
        t.inside &= pos >= 0 && pos < w.in[d];
        t.inPadded &= pos < w.in[d] + w.padE[d];
        t.index = t.index * w.in[d] + pos;
      }
      taps.push_back(t);
    }
  }
  return taps;
}

struct ConvCase {
  int64_t n, cin, cout, groups;
  Win w;
  bool bias;
};

calls::Types types(int64_t et) {
  calls::Types t;
  t.element = t.accumulate = et;
  if (et == calls::kBF16 || et == calls::kF16)
    t.accumulate = calls::kF32;
  return t;
}

Ints convInts(int64_t et, const ConvCase &c, bool bias) {
  calls::ConvCall call;
  call.types = types(et);
  call.hasBias = bias;
  call.n = c.n, call.cin = c.cin, call.cout = c.cout, call.groups = c.groups;
  call.window = c.w.window();
  return call.encode();
}

/// Calls fn(xIndex, wIndex, yIndex) for every product of the convolution.
template <typename Fn> void forEachConvTerm(const ConvCase &c, const Fn &fn) {
  std::vector<Tap> taps = allTaps(c.w);
  int64_t in = product(c.w.in), p = product(c.w.out()), kSize = product(c.w.k);
  int64_t cinG = c.cin / c.groups, coutG = c.cout / c.groups;
  for (int64_t n = 0; n < c.n; ++n)
    for (int64_t f = 0; f < c.cout; ++f)
      for (int64_t o = 0; o < p; ++o)
        for (int64_t ci = 0; ci < cinG; ++ci)
          for (int64_t kl = 0; kl < kSize; ++kl) {
            const Tap &t = taps[o * kSize + kl];
            if (!t.inside)
              continue;
            int64_t channel = (f / coutG) * cinG + ci;
            fn((n * c.cin + channel) * in + t.index,
               (f * cinG + ci) * kSize + kl, (n * c.cout + f) * p + o);
          }
}

/// Checks a convolution and its gradients against loops; returns the
/// output, input-gradient and filter-gradient bytes, concatenated.
template <typename T> Bytes runConvCaseOnce(const ConvCase &c, unsigned seed) {
#ifdef TRAINOPT_TEST_CUDA_LIBRARY
  {
    // cuDNN pads both ends alike; a call it cannot express is refused at
    // load (CUDALibraryPlan.h) rather than computed wrongly.
    ConvPlan plan;
    std::string why;
    Ints ints = convInts(etype<T>(), c, c.bias);
    calls::ConvCall call;
    if (!calls::ConvCall::decode(ints.data(), ints.size(), call, why) ||
        !planConv(call, plan, why)) {
      EXPECT_NE(c.w.padB, c.w.padE) << why;
      return {};
    }
  }
#endif
  std::mt19937 rng(seed);
  int64_t xSize = c.n * c.cin * product(c.w.in);
  int64_t wSize = c.cout * (c.cin / c.groups) * product(c.w.k);
  int64_t ySize = c.n * c.cout * product(c.w.out());
  Values x = rounded<T>(randomValues(rng, xSize));
  Values w = rounded<T>(randomValues(rng, wSize));
  Values b = rounded<T>(randomValues(rng, c.cout));
  Values dy = rounded<T>(randomValues(rng, ySize));
  Values garbageX(xSize, 7.0), garbageW(wSize, 7.0), garbageY(ySize, 7.0);

  // Forward.
  Values y(ySize, 0.0);
  if (c.bias)
    for (int64_t i = 0; i < ySize; ++i)
      y[i] = b[(i / product(c.w.out())) % c.cout];
  forEachConvTerm(c, [&](int64_t xi, int64_t wi, int64_t yi) {
    y[yi] += x[xi] * w[wi];
  });
  std::vector<Bytes> fwd{toBytes<T>(x), toBytes<T>(w)};
  if (c.bias)
    fwd.push_back(toBytes<T>(b));
  fwd.push_back(toBytes<T>(garbageY));
  invoke("cpu.conv", convInts(etype<T>(), c, c.bias), fwd);
  expectNear<T>(fromBytes<T>(fwd.back()), y, "conv");

  // Gradients.
  Values dx(xSize, 0.0), dw(wSize, 0.0);
  forEachConvTerm(c, [&](int64_t xi, int64_t wi, int64_t yi) {
    dx[xi] += dy[yi] * w[wi];
    dw[wi] += dy[yi] * x[xi];
  });
  std::vector<Bytes> gi{toBytes<T>(dy), toBytes<T>(w), toBytes<T>(garbageX)};
  invoke("cpu.conv_grad_input", convInts(etype<T>(), c, false), gi);
  expectNear<T>(fromBytes<T>(gi[2]), dx, "conv_grad_input");
  std::vector<Bytes> gf{toBytes<T>(x), toBytes<T>(dy), toBytes<T>(garbageW)};
  invoke("cpu.conv_grad_filter", convInts(etype<T>(), c, false), gf);
  expectNear<T>(fromBytes<T>(gf[2]), dw, "conv_grad_filter");
  Bytes all = fwd.back();
  all.insert(all.end(), gi[2].begin(), gi[2].end());
  all.insert(all.end(), gf[2].begin(), gf[2].end());
  return all;
}

/// runConvCaseOnce with each of the CPU library's convolution kernels
/// (oneDNN computes only float calls; the others fall back to the builtin
/// code); returns their bytes, concatenated.
template <typename T> Bytes runConvCase(const ConvCase &c, unsigned seed) {
#ifdef TRAINOPT_TEST_CUDA_LIBRARY
  return runConvCaseOnce<T>(c, seed);
#else
  Bytes all;
  for (ConvKernels kernels : {ConvKernels::Builtin, ConvKernels::OneDnn}) {
    SCOPED_TRACE(kernels == ConvKernels::OneDnn ? "oneDNN" : "builtin");
    std::string error;
    bool selected = setConvKernels(kernels, error);
    if (!selected && !kBuildLoadsOneDnn)
      continue;
    EXPECT_TRUE(selected) << error;
    Bytes out = runConvCaseOnce<T>(c, seed);
    all.insert(all.end(), out.begin(), out.end());
  }
  std::string error;
  setConvKernels(ConvKernels::Auto, error);
  return all;
#endif
}

/// Runs `check` (which checks a call and returns its output bytes) with
/// 1, 3, 2 and all threads and expects the same bytes each time.
template <typename Fn> void expectSameBitsAcrossThreads(const Fn &check) {
  Bytes reference;
  for (int threads : {1, 3, 2, 0}) {
    SCOPED_TRACE(threads);
    setLibraryThreads(threads);
    Bytes out = check();
    if (reference.empty())
      reference = out;
    else
      EXPECT_TRUE(out == reference) << "bits differ from one thread's";
  }
  setLibraryThreads(0);
}

template <typename T> class CPULibraryTest : public ::testing::Test {
#ifdef TRAINOPT_TEST_CUDA_LIBRARY
protected:
  void SetUp() override {
    std::string why;
    if (!cudaAvailable(why))
      GTEST_SKIP() << "no GPU: " << why;
  }
#endif
};
using ElementTypes = ::testing::Types<float, double, BF16, F16>;
TYPED_TEST_SUITE(CPULibraryTest, ElementTypes);

TYPED_TEST(CPULibraryTest, Conv2DPaddedWithBias) {
  runConvCase<TypeParam>(
      {2, 3, 4, 1, {{7, 6}, {3, 3}, {1, 1}, {1, 1}, {1, 1}, {1, 1}}, true}, 1);
}

TYPED_TEST(CPULibraryTest, Conv2DGroupsStridedDilatedAsymmetric) {
  runConvCase<TypeParam>(
      {3, 4, 6, 2, {{9, 8}, {3, 2}, {2, 2}, {2, 1}, {1, 0}, {2, 1}}, false},
      2);
  runConvCase<TypeParam>(
      {2, 4, 4, 2, {{8, 7}, {2, 3}, {1, 2}, {2, 2}, {0, 2}, {1, 0}}, true}, 3);
}

TYPED_TEST(CPULibraryTest, Conv1D) {
  runConvCase<TypeParam>({3, 2, 3, 1, {{10}, {3}, {2}, {1}, {2}, {1}}, true},
                         4);
  runConvCase<TypeParam>({2, 4, 2, 2, {{11}, {2}, {3}, {2}, {0}, {3}}, false},
                         5);
}

TYPED_TEST(CPULibraryTest, Conv3D) {
  runConvCase<TypeParam>({2,
                          2,
                          4,
                          2,
                          {{4, 5, 3}, {2, 3, 2}, {1, 2, 1}, {1, 1, 2},
                           {1, 0, 1}, {0, 1, 1}},
                          true},
                         6);
}

TYPED_TEST(CPULibraryTest, ConvPointwise) {
  // 1x1, stride 1, unpadded: the path without im2col.
  runConvCase<TypeParam>(
      {3, 4, 6, 2, {{5, 4}, {1, 1}, {1, 1}, {1, 1}, {0, 0}, {0, 0}}, true}, 7);
  // 1x1 with a stride goes through im2col.
  runConvCase<TypeParam>(
      {2, 3, 2, 1, {{5, 5}, {1, 1}, {2, 2}, {1, 1}, {0, 0}, {0, 0}}, false},
      8);
}

TYPED_TEST(CPULibraryTest, ConvLargerBatch) {
  // Enough work to share the samples across threads.
  runConvCase<TypeParam>(
      {40, 16, 8, 1, {{28, 28}, {3, 3}, {1, 1}, {1, 1}, {1, 1}, {1, 1}}, true},
      9);
}

TYPED_TEST(CPULibraryTest, ConvLargeImage) {
  // Two samples, each a sizable GEMM.
  runConvCase<TypeParam>(
      {2, 64, 4, 1, {{64, 64}, {3, 3}, {1, 1}, {1, 1}, {1, 1}, {1, 1}}, false},
      10);
}

TYPED_TEST(CPULibraryTest, ConvFoldedBatch) {
  // Small planes (P < 256): the batch is folded into the GEMMs' columns,
  // and these GEMMs are large enough to be cut into blocks across threads
  // (96 x 64 x 288 and its transposes); a strided 1x1 and a 3-D case too.
  runConvCase<TypeParam>(
      {4, 32, 96, 1, {{4, 4}, {3, 3}, {1, 1}, {1, 1}, {1, 1}, {1, 1}}, true},
      13);
  runConvCase<TypeParam>(
      {5, 24, 40, 1, {{6, 6}, {1, 1}, {2, 2}, {1, 1}, {0, 0}, {0, 0}}, true},
      14);
  runConvCase<TypeParam>(
      {3,
       3,
       5,
       1,
       {{3, 4, 5}, {2, 2, 3}, {1, 1, 2}, {1, 2, 1}, {0, 1, 1}, {1, 0, 1}},
       false},
      15);
}

TYPED_TEST(CPULibraryTest, ConvDepthwise) {
  // One input channel per group: the direct path. Stride 1 and 2 (MobileNet),
  // a channel multiplier of 2, dilation with asymmetric padding, 1-D and 3-D.
  // The filter gradient works in blocks of 8 channels (AVX2 for float where
  // the CPU has it): 12 channels make a full block and a partial one, 24 make
  // three, on planes whose sizes are not multiples of 8.
  runConvCase<TypeParam>(
      {2, 12, 12, 12, {{5, 7}, {3, 3}, {2, 1}, {1, 1}, {1, 1}, {1, 1}}, false},
      22);
  runConvCase<TypeParam>(
      {3, 24, 24, 24, {{9, 10}, {3, 3}, {1, 1}, {1, 1}, {1, 1}, {1, 1}}, true},
      23);
  runConvCase<TypeParam>(
      {3, 8, 8, 8, {{7, 6}, {3, 3}, {1, 1}, {1, 1}, {1, 1}, {1, 1}}, true}, 16);
  runConvCase<TypeParam>(
      {2, 6, 6, 6, {{9, 8}, {3, 3}, {2, 2}, {1, 1}, {1, 1}, {1, 1}}, false},
      17);
  runConvCase<TypeParam>(
      {2, 4, 8, 4, {{8, 9}, {3, 2}, {1, 2}, {2, 1}, {2, 0}, {1, 2}}, true}, 18);
  runConvCase<TypeParam>({3, 3, 6, 3, {{11}, {4}, {3}, {1}, {2}, {0}}, false},
                         19);
  runConvCase<TypeParam>(
      {2,
       2,
       2,
       2,
       {{4, 5, 6}, {2, 3, 3}, {1, 2, 2}, {2, 1, 1}, {1, 0, 1}, {0, 1, 2}},
       true},
      20);
}

TYPED_TEST(CPULibraryTest, ConvGradFilterParts) {
  // Filter gradients with at least 128 output positions in the batch run on
  // oneDNN in fixed parts of the output channels, each reading its slice of
  // dy in place: 64 channels in 4 parts; 48 in 2 parts of 24, with a
  // stride, dilation and asymmetric padding; 32 in 2 parts in 1-D; one
  // part in 3-D.
  runConvCase<TypeParam>(
      {3, 8, 64, 1, {{10, 10}, {3, 3}, {1, 1}, {1, 1}, {1, 1}, {1, 1}}, false},
      21);
  runConvCase<TypeParam>(
      {3, 5, 48, 1, {{13, 11}, {3, 2}, {2, 1}, {1, 2}, {1, 0}, {0, 1}}, true},
      22);
  runConvCase<TypeParam>({8, 3, 32, 1, {{40}, {5}, {2}, {1}, {2}, {2}}, false},
                         23);
  runConvCase<TypeParam>(
      {2,
       2,
       16,
       1,
       {{6, 6, 5}, {3, 3, 2}, {1, 1, 1}, {1, 1, 1}, {1, 1, 0}, {1, 1, 1}},
       false},
      24);
}

TYPED_TEST(CPULibraryTest, ConvTapGemms) {
  // Stride-1 filter gradients on planes of at most 4 positions run as one
  // GEMM per kernel tap and run of positions: a padded 3x3 on 2x2 (96
  // output channels: three blocks of rows); a 1x1 plane, where only the
  // middle tap reaches the input and the other eight are zero; a 2x3 kernel
  // with asymmetric padding on a 2x2 input (2x1 outputs, a tap without
  // runs); 1-D with 3 outputs. The forward and input gradient of each take
  // the other paths.
  runConvCase<TypeParam>(
      {3, 40, 96, 1, {{2, 2}, {3, 3}, {1, 1}, {1, 1}, {1, 1}, {1, 1}}, true},
      25);
  runConvCase<TypeParam>(
      {4, 8, 16, 1, {{1, 1}, {3, 3}, {1, 1}, {1, 1}, {1, 1}, {1, 1}}, false},
      26);
  runConvCase<TypeParam>(
      {2, 5, 7, 1, {{2, 2}, {2, 3}, {1, 1}, {1, 1}, {1, 1}, {0, 0}}, false},
      27);
  runConvCase<TypeParam>({3, 6, 4, 1, {{3}, {3}, {1}, {1}, {1}, {1}}, true},
                         28);
}

TYPED_TEST(CPULibraryTest, ConvThreadCounts) {
  // One thread (BLAS threaded, samples in order), and more threads than
  // samples (some workers see none); then a batch that the filter gradient
  // sums in several chunks; then a folded batch whose GEMMs are cut into
  // blocks; then a depthwise call; then a filter gradient in four oneDNN
  // parts; then tap GEMMs in three blocks of rows. The bits do not depend on
  // the thread count.
  const ConvCase cases[] = {
      {2, 8, 16, 1, {{20, 20}, {3, 3}, {1, 1}, {1, 1}, {1, 1}, {1, 1}}, true},
      {3, 8, 64, 1, {{10, 10}, {3, 3}, {1, 1}, {1, 1}, {1, 1}, {1, 1}}, false},
      {19, 4, 6, 1, {{12, 12}, {3, 3}, {1, 1}, {1, 1}, {0, 0}, {0, 0}}, false},
      {4, 32, 96, 1, {{4, 4}, {3, 3}, {1, 1}, {1, 1}, {1, 1}, {1, 1}}, true},
      {5, 48, 48, 48, {{9, 9}, {3, 3}, {2, 2}, {1, 1}, {1, 1}, {1, 1}}, false},
      {8, 64, 96, 1, {{2, 2}, {3, 3}, {1, 1}, {1, 1}, {1, 1}, {1, 1}}, false},
  };
  unsigned seed = 11;
  for (const ConvCase &c : cases) {
    expectSameBitsAcrossThreads([&] { return runConvCase<TypeParam>(c, seed); });
    ++seed;
  }
}

//===----------------------------------------------------------------------===//
// Pools
//===----------------------------------------------------------------------===//

struct PoolCase {
  int64_t n, c;
  Win w;
};

/// A max pool's descriptor; an average pool's adds countIncludePad.
Ints poolInts(int64_t et, const PoolCase &p) {
  calls::PoolCall call;
  call.types = types(et);
  call.n = p.n, call.c = p.c;
  call.window = p.w.window();
  return call.encode();
}

template <typename T> void runMaxPoolCase(const PoolCase &pc, unsigned seed) {
  std::mt19937 rng(seed);
  int64_t in = product(pc.w.in), p = product(pc.w.out()), kSize = product(pc.w.k);
  int64_t planes = pc.n * pc.c;
  Values x = tiedValues(rng, planes * in);
  Values dy = rounded<T>(randomValues(rng, planes * p));
  std::vector<Tap> taps = allTaps(pc.w);
  Values y(planes * p), dx(planes * in, 0.0);
  for (int64_t pl = 0; pl < planes; ++pl)
    for (int64_t o = 0; o < p; ++o) {
      double acc = -std::numeric_limits<double>::infinity();
      int64_t best = -1;
      for (int64_t kl = 0; kl < kSize; ++kl) {
        const Tap &t = taps[o * kSize + kl];
        if (!t.inside)
          continue;
        int64_t at = pl * in + t.index;
        acc = std::max(acc, x[at]);
        if (best < 0 || x[at] > x[best])
          best = at;
      }
      y[pl * p + o] = acc;
      if (best >= 0)
        dx[best] += dy[pl * p + o];
    }
  Ints ints = poolInts(etype<T>(), pc);
  std::vector<Bytes> fwd{toBytes<T>(x), toBytes<T>(Values(planes * p, 7.0))};
  invoke("cpu.max_pool", ints, fwd);
  expectNear<T>(fromBytes<T>(fwd[1]), y, "max_pool");
  std::vector<Bytes> bwd{toBytes<T>(x), toBytes<T>(dy),
                         toBytes<T>(Values(planes * in, 7.0))};
  invoke("cpu.max_pool_grad", ints, bwd);
  expectNear<T>(fromBytes<T>(bwd[2]), dx, "max_pool_grad");
}

template <typename T>
void runAvgPoolCase(const PoolCase &pc, bool includePad, unsigned seed) {
  std::mt19937 rng(seed);
  int64_t in = product(pc.w.in), p = product(pc.w.out()), kSize = product(pc.w.k);
  int64_t planes = pc.n * pc.c;
  Values x = rounded<T>(randomValues(rng, planes * in));
  Values dy = rounded<T>(randomValues(rng, planes * p));
  std::vector<Tap> taps = allTaps(pc.w);
  Values y(planes * p), dx(planes * in, 0.0);
  for (int64_t pl = 0; pl < planes; ++pl)
    for (int64_t o = 0; o < p; ++o) {
      double acc = 0.0;
      int64_t count = 0;
      for (int64_t kl = 0; kl < kSize; ++kl) {
        const Tap &t = taps[o * kSize + kl];
        if (t.inside) {
          acc += x[pl * in + t.index];
          ++count;
        } else if (includePad && t.inPadded) {
          ++count;
        }
      }
      count = std::max<int64_t>(count, 1);
      y[pl * p + o] = acc / count;
      for (int64_t kl = 0; kl < kSize; ++kl) {
        const Tap &t = taps[o * kSize + kl];
        if (t.inside)
          dx[pl * in + t.index] += dy[pl * p + o] / count;
      }
    }
  Ints ints = poolInts(etype<T>(), pc);
  ints.push_back(includePad ? 1 : 0);
  std::vector<Bytes> fwd{toBytes<T>(x), toBytes<T>(Values(planes * p, 7.0))};
  invoke("cpu.avg_pool", ints, fwd);
  expectNear<T>(fromBytes<T>(fwd[1]), y, "avg_pool");
  std::vector<Bytes> bwd{toBytes<T>(dy), toBytes<T>(Values(planes * in, 7.0))};
  invoke("cpu.avg_pool_grad", ints, bwd);
  expectNear<T>(fromBytes<T>(bwd[1]), dx, "avg_pool_grad");
}

const PoolCase kPoolCases[] = {
    {2, 3, {{6, 6}, {2, 2}, {2, 2}, {1, 1}, {0, 0}, {0, 0}}},
    {2, 2, {{7, 8}, {3, 3}, {1, 2}, {1, 1}, {1, 1}, {1, 1}}},
    {1, 3, {{9, 7}, {3, 2}, {2, 1}, {2, 2}, {1, 0}, {2, 1}}},
    // Windows that end in the high padding only.
    {1, 2, {{5, 5}, {3, 3}, {2, 2}, {1, 1}, {0, 0}, {2, 2}}},
    {2, 3, {{11}, {3}, {2}, {1}, {1}, {2}}},
    {1, 2, {{12}, {2}, {3}, {3}, {0}, {1}}},
    {1, 2, {{4, 5, 4}, {2, 2, 3}, {2, 1, 1}, {1, 2, 1}, {0, 1, 1}, {1, 0, 1}}},
    // Windows inside the input (the plain-window path): overlapping, and
    // a stride that leaves the last rows and columns out.
    {2, 3, {{7, 6}, {3, 2}, {1, 2}, {1, 1}, {0, 0}, {0, 0}}},
    {1, 2, {{9, 9}, {2, 2}, {3, 3}, {1, 1}, {0, 0}, {0, 0}}},
};

TYPED_TEST(CPULibraryTest, MaxPool) {
  unsigned seed = 20;
  for (const PoolCase &pc : kPoolCases) {
    SCOPED_TRACE(seed);
    runMaxPoolCase<TypeParam>(pc, seed++);
  }
}

TYPED_TEST(CPULibraryTest, AvgPool) {
  unsigned seed = 40;
  for (const PoolCase &pc : kPoolCases)
    for (bool includePad : {false, true}) {
      SCOPED_TRACE(seed);
      runAvgPoolCase<TypeParam>(pc, includePad, seed++);
    }
}

TYPED_TEST(CPULibraryTest, MaxPoolTiesGoToTheFirstMaximum) {
  using T = TypeParam;
  // One 2x2 window of equal values: the gradient goes to element 0.
  Ints ints = poolInts(etype<T>(), {1, 1, {{2, 2}, {2, 2}, {1, 1}, {1, 1},
                                           {0, 0}, {0, 0}}});
  std::vector<Bytes> bufs{toBytes<T>({3, 3, 3, 3}), toBytes<T>({5}),
                          toBytes<T>({9, 9, 9, 9})};
  invoke("cpu.max_pool_grad", ints, bufs);
  EXPECT_EQ(fromBytes<T>(bufs[2]), (Values{5, 0, 0, 0}));
}

//===----------------------------------------------------------------------===//
// Matmul
//===----------------------------------------------------------------------===//

struct MatmulCase {
  Ints outBatch, lhsBatch, rhsBatch;
  int64_t m, n, k;
  bool ta, tb, accumulate;
};

/// Checks one matmul against a double loop; returns the output's bytes.
template <typename T> Bytes runMatmulCase(const MatmulCase &c, unsigned seed) {
  std::mt19937 rng(seed);
  int64_t batch = product(c.outBatch);
  int64_t lSize = product(c.lhsBatch) * c.m * c.k;
  int64_t rSize = product(c.rhsBatch) * c.k * c.n;
  Values a = rounded<T>(randomValues(rng, lSize));
  Values b = rounded<T>(randomValues(rng, rSize));
  Values y0 = rounded<T>(randomValues(rng, batch * c.m * c.n));
  Values y(batch * c.m * c.n);
  for (int64_t bi = 0; bi < batch; ++bi) {
    Ints idx = unravel(bi, c.outBatch);
    int64_t la = 0, lb = 0;
    for (size_t d = 0; d < idx.size(); ++d) {
      la = la * c.lhsBatch[d] + (c.lhsBatch[d] == 1 ? 0 : idx[d]);
      lb = lb * c.rhsBatch[d] + (c.rhsBatch[d] == 1 ? 0 : idx[d]);
    }
    for (int64_t i = 0; i < c.m; ++i)
      for (int64_t j = 0; j < c.n; ++j) {
        double sum = 0.0;
        for (int64_t kk = 0; kk < c.k; ++kk)
          sum += a[la * c.m * c.k + (c.ta ? kk * c.m + i : i * c.k + kk)] *
                 b[lb * c.k * c.n + (c.tb ? j * c.k + kk : kk * c.n + j)];
        int64_t at = (bi * c.m + i) * c.n + j;
        y[at] = (c.accumulate ? y0[at] : 0.0) + sum;
      }
  }
  calls::MatmulCall call;
  call.types = types(etype<T>());
  call.outBatch = c.outBatch, call.lhsBatch = c.lhsBatch,
  call.rhsBatch = c.rhsBatch;
  call.m = c.m, call.n = c.n, call.k = c.k;
  call.transposeLhs = c.ta, call.transposeRhs = c.tb;
  call.accumulateOut = c.accumulate;
  Ints ints = call.encode();
  std::vector<Bytes> bufs{toBytes<T>(a), toBytes<T>(b),
                          toBytes<T>(c.accumulate ? y0 : Values(y.size(), 7))};
  invoke("cpu.matmul", ints, bufs);
  expectNear<T>(fromBytes<T>(bufs[2]), y, "matmul");
  return bufs[2];
}

TYPED_TEST(CPULibraryTest, Matmul) {
  const MatmulCase cases[] = {
      {{}, {}, {}, 5, 7, 3, false, false, false},
      {{}, {}, {}, 4, 6, 9, true, false, false},
      {{}, {}, {}, 4, 6, 9, false, true, true},
      {{}, {}, {}, 3, 2, 8, true, true, false},
      // The batch folds into M.
      {{2, 3}, {2, 3}, {1, 1}, 4, 5, 6, false, false, false},
      {{3}, {3}, {1}, 4, 5, 6, false, true, true},
      // Broadcast batches.
      {{2, 3}, {2, 1}, {1, 3}, 3, 4, 5, false, false, false},
      {{2, 3}, {1, 3}, {2, 3}, 3, 4, 5, true, true, true},
      {{4}, {1}, {4}, 2, 3, 4, false, true, false},
      {{2, 2}, {1, 1}, {1, 1}, 2, 3, 4, false, false, true},
      {{2, 3}, {2, 3}, {1, 1}, 4, 5, 6, true, false, false},
  };
  unsigned seed = 60;
  for (const MatmulCase &c : cases) {
    SCOPED_TRACE(seed);
    runMatmulCase<TypeParam>(c, seed++);
  }
}

TYPED_TEST(CPULibraryTest, MatmulSplitOverThreads) {
  // Large enough to split: by rows (M > N), by columns, with transposes
  // and accumulation, and independent batches. The bits do not depend on
  // the thread count.
  const MatmulCase cases[] = {
      {{}, {}, {}, 150, 70, 120, false, false, false},
      {{}, {}, {}, 70, 150, 120, true, true, true},
      {{}, {}, {}, 150, 70, 120, true, false, true},
      {{}, {}, {}, 70, 150, 120, false, true, false},
      {{4}, {4}, {4}, 64, 64, 80, true, false, false},
      {{2, 3}, {1, 3}, {2, 1}, 48, 40, 96, false, true, true},
  };
  unsigned seed = 80;
  for (const MatmulCase &c : cases) {
    SCOPED_TRACE(seed);
    expectSameBitsAcrossThreads(
        [&] { return runMatmulCase<TypeParam>(c, seed); });
    ++seed;
  }
}

//===----------------------------------------------------------------------===//
// Scatter-add
//===----------------------------------------------------------------------===//

template <typename T, typename I>
void runScatterAddCase(int64_t outer, int64_t axis, int64_t inner,
                       const std::vector<I> &indices, unsigned seed) {
  std::mt19937 rng(seed);
  int64_t count = indices.size();
  Values u = rounded<T>(randomValues(rng, outer * count * inner));
  Values y(outer * axis * inner, 0.0);
  for (int64_t o = 0; o < outer; ++o)
    for (int64_t p = 0; p < count; ++p) {
      int64_t v = indices[p];
      if (v < -axis || v >= axis)
        continue;
      if (v < 0)
        v += axis;
      for (int64_t i = 0; i < inner; ++i)
        y[(o * axis + v) * inner + i] += u[(o * count + p) * inner + i];
    }
  Bytes idx(indices.size() * sizeof(I));
  if (!idx.empty())
    std::memcpy(idx.data(), indices.data(), idx.size());
  std::vector<Bytes> bufs{idx, toBytes<T>(u), toBytes<T>(Values(y.size(), 7))};
  calls::ScatterAddCall call;
  call.types = types(etype<T>());
  call.indexElement = sizeof(I) == 8 ? calls::kI64 : calls::kI32;
  call.outer = outer, call.outAxis = axis, call.numIndices = count,
  call.inner = inner;
  invoke("cpu.scatter_add", call.encode(), bufs);
  expectNear<T>(fromBytes<T>(bufs[2]), y, "scatter_add");
}

TYPED_TEST(CPULibraryTest, ScatterAdd) {
  using T = TypeParam;
  // Repeated, negative and (skipped) out-of-range indices.
  runScatterAddCase<T, int64_t>(1, 6, 4, {0, 5, 0, -1, 2, 6, -7, 3}, 80);
  runScatterAddCase<T, int32_t>(3, 5, 2, {4, -5, 1, 1}, 81);
  runScatterAddCase<T, int64_t>(2, 4, 1, {3, 3, -2}, 82);
  runScatterAddCase<T, int32_t>(2, 3, 3, {}, 83);
}

//===----------------------------------------------------------------------===//
// k-th smallest
//===----------------------------------------------------------------------===//

/// IEEE 754 totalOrder on doubles (a float's order survives widening).
bool totalLess(double a, double b) {
  auto key = [](double v) {
    uint64_t u;
    std::memcpy(&u, &v, sizeof u);
    return (u >> 63) ? ~u : u | (uint64_t{1} << 63);
  };
  return key(a) < key(b);
}

/// Runs `concat` of inputs with `widths` elements per row (`outer` rows)
/// and checks every output element against the inputs.
template <typename T>
void checkConcat(int64_t outer, const std::vector<int64_t> &widths,
                 unsigned seed) {
  std::mt19937 rng(seed);
  calls::ConcatCall call;
  call.types.element = call.types.accumulate = etype<T>();
  call.outer = outer;
  std::vector<Bytes> bufs;
  std::vector<Values> inputs;
  int64_t total = 0;
  for (int64_t w : widths) {
    inputs.push_back(rounded<T>(randomValues(rng, outer * w)));
    bufs.push_back(toBytes<T>(inputs.back()));
    call.rowBytes.push_back(w * static_cast<int64_t>(sizeof(T)));
    total += w;
  }
  bufs.push_back(toBytes<T>(Values(outer * total, 7.0)));
  invoke("cpu.concat", call.encode(), bufs);
  Values out = fromBytes<T>(bufs.back()), want;
  for (int64_t o = 0; o < outer; ++o)
    for (size_t i = 0; i < widths.size(); ++i)
      want.insert(want.end(), inputs[i].begin() + o * widths[i],
                  inputs[i].begin() + (o + 1) * widths[i]);
  EXPECT_TRUE(out == want);
}

TYPED_TEST(CPULibraryTest, Concat) {
  // Rows of 2, 0 (an empty input), 5 and 1 elements; one input; one row;
  // then rows long enough to be shared over threads.
  checkConcat<TypeParam>(3, {2, 0, 5, 1}, 91);
  checkConcat<TypeParam>(4, {6}, 92);
  checkConcat<TypeParam>(1, {3, 4}, 93);
  setLibraryThreads(2);
  checkConcat<TypeParam>(16, {64 * 256, 32 * 256, 32 * 256}, 94);
  setLibraryThreads(0);
}

TYPED_TEST(CPULibraryTest, ConcatIntegers) {
  // A byte copy: i1 (one byte each) and i64 element types too, whatever
  // the float type of the suite.
  calls::ConcatCall call;
  call.types.element = call.types.accumulate = calls::kI1;
  call.outer = 2;
  call.rowBytes = {1, 3};
  std::vector<Bytes> bufs{{1, 0}, {0, 1, 1, 1, 0, 0}, Bytes(8, 9)};
  invoke("cpu.concat", call.encode(), bufs);
  EXPECT_EQ(bufs[2], (Bytes{1, 0, 1, 1, 0, 1, 0, 0}));
  call.types.element = call.types.accumulate = calls::kI64;
  call.outer = 1;
  call.rowBytes = {8, 8};
  int64_t a = -5, b = int64_t(1) << 40;
  bufs = {Bytes(8), Bytes(8), Bytes(16)};
  std::memcpy(bufs[0].data(), &a, 8);
  std::memcpy(bufs[1].data(), &b, 8);
  invoke("cpu.concat", call.encode(), bufs);
  int64_t got[2];
  std::memcpy(got, bufs[2].data(), 16);
  EXPECT_EQ(got[0], a);
  EXPECT_EQ(got[1], b);
}

template <typename T> double kthOf(const Values &x, int64_t k) {
  Bytes out = toBytes<T>(Values{7});
  calls::KthSmallestCall call;
  call.types = types(etype<T>());
  call.count = static_cast<int64_t>(x.size());
  Bytes kb(8);
  std::memcpy(kb.data(), &k, 8);
  std::vector<Bytes> bufs{toBytes<T>(x), kb, out};
  invoke("cpu.kth_smallest", call.encode(), bufs);
  return fromBytes<T>(bufs[2])[0];
}

TYPED_TEST(CPULibraryTest, KthSmallest) {
  using T = TypeParam;
  std::mt19937 rng(90);
  // Ties, signed zeros, a NaN of each sign, infinities.
  Values x = rounded<T>(tiedValues(rng, 40));
  Values y = rounded<T>(randomValues(rng, 300));
  x.insert(x.end(), y.begin(), y.end());
  x.insert(x.end(), {-0.0, 0.0, -0.0, INFINITY, -INFINITY, NAN, -NAN});
  std::shuffle(x.begin(), x.end(), rng);
  Values sorted = x;
  std::sort(sorted.begin(), sorted.end(), totalLess);
  int64_t n = static_cast<int64_t>(x.size());
  for (int64_t k :
       {int64_t(1), int64_t(2), int64_t(3), n / 3, n / 2, n - 2, n - 1, n}) {
    double got = kthOf<T>(x, k), want = sorted[k - 1];
    SCOPED_TRACE("k = " + std::to_string(k));
    if (std::isnan(want)) {
      EXPECT_TRUE(std::isnan(got));
      EXPECT_EQ(std::signbit(got), std::signbit(want));
    } else {
      EXPECT_EQ(got, want);
      EXPECT_EQ(std::signbit(got), std::signbit(want));
    }
  }
  // Outside 1..n: -inf (keep all) and +inf (keep none).
  EXPECT_EQ(kthOf<T>(x, 0), -INFINITY);
  EXPECT_EQ(kthOf<T>(x, -5), -INFINITY);
  EXPECT_EQ(kthOf<T>(x, n + 1), INFINITY);
  EXPECT_EQ(kthOf<T>(Values{0.5}, 1), 0.5);
}

#ifndef TRAINOPT_TEST_CUDA_LIBRARY
//===----------------------------------------------------------------------===//
// Load-time checks
//===----------------------------------------------------------------------===//

std::string checkError(const std::string &name, const Ints &ints,
                       const std::vector<uint64_t> &sizes) {
  std::string error;
  if (checkLibraryCall(name, ints.data(), ints.size(), nullptr, 0,
                       sizes.data(), sizes.size(), error))
    return "";
  return error;
}

#ifndef TRAINOPT_TEST_CUDA_LIBRARY
TEST(CPULibraryKernelsTest, OneDnnLoads) {
  // The build needs oneDNN's header (libdnnl-dev), which brings the library:
  // where it does not load, the oneDNN half of the convolution tests would
  // silently test the builtin kernels twice.
  std::string error;
  if (!kBuildLoadsOneDnn)
    GTEST_SKIP() << "sanitizer builds do not load oneDNN: clang 14's "
                    "LeakSanitizer crashes on its OpenMP threads at exit "
                    "(CPULibrary.h); the convolution tests check the builtin "
                    "kernels here and both kernels in the regular build";
  EXPECT_TRUE(setConvKernels(ConvKernels::OneDnn, error)) << error;
  EXPECT_TRUE(setConvKernels(ConvKernels::Auto, error)) << error;
}
#endif

TEST(CPULibraryCheckTest, UnknownFunction) {
  EXPECT_EQ(findLibraryFunction("nope"), nullptr);
  EXPECT_NE(checkError("nope", {}, {}), "");
}

TEST(CPULibraryCheckTest, Matmul) {
  // [F32, F32, R = 1, outBatch 2, lhsBatch 2, rhsBatch 1, M 3, N 4, K 5,
  //  transposes, accumulateOut]
  Ints ints{2, 2, 1, 2, 2, 1, 3, 4, 5, 0, 0, 0};
  std::vector<uint64_t> sizes{2 * 3 * 5 * 4, 5 * 4 * 4, 2 * 3 * 4 * 4};
  EXPECT_EQ(checkError("cpu.matmul", ints, sizes), "");
  // Too few ints.
  EXPECT_NE(checkError("cpu.matmul", Ints(ints.begin(), ints.end() - 1), sizes),
            "");
  EXPECT_NE(checkError("cpu.matmul", {2}, sizes), "");
  // A buffer smaller than implied.
  std::vector<uint64_t> small = sizes;
  small[1] -= 1;
  std::string error = checkError("cpu.matmul", ints, small);
  EXPECT_NE(error.find("cpu.matmul"), std::string::npos) << error;
  EXPECT_NE(error.find("rhs"), std::string::npos) << error;
  // An unknown element type.
  Ints bad = ints;
  bad[0] = bad[1] = 5;
  EXPECT_NE(checkError("cpu.matmul", bad, sizes), "");
  // An accumulate type this library does not implement.
  bad = ints;
  bad[1] = 1;
  error = checkError("cpu.matmul", bad, sizes);
  EXPECT_NE(error.find("accumulates in element type 1"), std::string::npos)
      << error;
  // Negative sizes and batch dims that do not broadcast.
  bad = ints;
  bad[7] = -4;
  EXPECT_NE(checkError("cpu.matmul", bad, sizes), "");
  bad = ints;
  bad[3] = -2;
  EXPECT_NE(checkError("cpu.matmul", bad, sizes), "");
  bad = ints;
  bad[4] = 3;
  EXPECT_NE(checkError("cpu.matmul", bad, sizes), "");
  // Overflowing sizes.
  bad = ints;
  bad[7] = bad[8] = int64_t(1) << 31;
  EXPECT_NE(checkError("cpu.matmul", bad, sizes), "");
  // A float arg.
  std::string e;
  double f = 1.0;
  EXPECT_FALSE(checkLibraryCall("cpu.matmul", ints.data(), ints.size(), &f, 1,
                                sizes.data(), sizes.size(), e));
}

TEST(CPULibraryCheckTest, Conv) {
  ConvCase c{2, 4, 6, 2, {{9, 8}, {3, 2}, {2, 2}, {2, 1}, {1, 0}, {2, 1}}, true};
  Ints ints = convInts(2, c, true);
  uint64_t x = 2 * 4 * 9 * 8 * 4, w = 6 * 2 * 3 * 2 * 4, b = 6 * 4;
  Ints out = c.w.out();
  uint64_t y = 2 * 6 * out[0] * out[1] * 4;
  EXPECT_EQ(checkError("cpu.conv", ints, {x, w, b, y}), "");
  // The bias buffer is counted.
  EXPECT_NE(checkError("cpu.conv", ints, {x, w, y}), "");
  EXPECT_NE(checkError("cpu.conv", ints, {x, w, b, y - 1}), "");
  EXPECT_NE(checkError("cpu.conv", Ints(ints.begin(), ints.end() - 1),
                       {x, w, b, y}),
            "");
  // Not a float element type; f16 accumulating in f16 (only f32 is).
  Ints bad = ints;
  bad[0] = calls::kI64;
  EXPECT_NE(checkError("cpu.conv", bad, {x, w, b, y}), "");
  bad[0] = bad[1] = calls::kF16;
  EXPECT_NE(checkError("cpu.conv", bad, {x, w, b, y}), "");
  bad = ints;
  bad[3] = -2;
  EXPECT_NE(checkError("cpu.conv", bad, {x, w, b, y}), "");
  // groups must divide the channels.
  bad = ints;
  bad[6] = 4;
  EXPECT_NE(checkError("cpu.conv", bad, {x, w, b, y}), "");
  // A wrong output size, a negative pad, a zero stride.
  // (The window: S at 7, then its groups from 8.)
  bad = ints;
  bad[8 + 4] += 1;
  EXPECT_NE(checkError("cpu.conv", bad, {x, w, b, y}), "");
  bad = ints;
  bad[8 + 10] = -1;
  EXPECT_NE(checkError("cpu.conv", bad, {x, w, b, y}), "");
  bad = ints;
  bad[8 + 6] = 0;
  EXPECT_NE(checkError("cpu.conv", bad, {x, w, b, y}), "");
  // S out of range.
  bad = ints;
  bad[7] = 4;
  EXPECT_NE(checkError("cpu.conv", bad, {x, w, b, y}), "");
  // Gradients take no bias.
  Ints grad = convInts(2, c, false);
  EXPECT_EQ(checkError("cpu.conv_grad_input", grad, {y, w, x}), "");
  EXPECT_NE(checkError("cpu.conv_grad_input", grad, {y, w, x - 4}), "");
  EXPECT_EQ(checkError("cpu.conv_grad_filter", grad, {x, y, w}), "");
  EXPECT_NE(checkError("cpu.conv_grad_filter", grad, {x, y, w - 1}), "");
  EXPECT_NE(checkError("cpu.conv_grad_filter", ints, {x, y, w}), "");
}

TEST(CPULibraryCheckTest, Pools) {
  PoolCase p{2, 3, {{7, 8}, {3, 3}, {1, 2}, {1, 1}, {1, 1}, {1, 1}}};
  Ints ints = poolInts(1, p);
  Ints out = p.w.out();
  uint64_t x = 2 * 3 * 7 * 8 * 8, y = 2 * 3 * out[0] * out[1] * 8;
  EXPECT_EQ(checkError("cpu.max_pool", ints, {x, y}), "");
  EXPECT_EQ(checkError("cpu.max_pool_grad", ints, {x, y, x}), "");
  EXPECT_NE(checkError("cpu.max_pool_grad", ints, {x, y - 8, x}), "");
  EXPECT_NE(checkError("cpu.max_pool", ints, {x - 1, y}), "");
  // avg_pool wants countIncludePad.
  EXPECT_NE(checkError("cpu.avg_pool", ints, {x, y}), "");
  Ints avg = ints;
  avg.push_back(1);
  EXPECT_EQ(checkError("cpu.avg_pool", avg, {x, y}), "");
  EXPECT_EQ(checkError("cpu.avg_pool_grad", avg, {y, x}), "");
  EXPECT_NE(checkError("cpu.avg_pool_grad", avg, {x, y}), "");
  avg.back() = 2;
  EXPECT_NE(checkError("cpu.avg_pool", avg, {x, y}), "");
  Ints bad = ints;
  bad[2] = 0;
  EXPECT_NE(checkError("cpu.max_pool", bad, {x, y}), "");
  bad = ints;
  bad[0] = 0;
  EXPECT_NE(checkError("cpu.max_pool", bad, {x, y}), "");
  bad = ints;
  bad[5 + 2] = -3;
  EXPECT_NE(checkError("cpu.max_pool", bad, {x, y}), "");
}

TEST(CPULibraryCheckTest, ScatterAdd) {
  Ints ints{2, 2, 5, 2, 10, 3, 4};
  std::vector<uint64_t> sizes{3 * 8, 2 * 3 * 4 * 4, 2 * 10 * 4 * 4};
  EXPECT_EQ(checkError("cpu.scatter_add", ints, sizes), "");
  EXPECT_NE(checkError("cpu.scatter_add", {2, 2, 5, 2, 10, 3}, sizes), "");
  Ints bad = ints;
  bad[2] = 2;
  EXPECT_NE(checkError("cpu.scatter_add", bad, sizes), "");
  bad = ints;
  bad[0] = bad[1] = 6;
  EXPECT_NE(checkError("cpu.scatter_add", bad, sizes), "");
  bad = ints;
  bad[5] = -1;
  EXPECT_NE(checkError("cpu.scatter_add", bad, sizes), "");
  // I32 indices need half the bytes.
  bad = ints;
  bad[2] = 6;
  EXPECT_EQ(checkError("cpu.scatter_add", bad, {12, sizes[1], sizes[2]}), "");
  EXPECT_NE(checkError("cpu.scatter_add", ints, {12, sizes[1], sizes[2]}), "");
  EXPECT_NE(checkError("cpu.scatter_add", ints, {sizes[0], sizes[1], 10}), "");
  bad = ints;
  bad[3] = bad[4] = bad[6] = int64_t(1) << 40;
  EXPECT_NE(checkError("cpu.scatter_add", bad, sizes), "");
}

TEST(CPULibraryCheckTest, Concat) {
  // [F32, F32, outer 3, k 2, row bytes 8 and 12]
  Ints ints{2, 2, 3, 2, 8, 12};
  std::vector<uint64_t> sizes{24, 36, 60};
  EXPECT_EQ(checkError("cpu.concat", ints, sizes), "");
  // Buffers counted and sized; the output holds every row.
  EXPECT_NE(checkError("cpu.concat", ints, {24, 36}), "");
  EXPECT_NE(checkError("cpu.concat", ints, {24, 35, 60}), "");
  EXPECT_NE(checkError("cpu.concat", ints, {24, 36, 59}), "");
  // No inputs, more inputs than ints, a negative row or outer, an unknown
  // element type, an element accumulated in another.
  EXPECT_NE(checkError("cpu.concat", {2, 2, 3, 0}, {0}), "");
  EXPECT_NE(checkError("cpu.concat", {2, 2, 3, 1000000000}, sizes), "");
  EXPECT_NE(checkError("cpu.concat", {2, 2, 3, 3, 8, 12}, sizes), "");
  EXPECT_NE(checkError("cpu.concat", {2, 2, 3, 2, -8, 12}, sizes), "");
  EXPECT_NE(checkError("cpu.concat", {2, 2, -3, 2, 8, 12}, sizes), "");
  EXPECT_NE(checkError("cpu.concat", {9, 9, 3, 2, 8, 12}, sizes), "");
  EXPECT_NE(checkError("cpu.concat", {3, 2, 3, 2, 8, 12}, sizes), "");
  // Sizes that overflow int64.
  EXPECT_NE(checkError("cpu.concat",
                       {2, 2, int64_t(1) << 40, 2, int64_t(1) << 40, 8}, sizes),
            "");
  EXPECT_NE(checkError("cpu.concat", {2, 2, 1, 2, INT64_MAX, 8}, sizes), "");
}

TEST(CPULibraryCheckTest, KthSmallest) {
  Ints ints{2, 2, 100};
  std::vector<uint64_t> sizes{400, 8, 4};
  EXPECT_EQ(checkError("cpu.kth_smallest", ints, sizes), "");
  EXPECT_NE(checkError("cpu.kth_smallest", {2, 2}, sizes), "");
  EXPECT_NE(checkError("cpu.kth_smallest", {2, 2, 0}, sizes), "");
  EXPECT_NE(checkError("cpu.kth_smallest", {2, 2, 101}, sizes), "");
  EXPECT_NE(checkError("cpu.kth_smallest", ints, {400, 4, 4}), "");
  EXPECT_NE(checkError("cpu.kth_smallest", ints, {400, 8, 0}), "");
  EXPECT_NE(checkError("cpu.kth_smallest", {2, 2, int64_t(1) << 62}, sizes),
            "");
}

#endif // TRAINOPT_TEST_CUDA_LIBRARY

} // namespace
