#include "cli/cli_logprobs.h"

#include <unistd.h>

#include <CLI/CLI.hpp>

#include "cli/cli_util.h"
#include "run/run_case.h"

namespace parity::harness {

namespace {

// The flags as a plan for the one run path (run/run_case.h).
LogprobPlan plan_from(const LogprobsFlags& f) {
  const bool by_flags = !f.run.empty() || !f.train.empty() || !f.rollout.empty();
  if (by_flags == !f.case_file.empty())
    throw UsageError("logprobs needs a RUN file, --train A --rollout B, or --case FILE (exactly one)");
  LogprobPlan p;
  if (!f.case_file.empty()) {
    if (!f.budget.empty()) throw UsageError("--budget cannot be combined with --case (the case holds its budget)");
    p = logprob_plan(load_case(f.case_file));
  } else {
    p.baseline.accepted_from = !f.run.empty() ? f.run : f.train + " vs " + f.rollout;
    if (!f.run.empty()) p.sources.run = f.run;
    if (!f.train.empty()) p.sources.train = f.train;
    if (!f.rollout.empty()) p.sources.rollout = f.rollout;
    check_sources(p.sources, "logprobs");
    p.budget = f.budget.empty() ? builtin_logprob_budget() : load_logprob_budget(f.budget);
  }
  if (!f.tokenizer.empty()) p.tokenizer = f.tokenizer;
  if (!f.baseline.empty()) p.baseline.compare_to = f.baseline;
  if (!f.write_baseline.empty()) p.baseline.write_to = f.write_baseline;
  if (!f.weights.empty()) p.weights = f.weights;
  if (f.precision != "auto") p.precision = precision_from_name(f.precision);
  p.top_k = f.top_k;
  return p;
}

// Flags given on the command line override the budget's [logprobs.options].
void apply_option_flags(const CLI::App& cmd, const LogprobsFlags& f, LogprobOptions& o) {
  if (cmd.count("--is-threshold")) o.is_threshold = f.is_threshold;
  if (cmd.count("--veto-threshold")) o.veto_threshold = f.veto_threshold;
  if (cmd.count("--catastrophic-threshold")) o.catastrophic_threshold = f.catastrophic_threshold;
  if (cmd.count("--top")) o.catastrophic_top = f.top;
  if (cmd.count("--context")) o.context = f.context;
}

}  // namespace

CLI::App* add_logprobs_command(CLI::App& app, LogprobsFlags& f) {
  CLI::App* cmd = app.add_subcommand(
      "logprobs", "train-vs-inference logprob parity: diffs, ESS, KL, χ², catastrophic tokens, gated on a budget");
  cmd->add_option("RUN", f.run, "logprob-run HDF5 file (golden/README.md)");
  cmd->add_option("--train", f.train, "fixture of the training side, or 'reference' (the C++ reference)");
  cmd->add_option("--rollout", f.rollout, "fixture of the rollout side, or 'reference'");
  cmd->add_option("--case", f.case_file, "logprob case file (cases/logprobs/*.toml): sources and budget");
  cmd->add_option("--budget", f.budget, "budget TOML with a [logprobs] table (default: abs_diff_seq_mean <= 0.1)");
  cmd->add_option("--tokenizer", f.tokenizer, "tokenizer.json: show token texts (overrides the run's or case's)");
  cmd->add_option("--top-k", f.top_k, "alternatives per token taken from fixture logits (default 5)")
      ->check(CLI::Range(int64_t{0}, int64_t{1000}));
  cmd->add_option("--weights", f.weights, "HF checkpoint folder for the reference side instead of the fixture's weights");
  cmd->add_option("--precision", f.precision, "the reference side's precision: auto (the fixture's dtype), f64, f32, bf16")
      ->check(CLI::IsMember({"auto", "f64", "f32", "bf16"}));
  cmd->add_option("--is-threshold", f.is_threshold, "C for ess_batch and tis_clip_fraction (default 2)");
  cmd->add_option("--veto-threshold", f.veto_threshold, "τ for the veto fractions (default 1e-4)");
  cmd->add_option("--catastrophic-threshold", f.catastrophic_threshold, "|Δ| in nats to list a token (default 1)");
  cmd->add_option("--top", f.top, "catastrophic tokens listed (default 20; all are counted)")
      ->check(CLI::Range(int64_t{0}, int64_t{1} << 30));
  cmd->add_option("--context", f.context, "context tokens shown on each side (default 8)")
      ->check(CLI::Range(int64_t{0}, int64_t{1} << 20));
  cmd->add_option("--json", f.json_out, "write the JSON report here");
  cmd->add_option("--junit", f.junit_out, "write a JUnit XML report here (one testcase per gated metric)");
  cmd->add_option("--html", f.html_out, "write the self-contained HTML report here");
  cmd->add_option("--baseline", f.baseline, "accepted baseline JSON (golden/baselines/): flag metrics outside their band");
  cmd->add_option("--write-baseline", f.write_baseline, "accept this run as a baseline: write its metrics here");
  return cmd;
}

int run_logprobs_command(const CLI::App& cmd, const LogprobsFlags& f) {
  LogprobPlan plan = plan_from(f);
  apply_option_flags(cmd, f, plan.budget.options);
  ReportFiles files(f.json_out, f.junit_out, f.html_out);
  return finish(files, render(run_logprob_plan(plan), isatty(STDOUT_FILENO) != 0));
}

}  // namespace parity::harness
