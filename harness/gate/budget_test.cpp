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
}

TEST_CASE("budget: compare gates against its floor, with a fixed fallback a budget file's default replaces") {
  for (const char* dtype : {"float32", "bfloat16"}) {
    const Budget b = builtin_budget(dtype);
    const ModeBudget& compare = b.modes.at(Mode::kCompare);
    CHECK(compare.float_default->metric == Metric::kFloorRatio);
    REQUIRE(compare.no_floor_default.has_value());
    CHECK(compare.no_floor_default->metric == Metric::kRelL2);
  }
  const Budget file = parse_budget("[compare]\ndefault = { rel_l2 = 3e-4 }\n", "b.toml");
  const Budget b = effective_budget(file, "float32");
  CHECK(b.modes.at(Mode::kCompare).float_default->value == doctest::Approx(3e-4));
  CHECK_FALSE(b.modes.at(Mode::kCompare).no_floor_default.has_value());  // the file's default is the whole rule
  // A file that leaves the compare default alone keeps the built-in one and its fallback.
  const Budget rules_only = effective_budget(parse_budget("[compare]\n", "b.toml"), "float32");
  CHECK(rules_only.modes.at(Mode::kCompare).no_floor_default.has_value());
}

TEST_CASE("budget: the gradient sections sit under [grad], grad.compare among them, and name their mode") {
  const Budget b = parse_budget("[grad.compare]\ndefault = { floor_ratio = 2, min_rel_l2 = 1e-3 }\n"
                                "[[grad.compare.rule]]\nhooks = \"loss\"\nrel_l2 = 1e-6\n", "b.toml");
  REQUIRE(b.modes.count(Mode::kGradCompare) == 1);
  CHECK(b.modes.at(Mode::kGradCompare).rules.size() == 1);
  CHECK(b.limit_for(Mode::kGradCompare, "loss", false).metric == Metric::kRelL2);
  CHECK(mode_name(Mode::kGradCompare) == "grad.compare");
  CHECK(is_grad_mode(Mode::kGradCompare));
  CHECK(is_compare_mode(Mode::kGradCompare));
  CHECK_FALSE(is_compare_mode(Mode::kGradChained));
  CHECK(grad_mode_of(Mode::kCompare) == Mode::kGradCompare);
  CHECK_FALSE(mode_from_name("grad.compare").has_value());  // a compare, not a check mode of a case
  CHECK_THROWS_WITH_AS(parse_budget("[grad.bogus]\n", "b.toml"), doctest::Contains("grad.compare"), InputError);
  for (const char* dtype : {"float32", "bfloat16"}) {
    const Budget builtin = builtin_budget(dtype);
    const ModeBudget& grad = builtin.modes.at(Mode::kGradCompare);
    CHECK(grad.float_default->metric == Metric::kFloorRatio);
    CHECK(grad.no_floor_default.has_value());
  }
}

}  // namespace parity::harness
