#include "numerics.h"

#include <cmath>
#include <limits>

#include <doctest/doctest.h>

namespace parity {

TEST_CASE("numerics: precision names round trip and run dtypes map to their precision") {
  for (Precision p : {Precision::F64, Precision::F32, Precision::BF16}) {
    const auto back = precision_from_name(precision_name(p));
    REQUIRE(back.has_value());
    CHECK(*back == p);
  }
  CHECK(precision_name(Precision::F64) == "f64");
  CHECK(precision_name(Precision::F32) == "f32");
  CHECK(precision_name(Precision::BF16) == "bf16");
  CHECK_FALSE(precision_from_name("fp32").has_value());
  CHECK_FALSE(precision_from_name("").has_value());

  CHECK(precision_for_run_dtype("float32") == Precision::F32);
  CHECK(precision_for_run_dtype("bfloat16") == Precision::BF16);
  CHECK_FALSE(precision_for_run_dtype("float16").has_value());
  CHECK_FALSE(precision_for_run_dtype("f32").has_value());
  // A run dtype's precision survives a trip through its short name.
  for (const char* dtype : {"float32", "bfloat16"}) {
    const auto p = precision_for_run_dtype(dtype);
    REQUIRE(p.has_value());
    CHECK(precision_from_name(precision_name(*p)) == p);
  }
}

TEST_CASE("numerics: F64 keeps every value exact at both cast points") {
  const Numerics n(Precision::F64);
  CHECK(n.precision() == Precision::F64);
  CHECK(Numerics().precision() == Precision::F64);
  for (double x : {0.1, 1.0 + std::ldexp(1.0, -40), 1e300, -3.0e-310, 1.0 + std::ldexp(1.0, -8)}) {
    CHECK(n.act(x) == x);
    CHECK(n.f32(x) == x);
  }
  Array a({3}, {0.1, 1.0 / 3.0, -1e200});
  const Array before = a;
  n.act(a);
  CHECK(a.data == before.data);
  n.f32(a);
  CHECK(a.data == before.data);
}

TEST_CASE("numerics: F32 rounds both cast points to float") {
  const Numerics n(Precision::F32);
  for (double x : {0.1, 1.0 / 3.0, -2.718281828459045, 1.0 + std::ldexp(1.0, -30)}) {
    CHECK(n.act(x) == static_cast<double>(static_cast<float>(x)));
    CHECK(n.f32(x) == static_cast<double>(static_cast<float>(x)));
  }
  CHECK(n.act(0.1) != 0.1);
  CHECK(n.act(1.0 + std::ldexp(1.0, -30)) == 1.0);
  CHECK(n.act(1.0 + std::ldexp(1.0, -8)) == 1.0 + std::ldexp(1.0, -8));  // representable in float
  CHECK(n.act(1e300) == std::numeric_limits<double>::infinity());           // overflows float

  Array a({2}, {0.1, 1.0 / 3.0});
  n.act(a);
  CHECK(a.data[0] == static_cast<double>(0.1f));
  CHECK(a.data[1] == static_cast<double>(1.0f / 3.0f));
  Array b({2}, {0.1, 1.0 / 3.0});
  n.f32(b);
  CHECK(b.data == a.data);
}

TEST_CASE("numerics: BF16 rounds act() to bfloat16 to nearest even but f32() only to float") {
  const Numerics n(Precision::BF16);
  const double tie_down = 1.0 + std::ldexp(1.0, -8);   // halfway 1.0 .. 1.0078125: even is 1.0
  const double tie_up = 1.0 + 3 * std::ldexp(1.0, -8);  // halfway 1.0078125 .. 1.015625: even is up
  CHECK(n.act(tie_down) == 1.0);
  CHECK(n.act(tie_up) == 1.0 + std::ldexp(1.0, -6));
  CHECK(n.act(1.0 + 1.5 * std::ldexp(1.0, -8)) == 1.0 + std::ldexp(1.0, -7));  // above the tie: up
  CHECK(n.act(-tie_down) == -1.0);
  CHECK(n.act(0.1) == 0.10009765625);  // 0.1 in bfloat16
  CHECK(n.act(std::sqrt(2816.0)) == 53.0);

  CHECK(n.f32(tie_down) == tie_down);
  CHECK(n.f32(0.1) == static_cast<double>(0.1f));
  CHECK(n.f32(1.0 + std::ldexp(1.0, -30)) == 1.0);

  Array a({3}, {tie_down, tie_up, 0.1});
  n.act(a);
  CHECK(a.data == std::vector<double>{1.0, 1.0 + std::ldexp(1.0, -6), 0.10009765625});
  Array b({3}, {tie_down, tie_up, 0.1});
  n.f32(b);
  CHECK(b.data == std::vector<double>{tie_down, tie_up, static_cast<double>(0.1f)});
}

TEST_CASE("numerics: the one-ulp roundings flip a reduction's bf16 rounding only within its window of a midpoint") {
  // The window is a float sum's relative error: 2^-24 x sqrt(terms).
  CHECK(bf16_flip_window(64) == 0x1p-21);
  CHECK(bf16_flip_window(1024) == 0x1p-19);
  CHECK(bf16_flip_window(0) == 0x1p-24);  // an empty reduction is treated as one term
  const double window = bf16_flip_window(64);
  // 1 and 1 + 2^-7 are neighbours in bf16; their midpoint is 1 + 2^-8.
  const double mid = 1.0 + 0x1p-8, ulp_up = 1.0 + 0x1p-7;
  const double inside_below = mid - 0.5 * window, outside_below = mid - 3 * window;
  CHECK(round_bf16(inside_below, Rounding::kNearest) == 1.0);
  CHECK(round_bf16(inside_below, Rounding::kFlipNearMidpoints, window) == ulp_up);  // float sums may cross
  CHECK(round_bf16(outside_below, Rounding::kFlipNearMidpoints, window) == 1.0);    // too far for 64 terms
  CHECK(round_bf16(outside_below, Rounding::kFlipNearMidpoints, bf16_flip_window(1024)) == ulp_up);  // not for 1024
  const double inside_above = mid + 0.5 * window;
  CHECK(round_bf16(inside_above, Rounding::kNearest) == ulp_up);
  CHECK(round_bf16(inside_above, Rounding::kFlipNearMidpoints, window) == 1.0);
  CHECK(round_bf16(-inside_below, Rounding::kFlipNearMidpoints, window) == -ulp_up);  // sign-symmetric
  CHECK(round_bf16(1.0, Rounding::kFlipNearMidpoints, window) == 1.0);                // exact values never move

  // act() is an elementwise op's rounding (exact in float, the same in every engine): never flipped.
  const Numerics second(Precision::BF16, Accumulation::kFloat, Rounding::kFlipNearMidpoints);
  CHECK(second.act(inside_below) == 1.0);
  CHECK(second.act_sum(inside_below, 64) == ulp_up);
  CHECK(second.act_sum(outside_below, 64) == 1.0);
  CHECK(Numerics(Precision::BF16).act_sum(inside_below, 64) == 1.0);
  // Only bf16 roundings flip: in an f32 run act_sum is act.
  const Numerics f32_second(Precision::F32, Accumulation::kFloat, Rounding::kFlipNearMidpoints);
  CHECK(f32_second.act_sum(inside_below, 64) == static_cast<float>(inside_below));
  Array a({2});
  a.data = {inside_below, outside_below};
  second.act_sum(a, 64);
  CHECK(a.data[0] == ulp_up);
  CHECK(a.data[1] == 1.0);
}

TEST_CASE("numerics: sums are exact by default and pairwise float sums under Accumulation::kFloat") {
  // 1 + 2^-24 x 8: exact in f64; in float each 2^-24 added to 1 is lost, but a pairwise sum adds
  // the small terms together first.
  std::vector<double> terms(16, std::ldexp(1.0, -24));
  terms[0] = 1.0;
  const double exact = Numerics(Precision::F32).sum(terms.data(), 16);
  CHECK(exact == 1.0 + 15 * std::ldexp(1.0, -24));
  const double floats = Numerics(Precision::F32, Accumulation::kFloat).sum(terms.data(), 16);
  CHECK(floats == static_cast<double>(static_cast<float>(floats)));  // a float value
  CHECK(floats != exact);
  CHECK(std::fabs(floats - exact) < 16 * std::ldexp(1.0, -24));
  CHECK_FALSE(Numerics(Precision::F32).float_sums());
  CHECK(Numerics(Precision::BF16, Accumulation::kFloat).float_sums());
}

}  // namespace parity
