//===- Random.h - the counter-based RNG of trainopt.dropout -----*- C++ -*-===//
//
/// \file
/// Dropout draws are a pure function of (seed, element index), so every
/// backend, the reference evaluator and the backward pass regenerate the same
/// mask without storing state. The generator is SplitMix64 over
/// `seed * golden + index`; the uniform value is its top 53 bits in [0, 1).
/// An element is kept when `uniform(seed, index) >= ratio`; `trainopt.random`
/// draws from the same stream. Header-only and
/// free of MLIR so the runtime and generated kernels can share it.
//
//===----------------------------------------------------------------------===//

#ifndef TRAINOPT_SUPPORT_RANDOM_H
#define TRAINOPT_SUPPORT_RANDOM_H

#include <cmath>
#include <cstdint>

namespace trainopt {

/// SplitMix64 finalizer of `x`.
inline uint64_t splitMix64(uint64_t x) {
  x += 0x9E3779B97F4A7C15ull;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
  return x ^ (x >> 31);
}

/// The uniform draw in [0, 1) for element `index` under `seed`.
inline double dropoutUniform(int64_t seed, int64_t index) {
  uint64_t bits =
      splitMix64(static_cast<uint64_t>(seed) * 0x9E3779B97F4A7C15ull +
                 static_cast<uint64_t>(index));
  return static_cast<double>(bits >> 11) * 0x1.0p-53;
}

/// Element `index` of `trainopt.random` with `normal` distribution (mean 0,
/// standard deviation 1): Box-Muller on the uniform draws 2 index and
/// 2 index + 1 (1 - u keeps the logarithm finite).
inline double normalDraw(int64_t seed, int64_t index) {
  double u1 = dropoutUniform(seed, 2 * index);
  double u2 = dropoutUniform(seed, 2 * index + 1);
  return std::sqrt(-2.0 * std::log(1.0 - u1)) *
         std::cos(6.283185307179586476925286766559 * u2);
}

/// Whether dropout with `ratio` keeps element `index` under `seed`.
inline bool dropoutKeeps(int64_t seed, int64_t index, double ratio) {
  return dropoutUniform(seed, index) >= ratio;
}

} // namespace trainopt

#endif // TRAINOPT_SUPPORT_RANDOM_H
