// The logprob gate: bounds on named metrics (metrics.h) from a budget TOML's [logprobs] table,
//   [logprobs]
//   abs_diff_seq_mean = { max = 0.02 }   # one key per gated metric: max and/or min, finite
//   ess_seq_mean = { min = 0.99 }
//   [logprobs.options]                   # optional: thresholds the metrics use (LogprobOptions)
//   catastrophic_threshold = 1.0
// A metric name the harness does not compute, an empty bound, a non-finite limit or an unknown
// key is an InputError (exit 2). A gated metric that is NaN fails; non-finite logprobs fail the
// run whatever the budget says.
#pragma once

#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include "gate/baseline.h"
#include "logprobs/listing.h"
#include "logprobs/metrics.h"
#include "logprobs/token_text.h"

namespace parity::harness {

struct MetricBound {
  std::string metric;
  std::optional<double> min, max;
  std::string where;  // "cases/logprobs/x.toml:7", or "built-in"

  bool allows(double value) const;  // NaN never passes
  std::string str() const;          // "<= 0.02", ">= 0.99", "in [0.9, 1]"
};

struct LogprobBudget {
  std::string source;
  std::vector<MetricBound> bounds;
  LogprobOptions options;
  BandBudget bands;  // [bands]: how far each metric may move from a baseline (baseline.h)
};

// slime's CI default: train_rollout_logprob_abs_diff <= 0.1 (docs/logprobs.md "Logprob budgets and cases").
LogprobBudget builtin_logprob_budget();
// A budget file's TOML: a [logprobs] table and nothing else, or (is_case) also a logprob case's
// keys (case.h). InputError when the table is absent or anything is malformed.
LogprobBudget parse_logprob_budget(const std::string& toml_text, const std::string& source, bool is_case = false);
LogprobBudget parse_logprob_budget(const toml::table& root, const std::string& source, bool is_case);
LogprobBudget load_logprob_budget(const std::filesystem::path& path);

struct MetricVerdict {
  std::string metric;
  double value = 0;
  MetricBound bound;
  bool passed = false;
};

struct LogprobReport {
  std::string source, train_source, rollout_source, budget_source;
  LogprobOptions options;
  LogprobSummary summary;
  std::vector<MetricVerdict> verdicts;  // in the metrics' order
  std::vector<std::string> problems;    // failures no bound names (non-finite logprobs)
  std::vector<ListedToken> catastrophic, nonfinite;
  std::optional<TokenTexts> texts;      // with --tokenizer
  std::optional<BaselineReport> baseline;  // with a baseline
  std::vector<std::string> warnings;       // for the user, not the gate (a baseline not written)

  bool passed() const;  // every gated metric passed, logprobs are finite, the baseline (if any) passed
};

// What a baseline keeps of a logprob run: every metric (metrics.h), by name.
std::vector<MetricValue> baseline_values(const LogprobReport& report);

// Metrics, verdicts and token lists; with a tokenizer, the listed tokens' texts too.
LogprobReport gate_logprobs(const LogprobRun& run, const LogprobBudget& budget,
                            const std::optional<std::filesystem::path>& tokenizer = std::nullopt);

}  // namespace parity::harness
