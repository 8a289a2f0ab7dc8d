#include "attention.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <random>

#include <doctest/doctest.h>

#include "test_util.h"

namespace parity::ops {

using test::random_array;
using test::close;

namespace {

IndexArray all_ones(int64_t batch, int64_t seq) {
  return IndexArray{{batch, seq}, std::vector<int64_t>(static_cast<size_t>(batch * seq), 1)};
}

}  // namespace

TEST_CASE("causal_mask: key j is visible to query i iff j <= i, j is not padding and i - j < window") {
  // Batch 0 unpadded, batch 1 left-padded by two tokens.
  const IndexArray padding{{2, 6}, {1, 1, 1, 1, 1, 1, 0, 0, 1, 1, 1, 1}};
  for (std::optional<int64_t> window : {std::optional<int64_t>{}, std::optional<int64_t>{3}, std::optional<int64_t>{1}}) {
    CAPTURE(window.value_or(-1));
    const Array mask = causal_mask(padding, window, Numerics(Precision::F32));
    REQUIRE(mask.shape == Shape{2, 1, 6, 6});
    for (int64_t b = 0; b < 2; ++b)
      for (int64_t i = 0; i < 6; ++i)
        for (int64_t j = 0; j < 6; ++j) {
          CAPTURE(b);
          CAPTURE(i);
          CAPTURE(j);
          const bool visible = j <= i && padding.data[b * 6 + j] != 0 && (!window || i - j < *window);
          const double m = mask.data[(b * 6 + i) * 6 + j];
          CHECK(m == (visible ? 0.0 : static_cast<double>(std::numeric_limits<float>::lowest())));
        }
  }
  // Spot checks written out: window 3 hides key 0 from query 3 but not from query 2.
  const Array w3 = causal_mask(padding, 3, Numerics(Precision::F64));
  CHECK(w3.data[3 * 6 + 0] == std::numeric_limits<float>::lowest());
  CHECK(w3.data[2 * 6 + 0] == 0.0);
  CHECK(w3.data[2 * 6 + 3] == std::numeric_limits<float>::lowest());  // the future
  CHECK(w3.data[(6 + 4) * 6 + 1] == std::numeric_limits<float>::lowest());  // padding in batch 1
  CHECK(w3.data[(6 + 4) * 6 + 2] == 0.0);
  CHECK_THROWS_AS(causal_mask(IndexArray{{6}, std::vector<int64_t>(6, 1)}, std::nullopt, Numerics()), Error);
}

TEST_CASE("causal_mask: the masked value is finfo(T).min: float lowest, or bfloat16 lowest under BF16") {
  const IndexArray padding{{1, 2}, {1, 1}};
  CHECK(causal_mask(padding, std::nullopt, Numerics(Precision::F64)).data[1] == std::numeric_limits<float>::lowest());
  CHECK(causal_mask(padding, std::nullopt, Numerics(Precision::F32)).data[1] == std::numeric_limits<float>::lowest());
  // torch.finfo(torch.bfloat16).min: sign 1, exponent 0xfe, mantissa all ones.
  const double bf16_lowest = bf16_to_f32(0xff7f);
  CHECK(causal_mask(padding, std::nullopt, Numerics(Precision::BF16)).data[1] == bf16_lowest);
  CHECK(causal_mask(padding, std::nullopt, Numerics(Precision::BF16)).data[0] == 0.0);
}

TEST_CASE("softmax_rows_f32: equal logits give a uniform distribution") {
  for (int64_t n : {1, 3, 5, 7}) {
    std::vector<double> row(static_cast<size_t>(n), 2.5);
    softmax_rows_f32(row.data(), n, Numerics(Precision::F64));
    for (double p : row) CHECK(p == 1.0 / static_cast<double>(n));
  }
  std::vector<double> huge(4, -1e30);
  softmax_rows_f32(huge.data(), 4, Numerics(Precision::F32));
  for (double p : huge) CHECK(p == 0.25);
}

TEST_CASE("softmax_rows_f32: matches exp(x) / sum exp(x), is shift invariant and rounds to float under F32") {
  const std::vector<double> logits{0.5, -1.25, 3.0, 0.0, 2.0};
  double sum = 0;
  for (double x : logits) sum += std::exp(x);
  std::vector<double> p = logits;
  softmax_rows_f32(p.data(), 5, Numerics(Precision::F64));
  std::vector<double> shifted{100.5, 98.75, 103.0, 100.0, 102.0};
  softmax_rows_f32(shifted.data(), 5, Numerics(Precision::F64));
  std::vector<double> p32 = logits;
  softmax_rows_f32(p32.data(), 5, Numerics(Precision::F32));
  for (size_t j = 0; j < 5; ++j) {
    CHECK(close(p[j], std::exp(logits[j]) / sum));
    CHECK(close(shifted[j], p[j]));
    CHECK(p32[j] == static_cast<double>(static_cast<float>(p32[j])));
    CHECK(p32[j] == doctest::Approx(p[j]).epsilon(1e-6));
  }
}

TEST_CASE("attention: a single key returns v exactly with probability 1, for every GQA group") {
  std::mt19937 rng(41);
  for (int64_t kv_heads : {1, 2})
    for (int64_t group : {1, 2, 3}) {
      const int64_t heads = kv_heads * group, dim = 5;
      const Array q = random_array({2, 1, heads, dim}, rng);
      const Array k = random_array({2, 1, kv_heads, dim}, rng);
      const Array v = random_array({2, 1, kv_heads, dim}, rng);
      const Array mask = causal_mask(all_ones(2, 1), std::nullopt, Numerics(Precision::F64));
      const AttentionResult r = attention(q, k, v, mask, 0.37, Numerics(Precision::F64));
      REQUIRE(r.context.shape == Shape{2, 1, heads * dim});
      REQUIRE(r.probs.shape == Shape{2, heads, 1, 1});
      for (double p : r.probs.data) CHECK(p == 1.0);
      for (int64_t b = 0; b < 2; ++b)
        for (int64_t h = 0; h < heads; ++h)
          for (int64_t d = 0; d < dim; ++d)
            CHECK(r.context.data[(b * heads + h) * dim + d] == v.data[(b * kv_heads + h / group) * dim + d]);
    }
}

TEST_CASE("attention: under a causal mask the first query sees only the first key") {
  std::mt19937 rng(42);
  const Array q = random_array({1, 4, 2, 3}, rng), k = random_array({1, 4, 1, 3}, rng),
              v = random_array({1, 4, 1, 3}, rng);
  const Numerics n(Precision::F32);
  const AttentionResult r = attention(q, k, v, causal_mask(all_ones(1, 4), std::nullopt, n), 1.0, n);
  for (int64_t h = 0; h < 2; ++h) {
    const double* p = r.probs.data.data() + h * 16;
    CHECK(p[0] == 1.0);
    CHECK(p[1] == 0.0);
    CHECK(p[2] == 0.0);
    CHECK(p[3] == 0.0);
    for (int64_t i = 0; i < 4; ++i)
      for (int64_t j = i + 1; j < 4; ++j) CHECK(p[i * 4 + j] == 0.0);
    for (int64_t d = 0; d < 3; ++d) CHECK(r.context.data[h * 3 + d] == static_cast<double>(static_cast<float>(v.data[d])));
  }
}

TEST_CASE("attention: matches naive GQA loops over odd shapes, padding and sliding windows in f64") {
  std::mt19937 rng(43);
  const Numerics n(Precision::F64);
  for (int64_t seq : {1, 3, 5, 7})
    for (int64_t dim : {1, 3, 5})
      for (int64_t kv_heads : {1, 2})
        for (int64_t group : {1, 2, 3})
          for (std::optional<int64_t> window : {std::optional<int64_t>{}, std::optional<int64_t>{2}}) {
            const int64_t heads = kv_heads * group;
            CAPTURE(seq);
            CAPTURE(dim);
            CAPTURE(kv_heads);
            CAPTURE(group);
            CAPTURE(window.value_or(-1));
            const Array q = random_array({2, seq, heads, dim}, rng);
            const Array k = random_array({2, seq, kv_heads, dim}, rng);
            const Array v = random_array({2, seq, kv_heads, dim}, rng);
            IndexArray padding = all_ones(2, seq);
            if (seq > 1) padding.data[static_cast<size_t>(seq)] = 0;  // batch 1 left-padded by one
            const Array mask = causal_mask(padding, window, n);
            const double scaling = 1.0 / std::sqrt(static_cast<double>(dim));
            const AttentionResult r = attention(q, k, v, mask, scaling, n);
            REQUIRE(r.context.shape == Shape{2, seq, heads * dim});
            REQUIRE(r.probs.shape == Shape{2, heads, seq, seq});
            int bad = 0;
            for (int64_t b = 0; b < 2; ++b)
              for (int64_t h = 0; h < heads; ++h) {
                const int64_t g = h / (heads / kv_heads);
                for (int64_t i = 0; i < seq; ++i) {
                  std::vector<double> s(static_cast<size_t>(seq));
                  for (int64_t j = 0; j < seq; ++j) {
                    double dot = 0;
                    for (int64_t d = 0; d < dim; ++d)
                      dot += q.data[((b * seq + i) * heads + h) * dim + d] * k.data[((b * seq + j) * kv_heads + g) * dim + d];
                    s[j] = dot * scaling + mask.data[(b * seq + i) * seq + j];
                  }
                  const double max = *std::max_element(s.begin(), s.end());
                  double sum = 0;
                  for (double& x : s) sum += (x = std::exp(x - max));
                  for (double& x : s) x /= sum;
                  for (int64_t j = 0; j < seq; ++j) bad += !close(r.probs.data[((b * heads + h) * seq + i) * seq + j], s[j]);
                  for (int64_t d = 0; d < dim; ++d) {
                    double o = 0;
                    for (int64_t j = 0; j < seq; ++j) o += s[j] * v.data[((b * seq + j) * kv_heads + g) * dim + d];
                    bad += !close(r.context.data[((b * seq + i) * heads + h) * dim + d], o);
                  }
                }
              }
            CHECK(bad == 0);
          }
}

TEST_CASE("attention: every probs row sums to 1 and every output is a bfloat16 value under BF16") {
  std::mt19937 rng(44);
  const Numerics n(Precision::BF16);
  const Array q = random_array({2, 5, 4, 3}, rng), k = random_array({2, 5, 2, 3}, rng), v = random_array({2, 5, 2, 3}, rng);
  const AttentionResult r = attention(q, k, v, causal_mask(all_ones(2, 5), 3, n), 0.5, n);
  for (double x : r.context.data) CHECK(n.act(x) == x);
  for (double x : r.probs.data) CHECK(n.act(x) == x);
  for (int64_t row = 0; row < r.probs.rows(); ++row) {
    double sum = 0;
    for (int64_t j = 0; j < 5; ++j) sum += r.probs.row(row)[j];
    CHECK(sum == doctest::Approx(1.0).epsilon(1e-2));
  }
}

TEST_CASE("attention: throws when Nh is not a multiple of Nkv or the mask is not [B, 1, S, S]") {
  const Numerics n(Precision::F64);
  const Array q({1, 2, 3, 4}), k({1, 2, 2, 4}), v({1, 2, 2, 4});
  const Array mask({1, 1, 2, 2});
  CHECK_THROWS_AS(attention(q, k, v, mask, 1.0, n), Error);
  const Array k1({1, 2, 1, 4}), v1({1, 2, 1, 4});
  CHECK_NOTHROW(attention(q, k1, v1, mask, 1.0, n));
  CHECK_THROWS_AS(attention(q, k1, v1, Array({1, 2, 2}), 1.0, n), Error);
  CHECK_THROWS_AS(attention(q, k1, v1, Array({1, 1, 2, 3}), 1.0, n), Error);
  CHECK_THROWS_AS(attention(q, k1, Array({1, 2, 1, 3}), mask, 1.0, n), Error);  // v differs from k
  CHECK_THROWS_AS(attention(q, Array({1, 2, 1, 3}), Array({1, 2, 1, 3}), mask, 1.0, n), Error);  // head dim
}

TEST_CASE("attention backward: dq, dk, dv agree with central finite differences (GQA, sliding window, padding)") {
  std::mt19937 rng(67);
  const Numerics f64(Precision::F64);
  // Right padding: no query row is fully masked (a fully masked row has HF's uniform probabilities,
  // where the scores are absorbed by the mask in floating point and finite differences see none of
  // the gradient autograd, and this backward, send through them).
  const IndexArray padding{{2, 5}, {1, 1, 1, 1, 1, 1, 1, 1, 1, 0}};
  const Array mask = causal_mask(padding, 3, f64);
  const Array q = random_array({2, 5, 4, 3}, rng), k = random_array({2, 5, 2, 3}, rng), v = random_array({2, 5, 2, 3}, rng);
  const Array dctx = random_array({2, 5, 12}, rng);
  const double scaling = 0.7;
  const AttentionResult fwd = attention(q, k, v, mask, scaling, f64);
  const AttentionGradients g = attention_backward(q, k, v, fwd.probs, scaling, dctx);
  auto context = [&](const Array& qq, const Array& kk, const Array& vv) { return attention(qq, kk, vv, mask, scaling, f64).context; };
  CHECK(test::gradient_close(g.q.data, test::numeric_gradient([&](const Array& x) { return context(x, k, v); }, q, dctx), 1e-8));
  CHECK(test::gradient_close(g.k.data, test::numeric_gradient([&](const Array& x) { return context(q, x, v); }, k, dctx), 1e-8));
  CHECK(test::gradient_close(g.v.data, test::numeric_gradient([&](const Array& x) { return context(q, k, x); }, v, dctx), 1e-8));
  // The padded key (batch 1, position 4) is visible to no query: it gets no gradient.
  for (int64_t h = 0; h < 2; ++h)
    for (int64_t d = 0; d < 3; ++d) {
      CHECK(g.k.data[static_cast<size_t>(((1 * 5 + 4) * 2 + h) * 3 + d)] == 0.0);
      CHECK(g.v.data[static_cast<size_t>(((1 * 5 + 4) * 2 + h) * 3 + d)] == 0.0);
    }
}

}  // namespace parity::ops
