#include "cli/cli_check.h"

#include <unistd.h>

#include <memory>

#include <CLI/CLI.hpp>

#include "run/case_file.h"
#include "run/check.h"
#include "io/checkpoint.h"
#include "run/diagnose.h"
#include "cli/cli_suite.h"
#include "io/fixture_sources.h"
#include "models/model.h"
#include "report.h"

namespace parity::harness {

namespace {

struct Plan {
  std::filesystem::path fixture;
  std::vector<Mode> modes;
  std::optional<Precision> precision;
  std::optional<Budget> budget;  // nullopt: the built-in defaults for the fixture's run dtype
  std::optional<std::filesystem::path> baseline;
  std::optional<Expectation> expect;  // a bug-zoo case: the gate must fail where it says
  std::string write_baseline;
  std::string accepted_from;  // what a written baseline says it was measured on
};

// accept_case_baseline: write the case's baseline from this run instead of comparing to it.
Plan plan_from(const CheckFlags& f, bool accept_case_baseline = false) {
  if (f.fixture.empty() == f.case_file.empty()) throw UsageError("check needs exactly one of FIXTURE or --case FILE");
  Plan p;
  if (!f.case_file.empty()) {
    if (!f.budget.empty()) throw UsageError("--budget cannot be combined with --case (the case holds its budget)");
    Case c = load_case(f.case_file);
    p = {c.fixture, c.modes, c.precision, std::move(c.budget), c.baseline, c.expect, "", f.case_file};
    if (accept_case_baseline) {
      p.write_baseline = c.baseline ? c.baseline->string() : "";
      p.baseline.reset();
    }
  } else {
    p.fixture = f.fixture;
    p.accepted_from = f.fixture;
    p.modes = {Mode::kIsolated};
    if (!f.budget.empty()) p.budget = load_budget(f.budget);
    if (p.budget && p.budget->is_case)
      throw UsageError(fmt::format("--budget {} is a case file (it names a fixture, modes or a baseline): use --case",
                                   f.budget));
  }
  if (!f.baseline.empty()) p.baseline = f.baseline;
  if (!f.write_baseline.empty()) p.write_baseline = f.write_baseline;
  if (!f.mode.empty()) p.modes = {*mode_from_name(f.mode)};  // CLI11 already checked the name
  if (f.precision != "auto") p.precision = precision_from_name(f.precision);
  return p;
}

void check_hooks_glob(const Fixture& fixture, const std::string& glob) {
  if (glob.empty()) return;
  for (const std::string& key : comparable_keys(fixture))
    if (glob_match(glob, key)) return;
  throw UsageError(fmt::format("--hooks '{}' matches no hook of {}", glob, fixture.path().string()));
}

std::string run_summary(const CheckResult& result) {
  std::string out;
  for (const CheckReport& run : result.runs)
    out += fmt::format("{}{} {} passed, {} failed, {} skipped", out.empty() ? "" : "; ", mode_name(run.mode),
                       run.count(Status::kPass), run.count(Status::kFail), run.count(Status::kSkipped));
  if (result.expectation) out = result.expectation->summary() + " (" + out + ")";
  return out;
}

std::string first_failure(const CheckResult& result) {
  if (result.expectation) return result.expectation->met() ? "" : result.expectation->summary();
  for (const CheckReport& run : result.runs) {
    if (const HookResult* h = run.first_failure()) return fmt::format("{} {}: {}", mode_name(run.mode), h->hook, h->message);
    if (!run.problems.empty()) return fmt::format("{}: {}", mode_name(run.mode), run.problems.front());
  }
  if (result.baseline) return result.baseline->first_failure();
  return "";
}

Outcome check_outcome(const CheckFlags& f, const Plan& plan, bool color) {
  const Fixture fixture(plan.fixture);
  check_hooks_glob(fixture, f.hooks);
  const Budget budget = plan.budget ? *plan.budget : builtin_budget(fixture.meta_string("dtype"));
  std::unique_ptr<Checkpoint> checkpoint;
  if (!f.weights.empty()) {
    checkpoint = std::make_unique<Checkpoint>(f.weights);
    check_checkpoint_config(fixture, *checkpoint);
  }
  CheckResult result;
  for (Mode mode : plan.modes)
    result.runs.push_back(run_check(fixture, budget, {mode, plan.precision, f.hooks, checkpoint.get(), Variants()}));
  if (plan.expect) {
    result.expectation = check_expectation(*plan.expect, result.runs);
    if (!plan.expect->diagnosis.empty()) {
      result.expectation->diagnosis_expected = plan.expect->diagnosis;
      result.expectation->diagnosis_found = diagnose(fixture, budget, {plan.precision, checkpoint.get(), {}, plan.expect->diagnosis}).name();
    }
  }
  const std::vector<MetricValue> values = baseline_values(result.runs);
  const bool gate_passed = result.passed();
  result.baseline = compare_baseline(plan.baseline, "check", values, budget.bands);
  write_baseline(plan.write_baseline, gate_passed, "check", plan.accepted_from, values);
  Outcome o{reports::text_report(result, color, f.failures_only), reports::json_report(result),
            reports::junit_suites(result), result.passed(), run_summary(result), first_failure(result), std::nullopt};
  if (result.baseline) o.baseline_passed = result.baseline->passed();
  return o;
}

}  // namespace

CLI::App* add_check_command(CLI::App& app, CheckFlags& f) {
  CLI::App* cmd = app.add_subcommand("check", "replay a fixture through the C++ reference and gate every hook");
  cmd->add_option("FIXTURE", f.fixture, "HDF5 fixture (golden/README.md), or a directory of cases: runs every case");
  cmd->add_option("--case", f.case_file, "case file (cases/*.toml): fixture, modes and budget");
  cmd->add_option("--mode", f.mode, "isolated (default): each module on HF's own inputs; chained: end to end")
      ->check(CLI::IsMember({"isolated", "chained"}));
  cmd->add_option("--budget", f.budget, "budget TOML (default: built-in budget for the fixture's dtype)");
  cmd->add_option("--precision", f.precision, "auto (the fixture's run dtype), f64, f32 or bf16")
      ->check(CLI::IsMember({"auto", "f64", "f32", "bf16"}));
  cmd->add_option("--weights", f.weights, "HF checkpoint folder (safetensors) instead of the fixture's weights");
  cmd->add_option("--hooks", f.hooks, "only hooks matching this glob, e.g. 'model.layers.1.*'");
  cmd->add_option("--json", f.json_out, "write the JSON report here");
  cmd->add_option("--junit", f.junit_out, "write a JUnit XML report here (one testcase per hook)");
  cmd->add_option("--html", f.html_out, "write the self-contained HTML report here");
  cmd->add_option("--baseline", f.baseline, "accepted baseline JSON (golden/baselines/): flag metrics outside their band");
  cmd->add_option("--write-baseline", f.write_baseline, "accept this run as a baseline: write its metrics here");
  cmd->add_option("--out", f.out_dir, "with a directory of cases: write every case's reports, index.html, "
                                      "summary.json and junit.xml here");
  cmd->add_flag("--write-baselines", f.write_baselines,
                "with a directory of cases: accept each case's run as its baseline (the case's baseline file)");
  cmd->add_flag("--failures-only", f.failures_only, "print only hooks that failed or were skipped");
  return cmd;
}

int run_check_command(const CLI::App& cmd, const CheckFlags& f) {
  std::error_code ec;
  if (!f.fixture.empty() && std::filesystem::is_directory(f.fixture, ec)) {
    for (const char* flag : {"--case", "--mode", "--budget", "--precision", "--weights", "--hooks", "--json", "--junit",
                             "--html", "--baseline", "--write-baseline", "--failures-only"})
      if (cmd.count(flag))
        throw UsageError(fmt::format("{} applies to one fixture or case, not to a directory of cases", flag));
    return run_suite(f.fixture, f.out_dir, f.write_baselines);
  }
  if (!f.out_dir.empty() || f.write_baselines)
    throw UsageError("--out and --write-baselines take a directory of cases (parity check cases/ --out DIR)");
  const Plan plan = plan_from(f);
  ReportFiles files(f.json_out, f.junit_out, f.html_out);
  return finish(files, check_outcome(f, plan, isatty(STDOUT_FILENO) != 0));
}

Outcome check_case_outcome(const std::filesystem::path& case_file, bool write_baseline) {
  CheckFlags f;
  f.case_file = case_file.string();
  return check_outcome(f, plan_from(f, write_baseline), /*color=*/false);
}

}  // namespace parity::harness
