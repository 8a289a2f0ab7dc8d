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
