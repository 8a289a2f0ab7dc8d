#include "logprobs/metrics.h"

#include <algorithm>
#include <future>
#include <thread>
#include <cmath>
#include <limits>
#include <map>

#include <fmt/format.h>

#include "hdf5_file.h"  // InputError
#include "logprobs/quantiles.h"

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

// Sums over sequences of per-sequence statistics (each sequence with a finite scored token).
struct PerSequenceSums {
  double abs_diff = 0, ess = 0, k1 = 0, k3 = 0, chi2 = 0;
  double ppl_train = 0, ppl_rollout = 0, ppl_ratio = 0, log_ppl_diff = 0, log_ppl_abs_diff = 0;
  int64_t scored = 0, vetoed = 0;
};

// One share of the pass over the tokens: a contiguous range of sequences. Shares are merged in
// range order, so lists and the arg-max come out as one sequential pass would make them.
struct Partial {
  TokenSums tok;
  PerSequenceSums seq;
  int64_t scored_tokens = 0, nonfinite_tokens = 0;
  std::vector<TokenDiff> nonfinite;  // the first catastrophic_top of the range
  double max_abs = -1;
  TokenAt max_at;
  RankHistogram abs_diffs;               // |Δ|, for its percentiles (quantiles.h)
  double prob_mean = 0, prob_m2 = 0;     // Welford's running mean and sum of squared deviations
  std::vector<std::pair<int64_t, int64_t>> catastrophic;  // (sequence, index)
};

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

// The pass over the tokens of one range of sequences.
class TokenPass {
 public:
  TokenPass(const LogprobRun& run, const LogprobOptions& options)
      : run_(run), o_(options), log_c_(std::log(options.is_threshold)), log_tau_(std::log(options.veto_threshold)) {}

  Partial operator()(int64_t first_sequence, int64_t end_sequence) const {
    Partial p;
    for (int64_t seq = first_sequence; seq < end_sequence; ++seq) sequence(seq, p);
    return p;
  }

 private:
  void sequence(int64_t seq, Partial& p) const {
    SequenceSums q;
    for (int64_t i = run_.seq_offsets[static_cast<size_t>(seq)]; i < run_.seq_offsets[static_cast<size_t>(seq) + 1];
         ++i) {
      const auto t = static_cast<size_t>(i);
      if (!run_.loss_mask[t]) continue;
      ++p.scored_tokens;
      const double lt = run_.train[t], lr = run_.rollout[t];
      if (!std::isfinite(lt) || !std::isfinite(lr)) {
        if (p.nonfinite_tokens++ < o_.catastrophic_top) p.nonfinite.push_back(token_diff(run_, seq, i));
        continue;
      }
      token(seq, i, lt, lr, q, p);
    }
    if (q.n == 0) return;
    PerSequenceSums& s = p.seq;
    const double n = static_cast<double>(q.n);
    ++s.scored;
    s.abs_diff += q.abs_diff / n;
    s.ess += q.w * q.w / (n * std::max(q.w2, 1e-8));
    s.k1 += -q.diff / n;
    s.k3 += q.k3 / n;
    s.chi2 += std::exp(2 * clamp_log_ratio(q.diff));
    s.ppl_train += std::exp(-q.train / n);
    s.ppl_rollout += std::exp(-q.rollout / n);
    const double log_ppl_diff = q.rollout / n - q.train / n;
    s.ppl_ratio += std::exp(log_ppl_diff);
    s.log_ppl_diff += log_ppl_diff;
    s.log_ppl_abs_diff += std::abs(log_ppl_diff);
    s.vetoed += q.vetoed ? 1 : 0;
  }

  void token(int64_t seq, int64_t i, double lt, double lr, SequenceSums& q, Partial& p) const {
    // w − 1 and π_train − π_rollout = π_rollout (w − 1) through expm1: one exp fewer, and no
    // cancellation when Δ is tiny (the definitions' exp(r) − r − 1 and exp(lt) − exp(lr) lose
    // digits there; numpy_metrics computes them as written, and agrees to 1e-9 on real runs).
    const double d = lt - lr, a = std::abs(d), rc = clamp_log_ratio(d), wm1 = std::expm1(rc), w = 1 + wm1;
    const double k3 = wm1 - rc;
    const double prob = rc == d ? std::exp(lr) * std::abs(wm1) : std::abs(std::exp(lt) - std::exp(lr));
    const double wc = std::clamp(w, 1 / o_.is_threshold, o_.is_threshold);
    q.n += 1;
    q.abs_diff += a;
    q.diff += d;
    q.w += w;
    q.w2 += w * w;
    q.k3 += k3;
    q.train += lt;
    q.rollout += lr;
    TokenSums& tok = p.tok;
    tok.n += 1;
    tok.abs_diff += a;
    tok.diff += d;
    tok.w2 += w * w;
    tok.k3 += k3;
    tok.prob_diff += prob;
    tok.prob_diff_max = std::max(tok.prob_diff_max, prob);
    const double delta = prob - p.prob_mean;
    p.prob_mean += delta / static_cast<double>(tok.n);
    p.prob_m2 += delta * (prob - p.prob_mean);
    tok.w += w;
    tok.w_clamped += wc;
    tok.w_clamped2 += wc * wc;
    tok.tis_clipped += d > log_c_ ? 1 : 0;
    if (d < log_tau_) {
      ++tok.vetoed;
      q.vetoed = true;
    }
    if (a > p.max_abs) {
      p.max_abs = a;
      p.max_at = token_at(run_, seq, i);
    }
    p.abs_diffs.add(a);
    if (a > o_.catastrophic_threshold) p.catastrophic.push_back({seq, i});
  }

  const LogprobRun& run_;
  const LogprobOptions& o_;
  const double log_c_, log_tau_;
};

// `from` (the next range) added into `into`.
void merge(Partial& into, Partial&& from, int64_t keep_nonfinite) {
  TokenSums &a = into.tok, &b = from.tok;
  if (b.n > 0) {  // Chan et al.'s merge of two Welford states
    const double na = static_cast<double>(a.n), nb = static_cast<double>(b.n), delta = from.prob_mean - into.prob_mean;
    into.prob_mean += delta * nb / (na + nb);
    into.prob_m2 += from.prob_m2 + delta * delta * na * nb / (na + nb);
  }
  a.n += b.n;
  a.abs_diff += b.abs_diff;
  a.diff += b.diff;
  a.w2 += b.w2;
  a.k3 += b.k3;
  a.prob_diff += b.prob_diff;
  a.prob_diff_max = std::max(a.prob_diff_max, b.prob_diff_max);
  a.w += b.w;
  a.w_clamped += b.w_clamped;
  a.w_clamped2 += b.w_clamped2;
  a.tis_clipped += b.tis_clipped;
  a.vetoed += b.vetoed;
  PerSequenceSums &s = into.seq, &t = from.seq;
  s.abs_diff += t.abs_diff;
  s.ess += t.ess;
  s.k1 += t.k1;
  s.k3 += t.k3;
  s.chi2 += t.chi2;
  s.ppl_train += t.ppl_train;
  s.ppl_rollout += t.ppl_rollout;
  s.ppl_ratio += t.ppl_ratio;
  s.log_ppl_diff += t.log_ppl_diff;
  s.log_ppl_abs_diff += t.log_ppl_abs_diff;
  s.scored += t.scored;
  s.vetoed += t.vetoed;
  into.scored_tokens += from.scored_tokens;
  into.nonfinite_tokens += from.nonfinite_tokens;
  for (TokenDiff& d : from.nonfinite)
    if (static_cast<int64_t>(into.nonfinite.size()) < keep_nonfinite) into.nonfinite.push_back(d);
  if (from.max_abs > into.max_abs) {  // a tie keeps the earlier token, as one pass would
    into.max_abs = from.max_abs;
    into.max_at = from.max_at;
  }
  into.abs_diffs.merge(from.abs_diffs);
  into.catastrophic.insert(into.catastrophic.end(), from.catastrophic.begin(), from.catastrophic.end());
}

// Ranges of sequences with about equal token counts, one per thread: a large run uses every core.
std::vector<std::pair<int64_t, int64_t>> sequence_ranges(const LogprobRun& run) {
  constexpr int64_t kTokensPerThread = int64_t{1} << 20;  // below this, threads cost more than they save
  const int64_t cores = std::max<int64_t>(1, std::thread::hardware_concurrency());
  const int64_t threads = std::clamp<int64_t>(run.tokens() / kTokensPerThread, 1, std::min<int64_t>(cores, 16));
  std::vector<std::pair<int64_t, int64_t>> ranges;
  int64_t first = 0;
  for (int64_t k = 1; k <= threads && first < run.sequences(); ++k) {
    const int64_t target = run.tokens() * k / threads;  // end this range at the sequence reaching it
    auto end = std::lower_bound(run.seq_offsets.begin() + first + 1, run.seq_offsets.end(), target);
    const int64_t last = k == threads ? run.sequences() : std::max<int64_t>(first + 1, end - run.seq_offsets.begin());
    ranges.emplace_back(first, std::min(last, run.sequences()));
    first = ranges.back().second;
  }
  return ranges;
}

Partial pass_over_tokens(const LogprobRun& run, const LogprobOptions& options) {
  const TokenPass pass(run, options);
  const std::vector<std::pair<int64_t, int64_t>> ranges = sequence_ranges(run);
  std::vector<std::future<Partial>> shares;
  for (size_t r = 1; r < ranges.size(); ++r)
    shares.push_back(std::async(std::launch::async, pass, ranges[r].first, ranges[r].second));
  Partial all = pass(ranges[0].first, ranges[0].second);
  for (std::future<Partial>& share : shares) merge(all, share.get(), options.catastrophic_top);
  return all;
}

// The |Δ| of every finite scored token whose histogram bin is wanted, by bin (quantiles.h).
std::map<uint32_t, std::vector<double>> collect_abs_diffs(const LogprobRun& run, const std::vector<uint8_t>& wanted) {
  auto collect = [&](int64_t first_sequence, int64_t end_sequence) {
    std::map<uint32_t, std::vector<double>> bins;
    for (int64_t i = run.seq_offsets[static_cast<size_t>(first_sequence)];
         i < run.seq_offsets[static_cast<size_t>(end_sequence)]; ++i) {
      const auto t = static_cast<size_t>(i);
      const double a = std::abs(run.train[t] - run.rollout[t]);
      if (!run.loss_mask[t] || !std::isfinite(run.train[t]) || !std::isfinite(run.rollout[t])) continue;
      if (const uint32_t bin = RankHistogram::bin_of(a); wanted[bin]) bins[bin].push_back(a);
    }
    return bins;
  };
  const std::vector<std::pair<int64_t, int64_t>> ranges = sequence_ranges(run);
  std::vector<std::future<std::map<uint32_t, std::vector<double>>>> shares;
  for (size_t r = 1; r < ranges.size(); ++r)
    shares.push_back(std::async(std::launch::async, collect, ranges[r].first, ranges[r].second));
  std::map<uint32_t, std::vector<double>> all = collect(ranges[0].first, ranges[0].second);
  for (auto& share : shares)
    for (auto& [bin, values] : share.get()) all[bin].insert(all[bin].end(), values.begin(), values.end());
  return all;
}

class MetricList {
 public:
  MetricList(const LogprobRun& run, const LogprobOptions& options, LogprobSummary& summary)
      : run_(run), o_(options), s_(summary) {}
  void finish(Partial& p);

 private:
  void add(const char* name, double value, std::string convention) {
    s_.metrics.push_back({name, value, std::move(convention)});
  }
  const LogprobRun& run_;
  const LogprobOptions& o_;
  LogprobSummary& s_;
};

void MetricList::finish(Partial& p) {
  const TokenSums& tok_ = p.tok;
  const PerSequenceSums& q = p.seq;
  s_.scored_tokens = p.scored_tokens;
  s_.sequences_scored = q.scored;
  s_.nonfinite_tokens = p.nonfinite_tokens;
  s_.nonfinite = std::move(p.nonfinite);
  s_.abs_diff_max_at = p.max_at;
  const double max_abs_ = p.max_abs;
  std::vector<std::pair<int64_t, int64_t>>& catastrophic_ = p.catastrophic;
  const double n = static_cast<double>(tok_.n), b = static_cast<double>(q.scored);
  const double nan_if_empty = tok_.n == 0 ? kNaN : 0.0;  // every token non-finite: no metric is defined
  const auto tok_mean = [&](double sum) { return sum / n + nan_if_empty; };
  const auto seq_mean = [&](double sum) { return sum / b + nan_if_empty; };
  add("abs_diff_seq_mean", seq_mean(q.abs_diff),
      "slime/miles train_rollout_logprob_abs_diff: mean over sequences of each one's mean |Δ| over its scored tokens");
  add("abs_diff_token_mean", tok_mean(tok_.abs_diff), "Σ|Δ| / N over all scored tokens (slime --calculate-per-token-loss)");
  const bool any = tok_.n > 0;
  const std::vector<double> pct =
      any ? linear_percentiles(p.abs_diffs, {50, 90, 99},
                               [&](const std::vector<uint8_t>& wanted) { return collect_abs_diffs(run_, wanted); })
          : std::vector<double>(3, kNaN);
  add("abs_diff_median", pct[0], "median of |Δ| over scored tokens (numpy linear interpolation)");
  add("abs_diff_p90", pct[1], "90th percentile of |Δ| (numpy linear interpolation)");
  add("abs_diff_p99", pct[2], "99th percentile of |Δ| (numpy linear interpolation)");
  add("abs_diff_max", any ? max_abs_ : kNaN, "max |Δ|; its token is abs_diff_max_at");
  add("diff_mean", tok_mean(tok_.diff), "mean Δ = lp_train − lp_rollout over scored tokens (signed bias)");
  add("ess_seq_mean", seq_mean(q.ess),
      "miles ess_ratio: per sequence (Σw)² / (N_i · max(Σw², 1e-8)), w = exp(clamp(Δ, ±20)), averaged over sequences");
  const double mean_wc = tok_.w_clamped / n, mean_w = tok_.w / n;
  add("ess_batch", 1 / (tok_.w_clamped2 / n / ((mean_wc + 1e-8) * (mean_wc + 1e-8))) + nan_if_empty,
      fmt::format("verl rollout_is_eff_sample_size: 1 / mean((w̃ / (mean(w̃) + 1e-8))²) over all scored tokens, "
                  "w̃ = clamp(w, 1/C, C), C = {:g}", o_.is_threshold));
  add("ess_batch_unclamped", 1 / (tok_.w2 / n / ((mean_w + 1e-8) * (mean_w + 1e-8))) + nan_if_empty,
      "ess_batch with w unclamped (only the ±20 safety clamp)");
  add("kl_k1", tok_mean(-tok_.diff), "verl rollout_corr/kl: mean of lp_rollout − lp_train over tokens, KL(π_rollout‖π_train)");
  add("kl_k1_seq_mean", seq_mean(q.k1), "kl_k1 per sequence, averaged over sequences (slime mis.py)");
  add("kl_k3", tok_mean(tok_.k3), "verl k3_kl: mean of exp(r) − r − 1 over tokens, r = clamp(Δ, ±20)");
  add("kl_k3_seq_mean", seq_mean(q.k3), "kl_k3 per sequence, averaged over sequences (miles train_rollout_kl, unclamped result)");
  add("chi2_token", tok_mean(tok_.w2) - 1, "verl chi2_token: mean of exp(2 clamp(Δ, ±20)) over tokens − 1");
  add("chi2_seq", seq_mean(q.chi2) - 1, "verl chi2_seq: mean over sequences of exp(2 clamp(Σ_t Δ, ±20)) − 1");
  add("ppl_train", seq_mean(q.ppl_train), "verl training_ppl: mean over sequences of exp(−mean lp_train)");
  add("ppl_rollout", seq_mean(q.ppl_rollout), "verl rollout_ppl: mean over sequences of exp(−mean lp_rollout)");
  add("ppl_ratio", seq_mean(q.ppl_ratio), "verl ppl_ratio: mean over sequences of ppl_train_i / ppl_rollout_i");
  add("log_ppl_diff", seq_mean(q.log_ppl_diff), "verl log_ppl_diff: mean over sequences of mean lp_rollout − mean lp_train");
  add("log_ppl_abs_diff", seq_mean(q.log_ppl_abs_diff), "verl log_ppl_abs_diff: mean over sequences of |log_ppl_diff_i|");
  add("prob_diff_mean", tok_mean(tok_.prob_diff), "verl training/rollout_probs_diff_mean: mean |exp(lp_train) − exp(lp_rollout)|");
  add("prob_diff_max", any ? tok_.prob_diff_max : kNaN, "verl rollout_probs_diff_max: max |exp(lp_train) − exp(lp_rollout)|");
  add("prob_diff_std", tok_.n >= 2 ? std::sqrt(p.prob_m2 / (n - 1)) : kNaN,
      "verl rollout_probs_diff_std: sample std (N − 1, as torch.std) of |exp(lp_train) − exp(lp_rollout)|");
  add("tis_clip_fraction", tok_mean(static_cast<double>(tok_.tis_clipped)),
      fmt::format("slime tis_clipfrac: fraction of tokens with π_train/π_rollout > C (Δ > ln C), C = {:g}", o_.is_threshold));
  add("veto_token_fraction", tok_mean(static_cast<double>(tok_.vetoed)),
      fmt::format("slime/verl catastrophic token fraction: π_train/π_rollout < τ (Δ < ln τ), τ = {:g}", o_.veto_threshold));
  add("veto_seq_fraction", seq_mean(static_cast<double>(q.vetoed)),
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
  Partial pass = pass_over_tokens(run, options);
  MetricList(run, options, summary).finish(pass);
  return summary;
}

}  // namespace parity::harness
