// What every `parity` subcommand shares: a run's outcome in every report form, and report files.
// Running is not here: every subcommand calls the one run path (run/run_case.h).
#pragma once

#include <filesystem>
#include <fstream>
#include <memory>
#include <optional>
#include <string>

#include <nlohmann/json.hpp>

#include "errors.h"
#include "logprobs/gate.h"
#include "run/check.h"

namespace parity::harness {

// Report files are opened (and emptied) before the run: an unwritable path fails before any work,
// and a run that stops with an input error leaves no stale report from an earlier run behind.
// nullptr when `path` is empty (no report asked for).
std::unique_ptr<std::ofstream> open_report(const std::string& path, const char* flag);
void write_report(std::ofstream* out, const std::string& path, const std::string& text);

// One gated run (a check of one or more modes, or a logprob run) in every form the CLI writes.
struct Outcome {
  std::string text;          // the terminal report
  nlohmann::json json;       // the JSON report; the HTML report is rendered from it
  std::string junit_suites;  // <testsuite> elements
  bool passed = false;
  std::string summary;        // one line: "isolated 250/250 passed, chained 250/250 passed"
  std::string first_failure;  // "" when it passed
  std::optional<bool> baseline_passed;  // nullopt: no baseline
  std::vector<std::string> warnings;     // printed on stderr
};

// The report files of one run (--json, --junit, --html; "" = not asked for), opened and emptied
// before the run (see open_report) and written from its outcome.
class ReportFiles {
 public:
  ReportFiles(std::string json, std::string junit, std::string html);
  void write(const Outcome& outcome);

 private:
  std::string json_path_, junit_path_, html_path_;
  std::unique_ptr<std::ofstream> json_, junit_, html_;
};

// The outcome of a run in every form the CLI writes (one renderer per kind of result).
Outcome render(const CheckResult& result, bool color, bool failures_only);
Outcome render(const LogprobReport& report, bool color);

// A single run's end: the terminal report on stdout, its warnings on stderr, the report files,
// the exit code (0 or 1).
int finish(ReportFiles& files, const Outcome& outcome);

}  // namespace parity::harness
