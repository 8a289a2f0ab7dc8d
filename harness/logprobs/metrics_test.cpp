#include "logprobs/metrics.h"

#include <cmath>
#include <limits>
#include <random>

#include <doctest/doctest.h>

#include "errors.h"
#include "logprobs/listing.h"

namespace parity::harness {

namespace {

// Sequences of the given lengths, every token but each sequence's first scored, both sides -2.
LogprobRun flat_run(const std::vector<int64_t>& lengths) {
  LogprobRun run;
  run.source = "test";
  run.seq_offsets = {0};
  for (int64_t n : lengths) {
    for (int64_t i = 0; i < n; ++i) {
      run.input_ids.push_back(static_cast<int64_t>(run.input_ids.size()) % 7);
      run.loss_mask.push_back(i == 0 ? 0 : 1);
      run.train.push_back(-2.0);
      run.rollout.push_back(-2.0);
    }
    run.seq_offsets.push_back(static_cast<int64_t>(run.input_ids.size()));
  }
  return run;
}

double metric(const LogprobSummary& s, const std::string& name) {
  const LogprobMetric* m = s.find(name);
  REQUIRE_MESSAGE(m != nullptr, name);
  return m->value;
}

}  // namespace

TEST_CASE("logprob metrics: identical sides give zero differences and an ESS of one") {
  const LogprobRun run = flat_run({5, 3});
  validate(run);
  const LogprobSummary s = compute_logprob_metrics(run, {});
  CHECK(s.scored_tokens == 6);
  CHECK(s.sequences_scored == 2);
  for (const char* zero : {"abs_diff_seq_mean", "abs_diff_token_mean", "abs_diff_median", "abs_diff_p99",
                           "abs_diff_max", "diff_mean", "kl_k1", "kl_k3", "chi2_token", "chi2_seq", "log_ppl_diff",
                           "prob_diff_mean", "prob_diff_std", "tis_clip_fraction", "veto_token_fraction",
                           "catastrophic_tokens", "nonfinite_tokens"}) {
    CAPTURE(zero);
    CHECK(metric(s, zero) == 0.0);
  }
  CHECK(metric(s, "ess_seq_mean") == 1.0);
  CHECK(metric(s, "ess_batch") == doctest::Approx(1.0).epsilon(1e-7));  // verl's +1e-8
  CHECK(metric(s, "ppl_train") == doctest::Approx(std::exp(2.0)));
  CHECK(metric(s, "ppl_ratio") == 1.0);
  CHECK(s.catastrophic.empty());
  CHECK(s.metrics.size() == logprob_metric_names().size());
}

TEST_CASE("logprob metrics: one token shifted by δ, against values worked by hand") {
  LogprobRun run = flat_run({5, 3});  // sequence 0 scores tokens 1..4, sequence 1 tokens 6..7
  const double delta = 0.5;
  run.train[2] += delta;  // sequence 0, position 2: Δ = +δ
  const LogprobSummary s = compute_logprob_metrics(run, {});
  const double w = std::exp(delta);
  CHECK(metric(s, "abs_diff_seq_mean") == doctest::Approx((delta / 4 + 0) / 2));
  CHECK(metric(s, "abs_diff_token_mean") == doctest::Approx(delta / 6));
  CHECK(metric(s, "abs_diff_max") == delta);
  CHECK(s.abs_diff_max_at.sequence == 0);
  CHECK(s.abs_diff_max_at.position == 2);
  CHECK(metric(s, "abs_diff_median") == 0.0);
  // numpy linear interpolation over the 6 sorted |Δ| {0,0,0,0,0,δ}: p90 sits at 4.5, p99 at 4.95.
  CHECK(metric(s, "abs_diff_p90") == doctest::Approx(0.5 * delta));
  CHECK(metric(s, "abs_diff_p99") == doctest::Approx(0.95 * delta));
  CHECK(metric(s, "ess_seq_mean") == doctest::Approx(((w + 3) * (w + 3) / (4 * (w * w + 3)) + 1) / 2));
  CHECK(metric(s, "ess_batch_unclamped") == doctest::Approx(std::pow((w + 5) / 6, 2) / ((w * w + 5) / 6)));
  CHECK(metric(s, "kl_k1") == doctest::Approx(-delta / 6));
  CHECK(metric(s, "kl_k3") == doctest::Approx((w - delta - 1) / 6));
  CHECK(metric(s, "chi2_token") == doctest::Approx((w * w + 5) / 6 - 1));
  CHECK(metric(s, "chi2_seq") == doctest::Approx((w * w + 1) / 2 - 1));
  // ppl_train / ppl_rollout of sequence 0 = exp(mean lp_rollout − mean lp_train) = exp(−δ/4).
  CHECK(metric(s, "ppl_ratio") == doctest::Approx((std::exp(-delta / 4) + 1) / 2));
  CHECK(metric(s, "log_ppl_diff") == doctest::Approx(-delta / 8));
  CHECK(metric(s, "prob_diff_max") == doctest::Approx(std::exp(-2.0 + delta) - std::exp(-2.0)));
  CHECK(metric(s, "tis_clip_fraction") == 0.0);  // e^0.5 < 2
  CHECK(metric(s, "catastrophic_tokens") == 0.0);
}

TEST_CASE("logprob metrics: the veto, TIS and catastrophic thresholds") {
  LogprobRun run = flat_run({4, 4});
  run.train[1] = -2.0 - 10.0;  // Δ = −10: π_train/π_rollout = e^-10 < τ = 1e-4, |Δ| > 1
  run.train[6] = -2.0 + 1.0;     // Δ = +1: e^1 > C = 2
  const LogprobSummary s = compute_logprob_metrics(run, {});
  CHECK(metric(s, "veto_token_fraction") == doctest::Approx(1.0 / 6));
  CHECK(metric(s, "veto_seq_fraction") == 0.5);
  CHECK(metric(s, "tis_clip_fraction") == doctest::Approx(1.0 / 6));
  CHECK(metric(s, "catastrophic_tokens") == 1.0);  // |Δ| = 1 is not above 1
  REQUIRE(s.catastrophic.size() == 1);
  CHECK(s.catastrophic[0].at.index == 1);
  CHECK(s.catastrophic[0].diff == doctest::Approx(-10.0));

  LogprobOptions strict;
  strict.catastrophic_threshold = 0.5;
  strict.is_threshold = 3.0;
  const LogprobSummary t = compute_logprob_metrics(run, strict);
  CHECK(metric(t, "catastrophic_tokens") == 2.0);
  CHECK(t.catastrophic[0].at.index == 1);  // worst first
  CHECK(t.catastrophic[1].at.index == 6);
  CHECK(metric(t, "tis_clip_fraction") == 0.0);  // e^1 < 3
}

TEST_CASE("logprob metrics: non-finite logprobs are counted and listed, never turned into 0") {
  LogprobRun run = flat_run({4});
  run.train[2] = std::numeric_limits<double>::quiet_NaN();
  run.rollout[3] = -std::numeric_limits<double>::infinity();
  const LogprobSummary s = compute_logprob_metrics(run, {});
  CHECK(s.nonfinite_tokens == 2);
  REQUIRE(s.nonfinite.size() == 2);
  CHECK(s.nonfinite[0].at.position == 2);
  CHECK(metric(s, "nonfinite_tokens") == 2.0);
  CHECK(metric(s, "abs_diff_token_mean") == 0.0);  // over the one finite token left
  run.train[1] = std::numeric_limits<double>::infinity();
  const LogprobSummary none = compute_logprob_metrics(run, {});
  CHECK(std::isnan(metric(none, "abs_diff_seq_mean")));  // nothing finite: undefined, not 0
  CHECK(std::isnan(metric(none, "ess_batch")));
}

TEST_CASE("logprob metrics: the result does not depend on how the run is chunked for the cores") {
  std::mt19937 rng(11);
  std::uniform_int_distribution<int64_t> length(2, 40);
  std::normal_distribution<double> noise(0, 0.3);
  std::exponential_distribution<double> nll(0.3);
  LogprobRun run;
  run.seq_offsets = {0};
  for (int s = 0; s < 300; ++s) {
    const int64_t n = length(rng);
    for (int64_t i = 0; i < n; ++i) {
      run.input_ids.push_back(i);
      run.loss_mask.push_back(i > 0 && (i + s) % 5 != 0 ? 1 : 0);
      run.train.push_back(-nll(rng));
      run.rollout.push_back(std::min(run.train.back() + noise(rng), 0.0));  // a logprob is <= 0
    }
    run.seq_offsets.push_back(static_cast<int64_t>(run.input_ids.size()));
  }
  run.train[run.input_ids.size() / 2 + 1] = std::numeric_limits<double>::quiet_NaN();
  validate(run);
  LogprobOptions one_chunk, many;
  one_chunk.chunk_tokens = int64_t{1} << 40;
  many.chunk_tokens = 37;  // about 150 chunks over every core, merged in order
  const LogprobSummary a = compute_logprob_metrics(run, one_chunk), b = compute_logprob_metrics(run, many);
  for (size_t i = 0; i < a.metrics.size(); ++i) {
    CAPTURE(a.metrics[i].name);
    CHECK(b.metrics[i].value == doctest::Approx(a.metrics[i].value).epsilon(1e-12));
  }
  CHECK(a.catastrophic_count > 0);
  REQUIRE(a.catastrophic.size() == b.catastrophic.size());
  for (size_t i = 0; i < a.catastrophic.size(); ++i) CHECK(a.catastrophic[i].at.index == b.catastrophic[i].at.index);
  CHECK(a.abs_diff_max_at.index == b.abs_diff_max_at.index);
  CHECK(a.nonfinite_tokens == 1);
  CHECK(b.nonfinite.size() == 1);
  CHECK(metric(b, "abs_diff_p99") == metric(a, "abs_diff_p99"));  // selection is exact either way
}

TEST_CASE("logprob metrics: bad options are input errors") {
  const LogprobRun run = flat_run({3});
  LogprobOptions o;
  o.is_threshold = 1.0;
  CHECK_THROWS_AS(compute_logprob_metrics(run, o), InputError);
  o = {};
  o.veto_threshold = 1.5;
  CHECK_THROWS_AS(compute_logprob_metrics(run, o), InputError);
  o = {};
  o.catastrophic_threshold = std::numeric_limits<double>::quiet_NaN();
  CHECK_THROWS_AS(compute_logprob_metrics(run, o), InputError);
}

TEST_CASE("logprob listing: context stays inside the token's sequence, alternatives follow the run") {
  LogprobRun run = flat_run({4, 5});
  run.train_top_k = TopKTable{2, std::vector<int64_t>(18, 3), std::vector<double>(18, -1.0)};
  run.train_top_k->ids[5 * 2 + 1] = 6;
  const TokenDiff t{{1, 1, 5}, run.input_ids[5], -2, -2, 0};
  const std::vector<ListedToken> listed = list_tokens(run, {t}, 3);
  REQUIRE(listed.size() == 1);
  CHECK(listed[0].rank == 1);
  CHECK(listed[0].before == std::vector<int64_t>{run.input_ids[4]});  // not sequence 0's tokens
  CHECK(listed[0].after == std::vector<int64_t>{run.input_ids[6], run.input_ids[7], run.input_ids[8]});
  REQUIRE(listed[0].train_top_k.size() == 2);
  CHECK(listed[0].train_top_k[1].id == 6);
  CHECK(listed[0].rollout_top_k.empty());
  const std::vector<int64_t> ids = shown_ids(listed);
  CHECK(ids.size() == 1 + 1 + 3 + 2);
}

TEST_CASE("logprob runs: validate names what is malformed") {
  auto rejects = [](LogprobRun run, const std::string& expected) {
    CAPTURE(expected);
    try {
      validate(run);
      FAIL("accepted");
    } catch (const InputError& e) {
      CHECK(std::string(e.what()).find(expected) != std::string::npos);
    }
  };
  LogprobRun run = flat_run({3, 2});
  run.train.pop_back();
  rejects(run, "train logprobs has 4 entries");
  run = flat_run({3, 2});
  run.seq_offsets = {0, 3, 3, 5};
  rejects(run, "increase strictly");
  run = flat_run({3, 2});
  run.seq_offsets.back() = 4;
  rejects(run, "from 0 to the token count 5");
  run = flat_run({3, 2});
  run.loss_mask[3] = 1;
  rejects(run, "first token of sequence 1");
  run = flat_run({3, 2});
  std::fill(run.loss_mask.begin(), run.loss_mask.end(), 0);
  rejects(run, "selects no token");
  run = flat_run({3, 2});
  run.input_ids[2] = -1;
  rejects(run, "negative token id -1");
  run = flat_run({3, 2});
  run.rollout_top_k = TopKTable{2, std::vector<int64_t>(9, 0), std::vector<double>(9, 0.0)};
  rejects(run, "/top_k/rollout/ids");
}

}  // namespace parity::harness
