#include "dtype.h"

#include <bit>
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

float f16_to_f32(uint16_t bits) {
  _Float16 half;  // GCC >= 12 on x86-64 and aarch64: the compiler's IEEE binary16
  std::memcpy(&half, &bits, sizeof half);
  return static_cast<float>(half);
}

}  // namespace parity
