//===- HostTensor.cpp - host tensors and .npy/.npz files ------------------===//
//
/// \file
/// Host tensors of the reference evaluator, their conversion from constants
/// and parameter blobs, and `.npy`/`.npz` files, read and written through
/// the runtime's readers and writer (lib/Runtime/Data), so there is one
/// parser and one writer of each format.
//
//===----------------------------------------------------------------------===//

#include "trainopt/Evaluator/HostTensor.h"

#include "trainopt/Runtime/Data.h"

#include "mlir/IR/Builders.h"
#include "mlir/IR/BuiltinAttributes.h"
#include "mlir/IR/BuiltinDialect.h"
#include "mlir/IR/DialectResourceBlobManager.h"
#include "llvm/ADT/APFloat.h"

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

/// The runtime's array of `t`, in the element type its `.npy` files use:
/// bf16 as float32, i16 and wider integers as int64.
static ::trainopt::rt::Array toArray(const HostTensor &t) {
  using ::trainopt::rt::DType;
  Type elt = t.elementType;
  ::trainopt::rt::Array a;
  a.shape.assign(t.shape.begin(), t.shape.end());
  a.dtype = elt.isF64()         ? DType::F64
            : elt.isF16()       ? DType::F16
            : t.isFloat()       ? DType::F32
            : elt.isInteger(1)  ? DType::Bool
            : elt.isInteger(8)  ? DType::I8
            : elt.isInteger(32) ? DType::I32
                                : DType::I64;
  size_t n = ::trainopt::rt::dtypeSize(a.dtype);
  a.bytes.resize(t.numElements() * n);
  for (int64_t i = 0, e = t.numElements(); i < e; ++i) {
    uint8_t *p = a.bytes.data() + i * n;
    if (a.dtype == DType::F64) {
      std::memcpy(p, &t.floats[i], 8);
    } else if (a.dtype == DType::F16) {
      bool lost;
      llvm::APFloat v(t.floats[i]);
      v.convert(llvm::APFloat::IEEEhalf(), llvm::APFloat::rmNearestTiesToEven,
                &lost);
      uint16_t bits = v.bitcastToAPInt().getZExtValue();
      std::memcpy(p, &bits, 2);
    } else if (t.isFloat()) {
      float v = static_cast<float>(t.floats[i]);
      std::memcpy(p, &v, 4);
    } else {
      // Little-endian: the low bytes of the int64 are the narrower integer.
      std::memcpy(p, &t.ints[i], n);
    }
  }
  return a;
}

std::string mlir::trainopt::writeNpy(const HostTensor &t) {
  return ::trainopt::rt::serializeNpy(toArray(t));
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
  case DType::BF16:
    elt = b.getBF16Type();
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

llvm::Error
mlir::trainopt::writeNpz(StringRef path,
                         ArrayRef<std::pair<std::string, HostTensor>> arrays) {
  // One .npz writer: the runtime's (trainopt-run --save-params uses it too).
  std::vector<std::pair<std::string, ::trainopt::rt::Array>> converted;
  converted.reserve(arrays.size());
  for (const auto &[key, tensor] : arrays)
    converted.push_back({key, toArray(tensor)});
  std::string error;
  if (!::trainopt::rt::writeNpz(path.str(), converted, error))
    return makeError(error);
  return llvm::Error::success();
}
