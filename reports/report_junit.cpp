#include <algorithm>

#include "baseline_report.h"
#include "report.h"
#include "report_util.h"

namespace parity::reports {

namespace {

std::string testcase(const std::string& classname, const std::string& name, harness::Status status,
                     const std::string& message) {
  std::string body;
  if (status == harness::Status::kFail)
    body = fmt::format("<failure message=\"{}\"/>", xml_escape(message));
  else if (status == harness::Status::kSkipped)
    body = fmt::format("<skipped message=\"{}\"/>", xml_escape(message));
  return fmt::format("    <testcase classname=\"{}\" name=\"{}\">{}</testcase>\n", xml_escape(classname),
                     xml_escape(name), body);
}

// A bug-zoo case: one testcase per mode, passing when its gate failed first where expected.
std::string expectation_suite(const harness::ExpectationReport& e) {
  const std::string suite = "expected failure";
  const bool diagnosed = !e.diagnosis_expected.empty();
  const auto failures = std::count_if(e.modes.begin(), e.modes.end(), [](const auto& m) { return !m.met; }) +
                        (diagnosed && e.diagnosis_found != e.diagnosis_expected ? 1 : 0);
  std::string out = fmt::format("  <testsuite name=\"{}\" tests=\"{}\" failures=\"{}\" skipped=\"0\">\n", suite,
                                e.modes.size() + (diagnosed ? 1 : 0), failures);
  for (const harness::ModeExpectation& m : e.modes)
    out += testcase(suite, fmt::format("{} fails first at {}", harness::mode_name(m.mode), m.expected),
                    m.met ? harness::Status::kPass : harness::Status::kFail,
                    m.actual.empty() ? "the gate passed" : "first failure: " + m.actual);
  if (!e.diagnosis_expected.empty())
    out += testcase(suite, "diagnose names " + e.diagnosis_expected,
                    e.diagnosis_found == e.diagnosis_expected ? harness::Status::kPass : harness::Status::kFail,
                    "diagnose: " + e.diagnosis_found);
  return out + "  </testsuite>\n";
}

}  // namespace

std::string junit_suites(const CheckResult& result) {
  std::string out;
  for (const CheckReport& run : result.runs) {
    // A bug-zoo case's hooks are meant to fail: its testcases are the expectation's, not every hook's.
    if (result.expectation) break;
    const std::string suite = run.target.empty() ? fmt::format("{} [{}]", run.fixture, harness::mode_name(run.mode))
                                                 : fmt::format("{} vs {} [{}]", run.fixture, run.target,
                                                               harness::mode_name(run.mode));  // parity compare
    const int64_t failures = run.count(harness::Status::kFail) + static_cast<int64_t>(run.problems.size());
    out += fmt::format("  <testsuite name=\"{}\" tests=\"{}\" failures=\"{}\" skipped=\"{}\">\n", xml_escape(suite),
                       run.hooks.size() + run.problems.size(), failures, run.count(harness::Status::kSkipped));
    for (const harness::HookResult& h : run.hooks)
      out += testcase(suite, h.hook, h.status, h.reference ? h.message + "; " + h.reference->verdict : h.message);
    for (size_t i = 0; i < run.problems.size(); ++i)
      out += testcase(suite, fmt::format("problem {}", i + 1), harness::Status::kFail, run.problems[i]);
    out += "  </testsuite>\n";
  }
  if (result.baseline) out += baseline_junit_suite(*result.baseline);
  if (result.expectation) out += expectation_suite(*result.expectation);
  return out;
}

std::string junit_report(const CheckResult& result) { return junit_document(junit_suites(result)); }

}  // namespace parity::reports
