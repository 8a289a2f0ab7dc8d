// Writers for `parity check` results: the terminal table, JSON (stable keys, README.md
// "JSON report") and JUnit XML (one testcase per hook). A run of several modes (a case) is one
// report: verdict and first_failure cover all of them.
#pragma once

#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "check.h"

namespace parity::reports {

using harness::CheckReport;

bool all_passed(const std::vector<CheckReport>& runs);

// color: ANSI highlighting of failures (the CLI passes isatty(stdout)).
std::string text_report(const std::vector<CheckReport>& runs, bool color, bool failures_only);
nlohmann::json json_report(const std::vector<CheckReport>& runs);
std::string junit_report(const std::vector<CheckReport>& runs);

}  // namespace parity::reports
