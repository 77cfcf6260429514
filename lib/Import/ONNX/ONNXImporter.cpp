//===- ONNXImporter.cpp - ONNX ModelProto to the trainopt dialect ---------===//
//
/// \file
/// Drives the import: checks the file and the opsets, turns initializers into
/// `trainopt.parameter`s (floating-point ones) or constants (integer ones),
/// binds graph inputs (with `--batch-size` for a symbolic batch dim), runs a
/// handler per node from the versioned table, and reports every problem of
/// the model in one error.
//
//===----------------------------------------------------------------------===//

#include "trainopt/Import/ONNX/ONNXImporter.h"

#include "ImportContext.h"

#include "trainopt/Dialect/Trainopt/IR/TrainoptDialect.h"
#include "trainopt/Dialect/Trainopt/IR/TensorBuilder.h"
#include "trainopt/Dialect/Trainopt/IR/TrainoptOps.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/IR/BuiltinDialect.h"
#include "mlir/IR/DialectResourceBlobManager.h"
#include "mlir/IR/Matchers.h"
#include "mlir/IR/SymbolTable.h"
#include "mlir/IR/TypeUtilities.h"
#include "mlir/IR/Verifier.h"
#include "mlir/Interfaces/SideEffectInterfaces.h"
#include "llvm/ADT/DenseSet.h"
#include "llvm/ADT/SetVector.h"
#include "llvm/ADT/StringSet.h"
#include "llvm/Support/FileSystem.h"
#include "llvm/Support/MemoryBuffer.h"
#include "llvm/Support/Path.h"

#include <google/protobuf/io/coded_stream.h>

#include <climits>
#include <cmath>
#include <cstring>

using namespace mlir;
using namespace mlir::trainopt;
using namespace mlir::trainopt::onnx_import;

//===----------------------------------------------------------------------===//
// Handler table
//===----------------------------------------------------------------------===//

static bool isDefaultDomain(StringRef domain) {
  return domain.empty() || domain == "ai.onnx";
}

const HandlerEntry *HandlerTable::find(StringRef domain, StringRef opType,
                                       int64_t opset) const {
  if (!isDefaultDomain(domain))
    return nullptr;
  const HandlerEntry *best = nullptr;
  for (const HandlerEntry &e : entries) {
    if (e.opType != opType || e.sinceVersion > opset)
      continue;
    if (!best || e.sinceVersion > best->sinceVersion)
      best = &e;
  }
  return best;
}

/// Where an unsupported op commonly comes from and what to do instead, as
/// a suffix of the problem ("" when there is nothing to say).
static std::string workaround(const onnx::NodeProto &node) {
  StringRef type = node.op_type();
  if (node.domain() == "com.microsoft")
    return "; an ONNX Runtime contrib op: export the model from its framework "
           "(not an ONNX Runtime-optimized file)";
  if (type == "If" || type == "Loop" || type == "Scan")
    return "; control flow: export by tracing (torch.onnx.export without "
           "torch.jit.script), so loops over static lengths unroll";
  if (type == "NonZero" || type == "Unique" || type == "NonMaxSuppression" ||
      type == "Compress")
    return "; its output shape depends on the data, and trainopt compiles "
           "static shapes";
  if (type == "SequenceConstruct" || type == "SequenceAt" ||
      type == "SplitToSequence" || type == "ConcatFromSequence")
    return "; sequences are not tensors: return tensors (torch.stack) "
           "instead of lists";
  return "";
}

/// Evidence that a model was exported in PyTorch's default eval mode, where
/// BatchNorm is folded into the preceding Conv (whose weight then gets a
/// generated name, `onnx::Conv_N`) or kept with its running statistics, and
/// Dropout is removed: training that graph trains a different model. Empty
/// when there is none.
static std::vector<std::string>
evalModeEvidence(const onnx::GraphProto &graph) {
  llvm::StringSet<> initializers;
  for (const onnx::TensorProto &t : graph.initializer())
    initializers.insert(t.name());
  std::vector<std::string> evidence;
  for (auto [index, node] : llvm::enumerate(graph.node())) {
    std::string name = node.name().empty() ? "#" + std::to_string(index)
                                           : "'" + node.name() + "'";
    if (node.op_type() == "BatchNormalization" && node.domain().empty()) {
      bool training = false;
      for (const onnx::AttributeProto &a : node.attribute())
        if (a.name() == "training_mode")
          training = a.i() != 0;
      bool statsOut = node.output_size() > 1 && !node.output(1).empty();
      if (!training && !statsOut)
        evidence.push_back("BatchNormalization node " + name +
                           " is in inference form (training_mode = 0, no "
                           "running-statistics outputs)");
    }
    if (node.op_type() == "Conv" && node.domain().empty() &&
        node.input_size() > 1 &&
        StringRef(node.input(1)).starts_with("onnx::Conv_") &&
        initializers.contains(node.input(1)))
      evidence.push_back("Conv node " + name + " has the weight '" +
                         node.input(1) + "', the name PyTorch gives a "
                         "BatchNorm folded into a convolution");
  }
  return evidence;
}

static const HandlerTable &handlerTable() {
  static const HandlerTable table = [] {
    HandlerTable t;
    registerMathHandlers(t);
    registerNNHandlers(t);
    registerTensorHandlers(t);
    registerLossHandlers(t);
    registerIndexHandlers(t);
    registerRecurrentHandlers(t);
    return t;
  }();
  return table;
}

std::vector<ONNXOpSupport> mlir::trainopt::getSupportedONNXOps() {
  std::vector<ONNXOpSupport> out;
  for (const HandlerEntry &e : handlerTable().all())
    out.push_back({"ai.onnx", e.opType, e.sinceVersion});
  llvm::sort(out, [](const ONNXOpSupport &a, const ONNXOpSupport &b) {
    return std::tie(a.opType, a.sinceVersion) <
           std::tie(b.opType, b.sinceVersion);
  });
  return out;
}

FailureOr<int64_t> onnx_import::normalizeAxis(NodeContext &n, int64_t axis,
                                              int64_t rank) {
  if (axis < -rank || axis >= rank)
    return n.fail("axis " + Twine(axis) + " is out of range [" + Twine(-rank) +
                  ", " + Twine(rank) + ")");
  return axis < 0 ? axis + rank : axis;
}

FailureOr<int64_t> onnx_import::axisAttribute(NodeContext &n,
                                              llvm::StringRef name,
                                              int64_t defaultAxis,
                                              int64_t rank) {
  FailureOr<int64_t> axis = n.check(n.attrs.getInt(name, defaultAxis));
  if (failed(axis))
    return failure();
  return normalizeAxis(n, *axis, rank);
}

//===----------------------------------------------------------------------===//
// Importer
//===----------------------------------------------------------------------===//

namespace mlir::trainopt::onnx_import {

class Importer {
public:
  Importer(MLIRContext *ctx, StringRef path, const ONNXImportOptions &options)
      : ctx(ctx), path(path.str()), options(options), builder(ctx),
        reader(ctx, parentDir(path)) {}

  OwningOpRef<ModuleOp> run();

  MLIRContext *ctx;
  std::string path;
  const ONNXImportOptions &options;
  OpBuilder builder;
  TensorReader reader;
  Problems problems;
  /// Initializer protos behind parameter arguments, for constant use.
  DenseMap<Value, const onnx::TensorProto *> paramProtos;
  /// Parameters that must not be trained (BatchNorm statistics).
  llvm::DenseSet<Value> nonTrainable;
  /// The model's producer_name ("pytorch" for torch.onnx.export).
  std::string producer;

private:
  static std::string parentDir(StringRef path) {
    StringRef dir = llvm::sys::path::parent_path(path);
    return dir.empty() ? "." : dir.str();
  }
  LogicalResult readModel(onnx::ModelProto &model);
  FailureOr<RankedTensorType> inputType(const onnx::ValueInfoProto &info);
  FailureOr<DenseElementsAttr> readBoundInput(const onnx::ValueInfoProto &info,
                                              StringRef file);
  void checkOutputType(const onnx::ValueInfoProto &info, Type actual);
  void reportAll(Location loc);
};

} // namespace mlir::trainopt::onnx_import

LogicalResult Importer::readModel(onnx::ModelProto &model) {
  if (failed(import::readProtoFile(
          path, model,
          "not a valid ONNX ModelProto (the file is truncated, corrupt or not "
          "an ONNX model)",
          problems)))
    return failure();
  if (!model.has_graph()) {
    problems.add("the model has no graph (the file is truncated or not an "
                 "ONNX model)");
    return failure();
  }
  return success();
}

FailureOr<RankedTensorType>
Importer::inputType(const onnx::ValueInfoProto &info) {
  std::string what = "graph input '" + info.name() + "'";
  if (!info.type().has_tensor_type()) {
    problems.add(what + ": not a tensor");
    return failure();
  }
  const onnx::TypeProto::Tensor &t = info.type().tensor_type();
  Type elt = convertElementType(ctx, t.elem_type());
  if (!elt) {
    problems.add(what + ": unsupported element type " +
                 onnxTypeName(t.elem_type()));
    return failure();
  }
  if (!t.has_shape()) {
    problems.add(what + ": has no shape; trainopt needs static shapes");
    return failure();
  }
  SmallVector<int64_t> shape;
  for (auto [i, dim] : llvm::enumerate(t.shape().dim())) {
    // Static dims stay as exported: --batch-size binds symbolic ones only,
    // since an exporter may have baked a static batch into Reshape shapes.
    if (dim.has_dim_value() && dim.dim_value() >= 0) {
      shape.push_back(dim.dim_value());
      continue;
    }
    // A negative size is not a symbolic dim: ONNX writes those as names.
    if (dim.has_dim_value()) {
      problems.add(what + ": dim " + std::to_string(i) + " is " +
                   std::to_string(dim.dim_value()) +
                   "; a dim is a size (>= 0) or a symbolic name");
      return failure();
    }
    std::string name =
        dim.has_dim_param() ? "'" + dim.dim_param() + "'" : "(unnamed)";
    if (i == 0 && options.batchSize) {
      shape.push_back(*options.batchSize);
      continue;
    }
    if (i == 0)
      problems.add(what + ": batch dim " + name +
                   " is symbolic; pass --batch-size N");
    else
      problems.add(what + ": dim " + std::to_string(i) + " " + name +
                   " is symbolic; only the batch dim (0) may be");
    return failure();
  }
  if (failed(checkedElementCount(shape))) {
    problems.add(what + ": element count overflows int64");
    return failure();
  }
  return RankedTensorType::get(shape, elt);
}

FailureOr<DenseElementsAttr>
Importer::readBoundInput(const onnx::ValueInfoProto &info, StringRef file) {
  std::string what = "--const-input " + info.name() + "=" + file.str();
  auto buffer = llvm::MemoryBuffer::getFile(file, /*IsText=*/false,
                                            /*RequiresNullTerminator=*/false);
  if (!buffer) {
    problems.add(what + ": cannot read: " + buffer.getError().message());
    return failure();
  }
  onnx::TensorProto tensor;
  if ((*buffer)->getBufferSize() > static_cast<size_t>(INT_MAX) ||
      !tensor.ParseFromArray((*buffer)->getBufferStart(),
                             static_cast<int>((*buffer)->getBufferSize()))) {
    problems.add(what + ": not a serialized ONNX TensorProto");
    return failure();
  }
  if (tensor.data_location() == onnx::TensorProto::EXTERNAL) {
    problems.add(what + ": external data is not allowed here");
    return failure();
  }
  FailureOr<DenseElementsAttr> value = reader.readDense(tensor, what, problems);
  if (failed(value))
    return failure();
  const onnx::TypeProto::Tensor &declared = info.type().tensor_type();
  if (declared.elem_type() != tensor.data_type()) {
    problems.add(what + ": element type " + onnxTypeName(tensor.data_type()) +
                 " differs from the input's " +
                 onnxTypeName(declared.elem_type()));
    return failure();
  }
  return value;
}

void Importer::checkOutputType(const onnx::ValueInfoProto &info, Type actual) {
  if (!info.type().has_tensor_type())
    return;
  auto tensor = cast<RankedTensorType>(actual);
  const onnx::TypeProto::Tensor &t = info.type().tensor_type();
  Type elt = convertElementType(ctx, t.elem_type());
  std::string what = "graph output '" + info.name() + "'";
  if (t.elem_type() != onnx::TensorProto::UNDEFINED &&
      elt != tensor.getElementType()) {
    std::string s;
    llvm::raw_string_ostream os(s);
    os << what << ": declared element type " << onnxTypeName(t.elem_type())
       << ", computed " << tensor.getElementType();
    problems.add(s);
  }
  if (!t.has_shape())
    return;
  bool mismatch = t.shape().dim_size() != tensor.getRank();
  for (int i = 0; !mismatch && i < t.shape().dim_size(); ++i) {
    const auto &dim = t.shape().dim(i);
    if (dim.has_dim_value() && dim.dim_value() != tensor.getDimSize(i))
      mismatch = true;
  }
  if (mismatch) {
    std::string s;
    llvm::raw_string_ostream os(s);
    os << what << ": declared shape does not match the computed " << tensor;
    problems.add(s);
  }
}

void Importer::reportAll(Location loc) {
  bool unsupportedOp = llvm::any_of(problems.all(), [](const std::string &p) {
    return StringRef(p).contains(": unsupported op");
  });
  import::reportProblems(
      loc, "ONNX model", path, problems,
      unsupportedOp ? "`trainopt-compile --list-onnx-ops` lists the supported "
                      "ops and the opsets they take"
                    : "");
}

OwningOpRef<ModuleOp> Importer::run() {
  Location fileLoc = FileLineColLoc::get(ctx, path, 0, 0);
  onnx::ModelProto model;
  if (failed(readModel(model))) {
    reportAll(fileLoc);
    return nullptr;
  }
  producer = model.producer_name();

  // Opsets: the default domain must be within the supported range; other
  // domains only matter if a node uses them.
  int64_t opset = -1;
  for (const onnx::OperatorSetIdProto &id : model.opset_import())
    if (isDefaultDomain(id.domain()))
      opset = id.version();
  if (opset < 0) {
    problems.add("the model imports no opset of the default domain "
                 "'ai.onnx'");
  } else if (opset < kMinONNXOpset || opset > kMaxONNXOpset) {
    problems.add(
        "default-domain opset " + std::to_string(opset) +
        " is not supported (supported: " + std::to_string(kMinONNXOpset) +
        " to " + std::to_string(kMaxONNXOpset) + ")");
  }
  if (!problems.empty()) {
    reportAll(fileLoc);
    return nullptr;
  }

  const onnx::GraphProto &graph = model.graph();
  const HandlerTable &table = handlerTable();
  // Every unsupported op is listed once, before anything is built.
  for (auto [index, node] : llvm::enumerate(graph.node())) {
    if (table.find(node.domain(), node.op_type(), opset))
      continue;
    std::string problem = describeNode(node, opset, index) + ": unsupported op";
    // Supported at a later opset: say which, so a re-export fixes it.
    for (int64_t later = opset + 1; later <= kMaxONNXOpset; ++later)
      if (table.find(node.domain(), node.op_type(), later)) {
        problem += " at this opset; supported from opset " +
                   std::to_string(later) + " (export with opset_version=" +
                   std::to_string(later) + ")";
        break;
      }
    problem += workaround(node);
    problems.add(problem);
  }

  OwningOpRef<ModuleOp> module = ModuleOp::create(fileLoc);
  builder.setInsertionPointToEnd(module->getBody());

  // Names whose producer failed: their consumers are skipped silently, since
  // the problem is already listed.
  llvm::StringSet<> poisoned;

  // Initializers.
  llvm::StringSet<> frozen;
  for (const std::string &name : options.frozen)
    frozen.insert(name);
  // Buffers the exporter listed (scripts/export_for_training.py writes the
  // module's non-parameter buffers, such as attention masks, here): state of
  // the model, not weights.
  for (const onnx::StringStringEntryProto &entry : model.metadata_props())
    if (entry.key() == kFrozenMetadataKey) {
      SmallVector<StringRef> names;
      StringRef(entry.value()).split(names, ',', -1, /*KeepEmpty=*/false);
      for (StringRef name : names)
        frozen.insert(name.trim());
    }
  llvm::StringSet<> seen;
  struct Param {
    const onnx::TensorProto *proto;
    ParameterOp op;
  };
  SmallVector<Param> params;
  SmallVector<std::pair<std::string, DenseElementsAttr>> constants;
  for (const onnx::TensorProto &init : graph.initializer()) {
    std::string what = "initializer '" + init.name() + "'";
    if (!seen.insert(init.name()).second) {
      problems.add(what + ": defined twice");
      continue;
    }
    Type elt = convertElementType(ctx, init.data_type());
    if (elt && isa<FloatType>(elt)) {
      FailureOr<ElementsAttr> value = reader.readResource(init, what, problems);
      if (failed(value)) {
        poisoned.insert(init.name());
        continue;
      }
      // A tensor holding inf or NaN (an additive attention mask) cannot be
      // a weight gradient descent trains.
      bool trainable =
          !frozen.contains(init.name()) && import::allFinite(*value);
      auto op = ParameterOp::create(
          builder, NameLoc::get(builder.getStringAttr(init.name()), fileLoc),
          builder.getStringAttr(init.name()), TypeAttr::get(value->getType()),
          trainable ? builder.getUnitAttr() : UnitAttr(), *value);
      params.push_back({&init, op});
    } else {
      FailureOr<DenseElementsAttr> value =
          reader.readDense(init, what, problems);
      if (succeeded(value))
        constants.push_back({init.name(), *value});
      else
        poisoned.insert(init.name());
    }
  }
  for (const std::string &name : options.frozen)
    if (!seen.contains(name))
      problems.add("--freeze names '" + name +
                   "', which is not an initializer "
                   "of the model");

  // Function arguments: parameters, then data inputs.
  SmallVector<Type> argTypes;
  SmallVector<DictionaryAttr> argAttrs;
  for (Param &p : params) {
    argTypes.push_back(p.op.getType());
    argAttrs.push_back(builder.getDictionaryAttr(
        builder.getNamedAttr(TrainoptDialect::kParamAttrName,
                             FlatSymbolRefAttr::get(p.op.getSymNameAttr()))));
  }
  llvm::StringMap<std::string> boundInputs;
  for (const auto &[name, file] : options.constantInputs)
    boundInputs[name] = file;
  SmallVector<std::pair<std::string, DenseElementsAttr>> boundValues;
  SmallVector<const onnx::ValueInfoProto *> inputs;
  for (const onnx::ValueInfoProto &info : graph.input()) {
    if (seen.contains(info.name()))
      continue; // IR < 4 lists initializers as inputs too.
    auto bound = boundInputs.find(info.name());
    if (bound != boundInputs.end()) {
      FailureOr<DenseElementsAttr> value = readBoundInput(info, bound->second);
      if (succeeded(value))
        boundValues.push_back({info.name(), *value});
      else
        poisoned.insert(info.name());
      boundInputs.erase(bound);
      continue;
    }
    FailureOr<RankedTensorType> type = inputType(info);
    if (failed(type)) {
      poisoned.insert(info.name());
      continue;
    }
    inputs.push_back(&info);
    argTypes.push_back(*type);
    argAttrs.push_back(builder.getDictionaryAttr(builder.getNamedAttr(
        TrainoptDialect::kInputAttrName, builder.getStringAttr(info.name()))));
  }

  auto func = func::FuncOp::create(builder, fileLoc, "forward",
                                   builder.getFunctionType(argTypes, {}));
  Block *body = func.addEntryBlock();
  builder.setInsertionPointToStart(body);
  llvm::StringMap<Value> values;
  for (auto [i, p] : llvm::enumerate(params)) {
    values[p.proto->name()] = body->getArgument(i);
    paramProtos[body->getArgument(i)] = p.proto;
  }
  for (auto [i, info] : llvm::enumerate(inputs))
    values[info->name()] = body->getArgument(params.size() + i);
  for (auto &[name, value] : constants)
    values[name] = ConstantOp::create(builder, fileLoc, value);
  for (auto &[name, value] : boundValues)
    values[name] = ConstantOp::create(builder, fileLoc, value);
  for (const auto &entry : boundInputs)
    problems.add("--const-input names '" + entry.getKey().str() +
                 "', which is not a graph input of the model");

  // Single static assignment, as the ONNX checker requires: each name is
  // defined once, by a graph input (an initializer of the same name is its
  // default), an initializer or a node output; graph outputs are listed
  // once. Otherwise a later definition would silently replace an earlier
  // one, and a node would vanish from the model.
  {
    llvm::StringMap<std::string> definedBy;
    llvm::StringSet<> inputNames, initNames, outputNames;
    for (const onnx::ValueInfoProto &in : graph.input())
      if (!inputNames.insert(in.name()).second)
        problems.add("graph input '" + in.name() + "' is listed twice");
    for (const onnx::TensorProto &init : graph.initializer())
      if (!initNames.insert(init.name()).second)
        problems.add("initializer '" + init.name() + "' is defined twice");
    for (const auto &entry : inputNames)
      definedBy[entry.getKey()] = "a graph input";
    for (const auto &entry : initNames)
      definedBy.try_emplace(entry.getKey(), "an initializer");
    for (auto [index, node] : llvm::enumerate(graph.node()))
      for (const std::string &out : node.output()) {
        if (out.empty())
          continue;
        auto [it, fresh] =
            definedBy.try_emplace(out, describeNode(node, opset, index));
        if (!fresh)
          problems.add(describeNode(node, opset, index) + ": output '" + out +
                       "' is already defined by " + it->second +
                       " (an ONNX graph assigns each name once)");
      }
    for (const onnx::ValueInfoProto &info : graph.output())
      if (!outputNames.insert(info.name()).second)
        problems.add("graph output '" + info.name() + "' is listed twice");
  }

  // Nodes, in the topological order ONNX requires.
  for (auto [index, each] : llvm::enumerate(graph.node())) {
    // A reference, not the binding: C++17 lambdas cannot capture bindings.
    const onnx::NodeProto &node = each;
    auto poison = [&] {
      for (const std::string &out : node.output())
        poisoned.insert(out);
    };
    const HandlerEntry *entry =
        table.find(node.domain(), node.op_type(), opset);
    SmallVector<Value> operands;
    bool skip = !entry;
    for (const std::string &name : node.input()) {
      if (name.empty()) {
        operands.push_back(Value());
        continue;
      }
      auto it = values.find(name);
      if (it != values.end()) {
        operands.push_back(it->second);
        continue;
      }
      if (!poisoned.contains(name))
        problems.add(describeNode(node, opset, index) + ": input '" + name +
                     "' is not a graph input, an initializer or the output of "
                     "an earlier node");
      skip = true;
    }
    if (skip) {
      poison();
      continue;
    }
    // Attributes the op's ONNX schema does not define are refused, as ONNX's
    // checker refuses them: a handler reads only the attributes it knows,
    // so a misspelt one would otherwise be ignored silently.
    if (std::string unknown = onnx_import::unknownAttributes(node, opset);
        !unknown.empty()) {
      problems.add(describeNode(node, opset, index) + ": " + unknown);
      poison();
      continue;
    }
    std::string label = node.name().empty() ? node.op_type() : node.name();
    Location loc = NameLoc::get(builder.getStringAttr(label), fileLoc);
    NodeContext n(*this, node, index, std::move(operands), opset, loc);
    if (failed(entry->handler(n))) {
      poison();
      continue;
    }
    for (auto [i, name] : llvm::enumerate(node.output())) {
      if (name.empty())
        continue;
      Value v = n.outputs[i];
      if (!v) {
        problems.add(describeNode(node, opset, index) + ": output " +
                     std::to_string(i) + " ('" + name +
                     "') is not supported by the importer");
        poisoned.insert(name);
        continue;
      }
      values[name] = v;
    }
  }

  // Results.
  SmallVector<Value> results;
  SmallVector<DictionaryAttr> resultAttrs;
  for (const onnx::ValueInfoProto &info : graph.output()) {
    auto it = values.find(info.name());
    if (it == values.end()) {
      if (!poisoned.contains(info.name()))
        problems.add("graph output '" + info.name() +
                     "' is not produced by any node");
      continue;
    }
    checkOutputType(info, it->second.getType());
    results.push_back(it->second);
    resultAttrs.push_back(builder.getDictionaryAttr(builder.getNamedAttr(
        TrainoptDialect::kOutputAttrName, builder.getStringAttr(info.name()))));
  }
  if (graph.output_size() == 0)
    problems.add("the graph has no outputs");
  for (const std::string &name : options.extraOutputs) {
    if (llvm::any_of(graph.output(), [&](const onnx::ValueInfoProto &o) {
          return o.name() == name;
        }))
      continue; // already an output of the model
    auto it = values.find(name);
    if (it == values.end()) {
      if (!poisoned.contains(name))
        problems.add("'" + name +
                     "', asked for as an output, is not a "
                     "tensor the graph computes (a node output or a graph "
                     "input, by its ONNX name)");
      continue;
    }
    results.push_back(it->second);
    resultAttrs.push_back(builder.getDictionaryAttr(
        {builder.getNamedAttr(TrainoptDialect::kOutputAttrName,
                              builder.getStringAttr(name)),
         builder.getNamedAttr(TrainoptDialect::kFeatureAttrName,
                              builder.getUnitAttr())}));
  }

  if (!problems.empty()) {
    reportAll(fileLoc);
    return nullptr;
  }
  func::ReturnOp::create(builder, fileLoc, results);
  // Folding leaves the shape arithmetic it consumed behind; drop it.
  for (Operation &op : llvm::make_early_inc_range(llvm::reverse(*body)))
    if (isOpTriviallyDead(&op))
      op.erase();

  // Parameters read only as constants (shape operands, clip bounds, ...) or
  // not at all are not parameters of the computation. Those with no
  // floating-point path to an output (an attention-mask buffer feeding a
  // comparison) cannot be trained and are frozen.
  func.setType(builder.getFunctionType(
      argTypes, llvm::to_vector(ValueRange(results).getTypes())));
  func.setAllArgAttrs(SmallVector<Attribute>(argAttrs.begin(), argAttrs.end()));
  func.setAllResultAttrs(
      SmallVector<Attribute>(resultAttrs.begin(), resultAttrs.end()));
  SmallVector<Operation *> paramOps;
  for (Param &p : params)
    paramOps.push_back(p.op);
  import::finishForward(func, paramOps, nonTrainable);

  std::vector<std::string> evidence;
  if (!options.inference)
    evidence = evalModeEvidence(graph);
  if (!evidence.empty()) {
    InFlightDiagnostic warning = emitWarning(fileLoc);
    warning << "'" << path << "' looks exported in eval mode: "
            << evidence.front();
    if (evidence.size() > 1)
      warning << " (and " << evidence.size() - 1 << " more)";
    warning << ". An eval-mode export folds BatchNorm into the convolutions "
               "and removes Dropout, so the model trained is not the one "
               "defined; export for training with torch.onnx.export(..., "
               "training=torch.onnx.TrainingMode.TRAINING, "
               "do_constant_folding=False) (docs/from-pytorch.md, "
               "scripts/export_for_training.py)";
  }

  if (failed(verify(*module))) {
    emitError(fileLoc) << "internal error: the imported module of '" << path
                       << "' does not verify; please report this model";
    return nullptr;
  }
  return module;
}

//===----------------------------------------------------------------------===//
// NodeContext
//===----------------------------------------------------------------------===//

NodeContext::NodeContext(Importer &importer, const onnx::NodeProto &node,
                         int index, SmallVector<Value> inputs, int64_t opset,
                         Location loc)
    : node(node), index(index), builder(importer.builder), loc(loc),
      opset(opset), attrs(node), outputs(node.output_size()),
      importer(importer), inputs(std::move(inputs)) {}

LogicalResult NodeContext::fail(const Twine &message) {
  if (!failedOnce)
    importer.problems.add(describeNode(node, opset, index) + ": " +
                          message.str());
  failedOnce = true;
  return failure();
}

FailureOr<Value> NodeContext::required(unsigned i) {
  if (!input(i))
    return fail("missing required input " + Twine(i));
  return input(i);
}

FailureOr<DenseElementsAttr> NodeContext::constantInput(unsigned i,
                                                        StringRef what) {
  Value v = input(i);
  if (!v)
    return fail("missing required input " + Twine(i) + " (" + what + ")");
  DenseElementsAttr attr;
  if (matchPattern(v, m_Constant(&attr)))
    return attr;
  auto it = importer.paramProtos.find(v);
  if (it != importer.paramProtos.end()) {
    FailureOr<DenseElementsAttr> value = importer.reader.readDense(
        *it->second, "initializer '" + it->second->name() + "'",
        importer.problems);
    if (succeeded(value))
      return value;
    failedOnce = true;
    return failure();
  }
  return fail("input " + Twine(i) + " (" + what +
              ") must be a constant or computable from shapes at import time");
}

FailureOr<SmallVector<int64_t>> NodeContext::constantInts(unsigned i,
                                                          StringRef what) {
  FailureOr<DenseElementsAttr> attr = constantInput(i, what);
  if (failed(attr))
    return failure();
  if (!isa<IntegerType>(attr->getElementType()))
    return fail("input " + Twine(i) + " (" + what + ") must be integers");
  SmallVector<int64_t> out;
  for (const APInt &v : attr->getValues<APInt>())
    out.push_back(v.getSExtValue());
  return out;
}

void NodeContext::setOutput(unsigned i, Value value) {
  if (i < outputs.size())
    outputs[i] = value;
}

StringRef NodeContext::producer() const { return importer.producer; }

void NodeContext::markNonTrainable(Value value) {
  if (importer.paramProtos.count(value))
    importer.nonTrainable.insert(value);
}

FailureOr<Operation *>
NodeContext::createImpl(StringRef opName, ValueRange operands,
                        ArrayRef<NamedAttribute> attributes,
                        ArrayRef<Type> resultTypes, InferFn infer) {
  // Inference and verification diagnostics become problems of this node.
  std::string messages;
  ScopedDiagnosticHandler capture(getContext(), [&](Diagnostic &diag) {
    if (diag.getSeverity() == DiagnosticSeverity::Error) {
      if (!messages.empty())
        messages += "; ";
      messages += diag.str();
    }
    return success();
  });
  SmallVector<Type> types;
  DictionaryAttr dict = builder.getDictionaryAttr(attributes);
  if (!resultTypes.empty()) {
    llvm::append_range(types, resultTypes);
  } else if (failed(infer(dict, types))) {
    return fail(messages.empty() ? "cannot infer the result type of " + opName
                                 : Twine(opName) + ": " + messages);
  }
  // Shapes computed from untrusted attributes must stay addressable.
  for (Type t : types) {
    auto tensor = dyn_cast<RankedTensorType>(t);
    if (tensor && failed(checkedElementCount(tensor.getShape())))
      return fail(Twine(opName) +
                  ": result shape has a negative dim or an element count that "
                  "overflows int64");
  }
  OperationState state(loc, opName);
  state.addOperands(operands);
  state.addAttributes(attributes);
  state.addTypes(types);
  Operation *op = builder.create(state);
  if (failed(verify(op))) {
    op->erase();
    return fail(Twine(opName) + ": " + messages);
  }
  return op;
}

Value NodeContext::foldResult(Operation *op, unsigned index) {
  SmallVector<OpFoldResult> folded;
  // An in-place fold (reshape of reshape) may enable another fold.
  for (int attempt = 0; attempt < 4; ++attempt) {
    SmallVector<Attribute> operandAttrs;
    for (Value v : op->getOperands()) {
      Attribute a;
      matchPattern(v, m_Constant(&a));
      operandAttrs.push_back(a);
    }
    folded.clear();
    if (failed(op->fold(operandAttrs, folded)))
      return op->getResult(index);
    // Success without results means the op was updated in place.
    if (folded.size() > index)
      break;
  }
  if (folded.size() <= index)
    return op->getResult(index);
  if (auto v = dyn_cast<Value>(folded[index])) {
    if (v != op->getResult(index) && op->use_empty())
      op->erase();
    return v;
  }
  auto attr = dyn_cast<ElementsAttr>(cast<Attribute>(folded[index]));
  if (!attr || attr.getType() != op->getResult(index).getType())
    return op->getResult(index);
  Value c = ConstantOp::create(builder, loc, attr);
  if (op->use_empty())
    op->erase();
  return c;
}

Value NodeContext::constant(DenseElementsAttr value) {
  return ConstantOp::create(builder, loc, value);
}

Value NodeContext::scalar(Type elementType, double value) {
  return TensorBuilder(builder, loc).scalar(elementType, value);
}

//===----------------------------------------------------------------------===//
// Composer
//===----------------------------------------------------------------------===//

Value Composer::i64s(ArrayRef<int64_t> values,
                     std::optional<ArrayRef<int64_t>> shape) {
  SmallVector<int64_t> dims =
      shape ? SmallVector<int64_t>(*shape)
            : SmallVector<int64_t>{static_cast<int64_t>(values.size())};
  auto type = RankedTensorType::get(dims, n.builder.getI64Type());
  return n.constant(DenseElementsAttr::get(type, values));
}

Value Composer::cast(Value x, Type elt) {
  if (!x || elementType(x) == elt)
    return x;
  return op<CastOp>({x}, {}, type(x).clone(elt));
}

Value Composer::reshape(Value x, ArrayRef<int64_t> shape) {
  if (!x || type(x).getShape() == shape)
    return x;
  return op<ReshapeOp>({x}, {}, type(x).clone(shape));
}

Value Composer::transpose(Value x, ArrayRef<int64_t> perm) {
  if (!x || llvm::equal(perm, llvm::seq<int64_t>(0, perm.size())))
    return x;
  return op<TransposeOp>(
      {x}, {n.named("permutation", n.builder.getDenseI64ArrayAttr(perm))});
}

Value Composer::broadcast(Value x, ArrayRef<int64_t> shape) {
  if (!x || type(x).getShape() == shape)
    return x;
  return op<BroadcastToOp>({x}, {}, type(x).clone(shape));
}

Value Composer::slice(Value x, int64_t axis, int64_t start, int64_t limit,
                      int64_t stride) {
  if (!x)
    return x;
  ArrayRef<int64_t> shape = type(x).getShape();
  SmallVector<int64_t> starts(shape.size(), 0), limits(shape), strides(
                                                                  shape.size(), 1);
  starts[axis] = start;
  limits[axis] = limit;
  strides[axis] = stride;
  return op<SliceOp>({x}, {n.named("start", n.builder.getDenseI64ArrayAttr(starts)),
                           n.named("limit", n.builder.getDenseI64ArrayAttr(limits)),
                           n.named("stride", n.builder.getDenseI64ArrayAttr(strides))});
}

Value Composer::pad(Value x, int64_t axis, int64_t low, int64_t high,
                    double value) {
  if (!x)
    return x;
  SmallVector<int64_t> lows(type(x).getRank(), 0), highs(type(x).getRank(), 0);
  lows[axis] = low;
  highs[axis] = high;
  return op<PadOp>({x}, {n.named("low", n.builder.getDenseI64ArrayAttr(lows)),
                         n.named("high", n.builder.getDenseI64ArrayAttr(highs)),
                         n.named("value", n.builder.getF64FloatAttr(value))});
}

Value Composer::gather(Value data, Value indices, int64_t axis) {
  return op<GatherOp>({data, indices},
                      {n.named("axis", n.builder.getI64IntegerAttr(axis))});
}

Value Composer::sum(Value x, ArrayRef<int64_t> axes, bool keepdims) {
  if (axes.empty())
    return x;
  return op<ReduceSumOp>(
      {x}, {n.named("axes", n.builder.getDenseI64ArrayAttr(axes)),
            n.named("keepdims", n.builder.getBoolAttr(keepdims))});
}

Value Composer::matmul(Value a, Value b, bool transposeA, bool transposeB) {
  return op<MatmulOp>(
      {a, b}, {n.named("transpose_lhs", n.builder.getBoolAttr(transposeA)),
               n.named("transpose_rhs", n.builder.getBoolAttr(transposeB))});
}

Value Composer::concat(ValueRange parts, int64_t axis) {
  if (parts.size() == 1)
    return parts.front();
  return op<ConcatOp>(parts,
                      {n.named("axis", n.builder.getI64IntegerAttr(axis))});
}

OwningOpRef<ModuleOp>
mlir::trainopt::importONNXModel(MLIRContext *context, StringRef path,
                                const ONNXImportOptions &options) {
  context->loadDialect<TrainoptDialect, func::FuncDialect>();
  Importer importer(context, path, options);
  return importer.run();
}
