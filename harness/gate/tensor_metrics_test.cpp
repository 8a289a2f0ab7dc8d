#include "gate/tensor_metrics.h"

#include <cmath>

#include <doctest/doctest.h>

namespace parity::harness {

TEST_CASE("compare_floats lists the worst elements, largest |ref − hf| first, NaN before any number") {
  std::vector<double> hf(20, 1.0), ref(20, 1.0);
  ref[3] = 1.5;   // 0.5
  ref[7] = 0.0;   // 1.0
  ref[11] = 1.25;  // 0.25
  ref[15] = 1.125;  // 0.125
  ref[16] = 1.0625;  // 0.0625
  ref[17] = 1.03125;  // 0.03125: the sixth, not listed
  FloatMetrics m = compare_floats(ref, hf);
  REQUIRE(m.worst.size() == kWorstElements);
  const std::vector<int64_t> order = {7, 3, 11, 15, 16};
  for (size_t i = 0; i < order.size(); ++i) CHECK(m.worst[i].index == order[i]);
  CHECK(m.worst[0].ref == 0.0);
  CHECK(m.worst[0].hf == 1.0);
  CHECK(m.worst[0].index == m.max_abs_index);

  ref[19] = NAN;
  m = compare_floats(ref, hf);
  CHECK(m.worst[0].index == 19);
  CHECK(m.worst[1].index == 7);

  // Fewer elements than slots: every element listed once.
  m = compare_floats(std::vector<double>{1, 2}, std::vector<double>{1, 2.5});
  REQUIRE(m.worst.size() == 2);
  CHECK(m.worst[0].index == 1);
}

TEST_CASE("compare_top_k: with a second side's scores, a token is a near-tie when either side says so") {
  const IndexArray a{{2, 1}, {0, 0}}, b{{2, 1}, {1, 1}};  // both tokens swap expert 0 for expert 1
  const Array close({2, 2}, {0.5, 0.5 + 1e-9, 0.1, 0.9});  // token 0 a tie, token 1 not
  const Array far({2, 2}, {0.2, 0.8, 0.5, 0.5 + 1e-9});    // token 0 not, token 1 a tie
  const TopKMetrics one_side = compare_top_k(a, b, close, 1e-5);
  CHECK(one_side.near_ties == 1);
  CHECK(one_side.differ == 1);
  const TopKMetrics both = compare_top_k(a, b, close, 1e-5, &far);
  CHECK(both.near_ties == 2);
  CHECK(both.differ == 0);
  CHECK(compare_top_k(b, a, far, 1e-5, &close).differ == 0);  // the order of the sides changes nothing
}

TEST_CASE("compare_top_k / resolve_near_ties: a swap within factor x the token's floor drift is a near-tie") {
  const IndexArray ref{{2, 1}, {0, 0}}, hf{{2, 1}, {1, 1}};  // both tokens swap expert 0 for expert 1
  const Array scores({2, 2}, {0.50, 0.49, 0.50, 0.40});      // gaps 0.01 and 0.10: beyond near_tie_rel
  const Array second({2, 2}, {0.501, 0.49, 0.501, 0.40});    // the second opinion drifts 1e-3 on each
  CHECK(compare_top_k(ref, hf, scores, 1e-5).differ == 2);  // without the floor: two real differences
  const FloorTie tie{&second, 16};                           // 16 x 1e-3 covers 0.01, not 0.10
  const TopKMetrics m = compare_top_k(ref, hf, scores, 1e-5, nullptr, tie);
  CHECK(m.near_ties == 1);
  CHECK(m.differ == 1);
  CHECK(m.first_token == 1);
  const IndexArray followed = resolve_near_ties(ref, hf, scores, 1e-5, tie);
  CHECK(followed.data == std::vector<int64_t>{1, 0});  // HF's choice at the tie only
  const Array nan_second({2, 2}, {NAN, 0.49, 0.501, 0.40});  // a drift that is not finite explains nothing
  const FloorTie broken{&nan_second, 16};
  CHECK(compare_top_k(ref, hf, scores, 1e-5, nullptr, broken).differ == 2);
}

}  // namespace parity::harness
