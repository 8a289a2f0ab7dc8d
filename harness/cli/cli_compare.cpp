#include "cli/cli_compare.h"

#include <unistd.h>

#include <memory>

#include <CLI/CLI.hpp>

#include "io/checkpoint.h"
#include "run/compare.h"
#include "io/fixture_sources.h"
#include "report.h"

namespace parity::harness {

namespace {

void check_hooks_glob(const Fixture& base, const Fixture& target, const std::string& glob) {
  if (glob.empty()) return;
  for (const Fixture* f : {&base, &target})
    for (const std::string& key : comparable_keys(*f))
      if (glob_match(glob, key)) return;
  throw UsageError(fmt::format("--hooks '{}' matches no hook of {} or {}", glob, base.path().string(),
                               target.path().string()));
}

// --budget, read before the report files are opened (as check does): nullopt = built-in.
std::optional<Budget> load_flag_budget(const CompareFlags& f) {
  if (f.budget.empty()) return std::nullopt;
  Budget budget = load_budget(f.budget);
  if (budget.is_case)
    throw UsageError(fmt::format("--budget {} is a case file (it names a fixture, modes or a baseline)", f.budget));
  budget.section(Mode::kCompare);
  return budget;
}

Outcome compare_outcome(const CompareFlags& f, const std::optional<Budget>& loaded, bool color) {
  const Fixture base(f.base), target(f.target);
  check_hooks_glob(base, target, f.hooks);
  const Budget budget = loaded ? *loaded : builtin_compare_budget(base, target);
  std::unique_ptr<Checkpoint> checkpoint;
  if (!f.weights.empty()) {
    checkpoint = std::make_unique<Checkpoint>(f.weights);
    check_checkpoint_config(base, *checkpoint);
  }
  CompareOptions options;
  options.hooks_glob = f.hooks;
  options.reference = !f.no_reference;
  options.weights = checkpoint.get();
  if (loaded && loaded->modes.count(Mode::kIsolated)) options.isolated_budget = &*loaded;
  CheckResult result;
  result.runs.push_back(run_compare(base, target, budget, options));
  const CheckReport& run = result.runs.front();
  const std::vector<MetricValue> values = baseline_values(result.runs);
  const bool gate_passed = result.passed();
  const std::optional<std::filesystem::path> baseline =
      f.baseline.empty() ? std::nullopt : std::optional<std::filesystem::path>(f.baseline);
  result.baseline = compare_baseline(baseline, "check", values, budget.bands);
  write_baseline(f.write_baseline, gate_passed, "check", fmt::format("{} vs {}", f.base, f.target), values);
  std::string first;
  if (const HookResult* h = run.first_failure()) first = fmt::format("compare {}: {}", h->hook, h->message);
  else if (!run.problems.empty()) first = "compare: " + run.problems.front();
  else if (result.baseline && !result.baseline->passed()) first = result.baseline->first_failure();
  Outcome o{reports::text_report(result, color, f.failures_only),
            reports::json_report(result),
            reports::junit_suites(result),
            result.passed(),
            fmt::format("compare {} passed, {} failed, {} skipped", run.count(Status::kPass), run.count(Status::kFail),
                        run.count(Status::kSkipped)),
            first,
            std::nullopt};
  if (result.baseline) o.baseline_passed = result.baseline->passed();
  return o;
}

}  // namespace

CLI::App* add_compare_command(CLI::App& app, CompareFlags& f) {
  CLI::App* cmd = app.add_subcommand(
      "compare", "compare two dumps of the same model and inputs (HF vs an engine) hook by hook, with check's budgets");
  cmd->add_option("BASE", f.base, "the base dump (HDF5 fixture, e.g. HF's): the denominator of rel_l2")->required();
  cmd->add_option("TARGET", f.target, "the target dump (HDF5 fixture, e.g. an engine's)")->required();
  cmd->add_option("--budget", f.budget, "budget TOML with a [compare] section (default: built-in budget for the "
                                        "runs' dtype, or the lower precision of the two)");
  cmd->add_option("--hooks", f.hooks, "only hooks matching this glob, e.g. 'model.layers.1.*'");
  cmd->add_option("--weights", f.weights, "HF checkpoint folder the reference replays both sides with (three-way)");
  cmd->add_flag("--no-reference", f.no_reference, "no three-way view: do not replay the reference on either side");
  cmd->add_option("--json", f.json_out, "write the JSON report here");
  cmd->add_option("--junit", f.junit_out, "write a JUnit XML report here (one testcase per hook)");
  cmd->add_option("--html", f.html_out, "write the self-contained HTML report here");
  cmd->add_option("--baseline", f.baseline, "accepted baseline JSON: flag metrics outside their band");
  cmd->add_option("--write-baseline", f.write_baseline, "accept this run as a baseline: write its metrics here");
  cmd->add_flag("--failures-only", f.failures_only, "print only hooks that failed or were skipped");
  return cmd;
}

int run_compare_command(const CompareFlags& f) {
  const std::optional<Budget> budget = load_flag_budget(f);
  ReportFiles files(f.json_out, f.junit_out, f.html_out);
  return finish(files, compare_outcome(f, budget, isatty(STDOUT_FILENO) != 0));
}

}  // namespace parity::harness
