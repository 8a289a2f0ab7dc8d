#include "logits.h"

#include <cmath>
#include <random>

#include <doctest/doctest.h>

#include "test_util.h"

namespace parity::ops {

using test::close;
using test::random_array;

TEST_CASE("softcap: tanh(x / c) · c, odd, bounded by c and near the identity for small x") {
  Array logits({1, 5}, {0.0, 0.3, -0.3, 60.0, -1e6});
  softcap(logits, 30.0, Numerics(Precision::F64));
  CHECK(logits.data[0] == 0.0);
  CHECK(logits.data[1] == doctest::Approx(std::tanh(0.01) * 30.0).epsilon(1e-15));
  CHECK(logits.data[2] == -logits.data[1]);
  CHECK(logits.data[3] == doctest::Approx(std::tanh(2.0) * 30.0).epsilon(1e-15));
  CHECK(logits.data[4] == -30.0);
  CHECK_THROWS_AS(softcap(logits, 0.0, Numerics(Precision::F64)), Error);
}

TEST_CASE("softcap: under BF16 each of the three tensor ops rounds to bfloat16") {
  const Numerics bf16(Precision::BF16);
  const double x = 7.3;
  Array logits({1, 1}, {x});
  softcap(logits, 30.0, bf16);
  const double want = bf16.act(bf16.act(std::tanh(bf16.act(x / 30.0))) * 30.0);
  CHECK(logits.data[0] == want);
  CHECK(logits.data[0] != doctest::Approx(std::tanh(x / 30.0) * 30.0).epsilon(1e-6));  // the rounding shows
}

TEST_CASE("next_token_logprobs: log_softmax of row s at token s + 1, against a naive one") {
  std::mt19937 rng(5);
  const Array logits = random_array({2, 4, 7}, rng, -5.0, 5.0);
  const IndexArray ids{{2, 4}, {0, 3, 6, 1, 2, 2, 0, 5}};
  const Array got = next_token_logprobs(logits, ids, Numerics(Precision::F64));
  REQUIRE(got.shape == Shape{2, 3});
  for (int64_t b = 0; b < 2; ++b)
    for (int64_t s = 0; s < 3; ++s) {
      const double* row = logits.row(b * 4 + s);
      double sum = 0;
      for (int64_t v = 0; v < 7; ++v) sum += std::exp(row[v]);
      const int64_t next = ids.data[static_cast<size_t>(b * 4 + s + 1)];
      CAPTURE(b);
      CAPTURE(s);
      CHECK(close(got.data[static_cast<size_t>(b * 3 + s)], row[next] - std::log(sum)));
    }
}

TEST_CASE("next_token_logprobs: float32 whatever T, stable for huge logits, and fails closed") {
  const Array huge({1, 2, 3}, {1000.0, 1000.0, 0.0, 1000.0, 1000.0, 0.0});
  const IndexArray ids{{1, 2}, {0, 1}};
  const Array lp = next_token_logprobs(huge, ids, Numerics(Precision::BF16));
  CHECK(std::isfinite(lp.data[0]));
  CHECK(lp.data[0] == static_cast<double>(static_cast<float>(-std::log(2.0))));  // float32, not bfloat16

  CHECK_THROWS_AS(next_token_logprobs(huge, IndexArray{{1, 2}, {0, 3}}, Numerics(Precision::F64)), Error);
  CHECK_THROWS_AS(next_token_logprobs(huge, IndexArray{{1, 2}, {0, -1}}, Numerics(Precision::F64)), Error);
  CHECK_THROWS_AS(next_token_logprobs(Array({1, 1, 3}), IndexArray{{1, 1}, {0}}, Numerics(Precision::F64)), Error);
  CHECK_THROWS_AS(next_token_logprobs(huge, IndexArray{{2, 1}, {0, 1}}, Numerics(Precision::F64)), Error);
}

TEST_CASE("softcap and next-token logprob backward agree with central finite differences") {
  std::mt19937 rng(59);
  const Numerics f64(Precision::F64);
  const Array logits = random_array({2, 4, 7}, rng, -3.0, 3.0);
  const IndexArray ids{{2, 4}, {1, 6, 0, 6, 3, 3, 5, 2}};
  const Array dlp = random_array({2, 3}, rng);
  const Array dlogits = next_token_logprobs_backward(logits, ids, dlp);
  CHECK(test::gradient_close(dlogits.data, test::numeric_gradient([&](const Array& v) { return next_token_logprobs(v, ids, f64); }, logits, dlp), 1e-8));
  // Closed form: each row's gradient sums to 0 (onehot and softmax both sum to 1); the last
  // position scores nothing.
  for (int64_t r = 0; r < 8; ++r) {
    double sum = 0;
    for (int64_t v = 0; v < 7; ++v) sum += dlogits.row(r)[v];
    CHECK(std::abs(sum) < 1e-15);
  }
  for (int64_t v = 0; v < 7; ++v) CHECK(dlogits.row(3)[v] == 0.0);
  Array dy = random_array({2, 4, 7}, rng);
  const Array upstream = dy;
  softcap_backward(logits, 2.5, dy);
  CHECK(test::gradient_close(dy.data, test::numeric_gradient([&](const Array& v) {
    Array capped = v;
    softcap(capped, 2.5, f64);
    return capped;
  }, logits, upstream), 1e-8));
}

}  // namespace parity::ops
