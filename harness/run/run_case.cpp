#include "run/run_case.h"

#include <algorithm>
#include <memory>

#include <fmt/format.h>

#include "gate/json_difference.h"
#include "io/atomic_file.h"
#include "io/checkpoint.h"
#include "io/fixture_sources.h"
#include "logprobs/from_fixtures.h"
#include "logprobs/run.h"
#include "run/compare.h"
#include "run/grad_check.h"
#include "run/grad_compare.h"

namespace parity::harness {

namespace {

// A checkpoint folder must hold the fixture's model: a checkpoint of another model must not slip
// through on coincidentally equal shapes (another rms_norm_eps or top-k). InputError naming the
// first resolved config key that differs; a checkpoint without a config.json is taken as it is.
std::unique_ptr<Checkpoint> open_checkpoint(const std::optional<std::filesystem::path>& dir, const Fixture& fixture) {
  if (!dir) return nullptr;
  auto checkpoint = std::make_unique<Checkpoint>(*dir);
  if (!checkpoint->has_config()) return checkpoint;
  if (const std::optional<JsonDifference> d = model_difference(fixture.config(), checkpoint->config()))
    throw InputError(fmt::format("--weights {}: config.json has {} = {}, the fixture's config has {}",
                                 checkpoint->dir().string(), d->path.empty() ? "(config)" : d->path,
                                 d->theirs.dump(), d->ours.dump()));
  return checkpoint;
}

// What a --hooks glob selects: forward hooks, gradient rows (a gradient run's).
struct GlobHits {
  bool forward = false, gradients = false;
};

GlobHits glob_hits(const std::vector<const Fixture*>& fixtures, const std::string& glob) {
  GlobHits hits;
  for (const Fixture* f : fixtures) {
    for (const std::string& key : comparable_keys(*f)) hits.forward = hits.forward || glob_match(glob, key);
    for (const std::string& name : gradient_names(*f)) hits.gradients = hits.gradients || glob_match(glob, name);
  }
  return hits;
}

// --hooks must select something in the runs asked for: a glob that matches no hook is a typo, not
// an empty pass. The runs of the side it misses are left out (a glob of parameter names gates the
// gradient runs alone, with a warning); with nothing left it is a usage error.
std::vector<Mode> modes_the_glob_selects(const std::vector<const Fixture*>& fixtures, const std::string& glob,
                                         const std::vector<Mode>& modes, std::vector<std::string>& warnings) {
  if (glob.empty()) return modes;
  const GlobHits hits = glob_hits(fixtures, glob);
  std::vector<Mode> kept;
  for (Mode m : modes)
    if (is_grad_mode(m) ? hits.gradients : hits.forward) kept.push_back(m);
  if (kept.empty()) {
    std::string names;
    for (const Fixture* f : fixtures) names += (names.empty() ? "" : " or ") + f->path().string();
    const bool gradients = std::any_of(modes.begin(), modes.end(), is_grad_mode);
    throw UsageError(fmt::format("--hooks '{}' matches no {} of {}", glob,
                                 gradients ? "hook or gradient" : "hook (a gradient row's name needs --grad)", names));
  }
  for (Mode m : modes)
    if (std::find(kept.begin(), kept.end(), m) == kept.end())
      warnings.push_back(fmt::format("--hooks '{}' matches nothing {} gates: {} did not run", glob, mode_name(m),
                                     mode_name(m)));
  return kept;
}

// Compares to the plan's baseline and writes one when asked: only a run that passed its gate is
// accepted (a warning says why nothing was written; the verdict already says the gate failed).
std::optional<BaselineReport> apply_baseline(const BaselinePlan& plan, const std::string& kind,
                                             const std::vector<MetricValue>& values, const BandBudget& bands,
                                             bool gate_passed, std::vector<std::string>& warnings) {
  std::optional<BaselineReport> report;
  if (plan.compare_to) report = compare_to_baseline(read_baseline(*plan.compare_to), kind, values, bands);
  if (plan.write_to) {
    if (gate_passed) write_file_atomically(*plan.write_to, baseline_json_text(kind, plan.accepted_from, values), "--write-baseline");
    else
      warnings.push_back(fmt::format("baseline {} not written: the run failed its gate, and a baseline is an accepted run",
                                     plan.write_to->string()));
  }
  return report;
}

// Bands say how far a run may move from a baseline: without one they would gate nothing, silently.
void require_baseline_for(const BandBudget& bands, const BaselinePlan& plan) {
  if (!bands.given_in.empty() && !plan.compare_to && !plan.write_to)
    throw UsageError(fmt::format("{} has [bands] but the run has no baseline for them to apply to (pass --baseline)",
                                 bands.given_in));
}

BaselinePlan case_baseline(const Case& c, bool accept_baseline) {
  BaselinePlan b;
  b.accepted_from = c.path.string();
  if (accept_baseline) b.write_to = c.baseline;
  else b.compare_to = c.baseline;
  return b;
}

}  // namespace

std::vector<Mode> with_gradient_modes(const std::vector<Mode>& modes) {
  std::vector<Mode> out;
  auto add = [&](Mode m) {
    if (std::find(out.begin(), out.end(), m) == out.end()) out.push_back(m);
  };
  for (Mode m : modes) add(m), add(grad_mode_of(m));
  return out;
}

CheckResult run_check_plan(const CheckPlan& plan) {
  if (plan.budget) require_baseline_for(plan.budget->bands, plan.baseline);
  const Fixture fixture(plan.fixture);
  CheckResult result;
  const std::vector<Mode> modes = modes_the_glob_selects({&fixture}, plan.hooks, plan.modes, result.warnings);
  const Budget budget = effective_budget(plan.budget, fixture.meta_string("dtype"));
  const std::unique_ptr<Checkpoint> checkpoint = open_checkpoint(plan.weights, fixture);
  for (Mode mode : modes)
    result.runs.push_back(run_check(fixture, budget, {mode, plan.precision, plan.hooks, checkpoint.get(), Variants()}));
  if (plan.expect) {
    result.expectation = check_expectation(*plan.expect, result.runs);
    if (!plan.expect->diagnosis.empty()) {
      result.expectation->diagnosis_expected = plan.expect->diagnosis;
      result.expectation->diagnosis_found =
          diagnose(fixture, budget, {plan.precision, checkpoint.get(), {}, plan.expect->diagnosis}).name();
    }
  }
  const std::vector<MetricValue> values = baseline_values(result.runs);
  const bool gate_passed = result.passed();
  result.baseline = apply_baseline(plan.baseline, "check", values, budget.bands, gate_passed, result.warnings);
  return result;
}

CheckResult run_compare_plan(const ComparePlan& plan) {
  if (plan.budget) require_baseline_for(plan.budget->bands, plan.baseline);
  const Fixture base(plan.base), target(plan.target);
  CheckResult result;
  const std::vector<Mode> asked = plan.grad ? std::vector<Mode>{Mode::kCompare, Mode::kGradCompare}
                                            : std::vector<Mode>{Mode::kCompare};
  const std::vector<Mode> modes = modes_the_glob_selects({&base, &target}, plan.hooks, asked, result.warnings);
  auto runs = [&](Mode m) { return std::find(modes.begin(), modes.end(), m) != modes.end(); };
  // The gate's dtype: the runs' own, or the lower precision of the two (compare.h).
  // float16 against bfloat16 has no lower precision, so no built-in budget: the file alone gates it.
  const std::string dtype = compare_run_dtype(base, target);
  const Budget budget = !plan.budget ? builtin_compare_budget(base, target)
                        : dtype.empty() ? *plan.budget
                                        : effective_budget(plan.budget, dtype);
  const std::unique_ptr<Checkpoint> checkpoint = open_checkpoint(plan.weights, base);
  CompareOptions options;
  options.hooks_glob = plan.hooks;
  options.reference = plan.reference;
  options.weights = checkpoint.get();
  // Each side's own replay is judged by the file's [isolated] section when it has one, else by the
  // built-in budget of that side's run dtype.
  if (plan.budget && plan.budget->modes.count(Mode::kIsolated)) options.isolated_budget = &budget;
  if (plan.budget && plan.budget->modes.count(Mode::kGradIsolated)) options.grad_isolated_budget = &budget;
  if (plan.grad) {
    check_gradient_pair(base, target);  // before any work
    CompareOptions forward = options, gradients = options;
    for (const Fixture* f : {&base, &target})
      for (const std::string& name : gradient_names(*f)) forward.elsewhere.push_back(name);
    gradients.elsewhere = comparable_keys(base);
    const std::vector<std::string> target_keys = comparable_keys(target);
    gradients.elsewhere.insert(gradients.elsewhere.end(), target_keys.begin(), target_keys.end());
    if (runs(Mode::kCompare)) result.runs.push_back(run_compare(base, target, budget, forward));
    if (runs(Mode::kGradCompare)) result.runs.push_back(run_grad_compare(base, target, budget, gradients));
  } else {
    result.runs.push_back(run_compare(base, target, budget, options));
    if (base.has_gradients() && target.has_gradients())
      result.runs.back().notes.push_back("both dumps hold gradients: compare --grad compares them too");
  }
  const std::vector<MetricValue> values = baseline_values(result.runs);
  const bool gate_passed = result.passed();
  result.baseline = apply_baseline(plan.baseline, "check", values, budget.bands, gate_passed, result.warnings);
  return result;
}

GradAudit run_grad_audit_plan(const GradAuditPlan& plan) {
  const Fixture base(plan.base);
  const std::optional<Fixture> target = plan.target ? std::optional<Fixture>(std::in_place, *plan.target) : std::nullopt;
  const std::string dtype = target ? compare_run_dtype(base, *target) : base.meta_string("dtype");
  const Budget budget = !plan.budget && target ? builtin_compare_budget(base, *target)
                        : dtype.empty()        ? *plan.budget
                                               : effective_budget(plan.budget, dtype);
  const std::unique_ptr<Checkpoint> checkpoint = open_checkpoint(plan.weights, base);
  return audit_gradients(base, target ? &*target : nullptr, budget, checkpoint.get());
}

LogprobReport run_logprob_plan(const LogprobPlan& plan) {
  require_baseline_for(plan.budget.bands, plan.baseline);
  const LogprobSources& s = plan.sources;
  check_sources(s, "logprobs");
  const bool reference_trains = s.train && *s.train == kReferenceSide;
  const bool reference_rolls = s.rollout && *s.rollout == kReferenceSide;
  if (!reference_trains && !reference_rolls && (plan.weights || plan.precision))
    throw UsageError(s.run ? "--weights and --precision apply to a reference side, not to a run file"
                           : "--weights and --precision apply to a reference side (--train reference or --rollout "
                             "reference)");
  LogprobRun run;
  if (s.run) {
    run = load_logprob_run(*s.run);
  } else if (!reference_trains && !reference_rolls) {
    run = run_from_fixtures(Fixture(*s.train), Fixture(*s.rollout), plan.top_k);
  } else {
    const Fixture fixture(reference_trains ? *s.rollout : *s.train);
    const std::unique_ptr<Checkpoint> checkpoint = open_checkpoint(plan.weights, fixture);
    run = run_against_reference(fixture, checkpoint.get(), plan.precision, reference_trains ? "train" : "rollout",
                                plan.top_k);
  }
  std::error_code ec;
  if (!plan.tokenizer && run.tokenizer && !std::filesystem::is_regular_file(*run.tokenizer, ec))
    throw InputError(fmt::format("logprob run {} names tokenizer {} (relative to the run file), which is not a "
                                 "file; pass --tokenizer", run.source, run.tokenizer->string()));
  LogprobReport report = gate_logprobs(run, plan.budget, plan.tokenizer ? plan.tokenizer : run.tokenizer);
  const std::vector<MetricValue> values = baseline_values(report);
  const bool gate_passed = report.passed();
  report.baseline = apply_baseline(plan.baseline, "logprobs", values, plan.budget.bands, gate_passed, report.warnings);
  return report;
}

Diagnosis run_diagnose_plan(const DiagnosePlan& plan) {
  const Fixture fixture(plan.fixture);
  const Budget budget = effective_budget(plan.budget, fixture.meta_string("dtype"));
  budget.section(Mode::kIsolated);  // diagnose replays isolated: the budget needs that section
  const std::unique_ptr<Checkpoint> checkpoint = open_checkpoint(plan.weights, fixture);
  return diagnose(fixture, budget, {plan.precision, checkpoint.get(), plan.only, plan.expected.value_or("")});
}

CheckPlan check_plan(const Case& c, bool accept_baseline) {
  if (c.kind != CaseKind::kCheck)
    throw UsageError(fmt::format("{} is a logprob case (it has a [logprobs] table): run it with parity logprobs --case",
                                 c.path.string()));
  CheckPlan p;
  p.fixture = c.fixture;
  p.modes = c.modes;
  p.precision = c.precision;
  p.budget = c.budget;
  p.expect = c.expect;
  p.baseline = case_baseline(c, accept_baseline);
  return p;
}

LogprobPlan logprob_plan(const Case& c, bool accept_baseline) {
  if (c.kind != CaseKind::kLogprobs)
    throw UsageError(fmt::format("{} is a check case (it has no [logprobs] table): run it with parity check --case",
                                 c.path.string()));
  LogprobPlan p;
  p.sources = c.sources;
  p.tokenizer = c.tokenizer;
  p.budget = c.logprob_budget;
  p.baseline = case_baseline(c, accept_baseline);
  return p;
}

DiagnosePlan diagnose_plan(const Case& c) {
  const CheckPlan check = check_plan(c);
  DiagnosePlan p;
  p.fixture = check.fixture;
  p.budget = check.budget;
  p.precision = check.precision;
  if (c.expect && !c.expect->diagnosis.empty()) p.expected = c.expect->diagnosis;
  return p;
}

CaseResult run_case(const std::filesystem::path& case_file, bool accept_baseline) {
  return run_case(load_case(case_file), accept_baseline);
}

CaseResult run_case(const Case& spec, bool accept_baseline) {
  CaseResult r{spec, std::nullopt, std::nullopt};
  if (r.spec.kind == CaseKind::kLogprobs) r.logprobs = run_logprob_plan(logprob_plan(r.spec, accept_baseline));
  else r.check = run_check_plan(check_plan(r.spec, accept_baseline));
  return r;
}

bool CaseResult::passed() const { return check ? check->passed() : logprobs->passed(); }
std::string CaseResult::summary() const { return check ? summary_line(*check) : summary_line(*logprobs); }
std::string CaseResult::first_failure() const {
  return check ? first_failure_line(*check) : first_failure_line(*logprobs);
}
std::optional<bool> CaseResult::baseline_passed() const {
  const std::optional<BaselineReport>& b = check ? check->baseline : logprobs->baseline;
  return b ? std::optional<bool>(b->passed()) : std::nullopt;
}
const std::vector<std::string>& CaseResult::warnings() const { return check ? check->warnings : logprobs->warnings; }

std::string summary_line(const CheckResult& result) {
  std::string out;
  for (const CheckReport& run : result.runs)
    out += fmt::format("{}{} {} passed, {} failed, {} skipped", out.empty() ? "" : "; ", mode_name(run.mode),
                       run.count(Status::kPass), run.count(Status::kFail), run.count(Status::kSkipped));
  if (result.expectation) out = result.expectation->summary() + " (" + out + ")";
  return out;
}

std::string first_failure_line(const CheckResult& result) {
  if (result.expectation) return result.expectation->met() ? "" : result.expectation->summary();
  for (const CheckReport& run : result.runs) {
    if (const HookResult* h = run.first_failure()) return fmt::format("{} {}: {}", mode_name(run.mode), h->hook, h->message);
    if (!run.problems.empty()) return fmt::format("{}: {}", mode_name(run.mode), run.problems.front());
  }
  if (result.baseline) return result.baseline->first_failure();
  return "";
}

std::string summary_line(const LogprobReport& report) {
  size_t failed = 0;
  for (const MetricVerdict& v : report.verdicts) failed += v.passed ? 0 : 1;
  return fmt::format("{} of {} gated metrics passed; {} scored tokens, {} catastrophic", report.verdicts.size() - failed,
                     report.verdicts.size(), report.summary.scored_tokens, report.summary.catastrophic_count);
}

std::string first_failure_line(const LogprobReport& report) {
  for (const MetricVerdict& v : report.verdicts)
    if (!v.passed) return fmt::format("{} = {:.6g}, want {} ({})", v.metric, v.value, v.bound.str(), v.bound.where);
  if (!report.problems.empty()) return report.problems.front();
  if (report.baseline) return report.baseline->first_failure();
  return "";
}

}  // namespace parity::harness
