#include "cli/cli_diagnose.h"

#include <memory>
#include <optional>

#include <CLI/CLI.hpp>

#include "cli/cli_util.h"
#include "run/run_case.h"
#include "diagnose_report.h"
#include "report_util.h"

namespace parity::harness {

namespace {

// The flags as a plan for the one run path (run/run_case.h).
DiagnosePlan plan_from(const DiagnoseFlags& f) {
  if (f.fixture.empty() == f.case_file.empty()) throw UsageError("diagnose needs exactly one of TARGET or --case FILE");
  DiagnosePlan p;
  if (!f.case_file.empty()) {
    if (!f.budget.empty()) throw UsageError("--budget cannot be combined with --case (the case holds its budget)");
    p = diagnose_plan(load_case(f.case_file));
  } else {
    p.fixture = f.fixture;
    if (!f.budget.empty()) p.budget = load_budget(f.budget);
  }
  if (f.precision != "auto") p.precision = precision_from_name(f.precision);
  if (!f.weights.empty()) p.weights = f.weights;
  p.only = f.variants;
  if (!f.expect.empty()) {
    if (f.expect != "hf" && !find_variant(f.expect))
      throw UsageError(fmt::format("--expect \"{}\" is neither \"hf\" nor a known variant (parity diagnose --list)", f.expect));
    p.expected = f.expect;
  }
  return p;
}

std::string variant_list() {
  std::string out;
  for (const VariantInfo& v : known_variants())
    out += fmt::format("{} ({}): {}\n  lives in: {}\n  {}\n\n", v.name, v.family, v.title, v.lives_in, v.story);
  return out;
}

}  // namespace

CLI::App* add_diagnose_command(CLI::App& app, DiagnoseFlags& f) {
  CLI::App* cmd = app.add_subcommand("diagnose", "name the known bug (reference variant) that explains a target dump");
  cmd->add_option("TARGET", f.fixture, "HDF5 fixture of the model to diagnose (an engine's or a patched HF's dump)");
  cmd->add_option("--case", f.case_file, "case file: its fixture, budget, precision and [expect] diagnosis");
  cmd->add_option("--budget", f.budget, "budget TOML with an [isolated] section (default: built-in for the run dtype)");
  cmd->add_option("--precision", f.precision, "auto (the fixture's run dtype), f64, f32 or bf16")
      ->check(CLI::IsMember({"auto", "f64", "f32", "bf16"}));
  cmd->add_option("--weights", f.weights, "HF checkpoint folder (safetensors) instead of the fixture's weights");
  cmd->add_option("--variants", f.variants, "only these variants (comma-separated names; default: all of the family)")
      ->delimiter(',');
  cmd->add_option("--expect", f.expect, "exit 0 only if the diagnosis is this: \"hf\" or a variant name");
  cmd->add_option("--json", f.json_out, "write the JSON diagnosis (with the ranking) here");
  cmd->add_flag("--list", f.list, "print every known variant with its explanation and exit");
  return cmd;
}

int run_diagnose_command(const DiagnoseFlags& f) {
  if (f.list && (!f.fixture.empty() || !f.case_file.empty() || !f.budget.empty() || !f.weights.empty() ||
                 !f.variants.empty() || !f.expect.empty() || !f.json_out.empty() || f.precision != "auto"))
    throw UsageError("--list prints the known variants and takes no TARGET, --case or other option");
  if (f.list) {
    fmt::print("{}", reports::terminal_safe(variant_list()));
    return 0;
  }
  const DiagnosePlan plan = plan_from(f);
  std::unique_ptr<AtomicFile> json_out = open_report(f.json_out, "--json");
  const Diagnosis d = run_diagnose_plan(plan);
  fmt::print("{}", reports::terminal_safe(reports::diagnose_text(d, plan.expected)));
  write_report(json_out.get(), reports::diagnose_json(d, plan.expected).dump(2) + "\n");
  const std::string found = d.name();
  if (plan.expected) return found == *plan.expected ? 0 : 1;
  return d.verdict == Verdict::kMatchesHf ? 0 : 1;
}

}  // namespace parity::harness
