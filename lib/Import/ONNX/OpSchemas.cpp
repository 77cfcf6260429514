//===- OpSchemas.cpp - the ONNX operator schemas
//---------------------------===//
//
/// \file
/// What ONNX's own schemas (libonnx) say about a node, for checks the
/// handlers cannot make: the attributes an op defines. ONNX's headers need
/// C++ exceptions, which the rest of the importer (built as LLVM is) has
/// off, so this file alone is compiled with them (CMakeLists.txt).
//
//===----------------------------------------------------------------------===//

#include "ImportContext.h"

#include <onnx/defs/schema.h>

#include <string>
#include <vector>

namespace {
std::string join(const std::vector<std::string> &parts) {
  std::string out;
  for (const std::string &p : parts)
    out += (out.empty() ? "" : ", ") + p;
  return out;
}
} // namespace

/// The attributes of `node` its op's ONNX schema (at `opset`) does not
/// define, as a message ("" when there are none, or no schema: another
/// domain, or an opset newer than this ONNX library knows).
std::string
mlir::trainopt::onnx_import::unknownAttributes(const onnx::NodeProto &node,
                                               int64_t opset) {
  std::string domain = node.domain() == "ai.onnx" ? "" : node.domain();
  // An opset newer than this libonnx knows may give an op attributes its
  // older schema lacks (Split-18's num_outputs): no verdict then.
  const auto &ranges =
      onnx::OpSchemaRegistry::DomainToVersionRange::Instance().Map();
  auto range = ranges.find(domain);
  if (range == ranges.end() || opset > range->second.second)
    return "";
  const onnx::OpSchema *schema = onnx::OpSchemaRegistry::Schema(
      node.op_type(), static_cast<int>(opset), domain);
  if (!schema)
    return "";
  std::vector<std::string> unknown;
  for (const onnx::AttributeProto &a : node.attribute())
    if (!schema->attributes().count(a.name()))
      unknown.push_back("'" + a.name() + "'");
  if (unknown.empty())
    return "";
  std::vector<std::string> known;
  for (const auto &entry : schema->attributes())
    known.push_back(entry.first);
  return (unknown.size() == 1 ? "unknown attribute " : "unknown attributes ") +
         join(unknown) + " (" + node.op_type() + "-" +
         std::to_string(schema->since_version()) + " defines " +
         (known.empty() ? std::string("none") : join(known)) + ")";
}
