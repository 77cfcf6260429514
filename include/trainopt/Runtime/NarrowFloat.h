//===- NarrowFloat.h - bf16 and f16 to and from f32 ------------*- C++ -*-===//
//
/// \file
/// Conversions between the 16-bit storage types of mixed precision and f32,
/// in plain C++ (no F16C or AVX-512 BF16 instruction is assumed): what the
/// CPU library uses to widen bf16/f16 buffers for its f32 GEMMs, and the
/// checkpoint, feed and export code uses to read and write them. Narrowing
/// rounds to nearest, ties to even, as the compiled kernels do (MLIR's
/// `arith-expand{include-bf16}` and LLVM's fptrunc); NaN stays NaN.
//
//===----------------------------------------------------------------------===//

#ifndef TRAINOPT_RUNTIME_NARROWFLOAT_H
#define TRAINOPT_RUNTIME_NARROWFLOAT_H

#include <cstdint>
#include <cstring>

namespace trainopt::rt {

/// The bits of `f`, and the float of bits `u`.
inline uint32_t floatBits(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  return u;
}
inline float bitsFloat(uint32_t u) {
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}

/// bf16 (the upper half of an f32) to f32, exactly.
inline float bf16ToFloat(uint16_t h) { return bitsFloat(uint32_t(h) << 16); }

/// The bf16 nearest to `f`, ties to even; NaN stays a quiet NaN.
inline uint16_t floatToBf16(float f) {
  uint32_t u = floatBits(f);
  if ((u & 0x7fffffffu) > 0x7f800000u) // NaN: keep it quiet
    return static_cast<uint16_t>((u >> 16) | 0x40u);
  u += 0x7fffu + ((u >> 16) & 1u);
  return static_cast<uint16_t>(u >> 16);
}

/// IEEE half to f32, exactly (subnormals included).
inline float halfToFloat(uint16_t h) {
  uint32_t sign = uint32_t(h & 0x8000u) << 16, em = h & 0x7fffu;
  if (em >= 0x7c00u) // inf, NaN
    return bitsFloat(sign | 0x7f800000u | ((em & 0x3ffu) << 13));
  if (em >= 0x400u) // normal
    return bitsFloat(sign | ((em << 13) + ((127u - 15u) << 23)));
  // zero or subnormal: em * 2^-24, exact in f32
  return bitsFloat(sign | floatBits(float(em) * 0x1p-24f));
}

/// The IEEE half nearest to `f`, ties to even: 65520 and beyond become inf,
/// magnitudes up to 2^-25 become zero; NaN stays a quiet NaN.
inline uint16_t floatToHalf(float f) {
  uint32_t x = floatBits(f), sign = x & 0x80000000u;
  x ^= sign;
  uint32_t h;
  if (x >= 0x47800000u) { // >= 65536, inf or NaN
    h = x > 0x7f800000u ? 0x7e00u : 0x7c00u;
  } else if (x < 0x38800000u) { // below 2^-14: subnormal or zero
    // Adding 0.5 puts the half's subnormal bits at the bottom of the f32
    // mantissa, rounded to nearest even by the FPU.
    h = floatBits(bitsFloat(x) + 0.5f) - floatBits(0.5f);
  } else {
    uint32_t odd = (x >> 13) & 1u;
    x += ((15u - 127u) << 23) + 0xfffu + odd;
    h = x >> 13; // a carry out of the mantissa rounds up to inf (65520+)
  }
  return static_cast<uint16_t>(h | (sign >> 16));
}

} // namespace trainopt::rt

#endif // TRAINOPT_RUNTIME_NARROWFLOAT_H
