#include "activation.h"

#include <cmath>
#include <numbers>

#include <doctest/doctest.h>

#include "error.h"

namespace parity::ops {

namespace {

double naive_silu(double x) { return x / (1.0 + std::exp(-x)); }
double naive_gelu_tanh(double x) {
  return 0.5 * x * (1.0 + std::tanh(std::sqrt(2.0 / std::numbers::pi) * (x + 0.044715 * x * x * x)));
}

}  // namespace

TEST_CASE("activation: HF config names map to the activations and unknown names throw") {
  CHECK(activation_from_hf("silu") == Activation::kSilu);
  CHECK(activation_from_hf("gelu_pytorch_tanh") == Activation::kGeluTanh);
  CHECK_THROWS_WITH_AS(activation_from_hf("gelu"), doctest::Contains("gelu"), Error);  // exact erf GELU differs
  CHECK_THROWS_AS(activation_from_hf("relu"), Error);
  CHECK_THROWS_AS(activation_from_hf("SiLU"), Error);
}

TEST_CASE("activation: silu and gelu_tanh vanish at 0 and approach x for large x") {
  const Numerics n(Precision::F64);
  CHECK(activate(Activation::kSilu, 0.0, n) == 0.0);
  CHECK(activate(Activation::kGeluTanh, 0.0, n) == 0.0);
  CHECK(activate(Activation::kSilu, 30.0, n) == doctest::Approx(30.0).epsilon(1e-12));
  CHECK(activate(Activation::kGeluTanh, 10.0, n) == doctest::Approx(10.0).epsilon(1e-12));
  CHECK(std::abs(activate(Activation::kSilu, -30.0, n)) < 1e-11);
  CHECK(std::abs(activate(Activation::kGeluTanh, -10.0, n)) < 1e-12);
  // Known values at ±1: silu(1) = 1 / (1 + e^-1), gelu_tanh(1) = 0.5 (1 + tanh(√(2/π) · 1.044715)).
  CHECK(activate(Activation::kSilu, 1.0, n) == doctest::Approx(0.7310585786300049).epsilon(1e-15));
  CHECK(activate(Activation::kSilu, -1.0, n) == doctest::Approx(-0.2689414213699951).epsilon(1e-15));
  CHECK(activate(Activation::kGeluTanh, 1.0, n) == doctest::Approx(0.8411919906082768).epsilon(1e-15));
  CHECK(activate(Activation::kGeluTanh, -1.0, n) == doctest::Approx(-0.15880800939172324).epsilon(1e-14));
}

TEST_CASE("activation: matches the closed forms over a sweep and silu(x) - silu(-x) = x in f64") {
  const Numerics n(Precision::F64);
  for (int i = -40; i <= 40; ++i) {
    const double x = 0.173 * i;
    CAPTURE(x);
    CHECK(activate(Activation::kSilu, x, n) == doctest::Approx(naive_silu(x)).epsilon(1e-15));
    CHECK(activate(Activation::kGeluTanh, x, n) == doctest::Approx(naive_gelu_tanh(x)).epsilon(1e-15));
    CHECK(activate(Activation::kSilu, x, n) - activate(Activation::kSilu, -x, n) == doctest::Approx(x).epsilon(1e-14));
    CHECK(activate(Activation::kGeluTanh, x, n) - activate(Activation::kGeluTanh, -x, n) ==
          doctest::Approx(x).epsilon(1e-14));
  }
}

TEST_CASE("activation: F32 gives the float-rounded value and BF16 the bfloat16-rounded one") {
  const Numerics f64(Precision::F64), f32(Precision::F32), bf16(Precision::BF16);
  for (Activation a : {Activation::kSilu, Activation::kGeluTanh})
    for (double x : {-3.3, -0.7, 0.1, 1.0, 2.9}) {
      const double exact = activate(a, x, f64);
      CHECK(activate(a, x, f32) == static_cast<double>(static_cast<float>(exact)));
      CHECK(activate(a, x, bf16) == static_cast<double>(bf16_to_f32(f32_to_bf16(static_cast<float>(exact)))));
      CHECK(activate(a, x, bf16) != exact);
    }
}

TEST_CASE("activation derivatives agree with central finite differences") {
  const Numerics f64(Precision::F64);
  for (Activation a : {Activation::kSilu, Activation::kGeluTanh})
    for (double x = -6.0; x <= 6.0; x += 0.37) {
      CAPTURE(x);
      const double h = 1e-5;
      const double numeric = (activate(a, x + h, f64) - activate(a, x - h, f64)) / (2 * h);
      CHECK(activate_derivative(a, x) == doctest::Approx(numeric).epsilon(1e-8).scale(1.0));
    }
  // Closed forms at 0: silu'(0) = 1/2, gelu'(0) = 1/2.
  CHECK(activate_derivative(Activation::kSilu, 0.0) == 0.5);
  CHECK(activate_derivative(Activation::kGeluTanh, 0.0) == 0.5);
}

}  // namespace parity::ops
