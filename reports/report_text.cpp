#include <algorithm>
#include <cmath>

#include <fmt/ranges.h>

#include "baseline_report.h"
#include "report.h"
#include "report_util.h"

namespace parity::reports {

namespace {

using harness::HookResult;
using harness::Status;

// The noise floor beside rel_l2 (run/noise_floor.h): "9.700e-05 x1.1" (rel_l2 is 1.1 x the floor),
// "0 x-" for a zero floor, "-" where none was computed.
std::string floor_cell(const HookResult& h) {
  if (!h.floor) return "-";
  const double ratio = h.floor_ratio();
  if (h.floor->rel_l2 == 0) return "0 x-";
  return fmt::format("{:.3e} x{}", h.floor->rel_l2, std::isfinite(ratio) ? fmt::format("{:.3g}", ratio) : "-");
}

// A gradient row's scale beside its floor ratio: ‖ref‖ / ‖hf‖ (a dropped path shows below 1) and
// rel_l2 over the floor ("1.000000 x2.3"; "-" where either is missing).
std::string norm_ratio_cell(const HookResult& h) {
  const std::string scale = h.floats && h.floats->hf_l2 > 0 ? fmt::format("{:.6f}", h.floats->ref_l2 / h.floats->hf_l2) : "-";
  const double ratio = h.floor_ratio();
  return scale + (std::isfinite(ratio) ? fmt::format(" x{:.3g}", ratio) : " x-");
}

std::string metrics_cell(const HookResult& h, bool gradient) {
  if (h.floats) {
    const harness::FloatMetrics& m = *h.floats;
    const std::string at = m.max_abs_index >= 0
                               ? fmt::format("[{}] {:.6g} vs {:.6g}", fmt::join(harness::unravel(m.max_abs_index, h.shape), ","),
                                             m.ref_at_max, m.hf_at_max)
                               : "";
    // NaN prints as "nan" whatever its sign bit (the status line names the NaN counts).
    auto num = [](double x, const char* spec) {
      return std::isnan(x) ? std::string("nan") : fmt::format(fmt::runtime(spec), x);
    };
    return fmt::format("{:<10} {:<17} {:<10} {:<10} {:<12} {}", num(m.rel_l2, "{:.3e}"), gradient ? norm_ratio_cell(h) : floor_cell(h),
                       num(m.max_abs, "{:.3e}"), num(m.max_rel, "{:.3e}"), num(m.cosine, "{:.9f}"), at);
  }
  if (h.top_k)
    return fmt::format("{} of {} tokens differ, {} near-ties{}", h.top_k->differ, h.top_k->tokens, h.top_k->near_ties,
                       near_tie_tokens_text(h.top_k->near_tie_tokens));
  return "";
}

// One side of the three-way view in a word: "agrees", "departs", or "not judged" (see its note).
const char* side_word(const harness::ReferenceSide& s) {
  return !s.within ? "not judged" : *s.within ? "agrees" : "departs";
}

// parity compare: a mixed-dtype pair at the lower precision, and the three-way verdict in short.
std::string compare_cells(const HookResult& h) {
  std::string out;
  if (const auto& lp = h.lower_precision)
    out += fmt::format("  [{} rounded: rel_l2 {:.3e}, floor {:.3e}]", lp->dtype, lp->rel_l2, lp->floor);
  // The three-way verdict judges every hook; a passing hook's adds nothing to its row.
  if (const auto& v = h.reference; v && h.status != Status::kPass)
    out += v->departs.empty() ? fmt::format("  [reference: base {}, target {}]", side_word(v->base), side_word(v->target))
           : v->departs == "neither" ? "  [reference: neither side departs]"
           : v->departs == "both"    ? "  [reference: both sides depart]"
                                     : fmt::format("  [reference: the {} departs]", v->departs);
  return out;
}

// "reference" -> "ref", "HF" -> "hf": the table's short names of the two sides.
std::string short_side(const std::string& side) {
  if (side == "reference") return "ref";
  if (side == "HF") return "hf";
  return side;
}

std::string row(size_t index, const HookResult& h, size_t width, bool first, bool color, bool gradient) {
  const char* on = !color ? "" : h.status == Status::kFail ? kRed : h.status == Status::kSkipped ? kYellow : "";
  const char* off = color && *on ? kReset : "";
  std::string line = fmt::format("{}{:>4}  {:<{}}  {:<7}  {}", on, index + 1, h.hook, width, harness::status_name(h.status),
                                 metrics_cell(h, gradient));
  if (h.limit) line += fmt::format("  [{}]", h.limit->str());
  line += compare_cells(h);
  if (!h.note.empty()) line += "  [" + h.note + "]";
  if (!h.message.empty() && h.status != Status::kPass) line += "  " + h.message;
  if (first) line += "  <<< first failure";
  return line + off + "\n";
}

std::string summary(const CheckReport& run) {
  const std::string counts = fmt::format("{} passed, {} failed, {} skipped", run.count(Status::kPass),
                                         run.count(Status::kFail), run.count(Status::kSkipped));
  if (run.passed()) return fmt::format("PASS {}: {}\n", harness::mode_name(run.mode), counts);
  std::string out = fmt::format("FAIL {}: {}", harness::mode_name(run.mode), counts);
  if (const HookResult* h = run.first_failure())
    out += fmt::format("; first failure{}: {} ({})", harness::is_grad_mode(run.mode) ? " in backward order" : "", h->hook,
                       h->message);
  out += "\n";
  for (const std::string& p : run.problems) out += fmt::format("FAIL {}: {}\n", harness::mode_name(run.mode), p);
  if (const HookResult* h = run.first_failure(); h && h->reference)
    out += fmt::format("first divergence {}: {}\n", h->hook, h->reference->verdict);
  return out;
}

}  // namespace

std::string text_report(const CheckResult& result, bool color, bool failures_only) {
  std::string out;
  for (const CheckReport& run : result.runs) {
    if (harness::is_compare_mode(run.mode))
      out += fmt::format("parity compare {} ({}) vs {} ({})  mode {}  budget {}\n", run.fixture, run.hf_side, run.target,
                         run.ref_side, harness::mode_name(run.mode), run.budget_source);
    else
      out += fmt::format("parity check {}  mode {}  precision {}  budget {}\n", run.fixture, harness::mode_name(run.mode),
                         precision_name(run.precision), run.budget_source);
    size_t width = 4;
    for (const HookResult& h : run.hooks) width = std::max(width, h.hook.size());
    out += fmt::format("{:>4}  {:<{}}  {:<7}  {:<10} {:<17} {:<10} {:<10} {:<12} {}\n", "#", "hook", width, "status",
                       "rel_l2", harness::is_grad_mode(run.mode) ? "norm, x floor" : "floor x ratio", "max_abs", "max_rel", "cosine",
                       fmt::format("max_abs at: {} vs {}  [budget]", short_side(run.ref_side), short_side(run.hf_side)));
    const HookResult* first = run.first_failure();
    for (size_t i = 0; i < run.hooks.size(); ++i) {
      const HookResult& h = run.hooks[i];
      if (failures_only && h.status == Status::kPass) continue;
      out += row(i, h, width, &h == first, color, harness::is_grad_mode(run.mode));
    }
    out += summary(run);
    for (const std::string& note : run.notes) out += fmt::format("note: {}\n", note);
  }
  if (result.baseline) out += baseline_text(*result.baseline, color);
  if (result.expectation) out += fmt::format("expect: {}\n", result.expectation->summary());
  out += fmt::format("verdict: {}\n", result.passed() ? "pass" : "fail");
  return out;
}

}  // namespace parity::reports
