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

}  // namespace

std::string junit_suites(const CheckResult& result) {
  std::string out;
  for (const CheckReport& run : result.runs) {
    const std::string suite = fmt::format("{} [{}]", run.fixture, harness::mode_name(run.mode));
    const int64_t failures = run.count(harness::Status::kFail) + static_cast<int64_t>(run.problems.size());
    out += fmt::format("  <testsuite name=\"{}\" tests=\"{}\" failures=\"{}\" skipped=\"{}\">\n", xml_escape(suite),
                       run.hooks.size() + run.problems.size(), failures, run.count(harness::Status::kSkipped));
    for (const harness::HookResult& h : run.hooks) out += testcase(suite, h.hook, h.status, h.message);
    for (size_t i = 0; i < run.problems.size(); ++i)
      out += testcase(suite, fmt::format("problem {}", i + 1), harness::Status::kFail, run.problems[i]);
    out += "  </testsuite>\n";
  }
  if (result.baseline) out += baseline_junit_suite(*result.baseline);
  return out;
}

std::string junit_report(const CheckResult& result) { return junit_document(junit_suites(result)); }

}  // namespace parity::reports
