#include "norm.h"

#include <algorithm>
#include <cmath>
#include <random>

#include <doctest/doctest.h>

#include "test_util.h"

namespace parity::ops {

using test::close;

namespace {

constexpr NormWeight kPlacements[] = {NormWeight::kAfterCast, NormWeight::kInFloat32, NormWeight::kNone};

Array random_array(Shape shape, std::mt19937& rng) {
  std::uniform_real_distribution<double> dist(-2.0, 2.0);
  Array a(std::move(shape));
  for (double& x : a.data) x = dist(rng);
  return a;
}

Weight random_weight(int64_t n, std::mt19937& rng) {
  std::uniform_real_distribution<float> dist(0.5f, 1.5f);
  Weight w{{n}, std::vector<float>(static_cast<size_t>(n))};
  for (float& x : w.data) x = dist(rng);
  return w;
}

}  // namespace

TEST_CASE("rms_norm: a row of ±1 values gives the signed weight, or ±1 without a weight") {
  const Array x({2, 5}, {1, -1, 1, 1, -1, -1, -1, 1, -1, 1});
  const Weight w{{5}, {0.5f, 2.0f, -3.0f, 1.25f, 0.0f}};
  for (NormWeight placement : kPlacements) {
    CAPTURE(static_cast<int>(placement));
    // eps = 0: mean(x²) = 1 exactly, so the result is exact.
    const Array y = rms_norm(x, &w, 0.0, placement, Numerics(Precision::F64));
    REQUIRE(y.shape == x.shape);
    for (int64_t r = 0; r < 2; ++r)
      for (int64_t i = 0; i < 5; ++i) {
        const double want = placement == NormWeight::kNone ? x.row(r)[i] : w.data[i] * x.row(r)[i];
        CHECK(y.row(r)[i] == want);
      }
    // A small eps only shrinks the result by (1 + eps)^-½.
    const Array y_eps = rms_norm(x, &w, 1e-6, placement, Numerics(Precision::F64));
    for (size_t i = 0; i < y.data.size(); ++i) CHECK(y_eps.data[i] == doctest::Approx(y.data[i] / std::sqrt(1 + 1e-6)).epsilon(1e-14));
  }
  // kNone needs no weight at all.
  const Array y = rms_norm(x, nullptr, 0.0, NormWeight::kNone, Numerics(Precision::F64));
  CHECK(y.data == x.data);
}

TEST_CASE("rms_norm: a row of zeros stays zero thanks to eps") {
  const Array x({1, 4});
  const Weight w{{4}, {1, 2, 3, 4}};
  for (NormWeight placement : kPlacements) {
    const Array y = rms_norm(x, &w, 1e-6, placement, Numerics(Precision::F32));
    for (double v : y.data) CHECK(v == 0.0);
  }
}

TEST_CASE("rms_norm: throws on a missing or mis-shaped weight and on an empty last dim") {
  const Numerics n(Precision::F64);
  const Array x({2, 3}, {1, 2, 3, 4, 5, 6});
  const Weight wrong{{4}, {1, 1, 1, 1}};
  CHECK_THROWS_WITH_AS(rms_norm(x, &wrong, 1e-6, NormWeight::kAfterCast, n, "input_layernorm"),
                       doctest::Contains("[input_layernorm]"), Error);
  CHECK_THROWS_AS(rms_norm(x, &wrong, 1e-6, NormWeight::kInFloat32, n), Error);
  CHECK_THROWS_AS(rms_norm(x, nullptr, 1e-6, NormWeight::kAfterCast, n), Error);
  CHECK_NOTHROW(rms_norm(x, &wrong, 1e-6, NormWeight::kNone, n));  // kNone ignores the weight
  CHECK_THROWS_AS(rms_norm(Array({2, 0}), nullptr, 1e-6, NormWeight::kNone, n), Error);
}

TEST_CASE("rms_norm: matches a naive loop over odd shapes for every weight placement in f64") {
  std::mt19937 rng(21);
  const Numerics n(Precision::F64);
  const double eps = 1e-5;
  for (int64_t seq : {1, 3, 7})
    for (int64_t dim : {1, 3, 5, 7, 13, 17})
      for (NormWeight placement : kPlacements) {
        CAPTURE(seq);
        CAPTURE(dim);
        CAPTURE(static_cast<int>(placement));
        const Array x = random_array({2, seq, dim}, rng);
        const Weight w = random_weight(dim, rng);
        const Array y = rms_norm(x, &w, eps, placement, n);
        REQUIRE(y.shape == x.shape);
        int bad = 0;
        for (int64_t r = 0; r < 2 * seq; ++r) {
          double sum_sq = 0;
          for (int64_t i = 0; i < dim; ++i) sum_sq += x.data[r * dim + i] * x.data[r * dim + i];
          const double scale = 1.0 / std::sqrt(sum_sq / static_cast<double>(dim) + eps);
          for (int64_t i = 0; i < dim; ++i) {
            const double weight = placement == NormWeight::kNone ? 1.0 : static_cast<double>(w.data[i]);
            bad += !close(y.data[r * dim + i], x.data[r * dim + i] * scale * weight);
          }
        }
        CHECK(bad == 0);
      }
}

TEST_CASE("rms_norm: under BF16 kAfterCast rounds before the weight and kInFloat32 after it") {
  std::mt19937 rng(22);
  const Numerics n(Precision::BF16);
  const Array x = random_array({4, 13}, rng);
  const Weight w = random_weight(13, rng);
  const Weight ones{{13}, std::vector<float>(13, 1.0f)};
  const Array plain = rms_norm(x, nullptr, 1e-6, NormWeight::kNone, n);
  const Array after = rms_norm(x, &w, 1e-6, NormWeight::kAfterCast, n);
  const Array in32 = rms_norm(x, &w, 1e-6, NormWeight::kInFloat32, n);
  const Array in32_ones = rms_norm(x, &ones, 1e-6, NormWeight::kInFloat32, n);
  const Array exact = rms_norm(x, &w, 1e-6, NormWeight::kInFloat32, Numerics(Precision::F64));
  int differ = 0;
  for (int64_t r = 0; r < 4; ++r)
    for (int64_t i = 0; i < 13; ++i) {
      const size_t k = static_cast<size_t>(r * 13 + i);
      // Every output is a bfloat16 value.
      for (double v : {plain.data[k], after.data[k], in32.data[k]}) CHECK(n.act(v) == v);
      // kAfterCast = cast_T(w · cast_T(normed)): the weight multiplies the rounded kNone output.
      CHECK(after.data[k] == n.act(w.data[i] * plain.data[k]));
      // kInFloat32 with a unit weight is kNone.
      CHECK(in32_ones.data[k] == plain.data[k]);
      // One bfloat16 rounding (kInFloat32) or two (kAfterCast) away from the exact value.
      CHECK(std::abs(in32.data[k] - exact.data[k]) <= std::ldexp(std::abs(exact.data[k]), -7));
      CHECK(std::abs(after.data[k] - exact.data[k]) <= std::ldexp(std::abs(exact.data[k]), -6));
      differ += after.data[k] != in32.data[k];
    }
  CHECK(differ > 0);  // the two placements are distinguishable in bf16
}

TEST_CASE("rms_norm backward: every placement and offset agrees with central finite differences") {
  std::mt19937 rng(43);
  const Array x = random_array({3, 7}, rng);
  const Weight w = test::random_weight({7}, rng, 0.5f, 1.5f);
  const Array dy = random_array({3, 7}, rng);
  const Numerics f64(Precision::F64);
  for (NormWeight placement : {NormWeight::kAfterCast, NormWeight::kInFloat32, NormWeight::kNone})
    for (double offset : {0.0, 1.0}) {
      CAPTURE(static_cast<int>(placement));
      CAPTURE(offset);
      const bool weighted = placement != NormWeight::kNone;
      Array dw({7});
      const Array dx = rms_norm_backward(x, &w, 1e-6, placement, dy, weighted ? &dw : nullptr, offset);
      auto f = [&](const Array& v, const Weight& wv) { return rms_norm(v, &wv, 1e-6, placement, f64, "n", offset); };
      CHECK(test::gradient_close(dx.data, test::numeric_gradient([&](const Array& v) { return f(v, w); }, x, dy), 1e-8));
      if (weighted)
        CHECK(test::gradient_close(dw.data, test::numeric_weight_gradient([&](const Weight& v) { return f(x, v); }, w, dy),
                                   1e-7));
    }
  // Closed form: a norm is scale invariant, so dx is orthogonal to x for dy = y (d|y|²/2 along x is 0).
  const Array y = rms_norm(x, nullptr, 0.0, NormWeight::kNone, f64);
  const Array dx = rms_norm_backward(x, nullptr, 0.0, NormWeight::kNone, y, nullptr);
  for (int64_t r = 0; r < 3; ++r) {
    double along = 0;
    for (int64_t i = 0; i < 7; ++i) along += dx.row(r)[i] * x.row(r)[i];
    CHECK(std::abs(along) < 1e-12);
  }
}

}  // namespace parity::ops
