#include "cli/cli_suite.h"

#include <algorithm>
#include <optional>

#include <fmt/format.h>

#include "cli/cli_util.h"
#include "run/run_case.h"
#include "html_report.h"
#include "report_util.h"

namespace parity::harness {

namespace {

namespace fs = std::filesystem;
using nlohmann::json;

struct CaseFile {
  fs::path path;
  std::string name;  // the path under the cases directory, without ".toml": "logprobs/olmoe_base_vs_reference"
  bool logprobs = false;  // known once the case is loaded (a case that cannot be loaded is listed as check)
};

std::vector<CaseFile> find_cases(const fs::path& dir) {
  std::vector<CaseFile> cases;
  std::error_code ec;
  for (fs::recursive_directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec))
    if (it->is_regular_file() && it->path().extension() == ".toml") {
      const fs::path relative = fs::relative(it->path(), dir);
      cases.push_back({it->path(), fs::path(relative).replace_extension().generic_string(), false});
    }
  if (ec) throw InputError(fmt::format("cannot list the cases in {}: {}", dir.string(), ec.message()));
  if (cases.empty()) throw InputError(fmt::format("{} holds no case files (*.toml)", dir.string()));
  std::sort(cases.begin(), cases.end(), [](const CaseFile& a, const CaseFile& b) { return a.name < b.name; });
  return cases;
}

struct CaseRun {
  CaseFile file;
  std::optional<Outcome> outcome;
  std::string error;  // why the case could not run

  std::string verdict() const { return !outcome ? "error" : outcome->passed ? "pass" : "fail"; }
  int exit_code() const { return !outcome ? 2 : outcome->passed ? 0 : 1; }
};

void write_file(const fs::path& path, const std::string& text) {
  write_file_atomically(path, text, "--out");
}

// JSON text even when a string is not valid UTF-8 (a file name can be anything): replaced, not thrown.
std::string dump(const json& j) { return j.dump(2, ' ', false, json::error_handler_t::replace) + "\n"; }

// Where a case's reports go: OUT/cases/<name>.<ext>, apart from the run's own index files.
fs::path report_path(const fs::path& out_dir, const std::string& name, const char* ext) {
  return fs::path(out_dir / "cases" / name).concat(ext);
}

void write_reports(const CaseRun& run, const fs::path& out_dir) {
  fs::create_directories(report_path(out_dir, run.file.name, "").parent_path());
  write_file(report_path(out_dir, run.file.name, ".txt"), run.outcome->text);
  write_file(report_path(out_dir, run.file.name, ".json"), dump(run.outcome->json));
  write_file(report_path(out_dir, run.file.name, ".xml"), reports::junit_document(run.outcome->junit_suites));
  write_file(report_path(out_dir, run.file.name, ".html"), reports::html_report(run.outcome->json, run.file.name));
}

// Runs one case and writes its reports. Anything that goes wrong (an input error, an unwritable
// report) is the case's verdict, not the run's end; the case then keeps only its error text.
CaseRun run_one(const CaseFile& file, const fs::path& out_dir, bool write_baselines) {
  CaseRun run{file, std::nullopt, ""};
  std::error_code ec;
  for (const char* ext : {".txt", ".json", ".xml", ".html"}) fs::remove(report_path(out_dir, file.name, ext), ec);
  try {
    const Case spec = load_case(file.path);
    run.file.logprobs = spec.kind == CaseKind::kLogprobs;
    const CaseResult result = run_case(spec, write_baselines);  // the one run path
    run.outcome = result.check ? render(*result.check, /*color=*/false, /*failures_only=*/false)
                               : render(*result.logprobs, /*color=*/false);
    for (const std::string& w : run.outcome->warnings)
      fmt::print(stderr, "parity: {}: {}\n", reports::terminal_safe(file.name), reports::terminal_safe(w));
    write_reports(run, out_dir);
  } catch (const std::exception& e) {  // parity::Error, a filesystem error, std::bad_alloc on a hostile shape
    run.outcome.reset();
    run.error = e.what();
    for (const char* ext : {".json", ".xml", ".html"}) fs::remove(report_path(out_dir, file.name, ext), ec);
    try {
      fs::create_directories(report_path(out_dir, file.name, "").parent_path());
      write_file(report_path(out_dir, file.name, ".txt"), fmt::format("error: {}\n", run.error));
    } catch (const std::exception&) {  // the error is in the summary and on stdout either way
    }
  }
  return run;
}

json case_json(const CaseRun& r) {
  const std::string base = "cases/" + r.file.name;
  json reports = {{"text", base + ".txt"}};
  if (r.outcome) reports.update({{"html", base + ".html"}, {"json", base + ".json"}, {"junit", base + ".xml"}});
  return {{"case", r.file.path.generic_string()},
          {"name", r.file.name},
          {"kind", r.file.logprobs ? "logprobs" : "check"},
          {"verdict", r.verdict()},
          {"exit_code", r.exit_code()},
          {"summary", r.outcome ? r.outcome->summary : ""},
          {"first_failure", r.outcome ? r.outcome->first_failure : ""},
          {"error", r.outcome ? json() : json(r.error)},
          {"baseline", !r.outcome || !r.outcome->baseline_passed ? json() : json(*r.outcome->baseline_passed ? "pass" : "fail")},
          {"reports", reports}};
}

std::string junit_suite(const CaseRun& r) {
  if (r.outcome) return r.outcome->junit_suites;
  const std::string suite = reports::xml_escape("case " + r.file.name);
  return fmt::format("  <testsuite name=\"{0}\" tests=\"1\" failures=\"0\" errors=\"1\" skipped=\"0\">\n"
                     "    <testcase classname=\"{0}\" name=\"run\"><error message=\"{1}\"/></testcase>\n  </testsuite>\n",
                     suite, reports::xml_escape(r.error));
}

}  // namespace

int run_suite(const fs::path& cases_dir, const std::string& out_dir, bool write_baselines) {
  if (out_dir.empty())
    throw UsageError(fmt::format("{} is a directory: parity check DIR runs every case in it and needs --out DIR for "
                                 "its reports", cases_dir.string()));
  std::error_code ec;
  fs::create_directories(out_dir, ec);
  if (ec) throw UsageError(fmt::format("--out {}: {}", out_dir, ec.message()));
  const fs::path out(out_dir);
  // An earlier run's index must not pass for this one's if this one stops early.
  for (const char* name : {"index.html", "summary.json", "junit.xml"}) fs::remove(out / name, ec);
  const std::vector<CaseFile> cases = find_cases(cases_dir);
  json summary = {{"schema", "parity-summary/1"}, {"cases_from", cases_dir.generic_string()},
                  {"json", "summary.json"}, {"junit", "junit.xml"}, {"cases", json::array()}};
  std::string suites;
  int exit_code = 0;
  std::map<std::string, int> counts = {{"pass", 0}, {"fail", 0}, {"error", 0}};
  for (const CaseFile& file : cases) {
    const CaseRun run = run_one(file, out_dir, write_baselines);
    fmt::print("{}", reports::terminal_safe(fmt::format("{:<5} {:<8} {:<40} {}\n", run.verdict() == "pass" ? "PASS" : run.verdict() == "fail" ? "FAIL" : "ERROR",
               run.file.logprobs ? "logprobs" : "check", file.name,
               run.outcome ? run.outcome->summary + (run.outcome->passed ? "" : "; first failure: " + run.outcome->first_failure)
                           : run.error)));
    std::fflush(stdout);
    summary["cases"].push_back(case_json(run));
    suites += junit_suite(run);
    exit_code = std::max(exit_code, run.exit_code());
    ++counts[run.verdict()];
  }
  summary["verdict"] = exit_code == 0 ? "pass" : exit_code == 1 ? "fail" : "error";
  summary["exit_code"] = exit_code;
  summary["counts"] = counts;
  write_file(out / "summary.json", dump(summary));
  write_file(out / "junit.xml", reports::junit_document(suites));
  write_file(out / "index.html", reports::html_report(summary, (out / "summary.json").string()));
  fmt::print("verdict: {} ({} cases: {} passed, {} failed, {} could not run)\nindex: {}\n", summary["verdict"].get<std::string>(),
             cases.size(), counts["pass"], counts["fail"], counts["error"], (out / "index.html").string());
  return exit_code;
}

}  // namespace parity::harness
