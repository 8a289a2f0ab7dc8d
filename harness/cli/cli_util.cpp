#include "cli/cli_util.h"

#include <optional>

#include <CLI/CLI.hpp>
#include <fmt/format.h>

#include "html_report.h"
#include "logprobs_report.h"
#include "report.h"
#include "run/run_case.h"
#include "report_util.h"

namespace parity::harness {

std::unique_ptr<AtomicFile> open_report(const std::string& path, const char* flag) {
  if (path.empty()) return nullptr;
  return std::make_unique<AtomicFile>(path, flag);
}

void write_report(AtomicFile* out, const std::string& text) {
  if (out) out->commit(text);
}

ReportFiles::ReportFiles(std::string json, std::string junit, std::string html)
    : json_path_(std::move(json)), junit_path_(std::move(junit)), html_path_(std::move(html)) {
  json_ = open_report(json_path_, "--json");
  junit_ = open_report(junit_path_, "--junit");
  html_ = open_report(html_path_, "--html");
}

void ReportFiles::write(const Outcome& outcome) {
  // Every text is rendered before any file is replaced, so a failure in one leaves all as they were.
  const std::string json = outcome.json.dump(2) + "\n";
  const std::string junit = junit_ ? reports::junit_document(outcome.junit_suites) : "";
  const std::string html = html_ ? reports::html_report(outcome.json, html_path_) : "";
  write_report(json_.get(), json);
  write_report(junit_.get(), junit);
  write_report(html_.get(), html);
}

Outcome render(const CheckResult& result, bool color, bool failures_only) {
  Outcome o{reports::text_report(result, color, failures_only), reports::json_report(result),
            reports::junit_suites(result), result.passed(), summary_line(result), first_failure_line(result),
            std::nullopt, result.warnings};
  if (result.baseline) o.baseline_passed = result.baseline->passed();
  return o;
}

Outcome render(const LogprobReport& report, bool color) {
  Outcome o{reports::logprobs_text(report, color), reports::logprobs_json(report),
            reports::logprobs_junit_suites(report), report.passed(), summary_line(report), first_failure_line(report),
            std::nullopt, report.warnings};
  if (report.baseline) o.baseline_passed = report.baseline->passed();
  return o;
}

CLI::Validator non_empty_glob() {
  return CLI::Validator([](const std::string& s) { return s.empty() ? std::string("needs a non-empty glob") : ""; },
                        "GLOB");
}

int finish(ReportFiles& files, const Outcome& outcome) {
  fmt::print("{}", reports::terminal_safe(outcome.text));
  for (const std::string& w : outcome.warnings) fmt::print(stderr, "parity: {}\n", reports::terminal_safe(w));
  files.write(outcome);
  return outcome.passed ? 0 : 1;
}

}  // namespace parity::harness
