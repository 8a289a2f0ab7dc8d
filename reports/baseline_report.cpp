#include "baseline_report.h"

#include "report_util.h"

namespace parity::reports {

namespace {

using harness::BaselineEntry;
using harness::Drift;

std::string describe(const BaselineEntry& e) {
  switch (e.drift) {
    case Drift::kMissing: return fmt::format("{}: in the baseline ({:.6g}), not in this run", e.current.label(), e.baseline);
    case Drift::kNew:
      return fmt::format("{} = {:.6g}: not in the baseline (accept a new one: ci/accept_baselines)", e.current.label(),
                         e.current.value);
    default:
      return fmt::format("{} = {:.6g}, baseline {:.6g}, band [{:.6g}, {:.6g}] ({}): {}", e.current.label(),
                         e.current.value, e.baseline, e.low, e.high, e.rule, harness::drift_name(e.drift));
  }
}

}  // namespace

std::string baseline_text(const harness::BaselineReport& r, bool color) {
  const int64_t outside = static_cast<int64_t>(r.entries.size()) - r.count(Drift::kWithin);
  std::string out = fmt::format("{} baseline {}: {} of {} metrics within their band", r.passed() ? "PASS" : "FAIL",
                                r.source, r.count(Drift::kWithin), r.entries.size());
  if (outside) out += fmt::format(", {} grew, {} dropped, {} not finite, {} missing, {} new", r.count(Drift::kGrew),
                                  r.count(Drift::kDropped), r.count(Drift::kNotFinite), r.count(Drift::kMissing),
                                  r.count(Drift::kNew));
  out += "\n";
  for (const BaselineEntry& e : r.entries)
    if (e.drift != Drift::kWithin)
      out += fmt::format("{}  {}{}\n", color ? kRed : "", describe(e), color ? kReset : "");
  for (const std::string& p : r.problems) out += fmt::format("FAIL baseline: {}\n", p);
  return out;
}

nlohmann::json baseline_json(const harness::BaselineReport& r) {
  nlohmann::json entries = nlohmann::json::array();
  for (const BaselineEntry& e : r.entries)
    entries.push_back({{"mode", e.current.mode}, {"hook", e.current.hook}, {"metric", e.current.metric},
                       {"value", number(e.current.value)}, {"baseline", number(e.baseline)}, {"low", number(e.low)},
                       {"high", number(e.high)}, {"drift", harness::drift_name(e.drift)}, {"band_rule", e.rule}});
  nlohmann::json counts;
  for (Drift d : {Drift::kWithin, Drift::kGrew, Drift::kDropped, Drift::kNotFinite, Drift::kMissing, Drift::kNew})
    counts[std::string(harness::drift_name(d))] = r.count(d);
  return {{"source", r.source}, {"verdict", r.passed() ? "pass" : "fail"}, {"counts", counts},
          {"problems", r.problems}, {"entries", entries}};
}

std::string baseline_junit_suite(const harness::BaselineReport& r) {
  const std::string suite = xml_escape("baseline " + r.source);
  std::string out = fmt::format("  <testsuite name=\"{}\" tests=\"{}\" failures=\"{}\" skipped=\"0\">\n", suite,
                                r.entries.size() + r.problems.size(),
                                r.entries.size() - r.count(Drift::kWithin) + r.problems.size());
  for (const BaselineEntry& e : r.entries) {
    const std::string body =
        e.drift == Drift::kWithin ? "" : fmt::format("<failure message=\"{}\"/>", xml_escape(describe(e)));
    out += fmt::format("    <testcase classname=\"{}\" name=\"{}\">{}</testcase>\n", suite,
                       xml_escape(e.current.label()), body);
  }
  for (size_t i = 0; i < r.problems.size(); ++i)
    out += fmt::format("    <testcase classname=\"{}\" name=\"problem {}\"><failure message=\"{}\"/></testcase>\n", suite,
                       i + 1, xml_escape(r.problems[i]));
  return out + "  </testsuite>\n";
}

}  // namespace parity::reports
