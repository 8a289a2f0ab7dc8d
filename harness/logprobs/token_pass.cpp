#include "logprobs/token_pass.h"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <thread>

namespace parity::harness {

namespace {

double clamp_log_ratio(double r) { return std::clamp(r, -kSafetyBound, kSafetyBound); }

// One sequence's sums over its finite scored tokens.
struct OneSequence {
  int64_t n = 0, tis_clipped = 0;
  double abs_diff = 0, diff = 0, w = 0, w2 = 0, k3 = 0, train = 0, rollout = 0;
  bool vetoed = false;
};

// Chunks of about `chunk_tokens` tokens, cut at sequence boundaries: [first, end) sequences.
std::vector<std::pair<int64_t, int64_t>> chunks(const LogprobRun& run, int64_t chunk_tokens) {
  std::vector<std::pair<int64_t, int64_t>> out;
  int64_t first = 0;
  while (first < run.sequences()) {
    const int64_t target = run.seq_offsets[static_cast<size_t>(first)] + std::max<int64_t>(chunk_tokens, 1);
    auto end = std::lower_bound(run.seq_offsets.begin() + first + 1, run.seq_offsets.end(), target);
    const int64_t last = std::min<int64_t>(end - run.seq_offsets.begin(), run.sequences());
    out.emplace_back(first, last);
    first = last;
  }
  return out;
}

// Runs work(chunk, worker) for every chunk on up to one thread per core; each worker index is
// used by one thread at a time (its per-worker state needs no lock).
template <typename Work>
void for_each_chunk(size_t chunk_count, size_t workers, Work work) {
  std::atomic<size_t> next{0};
  auto worker = [&](size_t w) {
    for (size_t c = next++; c < chunk_count; c = next++) work(c, w);
  };
  std::vector<std::thread> threads;
  for (size_t w = 1; w < workers; ++w) threads.emplace_back(worker, w);
  worker(0);
  for (std::thread& t : threads) t.join();
}

size_t worker_count(size_t chunk_count) {
  const size_t cores = std::max(1u, std::thread::hardware_concurrency());
  return std::clamp<size_t>(std::min(cores, chunk_count), 1, 16);
}

class TokenPass {
 public:
  TokenPass(const LogprobRun& run, const LogprobOptions& options)
      : run_(run), o_(options), log_c_(std::log(options.is_threshold)), log_tau_(std::log(options.veto_threshold)) {}

  // The sums of sequences [first, end); |Δ| counted into `histogram`.
  TokenPassResult operator()(std::pair<int64_t, int64_t> chunk, RankHistogram& histogram) const {
    TokenPassResult p;
    for (int64_t seq = chunk.first; seq < chunk.second; ++seq) sequence(seq, p, histogram);
    return p;
  }

 private:
  void sequence(int64_t seq, TokenPassResult& p, RankHistogram& histogram) const {
    OneSequence q;
    for (int64_t i = run_.seq_offsets[static_cast<size_t>(seq)]; i < run_.seq_offsets[static_cast<size_t>(seq) + 1];
         ++i) {
      const auto t = static_cast<size_t>(i);
      if (!run_.loss_mask[t]) continue;
      ++p.scored_tokens;
      const double lt = run_.train[t], lr = run_.rollout[t];
      if (!finite_token(lt, lr)) {
        if (p.nonfinite_tokens++ < o_.catastrophic_top) p.nonfinite.push_back(token_diff(run_, seq, i));
        continue;
      }
      token(seq, i, lt, lr, q, p);
      histogram.add(std::abs(lt - lr));
    }
    if (q.n == 0) return;
    AcrossSequences& s = p.sequences;
    const double n = static_cast<double>(q.n);
    ++s.n;
    s.abs_diff += q.abs_diff / n;
    s.ess += q.w * q.w / (n * std::max(q.w2, 1e-8));
    s.k1 += -q.diff / n;
    s.k3 += q.k3 / n;
    s.chi2 += std::exp(2 * clamp_log_ratio(q.diff));
    s.tis_clipped += static_cast<double>(q.tis_clipped) / n;
    s.ppl_train += std::exp(-q.train / n);
    s.ppl_rollout += std::exp(-q.rollout / n);
    const double log_ppl_diff = q.rollout / n - q.train / n;
    s.ppl_ratio += std::exp(log_ppl_diff);
    s.log_ppl_diff += log_ppl_diff;
    s.log_ppl_abs_diff += std::abs(log_ppl_diff);
    s.vetoed += q.vetoed ? 1 : 0;
  }

  void token(int64_t seq, int64_t i, double lt, double lr, OneSequence& q, TokenPassResult& p) const {
    // w − 1 and π_train − π_rollout = π_rollout (w − 1) through expm1: one exp fewer, and no
    // cancellation when Δ is tiny (the definitions' exp(r) − r − 1 and exp(lt) − exp(lr) lose
    // digits there; numpy_metrics computes them as written, and agrees to 1e-9 on real runs).
    const double d = lt - lr, a = std::abs(d), rc = clamp_log_ratio(d), wm1 = std::expm1(rc), w = 1 + wm1;
    const double k3 = wm1 - rc;
    const double prob = rc == d ? std::exp(lr) * std::abs(wm1) : std::abs(std::exp(lt) - std::exp(lr));
    const double wc = std::clamp(w, 1 / o_.is_threshold, o_.is_threshold);
    const bool clipped = d > log_c_, vetoed = d < log_tau_;
    q.n += 1;
    q.abs_diff += a;
    q.diff += d;
    q.w += w;
    q.w2 += w * w;
    q.k3 += k3;
    q.train += lt;
    q.rollout += lr;
    q.tis_clipped += clipped ? 1 : 0;
    q.vetoed = q.vetoed || vetoed;
    TokenSums& tok = p.tokens;
    tok.n += 1;
    tok.abs_diff += a;
    tok.diff += d;
    tok.w += w;
    tok.w2 += w * w;
    tok.k3 += k3;
    tok.prob_diff += prob;
    tok.prob_diff_max = std::max(tok.prob_diff_max, prob);
    const double delta = prob - tok.prob_mean;
    tok.prob_mean += delta / static_cast<double>(tok.n);
    tok.prob_m2 += delta * (prob - tok.prob_mean);
    tok.w_clamped += wc;
    tok.w_clamped2 += wc * wc;
    tok.tis_clipped += clipped ? 1 : 0;
    tok.vetoed += vetoed ? 1 : 0;
    if (a > p.max_abs) {
      p.max_abs = a;
      p.max_at = token_at(run_, seq, i);
    }
    if (a > o_.catastrophic_threshold) p.catastrophic.push_back({seq, i});
  }

  const LogprobRun& run_;
  const LogprobOptions& o_;
  const double log_c_, log_tau_;
};

// `from` (the next chunk) added into `into`.
void merge(TokenPassResult& into, TokenPassResult&& from, int64_t keep_nonfinite) {
  TokenSums &a = into.tokens, &b = from.tokens;
  if (b.n > 0) {  // Chan et al.'s merge of two Welford states
    const double na = static_cast<double>(a.n), nb = static_cast<double>(b.n), delta = b.prob_mean - a.prob_mean;
    a.prob_mean += delta * nb / (na + nb);
    a.prob_m2 += b.prob_m2 + delta * delta * na * nb / (na + nb);
  }
  a.n += b.n;
  a.abs_diff += b.abs_diff;
  a.diff += b.diff;
  a.w += b.w;
  a.w2 += b.w2;
  a.k3 += b.k3;
  a.prob_diff += b.prob_diff;
  a.prob_diff_max = std::max(a.prob_diff_max, b.prob_diff_max);
  a.w_clamped += b.w_clamped;
  a.w_clamped2 += b.w_clamped2;
  a.tis_clipped += b.tis_clipped;
  a.vetoed += b.vetoed;
  AcrossSequences &s = into.sequences, &t = from.sequences;
  s.n += t.n;
  s.vetoed += t.vetoed;
  s.abs_diff += t.abs_diff;
  s.ess += t.ess;
  s.k1 += t.k1;
  s.k3 += t.k3;
  s.chi2 += t.chi2;
  s.tis_clipped += t.tis_clipped;
  s.ppl_train += t.ppl_train;
  s.ppl_rollout += t.ppl_rollout;
  s.ppl_ratio += t.ppl_ratio;
  s.log_ppl_diff += t.log_ppl_diff;
  s.log_ppl_abs_diff += t.log_ppl_abs_diff;
  into.scored_tokens += from.scored_tokens;
  into.nonfinite_tokens += from.nonfinite_tokens;
  for (TokenDiff& d : from.nonfinite)
    if (static_cast<int64_t>(into.nonfinite.size()) < keep_nonfinite) into.nonfinite.push_back(d);
  if (from.max_abs > into.max_abs) {  // a tie keeps the earlier token, as one pass would
    into.max_abs = from.max_abs;
    into.max_at = from.max_at;
  }
  into.catastrophic.insert(into.catastrophic.end(), from.catastrophic.begin(), from.catastrophic.end());
}

}  // namespace

TokenAt token_at(const LogprobRun& run, int64_t sequence, int64_t index) {
  return {sequence, index - run.seq_offsets[static_cast<size_t>(sequence)], index};
}

TokenDiff token_diff(const LogprobRun& run, int64_t sequence, int64_t index) {
  const auto t = static_cast<size_t>(index);
  return {token_at(run, sequence, index), run.input_ids[t], run.train[t], run.rollout[t],
          run.train[t] - run.rollout[t]};
}

bool finite_token(double train, double rollout) {
  return std::isfinite(train) && std::isfinite(rollout) && std::isfinite(train - rollout);
}

TokenPassResult pass_over_tokens(const LogprobRun& run, const LogprobOptions& options) {
  const TokenPass pass(run, options);
  const std::vector<std::pair<int64_t, int64_t>> parts = chunks(run, options.chunk_tokens);
  const size_t workers = worker_count(parts.size());
  std::vector<TokenPassResult> results(parts.size());
  std::vector<RankHistogram> histograms(workers);  // integer counts: their sum has no order
  for_each_chunk(parts.size(), workers, [&](size_t c, size_t w) { results[c] = pass(parts[c], histograms[w]); });
  TokenPassResult all = std::move(results[0]);
  for (size_t c = 1; c < results.size(); ++c) merge(all, std::move(results[c]), options.catastrophic_top);
  for (const RankHistogram& h : histograms) all.abs_diffs.merge(h);
  return all;
}

std::map<uint32_t, std::vector<double>> collect_abs_diffs(const LogprobRun& run, const LogprobOptions& options,
                                                         const std::vector<uint8_t>& wanted) {
  const std::vector<std::pair<int64_t, int64_t>> parts = chunks(run, options.chunk_tokens);
  const size_t workers = worker_count(parts.size());
  std::vector<std::map<uint32_t, std::vector<double>>> found(workers);  // the values' order does not matter
  for_each_chunk(parts.size(), workers, [&](size_t c, size_t w) {
    for (int64_t i = run.seq_offsets[static_cast<size_t>(parts[c].first)];
         i < run.seq_offsets[static_cast<size_t>(parts[c].second)]; ++i) {
      const auto t = static_cast<size_t>(i);
      if (!run.loss_mask[t] || !finite_token(run.train[t], run.rollout[t])) continue;
      const double a = std::abs(run.train[t] - run.rollout[t]);
      if (const uint32_t bin = RankHistogram::bin_of(a); wanted[bin]) found[w][bin].push_back(a);
    }
  });
  std::map<uint32_t, std::vector<double>> all = std::move(found[0]);
  for (size_t w = 1; w < workers; ++w)
    for (auto& [bin, values] : found[w]) all[bin].insert(all[bin].end(), values.begin(), values.end());
  return all;
}

}  // namespace parity::harness
