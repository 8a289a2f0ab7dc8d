// What every `parity` subcommand shares: usage errors, a command's outcome in every report form,
// report files, and baselines.
#pragma once

#include <filesystem>
#include <fstream>
#include <memory>
#include <optional>
#include <string>

#include <nlohmann/json.hpp>

#include "gate/baseline.h"
#include "io/checkpoint.h"
#include "io/fixture.h"

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

// A single run's end: the terminal report on stdout, the report files, the exit code (0 or 1).
int finish(ReportFiles& files, const Outcome& outcome);

// --baseline: the comparison of a run's values to an accepted baseline (nullopt without one).
std::optional<BaselineReport> compare_baseline(const std::optional<std::filesystem::path>& baseline,
                                               const std::string& kind, const std::vector<MetricValue>& values,
                                               const BandBudget& bands);
// --write-baseline: only a run that passed its gate is accepted; otherwise a line on stderr says why
// nothing was written (the exit code already says the gate failed).
void write_baseline(const std::string& path, bool gate_passed, const std::string& kind,
                    const std::string& accepted_from, const std::vector<MetricValue>& values);

// --weights DIR must hold the fixture's model: InputError naming the first resolved config key
// whose value differs (a config.json in another layout of the same model is accepted).
void check_checkpoint_config(const Fixture& fixture, const Checkpoint& checkpoint);

}  // namespace parity::harness
