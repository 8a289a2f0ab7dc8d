#include "elementwise.h"

#include <random>

#include <doctest/doctest.h>

#include "test_util.h"

namespace parity::ops {

TEST_CASE("elementwise: add, multiply and multiply_last_dim round once to T") {
  const Numerics f64(Precision::F64), f32(Precision::F32), bf16(Precision::BF16);
  const Array a({2, 2}, {1.0, 2.0, 3.0, 1.0 / 3.0});
  const Array b({2, 2}, {0.5, 1e-9, -3.0, 3.0});
  CHECK(add(a, b, f64).data == std::vector<double>{1.5, 2.0 + 1e-9, 0.0, 1.0 / 3.0 + 3.0});
  CHECK(add(a, b, f32).data[1] == 2.0);  // 1e-9 is lost in float
  CHECK(multiply(a, b, f64).data == std::vector<double>{0.5, 2e-9, -9.0, 1.0});
  CHECK(multiply(a, b, bf16).data[1] == bf16.act(2e-9));

  const Weight w{{2}, {2.0f, -0.5f}};
  CHECK(multiply_last_dim(a, w, f64).data == std::vector<double>{2.0, -1.0, 6.0, -1.0 / 6.0});
  CHECK(multiply_last_dim(a, w, bf16).data[3] == bf16.act(-1.0 / 6.0));
}

TEST_CASE("elementwise: scale takes a Python float as float32, then rounds the product to T") {
  const Array a({1, 2}, {1.0, 3.0});
  const double s = 0.1;  // not a float
  CHECK(scale(a, s, Numerics(Precision::F64)).data == std::vector<double>{0.1, 0.30000000000000004});
  const Numerics f32(Precision::F32);
  CHECK(scale(a, s, f32).data[1] == static_cast<double>(static_cast<float>(3.0 * static_cast<double>(0.1f))));
}

TEST_CASE("elementwise: operands of another shape throw naming the step") {
  const Array a({2, 2}), b({4});
  const Numerics n(Precision::F64);
  CHECK_THROWS_WITH_AS(add(a, b, n, "residual"), doctest::Contains("[residual]"), Error);
  CHECK_THROWS_AS(multiply(a, b, n), Error);
  CHECK_THROWS_AS(multiply_last_dim(a, Weight{{3}, {1.0f, 1.0f, 1.0f}}, n), Error);
}

TEST_CASE("multiply_last_dim and scale backward agree with central finite differences") {
  std::mt19937 rng(47);
  const Array a = test::random_array({2, 3, 5}, rng);
  const Weight w = test::random_weight({5}, rng);
  const Array dy = test::random_array({2, 3, 5}, rng);
  const Numerics f64(Precision::F64);
  Array dw({5});
  const Array da = multiply_last_dim_backward(a, w, dy, &dw);
  CHECK(test::gradient_close(da.data, test::numeric_gradient([&](const Array& v) { return multiply_last_dim(v, w, f64); }, a, dy), 1e-8));
  CHECK(test::gradient_close(dw.data, test::numeric_weight_gradient([&](const Weight& v) { return multiply_last_dim(a, v, f64); }, w, dy), 1e-8));
  // scale multiplies by the float32 of the Python float (at HF's cast points), in the backward too.
  CHECK(scale_backward(dy, 0.1, Numerics(Precision::F32)).data[0] == dy.data[0] * static_cast<double>(0.1f));
  const Array ds = scale_backward(dy, 0.1, f64);
  CHECK(test::gradient_close(ds.data, test::numeric_gradient([&](const Array& v) { return scale(v, 0.1, f64); }, a, dy), 1e-8));
}

}  // namespace parity::ops
