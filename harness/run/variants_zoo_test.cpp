// End to end: every variant against its bug-zoo fixture (golden/zoo/<fixture.file>, dumped from HF
// with the same bug planted by harness/python/parity/zoo/patches.py). HF's math must fail the
// fixture first at the registry's first_failure (models/known_bugs.toml) and the variant must pass
// it, in both modes, under the built-in budget. A variant without its fixture fails.
#include <filesystem>

#include <doctest/doctest.h>

#include "run/check.h"
#include "io/fixture.h"
#include "models/variants.h"

namespace parity {

namespace {

const std::filesystem::path kZoo = std::filesystem::path(PARITY_SOURCE_DIR) / "golden" / "zoo";

harness::CheckReport check(const harness::Fixture& fixture, harness::Mode mode, Variants variants) {
  const harness::Budget budget = harness::builtin_budget(fixture.meta_string("dtype"));
  harness::CheckOptions options;
  options.mode = mode;
  options.variants = variants;
  return harness::run_check(fixture, budget, options);
}

std::string first_failure(const harness::CheckReport& r) {
  if (const harness::HookResult* h = r.first_failure()) return h->hook + ": " + h->message;
  return r.problems.empty() ? "-" : r.problems.front();
}

}  // namespace

TEST_CASE("variants: each zoo fixture fails HF's math and passes both modes under its variant") {
  for (const VariantInfo& v : known_variants()) {
    const std::filesystem::path path = kZoo / v.fixture.file;
    CAPTURE(v.name);
    REQUIRE_MESSAGE(std::filesystem::exists(path), "every variant needs its zoo fixture (references/models/known_bugs.toml: how to add a bug)");
    const harness::Fixture fixture(path);
    for (harness::Mode mode : {harness::Mode::kIsolated, harness::Mode::kChained}) {
      CAPTURE(harness::mode_name(mode));
      const harness::CheckReport hf = check(fixture, mode, {});
      CHECK_FALSE(hf.passed());
      const std::string& expected =
          mode == harness::Mode::kIsolated ? v.first_failure_isolated : v.first_failure_chained;
      const harness::HookResult* first = hf.first_failure();
      REQUIRE_MESSAGE(first, "HF's math must fail a hook: ", first_failure(hf));
      CHECK_MESSAGE(harness::glob_match(expected, first->hook), "first failure ", first->hook, ", registry says ",
                    expected);
      const harness::CheckReport under = check(fixture, mode, Variants::only(v.variant));
      INFO("first failure under the variant: ", first_failure(under));
      CHECK(under.passed());
    }
  }
}

}  // namespace parity
