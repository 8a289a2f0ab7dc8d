#include "rope.h"

#include <algorithm>
#include <cmath>
#include <numbers>
#include <random>

#include <doctest/doctest.h>

#include "test_util.h"

namespace parity::ops {

using test::random_array;
using test::close;

namespace {

IndexArray positions(int64_t batch, int64_t seq, std::vector<int64_t> values) {
  return IndexArray{{batch, seq}, std::move(values)};
}

}  // namespace

TEST_CASE("rope: default_inv_freq is theta^(-2i/D) starting at 1") {
  const std::vector<double> f64 = default_inv_freq(8, 10000.0, Numerics(Precision::F64));
  REQUIRE(f64.size() == 4);
  CHECK(f64[0] == 1.0);
  CHECK(f64[1] == doctest::Approx(0.1).epsilon(1e-15));
  CHECK(f64[2] == doctest::Approx(0.01).epsilon(1e-15));
  CHECK(f64[3] == doctest::Approx(0.001).epsilon(1e-15));

  const std::vector<double> wide = default_inv_freq(6, 1e6, Numerics(Precision::F64));
  REQUIRE(wide.size() == 3);
  CHECK(wide[0] == 1.0);
  CHECK(wide[1] == doctest::Approx(1e-2).epsilon(1e-14));
  CHECK(wide[2] == doctest::Approx(1e-4).epsilon(1e-14));

  // float32 like HF: every value is a float, within float rounding of the exact one.
  const std::vector<double> f32 = default_inv_freq(6, 1e6, Numerics(Precision::F32));
  REQUIRE(f32.size() == 3);
  CHECK(f32[0] == 1.0);
  for (size_t i = 0; i < 3; ++i) {
    CHECK(f32[i] == static_cast<double>(static_cast<float>(f32[i])));
    CHECK(f32[i] == doctest::Approx(wide[i]).epsilon(1e-6));
  }
  CHECK(default_inv_freq(8, 10000.0, Numerics(Precision::F32))[1] == static_cast<double>(0.1f));

  CHECK(default_inv_freq(2, 10000.0, Numerics(Precision::F64)) == std::vector<double>{1.0});
  CHECK_THROWS_AS(default_inv_freq(7, 10000.0, Numerics(Precision::F64)), Error);
  CHECK_THROWS_AS(default_inv_freq(0, 10000.0, Numerics(Precision::F64)), Error);
}

TEST_CASE("rope: tables at position 0 are cos = scaling, sin = 0, and both halves repeat") {
  const Numerics n(Precision::F64);
  const std::vector<double> inv_freq = default_inv_freq(6, 10000.0, n);
  const RotaryTables t = rotary_tables(positions(2, 2, {0, 5, 0, 9}), inv_freq, 1.0, n);
  REQUIRE(t.cos.shape == Shape{2, 2, 6});
  REQUIRE(t.sin.shape == Shape{2, 2, 6});
  for (int64_t tok : {0, 2})
    for (int64_t j = 0; j < 6; ++j) {
      CHECK(t.cos.row(tok)[j] == 1.0);
      CHECK(t.sin.row(tok)[j] == 0.0);
    }
  for (int64_t tok = 0; tok < 4; ++tok)
    for (int64_t j = 0; j < 3; ++j) {
      CHECK(t.cos.row(tok)[j] == t.cos.row(tok)[j + 3]);
      CHECK(t.sin.row(tok)[j] == t.sin.row(tok)[j + 3]);
    }
  CHECK(t.cos.row(1)[1] == std::cos(5 * inv_freq[1]));
  CHECK(t.sin.row(3)[2] == std::sin(9 * inv_freq[2]));

  const RotaryTables scaled = rotary_tables(positions(1, 1, {0}), inv_freq, 0.5, n);
  for (int64_t j = 0; j < 6; ++j) {
    CHECK(scaled.cos.data[j] == 0.5);
    CHECK(scaled.sin.data[j] == 0.0);
  }
  CHECK_THROWS_AS(rotary_tables(IndexArray{{3}, {0, 1, 2}}, inv_freq, 1.0, n), Error);
}

TEST_CASE("rope: position 0 is the identity") {
  std::mt19937 rng(31);
  const Numerics n(Precision::F64);
  Array x = random_array({2, 3, 2, 8}, rng);
  const Array before = x;
  apply_rope(x, rotary_tables(positions(2, 3, std::vector<int64_t>(6, 0)), default_inv_freq(8, 10000.0, n), 1.0, n),
             n);
  CHECK(x.data == before.data);
}

TEST_CASE("rope: rotates the pair (j, j + D/2) by position · inv_freq[j], hand-computed") {
  const Numerics n(Precision::F64);
  // D = 4, inv_freq = {1, 0.5}, position 3: pair (0, 2) turns by 3 rad, pair (1, 3) by 1.5 rad.
  Array x({1, 1, 1, 4}, {1, 2, 3, 4});
  apply_rope(x, rotary_tables(positions(1, 1, {3}), {1.0, 0.5}, 1.0, n), n);
  // (a, b) -> (a cos θ - b sin θ, b cos θ + a sin θ)
  CHECK(x.data[0] == doctest::Approx(1 * std::cos(3.0) - 3 * std::sin(3.0)).epsilon(1e-14));
  CHECK(x.data[0] == doctest::Approx(-1.413352520780047).epsilon(1e-14));
  CHECK(x.data[1] == doctest::Approx(-3.848505543080812).epsilon(1e-14));
  CHECK(x.data[2] == doctest::Approx(-2.828857481741469).epsilon(1e-14));
  CHECK(x.data[3] == doctest::Approx(2.2779387798789204).epsilon(1e-14));
  // A rotation keeps each pair's length.
  CHECK(x.data[0] * x.data[0] + x.data[2] * x.data[2] == doctest::Approx(1 + 9).epsilon(1e-14));
  CHECK(x.data[1] * x.data[1] + x.data[3] * x.data[3] == doctest::Approx(4 + 16).epsilon(1e-14));

  // A quarter turn moves dim 0 onto dim D/2 (half-split), not onto dim 1 (interleaved).
  Array e0({1, 1, 1, 4}, {1, 0, 0, 0});
  apply_rope(e0, rotary_tables(positions(1, 1, {1}), {std::numbers::pi / 2, 0.25}, 1.0, n), n);
  CHECK(std::abs(e0.data[0]) < 1e-15);
  CHECK(e0.data[1] == 0.0);
  CHECK(e0.data[2] == doctest::Approx(1.0).epsilon(1e-15));
  CHECK(e0.data[3] == 0.0);
}

TEST_CASE("rope: matches a naive rotation over odd shapes, positions and scalings in f64") {
  std::mt19937 rng(32);
  std::uniform_int_distribution<int64_t> pos_dist(0, 4096);
  const Numerics n(Precision::F64);
  for (int64_t seq : {1, 3, 5})
    for (int64_t heads : {1, 3})
      for (int64_t half : {1, 3, 7, 13, 17})
        for (double scaling : {1.0, 0.75}) {
          const int64_t dim = 2 * half;
          CAPTURE(seq);
          CAPTURE(heads);
          CAPTURE(dim);
          CAPTURE(scaling);
          IndexArray pos{{2, seq}, {}};
          for (int64_t i = 0; i < 2 * seq; ++i) pos.data.push_back(pos_dist(rng));
          const std::vector<double> inv_freq = default_inv_freq(dim, 10000.0, n);
          const Array x = random_array({2, seq, heads, dim}, rng);
          Array y = x;
          apply_rope(y, rotary_tables(pos, inv_freq, scaling, n), n);
          int bad = 0;
          for (int64_t tok = 0; tok < 2 * seq; ++tok)
            for (int64_t h = 0; h < heads; ++h) {
              const double* xv = x.data.data() + (tok * heads + h) * dim;
              const double* yv = y.data.data() + (tok * heads + h) * dim;
              for (int64_t j = 0; j < half; ++j) {
                const double angle = static_cast<double>(pos.data[tok]) * inv_freq[j];
                const double c = std::cos(angle) * scaling, s = std::sin(angle) * scaling;
                bad += !close(yv[j], xv[j] * c - xv[j + half] * s);
                bad += !close(yv[j + half], xv[j + half] * c + xv[j] * s);
              }
            }
          CHECK(bad == 0);
        }
}

TEST_CASE("rope: q·k after rotation depends only on the position difference") {
  std::mt19937 rng(33);
  const Numerics n(Precision::F64);
  const std::vector<double> inv_freq = default_inv_freq(8, 10000.0, n);
  const Array q = random_array({1, 1, 1, 8}, rng), k = random_array({1, 1, 1, 8}, rng);
  auto score = [&](int64_t pq, int64_t pk) {
    Array qr = q, kr = k;
    apply_rope(qr, rotary_tables(positions(1, 1, {pq}), inv_freq, 1.0, n), n);
    apply_rope(kr, rotary_tables(positions(1, 1, {pk}), inv_freq, 1.0, n), n);
    double dot = 0;
    for (int64_t j = 0; j < 8; ++j) dot += qr.data[j] * kr.data[j];
    return dot;
  };
  CHECK(score(7, 2) == doctest::Approx(score(107, 102)).epsilon(1e-11));
  CHECK(score(2, 2) == doctest::Approx(score(0, 0)).epsilon(1e-12));
  double qk = 0;
  for (int64_t j = 0; j < 8; ++j) qk += q.data[j] * k.data[j];
  CHECK(score(41, 41) == doctest::Approx(qk).epsilon(1e-12));
  CHECK(score(7, 2) != doctest::Approx(qk).epsilon(1e-6));
}

TEST_CASE("rope: apply_rope throws on a non-4-D input or tables of another shape") {
  const Numerics n(Precision::F64);
  const RotaryTables t = rotary_tables(positions(1, 2, {0, 1}), {1.0, 0.5}, 1.0, n);
  Array three_d({1, 2, 4});
  CHECK_THROWS_AS(apply_rope(three_d, t, n), Error);
  Array wrong_dim({1, 2, 1, 6});
  CHECK_THROWS_AS(apply_rope(wrong_dim, t, n), Error);
  Array wrong_seq({1, 3, 1, 4});
  CHECK_THROWS_AS(apply_rope(wrong_seq, t, n), Error);
  Array fits({1, 2, 3, 4});
  CHECK_NOTHROW(apply_rope(fits, t, n));
}

TEST_CASE("rope: proportional_inv_freq rotates int(prf · D/2) angles with the FULL head dim's exponent") {
  const Numerics n(Precision::F64);
  // D = 40, prf 0.3: int(0.3 · 40 // 2) = 6 angles 1e4^(-2i/40), then 14 zeros.
  const std::vector<double> f = proportional_inv_freq(40, 10000.0, 0.3, 1.0, n);
  REQUIRE(f.size() == 20);
  for (int i = 0; i < 6; ++i) {
    CAPTURE(i);
    CHECK(f[static_cast<size_t>(i)] == doctest::Approx(std::pow(10000.0, -2.0 * i / 40.0)).epsilon(1e-14));
  }
  for (size_t i = 6; i < 20; ++i) CHECK(f[i] == 0.0);
  // Not default_inv_freq over the rotary width (2 · 6 = 12 dims): that table falls faster.
  CHECK(f[1] != doctest::Approx(default_inv_freq(12, 10000.0, n)[1]));

  // factor divides every rotated angle; the zeros stay zeros.
  const std::vector<double> scaled = proportional_inv_freq(40, 10000.0, 0.3, 8.0, n);
  for (size_t i = 0; i < 20; ++i) CHECK(scaled[i] == doctest::Approx(f[i] / 8.0).epsilon(1e-14));

  // D = 512, prf 0.25, theta 1e6 (the released full layers): 64 angles, inv_freq[1] = 1e6^(-2/512).
  const std::vector<double> g = proportional_inv_freq(512, 1e6, 0.25, 1.0, Numerics(Precision::F32));
  REQUIRE(g.size() == 256);
  CHECK(g[0] == 1.0);
  CHECK(g[1] == doctest::Approx(0.947464).epsilon(1e-6));
  CHECK(g[63] == doctest::Approx(0.0333760).epsilon(1e-5));
  CHECK(g[64] == 0.0);
  CHECK(std::all_of(g.begin() + 64, g.end(), [](double x) { return x == 0.0; }));
  for (double x : g) CHECK(x == static_cast<double>(static_cast<float>(x)));  // float32 like HF

  // prf 1 is the default table; prf 0 rotates nothing.
  CHECK(proportional_inv_freq(16, 10000.0, 1.0, 1.0, n) == default_inv_freq(16, 10000.0, n));
  const std::vector<double> none = proportional_inv_freq(16, 10000.0, 0.0, 1.0, n);
  CHECK(std::all_of(none.begin(), none.end(), [](double x) { return x == 0.0; }));

  CHECK_THROWS_AS(proportional_inv_freq(15, 10000.0, 0.25, 1.0, n), Error);
  CHECK_THROWS_AS(proportional_inv_freq(16, 10000.0, 1.5, 1.0, n), Error);
  CHECK_THROWS_AS(proportional_inv_freq(16, 10000.0, 0.25, 0.0, n), Error);
}

TEST_CASE("rope: a proportional table rotates dim j with j + D/2 for j < A and passes every other dim through") {
  const Numerics n(Precision::F64);
  const std::vector<double> inv_freq = proportional_inv_freq(8, 10000.0, 0.5, 1.0, n);  // A = 2 of 4
  const RotaryTables t = rotary_tables(positions(1, 1, {3}), inv_freq, 1.0, n);
  Array x({1, 1, 1, 8});
  for (int64_t j = 0; j < 8; ++j) x.data[static_cast<size_t>(j)] = static_cast<double>(j + 1);
  apply_rope(x, t, n);
  for (int j : {0, 1}) {
    CAPTURE(j);
    const double angle = 3.0 * inv_freq[static_cast<size_t>(j)];
    const double a = j + 1, b = j + 5;  // the pair (j, j + 4)
    CHECK(close(x.data[static_cast<size_t>(j)], a * std::cos(angle) - b * std::sin(angle)));
    CHECK(close(x.data[static_cast<size_t>(j + 4)], b * std::cos(angle) + a * std::sin(angle)));
  }
  for (int j : {2, 3, 6, 7}) CHECK(x.data[static_cast<size_t>(j)] == static_cast<double>(j + 1));
}

TEST_CASE("rope backward agrees with central finite differences, default and proportional tables") {
  std::mt19937 rng(61);
  const Numerics f64(Precision::F64);
  const IndexArray pos = positions(1, 3, {0, 4, 9});
  for (const std::vector<double>& inv_freq : {default_inv_freq(6, 100.0, f64), proportional_inv_freq(6, 100.0, 0.5, 1.0, f64)}) {
    const RotaryTables tables = rotary_tables(pos, inv_freq, 1.0, f64);
    const Array x = random_array({1, 3, 2, 6}, rng);
    const Array dy = random_array({1, 3, 2, 6}, rng);
    Array dx = dy;
    apply_rope_backward(dx, tables);
    CHECK(test::gradient_close(dx.data, test::numeric_gradient([&](const Array& v) {
      Array rotated = v;
      apply_rope(rotated, tables, f64);
      return rotated;
    }, x, dy), 1e-8));
  }
}

}  // namespace parity::ops
