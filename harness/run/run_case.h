// The one run path: everything between parsed options and a rendered report, for every front end
// (the CLI's check, compare, logprobs and diagnose, multi-case runs, and the Python module). A
// front end turns its options into a plan, calls run_*, renders the result and maps it to an exit
// code; it never chooses budgets, checks a checkpoint, loops over modes, evaluates expectations or
// touches baselines itself.
#pragma once

#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include "gate/budget.h"
#include "logprobs/gate.h"
#include "logprobs/sources.h"
#include "run/case_file.h"
#include "run/check.h"
#include "run/diagnose.h"
#include "run/grad_audit.h"

namespace parity::harness {

// A run's regression baseline: compared to, or written from the run (only when its gate passes).
struct BaselinePlan {
  std::optional<std::filesystem::path> compare_to;
  std::optional<std::filesystem::path> write_to;
  std::string accepted_from;  // what a written baseline says it was measured on
};

struct CheckPlan {
  std::filesystem::path fixture;
  std::vector<Mode> modes{Mode::kIsolated};
  std::optional<Precision> precision;              // nullopt: the fixture's run dtype
  std::optional<Budget> budget;                    // a budget or case file's; over the built-in one
  std::optional<std::filesystem::path> weights;    // a checkpoint folder instead of the fixture's /weights
  std::string hooks;                               // "" = every hook
  std::optional<Expectation> expect;               // a bug-zoo case
  BaselinePlan baseline;
};

struct ComparePlan {
  std::filesystem::path base, target;
  std::optional<Budget> budget;
  std::optional<std::filesystem::path> weights;  // what the three-way replay uses
  std::string hooks;
  bool reference = true;  // the three-way view
  bool grad = false;      // also compare the gradients (run/grad_compare.h): a second run, grad.compare
  BaselinePlan baseline;
};

struct LogprobPlan {
  LogprobSources sources;
  std::optional<std::filesystem::path> tokenizer;  // nullopt: the run file's own, if any
  LogprobBudget budget = builtin_logprob_budget();
  std::optional<std::filesystem::path> weights;    // a reference side's
  std::optional<Precision> precision;              // a reference side's
  int64_t top_k = 5;
  BaselinePlan baseline;
};

struct GradAuditPlan {
  std::filesystem::path base;
  std::optional<std::filesystem::path> target;   // nullopt: the reference's own backward is the target side
  std::optional<Budget> budget;                  // its [grad.chained] (one dump) or [grad.compare] (two) sets the bands
  std::optional<std::filesystem::path> weights;  // what the reference runs with
};

struct DiagnosePlan {
  std::filesystem::path fixture;
  std::optional<Budget> budget;
  std::optional<Precision> precision;
  std::optional<std::filesystem::path> weights;
  std::vector<std::string> only;        // variants to try; empty = every one of the family
  std::optional<std::string> expected;  // "hf" or a variant
};

// `modes` with each one's gradient mode after it (isolated, grad.isolated, ...), each once.
std::vector<Mode> with_gradient_modes(const std::vector<Mode>& modes);

// Each throws InputError on bad input before any report exists.
CheckResult run_check_plan(const CheckPlan& plan);
CheckResult run_compare_plan(const ComparePlan& plan);
LogprobReport run_logprob_plan(const LogprobPlan& plan);
GradAudit run_grad_audit_plan(const GradAuditPlan& plan);
Diagnosis run_diagnose_plan(const DiagnosePlan& plan);

// The plans a case file stands for; accept_baseline: write the case's baseline from this run
// instead of comparing to it.
CheckPlan check_plan(const Case& c, bool accept_baseline = false);
LogprobPlan logprob_plan(const Case& c, bool accept_baseline = false);
DiagnosePlan diagnose_plan(const Case& c);

// A case file run as `parity check --case` / `parity logprobs --case` runs it.
struct CaseResult {
  Case spec;
  std::optional<CheckResult> check;      // kCheck
  std::optional<LogprobReport> logprobs;  // kLogprobs

  bool passed() const;
  std::string summary() const;        // one line: "isolated 250 passed, 0 failed, 0 skipped; chained ..."
  std::string first_failure() const;  // "" when it passed
  std::optional<bool> baseline_passed() const;
  const std::vector<std::string>& warnings() const;
};
CaseResult run_case(const std::filesystem::path& case_file, bool accept_baseline = false);
CaseResult run_case(const Case& spec, bool accept_baseline = false);

// One-line summaries of a result, as the multi-case index and the CLI show them.
std::string summary_line(const CheckResult& result);
std::string first_failure_line(const CheckResult& result);
std::string summary_line(const LogprobReport& report);
std::string first_failure_line(const LogprobReport& report);

}  // namespace parity::harness
