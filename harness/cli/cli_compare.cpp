#include "cli/cli_compare.h"

#include <unistd.h>

#include <memory>

#include <CLI/CLI.hpp>

#include "run/run_case.h"

namespace parity::harness {

namespace {

// The flags as a plan for the one run path (run/run_case.h); the budget is read here, before the
// report files are opened, so a bad budget leaves no report behind.
ComparePlan plan_from(const CompareFlags& f) {
  ComparePlan p;
  p.base = f.base;
  p.target = f.target;
  if (!f.budget.empty()) {
    p.budget = load_budget(f.budget);
    if (p.budget->is_case)
      throw UsageError(fmt::format("--budget {} is a case file (it names a fixture, modes or a baseline)", f.budget));
  }
  if (!f.weights.empty()) p.weights = f.weights;
  p.hooks = f.hooks;
  p.reference = !f.no_reference;
  p.grad = f.grad;
  // The checkpoint is only read by the three-way replay: with it off, --weights would do nothing.
  if (f.no_reference && !f.weights.empty())
    throw UsageError("--weights is what the three-way replay reads; it cannot be combined with --no-reference");
  if (!f.baseline.empty()) p.baseline.compare_to = f.baseline;
  if (!f.write_baseline.empty()) p.baseline.write_to = f.write_baseline;
  p.baseline.accepted_from = fmt::format("{} vs {}", f.base, f.target);
  return p;
}

}  // namespace

CLI::App* add_compare_command(CLI::App& app, CompareFlags& f) {
  CLI::App* cmd = app.add_subcommand(
      "compare", "compare two dumps of the same model and inputs (HF vs an engine) hook by hook, with check's budgets");
  cmd->add_option("BASE", f.base, "the base dump (HDF5 fixture, e.g. HF's): the denominator of rel_l2")->required();
  cmd->add_option("TARGET", f.target, "the target dump (HDF5 fixture, e.g. an engine's)")->required();
  cmd->add_option("--budget", f.budget, "budget TOML with a [compare] section (default: built-in budget for the "
                                        "runs' dtype, or the lower precision of the two)");
  cmd->add_option("--hooks", f.hooks, "only hooks matching this glob, e.g. 'model.layers.1.*'")->check(non_empty_glob());
  cmd->add_option("--weights", f.weights, "HF checkpoint folder the reference replays both sides with (three-way)");
  cmd->add_flag("--grad", f.grad, "also compare the dumps' gradients (two gradient dumps of the same loss: "
                                  "parity-dump --grad), in backward order, against their noise floor");
  cmd->add_flag("--no-reference", f.no_reference, "do not run the reference: no noise floor (fixed limits) and no three-way view");
  cmd->add_option("--json", f.json_out, "write the JSON report here");
  cmd->add_option("--junit", f.junit_out, "write a JUnit XML report here (one testcase per hook)");
  cmd->add_option("--html", f.html_out, "write the self-contained HTML report here");
  cmd->add_option("--baseline", f.baseline, "accepted baseline JSON: flag metrics outside their band");
  cmd->add_option("--write-baseline", f.write_baseline, "accept this run as a baseline: write its metrics here");
  cmd->add_flag("--failures-only", f.failures_only, "print only hooks that failed or were skipped");
  return cmd;
}

int run_compare_command(const CompareFlags& f) {
  const ComparePlan plan = plan_from(f);
  ReportFiles files(f.json_out, f.junit_out, f.html_out);
  return finish(files, render(run_compare_plan(plan), isatty(STDOUT_FILENO) != 0, f.failures_only));
}

}  // namespace parity::harness
