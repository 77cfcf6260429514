//===- ImportContext.h - shared state of the ONNX importer ------*- C++ -*-===//
//
/// \file
/// Internal to the ONNX importer: the problem list that becomes the single
/// error, the checked tensor reader, the attribute binder and the context a
/// node handler works in. Handlers are grouped by meaning in
/// `{Math,NN,Tensor,Loss}Handlers.cpp` and registered in a table keyed by
/// `(domain, op_type, since_version)`.
//
//===----------------------------------------------------------------------===//

#ifndef TRAINOPT_LIB_IMPORT_ONNX_IMPORTCONTEXT_H
#define TRAINOPT_LIB_IMPORT_ONNX_IMPORTCONTEXT_H

#include "trainopt/Dialect/Trainopt/IR/TrainoptOps.h"
#include "trainopt/Import/ImportCommon.h"

#include "mlir/IR/Builders.h"
#include "mlir/IR/BuiltinAttributes.h"
#include "mlir/IR/BuiltinTypes.h"
#include "mlir/IR/Diagnostics.h"
#include "llvm/ADT/DenseMap.h"
#include "llvm/ADT/StringMap.h"

#include <onnx/onnx_pb.h>

#include <functional>
#include <string>
#include <vector>

namespace mlir::trainopt::onnx_import {

using import::Problems;

/// Describes a node for messages: `node 'conv1' (Conv, domain 'ai.onnx',
/// opset 17)`; unnamed nodes are named by their position `#index`.
std::string describeNode(const onnx::NodeProto &node, int64_t opset, int index);
/// The attributes of `node` its op's ONNX schema (at `opset`) does not
/// define, as a message naming them and what the schema defines ("" when
/// all are known, or there is no schema: another domain, or an opset newer
/// than Debian's libonnx). OpSchemas.cpp.
std::string unknownAttributes(const onnx::NodeProto &node, int64_t opset);

/// ONNX float attributes and scalars are float32; `epsilon = 1e-5` means the
/// decimal 1e-5, not the float32 nearest to it. Returns the shortest decimal
/// that round-trips `value`, as a double (PyTorch passes these as doubles).
double decimalDouble(float value);

/// The value of a one-element constant as a double (float32 through
/// decimalDouble).
double scalarAsDouble(DenseElementsAttr value);

/// Maps an ONNX element type to the trainopt one; null if unsupported.
Type convertElementType(MLIRContext *ctx, int32_t onnxType);
/// The ONNX name of an element type code, for messages.
std::string onnxTypeName(int32_t onnxType);

/// Reads TensorProtos after checking them against their declared shape;
/// external data is resolved only inside `modelDir`.
class TensorReader {
public:
  TensorReader(MLIRContext *ctx, std::string modelDir)
      : ctx(ctx), modelDir(std::move(modelDir)) {}

  /// The tensor as a DenseElementsAttr (for constants), or failure with the
  /// reason appended to `problems` (prefixed by `what`).
  FailureOr<DenseElementsAttr> readDense(const onnx::TensorProto &tensor,
                                         llvm::StringRef what,
                                         Problems &problems);
  /// The tensor as a resource blob (for parameters) of `type`.
  FailureOr<ElementsAttr> readResource(const onnx::TensorProto &tensor,
                                       llvm::StringRef what,
                                       Problems &problems);
  /// The checked tensor type of `tensor`.
  FailureOr<RankedTensorType> tensorType(const onnx::TensorProto &tensor,
                                         llvm::StringRef what,
                                         Problems &problems);

private:
  /// Little-endian bytes of the tensor in trainopt's storage layout.
  FailureOr<std::vector<char>> readBytes(const onnx::TensorProto &tensor,
                                         RankedTensorType type,
                                         llvm::StringRef what,
                                         Problems &problems);
  FailureOr<std::vector<char>> readExternal(const onnx::TensorProto &tensor,
                                            uint64_t expectedBytes,
                                            llvm::StringRef what,
                                            Problems &problems);
  MLIRContext *ctx;
  std::string modelDir;
};

/// Reads node attributes by name, with defaults, recording type mismatches.
class AttrBinder {
public:
  explicit AttrBinder(const onnx::NodeProto &node);
  bool has(llvm::StringRef name) const { return byName.count(name); }
  FailureOr<int64_t> getInt(llvm::StringRef name,
                            std::optional<int64_t> def = std::nullopt);
  FailureOr<double> getFloat(llvm::StringRef name,
                             std::optional<double> def = std::nullopt);
  FailureOr<std::string>
  getString(llvm::StringRef name,
            std::optional<std::string> def = std::nullopt);
  FailureOr<SmallVector<int64_t>>
  getInts(llvm::StringRef name,
          std::optional<SmallVector<int64_t>> def = std::nullopt);
  FailureOr<SmallVector<double>> getFloats(llvm::StringRef name);
  const onnx::AttributeProto *get(llvm::StringRef name) const {
    auto it = byName.find(name);
    return it == byName.end() ? nullptr : it->second;
  }
  /// The first error, if any getter failed.
  const std::string &error() const { return firstError; }

private:
  FailureOr<const onnx::AttributeProto *>
  typed(llvm::StringRef name, onnx::AttributeProto::AttributeType type);
  /// The attribute `name` of `type` through `extract`, else `def`, else a
  /// missing-attribute error.
  template <typename T, typename Extract>
  FailureOr<T> getOr(llvm::StringRef name,
                     onnx::AttributeProto::AttributeType type,
                     std::optional<T> def, Extract extract);
  llvm::StringMap<const onnx::AttributeProto *> byName;
  std::string firstError;
};

class Importer;

/// What a handler sees: the node, its inputs as values, attribute access,
/// checked op creation and the place to put its outputs.
class NodeContext {
public:
  NodeContext(Importer &importer, const onnx::NodeProto &node, int index,
              SmallVector<Value> inputs, int64_t opset, Location loc);

  const onnx::NodeProto &node;
  /// Position of the node in the graph, for messages about unnamed nodes.
  int index;
  OpBuilder &builder;
  Location loc;
  int64_t opset;
  AttrBinder attrs;
  /// The values of the node's outputs; null where the handler made none.
  SmallVector<Value> outputs;

  MLIRContext *getContext() { return builder.getContext(); }
  unsigned numInputs() const { return inputs.size(); }
  /// Input `i`, or null when absent (optional input left empty).
  Value input(unsigned i) const {
    return i < inputs.size() ? inputs[i] : Value();
  }
  RankedTensorType inputType(unsigned i) const {
    return cast<RankedTensorType>(input(i).getType());
  }
  /// Input `i`, which must be present.
  FailureOr<Value> required(unsigned i);
  /// The constant value of input `i` (a Constant, an integer initializer, a
  /// folded shape computation or a parameter's initial value).
  FailureOr<DenseElementsAttr> constantInput(unsigned i, llvm::StringRef what);
  /// Like constantInput, as int64 values.
  FailureOr<SmallVector<int64_t>> constantInts(unsigned i,
                                               llvm::StringRef what);
  /// Number of outputs the node declares, and whether output `i` is used.
  unsigned numOutputs() const { return node.output_size(); }
  bool outputRequested(unsigned i) const {
    return static_cast<int>(i) < node.output_size() && !node.output(i).empty();
  }
  /// Binds output `i`.
  void setOutput(unsigned i, Value value);
  /// Binds output 0 to `value` unless creating it failed.
  LogicalResult result(FailureOr<Value> value) {
    if (failed(value))
      return failure();
    setOutput(0, *value);
    return success();
  }
  /// The model's producer_name: where ONNX leaves a convention open or a
  /// producer's semantics differ from the spec, the producer decides.
  llvm::StringRef producer() const;
  /// Keeps a parameter that feeds `value` out of training (BatchNorm
  /// statistics are state, not trainable weights).
  void markNonTrainable(Value value);
  /// Records `message` for this node and returns failure.
  LogicalResult fail(const llvm::Twine &message);
  /// Fails if an attribute getter recorded an error.
  template <typename T> FailureOr<T> check(FailureOr<T> value) {
    if (failed(value))
      (void)fail(attrs.error());
    return value;
  }

  /// Creates an op after inferring its result types (unless `resultType` is
  /// given); shape errors become problems of this node. Folds the op when all
  /// operands are constants.
  template <typename OpTy>
  FailureOr<Value> create(ValueRange operands,
                          ArrayRef<NamedAttribute> attributes = {},
                          std::optional<Type> resultType = std::nullopt) {
    SmallVector<Type, 1> types;
    if (resultType)
      types.push_back(*resultType);
    FailureOr<Operation *> op = createOp<OpTy>(operands, attributes, types);
    if (failed(op))
      return failure();
    return foldResult(*op, 0);
  }
  /// Like create, for ops with several results.
  template <typename OpTy>
  FailureOr<SmallVector<Value>> createMulti(ValueRange operands,
                                            ArrayRef<NamedAttribute> attributes,
                                            ArrayRef<Type> resultTypes = {}) {
    FailureOr<Operation *> op =
        createOp<OpTy>(operands, attributes, resultTypes);
    if (failed(op))
      return failure();
    return SmallVector<Value>((*op)->getResults());
  }
  /// A constant tensor.
  Value constant(DenseElementsAttr value);
  /// A 0-d constant of `elementType` holding `value`.
  Value scalar(Type elementType, double value);

  NamedAttribute named(llvm::StringRef name, Attribute value) {
    return builder.getNamedAttr(name, value);
  }

private:
  using InferFn = llvm::function_ref<LogicalResult(DictionaryAttr,
                                                   SmallVectorImpl<Type> &)>;
  FailureOr<Operation *> createImpl(llvm::StringRef opName, ValueRange operands,
                                    ArrayRef<NamedAttribute> attributes,
                                    ArrayRef<Type> resultTypes, InferFn infer);
  template <typename OpTy>
  FailureOr<Operation *> createOp(ValueRange operands,
                                  ArrayRef<NamedAttribute> attributes,
                                  ArrayRef<Type> resultTypes) {
    return createImpl(
        OpTy::getOperationName(), operands, attributes, resultTypes,
        [&](DictionaryAttr dict,
            SmallVectorImpl<Type> &types) -> LogicalResult {
          if constexpr (OpTy::template hasTrait<
                            InferTypeOpInterface::Trait>()) {
            typename OpTy::Properties props;
            if (failed(OpTy::setPropertiesFromAttr(
                    props, dict, [&] { return emitError(loc); })))
              return failure();
            // Defaults of absent attributes, as Operation::create would.
            OperationName(OpTy::getOperationName(), getContext())
                .populateDefaultProperties(OpaqueProperties(&props));
            return OpTy::inferReturnTypes(getContext(), loc, operands, dict,
                                          OpaqueProperties(&props), {}, types);
          } else {
            return failure();
          }
        });
  }
  Value foldResult(Operation *op, unsigned index);
  Importer &importer;
  SmallVector<Value> inputs;
  bool failedOnce = false;
};

/// Builds an importer decomposition as a straight line of ops: every call
/// creates through NodeContext::create (inference, folding, problems), and
/// after the first failure every later call returns a null Value, so a
/// decomposition is written without a check per op and finishes with
/// `n.result(c.done(y))` or `c.ok()`.
class Composer {
public:
  explicit Composer(NodeContext &n) : n(n) {}

  template <typename OpTy>
  Value op(ValueRange operands, ArrayRef<NamedAttribute> attributes = {},
           std::optional<Type> resultType = std::nullopt) {
    if (failedOnce || llvm::any_of(operands, [](Value v) { return !v; })) {
      failedOnce = true;
      return {};
    }
    FailureOr<Value> r = n.create<OpTy>(operands, attributes, resultType);
    if (failed(r)) {
      failedOnce = true;
      return {};
    }
    return *r;
  }
  /// Records `message` for the node; later calls return null.
  Value fail(const llvm::Twine &message) {
    (void)n.fail(message);
    failedOnce = true;
    return {};
  }
  bool ok() const { return !failedOnce; }
  /// `v`, or failure if anything on the way failed.
  FailureOr<Value> done(Value v) const {
    if (failedOnce || !v)
      return failure();
    return v;
  }

  static RankedTensorType type(Value v) {
    return llvm::cast<RankedTensorType>(v.getType());
  }
  static Type elementType(Value v) { return type(v).getElementType(); }

  Value scalar(Type elt, double v) { return n.scalar(elt, v); }
  /// A 0-d constant of `like`'s element type.
  Value scalar(Value like, double v) {
    return like ? n.scalar(elementType(like), v) : Value();
  }
  /// An i64 constant of `shape` (a 1-D one of `values.size()` by default).
  Value i64s(ArrayRef<int64_t> values, std::optional<ArrayRef<int64_t>> shape =
                                           std::nullopt);
  /// A 0-d i64 constant.
  Value i64(int64_t value) { return i64s({value}, ArrayRef<int64_t>{}); }

  Value add(Value a, Value b) { return op<AddOp>({a, b}); }
  Value sub(Value a, Value b) { return op<SubOp>({a, b}); }
  Value mul(Value a, Value b) { return op<MulOp>({a, b}); }
  Value div(Value a, Value b) { return op<DivOp>({a, b}); }
  Value add(Value a, double c) { return add(a, scalar(a, c)); }
  Value mul(Value a, double c) { return mul(a, scalar(a, c)); }
  Value where(Value c, Value a, Value b) { return op<WhereOp>({c, a, b}); }
  Value less(Value a, Value b) { return op<LessOp>({a, b}); }
  Value equal(Value a, Value b) { return op<EqualOp>({a, b}); }
  Value cast(Value x, Type elt);
  Value reshape(Value x, ArrayRef<int64_t> shape);
  Value transpose(Value x, ArrayRef<int64_t> perm);
  Value broadcast(Value x, ArrayRef<int64_t> shape);
  Value slice(Value x, int64_t axis, int64_t start, int64_t limit,
              int64_t stride = 1);
  Value pad(Value x, int64_t axis, int64_t low, int64_t high,
            double value = 0.0);
  Value gather(Value data, Value indices, int64_t axis);
  Value sum(Value x, ArrayRef<int64_t> axes, bool keepdims);
  Value matmul(Value a, Value b, bool transposeA = false,
               bool transposeB = false);
  Value concat(ValueRange parts, int64_t axis);

private:
  NodeContext &n;
  bool failedOnce = false;
};

/// A node handler: imports one node or records why it cannot.
using Handler = std::function<LogicalResult(NodeContext &)>;

/// One row of the versioned op table.
struct HandlerEntry {
  std::string domain;
  std::string opType;
  int64_t sinceVersion;
  Handler handler;
};

/// Registers handlers, grouped by meaning.
class HandlerTable {
public:
  void on(llvm::StringRef opType, int64_t sinceVersion, Handler handler) {
    entries.push_back({"", opType.str(), sinceVersion, std::move(handler)});
  }
  /// The handler for `opType` in the default domain at `opset`: the one with
  /// the largest since_version not above `opset`.
  const HandlerEntry *find(llvm::StringRef domain, llvm::StringRef opType,
                           int64_t opset) const;
  const std::vector<HandlerEntry> &all() const { return entries; }

private:
  std::vector<HandlerEntry> entries;
};

void registerMathHandlers(HandlerTable &table);
void registerNNHandlers(HandlerTable &table);
void registerTensorHandlers(HandlerTable &table);
void registerLossHandlers(HandlerTable &table);
void registerIndexHandlers(HandlerTable &table);
void registerRecurrentHandlers(HandlerTable &table);

/// Normalizes a possibly negative axis for `rank`; fails outside [-rank, rank).
FailureOr<int64_t> normalizeAxis(NodeContext &n, int64_t axis, int64_t rank);
/// The axis attribute `name` (or `defaultAxis`), normalized for `rank`.
FailureOr<int64_t> axisAttribute(NodeContext &n, llvm::StringRef name,
                                 int64_t defaultAxis, int64_t rank);

} // namespace mlir::trainopt::onnx_import

#endif // TRAINOPT_LIB_IMPORT_ONNX_IMPORTCONTEXT_H
