//===- ArtifactPlan.cpp - step programs, memory plan, artifact ------------===//
//
/// \file
/// Turns the entry points left by the kernel pipeline into the artifact of
/// DESIGN.md section 3.4, for any target: signature, initial values, the
/// memory plan and the command lists. The targets add their kernel
/// binaries (CPUTarget.cpp, CUDA/ArtifactEmitter.cpp).
///
/// Memory: every tensor value gets a storage. Parameters, optimizer and
/// model state and the step counter are persistent (shared by all entry
/// points, updated in place); constants and batch inputs are fixed too.
/// Everything else is scratch with a live range [definition, last use] in
/// the schedule (the op order). Reshapes alias their operand. An
/// elementwise kernel may write its result over an operand it reads with
/// the identity map when that operand dies there (in-place reuse), and a
/// result that replaces a persistent value is computed directly into that
/// value's buffer when nothing reads the old value later (donation);
/// otherwise a copy ends the program. Scratch storages get offsets by
/// greedy-by-size placement into one arena region shared by the entry
/// points; the report compares it with the max-live lower bound of the
/// schedule.
//
//===----------------------------------------------------------------------===//

#include "trainopt/Target/ArtifactPlan.h"

#include "trainopt/Artifact/LibraryCalls.h"
#include "trainopt/Artifact/artifact.pb.h"
#include "trainopt/Target/MemoryPlan.h"
#include "trainopt/Conversion/Passes.h"
#include "trainopt/Dialect/Trainopt/IR/TrainoptDialect.h"
#include "trainopt/Dialect/Trainopt/IR/TrainoptOps.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/Dialect/Linalg/IR/Linalg.h"
#include "mlir/Dialect/Math/IR/Math.h"
#include "mlir/Dialect/Shard/IR/ShardOps.h"
#include "mlir/IR/BuiltinAttributes.h"
#include "mlir/IR/DialectResourceBlobManager.h"
#include "llvm/ADT/StringSet.h"

#include <algorithm>
#include <cmath>
#include <map>
#include <utility>

using namespace mlir;
using namespace mlir::trainopt;
namespace art = ::trainopt::artifact;
namespace calls = ::trainopt::calls;

namespace {

uint64_t alignUp(uint64_t v) {
  return (v + kBufferAlignment - 1) / kBufferAlignment * kBufferAlignment;
}

/// An all-zero value (an optimizer slot, a counter) is stored as a flag, so
/// an artifact is not twice its parameters' size.
void setInitialValue(art::InitialValue &init, const std::string &name,
                     std::string bytes) {
  init.set_name(name);
  if (std::all_of(bytes.begin(), bytes.end(), [](char c) { return c == 0; }))
    init.set_zeros(true);
  else
    init.set_data(std::move(bytes));
}

art::ElementType elementType(Type t) {
  if (t.isF64())
    return art::F64;
  if (t.isF32())
    return art::F32;
  if (t.isF16())
    return art::F16;
  if (t.isBF16())
    return art::BF16;
  if (t.isInteger(64))
    return art::I64;
  if (t.isInteger(32))
    return art::I32;
  if (t.isInteger(8))
    return art::I8;
  if (t.isInteger(1))
    return art::I1;
  return art::ELEMENT_TYPE_UNSPECIFIED;
}

uint64_t elementBytes(Type t) {
  return t.isInteger(1) ? 1 : (t.getIntOrFloatBitWidth() + 7) / 8;
}

void setType(art::TensorType *out, Type t) {
  auto tt = cast<RankedTensorType>(t);
  for (int64_t d : tt.getShape())
    out->add_shape(d);
  out->set_element_type(elementType(tt.getElementType()));
}

/// The little-endian bytes of `attr` (bools one byte each).
FailureOr<std::string> attrBytes(ElementsAttr attr) {
  auto type = cast<RankedTensorType>(attr.getType());
  Type et = type.getElementType();
  uint64_t n = type.getNumElements();
  if (auto resource = dyn_cast<DenseResourceElementsAttr>(attr)) {
    AsmResourceBlob *blob = resource.getRawHandle().getBlob();
    if (!blob)
      return failure();
    ArrayRef<char> data = blob->getData();
    if (data.size() != n * elementBytes(et))
      return failure();
    return std::string(data.begin(), data.end());
  }
  auto dense = dyn_cast<DenseElementsAttr>(attr);
  if (!dense)
    return failure();
  std::string out;
  if (et.isInteger(1)) {
    for (bool v : dense.getValues<bool>())
      out.push_back(v ? 1 : 0);
    return out;
  }
  ArrayRef<char> raw = dense.getRawData();
  if (dense.isSplat()) {
    for (uint64_t i = 0; i < n; ++i)
      out.append(raw.begin(), raw.end());
    return out;
  }
  return std::string(raw.begin(), raw.end());
}

/// Module-wide state: persistent and constant buffers, shared by entries.
struct ArtifactBuilder {
  ArtifactBuilder(ModuleOp module, art::Artifact &artifact,
                  llvm::json::Object &report, std::string libraryPrefix)
      : module(module), artifact(artifact), report(report),
        libraryPrefix(std::move(libraryPrefix)) {}

  ModuleOp module;
  art::Artifact &artifact;
  llvm::json::Object &report;
  std::string libraryPrefix;
  uint64_t persistentEnd = 0;
  uint64_t scratchSize = 0;
  uint64_t scratchLowerBound = 0;
  std::map<std::string, art::Buffer *> buffers;
  std::map<std::string, art::Value> persistentValues;
  llvm::DenseMap<Attribute, std::string> constants;
  SmallVector<func::FuncOp> kernels;
  std::vector<std::string> scratchBuffers;
  llvm::StringSet<> kernelNames;
  double flops = 0;
  int64_t libraryCalls = 0, kernelLaunches = 0, copies = 0, inPlace = 0,
          donated = 0;
  llvm::json::Array entryReports;

  /// The mesh's axis sizes (empty: one device).
  llvm::StringMap<int64_t> meshAxes;
  /// Collectives per entry point (ids), and the bytes they reduce per run
  /// of train_step, by op.
  uint32_t collectiveIds = 0;
  std::map<std::string, uint64_t> communicationBytes;
  int64_t collectives = 0;
  /// train_step's collectives: what each reduces and where it starts and
  /// is waited for in the command list (--report).
  llvm::json::Array collectiveReports;

  int64_t axisSize(StringRef axis) const { return meshAxes.lookup(axis); }
  FailureOr<art::Collective> collective(Operation *op, FlatSymbolRefAttr grid,
                                        ArrayRef<int16_t> gridAxes,
                                        StringRef name, Type element);
  LogicalResult readMesh();

  art::Buffer *addBuffer(const std::string &name, uint64_t bytes,
                         bool fixed) {
    art::Buffer *b = artifact.mutable_memory_plan()->add_buffers();
    b->set_name(name);
    b->set_size(bytes);
    if (fixed) {
      b->set_offset(persistentEnd);
      persistentEnd += alignUp(std::max<uint64_t>(bytes, 1));
    }
    buffers[name] = b;
    return b;
  }

  FailureOr<std::string> constantBuffer(arith::ConstantOp op) {
    Attribute key = op.getValue();
    auto it = constants.find(key);
    if (it != constants.end())
      return it->second;
    auto elements = dyn_cast<ElementsAttr>(key);
    // A constant is stored whole in the artifact, which protobuf limits to
    // 2 GiB: refuse a larger one before expanding it (a splat of a huge
    // batch would take all memory first).
    if (elements) {
      auto type = cast<RankedTensorType>(elements.getType());
      uint64_t size = 0;
      if (__builtin_mul_overflow(
              static_cast<uint64_t>(type.getNumElements()),
              static_cast<uint64_t>(elementBytes(type.getElementType())),
              &size) ||
          size > (uint64_t(1) << 31))
        return op.emitOpError("has a constant of ")
               << type << " (" << (size ? std::to_string(size) : "over 2^64")
               << " bytes), more than an artifact can hold (2 GiB)";
    }
    FailureOr<std::string> bytes =
        elements ? attrBytes(elements) : FailureOr<std::string>(failure());
    if (failed(bytes))
      return op.emitOpError("has a constant the CPU backend cannot store");
    std::string name = "const" + std::to_string(constants.size());
    addBuffer(name, bytes->size(), true);
    setInitialValue(*artifact.add_initial_values(), name, std::move(*bytes));
    constants[key] = name;
    return name;
  }

  LogicalResult emitEntry(func::FuncOp func);
};

/// Everything about one argument of an entry point.
struct ArgInfo {
  art::Value value;
  StorageKind kind;
  std::string buffer;
};

FailureOr<ArgInfo> describeArgument(ArtifactBuilder &ab, func::FuncOp func,
                                    unsigned i) {
  ArgInfo info;
  Type type = func.getArgument(i).getType();
  art::Value &v = info.value;
  setType(v.mutable_type(), type);
  v.set_updates(-1);
  auto param = func.getArgAttrOfType<FlatSymbolRefAttr>(
      i, TrainoptDialect::kParamAttrName);
  auto state =
      func.getArgAttrOfType<StringAttr>(i, TrainoptDialect::kStateAttrName);
  auto stateOf = func.getArgAttrOfType<FlatSymbolRefAttr>(
      i, TrainoptDialect::kStateOfAttrName);
  auto input =
      func.getArgAttrOfType<StringAttr>(i, TrainoptDialect::kInputAttrName);
  std::string initial;
  // Levels (the dialect verifies their grammar): parts along dims, then a
  // flat part (ZeRO), of a value of `trainopt.global_type` (a parameter's
  // initial value is the whole one: the runtime takes its rank's part); or
  // each rank's own value, whose whole is the ranks' mean.
  auto describeSharding = [&]() -> LogicalResult {
    auto sharding =
        func.getArgAttrOfType<StringAttr>(i, TrainoptDialect::kShardingAttrName);
    if (!sharding || sharding.getValue().empty())
      return success();
    auto global = func.getArgAttrOfType<TypeAttr>(
        i, TrainoptDialect::kGlobalTypeAttrName);
    SmallVector<StringRef> levels;
    sharding.getValue().split(levels, ',');
    bool mean = levels.size() == 1 && levels[0].ends_with(":mean");
    bool ok = mean ? !param : static_cast<bool>(global);
    for (StringRef level : levels)
      ok = ok && ab.axisSize(level.split(':').first) >= 1;
    if (!ok)
      return func.emitError()
             << "argument " << i << " has sharding '" << sharding.getValue()
             << "'; expected levels AXIS:DIM[/BLOCKS], then AXIS:flat, with "
             << TrainoptDialect::kGlobalTypeAttrName << " over mesh axes"
             << (param ? "" : ", or AXIS:mean");
    v.set_sharding(sharding.str());
    setType(v.mutable_global_type(), mean ? type : global.getValue());
    return success();
  };
  if (param) {
    auto op = SymbolTable::lookupNearestSymbolFrom<ParameterOp>(func, param);
    if (!op)
      return func.emitError() << "argument " << i << " names parameter "
                              << param << ", which does not exist";
    v.set_name(param.getValue().str());
    v.set_kind(art::Value::PARAMETER);
    v.set_trainable(op.getTrainable());
    if (!op.getInitialValue())
      return op.emitOpError("has no initial value to put in the artifact");
    FailureOr<std::string> bytes = attrBytes(*op.getInitialValue());
    if (failed(bytes))
      return op.emitOpError("has an initial value the artifact cannot hold");
    initial = std::move(*bytes);
    if (failed(describeSharding()))
      return failure();
  } else if (state) {
    // The training passes give every state argument its role.
    std::optional<ValueRole> role = argumentRole(func, i);
    if (role != ValueRole::optimizer_state && role != ValueRole::model_state &&
        role != ValueRole::step)
      return func.emitError() << "state argument " << i << " ('"
                              << state.getValue()
                              << "') has no optimizer_state, model_state or "
                                 "step role";
    v.set_kind(*role == ValueRole::step           ? art::Value::STEP
               : *role == ValueRole::model_state ? art::Value::MODEL_STATE
                                                  : art::Value::OPTIMIZER_STATE);
    if (stateOf) {
      v.set_name((stateOf.getValue() + "." + state.getValue()).str());
      v.set_state_of(stateOf.getValue().str());
    } else {
      v.set_name(state.getValue().str());
    }
    if (failed(describeSharding()))
      return failure();
    if (auto init = func.getArgAttrOfType<DenseElementsAttr>(
            i, TrainoptDialect::kInitAttrName)) {
      FailureOr<std::string> bytes = attrBytes(init);
      if (failed(bytes))
        return func.emitError() << "state argument " << i
                                << " has an initial value the artifact "
                                   "cannot hold";
      initial = std::move(*bytes);
    } else {
      initial.assign(tensorBytes(type), '\0');
    }
  } else if (input) {
    if (auto sharding = func.getArgAttrOfType<StringAttr>(
            i, TrainoptDialect::kShardingAttrName);
        sharding && !sharding.getValue().empty()) {
      // "AXIS:DIM": the global value is the ranks' along DIM.
      auto [axis, dimText] = sharding.getValue().split(':');
      int64_t dim = -1, ranks = ab.axisSize(axis);
      auto tt = cast<RankedTensorType>(type);
      if (dimText.getAsInteger(10, dim) || dim < 0 || dim >= tt.getRank() ||
          ranks < 1)
        return func.emitError()
               << "argument " << i << " has sharding '" << sharding.getValue()
               << "'; expected AXIS:DIM with an axis of the mesh";
      SmallVector<int64_t> global(tt.getShape());
      global[dim] *= ranks;
      setType(v.mutable_global_type(),
              RankedTensorType::get(global, tt.getElementType()));
      v.set_sharding(sharding.str());
    }
    v.set_name(input.getValue().str());
    v.set_kind(argumentRole(func, i) == ValueRole::labels ? art::Value::LABELS
                                                          : art::Value::INPUT);
    info.kind = StorageKind::Input;
    info.buffer = (func.getSymName() + "/" + input.getValue()).str();
    if (!ab.buffers.count(info.buffer))
      ab.addBuffer(info.buffer, tensorBytes(type), true);
    v.set_buffer(info.buffer);
    return info;
  } else {
    return func.emitError() << "argument " << i
                            << " is neither a parameter, optimizer state "
                               "nor a batch input";
  }
  info.kind = StorageKind::Persistent;
  info.buffer = "p/" + v.name();
  v.set_buffer(info.buffer);
  auto it = ab.persistentValues.find(v.name());
  if (it == ab.persistentValues.end()) {
    ab.addBuffer(info.buffer, tensorBytes(type), true);
    setInitialValue(*ab.artifact.add_initial_values(), info.buffer,
                    std::move(initial));
    ab.persistentValues[v.name()] = v;
  } else if (it->second.type().SerializeAsString() !=
             v.type().SerializeAsString()) {
    return func.emitError() << "'" << v.name()
                            << "' has different types in two entry points";
  }
  return info;
}

/// Library-call descriptors (layouts in Runtime/CPULibrary.h).
SmallVector<int64_t> dims(Value v) {
  return llvm::to_vector(cast<RankedTensorType>(v.getType()).getShape());
}

Type elementTypeOf(Value v) {
  return cast<RankedTensorType>(v.getType()).getElementType();
}

struct LibraryCall {
  std::string function;
  SmallVector<Value> buffers;
  std::vector<int64_t> ints;
  double flops = 0;
};

/// The element type of a call's float buffers, and what it accumulates in:
/// the element type itself for f32 and f64 (the CPU library's BLAS and
/// loops, cuBLASLt and cuDNN), f32 for bf16 and f16 (mixed precision: the
/// CPU library widens to f32 for its SGEMM; cuBLASLt and cuDNN take the
/// narrow inputs with an f32 compute type).
calls::Types callTypes(Type et) {
  calls::Types t;
  t.element = elementType(et);
  t.accumulate = et.isBF16() || et.isF16() ? calls::kF32 : t.element;
  return t;
}

/// The window of a conv or pool over the spatial dims of `x` and `y`.
calls::Window callWindow(ArrayRef<int64_t> xs, ArrayRef<int64_t> ks,
                         ArrayRef<int64_t> ys, ArrayRef<int64_t> strides,
                         ArrayRef<int64_t> dilations,
                         ArrayRef<int64_t> padding) {
  calls::Window w;
  w.rank = xs.size() - 2;
  for (int64_t d = 0; d < w.rank; ++d) {
    w.in[d] = xs[2 + d];
    w.kernel[d] = ks[d];
    w.out[d] = ys[2 + d];
    w.strides[d] = strides[d];
    w.dilations[d] = dilations[d];
    w.padBegin[d] = padding[d];
    w.padEnd[d] = padding[w.rank + d];
  }
  return w;
}

LibraryCall convCall(const char *name, Value x, Value w, Value y,
                     ArrayRef<int64_t> strides, ArrayRef<int64_t> padding,
                     ArrayRef<int64_t> dilations, int64_t groups, Type et,
                     SmallVector<Value> buffers, bool hasBias) {
  LibraryCall call;
  call.function = name;
  call.buffers = std::move(buffers);
  SmallVector<int64_t> xs = dims(x), ws = dims(w), ys = dims(y);
  calls::ConvCall desc;
  desc.types = callTypes(et);
  desc.hasBias = hasBias;
  desc.n = xs[0], desc.cin = xs[1], desc.cout = ws[0], desc.groups = groups;
  desc.window = callWindow(xs, ArrayRef<int64_t>(ws).drop_front(2), ys,
                           strides, dilations, padding);
  call.ints = desc.encode();
  double outPoints = 1, kernelPoints = 1;
  for (int64_t d : ArrayRef<int64_t>(ys).drop_front(2))
    outPoints *= d;
  for (int64_t d : ArrayRef<int64_t>(ws).drop_front(1))
    kernelPoints *= d;
  call.flops = 2.0 * ys[0] * ws[0] * outPoints * kernelPoints;
  return call;
}

LibraryCall poolCall(const char *name, Value x, Value y,
                     ArrayRef<int64_t> kernel, ArrayRef<int64_t> strides,
                     ArrayRef<int64_t> padding, ArrayRef<int64_t> dilations,
                     SmallVector<Value> buffers, std::optional<bool> includePad) {
  LibraryCall call;
  call.function = name;
  call.buffers = std::move(buffers);
  SmallVector<int64_t> xs = dims(x), ys = dims(y);
  calls::PoolCall desc;
  desc.types = callTypes(elementTypeOf(x));
  desc.n = xs[0], desc.c = xs[1];
  desc.window = callWindow(xs, kernel, ys, strides, dilations, padding);
  desc.average = includePad.has_value();
  desc.countIncludePad = includePad.value_or(false);
  call.ints = desc.encode();
  double n = 1;
  for (int64_t d : ys)
    n *= d;
  for (int64_t k : kernel)
    n *= k;
  call.flops = n;
  return call;
}

FailureOr<LibraryCall> libraryCall(Operation *op) {
  if (auto mm = dyn_cast<MatmulOp>(op)) {
    LibraryCall call;
    call.function = "matmul";
    call.buffers = {mm.getLhs(), mm.getRhs(), mm.getResult()};
    SmallVector<int64_t> l = dims(mm.getLhs()), r = dims(mm.getRhs()),
                         o = dims(mm.getResult());
    int64_t rank = o.size(), batchRank = rank - 2;
    int64_t m = o[rank - 2], n = o[rank - 1];
    int64_t k = mm.getTransposeLhs() ? l[l.size() - 2] : l.back();
    auto batchOf = [&](ArrayRef<int64_t> shape) {
      std::vector<int64_t> b(batchRank, 1);
      int64_t own = shape.size() - 2;
      for (int64_t i = 0; i < own; ++i)
        b[batchRank - own + i] = shape[i];
      return b;
    };
    calls::MatmulCall desc;
    desc.types = callTypes(elementTypeOf(mm.getResult()));
    desc.outBatch.assign(o.begin(), o.begin() + batchRank);
    desc.lhsBatch = batchOf(l);
    desc.rhsBatch = batchOf(r);
    desc.m = m, desc.n = n, desc.k = k;
    desc.transposeLhs = mm.getTransposeLhs();
    desc.transposeRhs = mm.getTransposeRhs();
    call.ints = desc.encode();
    double batch = 1;
    for (int64_t d : ArrayRef<int64_t>(o).take_front(batchRank))
      batch *= d;
    call.flops = 2.0 * batch * m * n * k;
    return call;
  }
  if (auto c = dyn_cast<ConvOp>(op)) {
    SmallVector<Value> buffers = {c.getInput(), c.getFilter()};
    if (c.getBias())
      buffers.push_back(c.getBias());
    buffers.push_back(c.getResult());
    return convCall("conv", c.getInput(), c.getFilter(), c.getResult(),
                    c.getStrides(), c.getPadding(), c.getDilations(),
                    c.getGroups(), elementTypeOf(c.getResult()), buffers,
                    static_cast<bool>(c.getBias()));
  }
  if (auto c = dyn_cast<ConvGradInputOp>(op))
    return convCall("conv_grad_input", c.getResult(), c.getLhs(),
                    c.getRhs(), c.getStrides(), c.getPadding(),
                    c.getDilations(), c.getGroups(),
                    elementTypeOf(c.getResult()),
                    {c.getRhs(), c.getLhs(), c.getResult()}, false);
  if (auto c = dyn_cast<ConvGradFilterOp>(op))
    return convCall("conv_grad_filter", c.getLhs(), c.getResult(),
                    c.getRhs(), c.getStrides(), c.getPadding(),
                    c.getDilations(), c.getGroups(),
                    elementTypeOf(c.getResult()),
                    {c.getLhs(), c.getRhs(), c.getResult()}, false);
  if (auto p = dyn_cast<MaxPoolOp>(op))
    return poolCall("max_pool", p.getInput(), p.getResult(),
                    p.getKernelShape(), p.getStrides(), p.getPadding(),
                    p.getDilations(), {p.getInput(), p.getResult()},
                    std::nullopt);
  if (auto p = dyn_cast<AvgPoolOp>(op))
    return poolCall("avg_pool", p.getInput(), p.getResult(),
                    p.getKernelShape(), p.getStrides(), p.getPadding(),
                    p.getDilations(), {p.getInput(), p.getResult()},
                    p.getCountIncludePad());
  if (auto p = dyn_cast<MaxPoolGradOp>(op))
    return poolCall("max_pool_grad", p.getInput(), p.getGrad(),
                    p.getKernelShape(), p.getStrides(), p.getPadding(),
                    p.getDilations(),
                    {p.getInput(), p.getGrad(), p.getResult()}, std::nullopt);
  if (auto p = dyn_cast<AvgPoolGradOp>(op))
    return poolCall("avg_pool_grad", p.getResult(), p.getGrad(),
                    p.getKernelShape(), p.getStrides(), p.getPadding(),
                    p.getDilations(), {p.getGrad(), p.getResult()},
                    p.getCountIncludePad());
  if (auto s = dyn_cast<ScatterAddOp>(op)) {
    LibraryCall call;
    call.function = "scatter_add";
    call.buffers = {s.getIndices(), s.getUpdates(), s.getResult()};
    SmallVector<int64_t> d = dims(s.getResult());
    int64_t axis = s.getAxis(), outer = 1, inner = 1;
    for (int64_t i = 0; i < axis; ++i)
      outer *= d[i];
    for (int64_t i = axis + 1, e = d.size(); i < e; ++i)
      inner *= d[i];
    int64_t numIndices =
        cast<RankedTensorType>(s.getIndices().getType()).getNumElements();
    calls::ScatterAddCall desc;
    desc.types = callTypes(elementTypeOf(s.getResult()));
    desc.indexElement = elementType(elementTypeOf(s.getIndices()));
    desc.outer = outer, desc.outAxis = d[axis], desc.numIndices = numIndices,
    desc.inner = inner;
    call.ints = desc.encode();
    call.flops = outer * numIndices * inner;
    return call;
  }
  if (auto c = dyn_cast<ConcatOp>(op)) {
    // Rows are the dims before the axis; each input's row is its bytes
    // over them (tensorBytes: the buffers' own sizes).
    LibraryCall call;
    call.function = "concat";
    SmallVector<int64_t> d = dims(c.getResult());
    int64_t outer = 1;
    for (int64_t i = 0, e = c.getAxis(); i < e; ++i)
      outer *= d[i];
    calls::ConcatCall desc;
    desc.types.element = desc.types.accumulate =
        elementType(elementTypeOf(c.getResult()));
    desc.outer = outer;
    for (Value in : c.getInputs()) {
      call.buffers.push_back(in);
      desc.rowBytes.push_back(
          outer == 0 ? 0
                     : static_cast<int64_t>(tensorBytes(in.getType())) / outer);
    }
    call.buffers.push_back(c.getResult());
    call.ints = desc.encode();
    call.flops = 0;
    return call;
  }
  if (auto k = dyn_cast<KthSmallestOp>(op)) {
    LibraryCall call;
    call.function = "kth_smallest";
    call.buffers = {k.getX(), k.getK(), k.getResult()};
    calls::KthSmallestCall desc;
    desc.types = callTypes(elementTypeOf(k.getResult()));
    desc.count = cast<RankedTensorType>(k.getX().getType()).getNumElements();
    call.ints = desc.encode();
    // A selection: about two passes over a copy when it selects.
    call.flops = 2 * desc.count;
    return call;
  }
  return op->emitOpError("has no CPU library call");
}

/// The mesh of the entry points (`trainopt.mesh`), into `meshAxes` and the
/// artifact.
LogicalResult ArtifactBuilder::readMesh() {
  FlatSymbolRefAttr ref;
  for (const char *name : {"train_step", "eval_step"}) {
    auto func = module.lookupSymbol<func::FuncOp>(name);
    auto mesh = func ? func->getAttrOfType<FlatSymbolRefAttr>(
                           TrainoptDialect::kMeshAttrName)
                     : FlatSymbolRefAttr();
    if (func && ref != mesh && ref)
      return func.emitError("the entry points run on different meshes");
    if (func)
      ref = mesh;
  }
  // A module whose collectives run on its one grid, without the sharding
  // stage's annotation (a hand-written or single-op program).
  if (!ref) {
    auto grids = llvm::to_vector(module.getOps<shard::GridOp>());
    if (grids.size() != 1)
      return success();
    ref = FlatSymbolRefAttr::get(grids[0].getSymNameAttr());
  }
  auto grid = module.lookupSymbol<shard::GridOp>(ref.getAttr());
  auto names =
      grid ? grid->getAttrOfType<ArrayAttr>(TrainoptDialect::kAxesAttrName)
           : ArrayAttr();
  if (!names || static_cast<int64_t>(names.size()) != grid.getRank())
    return module.emitError()
           << "the mesh " << ref << " is no shard.grid with one name per axis";
  art::Mesh *mesh = artifact.mutable_mesh();
  for (auto [name, size] : llvm::zip(names, grid.getShape())) {
    auto s = dyn_cast<StringAttr>(name);
    if (!s || size < 1)
      return grid.emitOpError("needs named axes of static sizes");
    meshAxes[s.getValue()] = size;
    art::MeshAxis *axis = mesh->add_axes();
    axis->set_name(s.str());
    axis->set_size(size);
  }
  return success();
}

/// The start command of collective `op` (`name`: all_reduce,
/// reduce_scatter, all_gather, rank_slice, broadcast, send, recv), without
/// its id, reduction and buffers.
FailureOr<art::Collective>
ArtifactBuilder::collective(Operation *op, FlatSymbolRefAttr gridRef,
                            ArrayRef<int16_t> gridAxes, StringRef name,
                            Type element) {
  if (libraryPrefix != "cpu")
    return op->emitOpError("has no ")
           << libraryPrefix
           << " runtime collective yet: sharded programs run on the CPU "
              "(MPI) for now";
  auto grid = SymbolTable::lookupNearestSymbolFrom<shard::GridOp>(op, gridRef);
  auto names =
      grid ? grid->getAttrOfType<ArrayAttr>(TrainoptDialect::kAxesAttrName)
           : ArrayAttr();
  if (!names || static_cast<int64_t>(names.size()) != grid.getRank() ||
      gridAxes.size() != 1)
    return op->emitOpError("needs one axis of a grid with named axes ('")
           << TrainoptDialect::kAxesAttrName << "')";
  art::Collective c;
  c.set_op(name.str());
  auto axis = dyn_cast<StringAttr>(names[gridAxes[0]]);
  if (!axis)
    return op->emitOpError("has a grid axis without a name");
  c.set_group(axis.str());
  c.set_element_type(elementType(element));
  return c;
}

/// Estimated FLOPs of a kernel: iterations times arithmetic ops per
/// iteration.
double kernelFlops(func::FuncOp kernel) {
  double total = 0;
  kernel.walk([&](linalg::GenericOp g) {
    double iterations = 1;
    for (int64_t r : g.getStaticLoopRanges())
      iterations *= r;
    int64_t ops = 0;
    g.getRegion().walk([&](Operation *op) {
      if (isa<arith::ArithDialect, math::MathDialect>(op->getDialect()) &&
          !isa<arith::ConstantOp, arith::IndexCastOp>(op))
        ++ops;
    });
    total += iterations * std::max<int64_t>(ops, 1);
  });
  return total;
}

LogicalResult ArtifactBuilder::emitEntry(func::FuncOp func) {
  art::EntryPoint *entry = artifact.add_entry_points();
  entry->set_name(func.getSymName().str());
  SmallVector<std::pair<StorageKind, std::string>> argStorage;
  for (unsigned i = 0; i < func.getNumArguments(); ++i) {
    FailureOr<ArgInfo> info = describeArgument(*this, func, i);
    if (failed(info))
      return failure();
    *entry->add_arguments() = info->value;
    argStorage.push_back({info->kind, info->buffer});
  }
  for (unsigned i = 0; i < func.getNumResults(); ++i) {
    std::optional<ValueRole> role = resultRole(func, i);
    if (role == ValueRole::gradient || role == ValueRole::update_gate)
      return func.emitError()
             << "result " << i << " is a " << stringifyValueRole(*role)
             << " of an unfinished training step; run trainopt-apply-optimizer";
  }

  // The memory plan (MemoryPlan.cpp); below, its serialization.
  FailureOr<MemoryPlan> planned = planMemory(
      func, argStorage,
      [&](arith::ConstantOp c) { return constantBuffer(c); });
  if (failed(planned))
    return failure();
  MemoryPlan &plan = *planned;
  std::vector<Storage> &storages = plan.storages;
  inPlace += plan.inPlace;
  donated += plan.donated;
  std::string prefix = func.getSymName().str() + "/s";
  for (int64_t id : plan.scratch) {
    Storage &s = storages[id];
    s.buffer = prefix + std::to_string(id);
    art::Buffer *b = addBuffer(s.buffer, s.bytes, false);
    b->set_offset(s.offset); // relative; rebased after all entries
    scratchBuffers.push_back(s.buffer);
  }
  scratchSize = std::max(scratchSize, plan.scratchSize);
  scratchLowerBound = std::max(scratchLowerBound, plan.lowerBound);

  auto ret = cast<func::ReturnOp>(func.front().getTerminator());
  for (auto [i, v] : llvm::enumerate(ret.getOperands())) {
    art::Value *result = entry->add_results();
    setType(result->mutable_type(), v.getType());
    result->set_updates(-1);
    result->set_buffer(storages[plan.resultStorage[i]].buffer);
    if (auto updates = func.getResultAttrOfType<IntegerAttr>(
            i, TrainoptDialect::kUpdatesAttrName)) {
      int64_t argIndex = updates.getInt();
      result->set_updates(argIndex);
      result->set_name(entry->arguments(argIndex).name());
      result->set_kind(entry->arguments(argIndex).kind());
      continue;
    }
    auto name = func.getResultAttrOfType<StringAttr>(
        i, TrainoptDialect::kOutputAttrName);
    result->set_name(name ? name.str() : "result" + std::to_string(i));
    std::optional<ValueRole> role = resultRole(func, i);
    result->set_kind(role == ValueRole::loss     ? art::Value::LOSS
                     : role == ValueRole::metric ? art::Value::METRIC
                                                 : art::Value::OUTPUT);
  }

  // Commands in schedule order.
  SymbolTable symbols(module);
  auto bufferOf = [&](Value v) {
    return storages[plan.storageOf.lookup(v)].buffer;
  };
  double entryFlops = 0;
  int64_t entryKernels = 0, entryCalls = 0;
  // Started collectives by the values they produce: each is waited for
  // just before the first command that reads one (views included).
  llvm::DenseMap<Value, uint32_t> pending;
  // Per started collective: its report entry, and commands run since.
  std::map<uint32_t, llvm::json::Object> started;
  auto waitId = [&](uint32_t id) {
    art::Collective *wait = entry->add_commands()->mutable_collective();
    llvm::json::Object &r = started[id];
    wait->set_op(r.getString("op")->str());
    wait->set_id(id);
    wait->set_wait(true);
    int64_t start = *r.getInteger("start");
    r["wait"] = entry->commands_size() - 1;
    // Commands between the start and the wait: compute that runs while
    // the collective communicates.
    r["overlapped_commands"] = entry->commands_size() - 2 - start;
    r["overlapped_flops"] = entryFlops - *r.getNumber("flops_at_start");
    if (func.getSymName() == "train_step")
      collectiveReports.push_back(std::move(r));
    started.erase(id);
    SmallVector<Value> done;
    for (auto &[value, started] : pending)
      if (started == id)
        done.push_back(value);
    for (Value d : done)
      pending.erase(d);
  };
  auto waitFor = [&](Operation *op) {
    for (Value v : op->getOperands())
      if (auto it = pending.find(v); it != pending.end())
        waitId(it->second);
  };
  // Sends complete by the end of the entry point.
  SmallVector<uint32_t> sends;
  for (Operation *op : plan.schedule) {
    if (auto r = dyn_cast<ReshapeOp>(op)) {
      if (auto it = pending.find(r.getX()); it != pending.end())
        pending[r.getResult()] = it->second;
      continue;
    }
    waitFor(op);
    if (isa<func::ReturnOp>(op))
      for (uint32_t id : std::exchange(sends, {}))
        waitId(id);
    if (isa<SendOp, RecvOp>(op)) {
      // {buffer}: what the send reads when it starts, or what the receive's
      // wait writes before the result's first reader.
      auto send = dyn_cast<SendOp>(op);
      auto recv = dyn_cast<RecvOp>(op);
      Value v = send ? send.getInput() : recv.getResult();
      FailureOr<art::Collective> c =
          collective(op, send ? send.getGridAttr() : recv.getGridAttr(),
                     send ? send.getGridAxes() : recv.getGridAxes(),
                     send ? "send" : "recv",
                     cast<RankedTensorType>(v.getType()).getElementType());
      if (failed(c))
        return failure();
      c->set_id(collectiveIds++);
      c->set_peer_offset(send ? send.getOffset() : recv.getOffset());
      c->add_buffers(bufferOf(v));
      uint64_t bytes = tensorBytes(v.getType());
      // A transfer's bytes count once, at the sender.
      if (func.getSymName() == "train_step" && send)
        communicationBytes[c->op()] += bytes;
      if (recv)
        pending[v] = c->id();
      else
        sends.push_back(c->id());
      started[c->id()] =
          llvm::json::Object{{"id", static_cast<int64_t>(c->id())},
                             {"op", c->op()},
                             {"group", c->group()},
                             {"tensors", 1},
                             {"bytes", send ? bytes : uint64_t(0)},
                             {"start", entry->commands_size()},
                             {"flops_at_start", entryFlops}};
      ++collectives;
      *entry->add_commands()->mutable_collective() = std::move(*c);
      continue;
    }
    if (isa<RankSliceOp, AllGatherOp, BroadcastOp>(op)) {
      // {input, output}. A rank slice is a local copy: one command, no
      // wait; an all-gather and a broadcast are waited for before their
      // result's first reader.
      bool slice = isa<RankSliceOp>(op);
      Value result = op->getResult(0);
      FailureOr<art::Collective> c = collective(
          op, op->getAttrOfType<FlatSymbolRefAttr>("grid"),
          op->getAttrOfType<DenseI16ArrayAttr>("grid_axes").asArrayRef(),
          slice                   ? "rank_slice"
          : isa<AllGatherOp>(op) ? "all_gather"
                                  : "broadcast",
          cast<RankedTensorType>(result.getType()).getElementType());
      if (failed(c))
        return failure();
      c->set_id(collectiveIds++);
      if (auto bcast = dyn_cast<BroadcastOp>(op))
        c->set_root(static_cast<int64_t>(bcast.getRoot()));
      c->add_buffers(bufferOf(op->getOperand(0)));
      c->add_buffers(bufferOf(result));
      if (!slice) {
        pending[result] = c->id();
        uint64_t bytes = tensorBytes(result.getType());
        if (func.getSymName() == "train_step")
          communicationBytes[c->op()] += bytes;
        started[c->id()] =
            llvm::json::Object{{"id", static_cast<int64_t>(c->id())},
                               {"op", c->op()},
                               {"group", c->group()},
                               {"tensors", 1},
                               {"bytes", bytes},
                               {"start", entry->commands_size()},
                               {"flops_at_start", entryFlops}};
        ++collectives;
      }
      *entry->add_commands()->mutable_collective() = std::move(*c);
      continue;
    }
    if (isa<AllReduceOp, ReduceScatterOp>(op)) {
      // {inputs..., results...}; each result is waited for before its
      // first reader. A reduce-scatter's bytes are its inputs' (what a
      // ring moves (N-1)/N of), an all-reduce's its results'.
      auto scatter = dyn_cast<ReduceScatterOp>(op);
      auto reduce = dyn_cast<AllReduceOp>(op);
      FailureOr<art::Collective> c = collective(
          op, scatter ? scatter.getGridAttr() : reduce.getGridAttr(),
          scatter ? scatter.getGridAxes() : reduce.getGridAxes(),
          scatter ? "reduce_scatter" : "all_reduce",
          cast<RankedTensorType>(op->getOperand(0).getType()).getElementType());
      if (failed(c))
        return failure();
      c->set_reduction(stringifyCollectiveReduction(
                           scatter ? scatter.getReduction()
                                   : reduce.getReduction())
                           .str());
      c->set_id(collectiveIds++);
      uint64_t bytes = 0;
      for (Value v : op->getOperands()) {
        c->add_buffers(bufferOf(v));
        if (scatter)
          bytes += tensorBytes(v.getType());
      }
      for (Value v : op->getResults()) {
        c->add_buffers(bufferOf(v));
        pending[v] = c->id();
        if (!scatter)
          bytes += tensorBytes(v.getType());
      }
      if (func.getSymName() == "train_step")
        communicationBytes[c->op()] += bytes;
      started[c->id()] = llvm::json::Object{
          {"id", static_cast<int64_t>(c->id())},
          {"op", c->op()},
          {"group", c->group()},
          {"tensors", static_cast<int64_t>(op->getNumResults())},
          {"bytes", bytes},
          {"start", entry->commands_size()},
          {"flops_at_start", entryFlops}};
      ++collectives;
      *entry->add_commands()->mutable_collective() = std::move(*c);
      continue;
    }
    if (auto call = dyn_cast<func::CallOp>(op)) {
      auto kernel = symbols.lookup<func::FuncOp>(call.getCallee());
      art::KernelLaunch *launch = entry->add_commands()->mutable_launch();
      launch->set_kernel(kernel.getSymName().str());
      for (Value v : call.getOperands())
        launch->add_buffers(bufferOf(v));
      for (Value v : call.getResults())
        launch->add_buffers(bufferOf(v));
      if (kernelNames.insert(kernel.getSymName()).second)
        kernels.push_back(kernel);
      entryFlops += kernelFlops(kernel);
      ++entryKernels;
      continue;
    }
    if (isLibraryOp(op)) {
      FailureOr<LibraryCall> call = libraryCall(op);
      if (failed(call))
        return failure();
      art::LibraryCall *lc = entry->add_commands()->mutable_library_call();
      lc->set_function(libraryPrefix + "." + call->function);
      for (Value v : call->buffers)
        lc->add_buffers(bufferOf(v));
      for (int64_t i : call->ints)
        lc->add_int_args(i);
      entryFlops += call->flops;
      ++entryCalls;
    }
  }
  if (!pending.empty())
    return func.emitError("a collective's result is never read, not even "
                          "by the return");
  for (MemoryPlan::Copy c : plan.copies) {
    art::Copy *copy = entry->add_commands()->mutable_copy();
    copy->set_from(storages[c.from].buffer);
    copy->set_to(storages[c.to].buffer);
    copy->set_size(storages[c.to].bytes);
    ++copies;
  }
  if (func.getSymName() == "train_step")
    flops = entryFlops;
  kernelLaunches += entryKernels;
  libraryCalls += entryCalls;
  entryReports.push_back(llvm::json::Object{
      {"name", func.getSymName()},
      {"kernels", entryKernels},
      {"library_calls", entryCalls},
      {"copies", static_cast<int64_t>(plan.copies.size())},
      {"flops", entryFlops},
      {"scratch_bytes", plan.scratchSize},
      {"scratch_lower_bound_bytes", plan.lowerBound}});
  return success();
}

/// The alpha-beta cost model of train_step (`trainopt.cost_model`, set by
/// trainopt-shard-step): compute at a rate, each collective at latency x
/// messages + bytes sent / bandwidth (ring counts: an all-reduce sends
/// 2(N-1)/N of its buffer in 2(N-1) messages, an all-gather (N-1)/N of its
/// result in N-1), of which what the compute between its start and its
/// wait does not cover is exposed. Adds the prediction to `report` and to
/// each collective's entry.
void predictStepTime(ModuleOp module, ArtifactBuilder &ab,
                     llvm::json::Object &report) {
  auto step = module.lookupSymbol<func::FuncOp>("train_step");
  auto model = step ? step->getAttrOfType<DictionaryAttr>("trainopt.cost_model")
                    : DictionaryAttr();
  if (!model)
    return;
  auto number = [&](StringRef key) {
    auto f = model.getAs<FloatAttr>(key);
    return f ? f.getValueAsDouble() : 0.0;
  };
  double alpha = number("latency_us") * 1e-6, beta = number("gbps") * 1e9,
         rate = number("compute_gflops") * 1e9;
  if (!(beta > 0) || !(rate > 0))
    return;
  double compute = ab.flops / rate, communication = 0, exposed = 0;
  // A 1F1B pipeline of K stages over M micro-batches idles each stage for
  // K - 1 of its M + K - 1 slots (the bubble).
  if (auto pipeline = step->getAttrOfType<DictionaryAttr>(
          TrainoptDialect::kPipelineAttrName)) {
    double k = cast<IntegerAttr>(pipeline.get("stages")).getInt();
    double m = cast<IntegerAttr>(pipeline.get("micro_batches")).getInt();
    report["predicted_bubble_fraction"] = (k - 1) / (m + k - 1);
    compute *= (m + k - 1) / m;
  }
  for (llvm::json::Value &v : ab.collectiveReports) {
    llvm::json::Object &c = *v.getAsObject();
    double n = static_cast<double>(ab.axisSize(*c.getString("group")));
    double bytes = *c.getNumber("bytes");
    // A ring all-reduce is a reduce-scatter then an all-gather: 2(N-1)
    // steps of S/N; either half alone is N-1 of them.
    StringRef op = *c.getString("op");
    bool reduce = op == "all_reduce";
    double messages = (reduce ? 2 : 1) * (n - 1);
    double t = messages * alpha + messages / n * bytes / beta;
    // A pipeline transfer is one message, costed at the sender.
    if (op == "send" || op == "recv")
      t = op == "send" ? alpha + bytes / beta : 0.0;
    // A broadcast as a binomial tree: ceil(log2 N) rounds of the whole.
    if (op == "broadcast")
      t = std::ceil(std::log2(n)) * (alpha + bytes / beta);
    double hidden = std::min(t, *c.getNumber("overlapped_flops") / rate);
    c["predicted_ms"] = 1e3 * t;
    c["predicted_exposed_ms"] = 1e3 * (t - hidden);
    communication += t;
    exposed += t - hidden;
  }
  report["cost_model"] =
      llvm::json::Object{{"link", model.getAs<StringAttr>("link").str()},
                         {"latency_us", number("latency_us")},
                         {"gbps", number("gbps")},
                         {"compute_gflops", number("compute_gflops")}};
  report["predicted_step_ms"] = 1e3 * (compute + exposed);
  report["predicted_compute_ms"] = 1e3 * compute;
  report["predicted_communication_ms"] = 1e3 * communication;
  report["predicted_exposed_communication_ms"] = 1e3 * exposed;
}

} // namespace

FailureOr<SmallVector<func::FuncOp>>
mlir::trainopt::emitArtifactPlan(ModuleOp module, StringRef target,
                                 StringRef libraryPrefix,
                                 art::Artifact &artifact,
                                 llvm::json::Object &report) {
  ArtifactBuilder ab{module, artifact, report, libraryPrefix.str()};
  artifact.set_target(target.str());
  if (failed(ab.readMesh()))
    return failure();
  for (const char *name : {"train_step", "eval_step"}) {
    auto func = module.lookupSymbol<func::FuncOp>(name);
    if (!func)
      continue;
    if (failed(ab.emitEntry(func)))
      return failure();
  }
  if (artifact.entry_points().empty())
    return module.emitError("no train_step or eval_step to compile");
  // The scratch region follows the fixed buffers.
  uint64_t scratchBase = ab.persistentEnd;
  for (const std::string &name : ab.scratchBuffers)
    ab.buffers[name]->set_offset(ab.buffers[name]->offset() + scratchBase);
  uint64_t arena = scratchBase + ab.scratchSize;
  art::MemoryPlan *plan = artifact.mutable_memory_plan();
  plan->add_arena_size(arena);
  plan->add_lower_bound(scratchBase + ab.scratchLowerBound);

  int64_t parameters = 0, trainable = 0;
  for (auto &[name, v] : ab.persistentValues) {
    if (v.kind() != art::Value::PARAMETER)
      continue;
    int64_t n = 1;
    for (int64_t d : v.type().shape())
      n *= d;
    parameters += n;
    if (v.trainable())
      trainable += n;
  }
  report["target"] = target.str();
  report["parameters"] = parameters;
  report["trainable_parameters"] = trainable;
  report["flops_per_step"] = ab.flops;
  report["kernels"] = static_cast<int64_t>(ab.kernels.size());
  report["kernel_launches"] = ab.kernelLaunches;
  report["library_calls"] = ab.libraryCalls;
  report["copies"] = ab.copies;
  report["in_place_results"] = ab.inPlace;
  report["donated_updates"] = ab.donated;
  report["persistent_bytes"] = scratchBase;
  report["arena_bytes"] = arena;
  report["arena_lower_bound_bytes"] = scratchBase + ab.scratchLowerBound;
  report["scratch_bytes"] = ab.scratchSize;
  report["scratch_lower_bound_bytes"] = ab.scratchLowerBound;
  report["entry_points"] = std::move(ab.entryReports);
  if (artifact.has_mesh()) {
    llvm::json::Object mesh, bytes;
    for (const art::MeshAxis &a : artifact.mesh().axes())
      mesh[a.name()] = a.size();
    for (const auto &[op, n] : ab.communicationBytes)
      bytes[op] = n;
    report["mesh"] = std::move(mesh);
    report["collectives"] = ab.collectives;
    // Bytes each rank contributes per train_step, by collective.
    report["communication_bytes_per_step"] = std::move(bytes);
    predictStepTime(module, ab, report);
    report["train_step_collectives"] = std::move(ab.collectiveReports);
    // Per parameter, the sharding it got and why (trainopt-shard-step).
    llvm::json::Object decisions;
    if (auto step = module.lookupSymbol<func::FuncOp>("train_step"))
      if (auto d = step->getAttrOfType<DictionaryAttr>(
              "trainopt.sharding_decisions"))
        for (NamedAttribute a : d)
          if (auto why = dyn_cast<StringAttr>(a.getValue()))
            decisions[a.getName().getValue()] = why.str();
    report["sharding_decisions"] = std::move(decisions);
  }
  return ab.kernels;
}
