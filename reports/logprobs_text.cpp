#include <algorithm>
#include <cmath>

#include "baseline_report.h"
#include "logprobs_report.h"
#include "report_util.h"

namespace parity::reports {

namespace {

using harness::ListedToken;
using harness::LogprobReport;

std::string num(double x) { return std::isnan(x) ? "nan" : fmt::format("{:.6g}", x); }

// id 42 "hello" (with a tokenizer), id 42 otherwise.
std::string token(const LogprobReport& r, int64_t id) {
  return r.texts ? fmt::format("{} {}", id, quoted(r.texts->of(id))) : fmt::format("{}", id);
}

std::string context(const LogprobReport& r, const ListedToken& l) {
  std::string out;
  auto piece = [&](int64_t id) { return r.texts ? quoted(r.texts->of(id)) : fmt::format("{}", id); };
  for (int64_t id : l.before) out += fmt::format("{} ", piece(id));
  out += fmt::format("[[{}]]", piece(l.token.token_id));
  for (int64_t id : l.after) out += fmt::format(" {}", piece(id));
  return out;
}

std::string alternatives(const LogprobReport& r, const std::vector<harness::Alternative>& alts) {
  std::string out;
  for (const harness::Alternative& a : alts) out += fmt::format("{}{}: {}", out.empty() ? "" : ", ", token(r, a.id), num(a.logprob));
  return out;
}

std::string listed_tokens(const LogprobReport& r, const std::vector<ListedToken>& listed) {
  std::string out;
  for (const ListedToken& l : listed) {
    out += fmt::format("  #{:<3} sequence {} position {}  token {}  train {}  rollout {}  Δ {:+.6g}\n", l.rank,
                       l.token.at.sequence, l.token.at.position, token(r, l.token.token_id), num(l.token.train),
                       num(l.token.rollout), l.token.diff);
    out += fmt::format("        context: {}\n", context(r, l));
    if (!l.train_top_k.empty()) out += fmt::format("        train top-{}: {}\n", l.train_top_k.size(), alternatives(r, l.train_top_k));
    if (!l.rollout_top_k.empty())
      out += fmt::format("        rollout top-{}: {}\n", l.rollout_top_k.size(), alternatives(r, l.rollout_top_k));
  }
  return out;
}

std::string metric_rows(const LogprobReport& r, bool color) {
  size_t width = 0;
  for (const harness::LogprobMetric& m : r.summary.metrics) width = std::max(width, m.name.size());
  std::string out;
  for (const harness::LogprobMetric& m : r.summary.metrics) {
    const auto v = std::find_if(r.verdicts.begin(), r.verdicts.end(), [&](auto& x) { return x.metric == m.name; });
    const bool gated = v != r.verdicts.end(), failed = gated && !v->passed;
    const std::string status = !gated ? "" : v->passed ? "pass" : "FAIL";
    const std::string bound = gated ? v->bound.str() : "";
    out += fmt::format("{}  {:<{}}  {:>13}  {:<4}  {:<14}  {}{}\n", failed && color ? kRed : "", m.name, width,
                       num(m.value), status, bound, m.convention, failed && color ? kReset : "");
  }
  return out;
}

}  // namespace

std::string logprobs_text(const LogprobReport& r, bool color) {
  const harness::LogprobSummary& s = r.summary;
  std::string out = fmt::format("parity logprobs: {}\n  train:   {}\n  rollout: {}\n", r.source, r.train_source,
                                r.rollout_source);
  out += fmt::format("  {} sequences ({} with scored tokens), {} tokens, {} scored; budget: {}\n", s.sequences,
                     s.sequences_scored, s.tokens, s.scored_tokens, r.budget_source);
  out += "  Δ = lp_train − lp_rollout per scored token\n\n" + metric_rows(r, color);
  if (s.abs_diff_max_at.index >= 0)
    out += fmt::format("\nmax |Δ| at sequence {}, position {}\n", s.abs_diff_max_at.sequence, s.abs_diff_max_at.position);
  out += fmt::format("\ncatastrophic tokens (|Δ| > {:g} nats): {}{}\n", r.options.catastrophic_threshold,
                     s.catastrophic_count,
                     s.catastrophic_count > static_cast<int64_t>(r.catastrophic.size())
                         ? fmt::format(" (the worst {} listed)", r.catastrophic.size())
                         : "");
  out += listed_tokens(r, r.catastrophic);
  if (s.nonfinite_tokens > 0) {
    out += fmt::format("\nnon-finite logprobs: {} scored token(s){}\n", s.nonfinite_tokens,
                       s.nonfinite_tokens > static_cast<int64_t>(r.nonfinite.size())
                           ? fmt::format(" (the first {} listed)", r.nonfinite.size())
                           : "");
    out += listed_tokens(r, r.nonfinite);
  }
  for (const std::string& p : r.problems) out += fmt::format("{}problem: {}{}\n", color ? kRed : "", p, color ? kReset : "");
  if (r.baseline) out += "\n" + baseline_text(*r.baseline, color);
  size_t failed = 0;
  for (const harness::MetricVerdict& v : r.verdicts) failed += v.passed ? 0 : 1;
  out += fmt::format("\n{}: {} of {} gated metrics passed{}{}\n", r.passed() ? "PASS" : "FAIL", r.verdicts.size() - failed,
                     r.verdicts.size(), r.problems.empty() ? "" : fmt::format(", {} problem(s)", r.problems.size()),
                     r.baseline && !r.baseline->passed() ? "; outside the baseline" : "");
  return out;
}

}  // namespace parity::reports
