// `parity check`: replay a fixture through the reference and gate every hook on its budget.
//   isolated  every module recomputed from HF's own dumped inputs (its own error, no drift);
//             experts and whole layers replay HF's top-k indices (routing replay).
//   chained   the reference runs end to end from input_ids (accumulated drift, own routing).
// Fail closed: a hook the reference emits that the fixture lacks, a fixture hook the reference
// cannot produce, NaN/Inf, a shape or kind mismatch, a module that cannot be replayed, a budget
// rule or skip that matches nothing, or an empty comparison each fail the run.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "gate/baseline.h"
#include "gate/budget.h"
#include "run/compare_result.h"
#include "run/expectation.h"
#include "hook_key.h"
#include "io/fixture.h"
#include "gate/tensor_metrics.h"
#include "models/variants.h"
#include "numerics.h"
#include "weights.h"

namespace parity::harness {

enum class Status { kPass, kFail, kSkipped };
std::string_view status_name(Status status);

struct HookResult {
  std::string hook;
  Status status = Status::kFail;
  bool is_top_k = false;
  Shape shape;
  std::optional<FloatMetrics> floats;
  // The noise floor (run/noise_floor.h): the float-accumulating second opinion against the
  // reference on the same inputs; absent when it was not computed or could not be.
  std::optional<FloatMetrics> floor;
  std::optional<TopKMetrics> top_k;
  std::optional<Limit> limit;
  std::optional<double> measured;  // the gated metric's value
  std::string budget_rule;         // "cases/x.toml:12", or "default"
  std::string message;             // why it failed or was skipped
  std::string note;                // what was left out of the comparison and why (parity compare's near-tie tokens)
  // Forward order: the fixture position of the hook (or, for a hook the fixture lacks, of the
  // fixture hook emitted just before it), then the order the reference emitted them.
  int64_t order = 0;
  int64_t sequence = 0;
  // parity compare only (compare_result.h): a mixed-dtype pair's metrics at the lower precision,
  // and the reference replayed on each side's own inputs.
  std::optional<LowerPrecision> lower_precision;
  std::optional<ReferenceVerdict> reference;

  // The value of `metric` among this hook's metrics (tokens_differ: a top-k hook's; floor_ratio:
  // NaN without a floor, so it never passes).
  double value_of(Metric metric) const;
  // rel_l2 over the floor, as reported beside every measured error (inf above a zero floor, NaN
  // without floats or floor).
  double floor_ratio() const;
  // Gates `measured` on `limit`: sets measured and status, and the message when over budget.
  void gate(double measured);
};

struct CheckReport {
  std::string fixture;
  Mode mode = Mode::kIsolated;
  Precision precision = Precision::F64;
  std::string budget_source;
  std::vector<HookResult> hooks;      // forward order
  std::vector<std::string> problems;  // failures that belong to no hook (budget rules, aborted runs)
  // The two sides every metric compares: the reference ("ref") against HF ("hf"); parity compare
  // sets "target" (a second dump) against "base", and target to the target's path (fixture: the base's).
  std::string ref_side = "reference", hf_side = "HF";
  std::string target;
  std::vector<std::string> notes;  // information that is not a failure (parity compare's three-way replay)

  bool passed() const;
  const HookResult* first_failure() const;
  int64_t count(Status status) const;
};

struct CheckOptions {
  Mode mode = Mode::kIsolated;
  std::optional<Precision> precision;     // nullopt: the fixture's run dtype (HF's cast points)
  std::string hooks_glob;                 // "" = every hook
  const WeightSource* weights = nullptr;  // nullptr: the fixture's /weights
  Variants variants;                      // known bugs the reference reproduces (parity diagnose); none = HF
  bool noise_floor = true;                // also run the float-accumulating second opinion (run/noise_floor.h)
};

CheckReport run_check(const Fixture& fixture, const Budget& budget, const CheckOptions& options);

// A check of one or more modes, its comparison to a baseline when one was given, and, for a
// bug-zoo case, whether its gate failed where the case expects.
struct CheckResult {
  std::vector<CheckReport> runs;
  std::optional<BaselineReport> baseline;
  std::optional<ExpectationReport> expectation;
  std::vector<std::string> warnings;  // for the user, not the gate (a baseline not written)

  // Every run passed (with an expectation: every run failed first where expected), and the
  // baseline (if any) too.
  bool passed() const;
};

// What a baseline keeps of a check: rel_l2 and max_abs of every compared float hook, tokens_differ
// and near_ties of every top-k index hook, per mode (skipped hooks have no metrics).
std::vector<MetricValue> baseline_values(const std::vector<CheckReport>& runs);


}  // namespace parity::harness
