//===- HostTensor.h - host tensors of the reference evaluator ---*- C++ -*-===//
//
/// \file
/// A plain host tensor for the reference evaluator and its `.npy`/`.npz`
/// files. Floating-point elements are held as doubles that are always exactly
/// representable in the element type (every op rounds its results); integer
/// and boolean elements as int64 values wrapped to the element width.
//
//===----------------------------------------------------------------------===//

#ifndef TRAINOPT_EVALUATOR_HOSTTENSOR_H
#define TRAINOPT_EVALUATOR_HOSTTENSOR_H

#include "mlir/IR/BuiltinAttributes.h"
#include "mlir/IR/BuiltinTypes.h"
#include "llvm/ADT/SmallVector.h"
#include "llvm/ADT/StringRef.h"
#include "llvm/Support/Error.h"

#include <string>
#include <utility>
#include <vector>

namespace mlir::trainopt {

struct HostTensor {
  llvm::SmallVector<int64_t> shape;
  Type elementType;
  /// Elements of a floating-point tensor.
  std::vector<double> floats;
  /// Elements of an integer or i1 tensor.
  std::vector<int64_t> ints;

  /// A zero-filled tensor of `type`.
  static HostTensor zeros(RankedTensorType type);
  RankedTensorType getType() const {
    return RankedTensorType::get(shape, elementType);
  }
  bool isFloat() const { return isa<FloatType>(elementType); }
  int64_t numElements() const;
  /// Element `i` as a double (integers converted).
  double at(int64_t i) const {
    return isFloat() ? floats[i] : static_cast<double>(ints[i]);
  }
  /// Stores `v` at `i`, rounded (floats) or truncated and wrapped (integers)
  /// to the element type.
  void set(int64_t i, double v);
  void setInt(int64_t i, int64_t v);
};

/// Rounds `v` to the nearest value of float type `type` (ties to even).
double roundToType(double v, Type type);
/// Wraps `v` to the width of integer type `type` (i1 is 0 or 1).
int64_t wrapToType(int64_t v, Type type);

/// The value of a constant or parameter initializer.
llvm::Expected<HostTensor> tensorFromAttr(ElementsAttr attr);

/// Serializes as `.npy` (bf16 is written as float32).
std::string writeNpy(const HostTensor &t);
/// Reads the arrays of a `.npz` file (stored or deflated members).
llvm::Expected<std::vector<std::pair<std::string, HostTensor>>>
readNpz(llvm::StringRef path, MLIRContext *ctx);
/// Writes arrays as an uncompressed `.npz` file.
llvm::Error writeNpz(llvm::StringRef path,
                     llvm::ArrayRef<std::pair<std::string, HostTensor>> arrays);

} // namespace mlir::trainopt

#endif // TRAINOPT_EVALUATOR_HOSTTENSOR_H
