// The one per-hook gate, shared by `parity check` (replay_sink.cpp: the reference against HF) and
// `parity compare` (compare.cpp: a target dump against a base dump). Every rule that decides a
// hook's status lives here: a [[skip]] covers it, the budget picks its limit, an empty comparison
// or a NaN/Inf fails before any limit is consulted, the gated metric against the limit, and the
// budget entries that matched nothing fail the run (a stale budget is a bug).
#pragma once

#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "gate/budget.h"
#include "gate/tensor_metrics.h"
#include "run/check.h"

namespace parity::harness {

// The two sides of a comparison as messages name them: check's "reference" against "HF",
// compare's "target" against "base". The second is the one rel_l2 divides by.
struct Sides {
  std::string_view candidate, expected;
};
inline constexpr Sides kCheckSides{"reference", "HF"};
inline constexpr Sides kCompareSides{"target", "base"};

// When a [[skip]] entry covers the hook: marks it skipped with the entry's reason and returns true.
bool apply_skip(HookResult& r, const Budget& budget);
// Sets the limit that gates the hook in `mode` (r.is_top_k chooses the kind) and the rule it comes from.
void assign_limit(HookResult& r, const Budget& budget, Mode mode);
// "shape mismatch: reference [2, 3] vs HF [2, 4]".
std::string shape_mismatch(const Shape& candidate, const Shape& expected, Sides sides);
// Gates float metrics on r.limit: no elements or any NaN/Inf fail with their own message.
void gate_floats(HookResult& r, FloatMetrics metrics, Sides sides);
// Gates a top-k index comparison on r.limit (tokens_differ); a failure names the first token.
void gate_top_k(HookResult& r, TopKMetrics metrics);
// Budget rules of `mode` and skips that matched no result of the run, as run problems. Skips apply
// to every mode: one that matches a name in `elsewhere` (what the fixture holds for the other
// modes: the forward's hooks in a gradient run, the gradients in a forward run) is used there.
// one_sided (compare): the rows only one dump holds, which [[one_side]] entries must match (or a
// name in `elsewhere`).
void add_unused_budget_entries(const Budget& budget, Mode mode, const std::vector<HookResult>& results,
                               std::vector<std::string>& problems, const std::vector<std::string>& elsewhere = {},
                               const std::set<std::string>* one_sided = nullptr);
// The built-in default of compare and grad.compare gates against the floor; where the reference gave
// none for this row it falls back to the section's fixed limit (budget.h no_floor_default). A rule
// a file states is kept as it is: a floor_ratio rule without a floor fails closed (gate_floats).
void use_no_floor_default(HookResult& r, const Budget& budget, Mode mode);

}  // namespace parity::harness
