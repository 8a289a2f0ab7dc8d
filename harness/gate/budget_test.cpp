#include "gate/budget.h"

#include <doctest/doctest.h>

#include "errors.h"

namespace parity::harness {

TEST_CASE("budget: a floor_ratio limit takes min_rel_l2, and only it does") {
  const Budget b = parse_budget("[chained]\ndefault = { floor_ratio = 8, min_rel_l2 = 2.4e-7 }\n", "b.toml");
  const Limit& l = *b.modes.at(Mode::kChained).float_default;
  CHECK(l.metric == Metric::kFloorRatio);
  CHECK(l.value == 8);
  CHECK(l.min_rel_l2 == doctest::Approx(2.4e-7));
  CHECK(l.str() == "rel_l2 <= max(8 x floor, 2.4e-07)");
  CHECK_THROWS_WITH_AS(parse_budget("[chained]\ndefault = { rel_l2 = 1e-4, min_rel_l2 = 1e-7 }\n", "b.toml"),
                       doctest::Contains("min_rel_l2 belongs to a floor_ratio limit"), InputError);
  CHECK_THROWS_WITH_AS(parse_budget("[chained]\ndefault = { floor_ratio = 0 }\n", "b.toml"),
                       doctest::Contains("floor_ratio = 0"), InputError);
  CHECK_THROWS_WITH_AS(parse_budget("[chained]\ndefault = { floor_ratio = 4, min_rel_l2 = -1 }\n", "b.toml"),
                       doctest::Contains("min_rel_l2"), InputError);
  CHECK_THROWS_WITH_AS(parse_budget("[chained]\ndefault = { floor_ratio = 4, rel_l2 = 1e-5 }\n", "b.toml"),
                       doctest::Contains("exactly one metric"), InputError);
}

TEST_CASE("budget: the built-in float32 chained default is relative to the noise floor, isolated stays absolute") {
  const Budget b = builtin_budget("float32");
  CHECK(b.modes.at(Mode::kChained).float_default->metric == Metric::kFloorRatio);
  CHECK(b.modes.at(Mode::kChained).float_default->min_rel_l2 > 0);  // a zero floor must not demand exactness
  CHECK(b.modes.at(Mode::kIsolated).float_default->metric == Metric::kRelL2);
  // parity compare has no floor (yet): it keeps an absolute bound rather than failing every hook.
  CHECK(b.modes.at(Mode::kCompare).float_default->metric == Metric::kRelL2);
}

}  // namespace parity::harness
