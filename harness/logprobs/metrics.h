// Train-vs-inference logprob metrics over a run's scored tokens, each with the convention of the
// framework that defined it (docs/logprobs.md "Metrics").
// Notation: Δ_t = lp_train − lp_rollout on scored token t; w_t = exp(clamp(Δ_t, ±20)) the
// importance weight π_train/π_rollout with the ±20 safety clamp verl and miles apply; sequence i
// has N_i scored tokens; "seq mean" = the mean over sequences (with N_i > 0) of per-sequence means.
// A token whose logprob is NaN or ±Inf on either side (or whose Δ overflows) is counted and listed,
// left out of every metric, and fails the gate (miles silently counts it as 0).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "logprobs/run.h"

namespace parity::harness {

struct LogprobOptions {
  double is_threshold = 2.0;           // C: verl rollout_is_threshold / slime --tis-clip default
  double veto_threshold = 1e-4;        // τ: slime --rs-veto-threshold (README: 1e-4 .. 1e-6)
  double catastrophic_threshold = 1.0; // |Δ| in nats above which a token is listed
  int64_t catastrophic_top = 20;       // tokens listed, catastrophic and non-finite (all are counted)
  int64_t context = 8;                 // tokens of context on each side of a listed token
  // Tokens per chunk of the parallel pass (token_pass.h): fixed by the run, not the machine, so
  // results do not depend on the core count. Not a budget option; tests lower it.
  int64_t chunk_tokens = int64_t{1} << 20;
};

struct LogprobMetric {
  std::string name;        // stable key, e.g. "abs_diff_seq_mean"
  double value = 0;        // NaN when undefined (e.g. a std of one token)
  std::string convention;  // what exactly was computed, and whose definition it is
};

// Where a token is: its sequence, its position in the sequence, and its flat index in the run.
struct TokenAt {
  int64_t sequence = -1, position = -1, index = -1;
};

struct TokenDiff {
  TokenAt at;
  int64_t token_id = 0;
  double train = 0, rollout = 0, diff = 0;  // diff = train − rollout
};

struct LogprobSummary {
  int64_t tokens = 0;             // in the run
  int64_t scored_tokens = 0;      // loss_mask 1 (finite or not)
  int64_t sequences = 0;
  int64_t sequences_scored = 0;   // with at least one finite scored token
  int64_t nonfinite_tokens = 0;
  std::vector<TokenDiff> nonfinite;     // the first catastrophic_top of them, in run order
  std::vector<LogprobMetric> metrics;   // in a fixed order (metric_names())
  TokenAt abs_diff_max_at;
  int64_t catastrophic_count = 0;       // |Δ| > catastrophic_threshold
  std::vector<TokenDiff> catastrophic;  // the worst catastrophic_top, by |Δ| descending

  const LogprobMetric* find(const std::string& name) const;
};

// Every metric name compute_logprob_metrics reports, in its order (budgets are checked against it).
const std::vector<std::string>& logprob_metric_names();

// Validates options (InputError) and computes every metric over run's scored tokens.
LogprobSummary compute_logprob_metrics(const LogprobRun& run, const LogprobOptions& options);

}  // namespace parity::harness
