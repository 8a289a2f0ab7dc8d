// The three-way view of `parity compare`: the C++ reference replayed isolated on each dump's own
// inputs (its [isolated] check, or for gradients its [grad.isolated] one), so each row says which
// side departs from the exact math: "target", "base", "both", or "neither" (both agree with the
// reference on their own inputs: the difference comes from upstream). A row whose difference
// passes fails where a side departs from the reference at its run precision: a float32-vs-bf16
// difference is about one bf16 rounding per hook, the size of a bf16 cast-point bug, which the
// bf16 side's own replay catches where it lives (harness/cli/cli_compare_zoo_test.py).
#pragma once

#include <optional>
#include <string>

#include "gate/budget.h"
#include "run/check.h"

namespace parity::harness {

struct CompareOptions;

// Every float and top-k row of `report` (and every failed one) gets its ReferenceVerdict; side_mode:
// kIsolated for a forward compare, kGradIsolated for a gradient one.
void add_three_way(CheckReport& report, const Fixture& base, const Fixture& target, const CompareOptions& options,
                   Mode side_mode);

// "target", "base", "both", "neither", or "" when a side has no value.
std::string departs(std::optional<bool> base_within, std::optional<bool> target_within);

}  // namespace parity::harness
