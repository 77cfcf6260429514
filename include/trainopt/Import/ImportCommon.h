//===- ImportCommon.h - what every model importer shares --------*- C++ -*-===//
//
/// \file
/// The format-neutral part of trainopt's importers (ONNX, the in-house
/// graph): the problem list that becomes one error, reading a protobuf
/// file with its checks, and the last touches on `@forward` (unused
/// parameters dropped, those no gradient reaches frozen).
//
//===----------------------------------------------------------------------===//

#ifndef TRAINOPT_IMPORT_IMPORTCOMMON_H
#define TRAINOPT_IMPORT_IMPORTCOMMON_H

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/IR/BuiltinAttributes.h"
#include "mlir/IR/Location.h"
#include "llvm/ADT/DenseSet.h"

#include <string>
#include <vector>

namespace google::protobuf {
class MessageLite;
} // namespace google::protobuf

namespace mlir::trainopt::import {

/// Every problem found while importing one model; they are reported together.
class Problems {
public:
  void add(std::string message) { messages.push_back(std::move(message)); }
  bool empty() const { return messages.empty(); }
  const std::vector<std::string> &all() const { return messages; }

private:
  std::vector<std::string> messages;
};

/// One error at `loc`: "cannot import KIND 'PATH': N problems", then a line
/// per problem; `hint`, if not empty, follows on its own line.
void reportProblems(Location loc, llvm::StringRef kind, llvm::StringRef path,
                    const Problems &problems, llvm::StringRef hint = "");

/// Parses the file at `path` into `message`: a regular file, at most 2 GiB
/// (protobuf's limit), parsed whole. On failure adds the reason to
/// `problems`; `notParsed` describes a file that does not parse (e.g. "not
/// a valid ONNX ModelProto (the file is truncated, corrupt or not an ONNX
/// model)").
LogicalResult readProtoFile(llvm::StringRef path,
                            google::protobuf::MessageLite &message,
                            llvm::StringRef notParsed, Problems &problems);

/// Whether every element of a float resource (a parameter's value) is
/// finite (a
/// tensor holding inf or NaN, such as an additive attention mask, cannot be
/// a weight gradient descent trains).
bool allFinite(ElementsAttr value);

/// Whether `value` flows into a function result through floating-point
/// values only, i.e. whether a gradient can reach it.
bool reachesOutputAsFloat(Value value);

/// The last touches on `func` (parameters first, as `params` lists their
/// ops, bound to its first arguments): parameters it does not use are
/// erased, with their arguments; those in `nonTrainable` or that no
/// gradient can reach are frozen. The function type follows its arguments
/// and return.
void finishForward(func::FuncOp func, llvm::ArrayRef<Operation *> params,
                   const llvm::DenseSet<Value> &nonTrainable);

} // namespace mlir::trainopt::import

#endif // TRAINOPT_IMPORT_IMPORTCOMMON_H
