// The run-vs-baseline part of every report (harness/baseline.h): terminal lines, JSON, and a JUnit
// testsuite with one testcase per baselined metric.
#pragma once

#include <string>

#include <nlohmann/json.hpp>

#include "gate/baseline.h"

namespace parity::reports {

std::string baseline_text(const harness::BaselineReport& report, bool color);
nlohmann::json baseline_json(const harness::BaselineReport& report);
std::string baseline_junit_suite(const harness::BaselineReport& report);  // a <testsuite> element

}  // namespace parity::reports
