#include <cmath>

#include "baseline_report.h"
#include "report.h"
#include "report_util.h"

namespace parity::reports {

namespace {

using harness::HookResult;
using harness::Status;

nlohmann::json first_failure(const CheckReport& run) {
  if (const HookResult* h = run.first_failure())
    return {{"mode", harness::mode_name(run.mode)}, {"hook", h->hook}, {"message", h->message}};
  if (!run.problems.empty()) return {{"mode", harness::mode_name(run.mode)}, {"hook", nullptr}, {"message", run.problems[0]}};
  return nullptr;
}

// The JSON names of a run's two sides: check compares the reference ("ref") against HF ("hf");
// compare a target dump ("target") against a base dump ("base"), so its fields say so instead of
// reusing check's names for other things. The second side is rel_l2's denominator in both.
struct SideKeys {
  std::string candidate, expected;
};
SideKeys side_keys(const CheckReport& run) {
  return harness::is_compare_mode(run.mode) ? SideKeys{"target", "base"} : SideKeys{"ref", "hf"};
}

void add_float_metrics(nlohmann::json& j, const harness::FloatMetrics& m, const Shape& shape, const SideKeys& k) {
  j["rel_l2"] = number(m.rel_l2);
  j["rel_l2_denominator"] = k.expected + "_l2";
  j[k.expected + "_l2"] = number(m.hf_l2);
  j[k.candidate + "_l2"] = number(m.ref_l2);
  // A gradient's scale: ‖ref‖ / ‖hf‖ (1 when both agree in size; a dropped path shows below 1).
  j["norm_ratio"] = m.hf_l2 > 0 ? number(m.ref_l2 / m.hf_l2) : nlohmann::json();
  j["max_abs"] = number(m.max_abs);
  j["max_abs_at"] = m.max_abs_index >= 0 ? nlohmann::json(harness::unravel(m.max_abs_index, shape)) : nlohmann::json();
  j[k.candidate + "_at_max_abs"] = number(m.ref_at_max);
  j[k.expected + "_at_max_abs"] = number(m.hf_at_max);
  j["max_rel"] = number(m.max_rel);
  j["max_rel_at"] = m.max_rel_index >= 0 ? nlohmann::json(harness::unravel(m.max_rel_index, shape)) : nlohmann::json();
  j["max_rel_floor"] = number(m.max_rel_floor);
  j["cosine"] = number(m.cosine);
  j["nonfinite"] = {{k.candidate + "_nan", m.ref_nan},
                    {k.candidate + "_inf", m.ref_inf},
                    {k.expected + "_nan", m.hf_nan},
                    {k.expected + "_inf", m.hf_inf}};
  j["worst"] = nlohmann::json::array();
  for (const harness::ElementDiff& e : m.worst)
    j["worst"].push_back({{"at", harness::unravel(e.index, shape)}, {k.candidate, number(e.ref)},
                          {k.expected, number(e.hf)}, {"abs_diff", number(e.abs_diff())}});
}

// parity compare (compare_result.h): a mixed-dtype pair at the lower precision; the three-way view.
nlohmann::json lower_precision_json(const std::optional<harness::LowerPrecision>& lp) {
  if (!lp) return nullptr;
  return {{"dtype", lp->dtype}, {"higher_side", lp->higher_side}, {"rel_l2", number(lp->rel_l2)}, {"floor", number(lp->floor)}};
}

nlohmann::json reference_json(const std::optional<harness::ReferenceVerdict>& v) {
  if (!v) return nullptr;
  auto value = [](const std::optional<double>& x) { return x ? number(*x) : nlohmann::json(); };
  auto side = [&](const harness::ReferenceSide& s) {
    return nlohmann::json{{"measured", value(s.measured)},
                          {"metric", s.metric.empty() ? nlohmann::json() : nlohmann::json(s.metric)},
                          {"rel_l2", value(s.rel_l2)},
                          {"within_budget", s.within ? nlohmann::json(*s.within) : nlohmann::json()},
                          {"budget", s.limit.empty() ? nlohmann::json() : nlohmann::json(s.limit)},
                          {"note", s.note.empty() ? nlohmann::json() : nlohmann::json(s.note)}};
  };
  return {{"metric", v->metric.empty() ? nlohmann::json() : nlohmann::json(v->metric)},
          {"vs_base_rel_l2", value(v->base.rel_l2)},
          {"vs_target_rel_l2", value(v->target.rel_l2)},
          {"departs", v->departs.empty() ? nlohmann::json() : nlohmann::json(v->departs)},
          {"verdict", v->verdict},
          {"base", side(v->base)},
          {"target", side(v->target)}};
}

nlohmann::json hook_json(const CheckReport& run, const HookResult& h) {
  nlohmann::json j = {{"mode", harness::mode_name(run.mode)},
                      {"hook", h.hook},
                      {"status", harness::status_name(h.status)},
                      {"kind", h.is_top_k ? "top_k" : "float"},
                      {"shape", h.shape},
                      {"rel_l2", nullptr},
                      {"max_abs", nullptr},
                      {"message", h.message}};
  if (h.floats) add_float_metrics(j, *h.floats, h.shape, side_keys(run));
  // The noise floor (run/noise_floor.h) beside the measured error: null where none was computed.
  j["floor"] = h.floor ? nlohmann::json{{"rel_l2", number(h.floor->rel_l2)}, {"max_abs", number(h.floor->max_abs)}}
                       : nlohmann::json();
  j["floor_ratio"] = h.floats && h.floor ? number(h.floor_ratio()) : nlohmann::json();
  if (h.top_k) {
    j["tokens"] = h.top_k->tokens;
    j["tokens_differ"] = h.top_k->differ;
    j["near_ties"] = h.top_k->near_ties;
    j["near_tie_tokens"] = h.top_k->near_tie_tokens;
    j["first_difference"] = h.top_k->first_detail;
  }
  j["budget"] = h.limit ? nlohmann::json{{"metric", harness::metric_name(h.limit->metric)},
                                         {"limit", h.limit->value},
                                         {"min_rel_l2", h.limit->metric == harness::Metric::kFloorRatio
                                                            ? nlohmann::json(h.limit->min_rel_l2)
                                                            : nlohmann::json()},
                                         {"bound", h.limit->metric == harness::Metric::kCosine ? "min" : "max"},
                                         {"rule", h.budget_rule}}
                        : nlohmann::json();
  j["note"] = h.note.empty() ? nlohmann::json() : nlohmann::json(h.note);  // what the comparison left out, and why
  j["measured"] = h.measured ? number(*h.measured) : nlohmann::json();
  j["lower_precision"] = lower_precision_json(h.lower_precision);
  j["reference"] = reference_json(h.reference);
  return j;
}

// A bug-zoo case's expectation: did the gate fail first where the case says?
nlohmann::json expectation_json(const harness::ExpectationReport& e) {
  nlohmann::json modes = nlohmann::json::array();
  for (const harness::ModeExpectation& m : e.modes)
    modes.push_back({{"mode", harness::mode_name(m.mode)},
                     {"expected", m.expected},
                     {"first_failure", m.actual.empty() ? nlohmann::json() : nlohmann::json(m.actual)},
                     {"met", m.met}});
  auto or_null = [](const std::string& s) { return s.empty() ? nlohmann::json() : nlohmann::json(s); };
  return {{"met", e.met()},
          {"summary", e.summary()},
          {"modes", modes},
          {"diagnosis_expected", or_null(e.diagnosis_expected)},
          {"diagnosis_found", or_null(e.diagnosis_found)}};
}

}  // namespace

nlohmann::json json_report(const CheckResult& result) {
  const std::vector<CheckReport>& runs = result.runs;
  nlohmann::json out = {{"schema", "parity-check/1"}, {"verdict", result.passed() ? "pass" : "fail"}};
  out["first_failure"] = nullptr;
  out["runs"] = nlohmann::json::array();
  out["hooks"] = nlohmann::json::array();
  for (const CheckReport& run : runs) {
    if (out["first_failure"].is_null()) out["first_failure"] = first_failure(run);
    out["runs"].push_back({{"fixture", run.fixture},
                           {"mode", harness::mode_name(run.mode)},
                           {"precision", precision_name(run.precision)},
                           {"budget", run.budget_source},
                           {"verdict", run.passed() ? "pass" : "fail"},
                           {"first_failure", first_failure(run)},
                           {"problems", run.problems},
                           {"passed", run.count(Status::kPass)},
                           {"failed", run.count(Status::kFail)},
                           {"skipped", run.count(Status::kSkipped)},
                           {"sides", {{"ref", run.ref_side}, {"hf", run.hf_side}}},
                           {"target", run.target.empty() ? nlohmann::json() : nlohmann::json(run.target)},
                           {"notes", run.notes}});
    for (const HookResult& h : run.hooks) out["hooks"].push_back(hook_json(run, h));
  }
  out["baseline"] = result.baseline ? baseline_json(*result.baseline) : nlohmann::json();
  out["expect"] = result.expectation ? expectation_json(*result.expectation) : nlohmann::json();
  return out;
}

}  // namespace parity::reports
