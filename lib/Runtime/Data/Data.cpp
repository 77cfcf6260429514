//===- Data.cpp - IDX, .npy and .npz files for the runtime ----------------===//
//
/// \file
/// Readers of the training-data formats and the `.npz` writer. Files are
/// untrusted: headers are parsed strictly, element counts are multiplied with
/// overflow checks and compared with the payload before anything is copied,
/// and inflation is bounded by the sizes the archive declares.
//
//===----------------------------------------------------------------------===//

#include "trainopt/Runtime/Data.h"
#include "trainopt/Support/Files.h"

#include "trainopt/Runtime/NarrowFloat.h"

#include <zlib.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <fcntl.h>
#include <limits>
#include <set>
#include <unistd.h>

using namespace trainopt::rt;

unsigned trainopt::rt::dtypeSize(DType t) {
  switch (t) {
  case DType::F64:
  case DType::I64:
    return 8;
  case DType::F32:
  case DType::I32:
    return 4;
  case DType::F16:
  case DType::BF16:
  case DType::I16:
    return 2;
  case DType::I8:
  case DType::U8:
  case DType::Bool:
    return 1;
  }
  return 1;
}

const char *trainopt::rt::dtypeName(DType t) {
  switch (t) {
  case DType::F64:
    return "float64";
  case DType::F32:
    return "float32";
  case DType::F16:
    return "float16";
  case DType::BF16:
    return "bfloat16";
  case DType::I64:
    return "int64";
  case DType::I32:
    return "int32";
  case DType::I16:
    return "int16";
  case DType::I8:
    return "int8";
  case DType::U8:
    return "uint8";
  case DType::Bool:
    return "bool";
  }
  return "?";
}

int64_t Array::numElements() const {
  int64_t n = 1;
  for (int64_t d : shape)
    n *= d;
  return n;
}

double Array::at(int64_t i) const {
  return elementAsDouble(bytes.data(), dtype, i);
}

double trainopt::rt::elementAsDouble(const uint8_t *data, DType dtype,
                                     int64_t i) {
  const uint8_t *p = data + i * dtypeSize(dtype);
  auto load = [&](auto v) {
    std::memcpy(&v, p, sizeof(v));
    return v;
  };
  switch (dtype) {
  case DType::F64:
    return load(double());
  case DType::F32:
    return load(float());
  case DType::F16:
    return halfToFloat(load(uint16_t()));
  case DType::BF16:
    return bf16ToFloat(load(uint16_t()));
  case DType::I64:
    return static_cast<double>(load(int64_t()));
  case DType::I32:
    return load(int32_t());
  case DType::I16:
    return load(int16_t());
  case DType::I8:
    return load(int8_t());
  case DType::U8:
  case DType::Bool:
    return *p;
  }
  return 0.0;
}

/// The IEEE half nearest to `v` (ties to even), as bits. Rounded once from
/// the double; NarrowFloat.h's floatToHalf rounds from a float.
static uint16_t doubleToHalf(double v) {
  uint16_t sign = std::signbit(v) ? 0x8000 : 0;
  v = std::fabs(v);
  if (std::isnan(v))
    return sign | 0x7e00;
  if (v >= 65520.0) // rounds to infinity
    return sign | 0x7c00;
  if (v == 0.0)
    return sign;
  int exp;
  std::frexp(v, &exp); // v = m * 2^exp, m in [0.5, 1)
  // Units of the last place: 2^(exp - 11) for normals, 2^-24 below 2^-14.
  int ulpExp = std::max(exp - 11, -24);
  double units = std::nearbyint(std::ldexp(v, -ulpExp));
  if (ulpExp == -24) // subnormal (or the smallest normal after rounding)
    return sign | static_cast<uint16_t>(units);
  // units in [2^10, 2^11]: a carry to 2^11 moves to the next binade.
  int biased = ulpExp + 25;
  if (units >= 2048.0)
    units /= 2, ++biased;
  return sign | static_cast<uint16_t>(biased << 10) |
         static_cast<uint16_t>(static_cast<int>(units) - 1024);
}

/// The bfloat16 nearest to `v` (ties to even), as bits: rounded once from
/// the double (not through float32, which could round twice).
static uint16_t doubleToBfloat16(double v) {
  if (std::isnan(v))
    return std::signbit(v) ? 0xffc0 : 0x7fc0;
  double a = std::fabs(v);
  if (a != 0.0 && std::isfinite(a)) {
    int exp;
    std::frexp(a, &exp);
    // 8 significant bits; below 2^-126 the spacing stays 2^-133.
    int ulpExp = std::max(exp - 8, -133);
    a = std::ldexp(std::nearbyint(std::ldexp(a, -ulpExp)), ulpExp);
  }
  // Beyond the largest bfloat16 (0x7f7f) rounding goes to infinity; a
  // rounded value is exact in float32 otherwise.
  float f = a >= 0x1.ffp127 ? std::numeric_limits<float>::infinity()
                            : static_cast<float>(a);
  uint32_t bits;
  std::memcpy(&bits, &f, sizeof(bits));
  return static_cast<uint16_t>(bits >> 16) | (std::signbit(v) ? 0x8000 : 0);
}

void trainopt::rt::storeElement(uint8_t *data, DType dtype, int64_t i,
                                double v) {
  uint8_t *p = data + i * dtypeSize(dtype);
  auto store = [&](auto x) { std::memcpy(p, &x, sizeof(x)); };
  switch (dtype) {
  case DType::F64:
    return store(v);
  case DType::F32:
    return store(static_cast<float>(v));
  case DType::F16:
    return store(doubleToHalf(v));
  case DType::BF16:
    return store(doubleToBfloat16(v));
  case DType::I64:
    return store(static_cast<int64_t>(v));
  case DType::I32:
    return store(static_cast<int32_t>(v));
  case DType::I16:
    return store(static_cast<int16_t>(v));
  case DType::I8:
    return store(static_cast<int8_t>(v));
  case DType::U8:
    return store(static_cast<uint8_t>(v));
  case DType::Bool:
    return store(static_cast<uint8_t>(v != 0.0));
  }
}

int64_t Array::intAt(int64_t i) const {
  const uint8_t *p = bytes.data() + i * dtypeSize(dtype);
  auto load = [&](auto v) {
    std::memcpy(&v, p, sizeof(v));
    return static_cast<int64_t>(v);
  };
  switch (dtype) {
  case DType::I64:
    return load(int64_t());
  case DType::I32:
    return load(int32_t());
  case DType::I16:
    return load(int16_t());
  case DType::I8:
    return load(int8_t());
  case DType::U8:
  case DType::Bool:
    return *p;
  default:
    return static_cast<int64_t>(at(i));
  }
}

/// Element count of `shape`, or -1 on a negative dim or overflow.
static int64_t checkedCount(const std::vector<int64_t> &shape) {
  int64_t n = 1;
  for (int64_t d : shape)
    if (d < 0 || __builtin_mul_overflow(n, d, &n))
      return -1;
  return n;
}

static bool fail(std::string &error, const std::string &message) {
  error = message;
  return false;
}

bool trainopt::rt::readFile(const std::string &path, std::vector<uint8_t> &out,
                            std::string &error) {
  std::vector<uint8_t> raw;
  if (!trainopt::readWholeFile(path, raw, error))
    return false;
  if (raw.size() < 2 || raw[0] != 0x1f || raw[1] != 0x8b) {
    out = std::move(raw);
    return true;
  }
  // gzip: inflate in chunks (the trailer's size field is modulo 2^32).
  z_stream zs{};
  if (inflateInit2(&zs, 16 + MAX_WBITS) != Z_OK)
    return fail(error, "'" + path + "': cannot start gzip decompression");
  zs.next_in = raw.data();
  zs.avail_in = raw.size();
  out.clear();
  int rc = Z_OK;
  while (rc == Z_OK) {
    size_t old = out.size();
    out.resize(old + (1 << 20));
    zs.next_out = out.data() + old;
    zs.avail_out = 1 << 20;
    rc = inflate(&zs, Z_NO_FLUSH);
    out.resize(old + (1 << 20) - zs.avail_out);
    if (rc == Z_BUF_ERROR && zs.avail_in == 0)
      break;
  }
  inflateEnd(&zs);
  if (rc != Z_STREAM_END)
    return fail(error, "'" + path + "': corrupt or truncated gzip data");
  return true;
}

bool trainopt::rt::parseIdx(const std::vector<uint8_t> &b,
                            const std::string &what, Array &out,
                            std::string &error) {
  if (b.size() < 4 || b[0] != 0 || b[1] != 0)
    return fail(error, what + ": not an IDX file (bad magic)");
  DType type;
  switch (b[2]) {
  case 0x08:
    type = DType::U8;
    break;
  case 0x09:
    type = DType::I8;
    break;
  case 0x0B:
    type = DType::I16;
    break;
  case 0x0C:
    type = DType::I32;
    break;
  case 0x0D:
    type = DType::F32;
    break;
  case 0x0E:
    type = DType::F64;
    break;
  default:
    return fail(error,
                what + ": unknown IDX element type " + std::to_string(b[2]));
  }
  size_t rank = b[3];
  if (rank == 0 || b.size() < 4 + 4 * rank)
    return fail(error, what + ": truncated IDX header");
  out.shape.clear();
  for (size_t i = 0; i < rank; ++i) {
    const uint8_t *p = b.data() + 4 + 4 * i;
    out.shape.push_back((int64_t(p[0]) << 24) | (int64_t(p[1]) << 16) |
                        (int64_t(p[2]) << 8) | int64_t(p[3]));
  }
  int64_t count = checkedCount(out.shape);
  unsigned size = dtypeSize(type);
  uint64_t need;
  if (count < 0 ||
      __builtin_mul_overflow(static_cast<uint64_t>(count), size, &need))
    return fail(error, what + ": IDX dims overflow");
  size_t offset = 4 + 4 * rank;
  if (b.size() - offset != need)
    return fail(error, what + ": IDX payload has " +
                           std::to_string(b.size() - offset) +
                           " bytes, the dims need " + std::to_string(need));
  out.dtype = type;
  out.bytes.resize(need);
  // IDX is big-endian; the runtime stores little-endian.
  for (int64_t i = 0; i < count; ++i)
    for (unsigned k = 0; k < size; ++k)
      out.bytes[i * size + k] = b[offset + i * size + (size - 1 - k)];
  return true;
}

bool trainopt::rt::parseNpy(const uint8_t *data, size_t size,
                            const std::string &what, Array &out,
                            std::string &error) {
  if (size < 10 || std::memcmp(data, "\x93NUMPY", 6) != 0)
    return fail(error, what + ": not a .npy file");
  size_t headerLen, offset;
  if (data[6] == 1) {
    headerLen = data[8] | (size_t(data[9]) << 8);
    offset = 10;
  } else {
    if (size < 12)
      return fail(error, what + ": truncated .npy header");
    headerLen = data[8] | (size_t(data[9]) << 8) | (size_t(data[10]) << 16) |
                (size_t(data[11]) << 24);
    offset = 12;
  }
  if (headerLen > size - offset)
    return fail(error, what + ": truncated .npy header");
  std::string header(reinterpret_cast<const char *>(data) + offset, headerLen);
  auto field = [&](const std::string &key) -> std::string {
    size_t k = header.find("'" + key + "'");
    if (k == std::string::npos)
      return {};
    size_t colon = header.find(':', k);
    if (colon == std::string::npos)
      return {};
    size_t start = header.find_first_not_of(' ', colon + 1);
    return start == std::string::npos ? std::string() : header.substr(start);
  };
  std::string descr = field("descr");
  if (descr.size() < 5 || descr[0] != '\'')
    return fail(error, what + ": .npy header has no descr");
  descr = descr.substr(1, descr.find('\'', 1) - 1);
  static const std::pair<const char *, DType> types[] = {
      {"<f8", DType::F64}, {"<f4", DType::F32}, {"<f2", DType::F16},
      {"<i8", DType::I64}, {"<i4", DType::I32}, {"<i2", DType::I16},
      {"|i1", DType::I8},  {"|u1", DType::U8},  {"|b1", DType::Bool}};
  bool known = false;
  for (auto &[name, t] : types)
    if (descr == name) {
      out.dtype = t;
      known = true;
    }
  if (!known)
    return fail(error, what + ": unsupported dtype '" + descr + "'");
  if (field("fortran_order").rfind("True", 0) == 0)
    return fail(error, what + ": Fortran-ordered arrays are not supported");
  std::string shape = field("shape");
  if (shape.empty() || shape[0] != '(' || shape.find(')') == std::string::npos)
    return fail(error, what + ": .npy header has no shape");
  shape = shape.substr(1, shape.find(')') - 1);
  out.shape.clear();
  size_t pos = 0;
  while (pos < shape.size()) {
    size_t comma = shape.find(',', pos);
    std::string dim = shape.substr(
        pos, comma == std::string::npos ? std::string::npos : comma - pos);
    size_t first = dim.find_first_not_of(' ');
    if (first != std::string::npos) {
      dim = dim.substr(first);
      char *end = nullptr;
      long long v = std::strtoll(dim.c_str(), &end, 10);
      if (end == dim.c_str() || v < 0)
        return fail(error, what + ": bad shape '(" + shape + ")'");
      out.shape.push_back(v);
    }
    if (comma == std::string::npos)
      break;
    pos = comma + 1;
  }
  int64_t count = checkedCount(out.shape);
  uint64_t need;
  if (count < 0 || __builtin_mul_overflow(static_cast<uint64_t>(count),
                                          dtypeSize(out.dtype), &need))
    return fail(error, what + ": shape overflows");
  size_t payload = size - offset - headerLen;
  if (payload != need)
    return fail(error, what + ": data has " + std::to_string(payload) +
                           " bytes, the shape needs " + std::to_string(need));
  out.bytes.assign(data + offset + headerLen, data + size);
  return true;
}

static uint32_t le32(const std::vector<uint8_t> &b, size_t at) {
  return b[at] | (uint32_t(b[at + 1]) << 8) | (uint32_t(b[at + 2]) << 16) |
         (uint32_t(b[at + 3]) << 24);
}
static uint16_t le16(const std::vector<uint8_t> &b, size_t at) {
  return b[at] | (uint16_t(b[at + 1]) << 8);
}

bool trainopt::rt::parseNpz(const std::vector<uint8_t> &b,
                            const std::string &what,
                            std::vector<std::pair<std::string, Array>> &out,
                            std::string &error) {
  if (b.size() < 22)
    return fail(error, what + ": not a .npz (zip) file");
  size_t eocd = std::string::npos;
  for (size_t i = b.size() - 22;; --i) {
    if (le32(b, i) == 0x06054b50) {
      eocd = i;
      break;
    }
    if (i == 0 || b.size() - i > 65557)
      break;
  }
  if (eocd == std::string::npos)
    return fail(error, what + ": not a .npz (zip) file");
  size_t entries = le16(b, eocd + 10), cd = le32(b, eocd + 16);
  for (size_t e = 0; e < entries; ++e) {
    if (cd + 46 > b.size() || le32(b, cd) != 0x02014b50)
      return fail(error, what + ": corrupt zip directory");
    uint16_t method = le16(b, cd + 10);
    size_t csize = le32(b, cd + 20), usize = le32(b, cd + 24);
    size_t nlen = le16(b, cd + 28), xlen = le16(b, cd + 30),
           clen = le16(b, cd + 32), local = le32(b, cd + 42);
    if (cd + 46 + nlen > b.size())
      return fail(error, what + ": corrupt zip directory");
    std::string name(b.begin() + cd + 46, b.begin() + cd + 46 + nlen);
    cd += 46 + nlen + xlen + clen;
    if (local + 30 > b.size() || le32(b, local) != 0x04034b50)
      return fail(error, what + ": corrupt member '" + name + "'");
    size_t start = local + 30 + le16(b, local + 26) + le16(b, local + 28);
    if (start > b.size() || csize > b.size() - start)
      return fail(error, what + ": member '" + name + "' is truncated");
    std::vector<uint8_t> member;
    if (method == 0) {
      member.assign(b.begin() + start, b.begin() + start + csize);
    } else if (method == 8) {
      // Deflate expands at most 1032 times (258-byte matches in 2 bits):
      // a larger declared size is a lie, refused before it is allocated (a
      // 200-byte file used to claim 4 GiB; found by fuzz/fuzz_data.cpp).
      if (usize > csize * 1032 + 64)
        return fail(error, what + ": member '" + name + "' declares " +
                               std::to_string(usize) +
                               " bytes, more than deflate expands its " +
                               std::to_string(csize) + " bytes to");
      member.resize(usize);
      z_stream zs{};
      zs.next_in = const_cast<uint8_t *>(b.data() + start);
      zs.avail_in = csize;
      zs.next_out = member.data();
      zs.avail_out = usize;
      if (inflateInit2(&zs, -MAX_WBITS) != Z_OK)
        return fail(error, what + ": cannot inflate '" + name + "'");
      int rc = inflate(&zs, Z_FINISH);
      inflateEnd(&zs);
      if (rc != Z_STREAM_END || zs.total_out != usize)
        return fail(error, what + ": cannot inflate '" + name + "'");
    } else {
      return fail(error, what + ": member '" + name +
                             "' uses unsupported compression " +
                             std::to_string(method));
    }
    if (name.size() > 4 && name.compare(name.size() - 4, 4, ".npy") == 0)
      name.resize(name.size() - 4);
    Array a;
    if (!parseNpy(member.data(), member.size(), what + ":" + name, a, error))
      return false;
    out.push_back({name, std::move(a)});
  }
  return true;
}

bool trainopt::rt::readArrays(const std::string &path,
                              std::vector<std::pair<std::string, Array>> &out,
                              std::string &error) {
  std::vector<uint8_t> bytes;
  if (!readFile(path, bytes, error))
    return false;
  out.clear();
  if (bytes.size() >= 6 && std::memcmp(bytes.data(), "\x93NUMPY", 6) == 0) {
    Array a;
    if (!parseNpy(bytes.data(), bytes.size(), path, a, error))
      return false;
    out.push_back({"", std::move(a)});
    return true;
  }
  if (bytes.size() >= 4 && bytes[0] == 'P' && bytes[1] == 'K')
    return parseNpz(bytes, path, out, error);
  // Content decides the format, but a file named as NumPy's that is
  // neither is reported as what it claims to be (an empty or garbled .npz
  // is not "not an IDX file").
  for (const char *ext : {".npz", ".npy"}) {
    size_t n = std::strlen(ext);
    if (path.size() >= n && path.compare(path.size() - n, n, ext) == 0)
      return fail(error,
                  path + (bytes.empty() ? ": empty file, not a " : ": not a ") +
                      (ext[3] == 'z' ? std::string(".npz (zip) archive")
                                     : std::string(".npy file")) +
                      " (it does not start as one)");
  }
  Array a;
  if (!parseIdx(bytes, path, a, error))
    return false;
  out.push_back({"", std::move(a)});
  return true;
}

//===----------------------------------------------------------------------===//
// Writing
//===----------------------------------------------------------------------===//

static const char *npyDescr(DType t) {
  switch (t) {
  case DType::F64:
    return "<f8";
  case DType::F32:
    return "<f4";
  case DType::F16:
    return "<f2";
  case DType::BF16: // widened by serializeNpy
    return "<f4";
  case DType::I64:
    return "<i8";
  case DType::I32:
    return "<i4";
  case DType::I16:
    return "<i2";
  case DType::I8:
    return "|i1";
  case DType::U8:
    return "|u1";
  case DType::Bool:
    return "|b1";
  }
  return "|u1";
}

std::string trainopt::rt::serializeNpy(const Array &in) {
  Array widened;
  if (in.dtype == DType::BF16) {
    widened.shape = in.shape;
    widened.dtype = DType::F32;
    widened.bytes.resize(in.bytes.size() * 2);
    for (int64_t i = 0, e = in.numElements(); i < e; ++i)
      storeElement(widened.bytes.data(), DType::F32, i, in.at(i));
  }
  const Array &a = in.dtype == DType::BF16 ? widened : in;
  std::string shape;
  for (size_t i = 0; i < a.shape.size(); ++i)
    shape += (i ? ", " : "") + std::to_string(a.shape[i]);
  if (a.shape.size() == 1)
    shape += ',';
  std::string header = std::string("{'descr': '") + npyDescr(a.dtype) +
                       "', 'fortran_order': False, 'shape': (" + shape + "), }";
  // Magic (6), version (2), header length (2), header, newline: a multiple
  // of 64 bytes, so the data is aligned.
  size_t total = 10 + header.size() + 1;
  header.append((64 - total % 64) % 64, ' ');
  header += '\n';
  std::string out = "\x93NUMPY";
  out += '\x01';
  out += '\x00';
  out += static_cast<char>(header.size() & 0xff);
  out += static_cast<char>(header.size() >> 8);
  out += header;
  out.append(reinterpret_cast<const char *>(a.bytes.data()), a.bytes.size());
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

bool trainopt::rt::writeNpz(
    const std::string &path,
    const std::vector<std::pair<std::string, Array>> &arrays,
    std::string &error) {
  std::string refused;
  if (!trainopt::mayReplace(path, refused))
    return fail(error, refused);
  std::string out, central;
  std::set<std::string> seen;
  for (const auto &[key, array] : arrays) {
    int64_t count = checkedCount(array.shape);
    if (count < 0 || static_cast<uint64_t>(count) * dtypeSize(array.dtype) !=
                         array.bytes.size())
      return fail(error, "cannot write '" + path + "': array '" + key +
                             "' has " + std::to_string(array.bytes.size()) +
                             " bytes, which does not match its shape");
    if (key.empty() || key.size() > 60000 || !seen.insert(key).second)
      return fail(error, "cannot write '" + path + "': array name '" + key +
                             "' is empty, too long or repeated");
    std::string name = key + ".npy";
    std::string data = serializeNpy(array);
    if (data.size() >= 0xffffffffu || out.size() >= 0xffffffffu - data.size())
      return fail(error, "cannot write '" + path +
                             "': the archive would exceed 4 GiB (zip64 is "
                             "not supported)");
    uint32_t crc = 0;
    for (size_t at = 0; at < data.size(); at += 1u << 30) {
      size_t n = std::min<size_t>(data.size() - at, 1u << 30);
      crc = crc32(crc, reinterpret_cast<const Bytef *>(data.data() + at),
                  static_cast<uInt>(n));
    }
    uint32_t offset = static_cast<uint32_t>(out.size());
    put32(out, 0x04034b50);
    put16(out, 20);   // version needed to extract
    put16(out, 0);    // flags
    put16(out, 0);    // method: stored
    put16(out, 0);    // time
    put16(out, 0x21); // date: 1980-01-01
    put32(out, crc);
    put32(out, static_cast<uint32_t>(data.size()));
    put32(out, static_cast<uint32_t>(data.size()));
    put16(out, static_cast<uint16_t>(name.size()));
    put16(out, 0);
    out += name;
    out += data;
    put32(central, 0x02014b50);
    put16(central, 20); // version made by
    put16(central, 20); // version needed to extract
    put16(central, 0);
    put16(central, 0);
    put16(central, 0);
    put16(central, 0x21);
    put32(central, crc);
    put32(central, static_cast<uint32_t>(data.size()));
    put32(central, static_cast<uint32_t>(data.size()));
    put16(central, static_cast<uint16_t>(name.size()));
    put16(central, 0); // extra
    put16(central, 0); // comment
    put16(central, 0); // disk
    put16(central, 0); // internal attributes
    put32(central, 0); // external attributes
    put32(central, offset);
    central += name;
  }
  if (arrays.size() > 0xffff || out.size() + central.size() >= 0xffffffffu)
    return fail(error, "cannot write '" + path +
                           "': the archive would exceed 4 GiB or 65535 "
                           "members (zip64 is not supported)");
  uint32_t cdOffset = static_cast<uint32_t>(out.size());
  out += central;
  put32(out, 0x06054b50);
  put16(out, 0);
  put16(out, 0);
  put16(out, static_cast<uint16_t>(arrays.size()));
  put16(out, static_cast<uint16_t>(arrays.size()));
  put32(out, static_cast<uint32_t>(central.size()));
  put32(out, cdOffset);
  put16(out, 0);

  std::string tmp = path + ".tmp";
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0)
    return fail(error, "cannot create '" + tmp + "': " + std::strerror(errno));
  bool ok = true;
  const char *p = out.data();
  size_t left = out.size();
  while (ok && left > 0) {
    ssize_t n = ::write(fd, p, std::min<size_t>(left, 1u << 30));
    if (n < 0 && errno == EINTR)
      continue;
    ok = n > 0;
    if (ok) {
      p += n;
      left -= static_cast<size_t>(n);
    }
  }
  ok = ok && ::fsync(fd) == 0;
  int savedErrno = errno;
  ok = (::close(fd) == 0) && ok;
  if (!ok || std::rename(tmp.c_str(), path.c_str()) != 0) {
    if (ok)
      savedErrno = errno;
    ::unlink(tmp.c_str());
    return fail(error,
                "cannot write '" + path + "': " + std::strerror(savedErrno));
  }
  return true;
}

bool trainopt::rt::readTokenWindows(const std::string &path,
                                         int64_t window, unsigned tokenBytes,
                                         Array &x, Array &y,
                                         std::string &error) {
  std::vector<uint8_t> bytes;
  if (!readFile(path, bytes, error))
    return false;
  auto int32At = [&](size_t i) {
    int32_t v;
    std::memcpy(&v, bytes.data() + 4 * i, 4);
    return v;
  };
  size_t offset = 0;
  uint64_t count = 0;
  constexpr int32_t kMagic = 20240520;
  constexpr size_t kHeaderBytes = 256 * 4;
  if (bytes.size() >= kHeaderBytes && int32At(0) == kMagic) {
    int32_t version = int32At(1);
    if (version != 1 && version != 2) {
      error = "'" + path + "' has an llm.c header of version " +
              std::to_string(version) + "; expected 1 (uint16) or 2 (uint32)";
      return false;
    }
    tokenBytes = version == 1 ? 2 : 4;
    offset = kHeaderBytes;
    count = static_cast<uint32_t>(int32At(2));
    if (offset + count * tokenBytes != bytes.size()) {
      error = "'" + path + "' declares " + std::to_string(count) +
              " tokens in its header but holds " +
              std::to_string((bytes.size() - offset) / tokenBytes);
      return false;
    }
  } else {
    if (tokenBytes != 2 && tokenBytes != 4) {
      error = "token width must be 2 or 4 bytes";
      return false;
    }
    if (bytes.size() % tokenBytes) {
      error = "'" + path + "' has " + std::to_string(bytes.size()) +
              " bytes, not a whole number of " + std::to_string(tokenBytes) +
              "-byte tokens";
      return false;
    }
    count = bytes.size() / tokenBytes;
  }
  if (window < 1 || count < static_cast<uint64_t>(window) + 1) {
    error = "'" + path + "' holds " + std::to_string(count) +
            " tokens, fewer than one window of " + std::to_string(window) +
            " + 1";
    return false;
  }
  int64_t samples = static_cast<int64_t>((count - 1) / window);
  auto token = [&](uint64_t i) -> int64_t {
    const uint8_t *p = bytes.data() + offset + i * tokenBytes;
    return tokenBytes == 2 ? int64_t(p[0] | p[1] << 8)
                           : int64_t(uint32_t(p[0]) | uint32_t(p[1]) << 8 |
                                     uint32_t(p[2]) << 16 |
                                     uint32_t(p[3]) << 24);
  };
  for (Array *a : {&x, &y}) {
    a->shape = {samples, window};
    a->dtype = DType::I32;
    a->bytes.assign(static_cast<size_t>(samples * window) * 4, 0);
  }
  for (int64_t i = 0; i < samples * window; ++i) {
    int64_t in = token(i), next = token(i + 1);
    if (in > INT32_MAX || next > INT32_MAX) {
      error = "'" + path + "' has the token id " +
              std::to_string(std::max(in, next)) + ", above 2^31 - 1";
      return false;
    }
    int32_t a = static_cast<int32_t>(in), b = static_cast<int32_t>(next);
    std::memcpy(x.bytes.data() + 4 * i, &a, 4);
    std::memcpy(y.bytes.data() + 4 * i, &b, 4);
  }
  return true;
}

void trainopt::rt::copyPart(uint8_t *whole, const std::vector<int64_t> &shape,
                            size_t dim, int64_t parts, int64_t index,
                            size_t elementSize, uint8_t *part, bool toWhole,
                            int64_t blocks) {
  if (blocks > 1) {
    // Dim `dim` as blocks x (its size / blocks), the second split.
    std::vector<int64_t> blocked(shape.begin(), shape.begin() + dim);
    blocked.push_back(blocks);
    blocked.push_back(shape[dim] / blocks);
    blocked.insert(blocked.end(), shape.begin() + dim + 1, shape.end());
    return copyPart(whole, blocked, dim + 1, parts, index, elementSize, part,
                    toWhole, 1);
  }
  // outer x (rows of dim) x inner: part `index` is rows [index r, index r +
  // r) of every outer block, r = dim / parts.
  int64_t outer = 1, inner = static_cast<int64_t>(elementSize);
  for (size_t d = 0; d < dim; ++d)
    outer *= shape[d];
  for (size_t d = dim + 1; d < shape.size(); ++d)
    inner *= shape[d];
  int64_t rows = shape[dim] / parts;
  size_t run = static_cast<size_t>(rows * inner);
  for (int64_t o = 0; o < outer; ++o) {
    uint8_t *w = whole + (o * shape[dim] + index * rows) * inner;
    uint8_t *p = part + o * rows * inner;
    if (toWhole)
      std::memcpy(w, p, run);
    else
      std::memcpy(p, w, run);
  }
}
