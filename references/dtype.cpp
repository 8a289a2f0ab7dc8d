#include "dtype.h"

#include <bit>
#include <algorithm>
#include <cmath>
#include <cstring>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "error.h"

namespace parity {

namespace {
constexpr std::pair<DType, std::string_view> kNames[] = {
    {DType::F32, "float32"}, {DType::F64, "float64"}, {DType::BF16, "bfloat16"}, {DType::F16, "float16"},
    {DType::I64, "int64"},   {DType::I32, "int32"},   {DType::Bool, "bool"},
};
}  // namespace

std::string_view dtype_name(DType dtype) {
  for (const auto& [d, name] : kNames)
    if (d == dtype) return name;
  return "unknown";
}

std::optional<DType> dtype_from_name(std::string_view name) {
  for (const auto& [d, n] : kNames)
    if (n == name) return d;
  return std::nullopt;
}

bool is_floating(DType dtype) {
  return dtype == DType::F32 || dtype == DType::F64 || dtype == DType::BF16 || dtype == DType::F16;
}

std::optional<int64_t> checked_numel(const Shape& shape) {
  int64_t n = 1;
  for (int64_t d : shape) {
    if (d < 0 || __builtin_mul_overflow(n, d, &n) || n > kMaxNumel) return std::nullopt;
  }
  return n;
}

int64_t numel(const Shape& shape) {
  std::optional<int64_t> n = checked_numel(shape);
  PARITY_CHECK(n.has_value(), "[tensor] shape {} has a negative dimension or more than 2^40 elements", shape_str(shape));
  return *n;
}

std::string shape_str(const Shape& shape) { return fmt::format("[{}]", fmt::join(shape, ", ")); }

float bf16_to_f32(uint16_t bits) { return std::bit_cast<float>(static_cast<uint32_t>(bits) << 16); }

uint16_t f32_to_bf16(float value) {
  uint32_t bits = std::bit_cast<uint32_t>(value);
  if ((bits & 0x7f800000u) == 0x7f800000u && (bits & 0x007fffffu) != 0)
    return static_cast<uint16_t>((bits >> 16) | 0x0040u);  // quiet NaN, keeps the sign
  uint32_t rounding_bias = 0x7fffu + ((bits >> 16) & 1u);  // ties to even
  return static_cast<uint16_t>((bits + rounding_bias) >> 16);
}

// Exact: every binary16 value is a float. Done on the bits, not with _Float16, which clang 14 (the
// fuzz build, ci/fuzz) does not support on x86-64.
float f16_to_f32(uint16_t bits) {
  const uint32_t sign = static_cast<uint32_t>(bits & 0x8000u) << 16;
  const uint32_t exponent = (bits >> 10) & 0x1fu;
  const uint32_t mantissa = bits & 0x3ffu;
  if (exponent == 0x1f) return std::bit_cast<float>(sign | 0x7f800000u | (mantissa << 13));  // Inf, NaN
  if (exponent != 0) return std::bit_cast<float>(sign | ((exponent + 112) << 23) | (mantissa << 13));
  // Zero or subnormal: mantissa * 2^-24, exact in float.
  const float magnitude = static_cast<float>(mantissa) * 0x1p-24f;
  return sign != 0 ? -magnitude : magnitude;
}

double round_to_f16(double x) {
  if (!std::isfinite(x) || x == 0) return x;
  // The spacing of binary16 values at |x|: 2^(e - 10) for normals (2^e <= |x| < 2^(e+1)), 2^-24
  // for subnormals. Scaling by a power of two is exact, so nearbyint (ties to even in the default
  // rounding mode) rounds exactly once.
  const int e = std::max(std::ilogb(x), -14);
  const double quantum = std::ldexp(1.0, e - 10);
  const double rounded = std::nearbyint(x / quantum) * quantum;
  return std::fabs(rounded) > 65504.0 ? std::copysign(HUGE_VAL, x) : rounded;
}

}  // namespace parity
