// Writers for `parity logprobs` results: the terminal summary, JSON (docs/cli.md "parity logprobs")
// and JUnit XML (one testcase per gated metric, plus one for non-finite logprobs).
#pragma once

#include <string>

#include <nlohmann/json.hpp>

#include "logprobs/gate.h"

namespace parity::reports {

std::string logprobs_text(const harness::LogprobReport& report, bool color);
nlohmann::json logprobs_json(const harness::LogprobReport& report);
std::string logprobs_junit_suites(const harness::LogprobReport& report);  // <testsuite> elements
std::string logprobs_junit(const harness::LogprobReport& report);         // the whole document

}  // namespace parity::reports
