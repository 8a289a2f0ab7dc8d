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
#include "io/atomic_file.h"
#include "logprobs/gate.h"
#include "run/check.h"

namespace CLI {
class Validator;
}

namespace parity::harness {

// A report file (--json, --junit, --html, ...): nullptr when `path` is empty (not asked for). Its
// temporary file is created at once, so an unwritable path fails before any work; the report
// replaces the target only when written whole (io/atomic_file.h), so a run that stops with an
// input error leaves an earlier report as it was and no partial one.
std::unique_ptr<AtomicFile> open_report(const std::string& path, const char* flag);
void write_report(AtomicFile* out, const std::string& text);

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

// The report files of one run (--json, --junit, --html; "" = not asked for), opened before the run
// and written from its outcome (see open_report).
class ReportFiles {
 public:
  ReportFiles(std::string json, std::string junit, std::string html);
  void write(const Outcome& outcome);

 private:
  std::string json_path_, junit_path_, html_path_;
  std::unique_ptr<AtomicFile> json_, junit_, html_;
};

// The outcome of a run in every form the CLI writes (one renderer per kind of result).
Outcome render(const CheckResult& result, bool color, bool failures_only);
Outcome render(const LogprobReport& report, bool color);

// CLI11 check for --hooks: an empty glob would silently mean "every hook".
CLI::Validator non_empty_glob();

// A single run's end: the terminal report on stdout, its warnings on stderr, the report files,
// the exit code (0 or 1).
int finish(ReportFiles& files, const Outcome& outcome);

}  // namespace parity::harness
