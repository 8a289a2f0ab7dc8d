#include "baseline_report.h"
#include "logprobs_report.h"
#include "report_util.h"

namespace parity::reports {

namespace {

using harness::ListedToken;
using harness::LogprobReport;

nlohmann::json text_of(const LogprobReport& r, int64_t id) {
  return r.texts ? nlohmann::json(r.texts->of(id)) : nlohmann::json();
}

nlohmann::json ids_json(const LogprobReport& r, const std::vector<int64_t>& ids) {
  nlohmann::json out = nlohmann::json::array();
  for (int64_t id : ids) out.push_back({{"id", id}, {"text", text_of(r, id)}});
  return out;
}

nlohmann::json alternatives_json(const LogprobReport& r, const std::vector<harness::Alternative>& alts) {
  nlohmann::json out = nlohmann::json::array();
  for (const harness::Alternative& a : alts)
    out.push_back({{"id", a.id}, {"text", text_of(r, a.id)}, {"logprob", number(a.logprob)}});
  return out;
}

nlohmann::json token_json(const LogprobReport& r, const ListedToken& l) {
  return {{"rank", l.rank},
          {"sequence", l.token.at.sequence},
          {"position", l.token.at.position},
          {"index", l.token.at.index},
          {"token_id", l.token.token_id},
          {"text", text_of(r, l.token.token_id)},
          {"train_logprob", number(l.token.train)},
          {"rollout_logprob", number(l.token.rollout)},
          {"diff", number(l.token.diff)},
          {"context_before", ids_json(r, l.before)},
          {"context_after", ids_json(r, l.after)},
          {"train_top_k", alternatives_json(r, l.train_top_k)},
          {"rollout_top_k", alternatives_json(r, l.rollout_top_k)}};
}

nlohmann::json metrics_json(const LogprobReport& r) {
  nlohmann::json out = nlohmann::json::array();
  for (const harness::LogprobMetric& m : r.summary.metrics) {
    nlohmann::json j = {{"name", m.name}, {"value", number(m.value)}, {"convention", m.convention},
                        {"bound", nullptr}, {"status", "not gated"}};
    for (const harness::MetricVerdict& v : r.verdicts)
      if (v.metric == m.name) {
        j["bound"] = {{"min", v.bound.min ? nlohmann::json(*v.bound.min) : nlohmann::json()},
                      {"max", v.bound.max ? nlohmann::json(*v.bound.max) : nlohmann::json()},
                      {"rule", v.bound.where}};
        j["status"] = v.passed ? "pass" : "fail";
      }
    out.push_back(j);
  }
  return out;
}

nlohmann::json listing(const LogprobReport& r, const std::vector<ListedToken>& listed) {
  nlohmann::json out = nlohmann::json::array();
  for (const ListedToken& l : listed) out.push_back(token_json(r, l));
  return out;
}

}  // namespace

nlohmann::json logprobs_json(const LogprobReport& r) {
  const harness::LogprobSummary& s = r.summary;
  const harness::LogprobOptions& o = r.options;
  nlohmann::json failed = nlohmann::json::array();
  for (const harness::MetricVerdict& v : r.verdicts)
    if (!v.passed) failed.push_back(v.metric);
  return {{"schema", "parity-logprobs/1"},
          {"kind", "logprobs"},
          {"verdict", r.passed() ? "pass" : "fail"},
          {"run", {{"source", r.source}, {"train", r.train_source}, {"rollout", r.rollout_source},
                   {"tokens", s.tokens}, {"scored_tokens", s.scored_tokens}, {"sequences", s.sequences},
                   {"sequences_scored", s.sequences_scored},
                   {"tokenizer", r.texts ? nlohmann::json(r.texts->tokenizer.string()) : nlohmann::json()}}},
          {"budget", r.budget_source},
          {"options", {{"is_threshold", o.is_threshold}, {"veto_threshold", o.veto_threshold},
                       {"catastrophic_threshold", o.catastrophic_threshold},
                       {"catastrophic_top", o.catastrophic_top}, {"context", o.context}}},
          {"diff_convention", "diff = lp_train − lp_rollout, per scored token"},
          {"metrics", metrics_json(r)},
          {"failed_metrics", failed},
          {"abs_diff_max_at", {{"sequence", s.abs_diff_max_at.sequence}, {"position", s.abs_diff_max_at.position},
                               {"index", s.abs_diff_max_at.index}}},
          {"catastrophic", {{"threshold", o.catastrophic_threshold}, {"count", s.catastrophic_count},
                            {"tokens", listing(r, r.catastrophic)}}},
          {"nonfinite", {{"count", s.nonfinite_tokens}, {"tokens", listing(r, r.nonfinite)}}},
          {"problems", r.problems},
          {"baseline", r.baseline ? baseline_json(*r.baseline) : nlohmann::json()}};
}

}  // namespace parity::reports
