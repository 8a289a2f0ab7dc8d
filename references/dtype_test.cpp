#include "dtype.h"

#include <cmath>
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
}

TEST_CASE("numel: a product that would wrap or exceed 2^40 elements is refused") {
  CHECK(checked_numel({1 << 20, 1 << 20}) == int64_t{1} << 40);
  CHECK_FALSE(checked_numel({1 << 20, (1 << 20) + 1}).has_value());
  CHECK_FALSE(checked_numel({int64_t{1} << 62, 4}).has_value());  // wraps to 0 in int64
  CHECK_FALSE(checked_numel({3, -1}).has_value());
  CHECK_THROWS_AS(numel({int64_t{1} << 62, 4}), Error);
  CHECK(checked_numel({0, int64_t{1} << 62}) == 0);  // an empty tensor is fine
}

}  // namespace parity
