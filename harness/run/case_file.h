// A case (cases/**/*.toml): what CI gates. The one parser of case files: the TOML is read once and
// every section goes to its own reader (budget.h, baseline.h [bands], logprobs/gate.h [logprobs],
// expectation.h [expect]). A case states only what differs from the built-in budgets and bands.
//
// A check case (no [logprobs] table):
//   fixture   = "../golden/olmoe_base.h5"   path relative to the case file
//   modes     = ["isolated", "chained"]     optional; default: both
//   precision = "f32"                       optional; default: the fixture's run dtype
//   baseline  = "../golden/baselines/olmoe_base.json"   optional: gate drift from an accepted run
//   [isolated], [chained], [[skip]], near_tie_rel, [bands]   optional: over the built-in ones
//   [expect]                                optional: a bug-zoo case, whose gate must fail (expectation.h)
// A logprob case (a [logprobs] table, cases/logprobs/):
//   run = "x.h5"  or  train = "a.h5" + rollout = "b.h5" (or "reference" on one side)
//   tokenizer = "tokenizer.json"            optional
//   baseline = "x.json", [bands]            optional
//   [logprobs]                              the metric bounds (logprobs/gate.h), over the built-in one
#pragma once

#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include "gate/budget.h"
#include "logprobs/gate.h"
#include "logprobs/sources.h"
#include "numerics.h"
#include "run/expectation.h"

namespace parity::harness {

enum class CaseKind { kCheck, kLogprobs };

struct Case {
  std::filesystem::path path;
  CaseKind kind = CaseKind::kCheck;
  std::optional<std::filesystem::path> baseline;

  // kCheck
  std::filesystem::path fixture;
  std::vector<Mode> modes;
  std::optional<Precision> precision;
  std::optional<Expectation> expect;
  Budget budget;  // the file's own budget; effective_budget() lays it over the built-in one

  // kLogprobs
  LogprobSources sources;
  std::optional<std::filesystem::path> tokenizer;
  LogprobBudget logprob_budget;
};

// InputError "[case <path>] ..." (or "[budget <path>:<line>] ..." for a bad budget section) on
// anything malformed.
Case load_case(const std::filesystem::path& path);

}  // namespace parity::harness
