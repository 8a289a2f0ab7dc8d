#include "linear.h"

#include <algorithm>
#include <cmath>
#include <random>

#include <doctest/doctest.h>

#include "test_util.h"

namespace parity::ops {

using test::random_array;
using test::random_weight;
using test::close;

TEST_CASE("linear: y = x · Wᵀ on a hand-computed 2x3 by 2x3 example") {
  const Array x({2, 3}, {1, 2, 3, -1, 0, 2});
  const Weight w{{2, 3}, {1, 0, -1, 0.5f, 0.25f, 2}};
  const Array y = linear(x, w, Numerics(Precision::F64));
  REQUIRE(y.shape == Shape{2, 2});
  CHECK(y.data == std::vector<double>{1 - 3, 0.5 + 0.5 + 6, -1 - 2, -0.5 + 4});
}

TEST_CASE("linear: throws naming the layer when x's last dim is not the weight's in-features") {
  const Numerics n(Precision::F64);
  const Weight w{{4, 5}, std::vector<float>(20, 1.0f)};
  CHECK_THROWS_WITH_AS(linear(Array({2, 3}), w, n, "q_proj"), doctest::Contains("[q_proj]"), Error);
  CHECK_THROWS_AS(linear(Array({2, 4}), w, n), Error);  // the out-features do not count
  CHECK_THROWS_AS(linear(Array({5}, std::vector<double>(5, 1.0)), Weight{{20}, w.data}, n), Error);  // 1-D weight
  CHECK_NOTHROW(linear(Array({2, 5}), w, n));
}

TEST_CASE("linear: matches a naive loop over odd shapes and leading dims in f64") {
  std::mt19937 rng(11);
  const Numerics n(Precision::F64);
  for (int64_t seq : {1, 3, 5})
    for (int64_t in : {1, 3, 7, 13, 17})
      for (int64_t out : {1, 5, 17}) {
        CAPTURE(seq);
        CAPTURE(in);
        CAPTURE(out);
        const Array x = random_array({2, seq, in}, rng);
        const Weight w = random_weight({out, in}, rng);
        const Array y = linear(x, w, n);
        REQUIRE(y.shape == Shape{2, seq, out});
        int bad = 0;
        for (int64_t r = 0; r < 2 * seq; ++r)
          for (int64_t o = 0; o < out; ++o) {
            double want = 0;
            for (int64_t i = 0; i < in; ++i) want += x.data[r * in + i] * static_cast<double>(w.data[o * in + i]);
            bad += !close(y.data[r * out + o], want);
          }
        CHECK(bad == 0);
      }
}

TEST_CASE("linear: rounds its output once to float under F32 and to bfloat16 under BF16") {
  std::mt19937 rng(12);
  const Array x = random_array({3, 13}, rng);
  const Weight w = random_weight({7, 13}, rng);
  const Array exact = linear(x, w, Numerics(Precision::F64));
  const Array f32 = linear(x, w, Numerics(Precision::F32));
  const Array bf16 = linear(x, w, Numerics(Precision::BF16));
  for (size_t i = 0; i < exact.data.size(); ++i) {
    CHECK(f32.data[i] == static_cast<double>(static_cast<float>(exact.data[i])));
    CHECK(bf16.data[i] == static_cast<double>(bf16_to_f32(f32_to_bf16(static_cast<float>(exact.data[i])))));
  }
}

TEST_CASE("linear: the raw strided kernels compute A·Bᵀ and A·B on sub-matrices") {
  // a is rows 0..1, cols 0..1 of a 2x3 buffer (lda 3); b likewise.
  const std::vector<double> a{1, 2, 99, 3, 4, 99};
  const std::vector<double> b{5, 6, 99, 7, 8, 99};
  std::vector<double> y(2 * 4, -1.0);  // ldy 4: columns 2..3 must stay untouched
  matmul_abt(a.data(), 3, b.data(), 3, y.data(), 4, 2, 2, 2, Numerics());
  CHECK(y == std::vector<double>{1 * 5 + 2 * 6, 1 * 7 + 2 * 8, -1, -1, 3 * 5 + 4 * 6, 3 * 7 + 4 * 8, -1, -1});
  matmul_ab(a.data(), 3, b.data(), 3, y.data(), 4, 2, 2, 2, Numerics());
  CHECK(y == std::vector<double>{1 * 5 + 2 * 7, 1 * 6 + 2 * 8, -1, -1, 3 * 5 + 4 * 7, 3 * 6 + 4 * 8, -1, -1});
  // The float kernels (the noise floor's second opinion) on the same strided views: small
  // integers are exact in float, so they agree exactly, and leave the padding alone too.
  const Numerics float_sums(Precision::F32, Accumulation::kFloat);
  std::fill(y.begin(), y.end(), -1.0);
  matmul_abt(a.data(), 3, b.data(), 3, y.data(), 4, 2, 2, 2, float_sums);
  CHECK(y == std::vector<double>{1 * 5 + 2 * 6, 1 * 7 + 2 * 8, -1, -1, 3 * 5 + 4 * 6, 3 * 7 + 4 * 8, -1, -1});
  matmul_ab(a.data(), 3, b.data(), 3, y.data(), 4, 2, 2, 2, float_sums);
  CHECK(y == std::vector<double>{1 * 5 + 2 * 7, 1 * 6 + 2 * 8, -1, -1, 3 * 5 + 4 * 7, 3 * 6 + 4 * 8, -1, -1});
}

TEST_CASE("linear: float accumulation differs from the exact sum by float round-off, no more") {
  std::mt19937 rng(11);
  const Array x = random_array({4, 512}, rng);
  const Weight w = random_weight({16, 512}, rng);
  Array x32 = x;
  Numerics(Precision::F32).act(x32);  // inputs on float values, as at a cast point
  const Array exact = linear(x32, w, Numerics(Precision::F32));
  const Array floats = linear(x32, w, Numerics(Precision::F32, Accumulation::kFloat));
  double diff = 0, norm = 0;
  for (size_t i = 0; i < exact.data.size(); ++i) {
    diff += (floats.data[i] - exact.data[i]) * (floats.data[i] - exact.data[i]);
    norm += exact.data[i] * exact.data[i];
  }
  const double rel = std::sqrt(diff / norm);
  CHECK(rel > 0);      // it does accumulate in float: a floor of zero here would measure nothing
  CHECK(rel < 1e-5);   // and only that: sqrt(512) x 2^-24 x a cancellation factor
}

TEST_CASE("linear backward: dx and dW agree with central finite differences (odd shapes)") {
  std::mt19937 rng(41);
  const Array x = random_array({2, 3, 5}, rng);
  const Weight w = random_weight({7, 5}, rng);
  const Array dy = random_array({2, 3, 7}, rng);
  Array dw({7, 5});
  const Array dx = linear_backward(x, w, dy, &dw);
  const Numerics f64(Precision::F64);
  CHECK(test::gradient_close(dx.data, test::numeric_gradient([&](const Array& v) { return linear(v, w, f64); }, x, dy), 1e-8));
  CHECK(test::gradient_close(dw.data, test::numeric_weight_gradient([&](const Weight& v) { return linear(x, v, f64); }, w, dy), 1e-8));
  // Accumulates: a second call adds the same gradient again.
  const std::vector<double> once = dw.data;
  linear_backward(x, w, dy, &dw);
  for (size_t i = 0; i < once.size(); ++i) CHECK(dw.data[i] == doctest::Approx(2 * once[i]));
  CHECK_THROWS_WITH(linear_backward(x, w, random_array({2, 3, 6}, rng), nullptr), doctest::Contains("do not fit weight"));
}

}  // namespace parity::ops
