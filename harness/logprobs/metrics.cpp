#include "logprobs/metrics.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <map>

#include <fmt/format.h>

#include "errors.h"
#include "logprobs/quantiles.h"
#include "logprobs/token_pass.h"

namespace parity::harness {

namespace {

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

void check_options(const LogprobOptions& o) {
  if (!(o.is_threshold > 1) || !std::isfinite(o.is_threshold))
    throw InputError(fmt::format("is_threshold (C) must be a finite number > 1, got {}", o.is_threshold));
  if (!(o.veto_threshold > 0 && o.veto_threshold < 1))
    throw InputError(fmt::format("veto_threshold (τ) must be in (0, 1), got {}", o.veto_threshold));
  if (!(o.catastrophic_threshold >= 0) || !std::isfinite(o.catastrophic_threshold))
    throw InputError(fmt::format("catastrophic_threshold must be a finite number >= 0, got {}",
                                 o.catastrophic_threshold));
  if (o.catastrophic_top < 0 || o.context < 0 || o.chunk_tokens < 1)
    throw InputError("catastrophic_top and context must be >= 0, chunk_tokens >= 1");
}

class MetricList {
 public:
  MetricList(const LogprobRun& run, const LogprobOptions& options, LogprobSummary& summary)
      : run_(run), o_(options), s_(summary) {}

  void finish(TokenPassResult& p) {
    s_.scored_tokens = p.scored_tokens;
    s_.sequences_scored = p.sequences.n;
    s_.nonfinite_tokens = p.nonfinite_tokens;
    s_.nonfinite = std::move(p.nonfinite);
    s_.abs_diff_max_at = p.max_at;
    add_metrics(p);
    rank_catastrophic(p);
  }

 private:
  void add_metrics(const TokenPassResult& p);
  void rank_catastrophic(TokenPassResult& p);
  void add(const char* name, double value, std::string convention) {
    s_.metrics.push_back({name, value, std::move(convention)});
  }

  const LogprobRun& run_;
  const LogprobOptions& o_;
  LogprobSummary& s_;
};

void MetricList::add_metrics(const TokenPassResult& p) {
  const TokenSums& tok = p.tokens;
  const AcrossSequences& q = p.sequences;
  // With no finite token every sum is 0, so every mean is 0/0 = NaN: undefined, never 0.
  const double n = static_cast<double>(tok.n), b = static_cast<double>(q.n);
  const auto tok_mean = [&](double sum) { return sum / n; };
  const auto seq_mean = [&](double sum) { return sum / b; };
  add("abs_diff_seq_mean", seq_mean(q.abs_diff),
      "slime/miles train_rollout_logprob_abs_diff: mean over sequences of each one's mean |Δ| over its scored "
      "tokens (sequences without one are left out; slime divides by the whole batch)");
  add("abs_diff_token_mean", tok_mean(tok.abs_diff), "Σ|Δ| / N over all scored tokens (slime --calculate-per-token-loss)");
  const bool any = tok.n > 0;
  const std::vector<double> pct =
      any ? linear_percentiles(p.abs_diffs, {50, 90, 99},
                               [&](const std::vector<uint8_t>& wanted) { return collect_abs_diffs(run_, o_, wanted); })
          : std::vector<double>(3, kNaN);
  add("abs_diff_median", pct[0], "median of |Δ| over scored tokens (numpy linear interpolation)");
  add("abs_diff_p90", pct[1], "90th percentile of |Δ| (numpy linear interpolation)");
  add("abs_diff_p99", pct[2], "99th percentile of |Δ| (numpy linear interpolation)");
  add("abs_diff_max", any ? p.max_abs : kNaN, "max |Δ|; its token is abs_diff_max_at");
  add("diff_mean", tok_mean(tok.diff), "mean Δ = lp_train − lp_rollout over scored tokens (signed bias)");
  add("ess_seq_mean", seq_mean(q.ess),
      "miles ess_ratio: per sequence (Σw)² / (N_i · max(Σw², 1e-8)), w = exp(clamp(Δ, ±20)), averaged over sequences");
  const double mean_wc = tok.w_clamped / n, mean_w = tok.w / n;
  add("ess_batch", 1 / (tok.w_clamped2 / n / ((mean_wc + 1e-8) * (mean_wc + 1e-8))),
      fmt::format("verl rollout_is_eff_sample_size: 1 / mean((w̃ / (mean(w̃) + 1e-8))²) over all scored tokens, "
                  "w̃ = clamp(w, 1/C, C), C = {:g}", o_.is_threshold));
  add("ess_batch_unclamped", 1 / (tok.w2 / n / ((mean_w + 1e-8) * (mean_w + 1e-8))),
      "ess_batch with w unclamped (only the ±20 safety clamp)");
  add("kl_k1", tok_mean(-tok.diff), "verl rollout_corr/kl: mean of lp_rollout − lp_train over tokens, KL(π_rollout‖π_train)");
  add("kl_k1_seq_mean", seq_mean(q.k1), "kl_k1 per sequence, averaged over sequences (slime mis.py)");
  add("kl_k3", tok_mean(tok.k3), "verl k3_kl: mean of exp(r) − r − 1 over tokens, r = clamp(Δ, ±20)");
  add("kl_k3_seq_mean", seq_mean(q.k3), "kl_k3 per sequence, averaged over sequences (miles train_rollout_kl, unclamped result)");
  add("chi2_token", tok_mean(tok.w2) - 1, "verl chi2_token: mean of exp(2 clamp(Δ, ±20)) over tokens − 1");
  add("chi2_seq", seq_mean(q.chi2) - 1, "verl chi2_seq: mean over sequences of exp(2 clamp(Σ_t Δ, ±20)) − 1");
  add("ppl_train", seq_mean(q.ppl_train), "verl training_ppl: mean over sequences of exp(−mean lp_train)");
  add("ppl_rollout", seq_mean(q.ppl_rollout), "verl rollout_ppl: mean over sequences of exp(−mean lp_rollout)");
  add("ppl_ratio", seq_mean(q.ppl_ratio), "verl ppl_ratio: mean over sequences of ppl_train_i / ppl_rollout_i");
  add("log_ppl_diff", seq_mean(q.log_ppl_diff), "verl log_ppl_diff: mean over sequences of mean lp_rollout − mean lp_train");
  add("log_ppl_abs_diff", seq_mean(q.log_ppl_abs_diff), "verl log_ppl_abs_diff: mean over sequences of |log_ppl_diff_i|");
  add("prob_diff_mean", tok_mean(tok.prob_diff), "verl training/rollout_probs_diff_mean: mean |exp(lp_train) − exp(lp_rollout)|");
  add("prob_diff_max", any ? tok.prob_diff_max : kNaN, "verl rollout_probs_diff_max: max |exp(lp_train) − exp(lp_rollout)|");
  add("prob_diff_std", tok.n >= 2 ? std::sqrt(tok.prob_m2 / (n - 1)) : kNaN,
      "verl rollout_probs_diff_std: sample std (N − 1, as torch.std) of |exp(lp_train) − exp(lp_rollout)|");
  add("tis_clip_fraction", tok_mean(static_cast<double>(tok.tis_clipped)),
      fmt::format("fraction of all tokens with π_train/π_rollout > C (Δ > ln C), C = {:g} (slime tis_clipfrac "
                  "with --calculate-per-token-loss)", o_.is_threshold));
  add("tis_clip_fraction_seq_mean", seq_mean(q.tis_clipped),
      fmt::format("slime tis_clipfrac: each sequence's fraction of tokens with π_train/π_rollout > C, averaged over "
                  "sequences, C = {:g}", o_.is_threshold));
  add("veto_token_fraction", tok_mean(static_cast<double>(tok.vetoed)),
      fmt::format("verl rollout_is_catastrophic_token_fraction: fraction of all tokens with π_train/π_rollout < τ "
                  "(Δ < ln τ), τ = {:g}", o_.veto_threshold));
  add("veto_seq_fraction", seq_mean(static_cast<double>(q.vetoed)),
      fmt::format("fraction of sequences with at least one token under τ = {:g} (slime rs_catastrophic_seq_fraction)",
                  o_.veto_threshold));
  add("catastrophic_tokens", static_cast<double>(p.catastrophic.size()),
      fmt::format("number of scored tokens with |Δ| > {:g} nats (listed worst first)", o_.catastrophic_threshold));
  add("nonfinite_tokens", static_cast<double>(p.nonfinite_tokens),
      "scored tokens whose logprob is NaN or ±Inf on either side: left out of every metric, and always a failure");
}

// The worst catastrophic_top catastrophic tokens, by |Δ| descending (a tie: the earlier token).
void MetricList::rank_catastrophic(TokenPassResult& p) {
  s_.catastrophic_count = static_cast<int64_t>(p.catastrophic.size());
  const auto worse = [&](const std::pair<int64_t, int64_t>& x, const std::pair<int64_t, int64_t>& y) {
    const double ax = std::abs(run_.train[static_cast<size_t>(x.second)] - run_.rollout[static_cast<size_t>(x.second)]);
    const double ay = std::abs(run_.train[static_cast<size_t>(y.second)] - run_.rollout[static_cast<size_t>(y.second)]);
    return ax > ay || (ax == ay && x.second < y.second);
  };
  const auto listed = std::min<size_t>(p.catastrophic.size(), static_cast<size_t>(o_.catastrophic_top));
  std::partial_sort(p.catastrophic.begin(), p.catastrophic.begin() + static_cast<std::ptrdiff_t>(listed),
                    p.catastrophic.end(), worse);
  for (size_t i = 0; i < listed; ++i)
    s_.catastrophic.push_back(token_diff(run_, p.catastrophic[i].first, p.catastrophic[i].second));
}

}  // namespace

const LogprobMetric* LogprobSummary::find(const std::string& name) const {
  for (const LogprobMetric& m : metrics)
    if (m.name == name) return &m;
  return nullptr;
}

const std::vector<std::string>& logprob_metric_names() {
  static const std::vector<std::string> names = [] {
    LogprobRun one;  // the smallest valid run: one sequence of two tokens, the second scored
    one.input_ids = {0, 0};
    one.seq_offsets = {0, 2};
    one.loss_mask = {0, 1};
    one.train = one.rollout = {0.0, -1.0};
    std::vector<std::string> out;
    for (const LogprobMetric& m : compute_logprob_metrics(one, {}).metrics) out.push_back(m.name);
    return out;
  }();
  return names;
}

LogprobSummary compute_logprob_metrics(const LogprobRun& run, const LogprobOptions& options) {
  check_options(options);
  LogprobSummary summary;
  summary.tokens = run.tokens();
  summary.sequences = run.sequences();
  TokenPassResult pass = pass_over_tokens(run, options);
  MetricList(run, options, summary).finish(pass);
  return summary;
}

}  // namespace parity::harness
