// DType and Shape: the dtypes HF computes in, tensor shapes, and the bf16/f16 bit conversions the
// reference rounds with. Pure data, no I/O. (The harness's Tensor, values read from a file, is
// harness/io/tensor.h.)
// Float values are held exactly: f32, bf16 and f16 as float (both 16-bit formats widen to
// float without loss), f64 as double; integer and bool values as int64.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace parity {

enum class DType : uint8_t { F32, F64, BF16, F16, I64, I32, Bool };

// torch's names ("float32", "bfloat16", "int64", ...), as fixtures record them.
std::string_view dtype_name(DType dtype);
std::optional<DType> dtype_from_name(std::string_view name);
bool is_floating(DType dtype);

using Shape = std::vector<int64_t>;
// Elements in a tensor of `shape`; throws when a dimension is negative or the count exceeds
// kMaxNumel (a hostile file could otherwise make the product wrap to a small number).
int64_t numel(const Shape& shape);
std::optional<int64_t> checked_numel(const Shape& shape);  // nullopt instead of throwing
constexpr int64_t kMaxNumel = int64_t{1} << 40;
std::string shape_str(const Shape& shape);  // "[2, 16, 48]"

// bfloat16 is the upper half of a float32; widening is exact.
float bf16_to_f32(uint16_t bits);
// Round to nearest even, as torch's .to(torch.bfloat16); NaN stays NaN.
uint16_t f32_to_bf16(float value);
float f16_to_f32(uint16_t bits);
// x rounded to the nearest binary16 value, ties to even, once (not via float); finite x beyond
// ±65504 rounds to ±inf as IEEE does, NaN stays NaN.
double round_to_f16(double x);


}  // namespace parity
