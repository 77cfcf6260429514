//===- CPULibrary.h - CPU functions behind LibraryCall commands -*- C++ -*-===//
//
/// \file
/// The CPU library that `LibraryCall` commands of a compiled training
/// program name ("cpu.matmul", "cpu.conv", ...). Each function computes one
/// trainopt dialect op exactly as the reference evaluator
/// (lib/Evaluator/Evaluator.cpp) defines it, over row-major contiguous
/// buffers in NC-spatial layout. No MLIR or LLVM.
///
/// A call is described by the command's `int_args` (no function uses
/// `float_args`; the count must be 0), whose layout is the typed
/// descriptors of include/trainopt/Artifact/LibraryCalls.h (`MatmulCall`,
/// `ConvCall`, `PoolCall`, `ScatterAddCall`), written by the compiler with
/// `encode` and read here with `decode`. Every descriptor starts with the
/// element type and the accumulate type, as the artifact codes them (F64 =
/// 1, F32 = 2, F16 = 3, BF16 = 4); this library accumulates F64 and F32 in
/// themselves and F16 and BF16 in F32 (widening the buffers around its f32
/// code), and refuses any other pair at load. `[S]` below is a group of S consecutive ints, one
/// per spatial dim, S in {1, 2, 3}; `window` is S, then seven [S] groups:
/// inSpatial, kernel, outSpatial, strides, dilations, padBegin, padEnd.
///
/// - `cpu.matmul`, buffers [lhs, rhs, out]; ints
///   [etype, acctype, R, outBatch[R], lhsBatch[R], rhsBatch[R], M, N, K,
///    transposeLhs, transposeRhs, accumulate].
///   out is outBatch x M x N; lhs is lhsBatch x M x K (lhsBatch x K x M when
///   transposed); rhs is rhsBatch x K x N (rhsBatch x N x K when
///   transposed). Operands of lower rank are padded with leading 1s to R
///   batch dims; each lhs/rhs batch dim is 1 (broadcast) or the out dim.
///   accumulate = 1: out += lhs x rhs, else out = lhs x rhs.
/// - `cpu.conv`, buffers [input, filter, bias (iff hasBias), out]; ints
///   [etype, acctype, hasBias, N, Cin, Cout, groups, window].
///   input [N, Cin, in...], filter [Cout, Cin/groups, kernel...], bias
///   [Cout], out [N, Cout, out...]; outSpatial must be
///   (in + padBegin + padEnd - dilation * (kernel - 1) - 1) / stride + 1.
///   (The op's `padding` attribute is padBegin[S] then padEnd[S].)
/// - `cpu.conv_grad_input`, buffers [gradOut, filter, gradInput]; the conv
///   ints with hasBias = 0. gradInput [N, Cin, in...] is overwritten.
/// - `cpu.conv_grad_filter`, buffers [input, gradOut, gradFilter]; the conv
///   ints with hasBias = 0. gradFilter [Cout, Cin/groups, k...] is
///   overwritten.
/// - `cpu.max_pool`, buffers [input, out]; ints
///   [etype, acctype, N, C, window]. Padding acts as -inf; a window
///   with no element inside the input gives -inf; NaNs are skipped (the
///   evaluator's std::max).
/// - `cpu.max_pool_grad`, buffers [input, gradOut, gradInput]; the max_pool
///   ints. Each gradOut element goes to the first maximum of its window in
///   row-major window order (strict `>`, starting from the first tap inside
///   the input); overlapping windows sum.
/// - `cpu.avg_pool`, buffers [input, out]; the max_pool ints then
///   countIncludePad. The divisor counts the taps inside the input, plus,
///   with countIncludePad, the taps in the padding (not beyond padEnd); at
///   least 1.
/// - `cpu.avg_pool_grad`, buffers [gradOut, gradInput]; the avg_pool ints.
/// - `cpu.scatter_add`, buffers [indices, updates, out]; ints
///   [etype, acctype, indexEtype, outer, outAxis, numIndices, inner] with indexEtype
///   I64 = 5 or I32 = 6. For `trainopt.scatter_add` along `axis` with a
///   result of shape D and indices of any shape: outer = prod(D[:axis]),
///   outAxis = D[axis], numIndices = the number of indices (>= 0), inner =
///   prod(D[axis+1:]). updates is [outer, numIndices, inner], out is
///   [outer, outAxis, inner] and is overwritten:
///   out = 0; out[o, idx[p], i] += updates[o, p, i], where a negative index
///   counts from the end and an index outside [-outAxis, outAxis) is skipped
///   (the evaluator rejects it).
//
//===----------------------------------------------------------------------===//

#ifndef TRAINOPT_RUNTIME_CPULIBRARY_H
#define TRAINOPT_RUNTIME_CPULIBRARY_H

#include <cstddef>
#include <cstdint>
#include <functional>
#include <string>

namespace trainopt::rt {

/// A CPU library function. `ints`/`floats`: the LibraryCall's
/// int_args/float_args; `buffers`: pointers to the call's buffers in order.
/// The descriptor must have passed checkLibraryCall; outputs must not alias
/// inputs.
using LibraryFunction = void (*)(const int64_t *ints, size_t numInts,
                                 const double *floats, size_t numFloats,
                                 void *const *buffers);

/// The function named `name` ("cpu.matmul", ...), or null.
LibraryFunction findLibraryFunction(const std::string &name);

/// Load-time validation of an (untrusted) call (`cpu.*`, or `cuda.*`, whose
/// descriptors are the same): the descriptor is well
/// formed (counts, positive sizes, no int64 overflow, supported element
/// type) and the byte sizes it implies for each buffer are <=
/// bufferBytes[i]. On failure sets `error` (naming the function and what
/// was expected) and returns false.
bool checkLibraryCall(const std::string &name, const int64_t *ints,
                      size_t numInts, const double *floats, size_t numFloats,
                      const uint64_t *bufferBytes, size_t numBuffers,
                      std::string &error);

/// Threads for BLAS and the library's own loops (0 = all cores).
void setLibraryThreads(int threads);

/// Which code computes the f32 (and widened bf16/f16) convolutions.
enum class ConvKernels {
  /// oneDNN when libdnnl.so.2 loads, else Builtin (the default).
  Auto,
  /// oneDNN's kernels on blocked layouts, reordered from and to NC-spatial
  /// in each call; filter gradients in parts fixed by the shape, one thread
  /// each, and the builtin ones where those were faster. Bits independent
  /// of the thread count.
  OneDnn,
  /// im2col + OpenBLAS GEMMs and direct depthwise loops; bits independent
  /// of the thread count.
  Builtin,
};

/// Whether this build loads oneDNN at all. Sanitizer builds do not: after
/// any oneDNN convolution, clang 14's LeakSanitizer crashed in its tracer
/// at exit ("Tracer caught signal 11"), on oneDNN's OpenMP threads, so no
/// leak check could run. There the builtin kernels compute everything.
#if defined(__SANITIZE_ADDRESS__)
constexpr bool kBuildLoadsOneDnn = false;
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
constexpr bool kBuildLoadsOneDnn = false;
#else
constexpr bool kBuildLoadsOneDnn = true;
#endif
#else
constexpr bool kBuildLoadsOneDnn = true;
#endif

/// Selects the convolution kernels. Fails, setting `error`, when OneDnn is
/// asked for and cannot be loaded.
bool setConvKernels(ConvKernels kernels, std::string &error);

/// Runs fn(begin, end) over blocks of rows [0, rows) on the library's
/// threads, or once over all rows on the calling thread when `work` (the
/// element operations of all rows) is too small to pay for waking threads.
/// Blocks are handed out dynamically; fn must be safe to run concurrently
/// on disjoint blocks.
void parallelRows(int64_t rows, int64_t work,
                  const std::function<void(int64_t, int64_t)> &fn);

} // namespace trainopt::rt

#endif // TRAINOPT_RUNTIME_CPULIBRARY_H
