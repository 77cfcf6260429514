//===- Data.h - training data for the runtime -------------------*- C++ -*-===//
//
/// \file
/// Arrays read from the files trainopt-run trains on: MNIST-style IDX files
/// (gzip-compressed or not) and NumPy `.npy`/`.npz`, and the `.npz` writer
/// for what it saves. Part of the runtime, so it uses no MLIR; every size in
/// a file is checked before it is used.
//
//===----------------------------------------------------------------------===//

#ifndef TRAINOPT_RUNTIME_DATA_H
#define TRAINOPT_RUNTIME_DATA_H

#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace trainopt::rt {

/// Element types of data arrays and program values. BF16 is last so the
/// numbering (the C API's trainopt_dtype) stays stable.
enum class DType { F64, F32, F16, I64, I32, I16, I8, U8, Bool, BF16 };

/// Bytes per element of `t`.
unsigned dtypeSize(DType t);
/// The name of `t`, for messages ("float32", "uint8", ...).
const char *dtypeName(DType t);
/// Whether `t` is a floating-point type.
inline bool isFloat(DType t) {
  return t == DType::F64 || t == DType::F32 || t == DType::F16 ||
         t == DType::BF16;
}

/// A dense row-major array in host memory.
struct Array {
  std::vector<int64_t> shape;
  DType dtype = DType::F32;
  std::vector<uint8_t> bytes;

  int64_t numElements() const;
  /// Element `i` converted to double.
  double at(int64_t i) const;
  /// Element `i` of an integer or bool array, exactly.
  int64_t intAt(int64_t i) const;
};

/// Element `i` of a dense array of `dtype` at `data`, converted to double.
double elementAsDouble(const uint8_t *data, DType dtype, int64_t i);

/// Stores `v` as element `i` of a dense array of `dtype` at `data`: rounded
/// to nearest for float types (exact when `v` fits), truncated toward zero
/// for integer types, nonzero as 1 for Bool.
void storeElement(uint8_t *data, DType dtype, int64_t i, double v);

/// Part `index` of `parts` equal parts along dim `dim` of the row-major
/// array of `shape` (the whole) and `elementSize`-byte elements at
/// `whole`: copied into `part` (`toWhole` false) or from it into its place
/// in `whole` (`toWhole` true). How tensor parallelism's "AXIS:DIM" values
/// split (docs/distributed.md).
/// With `blocks` > 1, dim `dim` is that many equal blocks and the part is
/// part `index` of each ("AXIS:DIM/BLOCKS").
void copyPart(uint8_t *whole, const std::vector<int64_t> &shape, size_t dim,
              int64_t parts, int64_t index, size_t elementSize, uint8_t *part,
              bool toWhole, int64_t blocks = 1);

/// Reads `path`, inflating it when it is gzip-compressed (by its magic, not
/// its name). Fails with a message naming the file.
bool readFile(const std::string &path, std::vector<uint8_t> &out,
              std::string &error);

/// Parses an IDX file (the MNIST format: magic 0, 0, type, rank; big-endian
/// uint32 dims; big-endian data).
bool parseIdx(const std::vector<uint8_t> &bytes, const std::string &what,
              Array &out, std::string &error);

/// Parses a `.npy` file (versions 1 to 3, little-endian, C order).
bool parseNpy(const uint8_t *data, size_t size, const std::string &what,
              Array &out, std::string &error);

/// Parses a `.npz` archive (stored or deflated members) into named arrays.
bool parseNpz(const std::vector<uint8_t> &bytes, const std::string &what,
              std::vector<std::pair<std::string, Array>> &out,
              std::string &error);

/// Reads a token file for language-model training, as llm.c writes them:
/// either with llm.c's 1024-byte header (int32 magic 20240520, version 1 for
/// uint16 or 2 for uint32 tokens, token count) or headerless, `tokenBytes`
/// (2 or 4) little-endian unsigned ids. The tokens become `(count - 1) /
/// window` non-overlapping samples: `x[i]` is tokens [i w, i w + w) and
/// `y[i]` the same window shifted by one (the next tokens), both int32.
bool readTokenWindows(const std::string &path, int64_t window,
                      unsigned tokenBytes, Array &x, Array &y,
                      std::string &error);

/// Reads an IDX, `.npy` or `.npz` file by content.
bool readArrays(const std::string &path,
                std::vector<std::pair<std::string, Array>> &out,
                std::string &error);

/// Serializes `a` as a `.npy` file (version 1.0, little-endian, C order, the
/// header padded to 64 bytes as NumPy writes it). NumPy has no bfloat16:
/// BF16 arrays are written as float32, which holds every value exactly.
std::string serializeNpy(const Array &a);

/// Writes `arrays` to `path` as an uncompressed `.npz` archive (member
/// `KEY.npy` per array, stored, with its CRC-32), atomically: a temporary
/// file beside it, fsync, rename. Fails with a message naming the file when
/// an array's bytes do not match its shape, a key repeats, or the archive
/// would need zip64 (4 GiB).
bool writeNpz(const std::string &path,
              const std::vector<std::pair<std::string, Array>> &arrays,
              std::string &error);

} // namespace trainopt::rt

#endif // TRAINOPT_RUNTIME_DATA_H
