#include "cli_check.h"

#include <unistd.h>

#include <fstream>
#include <memory>

#include <CLI/CLI.hpp>

#include "case.h"
#include "check.h"
#include "checkpoint.h"
#include "cli_util.h"
#include "fixture_sources.h"
#include "models/model.h"
#include "report.h"

namespace parity::harness {

namespace {

struct Plan {
  std::filesystem::path fixture;
  std::vector<Mode> modes;
  std::optional<Precision> precision;
  std::optional<Budget> budget;  // nullopt: the built-in defaults for the fixture's run dtype
};

Plan plan_from(const CheckFlags& f) {
  if (f.fixture.empty() == f.case_file.empty()) throw UsageError("check needs exactly one of FIXTURE or --case FILE");
  Plan p;
  if (!f.case_file.empty()) {
    if (!f.budget.empty()) throw UsageError("--budget cannot be combined with --case (the case holds its budget)");
    Case c = load_case(f.case_file);
    p = {c.fixture, c.modes, c.precision, std::move(c.budget)};
  } else {
    p.fixture = f.fixture;
    p.modes = {Mode::kIsolated};
    if (!f.budget.empty()) p.budget = load_budget(f.budget);
    if (p.budget && p.budget->is_case)
      throw UsageError(fmt::format("--budget {} is a case file (it names a fixture or modes): use --case", f.budget));
  }
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

}  // namespace

CLI::App* add_check_command(CLI::App& app, CheckFlags& f) {
  CLI::App* cmd = app.add_subcommand("check", "replay a fixture through the C++ reference and gate every hook");
  cmd->add_option("FIXTURE", f.fixture, "HDF5 fixture (golden/README.md)");
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
  cmd->add_flag("--failures-only", f.failures_only, "print only hooks that failed or were skipped");
  return cmd;
}

int run_check_command(const CheckFlags& f) {
  const Plan plan = plan_from(f);
  const std::unique_ptr<std::ofstream> json = open_report(f.json_out, "--json");
  const std::unique_ptr<std::ofstream> junit = open_report(f.junit_out, "--junit");
  const Fixture fixture(plan.fixture);
  check_hooks_glob(fixture, f.hooks);
  const Budget budget = plan.budget ? *plan.budget : builtin_budget(fixture.meta_string("dtype"));
  std::unique_ptr<Checkpoint> checkpoint;
  if (!f.weights.empty()) {
    checkpoint = std::make_unique<Checkpoint>(f.weights);
    check_checkpoint_config(fixture, *checkpoint);
  }
  std::vector<CheckReport> runs;
  for (Mode mode : plan.modes)
    runs.push_back(run_check(fixture, budget, {mode, plan.precision, f.hooks, checkpoint.get()}));
  fmt::print("{}", reports::text_report(runs, isatty(STDOUT_FILENO) != 0, f.failures_only));
  write_report(json.get(), f.json_out, reports::json_report(runs).dump(2) + "\n");
  write_report(junit.get(), f.junit_out, reports::junit_report(runs));
  return reports::all_passed(runs) ? 0 : 1;
}

}  // namespace parity::harness
