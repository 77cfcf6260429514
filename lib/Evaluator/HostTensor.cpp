//===- HostTensor.cpp - host tensors and .npy/.npz files ------------------===//
//
/// \file
/// Host tensors of the reference evaluator, their conversion from constants
/// and parameter blobs, and `.npz` files: read through the runtime's readers
/// (lib/Runtime/Data), written uncompressed here.
//
//===----------------------------------------------------------------------===//

#include "trainopt/Evaluator/HostTensor.h"

#include "trainopt/Runtime/Data.h"

#include "mlir/IR/Builders.h"
#include "mlir/IR/BuiltinAttributes.h"
#include "mlir/IR/BuiltinDialect.h"
#include "mlir/IR/DialectResourceBlobManager.h"
#include "llvm/ADT/APFloat.h"
#include "llvm/ADT/StringExtras.h"
#include "llvm/Support/CRC.h"
#include "llvm/Support/FileSystem.h"
#include "llvm/Support/MemoryBuffer.h"
#include "llvm/Support/raw_ostream.h"

#include <cmath>
#include <cstring>

using namespace mlir;
using namespace mlir::trainopt;

static llvm::Error makeError(const llvm::Twine &message) {
  return llvm::createStringError(llvm::inconvertibleErrorCode(), message);
}

double mlir::trainopt::roundToType(double v, Type type) {
  if (type.isF64())
    return v;
  if (type.isF32())
    return static_cast<double>(static_cast<float>(v));
  bool lost;
  llvm::APFloat f(v);
  f.convert(cast<FloatType>(type).getFloatSemantics(),
            llvm::APFloat::rmNearestTiesToEven, &lost);
  f.convert(llvm::APFloat::IEEEdouble(), llvm::APFloat::rmNearestTiesToEven,
            &lost);
  return f.convertToDouble();
}

int64_t mlir::trainopt::wrapToType(int64_t v, Type type) {
  unsigned width = type.getIntOrFloatBitWidth();
  if (width == 1)
    return v != 0;
  if (width >= 64)
    return v;
  uint64_t mask = (uint64_t(1) << width) - 1;
  uint64_t bits = static_cast<uint64_t>(v) & mask;
  if (bits >> (width - 1))
    bits |= ~mask;
  return static_cast<int64_t>(bits);
}

HostTensor HostTensor::zeros(RankedTensorType type) {
  HostTensor t;
  t.shape.assign(type.getShape().begin(), type.getShape().end());
  t.elementType = type.getElementType();
  if (t.isFloat())
    t.floats.assign(type.getNumElements(), 0.0);
  else
    t.ints.assign(type.getNumElements(), 0);
  return t;
}

int64_t HostTensor::numElements() const {
  int64_t n = 1;
  for (int64_t d : shape)
    n *= d;
  return n;
}

void HostTensor::set(int64_t i, double v) {
  if (isFloat()) {
    floats[i] = roundToType(v, elementType);
    return;
  }
  if (elementType.isInteger(1)) {
    ints[i] = v != 0.0;
    return;
  }
  // Float to integer truncates toward zero (trainopt.cast semantics).
  ints[i] = wrapToType(static_cast<int64_t>(std::trunc(v)), elementType);
}

void HostTensor::setInt(int64_t i, int64_t v) {
  if (isFloat())
    floats[i] = roundToType(static_cast<double>(v), elementType);
  else
    ints[i] = wrapToType(v, elementType);
}

llvm::Expected<HostTensor> mlir::trainopt::tensorFromAttr(ElementsAttr attr) {
  auto type = cast<RankedTensorType>(attr.getType());
  HostTensor t = HostTensor::zeros(type);
  Type elt = type.getElementType();
  if (auto dense = dyn_cast<DenseElementsAttr>(attr)) {
    int64_t i = 0;
    if (t.isFloat()) {
      for (const llvm::APFloat &v : dense.getValues<llvm::APFloat>()) {
        llvm::APFloat d = v;
        bool lost;
        d.convert(llvm::APFloat::IEEEdouble(),
                  llvm::APFloat::rmNearestTiesToEven, &lost);
        t.floats[i++] = d.convertToDouble();
      }
    } else if (elt.isInteger(1)) {
      for (bool v : dense.getValues<bool>())
        t.ints[i++] = v;
    } else {
      for (const llvm::APInt &v : dense.getValues<llvm::APInt>())
        t.ints[i++] = v.getSExtValue();
    }
    return t;
  }
  auto resource = dyn_cast<DenseResourceElementsAttr>(attr);
  if (!resource || !resource.getRawHandle().getBlob())
    return makeError("unsupported or empty constant attribute");
  ArrayRef<char> data = resource.getRawHandle().getBlob()->getData();
  unsigned bytes = elt.isInteger(1) ? 1 : elt.getIntOrFloatBitWidth() / 8;
  if (data.size() != static_cast<size_t>(t.numElements()) * bytes)
    return makeError("resource blob holds " + llvm::Twine(data.size()) +
                     " bytes, the type needs " +
                     llvm::Twine(t.numElements() * bytes));
  for (int64_t i = 0, e = t.numElements(); i < e; ++i) {
    const char *p = data.data() + i * bytes;
    if (elt.isF64()) {
      double v;
      std::memcpy(&v, p, 8);
      t.floats[i] = v;
    } else if (elt.isF32()) {
      float v;
      std::memcpy(&v, p, 4);
      t.floats[i] = v;
    } else if (t.isFloat()) {
      uint16_t bits;
      std::memcpy(&bits, p, 2);
      llvm::APFloat v(cast<FloatType>(elt).getFloatSemantics(),
                      llvm::APInt(16, bits));
      bool lost;
      v.convert(llvm::APFloat::IEEEdouble(), llvm::APFloat::rmNearestTiesToEven,
                &lost);
      t.floats[i] = v.convertToDouble();
    } else {
      int64_t v = 0;
      std::memcpy(&v, p, bytes);
      t.ints[i] = wrapToType(v, elt);
    }
  }
  return t;
}

//===----------------------------------------------------------------------===//
// .npy
//===----------------------------------------------------------------------===//

std::string mlir::trainopt::writeNpy(const HostTensor &t) {
  Type elt = t.elementType;
  std::string descr = elt.isF64()         ? "<f8"
                      : elt.isF16()       ? "<f2"
                      : t.isFloat()       ? "<f4"
                      : elt.isInteger(1)  ? "|b1"
                      : elt.isInteger(8)  ? "|i1"
                      : elt.isInteger(32) ? "<i4"
                                          : "<i8";
  std::string shape;
  for (int64_t d : t.shape)
    shape += std::to_string(d) + ", ";
  if (t.shape.size() > 1)
    shape.resize(shape.size() - 2);
  std::string header = "{'descr': '" + descr +
                       "', 'fortran_order': False, 'shape': (" + shape + "), }";
  size_t total = 10 + header.size() + 1;
  header.append((64 - total % 64) % 64, ' ');
  header += '\n';
  std::string out = "\x93NUMPY";
  out += '\x01';
  out += '\x00';
  out += static_cast<char>(header.size() & 0xff);
  out += static_cast<char>(header.size() >> 8);
  out += header;
  for (int64_t i = 0, e = t.numElements(); i < e; ++i) {
    char buf[8];
    size_t n;
    if (elt.isF64()) {
      std::memcpy(buf, &t.floats[i], 8);
      n = 8;
    } else if (elt.isF16()) {
      bool lost;
      llvm::APFloat v(t.floats[i]);
      v.convert(llvm::APFloat::IEEEhalf(), llvm::APFloat::rmNearestTiesToEven,
                &lost);
      uint16_t bits = v.bitcastToAPInt().getZExtValue();
      std::memcpy(buf, &bits, 2);
      n = 2;
    } else if (t.isFloat()) {
      float v = static_cast<float>(t.floats[i]);
      std::memcpy(buf, &v, 4);
      n = 4;
    } else {
      n = elt.isInteger(1) || elt.isInteger(8) ? 1 : elt.isInteger(32) ? 4 : 8;
      std::memcpy(buf, &t.ints[i], n);
    }
    out.append(buf, n);
  }
  return out;
}

//===----------------------------------------------------------------------===//
// .npz (zip)
//===----------------------------------------------------------------------===//

/// The runtime's array as a host tensor: unsigned and 16-bit integers widen
/// to i64/i32, everything else keeps its type.
static HostTensor fromArray(const ::trainopt::rt::Array &a, MLIRContext *ctx) {
  using ::trainopt::rt::DType;
  Builder b(ctx);
  Type elt;
  switch (a.dtype) {
  case DType::F64:
    elt = b.getF64Type();
    break;
  case DType::F32:
    elt = b.getF32Type();
    break;
  case DType::F16:
    elt = b.getF16Type();
    break;
  case DType::I32:
  case DType::I16:
    elt = b.getI32Type();
    break;
  case DType::I8:
    elt = b.getI8Type();
    break;
  case DType::Bool:
    elt = b.getI1Type();
    break;
  case DType::I64:
  case DType::U8:
    elt = b.getI64Type();
    break;
  }
  HostTensor t = HostTensor::zeros(RankedTensorType::get(a.shape, elt));
  for (int64_t i = 0, e = t.numElements(); i < e; ++i) {
    if (t.isFloat())
      t.floats[i] = a.at(i);
    else
      t.ints[i] = a.intAt(i);
  }
  return t;
}

llvm::Expected<std::vector<std::pair<std::string, HostTensor>>>
mlir::trainopt::readNpz(StringRef path, MLIRContext *ctx) {
  std::vector<std::pair<std::string, ::trainopt::rt::Array>> arrays;
  std::string error;
  std::vector<uint8_t> bytes;
  if (!::trainopt::rt::readFile(path.str(), bytes, error) ||
      !::trainopt::rt::parseNpz(bytes, path.str(), arrays, error))
    return makeError(error);
  std::vector<std::pair<std::string, HostTensor>> out;
  for (auto &[name, array] : arrays)
    out.push_back({name, fromArray(array, ctx)});
  return out;
}

static void put16(std::string &s, uint16_t v) {
  s += static_cast<char>(v & 0xff);
  s += static_cast<char>(v >> 8);
}
static void put32(std::string &s, uint32_t v) {
  for (int i = 0; i < 4; ++i)
    s += static_cast<char>((v >> (8 * i)) & 0xff);
}

llvm::Error
mlir::trainopt::writeNpz(StringRef path,
                         ArrayRef<std::pair<std::string, HostTensor>> arrays) {
  std::string out, central;
  for (const auto &[key, tensor] : arrays) {
    std::string name = key + ".npy";
    std::string data = writeNpy(tensor);
    uint32_t crc = llvm::crc32(llvm::arrayRefFromStringRef(data));
    size_t offset = out.size();
    put32(out, 0x04034b50);
    put16(out, 20); // version needed
    put16(out, 0);  // flags
    put16(out, 0);  // stored
    put16(out, 0);
    put16(out, 0x21); // 1980-01-01
    put32(out, crc);
    put32(out, data.size());
    put32(out, data.size());
    put16(out, name.size());
    put16(out, 0);
    out += name;
    out += data;
    put32(central, 0x02014b50);
    put16(central, 20);
    put16(central, 20);
    put16(central, 0);
    put16(central, 0);
    put16(central, 0);
    put16(central, 0x21);
    put32(central, crc);
    put32(central, data.size());
    put32(central, data.size());
    put16(central, name.size());
    put16(central, 0);
    put16(central, 0);
    put16(central, 0);
    put16(central, 0);
    put32(central, 0);
    put32(central, offset);
    central += name;
  }
  size_t cdOffset = out.size();
  out += central;
  put32(out, 0x06054b50);
  put16(out, 0);
  put16(out, 0);
  put16(out, arrays.size());
  put16(out, arrays.size());
  put32(out, central.size());
  put32(out, cdOffset);
  put16(out, 0);
  std::error_code ec;
  llvm::raw_fd_ostream os(path, ec);
  if (ec)
    return makeError("cannot write '" + path + "': " + ec.message());
  os << out;
  return llvm::Error::success();
}
