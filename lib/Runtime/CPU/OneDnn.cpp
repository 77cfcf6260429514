//===- OneDnn.cpp - CPU convolutions on oneDNN, loaded at run time --------===//
//
/// \file
/// Measured with bench/cpu_conv.cpp on the 2-core AVX2 machine (ResNet-18's
/// convolutions at batch 16 and 64x64): oneDNN 2.6's jit:avx2 kernels on
/// their blocked layouts (nChw8c) reach 150-210 GFLOP/s, against 60-120 for
/// im2col + OpenBLAS SGEMM, and stay ahead with every operand reordered
/// from and to NCHW in each call (53 against 66 ms for the nine layers'
/// three directions). On plain NCHW memory oneDNN was no faster than ours,
/// so each call reorders: the blocked copies live in grow-only buffers of
/// this file, one per operand, and a plan (primitive, reorders, memory
/// objects) is built once per call shape and thread count and kept.
///
/// oneDNN's threads are OpenMP's (Debian builds it with libgomp); the count
/// is set before each call. libgomp's idle threads spin for a while after
/// each parallel region by default; on 2 cores that spinning took the cores
/// from the library's own pool in the kernels that followed (ResNet-18's
/// max-pool gradient 4.2 -> 8.0 ms), so GOMP_SPINCOUNT is lowered to 1000
/// unless the user has set it.
///
/// Bits must not depend on the thread count. The forward convolution and
/// the input gradient gave the same bits for 1, 2 and 3 threads (the unit
/// tests' ConvThreadCounts). oneDNN's filter gradient, on its own threads,
/// sums the batch in per-thread partial sums, so here it runs in parts
/// instead (Plan): fixed slices of the output channels, each a primitive
/// built for one thread, shared over the library's pool. Four one-thread
/// parts ran as fast as oneDNN's own two threads on ResNet-18's layers
/// (bench/cpu_conv.cpp, the "parts" column).
//
//===----------------------------------------------------------------------===//

#include "OneDnn.h"

#include "trainopt/Runtime/CPULibrary.h"

#include <oneapi/dnnl/dnnl.h>

#include <dlfcn.h>

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <map>
#include <memory>
#include <mutex>
#include <vector>

using namespace trainopt::rt;

namespace {

namespace calls = trainopt::calls;

/// The oneDNN C API functions this file calls, from dlopen.
struct Api {
#define TRAINOPT_DNNL_FUNCTIONS(X)                                             \
  X(dnnl_engine_create)                                                        \
  X(dnnl_stream_create)                                                        \
  X(dnnl_stream_wait)                                                          \
  X(dnnl_memory_desc_init_by_tag)                                              \
  X(dnnl_memory_desc_init_by_strides)                                          \
  X(dnnl_memory_desc_equal)                                                    \
  X(dnnl_memory_desc_get_size)                                                 \
  X(dnnl_memory_create)                                                        \
  X(dnnl_memory_set_data_handle)                                               \
  X(dnnl_dilated_convolution_forward_desc_init)                                \
  X(dnnl_dilated_convolution_backward_data_desc_init)                          \
  X(dnnl_dilated_convolution_backward_weights_desc_init)                       \
  X(dnnl_primitive_attr_create)                                                \
  X(dnnl_primitive_attr_destroy)                                               \
  X(dnnl_primitive_attr_set_scratchpad_mode)                                   \
  X(dnnl_primitive_desc_create)                                                \
  X(dnnl_primitive_desc_destroy)                                               \
  X(dnnl_primitive_desc_query_md)                                              \
  X(dnnl_reorder_primitive_desc_create)                                        \
  X(dnnl_primitive_create)                                                     \
  X(dnnl_primitive_execute)
#define TRAINOPT_DNNL_MEMBER(name) decltype(&::name) name = nullptr;
  TRAINOPT_DNNL_FUNCTIONS(TRAINOPT_DNNL_MEMBER)
#undef TRAINOPT_DNNL_MEMBER
  void (*setOmpThreads)(int) = nullptr;
  dnnl_engine_t engine = nullptr;
  dnnl_stream_t stream = nullptr;
  std::string error;
};

const Api &api() {
  static const Api a = [] {
    Api a;
    if (!kBuildLoadsOneDnn) {
      a.error = "oneDNN is not loaded in sanitizer builds (LeakSanitizer's "
                "tracer crashes on its OpenMP threads; CPULibrary.h)";
      return a;
    }
    setenv("GOMP_SPINCOUNT", "1000", /*overwrite=*/0);
    void *h = nullptr;
    for (const char *name : {"libdnnl.so.2", "libdnnl.so"})
      if ((h = dlopen(name, RTLD_NOW | RTLD_LOCAL)))
        break;
    if (!h) {
      a.error = std::string("cannot load oneDNN (libdnnl.so.2): ") + dlerror();
      return a;
    }
    bool ok = true;
#define TRAINOPT_DNNL_LOAD(name)                                               \
  a.name = reinterpret_cast<decltype(a.name)>(dlsym(h, #name));                \
  ok = ok && a.name;
    TRAINOPT_DNNL_FUNCTIONS(TRAINOPT_DNNL_LOAD)
#undef TRAINOPT_DNNL_LOAD
    // libdnnl's own dependency; dlsym searches the handle's dependencies.
    a.setOmpThreads =
        reinterpret_cast<void (*)(int)>(dlsym(h, "omp_set_num_threads"));
    if (!ok || !a.setOmpThreads) {
      a.error = "libdnnl.so.2 lacks a function of oneDNN 2.x's C API or "
                "omp_set_num_threads (an OpenMP build is expected)";
      a.engine = nullptr;
      return a;
    }
    if (a.dnnl_engine_create(&a.engine, dnnl_cpu, 0) != dnnl_success ||
        a.dnnl_stream_create(&a.stream, a.engine, dnnl_stream_default_flags) !=
            dnnl_success) {
      a.error = "oneDNN could not create a CPU engine and stream";
      a.engine = nullptr;
    }
    return a;
  }();
  return a;
}

/// A grow-only, 64-byte aligned buffer for one blocked operand.
class Staging {
public:
  void *get(size_t bytes) {
    if (bytes > size) {
      data.reset(
          static_cast<char *>(std::aligned_alloc(64, (bytes + 63) / 64 * 64)));
      size = data ? bytes : 0;
    }
    return data.get();
  }

private:
  struct Free {
    void operator()(char *p) const { std::free(p); }
  };
  std::unique_ptr<char, Free> data;
  size_t size = 0;
};

/// One operand of a call: the library's NCHW buffer `buffer` (from byte
/// `offset`), and where the primitive wants another layout, a blocked copy
/// and the reorder between.
struct Operand {
  int arg = 0;
  int buffer = 0;
  size_t offset = 0;
  bool input = true;
  dnnl_memory_t user = nullptr;
  dnnl_memory_t blocked = nullptr;
  dnnl_primitive_t reorder = nullptr;
  size_t blockedBytes = 0;
};

/// One primitive of a plan and the operands it alone uses; with a
/// user-managed scratchpad of `scratchBytes` when parts run concurrently.
struct Part {
  dnnl_primitive_t primitive = nullptr;
  std::vector<Operand> operands;
  dnnl_memory_t scratch = nullptr;
  size_t scratchBytes = 0;
};

/// A call shape's primitives, built once and kept (a program has a few
/// dozen call shapes). Operands in `shared` are reordered once and read by
/// every part. A forward convolution or input gradient is one part on
/// oneDNN's threads. A filter gradient is split over output channels into
/// parts (gradFilterParts) that each run on one thread, side by side on the
/// library's pool: oneDNN's own threads would sum over the batch in
/// per-thread partial sums, so the bits would depend on the thread count;
/// one thread per fixed part sums in one order whatever the count.
struct Plan {
  std::vector<Operand> shared;
  std::vector<Part> parts;
  int64_t flops = 0;
};

/// The plain (NC-spatial) memory descriptor of `dims`.
bool plainDesc(const Api &a, const std::vector<int64_t> &dims, bool grouped,
               bool weights, dnnl_memory_desc_t &md) {
  static const dnnl_format_tag_t activations[] = {dnnl_ncw, dnnl_nchw,
                                                  dnnl_ncdhw};
  static const dnnl_format_tag_t filters[] = {dnnl_oiw, dnnl_oihw, dnnl_oidhw};
  static const dnnl_format_tag_t groupedFilters[] = {dnnl_goiw, dnnl_goihw,
                                                     dnnl_goidhw};
  int spatial = static_cast<int>(dims.size()) - (grouped ? 3 : 2);
  dnnl_format_tag_t tag =
      dims.size() == 1 ? dnnl_x
      : weights        ? (grouped ? groupedFilters : filters)[spatial - 1]
                       : activations[spatial - 1];
  return a.dnnl_memory_desc_init_by_tag(&md, static_cast<int>(dims.size()),
                                        dims.data(), dnnl_f32,
                                        tag) == dnnl_success;
}

/// What a plan's operand is: its argument, the library buffer, whether it
/// is read, the query for the primitive's descriptor, and the plain one
/// (null for the bias, whose plain descriptor is the primitive's).
struct Want {
  int arg, buffer;
  bool input;
  dnnl_query_t query;
  const dnnl_memory_desc_t *plain;
  size_t offset = 0;
};

/// Makes the operand `want` of primitive descriptor `pd`: the user memory
/// over the library's buffer and, where the primitive wants another
/// layout, the blocked memory and the reorder.
bool makeOperand(const Api &a, const_dnnl_primitive_desc_t pd, const Want &want,
                 const dnnl_memory_desc_t &bias, Operand &op) {
  op.arg = want.arg;
  op.buffer = want.buffer;
  op.offset = want.offset;
  op.input = want.input;
  // The bias is the second weights descriptor of the forward primitive.
  const dnnl_memory_desc_t *md =
      want.plain ? a.dnnl_primitive_desc_query_md(pd, want.query, 0) : &bias;
  const dnnl_memory_desc_t *plain = want.plain ? want.plain : &bias;
  bool ok = md && a.dnnl_memory_create(&op.user, plain, a.engine,
                                       DNNL_MEMORY_NONE) == dnnl_success;
  if (ok && !a.dnnl_memory_desc_equal(md, plain)) {
    dnnl_primitive_desc_t rpd = nullptr;
    const dnnl_memory_desc_t *from = op.input ? plain : md;
    const dnnl_memory_desc_t *to = op.input ? md : plain;
    op.blockedBytes = a.dnnl_memory_desc_get_size(md);
    ok = a.dnnl_memory_create(&op.blocked, md, a.engine, DNNL_MEMORY_NONE) ==
             dnnl_success &&
         a.dnnl_reorder_primitive_desc_create(
             &rpd, from, a.engine, to, a.engine, nullptr) == dnnl_success &&
         a.dnnl_primitive_create(&op.reorder, rpd) == dnnl_success;
    if (rpd)
      a.dnnl_primitive_desc_destroy(rpd);
  }
  return ok;
}

/// The memory descriptors of a convolution call, for `cout` of its output
/// channels.
struct ConvDescs {
  int s = 0;
  bool grouped = false;
  std::vector<int64_t> x, y, f;
  dnnl_dims_t strides, dilations, padL, padR;
  dnnl_memory_desc_t xPlain, fPlain, yPlain, bPlain, xAny, fAny, yAny;

  bool init(const Api &a, const calls::ConvCall &call, int64_t cout) {
    const calls::Window &w = call.window;
    s = static_cast<int>(w.rank);
    grouped = call.groups > 1;
    x = {call.n, call.cin};
    y = {call.n, cout};
    if (grouped)
      f = {call.groups, cout / call.groups, call.cin / call.groups};
    else
      f = {cout, call.cin};
    for (int d = 0; d < s; ++d) {
      x.push_back(w.in[d]);
      y.push_back(w.out[d]);
      f.push_back(w.kernel[d]);
      strides[d] = w.strides[d];
      dilations[d] = w.dilations[d] - 1;
      padL[d] = w.padBegin[d];
      padR[d] = w.padEnd[d];
    }
    return plainDesc(a, x, false, false, xPlain) &&
           plainDesc(a, f, grouped, true, fPlain) &&
           plainDesc(a, y, false, false, yPlain) &&
           plainDesc(a, {cout}, false, false, bPlain) &&
           a.dnnl_memory_desc_init_by_tag(&xAny, s + 2, x.data(), dnnl_f32,
                                          dnnl_format_tag_any) ==
               dnnl_success &&
           a.dnnl_memory_desc_init_by_tag(
               &fAny, static_cast<int>(f.size()), f.data(), dnnl_f32,
               dnnl_format_tag_any) == dnnl_success &&
           a.dnnl_memory_desc_init_by_tag(&yAny, s + 2, y.data(), dnnl_f32,
                                          dnnl_format_tag_any) == dnnl_success;
  }

  /// The forward primitive descriptor: the primitive itself, or the hint
  /// that backward primitives need.
  dnnl_primitive_desc_t forward(const Api &a, bool bias) {
    dnnl_convolution_desc_t fwd;
    dnnl_primitive_desc_t pd = nullptr;
    if (a.dnnl_dilated_convolution_forward_desc_init(
            &fwd, dnnl_forward_training, dnnl_convolution_direct, &xAny, &fAny,
            bias ? &bPlain : nullptr, &yAny, strides, dilations, padL,
            padR) != dnnl_success ||
        a.dnnl_primitive_desc_create(&pd, &fwd, nullptr, a.engine, nullptr) !=
            dnnl_success)
      return nullptr;
    return pd;
  }
};

/// Builds the one-part plan of a forward convolution or input gradient, or
/// returns false when oneDNN has no primitive for it.
bool buildPlan(const Api &a, ConvDirection direction,
               const calls::ConvCall &call, Plan &plan) {
  ConvDescs d;
  if (!d.init(a, call, call.cout))
    return false;
  bool bias = direction == ConvDirection::Forward && call.hasBias;
  dnnl_primitive_desc_t fwdPd = d.forward(a, bias), pd = nullptr;
  if (!fwdPd)
    return false;
  std::vector<Want> wants;
  dnnl_convolution_desc_t bwd;
  switch (direction) {
  case ConvDirection::Forward:
    pd = fwdPd;
    fwdPd = nullptr;
    wants = {{DNNL_ARG_SRC, 0, true, dnnl_query_src_md, &d.xPlain},
             {DNNL_ARG_WEIGHTS, 1, true, dnnl_query_weights_md, &d.fPlain}};
    if (bias)
      wants.push_back({DNNL_ARG_BIAS, 2, true, dnnl_query_weights_md, nullptr});
    wants.push_back(
        {DNNL_ARG_DST, bias ? 3 : 2, false, dnnl_query_dst_md, &d.yPlain});
    break;
  case ConvDirection::GradInput:
    if (a.dnnl_dilated_convolution_backward_data_desc_init(
            &bwd, dnnl_convolution_direct, &d.xAny, &d.fAny, &d.yAny, d.strides,
            d.dilations, d.padL, d.padR) != dnnl_success ||
        a.dnnl_primitive_desc_create(&pd, &bwd, nullptr, a.engine, fwdPd) !=
            dnnl_success)
      pd = nullptr;
    wants = {{DNNL_ARG_DIFF_DST, 0, true, dnnl_query_diff_dst_md, &d.yPlain},
             {DNNL_ARG_WEIGHTS, 1, true, dnnl_query_weights_md, &d.fPlain},
             {DNNL_ARG_DIFF_SRC, 2, false, dnnl_query_diff_src_md, &d.xPlain}};
    break;
  case ConvDirection::GradFilter:
    break; // buildGradFilterPlan
  }
  if (fwdPd)
    a.dnnl_primitive_desc_destroy(fwdPd);
  if (!pd)
    return false;
  Part &part = plan.parts.emplace_back();
  bool ok = a.dnnl_primitive_create(&part.primitive, pd) == dnnl_success;
  for (const Want &want : wants)
    ok = ok && makeOperand(a, pd, want, d.bPlain, part.operands.emplace_back());
  a.dnnl_primitive_desc_destroy(pd);
  // A plan that failed halfway keeps its objects (never used): building
  // fails only on out-of-memory, where a leak is the least concern.
  return ok;
}

/// Builds the plan of a filter gradient in `parts` parts of the output
/// channels, each a one-thread primitive with its own scratchpad, reading
/// its slice of the output gradient in place (a strided descriptor) and
/// writing its rows of the filter gradient. The input is reordered once.
bool buildGradFilterPlan(const Api &a, const calls::ConvCall &call,
                         int64_t parts, Plan &plan) {
  int64_t cout = call.cout / parts;
  ConvDescs d;
  if (call.groups != 1 || !d.init(a, call, cout))
    return false;
  // The primitives are chosen for one thread: set it before they are built.
  a.setOmpThreads(1);
  dnnl_primitive_desc_t fwdPd = d.forward(a, false), pd = nullptr;
  if (!fwdPd)
    return false;
  dnnl_convolution_desc_t bwd;
  dnnl_primitive_attr_t attr = nullptr;
  if (a.dnnl_primitive_attr_create(&attr) != dnnl_success ||
      a.dnnl_primitive_attr_set_scratchpad_mode(
          attr, dnnl_scratchpad_mode_user) != dnnl_success ||
      a.dnnl_dilated_convolution_backward_weights_desc_init(
          &bwd, dnnl_convolution_direct, &d.xAny, &d.fAny, nullptr, &d.yAny,
          d.strides, d.dilations, d.padL, d.padR) != dnnl_success ||
      a.dnnl_primitive_desc_create(&pd, &bwd, attr, a.engine, fwdPd) !=
          dnnl_success)
    pd = nullptr;
  if (attr)
    a.dnnl_primitive_attr_destroy(attr);
  a.dnnl_primitive_desc_destroy(fwdPd);
  if (!pd)
    return false;
  // The output gradient's slice: [N, cout, spatial] inside [N, Cout,
  // spatial].
  int64_t positions = 1;
  for (int i = 0; i < d.s; ++i)
    positions *= call.window.out[i];
  dnnl_dims_t yStrides;
  yStrides[d.s + 1] = 1;
  for (int i = d.s; i >= 2; --i)
    yStrides[i] = yStrides[i + 1] * d.y[i + 1];
  yStrides[1] = positions;
  yStrides[0] = call.cout * positions;
  dnnl_memory_desc_t ySlice;
  bool ok =
      a.dnnl_memory_desc_init_by_strides(&ySlice, d.s + 2, d.y.data(), dnnl_f32,
                                         yStrides) == dnnl_success;
  ok = ok &&
       makeOperand(a, pd, {DNNL_ARG_SRC, 0, true, dnnl_query_src_md, &d.xPlain},
                   d.bPlain, plan.shared.emplace_back());
  const dnnl_memory_desc_t *scratch =
      a.dnnl_primitive_desc_query_md(pd, dnnl_query_scratchpad_md, 0);
  size_t filterBytes = a.dnnl_memory_desc_get_size(&d.fPlain);
  for (int64_t p = 0; ok && p < parts; ++p) {
    Part &part = plan.parts.emplace_back();
    size_t yOffset = static_cast<size_t>(p * cout * positions) * sizeof(float);
    ok = a.dnnl_primitive_create(&part.primitive, pd) == dnnl_success &&
         makeOperand(a, pd,
                     {DNNL_ARG_DIFF_DST, 1, true, dnnl_query_diff_dst_md,
                      &ySlice, yOffset},
                     d.bPlain, part.operands.emplace_back()) &&
         makeOperand(a, pd,
                     {DNNL_ARG_DIFF_WEIGHTS, 2, false,
                      dnnl_query_diff_weights_md, &d.fPlain,
                      static_cast<size_t>(p) * filterBytes},
                     d.bPlain, part.operands.emplace_back());
    part.scratchBytes = scratch ? a.dnnl_memory_desc_get_size(scratch) : 0;
    if (ok && part.scratchBytes > 0)
      ok = a.dnnl_memory_create(&part.scratch, scratch, a.engine,
                                DNNL_MEMORY_NONE) == dnnl_success;
  }
  a.dnnl_primitive_desc_destroy(pd);
  return ok;
}

/// The parts a filter gradient of `cout` output channels is split into: a
/// power of two up to 8, each a multiple of 8 channels (oneDNN's AVX2
/// block) and at least 16. A function of the shape alone, so the bits do
/// not depend on the thread count. More parts than threads let a thread
/// slowed by another process take fewer; each part rereads the whole input,
/// so not many more.
int64_t gradFilterParts(int64_t cout) {
  int64_t parts = 1;
  while (parts < 8 && cout % (16 * parts) == 0 && cout / (2 * parts) >= 16)
    parts *= 2;
  return parts;
}

/// Grow-only staging buffers: per part (slot 0 for the shared operands),
/// per operand, and one for each part's scratchpad.
struct Stagings {
  std::vector<std::vector<Staging>> operands;
  std::vector<Staging> scratch;
  void reserve(const Plan &plan) {
    if (operands.size() < plan.parts.size() + 1)
      operands.resize(plan.parts.size() + 1);
    if (scratch.size() < plan.parts.size())
      scratch.resize(plan.parts.size());
    size_t most = plan.shared.size();
    for (const Part &part : plan.parts)
      most = std::max(most, part.operands.size());
    for (std::vector<Staging> &v : operands)
      if (v.size() < most)
        v.resize(most);
  }
};

/// Points `ops` at the library's buffers and their staging, adding their
/// arguments to `args`.
bool bind(const Api &a, std::vector<Operand> &ops, void *const *buffers,
          std::vector<Staging> &staging, std::vector<dnnl_exec_arg_t> &args) {
  for (size_t i = 0; i < ops.size(); ++i) {
    Operand &op = ops[i];
    if (a.dnnl_memory_set_data_handle(
            op.user, static_cast<char *>(buffers[op.buffer]) + op.offset) !=
        dnnl_success)
      return false;
    dnnl_memory_t used = op.user;
    if (op.reorder) {
      void *copy = staging[i].get(op.blockedBytes);
      if (!copy ||
          a.dnnl_memory_set_data_handle(op.blocked, copy) != dnnl_success)
        return false;
      used = op.blocked;
    }
    args.push_back({op.arg, used});
  }
  return true;
}

/// Runs the reorders of `ops` in direction `input` on `stream`.
bool reorders(const Api &a, const std::vector<Operand> &ops, bool input,
              dnnl_stream_t stream) {
  for (const Operand &op : ops)
    if (op.input == input && op.reorder) {
      dnnl_exec_arg_t r[] = {{DNNL_ARG_FROM, input ? op.user : op.blocked},
                             {DNNL_ARG_TO, input ? op.blocked : op.user}};
      if (a.dnnl_primitive_execute(op.reorder, stream, 2, r) != dnnl_success)
        return false;
    }
  return true;
}

/// Runs part `p` of `plan` on `stream`, after the shared operands' `args`.
bool runPart(const Api &a, Plan &plan, size_t p, void *const *buffers,
             Stagings &staging, std::vector<dnnl_exec_arg_t> args,
             dnnl_stream_t stream) {
  Part &part = plan.parts[p];
  if (!bind(a, part.operands, buffers, staging.operands[p + 1], args))
    return false;
  if (part.scratch) {
    void *mem = staging.scratch[p].get(part.scratchBytes);
    if (!mem ||
        a.dnnl_memory_set_data_handle(part.scratch, mem) != dnnl_success)
      return false;
    args.push_back({DNNL_ARG_SCRATCHPAD, part.scratch});
  }
  return reorders(a, part.operands, true, stream) &&
         a.dnnl_primitive_execute(part.primitive, stream,
                                  static_cast<int>(args.size()),
                                  args.data()) == dnnl_success &&
         reorders(a, part.operands, false, stream) &&
         a.dnnl_stream_wait(stream) == dnnl_success;
}

/// A stream per part that runs beside others (a stream serves one thread
/// at a time).
dnnl_stream_t partStream(const Api &a, size_t p) {
  static std::vector<dnnl_stream_t> streams;
  while (streams.size() <= p) {
    dnnl_stream_t s = nullptr;
    if (a.dnnl_stream_create(&s, a.engine, dnnl_stream_default_flags) !=
        dnnl_success)
      return nullptr;
    streams.push_back(s);
  }
  return streams[p];
}

bool execute(const Api &a, Plan &plan, void *const *buffers,
             Stagings &staging) {
  staging.reserve(plan);
  std::vector<dnnl_exec_arg_t> shared;
  if (!bind(a, plan.shared, buffers, staging.operands[0], shared) ||
      !reorders(a, plan.shared, true, a.stream) ||
      a.dnnl_stream_wait(a.stream) != dnnl_success)
    return false;
  if (plan.parts.size() == 1)
    return runPart(a, plan, 0, buffers, staging, shared, a.stream);
  std::vector<dnnl_stream_t> streams;
  for (size_t p = 0; p < plan.parts.size(); ++p)
    if (!streams.emplace_back(partStream(a, p)))
      return false;
  std::atomic<bool> ok{true};
  parallelRows(static_cast<int64_t>(plan.parts.size()), plan.flops,
               [&](int64_t begin, int64_t end) {
                 // This thread's OpenMP count: one, as the parts were built.
                 a.setOmpThreads(1);
                 for (int64_t p = begin; p < end; ++p)
                   if (!runPart(a, plan, static_cast<size_t>(p), buffers,
                                staging, shared, streams[p]))
                     ok = false;
               });
  return ok;
}

} // namespace

bool trainopt::rt::oneDnnAvailable(std::string &why) {
  why = api().error;
  return api().engine != nullptr;
}

bool trainopt::rt::oneDnnConv(ConvDirection direction,
                              const calls::ConvCall &call, void *const *buffers,
                              int threads) {
  const Api &a = api();
  if (!a.engine || call.types.element != calls::kF32)
    return false;
  // Calls come from one program's thread at a time, but the C API and the
  // Python package may run several programs in one process.
  static std::mutex mutex;
  static std::map<std::vector<int64_t>, std::unique_ptr<Plan>> plans;
  static Stagings staging;
  std::lock_guard<std::mutex> lock(mutex);
  // OpenMP's thread count is per calling thread: set it on every call.
  a.setOmpThreads(threads);
  std::vector<int64_t> key = call.encode();
  key.push_back(static_cast<int64_t>(direction));
  // A filter gradient's parts run on one thread each, whatever the count.
  int64_t parts =
      direction == ConvDirection::GradFilter ? gradFilterParts(call.cout) : 1;
  key.push_back(direction == ConvDirection::GradFilter ? 0 : threads);
  auto [it, inserted] = plans.try_emplace(key);
  if (inserted) {
    auto plan = std::make_unique<Plan>();
    plan->flops = call.n * call.cout;
    for (int64_t d = 0; d < call.window.rank; ++d)
      plan->flops *= call.window.out[d] * call.window.kernel[d];
    plan->flops *= 2 * (call.cin / std::max<int64_t>(1, call.groups));
    if (direction == ConvDirection::GradFilter
            ? buildGradFilterPlan(a, call, parts, *plan)
            : buildPlan(a, direction, call, *plan))
      it->second = std::move(plan);
    a.setOmpThreads(threads);
  }
  if (!it->second)
    return false;
  return execute(a, *it->second, buffers, staging);
}
