#include "run/compare.h"

#include <cmath>

#include <doctest/doctest.h>

namespace parity::harness {

TEST_CASE("lower_precision_of picks the dtype with fewer mantissa bits, and none for equal or incomparable dtypes") {
  CHECK(lower_precision_of(DType::F32, DType::BF16) == DType::BF16);
  CHECK(lower_precision_of(DType::BF16, DType::F32) == DType::BF16);
  CHECK(lower_precision_of(DType::F64, DType::F32) == DType::F32);
  CHECK(lower_precision_of(DType::F16, DType::F32) == DType::F16);
  CHECK_FALSE(lower_precision_of(DType::F32, DType::F32));
  CHECK_FALSE(lower_precision_of(DType::F16, DType::BF16));  // neither holds the other
  CHECK_FALSE(lower_precision_of(DType::I64, DType::F32));
}

TEST_CASE("round_to rounds to nearest even as torch does, and saturates instead of overflowing") {
  // bf16 keeps 8 significant bits: 1 + 2^-8 is a tie between 1 and 1 + 2^-7, and rounds to even (1).
  CHECK(round_to({1 + std::ldexp(1.0, -8)}, DType::BF16)[0] == 1.0);
  CHECK(round_to({1 + 3 * std::ldexp(1.0, -8)}, DType::BF16)[0] == 1 + std::ldexp(1.0, -6));
  CHECK(round_to({1 + std::ldexp(1.0, -11)}, DType::F16)[0] == 1.0);
  CHECK(round_to({0.1}, DType::F32)[0] == static_cast<double>(0.1f));
  // float32's finfo.min (HF's mask value) would round to -inf in bf16: it stays bf16's own min.
  const double bf16_min = -3.38953138925153547590e38;
  CHECK(round_to({-3.4028234663852886e38}, DType::BF16)[0] == bf16_min);
  CHECK(round_to({-1e300}, DType::F16)[0] == -65504);
  CHECK(std::isnan(round_to({NAN}, DType::BF16)[0]));
  CHECK(std::isinf(round_to({INFINITY}, DType::BF16)[0]));
}

TEST_CASE("lower_precision_metrics: a bf16 rounding of the float32 side is at the floor and 0 after rounding") {
  const std::vector<double> base = {1.001, -2.37, 0.5, 3.14159};  // float32-representable enough
  const std::vector<double> target = round_to(base, DType::BF16);
  const LowerPrecision lp = lower_precision_metrics(target, DType::BF16, base, DType::F32);
  CHECK(lp.dtype == "bfloat16");
  CHECK(lp.higher_side == "base");
  CHECK(lp.rel_l2 == 0);
  CHECK(lp.floor > 0);
  CHECK(lp.floor < std::ldexp(1.0, -8));  // at most half a bf16 ulp, relative
  // A real difference stays visible after rounding.
  std::vector<double> wrong = target;
  wrong[3] = 3.5;
  CHECK(lower_precision_metrics(wrong, DType::BF16, base, DType::F32).rel_l2 > 10 * lp.floor);
  CHECK(lower_precision_metrics(base, DType::F32, target, DType::BF16).higher_side == "target");
}

TEST_CASE("merge_keys keeps the base's order and puts a target-only key after the key before it") {
  const std::vector<KeyPlace> merged = merge_keys({"a", "b", "c"}, {"x", "a", "y", "c", "z"});
  std::vector<std::string> keys;
  for (const KeyPlace& p : merged) keys.push_back(p.key);
  CHECK(keys == std::vector<std::string>{"x", "a", "y", "b", "c", "z"});
  CHECK(merged[0].in_target);
  CHECK_FALSE(merged[0].in_base);
  CHECK(merged[3].key == "b");
  CHECK(merged[3].in_base);
  CHECK_FALSE(merged[3].in_target);
  CHECK(merged[4].in_base);
  CHECK(merged[4].in_target);
}

TEST_CASE("departs names the side outside its isolated budget") {
  CHECK(departs(true, false) == "target");
  CHECK(departs(false, true) == "base");
  CHECK(departs(false, false) == "both");
  CHECK(departs(true, true) == "neither");
  CHECK(departs(std::nullopt, true).empty());
}

}  // namespace parity::harness
