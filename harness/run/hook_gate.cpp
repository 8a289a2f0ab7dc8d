#include "run/hook_gate.h"

#include <algorithm>

#include <fmt/format.h>

namespace parity::harness {

bool apply_skip(HookResult& r, const Budget& budget) {
  const Skip* s = budget.skip_for(r.hook);
  if (!s) return false;
  r.status = Status::kSkipped;
  r.message = fmt::format("skipped: {} ({})", s->reason, s->where);
  return true;
}

void assign_limit(HookResult& r, const Budget& budget, Mode mode) {
  r.limit = budget.limit_for(mode, r.hook, r.is_top_k);
  const Rule* rule = budget.rule_for(mode, r.hook, r.is_top_k);
  r.budget_rule = rule ? rule->where : "default";
}

std::string shape_mismatch(const Shape& candidate, const Shape& expected, Sides sides) {
  return fmt::format("shape mismatch: {} {} vs {} {}", sides.candidate, shape_str(candidate), sides.expected,
                     shape_str(expected));
}

void gate_floats(HookResult& r, FloatMetrics metrics, Sides sides) {
  r.floats = std::move(metrics);
  const FloatMetrics& m = *r.floats;
  if (m.count == 0) r.message = "empty comparison: the tensor has no elements";
  else if (!m.finite())
    r.message = fmt::format("NaN/Inf: {} {} NaN {} Inf, {} {} NaN {} Inf", sides.candidate, m.ref_nan, m.ref_inf,
                            sides.expected, m.hf_nan, m.hf_inf);
  else if (r.limit->metric == Metric::kFloorRatio && !r.floor)
    r.message = "no noise floor for this hook (the second opinion could not compute it), so floor_ratio cannot gate it";
  else r.gate(r.value_of(r.limit->metric));
}

void gate_top_k(HookResult& r, TopKMetrics metrics) {
  r.top_k = std::move(metrics);
  if (r.top_k->tokens == 0) {
    r.message = "empty comparison: no tokens";
    return;
  }
  r.gate(r.value_of(Metric::kTokensDiffer));
  if (r.status == Status::kFail) r.message += "; first: " + r.top_k->first_detail;
}

void add_unused_budget_entries(const Budget& budget, Mode mode, const std::vector<HookResult>& results,
                               std::vector<std::string>& problems, const std::vector<std::string>& elsewhere,
                               const std::set<std::string>* one_sided) {
  auto any = [&](auto predicate) { return std::any_of(results.begin(), results.end(), predicate); };
  auto used_elsewhere = [&](const std::string& glob) {
    return std::any_of(elsewhere.begin(), elsewhere.end(), [&](const std::string& n) { return glob_match(glob, n); });
  };
  for (const Rule& rule : budget.section(mode).rules)
    if (!rule.builtin && !any([&](const HookResult& r) { return rule.applies(r.hook, r.is_top_k); }))
      problems.push_back(fmt::format("budget rule {} (hooks = \"{}\") matches no hook of its kind", rule.where, rule.hooks));
  for (const Skip& skip : budget.skips)
    if (!any([&](const HookResult& r) { return glob_match(skip.hooks, r.hook); }) && !used_elsewhere(skip.hooks))
      problems.push_back(fmt::format("budget skip {} (hooks = \"{}\") matches no hook", skip.where, skip.hooks));
  if (!one_sided) return;
  for (const Skip& entry : budget.one_side)
    if (!any([&](const HookResult& r) { return one_sided->count(r.hook) && glob_match(entry.hooks, r.hook); }) &&
        !used_elsewhere(entry.hooks))
      problems.push_back(fmt::format(
          "budget one_side {} (hooks = \"{}\") matches no hook that only one dump holds", entry.where, entry.hooks));
}

void use_no_floor_default(HookResult& r, const Budget& budget, Mode mode) {
  const std::optional<Limit>& fallback = budget.section(mode).no_floor_default;
  if (r.budget_rule != "default" || !fallback || !r.limit || r.limit->metric != Metric::kFloorRatio) return;
  r.limit = *fallback;
  r.budget_rule = "default (no noise floor: fixed limit)";
}

}  // namespace parity::harness
