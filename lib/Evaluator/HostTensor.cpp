//===- HostTensor.cpp - host tensors and .npy/.npz files ------------------===//
//
/// \file
/// Host tensors of the reference evaluator, their conversion from constants
/// and parameter blobs, and the NumPy file formats: `.npy` version 1-3 and
/// `.npz` zip archives with stored or deflated members.
//
//===----------------------------------------------------------------------===//

#include "trainopt/Evaluator/HostTensor.h"

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

#include <zlib.h>

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

namespace {
/// A NumPy dtype the files may carry.
struct NpyType {
  char kind; // 'f', 'i', 'u', 'b'
  unsigned bytes;
};
} // namespace

static std::optional<NpyType> parseDescr(StringRef descr) {
  if (descr.size() < 3 ||
      (descr[0] != '<' && descr[0] != '|' && descr[0] != '='))
    return std::nullopt;
  unsigned bytes;
  if (descr.drop_front(2).getAsInteger(10, bytes))
    return std::nullopt;
  char kind = descr[1];
  if (!StringRef("fiub").contains(kind))
    return std::nullopt;
  return NpyType{kind, bytes};
}

llvm::Expected<HostTensor>
mlir::trainopt::readNpy(StringRef bytes, MLIRContext *ctx, StringRef what) {
  auto fail = [&](const llvm::Twine &why) {
    return makeError(what + ": " + why);
  };
  if (!bytes.starts_with("\x93NUMPY") || bytes.size() < 10)
    return fail("not a .npy file");
  unsigned major = static_cast<unsigned char>(bytes[6]);
  size_t headerLen, offset;
  if (major == 1) {
    headerLen = static_cast<unsigned char>(bytes[8]) |
                (static_cast<unsigned char>(bytes[9]) << 8);
    offset = 10;
  } else {
    if (bytes.size() < 12)
      return fail("truncated header");
    headerLen = 0;
    for (int i = 0; i < 4; ++i)
      headerLen |= size_t(static_cast<unsigned char>(bytes[8 + i])) << (8 * i);
    offset = 12;
  }
  if (offset + headerLen > bytes.size())
    return fail("truncated header");
  StringRef header = bytes.substr(offset, headerLen);
  auto field = [&](StringRef key) -> StringRef {
    size_t k = header.find("'" + key.str() + "'");
    if (k == StringRef::npos)
      return {};
    StringRef rest = header.drop_front(k + key.size() + 2).ltrim(" :");
    return rest;
  };
  StringRef descrField = field("descr");
  if (descrField.empty() || descrField[0] != '\'')
    return fail("header has no descr");
  StringRef descr = descrField.drop_front().split('\'').first;
  std::optional<NpyType> type = parseDescr(descr);
  if (!type)
    return fail("unsupported dtype '" + descr + "'");
  if (field("fortran_order").starts_with("True"))
    return fail("Fortran-ordered arrays are not supported");
  StringRef shapeField = field("shape");
  if (!shapeField.starts_with("("))
    return fail("header has no shape");
  StringRef dims = shapeField.drop_front().split(')').first;
  HostTensor t;
  SmallVector<StringRef> parts;
  dims.split(parts, ',', -1, /*KeepEmpty=*/false);
  int64_t count = 1;
  for (StringRef p : parts) {
    p = p.trim();
    if (p.empty())
      continue;
    int64_t d;
    if (p.getAsInteger(10, d) || d < 0 ||
        __builtin_mul_overflow(count, d, &count))
      return fail("bad shape '(" + dims + ")'");
    t.shape.push_back(d);
  }
  Builder b(ctx);
  switch (type->kind) {
  case 'f':
    t.elementType = type->bytes == 8   ? Type(b.getF64Type())
                    : type->bytes == 4 ? Type(b.getF32Type())
                    : type->bytes == 2 ? Type(b.getF16Type())
                                       : Type();
    break;
  case 'b':
    t.elementType = b.getI1Type();
    break;
  default:
    // Unsigned arrays widen to i64, which holds every uint8..uint32 value.
    t.elementType = type->kind == 'u'  ? Type(b.getI64Type())
                    : type->bytes == 8 ? Type(b.getI64Type())
                    : type->bytes == 4 ? Type(b.getI32Type())
                    : type->bytes == 2 ? Type(b.getI32Type())
                    : type->bytes == 1 ? Type(b.getI8Type())
                                       : Type();
    break;
  }
  if (!t.elementType)
    return fail("unsupported dtype '" + descr + "'");
  StringRef data = bytes.drop_front(offset + headerLen);
  if (static_cast<uint64_t>(data.size()) !=
      static_cast<uint64_t>(count) * type->bytes)
    return fail("data holds " + llvm::Twine(data.size()) +
                " bytes, shape needs " + llvm::Twine(count * type->bytes));
  if (t.isFloat())
    t.floats.resize(count);
  else
    t.ints.resize(count);
  for (int64_t i = 0; i < count; ++i) {
    const char *p = data.data() + i * type->bytes;
    if (type->kind == 'f') {
      if (type->bytes == 8) {
        double v;
        std::memcpy(&v, p, 8);
        t.floats[i] = v;
      } else if (type->bytes == 4) {
        float v;
        std::memcpy(&v, p, 4);
        t.floats[i] = v;
      } else {
        uint16_t bits;
        std::memcpy(&bits, p, 2);
        llvm::APFloat v(llvm::APFloat::IEEEhalf(), llvm::APInt(16, bits));
        t.floats[i] = v.convertToFloat();
      }
    } else if (type->kind == 'b') {
      t.ints[i] = *p != 0;
    } else {
      uint64_t raw = 0;
      std::memcpy(&raw, p, type->bytes);
      int64_t v = static_cast<int64_t>(raw);
      if (type->kind == 'i' && type->bytes < 8 &&
          (raw >> (8 * type->bytes - 1)))
        v = static_cast<int64_t>(raw | (~uint64_t(0) << (8 * type->bytes)));
      t.ints[i] = v;
    }
  }
  return t;
}

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

static uint32_t le32(StringRef s, size_t at) {
  uint32_t v = 0;
  for (int i = 0; i < 4; ++i)
    v |= uint32_t(static_cast<unsigned char>(s[at + i])) << (8 * i);
  return v;
}
static uint16_t le16(StringRef s, size_t at) {
  return static_cast<unsigned char>(s[at]) |
         (static_cast<unsigned char>(s[at + 1]) << 8);
}

llvm::Expected<std::vector<std::pair<std::string, HostTensor>>>
mlir::trainopt::readNpz(StringRef path, MLIRContext *ctx) {
  auto buffer = llvm::MemoryBuffer::getFile(path, /*IsText=*/false,
                                            /*RequiresNullTerminator=*/false);
  if (!buffer)
    return makeError("cannot read '" + path +
                     "': " + buffer.getError().message());
  StringRef file = (*buffer)->getBuffer();
  auto fail = [&](const llvm::Twine &why) {
    return makeError("'" + path + "': " + why);
  };
  // The end-of-central-directory record is in the last 64 KiB + 22 bytes.
  size_t eocd = StringRef::npos;
  for (size_t i = file.size() >= 22 ? file.size() - 22 : 0;; --i) {
    if (le32(file, i) == 0x06054b50 && file.size() >= 22) {
      eocd = i;
      break;
    }
    if (i == 0 || file.size() - i > 65557)
      break;
  }
  if (file.size() < 22 || eocd == StringRef::npos)
    return fail("not a .npz (zip) file");
  uint16_t entries = le16(file, eocd + 10);
  size_t cd = le32(file, eocd + 16);
  std::vector<std::pair<std::string, HostTensor>> out;
  for (uint16_t e = 0; e < entries; ++e) {
    if (cd + 46 > file.size() || le32(file, cd) != 0x02014b50)
      return fail("corrupt central directory");
    uint16_t method = le16(file, cd + 10);
    size_t csize = le32(file, cd + 20), usize = le32(file, cd + 24);
    uint16_t nlen = le16(file, cd + 28), xlen = le16(file, cd + 30),
             clen = le16(file, cd + 32);
    size_t local = le32(file, cd + 42);
    if (cd + 46 + nlen > file.size())
      return fail("corrupt central directory");
    std::string name = file.substr(cd + 46, nlen).str();
    cd += 46 + nlen + xlen + clen;
    if (local + 30 > file.size() || le32(file, local) != 0x04034b50)
      return fail("corrupt member '" + name + "'");
    size_t data = local + 30 + le16(file, local + 26) + le16(file, local + 28);
    if (data + csize > file.size())
      return fail("member '" + name + "' is truncated");
    StringRef raw = file.substr(data, csize);
    std::string inflated;
    if (method == 8) {
      inflated.resize(usize);
      z_stream zs{};
      zs.next_in = reinterpret_cast<Bytef *>(const_cast<char *>(raw.data()));
      zs.avail_in = raw.size();
      zs.next_out = reinterpret_cast<Bytef *>(inflated.data());
      zs.avail_out = usize;
      if (inflateInit2(&zs, -MAX_WBITS) != Z_OK)
        return fail("cannot inflate '" + name + "'");
      int rc = inflate(&zs, Z_FINISH);
      inflateEnd(&zs);
      if (rc != Z_STREAM_END || zs.total_out != usize)
        return fail("cannot inflate '" + name + "'");
      raw = inflated;
    } else if (method != 0) {
      return fail("member '" + name + "' uses unsupported compression " +
                  llvm::Twine(method));
    }
    StringRef key = StringRef(name);
    key.consume_back(".npy");
    std::string what = (path + ":" + name).str();
    llvm::Expected<HostTensor> t = readNpy(raw, ctx, what);
    if (!t)
      return t.takeError();
    out.push_back({key.str(), std::move(*t)});
  }
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
