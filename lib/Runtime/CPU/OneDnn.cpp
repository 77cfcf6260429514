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
/// unless the user has set it. The library calls only the forward
/// convolution and the input gradient here (Library.cpp, onOneDnn): with
/// those, the bits were the same for 1, 2 and 3 threads (the unit tests'
/// ConvThreadCounts), while oneDNN's filter gradient sums over threads.
//
//===----------------------------------------------------------------------===//

#include "OneDnn.h"

#include "trainopt/Runtime/CPULibrary.h"

#include <oneapi/dnnl/dnnl.h>

#include <dlfcn.h>

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
  X(dnnl_memory_desc_equal)                                                    \
  X(dnnl_memory_desc_get_size)                                                 \
  X(dnnl_memory_create)                                                        \
  X(dnnl_memory_set_data_handle)                                               \
  X(dnnl_dilated_convolution_forward_desc_init)                                \
  X(dnnl_dilated_convolution_backward_data_desc_init)                          \
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

/// One operand of a call: the library's NCHW buffer `buffer`, and where the
/// primitive wants another layout, a blocked copy and the reorder between.
struct Operand {
  int arg = 0;
  int buffer = 0;
  bool input = true;
  dnnl_memory_t user = nullptr;
  dnnl_memory_t blocked = nullptr;
  dnnl_primitive_t reorder = nullptr;
  size_t blockedBytes = 0;
};

/// A primitive built for one call shape, direction and thread count.
/// Plans are never destroyed: a program has a few dozen call shapes.
struct Plan {
  dnnl_primitive_t primitive = nullptr;
  std::vector<Operand> operands;
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

/// Builds the plan of a call, or returns false when oneDNN has no
/// primitive for it.
bool buildPlan(const Api &a, ConvDirection direction,
               const calls::ConvCall &call, Plan &plan) {
  const calls::Window &w = call.window;
  int s = static_cast<int>(w.rank);
  bool grouped = call.groups > 1;
  std::vector<int64_t> x{call.n, call.cin}, y{call.n, call.cout}, f;
  if (grouped)
    f = {call.groups, call.cout / call.groups, call.cin / call.groups};
  else
    f = {call.cout, call.cin};
  dnnl_dims_t strides, dilations, padL, padR;
  for (int d = 0; d < s; ++d) {
    x.push_back(w.in[d]);
    y.push_back(w.out[d]);
    f.push_back(w.kernel[d]);
    strides[d] = w.strides[d];
    dilations[d] = w.dilations[d] - 1;
    padL[d] = w.padBegin[d];
    padR[d] = w.padEnd[d];
  }
  dnnl_memory_desc_t xPlain, fPlain, yPlain, bPlain, xAny, fAny, yAny;
  if (!plainDesc(a, x, false, false, xPlain) ||
      !plainDesc(a, f, grouped, true, fPlain) ||
      !plainDesc(a, y, false, false, yPlain) ||
      !plainDesc(a, {call.cout}, false, false, bPlain) ||
      a.dnnl_memory_desc_init_by_tag(&xAny, s + 2, x.data(), dnnl_f32,
                                     dnnl_format_tag_any) != dnnl_success ||
      a.dnnl_memory_desc_init_by_tag(&fAny, static_cast<int>(f.size()),
                                     f.data(), dnnl_f32,
                                     dnnl_format_tag_any) != dnnl_success ||
      a.dnnl_memory_desc_init_by_tag(&yAny, s + 2, y.data(), dnnl_f32,
                                     dnnl_format_tag_any) != dnnl_success)
    return false;

  // The forward primitive descriptor: the primitive itself, or the hint
  // that backward primitives need.
  bool bias = direction == ConvDirection::Forward && call.hasBias;
  dnnl_convolution_desc_t fwd;
  if (a.dnnl_dilated_convolution_forward_desc_init(
          &fwd, dnnl_forward_training, dnnl_convolution_direct, &xAny, &fAny,
          bias ? &bPlain : nullptr, &yAny, strides, dilations, padL,
          padR) != dnnl_success)
    return false;
  dnnl_primitive_desc_t fwdPd = nullptr, pd = nullptr;
  if (a.dnnl_primitive_desc_create(&fwdPd, &fwd, nullptr, a.engine, nullptr) !=
      dnnl_success)
    return false;
  struct Want {
    int arg, buffer;
    bool input;
    dnnl_query_t query;
    const dnnl_memory_desc_t *plain;
  };
  std::vector<Want> wants;
  dnnl_convolution_desc_t bwd;
  switch (direction) {
  case ConvDirection::Forward:
    pd = fwdPd;
    fwdPd = nullptr;
    wants = {{DNNL_ARG_SRC, 0, true, dnnl_query_src_md, &xPlain},
             {DNNL_ARG_WEIGHTS, 1, true, dnnl_query_weights_md, &fPlain}};
    if (bias)
      wants.push_back({DNNL_ARG_BIAS, 2, true, dnnl_query_weights_md, nullptr});
    wants.push_back(
        {DNNL_ARG_DST, bias ? 3 : 2, false, dnnl_query_dst_md, &yPlain});
    break;
  case ConvDirection::GradInput:
    if (a.dnnl_dilated_convolution_backward_data_desc_init(
            &bwd, dnnl_convolution_direct, &xAny, &fAny, &yAny, strides,
            dilations, padL, padR) != dnnl_success ||
        a.dnnl_primitive_desc_create(&pd, &bwd, nullptr, a.engine, fwdPd) !=
            dnnl_success)
      pd = nullptr;
    wants = {{DNNL_ARG_DIFF_DST, 0, true, dnnl_query_diff_dst_md, &yPlain},
             {DNNL_ARG_WEIGHTS, 1, true, dnnl_query_weights_md, &fPlain},
             {DNNL_ARG_DIFF_SRC, 2, false, dnnl_query_diff_src_md, &xPlain}};
    break;
  }
  if (fwdPd)
    a.dnnl_primitive_desc_destroy(fwdPd);
  if (!pd)
    return false;

  bool ok = a.dnnl_primitive_create(&plan.primitive, pd) == dnnl_success;
  for (const Want &want : wants) {
    if (!ok)
      break;
    Operand op;
    op.arg = want.arg;
    op.buffer = want.buffer;
    op.input = want.input;
    // The bias is the second weights descriptor of the forward primitive.
    const dnnl_memory_desc_t *md =
        want.plain ? a.dnnl_primitive_desc_query_md(pd, want.query, 0)
                   : &bPlain;
    const dnnl_memory_desc_t *plain = want.plain ? want.plain : &bPlain;
    ok = md && a.dnnl_memory_create(&op.user, plain, a.engine,
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
    plan.operands.push_back(op);
  }
  a.dnnl_primitive_desc_destroy(pd);
  // A plan that failed halfway keeps its objects (never used): building
  // fails only on out-of-memory, where a leak is the least concern.
  return ok;
}

bool execute(const Api &a, const Plan &plan, void *const *buffers,
             std::vector<Staging> &staging) {
  if (staging.size() < plan.operands.size())
    staging.resize(plan.operands.size());
  std::vector<dnnl_exec_arg_t> args;
  for (size_t i = 0; i < plan.operands.size(); ++i) {
    const Operand &op = plan.operands[i];
    if (a.dnnl_memory_set_data_handle(op.user, buffers[op.buffer]) !=
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
  for (const Operand &op : plan.operands)
    if (op.input && op.reorder) {
      dnnl_exec_arg_t r[] = {{DNNL_ARG_FROM, op.user},
                             {DNNL_ARG_TO, op.blocked}};
      if (a.dnnl_primitive_execute(op.reorder, a.stream, 2, r) != dnnl_success)
        return false;
    }
  if (a.dnnl_primitive_execute(plan.primitive, a.stream,
                               static_cast<int>(args.size()),
                               args.data()) != dnnl_success)
    return false;
  for (const Operand &op : plan.operands)
    if (!op.input && op.reorder) {
      dnnl_exec_arg_t r[] = {{DNNL_ARG_FROM, op.blocked},
                             {DNNL_ARG_TO, op.user}};
      if (a.dnnl_primitive_execute(op.reorder, a.stream, 2, r) != dnnl_success)
        return false;
    }
  return a.dnnl_stream_wait(a.stream) == dnnl_success;
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
  static std::vector<Staging> staging;
  std::lock_guard<std::mutex> lock(mutex);
  // OpenMP's thread count is per calling thread: set it on every call.
  a.setOmpThreads(threads);
  std::vector<int64_t> key = call.encode();
  key.push_back(static_cast<int64_t>(direction));
  key.push_back(threads);
  auto [it, inserted] = plans.try_emplace(key);
  if (inserted) {
    auto plan = std::make_unique<Plan>();
    if (buildPlan(a, direction, call, *plan))
      it->second = std::move(plan);
  }
  if (!it->second)
    return false;
  return execute(a, *it->second, buffers, staging);
}
