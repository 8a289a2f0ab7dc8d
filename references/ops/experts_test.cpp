#include "experts.h"

#include <algorithm>
#include <cmath>
#include <numbers>
#include <numeric>
#include <random>

#include <doctest/doctest.h>

#include "test_util.h"

namespace parity::ops {

using test::random_array;
using test::random_weight;
using test::close;

namespace {

// k distinct experts per token, in random order, as a top-k produces.
IndexArray random_index(int64_t tokens, int64_t experts, int64_t k, std::mt19937& rng) {
  IndexArray index{{tokens, k}, {}};
  std::vector<int64_t> all(static_cast<size_t>(experts));
  std::iota(all.begin(), all.end(), 0);
  for (int64_t t = 0; t < tokens; ++t) {
    std::shuffle(all.begin(), all.end(), rng);
    index.data.insert(index.data.end(), all.begin(), all.begin() + k);
  }
  return index;
}

double naive_act(Activation a, double x) {
  if (a == Activation::kSilu) return x / (1.0 + std::exp(-x));
  return 0.5 * x * (1.0 + std::tanh(std::sqrt(2.0 / std::numbers::pi) * (x + 0.044715 * x * x * x)));
}

}  // namespace

TEST_CASE("experts: gate rows come first in gate_up_proj and the weighted down projection is the output") {
  // E = 1, H = 1, I = 1: gate row g = 1, up row u = 3, down d = 2, x = 1, routing weight 0.5.
  const Weight gate_up{{1, 2, 1}, {1.0f, 3.0f}};
  const Weight down{{1, 1, 1}, {2.0f}};
  const Array y = experts(Array({1, 1}, {1.0}), IndexArray{{1, 1}, {0}}, Array({1, 1}, {0.5}), {gate_up, down},
                          Activation::kSilu, Numerics(Precision::F64));
  REQUIRE(y.shape == Shape{1, 1});
  const double silu1 = 1.0 / (1.0 + std::exp(-1.0));
  CHECK(y.data[0] == doctest::Approx(0.5 * 2.0 * silu1 * 3.0).epsilon(1e-15));
  // Swapped halves would give 0.5 · 2 · silu(3) · 1 instead.
  CHECK(y.data[0] != doctest::Approx(0.5 * 2.0 * 3.0 / (1.0 + std::exp(-3.0))).epsilon(1e-3));
}

TEST_CASE("experts: sums the routed experts weighted, picking each expert's slice of the fused tensors") {
  // E = 3, H = 2, I = 1. Expert e: gate row (e + 1, 0), up row (0, 1), down column (1, -1) · (e + 1).
  Weight gate_up{{3, 2, 2}, {}};
  Weight down{{3, 2, 1}, {}};
  for (int e = 0; e < 3; ++e) {
    gate_up.data.insert(gate_up.data.end(), {static_cast<float>(e + 1), 0.0f, 0.0f, 1.0f});
    down.data.insert(down.data.end(), {static_cast<float>(e + 1), -static_cast<float>(e + 1)});
  }
  const Array x({2, 2}, {0.5, 2.0, -1.0, 1.0});
  const IndexArray index{{2, 2}, {2, 0, 1, 2}};
  const Array w({2, 2}, {0.25, 0.75, 1.0, 0.0});
  const Array y = experts(x, index, w, {gate_up, down}, Activation::kSilu, Numerics(Precision::F64));
  auto silu = [](double v) { return v / (1.0 + std::exp(-v)); };
  // Token 0: 0.25 · expert 2 + 0.75 · expert 0; hidden_e = silu((e + 1) x0) · x1.
  const double t0 = 0.25 * 3 * silu(3 * 0.5) * 2.0 + 0.75 * 1 * silu(1 * 0.5) * 2.0;
  // Token 1: expert 1 with weight 1, expert 2 with weight 0.
  const double t1 = 1.0 * 2 * silu(2 * -1.0) * 1.0;
  CHECK(y.data[0] == doctest::Approx(t0).epsilon(1e-15));
  CHECK(y.data[1] == doctest::Approx(-t0).epsilon(1e-15));
  CHECK(y.data[2] == doctest::Approx(t1).epsilon(1e-15));
  CHECK(y.data[3] == doctest::Approx(-t1).epsilon(1e-15));
}

TEST_CASE("experts: matches a naive per-token loop over odd shapes in f64") {
  std::mt19937 rng(61);
  const Numerics n(Precision::F64);
  for (int64_t num_experts : {1, 3, 5})
    for (int64_t hidden : {1, 3, 7, 13})
      for (int64_t inter : {1, 5, 17})
        for (int64_t tokens : {1, 3, 7})
          for (Activation act : {Activation::kSilu, Activation::kGeluTanh}) {
            const int64_t k = std::min<int64_t>(num_experts, 2);
            CAPTURE(num_experts);
            CAPTURE(hidden);
            CAPTURE(inter);
            CAPTURE(tokens);
            CAPTURE(static_cast<int>(act));
            const Weight gate_up = random_weight({num_experts, 2 * inter, hidden}, rng);
            const Weight down = random_weight({num_experts, hidden, inter}, rng);
            const Array x = random_array({tokens, hidden}, rng);
            const IndexArray index = random_index(tokens, num_experts, k, rng);
            Array w = random_array({tokens, k}, rng);
            for (double& v : w.data) v = std::abs(v);
            const Array y = experts(x, index, w, {gate_up, down}, act, n);
            REQUIRE(y.shape == Shape{tokens, hidden});
            int bad = 0;
            for (int64_t t = 0; t < tokens; ++t) {
              std::vector<double> want(static_cast<size_t>(hidden), 0.0);
              for (int64_t j = 0; j < k; ++j) {
                const int64_t e = index.data[t * k + j];
                std::vector<double> h(static_cast<size_t>(inter));
                for (int64_t i = 0; i < inter; ++i) {
                  double g = 0, u = 0;
                  for (int64_t c = 0; c < hidden; ++c) {
                    g += gate_up.data[(e * 2 * inter + i) * hidden + c] * x.data[t * hidden + c];
                    u += gate_up.data[(e * 2 * inter + inter + i) * hidden + c] * x.data[t * hidden + c];
                  }
                  h[i] = naive_act(act, g) * u;
                }
                for (int64_t c = 0; c < hidden; ++c) {
                  double o = 0;
                  for (int64_t i = 0; i < inter; ++i) o += down.data[(e * hidden + c) * inter + i] * h[i];
                  want[c] += w.data[t * k + j] * o;
                }
              }
              for (int64_t c = 0; c < hidden; ++c) bad += !close(y.data[t * hidden + c], want[c]);
            }
            CHECK(bad == 0);
          }
}

TEST_CASE("experts: every output is a bfloat16 value under BF16 and close to the exact one") {
  std::mt19937 rng(62);
  const Weight gate_up = random_weight({4, 10, 6}, rng), down = random_weight({4, 6, 5}, rng);
  const Array x = random_array({5, 6}, rng);
  const IndexArray index = random_index(5, 4, 2, rng);
  Array w = random_array({5, 2}, rng);
  for (double& v : w.data) v = std::abs(v);
  const Numerics bf16(Precision::BF16);
  bf16.act(w);
  const Array y = experts(x, index, w, {gate_up, down}, Activation::kSilu, bf16);
  const Array exact = experts(x, index, w, {gate_up, down}, Activation::kSilu, Numerics(Precision::F64));
  for (size_t i = 0; i < y.data.size(); ++i) {
    CHECK(bf16.act(y.data[i]) == y.data[i]);
    CHECK(y.data[i] == doctest::Approx(exact.data[i]).epsilon(0.03));
  }
}

TEST_CASE("experts: throws on an out-of-range expert index and on mismatched shapes") {
  const Weight gate_up{{2, 4, 3}, std::vector<float>(24, 0.5f)};
  const Weight down{{2, 3, 2}, std::vector<float>(12, 0.5f)};
  const Numerics n(Precision::F64);
  const Array x({1, 3}, {1, 2, 3});
  const Array w({1, 1}, {1.0});
  CHECK_THROWS_WITH_AS(experts(x, IndexArray{{1, 1}, {2}}, w, {gate_up, down}, Activation::kSilu, n),
                       doctest::Contains("expert index 2"), Error);
  CHECK_THROWS_AS(experts(x, IndexArray{{1, 1}, {-1}}, w, {gate_up, down}, Activation::kSilu, n), Error);
  CHECK_NOTHROW(experts(x, IndexArray{{1, 1}, {1}}, w, {gate_up, down}, Activation::kSilu, n));
  const Weight bad_down{{2, 2, 3}, std::vector<float>(12, 0.5f)};
  CHECK_THROWS_AS(experts(x, IndexArray{{1, 1}, {1}}, w, {gate_up, bad_down}, Activation::kSilu, n), Error);
  CHECK_THROWS_AS(experts(Array({1, 2}), IndexArray{{1, 1}, {1}}, w, {gate_up, down}, Activation::kSilu, n), Error);
  CHECK_THROWS_AS(experts(x, IndexArray{{1, 1}, {1}}, Array({1, 2}), {gate_up, down}, Activation::kSilu, n), Error);
}

TEST_CASE("experts backward: dx, routing-weight, gate_up and down gradients agree with central finite differences") {
  std::mt19937 rng(73);
  const Numerics f64(Precision::F64);
  const Array x = random_array({3, 4}, rng);
  const IndexArray index{{3, 2}, {2, 0, 0, 1, 2, 1}};  // expert 0 twice, every expert at least once
  const Array weights = random_array({3, 2}, rng, 0.1, 0.9);
  const Weight gate_up = random_weight({3, 10, 4}, rng), down = random_weight({3, 4, 5}, rng);
  const Array dout = random_array({3, 4}, rng);
  for (Activation activation : {Activation::kSilu, Activation::kGeluTanh}) {
    CAPTURE(static_cast<int>(activation));
    const ExpertGradients g = experts_backward(x, index, weights, {gate_up, down}, activation, dout);
    auto f = [&](const Array& xx, const Array& ww, const Weight& gu, const Weight& dn) {
      return experts(xx, index, ww, {gu, dn}, activation, f64);
    };
    CHECK(test::gradient_close(g.x.data, test::numeric_gradient([&](const Array& v) { return f(v, weights, gate_up, down); }, x, dout), 1e-8));
    CHECK(test::gradient_close(g.weights.data, test::numeric_gradient([&](const Array& v) { return f(x, v, gate_up, down); }, weights, dout), 1e-8));
    // A weight step of 1e-3 through the activation: O(h²) ~ 1e-6 of finite-difference error.
    CHECK(test::gradient_close(g.gate_up_proj.data, test::numeric_weight_gradient([&](const Weight& v) { return f(x, weights, v, down); }, gate_up, dout), 1e-5));
    CHECK(test::gradient_close(g.down_proj.data, test::numeric_weight_gradient([&](const Weight& v) { return f(x, weights, gate_up, v); }, down, dout), 1e-8));
  }
}

}  // namespace parity::ops
