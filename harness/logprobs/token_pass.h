// The one pass over a run's tokens that every logprob metric comes from (metrics.cpp turns its
// sums into metrics). A large run is cut into chunks of about LogprobOptions::chunk_tokens tokens
// at sequence boundaries, fixed by the run alone; the cores take chunks as they come free, and the
// chunks' sums are merged in chunk order, so the result does not depend on the machine.
// Notation as metrics.h: Δ = lp_train − lp_rollout, r = clamp(Δ, ±20), w = exp(r).
#pragma once

#include <cstdint>
#include <map>
#include <utility>
#include <vector>

#include "logprobs/metrics.h"
#include "logprobs/quantiles.h"

namespace parity::harness {

inline constexpr double kSafetyBound = 20.0;  // verl SAFETY_BOUND, miles: log-ratios clamped before exp

// Sums over every finite scored token.
struct TokenSums {
  int64_t n = 0;
  double abs_diff = 0, diff = 0, w = 0, w2 = 0, k3 = 0, prob_diff = 0, prob_diff_max = 0;
  double w_clamped = 0, w_clamped2 = 0;  // w clamped to [1/C, C]
  double prob_mean = 0, prob_m2 = 0;     // Welford's running mean and sum of squared deviations
  int64_t tis_clipped = 0, vetoed = 0;
};

// Sums over sequences (each with a finite scored token) of that sequence's statistics.
struct AcrossSequences {
  int64_t n = 0, vetoed = 0;
  double abs_diff = 0, ess = 0, k1 = 0, k3 = 0, chi2 = 0, tis_clipped = 0;
  double ppl_train = 0, ppl_rollout = 0, ppl_ratio = 0, log_ppl_diff = 0, log_ppl_abs_diff = 0;
};

struct TokenPassResult {
  TokenSums tokens;
  AcrossSequences sequences;
  int64_t scored_tokens = 0, nonfinite_tokens = 0;
  std::vector<TokenDiff> nonfinite;  // the first catastrophic_top, in run order
  double max_abs = -1;
  TokenAt max_at;                    // the first token with the largest |Δ|
  RankHistogram abs_diffs;           // |Δ|, for its percentiles
  std::vector<std::pair<int64_t, int64_t>> catastrophic;  // (sequence, index) with |Δ| over the threshold
};

TokenAt token_at(const LogprobRun& run, int64_t sequence, int64_t index);
TokenDiff token_diff(const LogprobRun& run, int64_t sequence, int64_t index);

// Whether a scored token takes part in the metrics: both logprobs and Δ finite.
bool finite_token(double train, double rollout);

TokenPassResult pass_over_tokens(const LogprobRun& run, const LogprobOptions& options);

// |Δ| of every finite scored token whose histogram bin is flagged in `wanted`, by bin.
std::map<uint32_t, std::vector<double>> collect_abs_diffs(const LogprobRun& run, const LogprobOptions& options,
                                                         const std::vector<uint8_t>& wanted);

}  // namespace parity::harness
