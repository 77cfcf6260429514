//===- LibraryPlan.cpp - how library calls map onto cuBLASLt/cuDNN --------===//
//
/// \file
/// Implements CUDALibraryPlan.h.
//
//===----------------------------------------------------------------------===//

#include "trainopt/Runtime/CUDALibraryPlan.h"

#include <climits>

using namespace trainopt::rt;

MatmulBatchPlan
trainopt::rt::planMatmulBatches(const calls::MatmulCall &call) {
  int64_t r = call.outBatch.size();
  const int64_t *outB = call.outBatch.data(), *lB = call.lhsBatch.data(),
                *rB = call.rhsBatch.data();
  int64_t m = call.m, n = call.n, k = call.k;

  // Each batch dim with its element stride in out, lhs and rhs (0 where
  // the operand broadcasts), innermost last; unit dims dropped.
  struct Dim {
    int64_t count, out, lhs, rhs;
  };
  std::vector<Dim> dims;
  int64_t so = m * n, sl = m * k, sr = k * n;
  for (int64_t d = r - 1; d >= 0; --d) {
    if (outB[d] != 1)
      dims.insert(dims.begin(),
                  Dim{outB[d], so, lB[d] == 1 ? 0 : sl, rB[d] == 1 ? 0 : sr});
    so *= outB[d];
    sl *= lB[d];
    sr *= rB[d];
  }
  // Merge neighbours that one stride describes (innermost first).
  for (size_t i = dims.size(); i-- > 1;) {
    Dim &outer = dims[i - 1], &inner = dims[i];
    auto merges = [&](int64_t o, int64_t in) { return o == in * inner.count; };
    if (merges(outer.out, inner.out) && merges(outer.lhs, inner.lhs) &&
        merges(outer.rhs, inner.rhs)) {
      outer = Dim{outer.count * inner.count, inner.out, inner.lhs, inner.rhs};
      dims.erase(dims.begin() + i);
    }
  }
  MatmulBatchPlan plan;
  if (!dims.empty()) {
    const Dim &last = dims.back();
    plan.batch = last.count;
    plan.strideOut = last.out;
    plan.strideLhs = last.lhs;
    plan.strideRhs = last.rhs;
    dims.pop_back();
  }
  // The remaining dims are looped over, outermost slowest.
  plan.offsets.push_back({0, 0, 0});
  for (const Dim &d : dims) {
    std::vector<std::array<int64_t, 3>> next;
    for (const auto &o : plan.offsets)
      for (int64_t i = 0; i < d.count; ++i)
        next.push_back({o[0] + i * d.out, o[1] + i * d.lhs, o[2] + i * d.rhs});
    plan.offsets = std::move(next);
  }
  return plan;
}

bool trainopt::rt::planConv(const calls::ConvCall &call, ConvPlan &plan,
                            std::string &error) {
  const calls::Window &w = call.window;
  int64_t s = w.rank;
  plan.hasBias = call.hasBias;
  plan.n = call.n;
  plan.cin = call.cin;
  plan.cout = call.cout;
  plan.groups = call.groups;
  plan.dims = s == 1 ? 2 : static_cast<int>(s);
  int lead = plan.dims - static_cast<int>(s);
  auto fits = [&](int64_t v, const char *what) {
    if (v <= INT_MAX && v >= 0)
      return true;
    error = std::string("cuDNN takes ") + what + " as int; got " +
            std::to_string(v);
    return false;
  };
  for (int d = 0; d < plan.dims; ++d) {
    int64_t in = 1, k = 1, out = 1, stride = 1, dil = 1, padB = 0, padE = 0;
    if (d >= lead) {
      int64_t i = d - lead;
      in = w.in[i], k = w.kernel[i], out = w.out[i], stride = w.strides[i];
      dil = w.dilations[i], padB = w.padBegin[i], padE = w.padEnd[i];
    }
    if (!fits(in, "a spatial size") || !fits(k, "a kernel size") ||
        !fits(out, "an output size") || !fits(stride, "a stride") ||
        !fits(dil, "a dilation") || !fits(padB, "a padding"))
      return false;
    // cuDNN pads both ends by `pad`; with the begin padding the windows
    // start where ours do, and where the output sizes agree the windows
    // are the same (taps in either padding read zeros).
    int64_t span = in + 2 * padB - dil * (k - 1) - 1; // >= 0: one window fits
    int64_t cudnnOut = span < 0 ? 0 : span / stride + 1;
    if (cudnnOut != out) {
      error = "padding " + std::to_string(padB) + "/" + std::to_string(padE) +
              " of spatial dim " + std::to_string(d - lead) +
              " is not symmetric enough for cuDNN (it would give " +
              std::to_string(cudnnOut) + " outputs, the call expects " +
              std::to_string(out) + ")";
      return false;
    }
    plan.in[d] = static_cast<int>(in);
    plan.kernel[d] = static_cast<int>(k);
    plan.out[d] = static_cast<int>(out);
    plan.stride[d] = static_cast<int>(stride);
    plan.dilation[d] = static_cast<int>(dil);
    plan.pad[d] = static_cast<int>(padB);
  }
  return fits(plan.n, "the batch") && fits(plan.cin, "the input channels") &&
         fits(plan.cout, "the output channels") && fits(plan.groups, "groups");
}
