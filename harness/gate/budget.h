// Tolerance budgets: which metric gates each hook, and its limit (docs/budgets.md "Budget format").
// A budget has one section per mode (isolated, chained), each with a default limit and glob rules;
// for a hook the most specific matching rule wins (most literal, non-wildcard characters; on a tie
// the later rule), else the section's default. Top-k index hooks are gated by tokens_differ
// (default 0); a rule only applies to hooks of its metric's kind. Skips name hooks not to compare, each with a reason.
//
// A budget file states only what differs from the built-in budget of the run's dtype
// (builtin_budget): a section may leave out its default, a file may leave out a section, and
// effective_budget() lays the file over the built-in one once the run dtype is known.
#pragma once

#include <filesystem>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "gate/baseline.h"
#include "errors.h"
#include "gate/toml_file.h"
#include "gate/tensor_metrics.h"

namespace parity::harness {

// kCompare: `parity compare` of two dumps (compare.h), gated by a budget's [compare] section.
// kGradIsolated, kGradChained: the backward of a gradient fixture (run/grad_check.h), gated by
// [grad.isolated] and [grad.chained]; named "grad.isolated", "grad.chained".
// kGradCompare: `parity compare --grad`, the gradients of two gradient dumps (run/grad_compare.h),
// gated by [grad.compare]; named "grad.compare".
enum class Mode { kIsolated, kChained, kCompare, kGradIsolated, kGradChained, kGradCompare };
std::string_view mode_name(Mode mode);
// The modes `parity check` runs ("isolated", "chained", "grad.isolated", "grad.chained");
// "compare" is its own command, so a case's modes = [...] cannot name it.
std::optional<Mode> mode_from_name(std::string_view name);
bool is_grad_mode(Mode mode);
// compare and grad.compare: two dumps against each other (their sides are "target" and "base").
bool is_compare_mode(Mode mode);
// The gradient mode of a forward mode (isolated -> grad.isolated, compare -> grad.compare), for --grad.
Mode grad_mode_of(Mode forward);

// kFloorRatio: rel_l2 measured against the hook's noise floor (run/noise_floor.h): the limit
// { floor_ratio = k, min_rel_l2 = m } allows rel_l2 <= max(k x floor, m); its value is
// rel_l2 / max(floor, m / k), so it is <= k exactly when the hook passes.
enum class Metric { kRelL2, kMaxAbs, kMaxRel, kCosine, kTokensDiffer, kFloorRatio };
std::string_view metric_name(Metric metric);

struct Limit {
  Metric metric = Metric::kRelL2;
  double value = 0;  // an upper bound, except cosine: a lower bound
  double min_rel_l2 = 0;  // floor_ratio only: the bound where the floor is (near) zero

  bool allows(double measured) const;  // NaN never passes
  std::string str() const;             // "rel_l2 <= 1e-05"
};

struct Rule {
  std::string hooks;   // glob (fnmatch), e.g. "model.layers.*.mlp.gate@top_k_weights"
  Limit limit;
  std::string where;   // "cases/x.toml:12", for messages; "built-in (...)" for a built-in budget's own
  // A built-in budget's rule names a module some models lack (OLMoE has no per_expert_scale): it is
  // never stale.
  bool builtin = false;

  bool applies(const std::string& hook, bool is_top_k) const;
};

struct Skip {
  std::string hooks;
  std::string reason;
  std::string where;
};

struct ModeBudget {
  std::optional<Limit> float_default;  // nullopt in a file: the built-in default
  // The built-in parity compare default gates against a noise floor the reference computes; where
  // it cannot (no weights of a dump's run dtype, a model it does not know, a hook it does not
  // emit) the default falls back to this fixed limit. Cleared when a file states the default.
  std::optional<Limit> no_floor_default;
  Limit top_k_default{Metric::kTokensDiffer, 0};
  std::vector<Rule> rules;
};

struct Budget {
  std::string source;  // file path, or "built-in defaults for float32"
  std::map<Mode, ModeBudget> modes;
  std::vector<Skip> skips;
  // [[one_side]] (parity compare only): hooks one dump may hold and the other lack, each with a reason.
  std::vector<Skip> one_side;
  double near_tie_rel = 1e-5;
  bool near_tie_rel_set = false;  // the file names near_tie_rel (else the built-in one applies)
  // A swap is also a near-tie within this many times the token's score drift between the reference
  // and its noise-floor second opinion (tensor_metrics.h FloorTie). Evidence: budget.cpp.
  double near_tie_floor_ratio = 16;
  BandBudget bands;      // [bands]: how far each metric may move from a baseline (baseline.h)
  bool is_case = false;  // the file also names a fixture, modes or a baseline (a case file, for --case)

  // The rule that gates `hook` in `mode`, or nullptr when the default applies. Only rules of the
  // hook's kind apply: tokens_differ rules to top-k index hooks, the other metrics to float hooks.
  const Rule* rule_for(Mode mode, const std::string& hook, bool is_top_k) const;
  Limit limit_for(Mode mode, const std::string& hook, bool is_top_k) const;
  const Skip* skip_for(const std::string& hook) const;
  const Skip* one_side_for(const std::string& hook) const;
  // Throws InputError when the budget lacks the mode or its default (a file over a run dtype that
  // has no built-in budget must state every default itself).
  const ModeBudget& section(Mode mode) const;
};

// Built-in defaults for a fixture's run dtype ("float32", "bfloat16"); docs/budgets.md "Built-in budgets" documents them.
Budget builtin_budget(const std::string& run_dtype);

// The budget a run gates on: `file` (nullopt: none) laid over the built-in budget of `run_dtype`.
// A section's default, a rule list, near_tie_rel and the bands' default the file states replace or
// extend the built-in ones; skips and one_side entries are the file's. Without a built-in budget
// for the dtype (e.g. float16) the file alone is the budget.
Budget effective_budget(const std::optional<Budget>& file, const std::string& run_dtype);

// A budget TOML file (a case file is one too, with extra keys). Malformed input -> InputError.
Budget load_budget(const std::filesystem::path& path);
Budget parse_budget(const std::string& toml_text, const std::string& source_name);
// The budget of an already parsed file (run/case_file.cpp reads a case once).
Budget parse_budget(const toml::table& root, const std::string& source_name);

bool glob_match(const std::string& pattern, const std::string& text);

}  // namespace parity::harness
