//===- Sharding.h - how a value is laid out over the mesh ------*- C++ -*-===//
//
/// \file
/// A value's sharding as the artifact and a sharded checkpoint's manifest
/// write it: levels, outermost first, separated by ','; "" for a value
/// every rank holds whole (docs/distributed.md, "Shardings"). Each level
/// splits what the levels before it left:
///
///   AXIS=S      only the ranks at coordinate S of AXIS hold it (a
///               pipeline stage's value, in a manifest);
///   AXIS:D      split along dim D in equal parts, part r on coordinate r
///               (tensor parallelism);
///   AXIS:D/B    dim D is B equal blocks, each split so (attention's fused
///               q, k and v projection);
///   AXIS:flat   flattened and zero-padded to a multiple of the axis size,
///               part r on coordinate r (ZeRO); the last level only;
///   AXIS:mean   each rank holds its own value, the whole is their mean
///               (accumulated gradients); the only level.
///
/// So "tp:0,dp:flat" is ZeRO's flat part over dp of a tensor-parallel
/// rank's rows, and "pp=1,dp:flat" a stage-1 value that ZeRO shards.
//
//===----------------------------------------------------------------------===//

#ifndef TRAINOPT_RUNTIME_SHARDING_H
#define TRAINOPT_RUNTIME_SHARDING_H

#include "trainopt/Runtime/Data.h"

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

namespace trainopt::rt {

struct ShardLevel {
  enum class Kind { Stage, Dim, Flat, Mean };
  Kind kind = Kind::Dim;
  std::string axis;
  /// Dim: the dim and its blocks. Stage: the coordinate.
  int64_t dim = 0, blocks = 1, stage = 0;
};

struct Sharding {
  std::vector<ShardLevel> levels;

  /// Parses `text`; nothing (with `why`) when it breaks the grammar above.
  static std::optional<Sharding> parse(const std::string &text,
                                       std::string &why);
  std::string str() const;
  bool replicated() const { return levels.empty(); }
  bool mean() const {
    return levels.size() == 1 && levels[0].kind == ShardLevel::Kind::Mean;
  }
  /// The axes that split it (Dim and Flat levels), outermost first.
  std::vector<std::string> splitAxes() const;

  /// The shape left after levels [0, k) of a value whose whole is `whole`
  /// (k = levels.size(): what one rank holds); nothing (with `why`) when a
  /// level does not divide it. `size` gives an axis's size.
  std::optional<std::vector<int64_t>>
  shapeAt(size_t k, const std::vector<int64_t> &whole,
          const std::function<int64_t(const std::string &)> &size,
          std::string &why) const;
};

/// What level `level` (of `ranks` parts) leaves of a value of `shape` and
/// `dtype` stored at `value`: part `index`. A Stage or Mean level leaves
/// it whole.
std::vector<uint8_t> takePart(const ShardLevel &level,
                              const std::vector<int64_t> &shape, DType dtype,
                              const uint8_t *value, int64_t ranks,
                              int64_t index);

/// This rank's part of the whole value `whole` (of `shape` and `dtype`,
/// zero-padded when shorter) under `sharding`: takePart level by level
/// from the outermost, with `size` and `coordinate` giving each axis's size
/// and this rank's place on it. Nothing (with `why`) when a level does not
/// split what the levels before it left.
std::optional<std::vector<uint8_t>>
partOfWhole(const Sharding &sharding, std::vector<uint8_t> whole,
            const std::vector<int64_t> &shape, DType dtype,
            const std::function<int64_t(const std::string &)> &size,
            const std::function<int64_t(const std::string &)> &coordinate,
            std::string &why);

/// The value of `shape` and `dtype` that level `level` split into
/// `parts` (part r from coordinate r, each as takePart leaves it):
/// concatenated along the dim, or flat with the padding dropped, or (Mean)
/// the parts' mean, taken in double. False (with `why`) when a part has
/// another size.
bool joinParts(const ShardLevel &level, const std::vector<int64_t> &shape,
               DType dtype, const std::vector<const uint8_t *> &parts,
               const std::vector<uint64_t> &partBytes,
               std::vector<uint8_t> &out, std::string &why);

} // namespace trainopt::rt

#endif // TRAINOPT_RUNTIME_SHARDING_H
