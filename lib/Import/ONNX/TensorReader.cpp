//===- TensorReader.cpp - checked reading of ONNX tensors and attributes --===//
//
/// \file
/// Every size in a model file is untrusted. Element counts are multiplied
/// with overflow checks, data lengths are compared with the declared shape
/// before use, and external data is resolved only to regular files inside
/// the model's directory (no absolute paths, no `..`, no symlink escape) with
/// offset and length inside the file.
//
//===----------------------------------------------------------------------===//

#include "ImportContext.h"

#include "mlir/IR/AsmState.h"
#include "mlir/IR/DialectResourceBlobManager.h"
#include "llvm/ADT/APFloat.h"
#include "llvm/ADT/SmallString.h"
#include "llvm/ADT/StringExtras.h"
#include "llvm/Support/FileSystem.h"
#include "llvm/Support/MemoryBuffer.h"
#include "llvm/Support/Path.h"
#include "llvm/Support/raw_ostream.h"

#include <charconv>
#include <cstdlib>
#include <cstring>

using namespace mlir;
using namespace mlir::trainopt;
using namespace mlir::trainopt::onnx_import;

std::string onnx_import::describeNode(const onnx::NodeProto &node,
                                      int64_t opset, int index) {
  std::string s;
  llvm::raw_string_ostream os(s);
  if (node.name().empty())
    os << "node #" << index;
  else
    os << "node '" << node.name() << "'";
  os << " (" << node.op_type() << ", domain '"
     << (node.domain().empty() ? "ai.onnx" : node.domain()) << "', opset "
     << opset << ")";
  return s;
}

Type onnx_import::convertElementType(MLIRContext *ctx, int32_t onnxType) {
  Builder b(ctx);
  switch (onnxType) {
  case onnx::TensorProto::FLOAT:
    return b.getF32Type();
  case onnx::TensorProto::DOUBLE:
    return b.getF64Type();
  case onnx::TensorProto::FLOAT16:
    return b.getF16Type();
  case onnx::TensorProto::BFLOAT16:
    return b.getBF16Type();
  case onnx::TensorProto::INT64:
    return b.getI64Type();
  case onnx::TensorProto::INT32:
    return b.getI32Type();
  case onnx::TensorProto::INT8:
    return b.getI8Type();
  case onnx::TensorProto::BOOL:
    return b.getI1Type();
  default:
    return {};
  }
}

std::string onnx_import::onnxTypeName(int32_t onnxType) {
  if (onnx::TensorProto::DataType_IsValid(onnxType))
    return onnx::TensorProto::DataType_Name(
        static_cast<onnx::TensorProto::DataType>(onnxType));
  return "element type " + std::to_string(onnxType);
}

/// Bytes one element occupies in trainopt's dense storage.
static unsigned storageBytes(Type elementType) {
  if (elementType.isInteger(1))
    return 1;
  return elementType.getIntOrFloatBitWidth() / 8;
}

FailureOr<RankedTensorType>
TensorReader::tensorType(const onnx::TensorProto &tensor, StringRef what,
                         Problems &problems) {
  Type elt = convertElementType(ctx, tensor.data_type());
  if (!elt) {
    problems.add((what + ": unsupported element type " +
                  onnxTypeName(tensor.data_type()))
                     .str());
    return failure();
  }
  SmallVector<int64_t> shape(tensor.dims().begin(), tensor.dims().end());
  FailureOr<int64_t> count = checkedElementCount(shape);
  if (failed(count)) {
    std::string dims;
    llvm::raw_string_ostream os(dims);
    llvm::interleaveComma(shape, os);
    problems.add((what + ": shape [" + dims +
                  "] has a negative dim or an element count that overflows "
                  "int64")
                     .str());
    return failure();
  }
  uint64_t bytes;
  if (__builtin_mul_overflow(static_cast<uint64_t>(*count),
                             static_cast<uint64_t>(storageBytes(elt)),
                             &bytes) ||
      bytes > static_cast<uint64_t>(INT64_MAX)) {
    problems.add((what + ": " + Twine(*count) +
                  " elements overflow the addressable size")
                     .str());
    return failure();
  }
  return RankedTensorType::get(shape, elt);
}

/// Parses a non-negative decimal int64 strictly (no sign, no spaces).
static std::optional<uint64_t> parseOffset(StringRef s) {
  uint64_t v;
  if (s.empty() || !llvm::all_of(s, llvm::isDigit) || s.getAsInteger(10, v) ||
      v > static_cast<uint64_t>(INT64_MAX))
    return std::nullopt;
  return v;
}

FailureOr<std::vector<char>>
TensorReader::readExternal(const onnx::TensorProto &tensor,
                           uint64_t expectedBytes, StringRef what,
                           Problems &problems) {
  std::string location;
  std::optional<uint64_t> offset = 0, length;
  for (const onnx::StringStringEntryProto &kv : tensor.external_data()) {
    if (kv.key() == "location") {
      location = kv.value();
    } else if (kv.key() == "offset") {
      offset = parseOffset(kv.value());
      if (!offset) {
        problems.add((what + ": external-data offset '" + kv.value() +
                      "' is not a non-negative integer")
                         .str());
        return failure();
      }
    } else if (kv.key() == "length") {
      length = parseOffset(kv.value());
      if (!length) {
        problems.add((what + ": external-data length '" + kv.value() +
                      "' is not a non-negative integer")
                         .str());
        return failure();
      }
    }
  }
  auto refuse = [&](const Twine &why) {
    problems.add(
        (what + ": external-data location '" + location + "' " + why).str());
    return failure();
  };
  if (location.empty()) {
    problems.add((what + ": external data without a 'location'").str());
    return failure();
  }
  if (llvm::sys::path::is_absolute(location) || location[0] == '/' ||
      location[0] == '\\')
    return refuse("is an absolute path; it must be relative to the model's "
                  "directory");
  for (auto it = llvm::sys::path::begin(location),
            end = llvm::sys::path::end(location);
       it != end; ++it) {
    if (*it == "..")
      return refuse("contains '..'; it must stay inside the model's directory");
  }
  if (location.find('\0') != std::string::npos)
    return refuse("contains a NUL byte");
  SmallString<256> dirReal, fileReal, joined(modelDir);
  llvm::sys::path::append(joined, location);
  if (llvm::sys::fs::real_path(modelDir, dirReal) ||
      llvm::sys::fs::real_path(joined, fileReal))
    return refuse("does not exist");
  StringRef prefix = dirReal.str();
  if (!StringRef(fileReal).starts_with(prefix) ||
      fileReal.size() <= prefix.size() ||
      !llvm::sys::path::is_separator(fileReal[prefix.size()]))
    return refuse("resolves (through a symlink) outside the model's directory");
  llvm::sys::fs::file_status status;
  if (llvm::sys::fs::status(fileReal, status) ||
      status.type() != llvm::sys::fs::file_type::regular_file)
    return refuse("is not a regular file");
  // A hard link is indistinguishable from the file it links: one to a file
  // outside the directory would escape it as a symlink would, and where the
  // other names are cannot be known. ONNX's checker follows the same rule.
  if (status.getLinkCount() > 1)
    return refuse("is a hard link (" + Twine(status.getLinkCount()) +
                  " names for one file), which could lead outside the model's "
                  "directory; use a plain copy");
  uint64_t fileSize = status.getSize();
  uint64_t want = length ? *length : expectedBytes;
  if (want != expectedBytes)
    return refuse("declares length " + Twine(want) + " but the tensor needs " +
                  Twine(expectedBytes) + " bytes");
  uint64_t end;
  if (__builtin_add_overflow(*offset, want, &end) || end > fileSize)
    return refuse("range [" + Twine(*offset) + ", " + Twine(*offset) + " + " +
                  Twine(want) + ") exceeds the file size " + Twine(fileSize));
  auto buffer = llvm::MemoryBuffer::getFileSlice(fileReal, want, *offset,
                                                 /*IsVolatile=*/false);
  if (!buffer)
    return refuse("cannot be read: " + buffer.getError().message());
  const char *data = (*buffer)->getBufferStart();
  return std::vector<char>(data, data + want);
}

FailureOr<std::vector<char>>
TensorReader::readBytes(const onnx::TensorProto &tensor, RankedTensorType type,
                        StringRef what, Problems &problems) {
  Type elt = type.getElementType();
  int64_t count = type.getNumElements();
  uint64_t bytes = static_cast<uint64_t>(count) * storageBytes(elt);
  auto mismatch = [&](StringRef field, uint64_t have, uint64_t need) {
    problems.add((what + ": " + field + " holds " + Twine(have) +
                  (field == "raw_data" ? " bytes" : " values") + ", shape " +
                  "needs " + Twine(need))
                     .str());
    return failure();
  };
  if (tensor.data_location() == onnx::TensorProto::EXTERNAL)
    return readExternal(tensor, bytes, what, problems);
  if (tensor.has_raw_data()) {
    if (tensor.raw_data().size() != bytes)
      return mismatch("raw_data", tensor.raw_data().size(), bytes);
    return std::vector<char>(tensor.raw_data().begin(),
                             tensor.raw_data().end());
  }
  // The typed field must hold `count` values; compare before allocating so
  // a huge declared shape with no data cannot exhaust memory.
  std::vector<char> out;
  auto copyFrom = [&](const auto &field, StringRef name,
                      auto convert) -> LogicalResult {
    if (static_cast<int64_t>(field.size()) != count)
      return mismatch(name, field.size(), count);
    out.resize(bytes);
    for (int64_t i = 0; i < count; ++i)
      convert(field.Get(i), out.data() + i * storageBytes(elt));
    return success();
  };
  LogicalResult ok = success();
  switch (tensor.data_type()) {
  case onnx::TensorProto::FLOAT:
    ok = copyFrom(tensor.float_data(), "float_data",
                  [](float v, char *p) { std::memcpy(p, &v, 4); });
    break;
  case onnx::TensorProto::DOUBLE:
    ok = copyFrom(tensor.double_data(), "double_data",
                  [](double v, char *p) { std::memcpy(p, &v, 8); });
    break;
  case onnx::TensorProto::INT64:
    ok = copyFrom(tensor.int64_data(), "int64_data",
                  [](int64_t v, char *p) { std::memcpy(p, &v, 8); });
    break;
  case onnx::TensorProto::INT32:
    ok = copyFrom(tensor.int32_data(), "int32_data",
                  [](int32_t v, char *p) { std::memcpy(p, &v, 4); });
    break;
  case onnx::TensorProto::INT8:
    ok = copyFrom(tensor.int32_data(), "int32_data", [](int32_t v, char *p) {
      *p = static_cast<char>(static_cast<int8_t>(v));
    });
    break;
  case onnx::TensorProto::BOOL:
    ok = copyFrom(tensor.int32_data(), "int32_data",
                  [](int32_t v, char *p) { *p = v != 0; });
    break;
  case onnx::TensorProto::FLOAT16:
  case onnx::TensorProto::BFLOAT16:
    // Both store the 16-bit pattern in the low half of an int32.
    ok = copyFrom(tensor.int32_data(), "int32_data", [](int32_t v, char *p) {
      uint16_t bits = static_cast<uint16_t>(v);
      std::memcpy(p, &bits, 2);
    });
    break;
  default:
    break;
  }
  if (failed(ok))
    return failure();
  return out;
}

FailureOr<DenseElementsAttr>
TensorReader::readDense(const onnx::TensorProto &tensor, StringRef what,
                        Problems &problems) {
  FailureOr<RankedTensorType> type = tensorType(tensor, what, problems);
  if (failed(type))
    return failure();
  FailureOr<std::vector<char>> bytes = readBytes(tensor, *type, what, problems);
  if (failed(bytes))
    return failure();
  if (type->getElementType().isInteger(1)) {
    SmallVector<bool> values(bytes->begin(), bytes->end());
    return DenseElementsAttr::get(*type, ArrayRef<bool>(values));
  }
  return DenseElementsAttr::getFromRawBuffer(*type, *bytes);
}

FailureOr<ElementsAttr>
TensorReader::readResource(const onnx::TensorProto &tensor, StringRef what,
                           Problems &problems) {
  FailureOr<RankedTensorType> type = tensorType(tensor, what, problems);
  if (failed(type))
    return failure();
  FailureOr<std::vector<char>> bytes = readBytes(tensor, *type, what, problems);
  if (failed(bytes))
    return failure();
  size_t align = std::max<size_t>(storageBytes(type->getElementType()), 1);
  // An empty vector's data() may be null, and the blob copies with memcpy,
  // which must not be given null even for no bytes (UBSan, fuzz target
  // onnx: a zero-element initializer; fuzz/regressions/onnx/).
  static const char kNoBytes = 0;
  ArrayRef<char> data = bytes->empty() ? ArrayRef<char>(&kNoBytes, size_t(0))
                                       : ArrayRef<char>(*bytes);
  AsmResourceBlob blob =
      HeapAsmResourceBlob::allocateAndCopyWithAlign(data, align);
  return cast<ElementsAttr>(
      DenseResourceElementsAttr::get(*type, tensor.name(), std::move(blob)));
}

//===----------------------------------------------------------------------===//
// AttrBinder
//===----------------------------------------------------------------------===//

double onnx_import::decimalDouble(float value) {
  char text[64];
  auto [end, ec] = std::to_chars(text, text + sizeof(text), value);
  if (ec != std::errc())
    return static_cast<double>(value);
  *end = '\0';
  return std::strtod(text, nullptr);
}

double onnx_import::scalarAsDouble(DenseElementsAttr value) {
  if (isa<FloatType>(value.getElementType())) {
    APFloat v = *value.getValues<APFloat>().begin();
    if (&v.getSemantics() == &APFloat::IEEEsingle())
      return decimalDouble(v.convertToFloat());
    bool lost;
    v.convert(APFloat::IEEEdouble(), APFloat::rmNearestTiesToEven, &lost);
    return v.convertToDouble();
  }
  if (value.getElementType().isInteger(1))
    return *value.getValues<bool>().begin() ? 1.0 : 0.0;
  return static_cast<double>(
      (*value.getValues<APInt>().begin()).getSExtValue());
}

AttrBinder::AttrBinder(const onnx::NodeProto &node) {
  for (const onnx::AttributeProto &a : node.attribute())
    byName[a.name()] = &a;
}

FailureOr<const onnx::AttributeProto *>
AttrBinder::typed(StringRef name, onnx::AttributeProto::AttributeType type) {
  const onnx::AttributeProto *a = get(name);
  if (!a)
    return static_cast<const onnx::AttributeProto *>(nullptr);
  // Old exporters leave `type` unset; trust the populated field then.
  if (a->type() != onnx::AttributeProto::UNDEFINED && a->type() != type) {
    if (firstError.empty())
      firstError =
          ("attribute '" + name + "' has type " +
           onnx::AttributeProto::AttributeType_Name(a->type()) + ", expected " +
           onnx::AttributeProto::AttributeType_Name(type))
              .str();
    return failure();
  }
  return a;
}

template <typename T, typename Extract>
FailureOr<T> AttrBinder::getOr(StringRef name,
                               onnx::AttributeProto::AttributeType type,
                               std::optional<T> def, Extract extract) {
  FailureOr<const onnx::AttributeProto *> a = typed(name, type);
  if (failed(a))
    return failure();
  if (*a)
    return T(extract(**a));
  if (def)
    return std::move(*def);
  if (firstError.empty())
    firstError = ("missing required attribute '" + name + "'").str();
  return failure();
}

FailureOr<int64_t> AttrBinder::getInt(StringRef name,
                                      std::optional<int64_t> def) {
  return getOr<int64_t>(name, onnx::AttributeProto::INT, def,
                        [](const onnx::AttributeProto &a) { return a.i(); });
}

FailureOr<double> AttrBinder::getFloat(StringRef name,
                                       std::optional<double> def) {
  return getOr<double>(
      name, onnx::AttributeProto::FLOAT, def,
      [](const onnx::AttributeProto &a) { return decimalDouble(a.f()); });
}

FailureOr<std::string> AttrBinder::getString(StringRef name,
                                             std::optional<std::string> def) {
  return getOr<std::string>(
      name, onnx::AttributeProto::STRING, std::move(def),
      [](const onnx::AttributeProto &a) { return a.s(); });
}

FailureOr<SmallVector<int64_t>>
AttrBinder::getInts(StringRef name, std::optional<SmallVector<int64_t>> def) {
  return getOr<SmallVector<int64_t>>(
      name, onnx::AttributeProto::INTS, std::move(def),
      [](const onnx::AttributeProto &a) {
        return SmallVector<int64_t>(a.ints().begin(), a.ints().end());
      });
}

FailureOr<SmallVector<double>> AttrBinder::getFloats(StringRef name) {
  FailureOr<const onnx::AttributeProto *> a =
      typed(name, onnx::AttributeProto::FLOATS);
  if (failed(a))
    return failure();
  SmallVector<double> out;
  if (*a)
    for (float f : (*a)->floats())
      out.push_back(decimalDouble(f));
  return out;
}
