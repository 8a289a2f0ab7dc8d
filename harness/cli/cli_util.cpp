#include "cli/cli_util.h"

#include <optional>

#include <fmt/format.h>

#include "html_report.h"
#include "logprobs_report.h"
#include "report.h"
#include "run/run_case.h"
#include "report_util.h"

namespace parity::harness {

std::unique_ptr<std::ofstream> open_report(const std::string& path, const char* flag) {
  if (path.empty()) return nullptr;
  auto out = std::make_unique<std::ofstream>(path, std::ios::binary | std::ios::trunc);
  if (!*out) throw UsageError(fmt::format("{} {}: cannot open the file for writing", flag, path));
  return out;
}

void write_report(std::ofstream* out, const std::string& path, const std::string& text) {
  if (!out) return;
  *out << text;
  out->close();
  if (!*out) throw InputError(fmt::format("cannot write {}", path));
}

ReportFiles::ReportFiles(std::string json, std::string junit, std::string html)
    : json_path_(std::move(json)), junit_path_(std::move(junit)), html_path_(std::move(html)) {
  json_ = open_report(json_path_, "--json");
  junit_ = open_report(junit_path_, "--junit");
  html_ = open_report(html_path_, "--html");
}

void ReportFiles::write(const Outcome& outcome) {
  write_report(json_.get(), json_path_, outcome.json.dump(2) + "\n");
  write_report(junit_.get(), junit_path_, reports::junit_document(outcome.junit_suites));
  if (html_) write_report(html_.get(), html_path_, reports::html_report(outcome.json, html_path_));
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

int finish(ReportFiles& files, const Outcome& outcome) {
  fmt::print("{}", outcome.text);
  for (const std::string& w : outcome.warnings) fmt::print(stderr, "parity: {}\n", w);
  files.write(outcome);
  return outcome.passed ? 0 : 1;
}

}  // namespace parity::harness
