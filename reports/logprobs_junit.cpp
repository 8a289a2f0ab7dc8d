#include "baseline_report.h"
#include "logprobs_report.h"
#include "report_util.h"

namespace parity::reports {

std::string logprobs_junit_suites(const harness::LogprobReport& r) {
  const std::string suite = xml_escape(fmt::format("logprobs {}", r.source));
  size_t failures = r.problems.size();
  for (const harness::MetricVerdict& v : r.verdicts) failures += v.passed ? 0 : 1;
  std::string out = fmt::format("  <testsuite name=\"{}\" tests=\"{}\" failures=\"{}\" skipped=\"0\">\n", suite,
                     r.verdicts.size() + 1, failures);
  for (const harness::MetricVerdict& v : r.verdicts) {
    const std::string body =
        v.passed ? "" : fmt::format("<failure message=\"{}\"/>", xml_escape(fmt::format("{} = {:.6g}, want {} ({})",
                                                                                      v.metric, v.value, v.bound.str(),
                                                                                      v.bound.where)));
    out += fmt::format("    <testcase classname=\"{}\" name=\"{}\">{}</testcase>\n", suite, xml_escape(v.metric), body);
  }
  const std::string problems = r.problems.empty() ? "" : r.problems.front();
  out += fmt::format("    <testcase classname=\"{}\" name=\"finite logprobs\">{}</testcase>\n", suite,
                     problems.empty() ? "" : fmt::format("<failure message=\"{}\"/>", xml_escape(problems)));
  out += "  </testsuite>\n";
  if (r.baseline) out += baseline_junit_suite(*r.baseline);
  return out;
}

std::string logprobs_junit(const harness::LogprobReport& r) { return junit_document(logprobs_junit_suites(r)); }

}  // namespace parity::reports
