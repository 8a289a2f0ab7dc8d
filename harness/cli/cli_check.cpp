#include "cli/cli_check.h"

#include <unistd.h>

#include <memory>

#include <CLI/CLI.hpp>

#include "cli/cli_suite.h"
#include "run/run_case.h"

namespace parity::harness {

namespace {

// The flags as a plan for the one run path (run/run_case.h).
CheckPlan plan_from(const CheckFlags& f) {
  if (f.fixture.empty() == f.case_file.empty()) throw UsageError("check needs exactly one of FIXTURE or --case FILE");
  CheckPlan p;
  if (!f.case_file.empty()) {
    if (!f.budget.empty()) throw UsageError("--budget cannot be combined with --case (the case holds its budget)");
    p = check_plan(load_case(f.case_file));
  } else {
    p.fixture = f.fixture;
    p.baseline.accepted_from = f.fixture;
    if (!f.budget.empty()) p.budget = load_budget(f.budget);
    if (p.budget && p.budget->is_case)
      throw UsageError(fmt::format("--budget {} is a case file (it names a fixture, modes or a baseline): use --case",
                                   f.budget));
  }
  if (!f.weights.empty()) p.weights = f.weights;
  p.hooks = f.hooks;
  if (!f.baseline.empty()) p.baseline.compare_to = f.baseline;
  if (!f.write_baseline.empty()) p.baseline.write_to = f.write_baseline;
  if (!f.mode.empty()) p.modes = {*mode_from_name(f.mode)};  // CLI11 already checked the name
  if (f.grad) p.modes = with_gradient_modes(p.modes);
  if (f.precision != "auto") p.precision = precision_from_name(f.precision);
  return p;
}

}  // namespace

CLI::App* add_check_command(CLI::App& app, CheckFlags& f) {
  CLI::App* cmd = app.add_subcommand("check", "replay a fixture through the C++ reference and gate every hook");
  cmd->add_option("FIXTURE", f.fixture, "HDF5 fixture (golden/README.md), or a directory of cases: runs every case");
  cmd->add_option("--case", f.case_file, "case file (cases/*.toml): fixture, modes and budget");
  cmd->add_option("--mode", f.mode, "isolated (default): each module on HF's own inputs; chained: end to end; "
                                    "grad.isolated, grad.chained: the backward of a gradient fixture")
      ->check(CLI::IsMember({"isolated", "chained", "grad.isolated", "grad.chained"}));
  cmd->add_flag("--grad", f.grad, "also gate the fixture's gradients: each mode adds its gradient mode "
                                  "(isolated -> grad.isolated, chained -> grad.chained)");
  cmd->add_option("--budget", f.budget, "budget TOML (default: built-in budget for the fixture's dtype)");
  cmd->add_option("--precision", f.precision, "auto (the fixture's run dtype), f64, f32 or bf16")
      ->check(CLI::IsMember({"auto", "f64", "f32", "bf16"}));
  cmd->add_option("--weights", f.weights, "HF checkpoint folder (safetensors) instead of the fixture's weights");
  cmd->add_option("--hooks", f.hooks, "only hooks matching this glob, e.g. 'model.layers.1.*'")->check(non_empty_glob());
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
    for (const char* flag : {"--case", "--mode", "--grad", "--budget", "--precision", "--weights", "--hooks", "--json", "--junit",
                             "--html", "--baseline", "--write-baseline", "--failures-only"})
      if (cmd.count(flag))
        throw UsageError(fmt::format("{} applies to one fixture or case, not to a directory of cases", flag));
    return run_suite(f.fixture, f.out_dir, f.write_baselines);
  }
  if (!f.out_dir.empty() || f.write_baselines)
    throw UsageError("--out and --write-baselines take a directory of cases (parity check cases/ --out DIR)");
  const CheckPlan plan = plan_from(f);
  ReportFiles files(f.json_out, f.junit_out, f.html_out);
  return finish(files, render(run_check_plan(plan), isatty(STDOUT_FILENO) != 0, f.failures_only));
}

}  // namespace parity::harness
