//===- LibraryCalls.h - typed descriptors of library calls ------*- C++ -*-===//
//
/// \file
/// The descriptors of the artifact's `LibraryCall` commands, typed: one
/// struct per call kind with `encode` (the compiler, ArtifactPlan.cpp) and
/// `decode` (the CPU and CUDA runtimes), so the integer layout is written
/// once. Plain C++ (no MLIR, no protobuf): the runtime includes it.
///
/// Every descriptor starts with [element, accumulate]: the element type of
/// the float buffers and the type the call accumulates sums in, both as
/// artifact.proto's ElementType codes. A runtime refuses a pair it does not
/// implement (today: F64 and F32 accumulating in themselves, BF16 and F16 in
/// F32).
///
/// `decode` checks the structure only (the count of ints, ranks, flags);
/// sizes, overflow and buffer sizes are the runtime's load-time checks
/// (CPULibrary.h `checkLibraryCall`).
//
//===----------------------------------------------------------------------===//

#ifndef TRAINOPT_ARTIFACT_LIBRARYCALLS_H
#define TRAINOPT_ARTIFACT_LIBRARYCALLS_H

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace trainopt::calls {

/// artifact.proto's ElementType codes.
enum ElementCode : int64_t {
  kF64 = 1,
  kF32 = 2,
  kF16 = 3,
  kBF16 = 4,
  kI64 = 5,
  kI32 = 6,
  kI8 = 7,
  kI1 = 8,
};

/// Reads a descriptor front to back, recording the first structural
/// problem.
class Reader {
public:
  Reader(const int64_t *ints, size_t count, std::string &error)
      : ints(ints), count(count), error(error) {}
  bool ok() const { return good; }
  int64_t next() {
    if (at < count)
      return ints[at++];
    if (good)
      fail("expects more int args than the " + std::to_string(count) +
           " given");
    return 0;
  }
  bool flag(const char *what) {
    int64_t v = next();
    if (v != 0 && v != 1)
      fail(std::string("expects ") + what + " to be 0 or 1, got " +
           std::to_string(v));
    return v != 0;
  }
  /// Fails unless every int was read.
  bool finish() {
    if (good && at != count)
      fail("expects " + std::to_string(at) + " int args, got " +
           std::to_string(count));
    return good;
  }
  void fail(const std::string &message) {
    if (good)
      error = message;
    good = false;
  }

private:
  const int64_t *ints;
  size_t count, at = 0;
  std::string &error;
  bool good = true;
};

/// The element and accumulate types every descriptor starts with.
struct Types {
  int64_t element = kF32, accumulate = kF32;
  void encode(std::vector<int64_t> &out) const {
    out.push_back(element);
    out.push_back(accumulate);
  }
  void decode(Reader &r) {
    element = r.next();
    accumulate = r.next();
  }
};

/// The spatial window of a convolution or pooling: S = `rank` (1 to 3)
/// dims, encoded as S, then seven groups of S ints: input, kernel, output,
/// strides, dilations, padding at the start, padding at the end.
struct Window {
  int64_t rank = 0;
  int64_t in[3] = {}, kernel[3] = {}, out[3] = {}, strides[3] = {},
          dilations[3] = {}, padBegin[3] = {}, padEnd[3] = {};

  void encode(std::vector<int64_t> &o) const {
    o.push_back(rank);
    for (const int64_t *g :
         {in, kernel, out, strides, dilations, padBegin, padEnd})
      o.insert(o.end(), g, g + rank);
  }
  void decode(Reader &r) {
    rank = r.next();
    if (rank < 1 || rank > 3) {
      r.fail("expects 1, 2 or 3 spatial dims, got " + std::to_string(rank));
      rank = 0;
      return;
    }
    for (int64_t *g : {in, kernel, out, strides, dilations, padBegin, padEnd})
      for (int64_t d = 0; d < rank; ++d)
        g[d] = r.next();
  }
};

/// `matmul`, buffers [lhs, rhs, out]: out (outBatch x M x N) = lhs
/// (lhsBatch x M x K, or x K x M when transposed) x rhs (rhsBatch x K x N,
/// or x N x K when transposed), each operand batch dim 1 (broadcast) or the
/// out dim; with `accumulateOut`, out += the product.
/// Ints: [types, R, outBatch[R], lhsBatch[R], rhsBatch[R], M, N, K,
/// transposeLhs, transposeRhs, accumulateOut].
struct MatmulCall {
  Types types;
  std::vector<int64_t> outBatch, lhsBatch, rhsBatch;
  int64_t m = 0, n = 0, k = 0;
  bool transposeLhs = false, transposeRhs = false, accumulateOut = false;

  std::vector<int64_t> encode() const {
    std::vector<int64_t> o;
    types.encode(o);
    o.push_back(static_cast<int64_t>(outBatch.size()));
    for (const auto *g : {&outBatch, &lhsBatch, &rhsBatch})
      o.insert(o.end(), g->begin(), g->end());
    o.insert(o.end(), {m, n, k, transposeLhs, transposeRhs, accumulateOut});
    return o;
  }
  static bool decode(const int64_t *ints, size_t count, MatmulCall &c,
                     std::string &error) {
    Reader r(ints, count, error);
    c.types.decode(r);
    int64_t rank = r.next();
    if (rank < 0 || rank > 64) {
      r.fail("expects 0 to 64 batch dims, got " + std::to_string(rank));
      return false;
    }
    for (auto *g : {&c.outBatch, &c.lhsBatch, &c.rhsBatch}) {
      g->clear();
      for (int64_t d = 0; d < rank; ++d)
        g->push_back(r.next());
    }
    c.m = r.next(), c.n = r.next(), c.k = r.next();
    c.transposeLhs = r.flag("transposeLhs");
    c.transposeRhs = r.flag("transposeRhs");
    c.accumulateOut = r.flag("accumulateOut");
    return r.finish();
  }
};

/// `conv`, buffers [input, filter, bias (iff hasBias), out]; `conv_grad_input`,
/// buffers [gradOut, filter, gradInput]; `conv_grad_filter`, buffers
/// [input, gradOut, gradFilter] (both without bias). input [N, Cin, in...],
/// filter [Cout, Cin/groups, kernel...], out [N, Cout, out...].
/// Ints: [types, hasBias, N, Cin, Cout, groups, window].
struct ConvCall {
  Types types;
  bool hasBias = false;
  int64_t n = 0, cin = 0, cout = 0, groups = 1;
  Window window;

  std::vector<int64_t> encode() const {
    std::vector<int64_t> o;
    types.encode(o);
    o.insert(o.end(), {hasBias, n, cin, cout, groups});
    window.encode(o);
    return o;
  }
  static bool decode(const int64_t *ints, size_t count, ConvCall &c,
                     std::string &error) {
    Reader r(ints, count, error);
    c.types.decode(r);
    c.hasBias = r.flag("hasBias");
    c.n = r.next(), c.cin = r.next(), c.cout = r.next(), c.groups = r.next();
    c.window.decode(r);
    return r.finish();
  }
};

/// `max_pool`, buffers [input, out]; `max_pool_grad`, [input, gradOut,
/// gradInput]; `avg_pool`, [input, out]; `avg_pool_grad`, [gradOut,
/// gradInput]. input [N, C, in...], out [N, C, out...].
/// Ints: [types, N, C, window] and, for the average pools only,
/// countIncludePad.
struct PoolCall {
  Types types;
  int64_t n = 0, c = 0;
  Window window;
  bool average = false, countIncludePad = false;

  std::vector<int64_t> encode() const {
    std::vector<int64_t> o;
    types.encode(o);
    o.insert(o.end(), {n, c});
    window.encode(o);
    if (average)
      o.push_back(countIncludePad);
    return o;
  }
  static bool decode(const int64_t *ints, size_t count, bool average,
                     PoolCall &p, std::string &error) {
    Reader r(ints, count, error);
    p.types.decode(r);
    p.n = r.next(), p.c = r.next();
    p.window.decode(r);
    p.average = average;
    p.countIncludePad = average && r.flag("countIncludePad");
    return r.finish();
  }
};

/// `scatter_add`, buffers [indices, updates, out]: out = 0, then
/// out[o, idx[p], i] += updates[o, p, i]; updates [outer, numIndices,
/// inner], out [outer, outAxis, inner], indices of `indexElement` (I64 or
/// I32). Ints: [types, indexElement, outer, outAxis, numIndices, inner].
struct ScatterAddCall {
  Types types;
  int64_t indexElement = kI64, outer = 0, outAxis = 0, numIndices = 0,
          inner = 0;

  std::vector<int64_t> encode() const {
    std::vector<int64_t> o;
    types.encode(o);
    o.insert(o.end(), {indexElement, outer, outAxis, numIndices, inner});
    return o;
  }
  static bool decode(const int64_t *ints, size_t count, ScatterAddCall &s,
                     std::string &error) {
    Reader r(ints, count, error);
    s.types.decode(r);
    s.indexElement = r.next(), s.outer = r.next(), s.outAxis = r.next(),
    s.numIndices = r.next(), s.inner = r.next();
    return r.finish();
  }
};

/// `concat`, buffers [in_0, ..., in_{k-1}, out]: each row o of out (outer
/// rows of the sum of rowBytes) is row o of in_0, then of in_1, and so on
/// (in_i: outer rows of rowBytes_i). A byte copy, of any element type (the
/// types say which). Ints: [types, outer, k, rowBytes_0, ...,
/// rowBytes_{k-1}].
struct ConcatCall {
  Types types;
  int64_t outer = 0;
  std::vector<int64_t> rowBytes;

  /// The most inputs a descriptor may list (decode refuses more before
  /// reading them).
  static constexpr int64_t kMaxInputs = 1 << 16;

  std::vector<int64_t> encode() const {
    std::vector<int64_t> o;
    types.encode(o);
    o.push_back(outer);
    o.push_back(static_cast<int64_t>(rowBytes.size()));
    o.insert(o.end(), rowBytes.begin(), rowBytes.end());
    return o;
  }
  static bool decode(const int64_t *ints, size_t n, ConcatCall &s,
                     std::string &error) {
    Reader r(ints, n, error);
    s.types.decode(r);
    s.outer = r.next();
    int64_t k = r.next();
    if (k < 1 || k > kMaxInputs) {
      r.fail("expects 1 to " + std::to_string(kMaxInputs) +
             " concat inputs, got " + std::to_string(k));
      return false;
    }
    s.rowBytes.clear();
    for (int64_t i = 0; i < k && r.ok(); ++i)
      s.rowBytes.push_back(r.next());
    return r.finish();
  }
};

/// `kth_smallest`, buffers [x, k, out]: out = the k-th smallest (1-based)
/// of x's `count` elements in IEEE total order; -inf for k <= 0, +inf for
/// k > count; k is one i64. Ints: [types, count].
struct KthSmallestCall {
  Types types;
  int64_t count = 0;

  std::vector<int64_t> encode() const {
    std::vector<int64_t> o;
    types.encode(o);
    o.push_back(count);
    return o;
  }
  static bool decode(const int64_t *ints, size_t n, KthSmallestCall &s,
                     std::string &error) {
    Reader r(ints, n, error);
    s.types.decode(r);
    s.count = r.next();
    return r.finish();
  }
};

} // namespace trainopt::calls

#endif // TRAINOPT_ARTIFACT_LIBRARYCALLS_H
