#include "logprobs/metrics.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include <fmt/format.h>

#include "hdf5_file.h"  // InputError

namespace parity::harness {

namespace {

constexpr double kSafetyBound = 20.0;  // verl SAFETY_BOUND, miles: log-ratios clamped before exp
constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

double clamp_log_ratio(double r) { return std::clamp(r, -kSafetyBound, kSafetyBound); }

// Per-sequence sums over its finite scored tokens.
struct SequenceSums {
  int64_t n = 0;
  double abs_diff = 0, diff = 0, w = 0, w2 = 0, k3 = 0, train = 0, rollout = 0;
  bool vetoed = false;
};

// Token-level sums over every finite scored token.
struct TokenSums {
  int64_t n = 0;
  double abs_diff = 0, diff = 0, w2 = 0, k3 = 0, prob_diff = 0, prob_diff_max = 0;
  double w = 0, w_clamped = 0, w_clamped2 = 0;
  int64_t tis_clipped = 0, vetoed = 0;
};

// numpy.percentile's default ("linear"): sorted[(n - 1) q] interpolated; `values` is reordered.
double percentile(std::vector<double>& values, double q) {
  const double pos = q / 100.0 * static_cast<double>(values.size() - 1);
  const auto lo = static_cast<size_t>(std::floor(pos));
  std::nth_element(values.begin(), values.begin() + static_cast<std::ptrdiff_t>(lo), values.end());
  const double a = values[lo];
  if (lo + 1 >= values.size() || pos == static_cast<double>(lo)) return a;
  const double b = *std::min_element(values.begin() + static_cast<std::ptrdiff_t>(lo) + 1, values.end());
  const double t = pos - static_cast<double>(lo);
  return t < 0.5 ? a + (b - a) * t : b - (b - a) * (1 - t);  // numpy's _lerp, stable at both ends
}

TokenAt token_at(const LogprobRun& run, int64_t sequence, int64_t index) {
  return {sequence, index - run.seq_offsets[static_cast<size_t>(sequence)], index};
}

TokenDiff token_diff(const LogprobRun& run, int64_t sequence, int64_t index) {
  const auto t = static_cast<size_t>(index);
  return {token_at(run, sequence, index), run.input_ids[t], run.train[t], run.rollout[t],
          run.train[t] - run.rollout[t]};
}

void check_options(const LogprobOptions& o) {
  if (!(o.is_threshold > 1) || !std::isfinite(o.is_threshold))
    throw InputError(fmt::format("is_threshold (C) must be a finite number > 1, got {}", o.is_threshold));
  if (!(o.veto_threshold > 0 && o.veto_threshold < 1))
    throw InputError(fmt::format("veto_threshold (τ) must be in (0, 1), got {}", o.veto_threshold));
  if (!(o.catastrophic_threshold >= 0) || !std::isfinite(o.catastrophic_threshold))
    throw InputError(fmt::format("catastrophic_threshold must be a finite number >= 0, got {}",
                                 o.catastrophic_threshold));
  if (o.catastrophic_top < 0 || o.context < 0)
    throw InputError("catastrophic_top and context must be >= 0");
}

// The metrics of one pass over the tokens; appended to summary.metrics in logprob_metric_names() order.
class Accumulator {
 public:
  Accumulator(const LogprobRun& run, const LogprobOptions& options, LogprobSummary& summary)
      : run_(run), o_(options), s_(summary), log_c_(std::log(options.is_threshold)),
        log_tau_(std::log(options.veto_threshold)) {}

  void run() {
    abs_diffs_.reserve(static_cast<size_t>(run_.tokens()));
    for (int64_t seq = 0; seq < run_.sequences(); ++seq) sequence(seq);
    finish();
  }

 private:
  void sequence(int64_t seq) {
    SequenceSums q;
    for (int64_t i = run_.seq_offsets[static_cast<size_t>(seq)]; i < run_.seq_offsets[static_cast<size_t>(seq) + 1];
         ++i) {
      const auto t = static_cast<size_t>(i);
      if (!run_.loss_mask[t]) continue;
      ++s_.scored_tokens;
      const double lt = run_.train[t], lr = run_.rollout[t];
      if (!std::isfinite(lt) || !std::isfinite(lr)) {
        if (s_.nonfinite_tokens++ < o_.catastrophic_top) s_.nonfinite.push_back(token_diff(run_, seq, i));
        continue;
      }
      token(seq, i, lt, lr, q);
    }
    if (q.n == 0) return;
    ++s_.sequences_scored;
    const double n = static_cast<double>(q.n);
    seq_abs_diff_ += q.abs_diff / n;
    seq_ess_ += q.w * q.w / (n * std::max(q.w2, 1e-8));
    seq_k1_ += -q.diff / n;
    seq_k3_ += q.k3 / n;
    seq_chi2_ += std::exp(2 * clamp_log_ratio(q.diff));
    ppl_train_ += std::exp(-q.train / n);
    ppl_rollout_ += std::exp(-q.rollout / n);
    const double log_ppl_diff = q.rollout / n - q.train / n;
    ppl_ratio_ += std::exp(log_ppl_diff);
    log_ppl_diff_ += log_ppl_diff;
    log_ppl_abs_diff_ += std::abs(log_ppl_diff);
    seq_vetoed_ += q.vetoed ? 1 : 0;
  }

  void token(int64_t seq, int64_t i, double lt, double lr, SequenceSums& q) {
    const double d = lt - lr, a = std::abs(d), rc = clamp_log_ratio(d), w = std::exp(rc);
    const double k3 = w - rc - 1, p = std::abs(std::exp(lt) - std::exp(lr));
    const double wc = std::clamp(w, 1 / o_.is_threshold, o_.is_threshold);
    q.n += 1;
    q.abs_diff += a;
    q.diff += d;
    q.w += w;
    q.w2 += w * w;
    q.k3 += k3;
    q.train += lt;
    q.rollout += lr;
    tok_.n += 1;
    tok_.abs_diff += a;
    tok_.diff += d;
    tok_.w2 += w * w;
    tok_.k3 += k3;
    tok_.prob_diff += p;
    tok_.prob_diff_max = std::max(tok_.prob_diff_max, p);
    prob_diffs_.push_back(p);
    tok_.w += w;
    tok_.w_clamped += wc;
    tok_.w_clamped2 += wc * wc;
    tok_.tis_clipped += d > log_c_ ? 1 : 0;
    if (d < log_tau_) {
      ++tok_.vetoed;
      q.vetoed = true;
    }
    if (a > max_abs_) {
      max_abs_ = a;
      s_.abs_diff_max_at = token_at(run_, seq, i);
    }
    abs_diffs_.push_back(a);
    if (a > o_.catastrophic_threshold) catastrophic_.push_back({seq, i});
  }

  void add(const char* name, double value, std::string convention) {
    s_.metrics.push_back({name, value, std::move(convention)});
  }

  void finish();

  const LogprobRun& run_;
  const LogprobOptions& o_;
  LogprobSummary& s_;
  const double log_c_, log_tau_;
  TokenSums tok_;
  double seq_abs_diff_ = 0, seq_ess_ = 0, seq_k1_ = 0, seq_k3_ = 0, seq_chi2_ = 0;
  double ppl_train_ = 0, ppl_rollout_ = 0, ppl_ratio_ = 0, log_ppl_diff_ = 0, log_ppl_abs_diff_ = 0;
  int64_t seq_vetoed_ = 0;
  double max_abs_ = -1;
  std::vector<double> abs_diffs_, prob_diffs_;
  std::vector<std::pair<int64_t, int64_t>> catastrophic_;  // (sequence, index)
};

void Accumulator::finish() {
  const double n = static_cast<double>(tok_.n), b = static_cast<double>(s_.sequences_scored);
  const double nan_if_empty = tok_.n == 0 ? kNaN : 0.0;  // every token non-finite: no metric is defined
  const auto tok_mean = [&](double sum) { return sum / n + nan_if_empty; };
  const auto seq_mean = [&](double sum) { return sum / b + nan_if_empty; };
  add("abs_diff_seq_mean", seq_mean(seq_abs_diff_),
      "slime/miles train_rollout_logprob_abs_diff: mean over sequences of each one's mean |Δ| over its scored tokens");
  add("abs_diff_token_mean", tok_mean(tok_.abs_diff), "Σ|Δ| / N over all scored tokens (slime --calculate-per-token-loss)");
  std::vector<double>& a = abs_diffs_;
  const bool any = !a.empty();
  add("abs_diff_median", any ? percentile(a, 50) : kNaN, "median of |Δ| over scored tokens (numpy linear interpolation)");
  add("abs_diff_p90", any ? percentile(a, 90) : kNaN, "90th percentile of |Δ| (numpy linear interpolation)");
  add("abs_diff_p99", any ? percentile(a, 99) : kNaN, "99th percentile of |Δ| (numpy linear interpolation)");
  add("abs_diff_max", any ? max_abs_ : kNaN, "max |Δ|; its token is abs_diff_max_at");
  add("diff_mean", tok_mean(tok_.diff), "mean Δ = lp_train − lp_rollout over scored tokens (signed bias)");
  add("ess_seq_mean", seq_mean(seq_ess_),
      "miles ess_ratio: per sequence (Σw)² / (N_i · max(Σw², 1e-8)), w = exp(clamp(Δ, ±20)), averaged over sequences");
  const double mean_wc = tok_.w_clamped / n, mean_w = tok_.w / n;
  add("ess_batch", 1 / (tok_.w_clamped2 / n / ((mean_wc + 1e-8) * (mean_wc + 1e-8))) + nan_if_empty,
      fmt::format("verl rollout_is_eff_sample_size: 1 / mean((w̃ / (mean(w̃) + 1e-8))²) over all scored tokens, "
                  "w̃ = clamp(w, 1/C, C), C = {:g}", o_.is_threshold));
  add("ess_batch_unclamped", 1 / (tok_.w2 / n / ((mean_w + 1e-8) * (mean_w + 1e-8))) + nan_if_empty,
      "ess_batch with w unclamped (only the ±20 safety clamp)");
  add("kl_k1", tok_mean(-tok_.diff), "verl rollout_corr/kl: mean of lp_rollout − lp_train over tokens, KL(π_rollout‖π_train)");
  add("kl_k1_seq_mean", seq_mean(seq_k1_), "kl_k1 per sequence, averaged over sequences (slime mis.py)");
  add("kl_k3", tok_mean(tok_.k3), "verl k3_kl: mean of exp(r) − r − 1 over tokens, r = clamp(Δ, ±20)");
  add("kl_k3_seq_mean", seq_mean(seq_k3_), "kl_k3 per sequence, averaged over sequences (miles train_rollout_kl, unclamped result)");
  add("chi2_token", tok_mean(tok_.w2) - 1, "verl chi2_token: mean of exp(2 clamp(Δ, ±20)) over tokens − 1");
  add("chi2_seq", seq_mean(seq_chi2_) - 1, "verl chi2_seq: mean over sequences of exp(2 clamp(Σ_t Δ, ±20)) − 1");
  add("ppl_train", seq_mean(ppl_train_), "verl training_ppl: mean over sequences of exp(−mean lp_train)");
  add("ppl_rollout", seq_mean(ppl_rollout_), "verl rollout_ppl: mean over sequences of exp(−mean lp_rollout)");
  add("ppl_ratio", seq_mean(ppl_ratio_), "verl ppl_ratio: mean over sequences of ppl_train_i / ppl_rollout_i");
  add("log_ppl_diff", seq_mean(log_ppl_diff_), "verl log_ppl_diff: mean over sequences of mean lp_rollout − mean lp_train");
  add("log_ppl_abs_diff", seq_mean(log_ppl_abs_diff_), "verl log_ppl_abs_diff: mean over sequences of |log_ppl_diff_i|");
  add("prob_diff_mean", tok_mean(tok_.prob_diff), "verl training/rollout_probs_diff_mean: mean |exp(lp_train) − exp(lp_rollout)|");
  add("prob_diff_max", any ? tok_.prob_diff_max : kNaN, "verl rollout_probs_diff_max: max |exp(lp_train) − exp(lp_rollout)|");
  double var = 0;
  const double p_mean = tok_.prob_diff / n;
  for (double p : prob_diffs_) var += (p - p_mean) * (p - p_mean);
  add("prob_diff_std", tok_.n >= 2 ? std::sqrt(var / (n - 1)) : kNaN,
      "verl rollout_probs_diff_std: sample std (N − 1, as torch.std) of |exp(lp_train) − exp(lp_rollout)|");
  add("tis_clip_fraction", tok_mean(static_cast<double>(tok_.tis_clipped)),
      fmt::format("slime tis_clipfrac: fraction of tokens with π_train/π_rollout > C (Δ > ln C), C = {:g}", o_.is_threshold));
  add("veto_token_fraction", tok_mean(static_cast<double>(tok_.vetoed)),
      fmt::format("slime/verl catastrophic token fraction: π_train/π_rollout < τ (Δ < ln τ), τ = {:g}", o_.veto_threshold));
  add("veto_seq_fraction", seq_mean(static_cast<double>(seq_vetoed_)),
      fmt::format("fraction of sequences with at least one token under τ = {:g} (slime rs_catastrophic_seq_fraction)",
                  o_.veto_threshold));
  s_.catastrophic_count = static_cast<int64_t>(catastrophic_.size());
  add("catastrophic_tokens", static_cast<double>(s_.catastrophic_count),
      fmt::format("number of scored tokens with |Δ| > {:g} nats (listed worst first)", o_.catastrophic_threshold));
  add("nonfinite_tokens", static_cast<double>(s_.nonfinite_tokens),
      "scored tokens whose logprob is NaN or ±Inf on either side: left out of every metric, and always a failure");

  const auto worse = [&](const std::pair<int64_t, int64_t>& x, const std::pair<int64_t, int64_t>& y) {
    const double ax = std::abs(run_.train[static_cast<size_t>(x.second)] - run_.rollout[static_cast<size_t>(x.second)]);
    const double ay = std::abs(run_.train[static_cast<size_t>(y.second)] - run_.rollout[static_cast<size_t>(y.second)]);
    return ax > ay || (ax == ay && x.second < y.second);
  };
  const auto listed = std::min<size_t>(catastrophic_.size(), static_cast<size_t>(o_.catastrophic_top));
  std::partial_sort(catastrophic_.begin(), catastrophic_.begin() + static_cast<std::ptrdiff_t>(listed),
                    catastrophic_.end(), worse);
  for (size_t i = 0; i < listed; ++i)
    s_.catastrophic.push_back(token_diff(run_, catastrophic_[i].first, catastrophic_[i].second));
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
  Accumulator(run, options, summary).run();
  return summary;
}

}  // namespace parity::harness
