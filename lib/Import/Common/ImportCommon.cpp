//===- ImportCommon.cpp - what every model importer shares ----------------===//

#include "trainopt/Import/ImportCommon.h"

#include "trainopt/Dialect/Trainopt/IR/TrainoptOps.h"

#include "mlir/IR/BuiltinDialect.h"
#include "mlir/IR/Diagnostics.h"
#include "mlir/IR/DialectResourceBlobManager.h"
#include "mlir/IR/TypeUtilities.h"
#include "llvm/ADT/BitVector.h"
#include "llvm/Support/FileSystem.h"
#include "llvm/Support/MemoryBuffer.h"

#include <google/protobuf/io/coded_stream.h>
#include <google/protobuf/message_lite.h>

#include <memory>

/// How deep readProtoFile's second parse may go to tell a deeply nested
/// file from a corrupt one (the first parse keeps protobuf's 100).
static constexpr int kDiagnosticRecursionLimit = 2000;
#include <google/protobuf/message_lite.h>

#include <climits>
#include <cmath>
#include <cstring>

using namespace mlir;
using namespace mlir::trainopt;

void import::reportProblems(Location loc, StringRef kind, StringRef path,
                            const Problems &problems, StringRef hint) {
  InFlightDiagnostic diag = emitError(loc);
  diag << "cannot import " << kind << " '" << path
       << "': " << problems.all().size()
       << (problems.all().size() == 1 ? " problem" : " problems");
  for (const std::string &p : problems.all())
    diag << "\n  - " << p;
  if (!hint.empty())
    diag << "\n" << hint;
}

LogicalResult import::readProtoFile(StringRef path,
                                    google::protobuf::MessageLite &message,
                                    StringRef notParsed, Problems &problems) {
  llvm::sys::fs::file_status status;
  if (llvm::sys::fs::status(path, status)) {
    problems.add("cannot open the file");
    return failure();
  }
  if (status.type() != llvm::sys::fs::file_type::regular_file) {
    problems.add("not a regular file");
    return failure();
  }
  // Protobuf messages are limited to 2 GiB.
  if (status.getSize() > static_cast<uint64_t>(INT_MAX)) {
    problems.add("file size " + std::to_string(status.getSize()) +
                 " exceeds the 2 GiB protobuf limit (an ONNX model keeps "
                 "larger tensors as external data)");
    return failure();
  }
  auto buffer = llvm::MemoryBuffer::getFile(path, /*IsText=*/false,
                                            /*RequiresNullTerminator=*/false);
  if (!buffer) {
    problems.add("cannot read the file: " + buffer.getError().message());
    return failure();
  }
  google::protobuf::io::CodedInputStream stream(
      reinterpret_cast<const uint8_t *>((*buffer)->getBufferStart()),
      static_cast<int>((*buffer)->getBufferSize()));
  stream.SetTotalBytesLimit(INT_MAX);
  if (message.ParseFromCodedStream(&stream) && stream.ConsumedEntireMessage())
    return success();
  // A well-formed file nested deeper than protobuf's default limit (100
  // messages: If/Loop subgraphs some 30 deep) fails the same way as a
  // corrupt one. Parse it again with a higher limit, only to say which.
  google::protobuf::io::CodedInputStream again(
      reinterpret_cast<const uint8_t *>((*buffer)->getBufferStart()),
      static_cast<int>((*buffer)->getBufferSize()));
  again.SetTotalBytesLimit(INT_MAX);
  again.SetRecursionLimit(kDiagnosticRecursionLimit);
  std::unique_ptr<google::protobuf::MessageLite> scratch(message.New());
  if (scratch->ParseFromCodedStream(&again) && again.ConsumedEntireMessage())
    problems.add("nested deeper than the 100 levels of messages protobuf "
                 "reads (subgraphs of If, Loop or Scan nested about 30 deep "
                 "or more); trainopt does not import it");
  else
    problems.add(notParsed.str());
  return failure();
}

bool import::allFinite(ElementsAttr value) {
  auto resource = dyn_cast<DenseResourceElementsAttr>(value);
  if (!resource || !resource.getRawHandle().getBlob())
    return true;
  ArrayRef<char> bytes = resource.getRawHandle().getBlob()->getData();
  Type elt = value.getElementType();
  auto scan = [&](auto zero) {
    using T = decltype(zero);
    for (size_t i = 0; i + sizeof(T) <= bytes.size(); i += sizeof(T)) {
      T v;
      std::memcpy(&v, bytes.data() + i, sizeof(T));
      if (!std::isfinite(v))
        return false;
    }
    return true;
  };
  if (elt.isF32())
    return scan(0.0f);
  if (elt.isF64())
    return scan(0.0);
  return true;
}

bool import::reachesOutputAsFloat(Value value) {
  SmallVector<Value> worklist{value};
  llvm::DenseSet<Value> seen{value};
  while (!worklist.empty()) {
    Value v = worklist.pop_back_val();
    for (Operation *user : v.getUsers()) {
      if (isa<func::ReturnOp>(user))
        return true;
      for (Value r : user->getResults()) {
        if (isa<FloatType>(getElementTypeOrSelf(r.getType())) &&
            seen.insert(r).second)
          worklist.push_back(r);
      }
    }
  }
  return false;
}

void import::finishForward(func::FuncOp func, ArrayRef<Operation *> params,
                           const llvm::DenseSet<Value> &nonTrainable) {
  Block &body = func.getBody().front();
  llvm::BitVector unused(body.getNumArguments());
  for (auto [i, op] : llvm::enumerate(params)) {
    auto p = cast<ParameterOp>(op);
    BlockArgument arg = body.getArgument(i);
    if (arg.use_empty()) {
      unused.set(i);
      p.erase();
    } else if (nonTrainable.contains(arg) || !reachesOutputAsFloat(arg)) {
      p.setTrainable(false);
    }
  }
  (void)func.eraseArguments(unused);
  Operation *ret = body.getTerminator();
  func.setType(FunctionType::get(func.getContext(), body.getArgumentTypes(),
                                 ret->getOperandTypes()));
}
