// A case (cases/*.toml): what CI checks. A budget file (budget.h) plus
//   fixture   = "../golden/olmoe_base.h5"   path relative to the case file
//   modes     = ["isolated", "chained"]     each needs its budget section
//   precision = "f32"                       optional; default: the fixture's run dtype
//   baseline  = "../golden/baselines/olmoe_base.json"   optional: gate drift from an accepted run
//   [expect]                                optional: a bug-zoo case, whose gate must fail (expectation.h)
#pragma once

#include <filesystem>
#include <optional>
#include <vector>

#include "gate/budget.h"
#include "run/expectation.h"
#include "numerics.h"

namespace parity::harness {

struct Case {
  std::filesystem::path path;
  std::filesystem::path fixture;
  std::vector<Mode> modes;
  std::optional<Precision> precision;
  std::optional<std::filesystem::path> baseline;
  std::optional<Expectation> expect;
  Budget budget;
};

Case load_case(const std::filesystem::path& path);  // InputError on anything malformed

}  // namespace parity::harness
