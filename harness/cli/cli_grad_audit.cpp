#include "cli/cli_grad_audit.h"

#include <memory>

#include <CLI/CLI.hpp>

#include "audit_report.h"
#include "cli/cli_util.h"
#include "report_util.h"
#include "run/run_case.h"

namespace parity::harness {

CLI::App* add_grad_audit_command(CLI::App& app, GradAuditFlags& f) {
  CLI::App* cmd = app.add_subcommand(
      "grad-audit", "which parameters learn: each side's gradient norm per parameter, and every router in words");
  cmd->add_option("DUMP", f.base, "a gradient dump (parity-dump --grad): HF's training backward")->required();
  cmd->add_option("TARGET", f.target, "a second gradient dump (an engine's); default: the reference's own backward");
  cmd->add_option("--budget", f.budget, "budget TOML: [grad.chained] (one dump) or [grad.compare] (two) sets each "
                                        "parameter's norm ratio band; default: built-in, from the noise floor");
  cmd->add_option("--weights", f.weights, "HF checkpoint folder the reference runs with");
  cmd->add_option("--json", f.json_out, "write the JSON audit here");
  cmd->add_flag("--failures-only", f.failures_only, "list only parameters that failed or were skipped");
  return cmd;
}

int run_grad_audit_command(const GradAuditFlags& f) {
  GradAuditPlan plan;
  plan.base = f.base;
  if (!f.target.empty()) plan.target = f.target;
  if (!f.budget.empty()) {
    plan.budget = load_budget(f.budget);
    if (plan.budget->is_case)
      throw UsageError(fmt::format("--budget {} is a case file (it names a fixture, modes or a baseline)", f.budget));
  }
  if (!f.weights.empty()) plan.weights = f.weights;
  std::unique_ptr<AtomicFile> json_out = open_report(f.json_out, "--json");
  const GradAudit audit = run_grad_audit_plan(plan);
  fmt::print("{}", reports::terminal_safe(reports::audit_text(audit, f.failures_only)));
  write_report(json_out.get(), reports::audit_json(audit).dump(2) + "\n");
  return audit.passed() ? 0 : 1;
}

}  // namespace parity::harness
