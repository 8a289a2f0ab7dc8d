// Writers for `parity check` results: the terminal table, JSON (stable keys, docs/cli.md
// "JSON report") and JUnit XML (one testcase per hook). A run of several modes (a case) is one
// report: verdict and first_failure cover all of them, and the baseline comparison when there is one.
#pragma once

#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "run/check.h"

namespace parity::reports {

using harness::CheckReport;
using harness::CheckResult;

// color: ANSI highlighting of failures (the CLI passes isatty(stdout)).
std::string text_report(const CheckResult& result, bool color, bool failures_only);
nlohmann::json json_report(const CheckResult& result);
std::string junit_suites(const CheckResult& result);  // <testsuite> elements: a run's, then the baseline's
std::string junit_report(const CheckResult& result);  // the whole document

}  // namespace parity::reports
