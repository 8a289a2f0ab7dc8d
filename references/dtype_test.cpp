#include "dtype.h"

#include <bit>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>

#include <doctest/doctest.h>

#include "error.h"

namespace parity {

TEST_CASE("dtype names: round trip through torch's names") {
  for (DType d : {DType::F32, DType::F64, DType::BF16, DType::F16, DType::I64, DType::I32, DType::Bool}) {
    CHECK(dtype_from_name(dtype_name(d)) == d);
  }
  CHECK_FALSE(dtype_from_name("complex64").has_value());
  CHECK(is_floating(DType::BF16));
  CHECK_FALSE(is_floating(DType::I64));
}

TEST_CASE("bf16: widening is exact and rounding is to nearest even") {
  CHECK(bf16_to_f32(0x3f80) == 1.0f);
  CHECK(bf16_to_f32(0xc040) == -3.0f);
  CHECK(f32_to_bf16(1.0f) == 0x3f80);
  // 1 + 2^-8 lies halfway between bf16 1.0 and 1.0078125: ties to the even mantissa (1.0).
  CHECK(f32_to_bf16(1.0f + std::ldexp(1.0f, -8)) == 0x3f80);
  // 1 + 3*2^-8 lies halfway between 1.0078125 (odd) and 1.015625 (even): rounds up.
  CHECK(f32_to_bf16(1.0f + 3 * std::ldexp(1.0f, -8)) == 0x3f82);
  CHECK(std::isnan(bf16_to_f32(f32_to_bf16(std::numeric_limits<float>::quiet_NaN()))));
  CHECK(std::isinf(bf16_to_f32(f32_to_bf16(std::numeric_limits<float>::infinity()))));
  // sqrt(2816) = 53.07 rounds to 53.0 in bf16, the Gemma-4 26B embedding scale (docs/hf-forward-passes.md 3.4).
  CHECK(bf16_to_f32(f32_to_bf16(std::sqrt(2816.0f))) == 53.0f);
}

TEST_CASE("f16: decodes normals, subnormals and infinities") {
  CHECK(f16_to_f32(0x3c00) == 1.0f);
  CHECK(f16_to_f32(0xc000) == -2.0f);
  CHECK(f16_to_f32(0x0001) == std::ldexp(1.0f, -24));
  CHECK(std::isinf(f16_to_f32(0x7c00)));
  CHECK(f16_to_f32(0x7bff) == 65504.0f);
  CHECK(f16_to_f32(0x03ff) == 1023 * std::ldexp(1.0f, -24));  // the largest subnormal
  CHECK(std::signbit(f16_to_f32(0x8000)));
  CHECK(std::isnan(f16_to_f32(0x7e00)));
}

#if defined(__FLT16_MAX__)  // g++ 12 on x86-64: the compiler's own binary16 as the independent side
TEST_CASE("f16: every one of the 65536 bit patterns decodes as the compiler's _Float16 does") {
  for (uint32_t bits = 0; bits <= 0xffff; ++bits) {
    _Float16 half;
    const auto b = static_cast<uint16_t>(bits);
    std::memcpy(&half, &b, sizeof half);
    const float want = static_cast<float>(half);
    const float got = f16_to_f32(b);
    if (std::isnan(want)) {
      REQUIRE(std::isnan(got));
    } else {
      REQUIRE(std::bit_cast<uint32_t>(got) == std::bit_cast<uint32_t>(want));
    }
  }
}

TEST_CASE("f16: rounding a double agrees with the compiler's one rounding to _Float16") {
  // Every binary16 value, the midpoints between neighbours (ties), and points just off them.
  for (uint32_t bits = 0; bits < 0x7c00; ++bits) {
    const double lo = f16_to_f32(static_cast<uint16_t>(bits));
    const double hi = f16_to_f32(static_cast<uint16_t>(bits + 1));
    for (const double x : {lo, (lo + hi) / 2, std::nextafter((lo + hi) / 2, 0.0), std::nextafter((lo + hi) / 2, 1e9)}) {
      for (const double v : {x, -x}) {
        const double want = static_cast<double>(static_cast<_Float16>(v));
        REQUIRE(round_to_f16(v) == want);
      }
    }
  }
}
#endif

TEST_CASE("numel: a product that would wrap or exceed 2^40 elements is refused") {
  CHECK(checked_numel({1 << 20, 1 << 20}) == int64_t{1} << 40);
  CHECK_FALSE(checked_numel({1 << 20, (1 << 20) + 1}).has_value());
  CHECK_FALSE(checked_numel({int64_t{1} << 62, 4}).has_value());  // wraps to 0 in int64
  CHECK_FALSE(checked_numel({3, -1}).has_value());
  CHECK_THROWS_AS(numel({int64_t{1} << 62, 4}), Error);
  CHECK(checked_numel({0, int64_t{1} << 62}) == 0);  // an empty tensor is fine
}

}  // namespace parity
