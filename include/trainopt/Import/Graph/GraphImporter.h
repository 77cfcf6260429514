//===- GraphImporter.h - trainopt graphs to the dialect ---------*- C++ -*-===//
//
/// \file
/// Imports a trainopt in-house graph (`include/trainopt/Graph/graph.proto`,
/// a `.tgraph` file, what the Python frontend writes) into a module with
/// one `func.func @forward`, the form the ONNX importer gives. The file is
/// untrusted: it is read with the ONNX importer's checks (ImportCommon.h),
/// every node is verified as the dialect op it names, and every problem is
/// reported in one error naming the node.
//
//===----------------------------------------------------------------------===//

#ifndef TRAINOPT_IMPORT_GRAPH_GRAPHIMPORTER_H
#define TRAINOPT_IMPORT_GRAPH_GRAPHIMPORTER_H

#include "mlir/IR/BuiltinOps.h"
#include "mlir/IR/MLIRContext.h"
#include "mlir/IR/OwningOpRef.h"
#include "llvm/ADT/StringRef.h"

#include <cstdint>
#include <optional>

namespace mlir::trainopt {

/// The schema version this trainopt writes and the newest it reads.
inline constexpr uint32_t kGraphVersion = 1;
/// The `magic` field of every graph, first in the file.
inline constexpr llvm::StringLiteral kGraphMagic = "trainopt.graph";

/// Whether the file at `path` is a trainopt graph: it starts with the
/// encoded `magic` field (whatever its name ends with).
bool isGraphFile(llvm::StringRef path);

struct GraphImportOptions {
  /// The batch dim (-1) of the data inputs.
  std::optional<int64_t> batchSize;
};

/// Imports the graph at `path`. On failure, emits one error at the file's
/// location listing every problem found and returns null.
OwningOpRef<ModuleOp> importGraph(MLIRContext *context, llvm::StringRef path,
                                  const GraphImportOptions &options = {});

} // namespace mlir::trainopt

#endif // TRAINOPT_IMPORT_GRAPH_GRAPHIMPORTER_H
