#include "cli/cli_logprobs.h"

#include <unistd.h>

#include <CLI/CLI.hpp>

#include "io/checkpoint.h"
#include "cli/cli_util.h"
#include "logprobs/case.h"
#include "logprobs/from_fixtures.h"
#include "logprobs/run.h"
#include "logprobs_report.h"

namespace parity::harness {

namespace {

struct Plan {
  LogprobSources sources;
  std::optional<std::filesystem::path> tokenizer;
  LogprobBudget budget;
  std::optional<std::filesystem::path> baseline;
  std::string write_baseline;
  std::string accepted_from;  // what a written baseline says it was measured on
};

// accept_case_baseline: write the case's baseline from this run instead of comparing to it.
Plan plan_from(const LogprobsFlags& f, bool accept_case_baseline = false) {
  const bool by_flags = !f.run.empty() || !f.train.empty() || !f.rollout.empty();
  if (by_flags == !f.case_file.empty())
    throw UsageError("logprobs needs a RUN file, --train A --rollout B, or --case FILE (exactly one)");
  Plan p;
  if (!f.case_file.empty()) {
    if (!f.budget.empty()) throw UsageError("--budget cannot be combined with --case (the case holds its budget)");
    LogprobCase c = load_logprob_case(f.case_file);
    p = {c.sources, c.tokenizer, std::move(c.budget), c.baseline, "", f.case_file};
    if (accept_case_baseline) {
      p.write_baseline = c.baseline ? c.baseline->string() : "";
      p.baseline.reset();
    }
  } else {
    p.accepted_from = !f.run.empty() ? f.run : f.train + " vs " + f.rollout;
    if (!f.run.empty()) p.sources.run = f.run;
    if (!f.train.empty()) p.sources.train = f.train;
    if (!f.rollout.empty()) p.sources.rollout = f.rollout;
    check_sources(p.sources, "logprobs");
    p.budget = f.budget.empty() ? builtin_logprob_budget() : load_logprob_budget(f.budget);
  }
  if (!f.tokenizer.empty()) p.tokenizer = f.tokenizer;
  if (!f.baseline.empty()) p.baseline = f.baseline;
  if (!f.write_baseline.empty()) p.write_baseline = f.write_baseline;
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

LogprobRun make_run(const LogprobSources& s, const LogprobsFlags& f) {
  if (s.run) {
    if (!f.weights.empty() || f.precision != "auto")
      throw UsageError("--weights and --precision apply to a reference side, not to a run file");
    return load_logprob_run(*s.run);
  }
  const bool reference_trains = *s.train == kReferenceSide, reference_rolls = *s.rollout == kReferenceSide;
  if (!reference_trains && !reference_rolls) {
    if (!f.weights.empty() || f.precision != "auto")
      throw UsageError("--weights and --precision apply to a reference side (--train reference or --rollout reference)");
    return run_from_fixtures(Fixture(*s.train), Fixture(*s.rollout), f.top_k);
  }
  const Fixture fixture(reference_trains ? *s.rollout : *s.train);
  std::unique_ptr<Checkpoint> checkpoint;
  if (!f.weights.empty()) {
    checkpoint = std::make_unique<Checkpoint>(f.weights);
    check_checkpoint_config(fixture, *checkpoint);
  }
  const std::optional<Precision> precision =
      f.precision == "auto" ? std::nullopt : precision_from_name(f.precision);
  return run_against_reference(fixture, checkpoint.get(), precision, reference_trains ? "train" : "rollout", f.top_k);
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

namespace {

std::string first_failure(const LogprobReport& r) {
  for (const MetricVerdict& v : r.verdicts)
    if (!v.passed) return fmt::format("{} = {:.6g}, want {} ({})", v.metric, v.value, v.bound.str(), v.bound.where);
  if (!r.problems.empty()) return r.problems.front();
  if (r.baseline) return r.baseline->first_failure();
  return "";
}

Outcome logprobs_outcome(const LogprobsFlags& f, const Plan& plan, bool color) {
  const LogprobRun run = make_run(plan.sources, f);
  const std::optional<std::filesystem::path> tokenizer = plan.tokenizer ? plan.tokenizer : run.tokenizer;
  std::error_code ec;
  if (!plan.tokenizer && run.tokenizer && !std::filesystem::is_regular_file(*run.tokenizer, ec))
    throw InputError(fmt::format("logprob run {} names tokenizer {} (relative to the run file), which is not a "
                                 "file; pass --tokenizer", run.source, run.tokenizer->string()));
  LogprobReport report = gate_logprobs(run, plan.budget, tokenizer);
  const std::vector<MetricValue> values = baseline_values(report);
  const bool gate_passed = report.passed();
  report.baseline = compare_baseline(plan.baseline, "logprobs", values, plan.budget.bands);
  write_baseline(plan.write_baseline, gate_passed, "logprobs", plan.accepted_from, values);
  size_t failed = 0;
  for (const MetricVerdict& v : report.verdicts) failed += v.passed ? 0 : 1;
  Outcome o{reports::logprobs_text(report, color), reports::logprobs_json(report), reports::logprobs_junit_suites(report),
            report.passed(),
            fmt::format("{} of {} gated metrics passed; {} scored tokens, {} catastrophic", report.verdicts.size() - failed,
                        report.verdicts.size(), report.summary.scored_tokens, report.summary.catastrophic_count),
            first_failure(report), std::nullopt};
  if (report.baseline) o.baseline_passed = report.baseline->passed();
  return o;
}

}  // namespace

int run_logprobs_command(const CLI::App& cmd, const LogprobsFlags& f) {
  Plan plan = plan_from(f);
  apply_option_flags(cmd, f, plan.budget.options);
  ReportFiles files(f.json_out, f.junit_out, f.html_out);
  return finish(files, logprobs_outcome(f, plan, isatty(STDOUT_FILENO) != 0));
}

Outcome logprob_case_outcome(const std::filesystem::path& case_file, bool write_baseline) {
  LogprobsFlags f;
  f.case_file = case_file.string();
  return logprobs_outcome(f, plan_from(f, write_baseline), /*color=*/false);
}

}  // namespace parity::harness
