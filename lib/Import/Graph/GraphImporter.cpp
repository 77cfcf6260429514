//===- GraphImporter.cpp - trainopt graphs to the dialect -----------------===//

#include "trainopt/Import/Graph/GraphImporter.h"

#include "trainopt/Dialect/Trainopt/IR/TrainoptDialect.h"
#include "trainopt/Dialect/Trainopt/IR/TrainoptOps.h"
#include "trainopt/Graph/graph.pb.h"
#include "trainopt/Import/ImportCommon.h"

#include "mlir/AsmParser/AsmParser.h"
#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/IR/Builders.h"
#include "mlir/IR/DialectResourceBlobManager.h"
#include "mlir/IR/Verifier.h"
#include "llvm/ADT/StringMap.h"
#include "llvm/ADT/StringSet.h"
#include "llvm/Support/MemoryBuffer.h"

#include <cmath>
#include <cstring>
#include <limits>

using namespace mlir;
using namespace mlir::trainopt;
using import::Problems;

bool mlir::trainopt::isGraphFile(StringRef path) {
  auto buffer = llvm::MemoryBuffer::getFileSlice(path, 2 + kGraphMagic.size(),
                                                 0, /*IsVolatile=*/false);
  if (!buffer)
    return false;
  // Field 1, length-delimited (tag 0x0a), the magic's length, the magic.
  std::string expected = "\x0a";
  expected += static_cast<char>(kGraphMagic.size());
  expected += kGraphMagic.str();
  return (*buffer)->getBuffer() == expected;
}

namespace {

/// SplitMix64: a small generator with the same stream everywhere.
class SplitMix64 {
public:
  explicit SplitMix64(uint64_t seed) : state(seed) {}
  uint64_t next() {
    uint64_t z = (state += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
  }
  /// Uniform in [0, 1).
  double uniform() { return static_cast<double>(next() >> 11) * 0x1.0p-53; }
  /// Standard normal (Box-Muller, one value per two uniforms).
  double normal() {
    double u1 = 1.0 - uniform(); // (0, 1]
    double u2 = uniform();
    return std::sqrt(-2.0 * std::log(u1)) * std::cos(2.0 * M_PI * u2);
  }

private:
  uint64_t state;
};

class GraphImporter {
public:
  GraphImporter(MLIRContext *ctx, StringRef path,
                const GraphImportOptions &options)
      : ctx(ctx), path(path.str()), options(options), builder(ctx) {}

  OwningOpRef<ModuleOp> run();

private:
  FailureOr<Type> elementType(::trainopt::graph::DType dtype,
                              const std::string &what);
  FailureOr<RankedTensorType> tensorType(const ::trainopt::graph::TensorType &t,
                                         const std::string &what,
                                         bool batchDim = false);
  /// The raw little-endian bytes of `tensor`, checked against its type.
  FailureOr<std::vector<char>> tensorBytes(const ::trainopt::graph::Tensor &t,
                                           RankedTensorType type,
                                           const std::string &what);
  FailureOr<ElementsAttr> initialValue(const ::trainopt::graph::Parameter &p,
                                       RankedTensorType type);
  FailureOr<Attribute> attribute(const ::trainopt::graph::Attribute &a,
                                 const std::string &what);
  void importNode(const ::trainopt::graph::Node &node, int index);

  MLIRContext *ctx;
  std::string path;
  const GraphImportOptions &options;
  OpBuilder builder;
  Problems problems;
  llvm::StringMap<Value> values;
  /// Names of values that failed to import: their readers stay quiet.
  llvm::StringSet<> poisoned;
};

} // namespace

FailureOr<Type> GraphImporter::elementType(::trainopt::graph::DType dtype,
                                           const std::string &what) {
  Builder b(ctx);
  switch (dtype) {
  case ::trainopt::graph::F32:
    return Type(b.getF32Type());
  case ::trainopt::graph::F64:
    return Type(b.getF64Type());
  case ::trainopt::graph::F16:
    return Type(b.getF16Type());
  case ::trainopt::graph::BF16:
    return Type(b.getBF16Type());
  case ::trainopt::graph::I64:
    return Type(b.getI64Type());
  case ::trainopt::graph::I32:
    return Type(b.getI32Type());
  case ::trainopt::graph::I8:
    return Type(b.getI8Type());
  case ::trainopt::graph::BOOL:
    return Type(b.getI1Type());
  default:
    problems.add(what + ": element type " + std::to_string(dtype) +
                 " is not one of the dialect's (f32, f64, f16, bf16, i64, "
                 "i32, i8, bool)");
    return failure();
  }
}

FailureOr<RankedTensorType>
GraphImporter::tensorType(const ::trainopt::graph::TensorType &t,
                          const std::string &what, bool batchDim) {
  FailureOr<Type> elt = elementType(t.dtype(), what);
  if (failed(elt))
    return failure();
  SmallVector<int64_t> shape(t.shape().begin(), t.shape().end());
  int64_t count = 1;
  for (auto [i, d] : llvm::enumerate(shape)) {
    if (d == -1 && batchDim && i == 0) {
      if (!options.batchSize) {
        problems.add(what + ": its batch dim is -1 (any); pass --batch-size N");
        return failure();
      }
      d = *options.batchSize;
    }
    if (d < 0) {
      problems.add(what + ": dim " + std::to_string(i) + " is " +
                   std::to_string(d) + "; dims are sizes (>= 0)" +
                   (i == 0 ? ", or -1 for a data input's batch dim" : ""));
      return failure();
    }
    if (d > 0 && count > std::numeric_limits<int64_t>::max() / 8 / d) {
      problems.add(what + ": its shape holds more elements than fit in memory");
      return failure();
    }
    count *= d > 0 ? d : 1;
  }
  return RankedTensorType::get(shape, *elt);
}

FailureOr<std::vector<char>>
GraphImporter::tensorBytes(const ::trainopt::graph::Tensor &t,
                           RankedTensorType type, const std::string &what) {
  Type elt = type.getElementType();
  if (elt.isInteger(1)) {
    problems.add(what + ": bool tensor data is not supported (give a bool "
                        "value as an input)");
    return failure();
  }
  size_t size = elt.getIntOrFloatBitWidth() / 8;
  auto expected = static_cast<size_t>(type.getNumElements()) * size;
  if (t.raw_data().size() != expected) {
    problems.add(what + ": raw_data holds " +
                 std::to_string(t.raw_data().size()) + " bytes, its type " +
                 std::to_string(type.getNumElements()) + " elements of " +
                 std::to_string(size) + " bytes");
    return failure();
  }
  // Little-endian in the file; the host is little-endian too (x86-64,
  // aarch64), which the runtime assumes as well.
  return std::vector<char>(t.raw_data().begin(), t.raw_data().end());
}

FailureOr<ElementsAttr>
GraphImporter::initialValue(const ::trainopt::graph::Parameter &p,
                            RankedTensorType type) {
  std::string what = "parameter '" + p.name() + "'";
  const ::trainopt::graph::Initializer &init = p.init();
  std::vector<char> bytes;
  Type elt = type.getElementType();
  if (init.kind_case() == ::trainopt::graph::Initializer::kData) {
    FailureOr<RankedTensorType> given =
        tensorType(init.data().type(), what + "'s data");
    if (failed(given))
      return failure();
    if (*given != type) {
      std::string s;
      llvm::raw_string_ostream os(s);
      os << what << ": its data is " << *given << ", the parameter " << type;
      problems.add(os.str());
      return failure();
    }
    FailureOr<std::vector<char>> raw = tensorBytes(init.data(), type, what);
    if (failed(raw))
      return failure();
    bytes = std::move(*raw);
  } else {
    auto floatType = dyn_cast<FloatType>(elt);
    if (!floatType) {
      problems.add(what + ": an integer parameter needs its values (data)");
      return failure();
    }
    int64_t n = type.getNumElements(), fanIn = 1, fanOut = 1;
    for (int64_t d = 1; d < type.getRank(); ++d)
      fanIn *= type.getDimSize(d);
    fanOut = type.getRank() > 0 ? type.getDimSize(0) : 1;
    for (int64_t d = 2; d < type.getRank(); ++d)
      fanOut *= type.getDimSize(d);
    SplitMix64 rng(init.seed());
    std::function<double()> draw;
    double bound = 0;
    switch (init.kind_case()) {
    case ::trainopt::graph::Initializer::kConstant:
      draw = [&] { return init.constant(); };
      break;
    case ::trainopt::graph::Initializer::kNormal:
      draw = [&] {
        return init.normal().mean() + init.normal().std() * rng.normal();
      };
      break;
    case ::trainopt::graph::Initializer::kUniform:
      draw = [&] {
        return init.uniform().low() +
               (init.uniform().high() - init.uniform().low()) * rng.uniform();
      };
      break;
    case ::trainopt::graph::Initializer::kKaiming:
      bound = init.kaiming().gain() / std::sqrt(static_cast<double>(fanIn));
      draw = init.kaiming().normal()
                 ? std::function<double()>([&] { return bound * rng.normal(); })
                 : [&] {
                     return std::sqrt(3.0) * bound * (2 * rng.uniform() - 1);
                   };
      break;
    case ::trainopt::graph::Initializer::kXavier:
      bound = init.xavier().gain() *
              std::sqrt(2.0 / static_cast<double>(fanIn + fanOut));
      draw = init.xavier().normal()
                 ? std::function<double()>([&] { return bound * rng.normal(); })
                 : [&] {
                     return std::sqrt(3.0) * bound * (2 * rng.uniform() - 1);
                   };
      break;
    default:
      problems.add(what + ": no initializer (data, constant, normal, uniform, "
                          "kaiming or xavier)");
      return failure();
    }
    size_t size = floatType.getWidth() / 8;
    bytes.resize(static_cast<size_t>(n) * size);
    for (int64_t i = 0; i < n; ++i) {
      bool lost = false;
      APFloat v(draw());
      v.convert(floatType.getFloatSemantics(), APFloat::rmNearestTiesToEven,
                &lost);
      uint64_t bits = v.bitcastToAPInt().getZExtValue();
      std::memcpy(bytes.data() + i * size, &bits, size);
    }
  }
  size_t align = std::max<size_t>(elt.getIntOrFloatBitWidth() / 8, 1);
  AsmResourceBlob blob =
      HeapAsmResourceBlob::allocateAndCopyWithAlign(bytes, align);
  return cast<ElementsAttr>(
      DenseResourceElementsAttr::get(type, p.name(), std::move(blob)));
}

FailureOr<Attribute>
GraphImporter::attribute(const ::trainopt::graph::Attribute &a,
                         const std::string &what) {
  Builder b(ctx);
  switch (a.value_case()) {
  case ::trainopt::graph::Attribute::kI:
    return Attribute(b.getI64IntegerAttr(a.i()));
  case ::trainopt::graph::Attribute::kF:
    return Attribute(b.getF64FloatAttr(a.f()));
  case ::trainopt::graph::Attribute::kB:
    return Attribute(b.getBoolAttr(a.b()));
  case ::trainopt::graph::Attribute::kS: {
    // An enum or other dialect attribute in its MLIR syntax
    // ("#trainopt<reduction mean>"); a string otherwise.
    if (!StringRef(a.s()).starts_with("#"))
      return Attribute(b.getStringAttr(a.s()));
    Attribute parsed = parseAttribute(a.s(), ctx);
    if (!parsed) {
      problems.add(what + ": '" + a.s() + "' is not an attribute");
      return failure();
    }
    return parsed;
  }
  case ::trainopt::graph::Attribute::kInts:
    return Attribute(b.getDenseI64ArrayAttr(SmallVector<int64_t>(
        a.ints().values().begin(), a.ints().values().end())));
  case ::trainopt::graph::Attribute::kFloats:
    return Attribute(b.getDenseF64ArrayAttr(SmallVector<double>(
        a.floats().values().begin(), a.floats().values().end())));
  case ::trainopt::graph::Attribute::kTensor: {
    FailureOr<RankedTensorType> type = tensorType(a.tensor().type(), what);
    if (failed(type))
      return failure();
    FailureOr<std::vector<char>> bytes = tensorBytes(a.tensor(), *type, what);
    if (failed(bytes))
      return failure();
    return Attribute(DenseElementsAttr::getFromRawBuffer(*type, *bytes));
  }
  default:
    problems.add(what + ": no value");
    return failure();
  }
}

void GraphImporter::importNode(const ::trainopt::graph::Node &node, int index) {
  std::string name = node.name().empty() ? "#" + std::to_string(index)
                                         : "'" + node.name() + "'";
  std::string what = "node " + name + " (" + node.op() + ")";
  auto poison = [&] {
    for (const ::trainopt::graph::Value &out : node.outputs())
      poisoned.insert(out.name());
  };
  std::string opName = "trainopt." + node.op();
  std::optional<RegisteredOperationName> registered =
      RegisteredOperationName::lookup(opName, ctx);
  if (!registered || node.op() == "parameter") {
    problems.add(what + ": '" + node.op() +
                 "' is not an op of the trainopt dialect "
                 "(docs/generated/TrainoptOps.md lists them)");
    return poison();
  }
  bool ok = true;
  SmallVector<Value> operands;
  for (const std::string &in : node.inputs()) {
    auto it = values.find(in);
    if (it != values.end()) {
      operands.push_back(it->second);
      continue;
    }
    if (!poisoned.contains(in))
      problems.add(what + ": input '" + in +
                   "' is not a parameter, an input or the output of an "
                   "earlier node");
    ok = false;
  }
  SmallVector<Type> resultTypes;
  for (const ::trainopt::graph::Value &out : node.outputs()) {
    FailureOr<RankedTensorType> type = tensorType(
        out.type(), what + " output '" + out.name() + "'", /*batchDim=*/true);
    if (failed(type))
      ok = false;
    else
      resultTypes.push_back(*type);
    if (values.count(out.name()) || poisoned.contains(out.name())) {
      problems.add(what + ": output '" + out.name() +
                   "' is already defined (each value is written once)");
      ok = false;
    }
  }
  SmallVector<NamedAttribute> attrs;
  for (const auto &[key, value] : node.attributes()) {
    FailureOr<Attribute> attr =
        attribute(value, what + " attribute '" + key + "'");
    if (failed(attr))
      ok = false;
    else
      attrs.push_back(builder.getNamedAttr(key, *attr));
  }
  if (!ok)
    return poison();
  // The op, built generically and verified as the dialect defines it.
  Location loc = NameLoc::get(builder.getStringAttr(
      node.name().empty() ? "#" + std::to_string(index) : node.name()));
  OperationState state(loc, *registered);
  state.addOperands(operands);
  state.addTypes(resultTypes);
  state.addAttributes(attrs);
  std::string diagnostics;
  Operation *op = nullptr;
  {
    ScopedDiagnosticHandler capture(ctx, [&](Diagnostic &d) {
      if (!diagnostics.empty())
        diagnostics += "; ";
      diagnostics += d.str();
      return success();
    });
    // The dialect's verifier checks the declared result types against the
    // op's own inference where it has one.
    op = builder.create(state);
    ok = succeeded(verify(op));
  }
  if (!ok) {
    problems.add(what + ": " + diagnostics);
    op->erase();
    return poison();
  }
  for (auto [out, result] : llvm::zip(node.outputs(), op->getResults()))
    values[out.name()] = result;
}

OwningOpRef<ModuleOp> GraphImporter::run() {
  Location fileLoc = FileLineColLoc::get(ctx, path, 0, 0);
  auto fail = [&]() -> OwningOpRef<ModuleOp> {
    import::reportProblems(fileLoc, "trainopt graph", path, problems);
    return nullptr;
  };
  ::trainopt::graph::Graph graph;
  if (failed(import::readProtoFile(path, graph,
                                   "not a valid trainopt graph (the file is "
                                   "truncated, corrupt or not a .tgraph)",
                                   problems)))
    return fail();
  if (graph.magic() != kGraphMagic.str()) {
    problems.add("not a trainopt graph (its magic is '" + graph.magic() +
                 "', not '" + kGraphMagic.str() + "')");
    return fail();
  }
  if (graph.version() < 1 || graph.version() > kGraphVersion) {
    problems.add(
        "graph schema version " + std::to_string(graph.version()) +
        "; this trainopt reads versions 1 to " + std::to_string(kGraphVersion) +
        (graph.version() > kGraphVersion ? " (a newer trainopt wrote it)"
                                         : ""));
    return fail();
  }
  OwningOpRef<ModuleOp> module = ModuleOp::create(fileLoc);
  builder.setInsertionPointToEnd(module->getBody());

  // Parameters, then data inputs: @forward's arguments.
  SmallVector<Type> argTypes;
  SmallVector<Attribute> argAttrs;
  SmallVector<Operation *> params;
  SmallVector<std::string> argNames;
  llvm::StringSet<> names;
  for (const ::trainopt::graph::Parameter &p : graph.parameters()) {
    std::string what = "parameter '" + p.name() + "'";
    if (p.name().empty() || !names.insert(p.name()).second) {
      problems.add(p.name().empty() ? "a parameter has no name"
                                    : what + ": defined twice");
      continue;
    }
    FailureOr<RankedTensorType> type = tensorType(p.type(), what);
    FailureOr<ElementsAttr> value = failure();
    if (succeeded(type))
      value = initialValue(p, *type);
    if (failed(value)) {
      poisoned.insert(p.name());
      continue;
    }
    bool trainable = p.trainable() && isa<FloatType>(type->getElementType()) &&
                     import::allFinite(*value);
    auto op = ParameterOp::create(
        builder, NameLoc::get(builder.getStringAttr(p.name()), fileLoc),
        builder.getStringAttr(p.name()), TypeAttr::get(*type),
        trainable ? builder.getUnitAttr() : UnitAttr(), *value);
    params.push_back(op);
    argTypes.push_back(*type);
    argAttrs.push_back(builder.getDictionaryAttr(
        builder.getNamedAttr(TrainoptDialect::kParamAttrName,
                             FlatSymbolRefAttr::get(op.getSymNameAttr()))));
    argNames.push_back(p.name());
  }
  for (const ::trainopt::graph::Value &in : graph.inputs()) {
    std::string what = "input '" + in.name() + "'";
    if (in.name().empty() || !names.insert(in.name()).second) {
      problems.add(in.name().empty() ? "an input has no name"
                                     : what + ": defined twice");
      continue;
    }
    FailureOr<RankedTensorType> type =
        tensorType(in.type(), what, /*batchDim=*/true);
    if (failed(type)) {
      poisoned.insert(in.name());
      continue;
    }
    argTypes.push_back(*type);
    argAttrs.push_back(builder.getDictionaryAttr(builder.getNamedAttr(
        TrainoptDialect::kInputAttrName, builder.getStringAttr(in.name()))));
    argNames.push_back(in.name());
  }
  auto func = func::FuncOp::create(builder, fileLoc, "forward",
                                   builder.getFunctionType(argTypes, {}));
  Block *body = func.addEntryBlock();
  for (auto [i, name] : llvm::enumerate(argNames))
    values[name] = body->getArgument(i);
  builder.setInsertionPointToStart(body);
  for (auto [i, node] : llvm::enumerate(graph.nodes()))
    importNode(node, static_cast<int>(i));

  SmallVector<Value> results;
  SmallVector<Attribute> resultAttrs;
  llvm::StringSet<> outputNames;
  for (const ::trainopt::graph::Output &out : graph.outputs()) {
    if (!outputNames.insert(out.name()).second) {
      problems.add("output '" + out.name() + "' is named twice");
      continue;
    }
    auto it = values.find(out.value());
    if (it == values.end()) {
      if (!poisoned.contains(out.value()))
        problems.add("output '" + out.name() + "': '" + out.value() +
                     "' is not a value of the graph");
      continue;
    }
    results.push_back(it->second);
    resultAttrs.push_back(builder.getDictionaryAttr(builder.getNamedAttr(
        TrainoptDialect::kOutputAttrName, builder.getStringAttr(out.name()))));
  }
  if (graph.outputs_size() == 0)
    problems.add("the graph has no outputs");
  if (!problems.empty())
    return fail();
  func::ReturnOp::create(builder, fileLoc, results);
  func.setType(builder.getFunctionType(
      argTypes, llvm::to_vector(ValueRange(results).getTypes())));
  func.setAllArgAttrs(argAttrs);
  func.setAllResultAttrs(resultAttrs);
  import::finishForward(func, params, {});
  return module;
}

OwningOpRef<ModuleOp>
mlir::trainopt::importGraph(MLIRContext *context, StringRef path,
                            const GraphImportOptions &options) {
  context->loadDialect<TrainoptDialect, func::FuncDialect>();
  return GraphImporter(context, path, options).run();
}
