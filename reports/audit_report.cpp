#include "audit_report.h"

#include <algorithm>

#include <fmt/format.h>

namespace parity::reports {

namespace {

using harness::AuditRow;
using harness::AuditSide;
using harness::Status;

std::string learns(const AuditSide& s) { return !s.present ? "no (none)" : s.learns ? "yes" : "no (zero)"; }

std::string optional_number(const std::optional<double>& v, const char* format) {
  return v ? fmt::format(fmt::runtime(format), *v) : "-";
}

nlohmann::json side_json(const AuditSide& s) {
  return {{"present", s.present}, {"learns", s.learns}, {"norm", s.norm}, {"nonfinite", s.nonfinite}};
}

std::string verdict_line(const harness::GradAudit& a) {
  const int64_t one_sided = std::count_if(a.rows.begin(), a.rows.end(), [](const AuditRow& r) {
    return r.base.learns != r.target.learns;
  });
  const int64_t both = std::count_if(a.rows.begin(), a.rows.end(), [](const AuditRow& r) {
    return r.base.learns && r.target.learns;
  });
  return fmt::format("{} grad-audit: {} parameters, {} learn on both sides, {} on one side only, {} failed, {} skipped",
                     a.passed() ? "PASS" : "FAIL", a.rows.size(), both, one_sided, a.count(Status::kFail),
                     a.count(Status::kSkipped));
}

}  // namespace

std::string audit_text(const harness::GradAudit& a, bool failures_only) {
  std::string out = fmt::format("parity grad-audit {} ({}) vs {}  budget {}\n", a.base, a.base_side,
                                a.target.empty() ? "the reference's backward" : a.target + " (target)", a.budget_source);
  size_t width = 9;
  for (const AuditRow& r : a.rows) width = std::max(width, r.param.size());
  out += fmt::format("  {:<{}}  {:<7}  {:<10} {:<10} {:<10} {:<10} {:<10} {}\n", "parameter", width, "status",
                     a.base_side + " learns", a.target_side + " learns", "‖" + a.base_side + "‖",
                     "‖" + a.target_side + "‖", "ratio", "band / message");
  for (const AuditRow& r : a.rows) {
    if (failures_only && r.status == Status::kPass) continue;
    const std::string last = r.status == Status::kFail || r.message.size()
                                 ? r.message
                                 : fmt::format("1 ± {} ({})", optional_number(r.band, "{:.3g}"), r.band_rule);
    out += fmt::format("  {:<{}}  {:<7}  {:<10} {:<10} {:<10.3e} {:<10.3e} {:<10} {}\n", r.param, width,
                       harness::status_name(r.status), learns(r.base), learns(r.target), r.base.norm, r.target.norm,
                       optional_number(r.ratio, "{:.6g}"), last);
  }
  if (!a.routers.empty()) out += "routers:\n";
  for (const harness::RouterStatus& s : a.routers) out += "  " + s.sentence + "\n";
  for (const std::string& p : a.problems) out += "problem: " + p + "\n";
  for (const std::string& n : a.notes) out += "note: " + n + "\n";
  out += verdict_line(a) + "\n";
  return out;
}

nlohmann::json audit_json(const harness::GradAudit& a) {
  nlohmann::json rows = nlohmann::json::array();
  for (const AuditRow& r : a.rows)
    rows.push_back({{"param", r.param},
                    {"status", harness::status_name(r.status)},
                    {"base", side_json(r.base)},
                    {"target", side_json(r.target)},
                    {"norm_ratio", r.ratio ? nlohmann::json(*r.ratio) : nullptr},
                    {"rel_l2", r.rel_l2 ? nlohmann::json(*r.rel_l2) : nullptr},
                    {"cosine", r.cosine ? nlohmann::json(*r.cosine) : nullptr},
                    {"band", r.band ? nlohmann::json(*r.band) : nullptr},
                    {"band_rule", r.band_rule},
                    {"message", r.message}});
  nlohmann::json routers = nlohmann::json::array();
  for (const harness::RouterStatus& s : a.routers) {
    auto optional_bool = [](const std::optional<bool>& b) { return b ? nlohmann::json(*b) : nullptr; };
    routers.push_back({{"router", s.router},
                       {"layer", s.layer},
                       {"params", s.params},
                       {"base_through_top_k", optional_bool(s.base_through_top_k)},
                       {"target_through_top_k", optional_bool(s.target_through_top_k)},
                       {"matches", s.matches},
                       {"sentence", s.sentence}});
  }
  return {{"schema", "parity-grad-audit/1"},
          {"verdict", a.passed() ? "pass" : "fail"},
          {"base", a.base},
          {"target", a.target.empty() ? nullptr : nlohmann::json(a.target)},
          {"sides", {{"base", a.base_side}, {"target", a.target_side}}},
          {"budget", a.budget_source},
          {"passed", a.count(Status::kPass)},
          {"failed", a.count(Status::kFail)},
          {"skipped", a.count(Status::kSkipped)},
          {"params", rows},
          {"routers", routers},
          {"problems", a.problems},
          {"notes", a.notes}};
}

}  // namespace parity::reports
