//===- ONNXImporter.h - ONNX ModelProto to the trainopt dialect -*- C++ -*-===//
//
/// \file
/// Imports an ONNX model (default domain, opsets 13 to 21) into a module with
/// one `func.func @forward` over the trainopt dialect. The model file is
/// untrusted: sizes, shapes, data lengths and external-data paths are checked
/// before anything is read, and every problem is reported in one error.
//
//===----------------------------------------------------------------------===//

#ifndef TRAINOPT_IMPORT_ONNX_ONNXIMPORTER_H
#define TRAINOPT_IMPORT_ONNX_ONNXIMPORTER_H

#include "mlir/IR/BuiltinOps.h"
#include "mlir/IR/MLIRContext.h"
#include "mlir/IR/OwningOpRef.h"
#include "llvm/ADT/StringRef.h"

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace mlir::trainopt {

/// What the user tells the importer beyond the model file.
struct ONNXImportOptions {
  /// Binds a symbolic leading (batch) dim of every graph input.
  std::optional<int64_t> batchSize;
  /// Initializers that become frozen (non-trainable) parameters.
  std::vector<std::string> frozen;
  /// Graph inputs bound to constant values: (input name, path of a
  /// serialized TensorProto). Shape-like inputs become static this way.
  std::vector<std::pair<std::string, std::string>> constantInputs;
  /// Intermediate tensors also returned, after the graph's outputs, under
  /// their ONNX names (the features `--distill-feature` compares).
  std::vector<std::string> extraOutputs;
  /// The model is run for inference only (a distillation teacher): an
  /// eval-mode export is what is wanted, and draws no warning.
  bool inference = false;
};

/// The oldest and newest default-domain opset the importer accepts.
/// The metadata_props key whose value (comma-separated initializer names)
/// lists initializers that are not trained: buffers of the exported module
/// (scripts/export_for_training.py writes it), as `--freeze` does.
inline constexpr const char *kFrozenMetadataKey = "trainopt.frozen";

inline constexpr int64_t kMinONNXOpset = 13;
inline constexpr int64_t kMaxONNXOpset = 21;

/// Imports the model at `path`. On failure, emits one error at the file's
/// location listing every problem found and returns null.
OwningOpRef<ModuleOp> importONNXModel(MLIRContext *context,
                                      llvm::StringRef path,
                                      const ONNXImportOptions &options);

/// One row of the importer's op table, for documentation and coverage.
struct ONNXOpSupport {
  std::string domain;
  std::string opType;
  int64_t sinceVersion;
};

/// Every (domain, op_type, since_version) the importer has a handler for.
std::vector<ONNXOpSupport> getSupportedONNXOps();

} // namespace mlir::trainopt

#endif // TRAINOPT_IMPORT_ONNX_ONNXIMPORTER_H
