#include "router.h"

#include <algorithm>
#include <cmath>
#include <random>

#include <doctest/doctest.h>

#include "test_util.h"

namespace parity::ops {

using test::close;

namespace {

Array random_array(Shape shape, std::mt19937& rng) {
  std::normal_distribution<double> dist(0.0, 2.0);
  Array a(std::move(shape));
  for (double& x : a.data) x = dist(rng);
  return a;
}

}  // namespace

TEST_CASE("router_probs: equal logits give uniform probabilities over every expert") {
  const Array logits({2, 8}, std::vector<double>(16, -0.75));
  const Array probs = router_probs(logits, Numerics(Precision::F64));
  REQUIRE(probs.shape == Shape{2, 8});
  for (double p : probs.data) CHECK(p == 0.125);
}

TEST_CASE("router_probs: a full-row softmax matching a naive one over odd expert counts in f64") {
  std::mt19937 rng(51);
  for (int64_t experts : {1, 3, 5, 7, 13, 17}) {
    CAPTURE(experts);
    const Array logits = random_array({5, experts}, rng);
    const Array probs = router_probs(logits, Numerics(Precision::F64));
    int bad = 0;
    for (int64_t t = 0; t < 5; ++t) {
      double sum = 0;
      for (int64_t e = 0; e < experts; ++e) sum += std::exp(logits.row(t)[e]);
      for (int64_t e = 0; e < experts; ++e) bad += !close(probs.row(t)[e], std::exp(logits.row(t)[e]) / sum);
    }
    CHECK(bad == 0);
  }
  // float32 like torch softmax(dtype=float32).
  const Array logits = random_array({3, 7}, rng);
  for (double p : router_probs(logits, Numerics(Precision::BF16)).data) CHECK(p == static_cast<double>(static_cast<float>(p)));
}

TEST_CASE("top_k: picks the largest values in descending order with ties to the lower index") {
  const std::vector<double> row{0.1, 0.7, 0.3, 0.7, 0.5};
  CHECK(top_k(row.data(), 5, 3) == std::vector<int64_t>{1, 3, 4});
  CHECK(top_k(row.data(), 5, 1) == std::vector<int64_t>{1});
  CHECK(top_k(row.data(), 5, 5) == std::vector<int64_t>{1, 3, 4, 2, 0});
  const std::vector<double> flat(6, 2.0);
  CHECK(top_k(flat.data(), 6, 3) == std::vector<int64_t>{0, 1, 2});
  // A tie straddling the cut keeps the lowest indices.
  const std::vector<double> straddle{1, 5, 3, 5, 3, 3};
  CHECK(top_k(straddle.data(), 6, 3) == std::vector<int64_t>{1, 3, 2});
  CHECK(top_k(straddle.data(), 6, 4) == std::vector<int64_t>{1, 3, 2, 4});
  const std::vector<double> negative{-3, -1, -2};
  CHECK(top_k(negative.data(), 3, 2) == std::vector<int64_t>{1, 2});
  CHECK_THROWS_AS(top_k(row.data(), 5, 0), Error);
  CHECK_THROWS_AS(top_k(row.data(), 5, 6), Error);
}

TEST_CASE("top_k_rows: selects per token and matches a naive sort over odd shapes") {
  std::mt19937 rng(52);
  for (int64_t experts : {1, 3, 5, 7, 13, 17})
    for (int64_t k : {1, 2, 3}) {
      if (k > experts) continue;
      CAPTURE(experts);
      CAPTURE(k);
      Array scores = random_array({7, experts}, rng);
      for (double& x : scores.data) x = std::round(x);  // plenty of ties
      const IndexArray index = top_k_rows(scores, k);
      REQUIRE(index.shape == Shape{7, k});
      for (int64_t t = 0; t < 7; ++t) {
        std::vector<int64_t> order(static_cast<size_t>(experts));
        for (int64_t e = 0; e < experts; ++e) order[e] = e;
        std::stable_sort(order.begin(), order.end(),
                         [&](int64_t a, int64_t b) { return scores.row(t)[a] > scores.row(t)[b]; });
        order.resize(static_cast<size_t>(k));
        CHECK(std::vector<int64_t>(index.data.begin() + t * k, index.data.begin() + (t + 1) * k) == order);
      }
    }
}

TEST_CASE("gather_top_k: without renormalising returns the full-softmax probabilities") {
  std::mt19937 rng(53);
  const Array probs = router_probs(random_array({4, 7}, rng), Numerics(Precision::F32));
  const IndexArray index = top_k_rows(probs, 3);
  const Array w = gather_top_k(probs, index, false, Numerics(Precision::F32));
  REQUIRE(w.shape == Shape{4, 3});
  for (int64_t t = 0; t < 4; ++t) {
    double sum = 0;
    for (int64_t j = 0; j < 3; ++j) {
      CHECK(w.row(t)[j] == probs.row(t)[index.data[t * 3 + j]]);
      sum += w.row(t)[j];
    }
    CHECK(sum < 1.0);  // the full-row softmax, not a softmax of the k selected logits
  }
}

TEST_CASE("gather_top_k: renormalising makes each token's weights sum to 1 and keeps their ratios") {
  std::mt19937 rng(54);
  for (Precision precision : {Precision::F64, Precision::F32}) {
    const Numerics n(precision);
    const Array probs = router_probs(random_array({5, 13}, rng), n);
    const IndexArray index = top_k_rows(probs, 4);
    const Array w = gather_top_k(probs, index, true, n);
    for (int64_t t = 0; t < 5; ++t) {
      double sum = 0, selected = 0;
      for (int64_t j = 0; j < 4; ++j) {
        sum += w.row(t)[j];
        selected += probs.row(t)[index.data[t * 4 + j]];
      }
      CHECK(sum == doctest::Approx(1.0).epsilon(precision == Precision::F64 ? 1e-15 : 1e-6));
      for (int64_t j = 0; j < 4; ++j) {
        CHECK(w.row(t)[j] == doctest::Approx(probs.row(t)[index.data[t * 4 + j]] / selected).epsilon(1e-6));
        if (precision == Precision::F32) CHECK(w.row(t)[j] == static_cast<double>(static_cast<float>(w.row(t)[j])));
      }
    }
  }
  // Hand-computed: probs 0.1, 0.2, 0.3, 0.4, top-2 {3, 2} -> 4/7, 3/7.
  const Array probs({1, 4}, {0.1, 0.2, 0.3, 0.4});
  const Array w = gather_top_k(probs, IndexArray{{1, 2}, {3, 2}}, true, Numerics(Precision::F64));
  CHECK(w.data[0] == doctest::Approx(4.0 / 7.0).epsilon(1e-15));
  CHECK(w.data[1] == doctest::Approx(3.0 / 7.0).epsilon(1e-15));
}

TEST_CASE("gather_top_k: throws on an expert index out of range or an index of the wrong shape") {
  const Array probs({2, 4}, {0.1, 0.2, 0.3, 0.4, 0.25, 0.25, 0.25, 0.25});
  const Numerics n(Precision::F64);
  CHECK_THROWS_AS(gather_top_k(probs, IndexArray{{2, 1}, {0, 4}}, false, n), Error);
  CHECK_THROWS_AS(gather_top_k(probs, IndexArray{{2, 1}, {-1, 0}}, true, n), Error);
  CHECK_THROWS_AS(gather_top_k(probs, IndexArray{{3, 1}, {0, 1, 2}}, true, n), Error);
  CHECK_NOTHROW(gather_top_k(probs, IndexArray{{2, 1}, {3, 0}}, true, n));
}

TEST_CASE("router backward: softmax, top-k gather with and without renormalisation, per_expert_scale") {
  std::mt19937 rng(71);
  const Numerics f64(Precision::F64);
  const Array logits = test::random_array({4, 6}, rng, -2.0, 2.0);
  const Array probs = router_probs(logits, f64);
  const IndexArray index = top_k_rows(probs, 2);
  const Array dw = test::random_array({4, 2}, rng);
  for (bool renormalise : {false, true}) {
    CAPTURE(renormalise);
    const Array dprobs = gather_top_k_backward(probs, index, renormalise, dw);
    CHECK(test::gradient_close(dprobs.data, test::numeric_gradient([&](const Array& p) { return gather_top_k(p, index, renormalise, f64); }, probs, dw), 1e-8));
    // Through the full softmax (OlmoeTopKRouter): every expert's logit gets gradient, the
    // unselected ones through the softmax denominator (the path a top-k-only softmax drops).
    const Array dlogits = router_probs_backward(probs, dprobs);
    CHECK(test::gradient_close(dlogits.data, test::numeric_gradient([&](const Array& z) {
      return gather_top_k(router_probs(z, f64), index, renormalise, f64);
    }, logits, dw), 1e-8));
    int64_t unselected_with_gradient = 0;
    for (int64_t t = 0; t < 4; ++t)
      for (int64_t e = 0; e < 6; ++e)
        if (e != index.data[static_cast<size_t>(2 * t)] && e != index.data[static_cast<size_t>(2 * t + 1)] &&
            dlogits.row(t)[e] != 0.0)
          ++unselected_with_gradient;
    // Renormalised, the full softmax's denominator cancels: w_j = exp(z_j) / Σ_selected exp(z), so
    // the unselected logits get none (to round-off); without it all 16 do.
    if (!renormalise) CHECK(unselected_with_gradient == 16);
    double unselected = 0;
    for (int64_t t = 0; t < 4; ++t)
      for (int64_t e = 0; e < 6; ++e)
        if (e != index.data[static_cast<size_t>(2 * t)] && e != index.data[static_cast<size_t>(2 * t + 1)])
          unselected = std::max(unselected, std::abs(dlogits.row(t)[e]));
    if (renormalise) CHECK(unselected < 1e-15);
  }
  // Renormalised weights sum to 1 whatever the probabilities: the same gradient on every slot
  // (dw = 1) moves nothing.
  const Array w = gather_top_k(probs, index, true, f64);
  const Array along = gather_top_k_backward(probs, index, true, Array({4, 2}, std::vector<double>(8, 1.0)));
  double worst = 0;
  for (double x : along.data) worst = std::max(worst, std::abs(x));
  CHECK(worst < 1e-15);
  // per_expert_scale: d/dweights and d/dscale.
  const Weight scale = test::random_weight({6}, rng, 0.5f, 1.5f);
  auto scaled = [&](const Array& weights, const Weight& s) {
    Array out = weights;
    for (int64_t i = 0; i < out.numel(); ++i) out.data[i] *= s.data[index.data[static_cast<size_t>(i)]];
    return out;
  };
  Array dscale({6});
  const Array dweights = per_expert_scale_backward(w, index, scale, dw, &dscale);
  CHECK(test::gradient_close(dweights.data, test::numeric_gradient([&](const Array& x) { return scaled(x, scale); }, w, dw), 1e-8));
  CHECK(test::gradient_close(dscale.data, test::numeric_weight_gradient([&](const Weight& s) { return scaled(w, s); }, scale, dw), 1e-8));
}

}  // namespace parity::ops
