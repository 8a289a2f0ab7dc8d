#include "run/grad_audit.h"

#include <algorithm>
#include <cmath>
#include <functional>
#include <map>
#include <set>

#include <fmt/format.h>

#include "io/fixture_sources.h"
#include "models/model.h"
#include "run/backward_order.h"
#include "run/compare.h"
#include "run/compare_floor.h"
#include "run/grad_check.h"
#include "run/grad_compare.h"
#include "run/grad_sink.h"
#include "run/noise_floor.h"

namespace parity::harness {

namespace {

// A side's gradient of a parameter: none, a value, or why it cannot be one (a kind mismatch).
struct Fetched {
  std::optional<Array> value;
  std::string problem;
};
using Gradient = std::function<Fetched(const std::string& param)>;

AuditSide side_of(const std::optional<Array>& g) {
  AuditSide s;
  if (!g) return s;
  s.present = true;
  double sum = 0;
  for (double x : g->data) {
    if (!std::isfinite(x)) ++s.nonfinite;
    else sum += x * x, s.learns = s.learns || x != 0;
  }
  s.norm = std::sqrt(sum);
  return s;
}

// A dump's gradient of `name` in `group`; one that is not floating is a kind mismatch (a failure).
Fetched stored(const Fixture& dump, const std::string& group, const std::string& name) {
  if (!dump.has(group, name)) return {};
  if (!is_floating(dump.info(group, name).dtype))
    return {std::nullopt, fmt::format("kind mismatch: /{}/{} of {} is {}", group, name, dump.path().string(),
                                      dtype_name(dump.info(group, name).dtype))};
  return {to_array(dump.read(group, name), fmt::format("/{}/{}", group, name)), ""};
}

std::optional<double> floor_of(const ParamShares& a, const ParamShares& b, const std::string& param, bool tied) {
  const std::optional<Array> x = a.gradient_of(param, tied), y = b.gradient_of(param, tied);
  if (!x || !y || x->shape != y->shape) return std::nullopt;
  return compare_floats(x->data, y->data).rel_l2;
}

// What each side holds, by parameter, and the noise floor the band is measured from.
struct AuditInputs {
  Gradient base, target;
  std::set<std::string> names;
  std::map<std::string, double> floor;  // rel_l2 of the two correct implementations' gradients
  std::function<std::optional<bool>(const std::string& router)> base_top_k, target_top_k;
  Mode mode = Mode::kGradChained;
};

std::optional<bool> reaches(const std::optional<Array>& g) {
  if (!g) return std::nullopt;
  return side_of(g).learns;
}

std::optional<bool> reaches(const Fetched& g) { return g.problem.empty() ? reaches(g.value) : std::nullopt; }

// The norm ratio's band for `param`: the rel_l2 its gradient may differ by (see grad_audit.h).
void set_band(AuditRow& row, const Budget& budget, Mode mode, const std::optional<double>& floor) {
  const Rule* rule = budget.rule_for(mode, row.param, false);
  row.band_rule = rule ? rule->where : "default";
  const Limit limit = budget.limit_for(mode, row.param, false);
  if (limit.metric == Metric::kRelL2) {
    row.band = limit.value;
  } else if (limit.metric == Metric::kFloorRatio && floor) {
    row.band = std::max(limit.value * *floor, limit.min_rel_l2);
    row.band_rule += fmt::format(": {:g} x noise floor {:.3g}", limit.value, *floor);
  } else if (limit.metric == Metric::kFloorRatio && !rule && budget.section(mode).no_floor_default &&
             budget.section(mode).no_floor_default->metric == Metric::kRelL2) {
    row.band = budget.section(mode).no_floor_default->value;
    row.band_rule = "default (no noise floor: fixed limit)";
  } else {
    row.message = limit.metric == Metric::kFloorRatio
                      ? "no noise floor for this parameter, so its floor_ratio limit cannot set a norm ratio band"
                      : fmt::format("its limit ({}) gates {}: a norm ratio band needs a rel_l2 or floor_ratio limit",
                                    row.band_rule, metric_name(limit.metric));
  }
}

// The row's verdict from both sides' gradients (set_band has set the band, or why there is none).
void judge(AuditRow& row, const Fetched& base, const Fetched& target, const std::string& base_side,
           const std::string& target_side) {
  const AuditSide &b = row.base, &t = row.target;
  const bool finite = b.nonfinite + t.nonfinite == 0;
  const bool same_shape = base.value && target.value && base.value->shape == target.value->shape;
  if (b.learns && t.learns && finite) row.ratio = t.norm / b.norm;
  if (same_shape && finite && !base.value->data.empty()) {
    const FloatMetrics m = compare_floats(target.value->data, base.value->data);
    row.rel_l2 = m.rel_l2, row.cosine = m.cosine;
  }
  if (!base.problem.empty() || !target.problem.empty()) {
    row.message = !base.problem.empty() ? base.problem : target.problem;
  } else if (base.value && target.value && !same_shape) {
    row.message = fmt::format("{}: shape mismatch: {} {} vs {} {}", row.param, target_side,
                              shape_str(target.value->shape), base_side, shape_str(base.value->shape));
  } else if ((base.value && base.value->data.empty()) || (target.value && target.value->data.empty())) {
    row.message = fmt::format("{}: empty comparison: the gradient has no elements", row.param);
  } else if (!finite) {
    row.message = fmt::format("{}: NaN/Inf in the gradient: {} {}, {} {}", row.param, base_side, b.nonfinite,
                              target_side, t.nonfinite);
  } else if (b.learns != t.learns) {
    const AuditSide& has = b.learns ? b : t;
    row.message = fmt::format("{}: {} learns it (‖∇‖ = {:.3g}), {} gives it no gradient{}", row.param,
                              b.learns ? base_side : target_side, has.norm, b.learns ? target_side : base_side,
                              (b.learns ? t : b).present ? " (all zero)" : "");
  } else if (!b.learns) {
    row.status = Status::kPass;
    row.message = "frozen on both sides";
  } else if (!row.band) {
    // set_band could not set a band: fails closed with its message
  } else if (std::abs(*row.ratio - 1) > *row.band) {
    row.message = fmt::format("{}: norm ratio {:.4g} ({} / {}) outside 1 ± {:.3g} ({})", row.param, *row.ratio,
                              target_side, base_side, *row.band, row.band_rule);
  } else if (row.rel_l2 && *row.rel_l2 > *row.band) {
    row.message = fmt::format("{}: the norms agree (ratio {:.4g}) but the gradients point apart: rel_l2 {:.3g}, cosine "
                              "{:.4g}, over the band {:.3g} ({})", row.param, *row.ratio, *row.rel_l2, *row.cosine,
                              *row.band, row.band_rule);
  } else {
    row.status = Status::kPass;
  }
}

AuditInputs one_dump(const Fixture& dump, const WeightSource* weights, GradFloorSink& ref, GradFloorSink& floor,
                     std::vector<std::string>& notes) {
  if (!dump.has_gradients())
    throw InputError(fmt::format("[{}] holds no gradients: dump it with parity-dump --grad LOSS", dump.path().string()));
  const FixtureWeights own(dump);
  if (!weights && dump.names("weights").empty())
    throw InputError(fmt::format("[{}] has no weights (dumped with --weights none); pass --weights CHECKPOINT_DIR",
                                 dump.path().string()));
  const WeightSource& w = weights ? *weights : own;
  const std::optional<Precision> precision = precision_for_run_dtype(dump.meta_string("dtype"));
  if (!precision)
    throw InputError(fmt::format("[{}] run dtype {} has no reference precision", dump.path().string(),
                                 dump.meta_string("dtype")));
  const ForwardInputs inputs = forward_inputs(dump);
  const Loss loss = fixture_loss(dump, inputs);
  const RouteAs routing(dump);
  reference_model_of(dump, w, *precision, {})->forward_backward(inputs, loss, ref, &routing);
  ref.commit();
  try {
    if (const std::unique_ptr<ReferenceModel> second = floor_model_of(dump, w, {})) {
      second->forward_backward(inputs, loss, floor, &routing);
      floor.commit();
    }
  } catch (const Error& e) {
    notes.push_back(fmt::format("noise floor: none: {}", e.what()));
  }
  const bool tied = ties_head(dump);
  AuditInputs in;
  in.mode = Mode::kGradChained;
  in.base = [&dump](const std::string& p) { return stored(dump, "grads", p); };
  in.target = [&ref, tied](const std::string& p) { return Fetched{ref.params().gradient_of(p, tied), ""}; };
  for (const std::string& n : dump.names("grads")) in.names.insert(n);
  for (const std::string& n : ref.params().params()) in.names.insert(n);
  for (const std::string& n : in.names)
    if (std::optional<double> f = floor_of(floor.params(), ref.params(), n, tied)) in.floor[n] = *f;
  in.base_top_k = [&dump](const std::string& r) { return reaches(stored(dump, "grad_hooks", r + "@top_k_weights")); };
  in.target_top_k = [&ref](const std::string& r) -> std::optional<bool> {
    const Array* g = ref.activations().find(r + "@top_k_weights");
    return g ? reaches(*g) : std::nullopt;
  };
  return in;
}

AuditInputs two_dumps(const Fixture& base, const Fixture& target, const WeightSource* weights,
                      GradCompareFloor& floor, std::vector<std::string>& notes) {
  check_gradient_pair(base, target, "grad-audit");
  floor = grad_compare_floor(base, target, weights);
  if (!floor.note.empty()) notes.push_back("noise floor: none: " + floor.note);
  const bool tied = ties_head(base);
  AuditInputs in;
  in.mode = Mode::kGradCompare;
  in.base = [&base](const std::string& p) { return stored(base, "grads", p); };
  in.target = [&target](const std::string& p) { return stored(target, "grads", p); };
  for (const Fixture* f : {&base, &target})
    for (const std::string& n : f->names("grads")) in.names.insert(n);
  if (floor.available)
    for (const std::string& n : in.names)
      if (std::optional<double> f = floor_of(floor.target.params(), floor.base.params(), n, tied)) in.floor[n] = *f;
  in.base_top_k = [&base](const std::string& r) { return reaches(stored(base, "grad_hooks", r + "@top_k_weights")); };
  in.target_top_k = [&target](const std::string& r) {
    return reaches(stored(target, "grad_hooks", r + "@top_k_weights"));
  };
  return in;
}

std::string short_name(const std::string& param, const std::string& router) { return param.substr(router.size() + 1); }

RouterStatus router_status(const std::string& router, int64_t layer, const GradAudit& audit, const AuditInputs& in) {
  RouterStatus s;
  s.router = router;
  s.layer = layer;
  s.base_through_top_k = in.base_top_k(router);
  s.target_through_top_k = in.target_top_k(router);
  const AuditRow* first_failure = nullptr;
  const AuditRow* first_learning = nullptr;
  for (const AuditRow& row : audit.rows) {
    if (!descends_from(row.param, router)) continue;
    s.params.push_back(row.param);
    if (row.status == Status::kFail && !first_failure) first_failure = &row;
    // The one to name: a weight matrix (proj.weight, weight) over a scale, when the router has one.
    if (row.base.learns && (!first_learning || (row.param.ends_with(".weight") && !first_learning->param.ends_with(".weight"))))
      first_learning = &row;
  }
  // A gradient reaching the top-k weights on one side only: that side's routing weights learn, the
  // other's do not, whatever the parameters show.
  const bool split = s.base_through_top_k && s.target_through_top_k && *s.base_through_top_k != *s.target_through_top_k;
  s.matches = !s.params.empty() && !first_failure && !split;
  const std::string who = fmt::format("layer {} router ({})", layer, router);
  if (s.params.empty()) {
    s.sentence = who + ": no parameter gradient on either side";
    return s;
  }
  if (first_failure) {
    s.sentence = fmt::format("{}: does not match {}: {}", who, audit.base_side, first_failure->message);
    return s;
  }
  if (split) {
    s.sentence = fmt::format("{}: does not match {}: a gradient reaches its top_k_weights on the {} only", who,
                             audit.base_side, *s.base_through_top_k ? audit.base_side : audit.target_side);
    return s;
  }
  if (!first_learning) {
    s.sentence = fmt::format("{}: frozen on both sides (no parameter of it receives a gradient)", who);
    return s;
  }
  std::string through;
  if (s.base_through_top_k && s.target_through_top_k && *s.base_through_top_k && *s.target_through_top_k)
    through = " through top_k_weights";
  s.sentence = fmt::format("{}: learnable{}, ‖∇{}‖ = {:.3g} ({} {:.3g}), matches {}", who, through,
                           short_name(first_learning->param, router), first_learning->base.norm, audit.target_side,
                           first_learning->target.norm, audit.base_side);
  return s;
}

}  // namespace

bool GradAudit::passed() const {
  return count(Status::kFail) == 0 && problems.empty() &&
         std::all_of(routers.begin(), routers.end(), [](const RouterStatus& r) { return r.matches; });
}

int64_t GradAudit::count(Status s) const {
  return std::count_if(rows.begin(), rows.end(), [&](const AuditRow& r) { return r.status == s; });
}

GradAudit audit_gradients(const Fixture& base, const Fixture* target, const Budget& budget, const WeightSource* weights) {
  budget.section(target ? Mode::kGradCompare : Mode::kGradChained);  // before any work
  GradAudit audit;
  audit.base = base.path().string();
  audit.budget_source = budget.source;
  GradFloorSink ref, floor;
  GradCompareFloor compare_floor;
  AuditInputs in;
  if (target) {
    audit.target = target->path().string();
    audit.base_side = "base";
    audit.target_side = "target";
    in = two_dumps(base, *target, weights, compare_floor, audit.notes);
  } else {
    in = one_dump(base, weights, ref, floor, audit.notes);
    audit.notes.push_back("the reference's side: its own forward, routed as HF routed, and backward from the dump's loss");
  }
  std::set<std::string> one_sided;
  for (const std::string& name : in.names) {
    AuditRow row;
    row.param = name;
    const Fetched b = in.base(name), t = in.target(name);
    row.base = side_of(b.value);
    row.target = side_of(t.value);
    if (row.base.present != row.target.present) one_sided.insert(name);
    const Skip* skip = budget.skip_for(name);
    const Skip* one_side = row.base.present != row.target.present ? budget.one_side_for(name) : nullptr;
    if (skip || one_side) {
      row.status = Status::kSkipped;
      row.message = skip ? fmt::format("skipped: {} ({})", skip->reason, skip->where)
                         : fmt::format("only on the {}: allowed: {} ({})",
                                       row.base.present ? audit.base_side : audit.target_side, one_side->reason,
                                       one_side->where);
      audit.rows.push_back(std::move(row));
      continue;
    }
    const auto f = in.floor.find(name);
    set_band(row, budget, in.mode, f == in.floor.end() ? std::nullopt : std::optional<double>(f->second));
    judge(row, b, t, audit.base_side, audit.target_side);
    audit.rows.push_back(std::move(row));
  }
  for (const std::string& key : comparable_keys(base)) {
    if (!key.ends_with("@top_k_index")) continue;
    const HookKey k = parse_hook_key(key);
    if (key != k.module + "@top_k_index") continue;
    audit.routers.push_back(router_status(k.module, k.layer, audit, in));
  }
  // A budget entry that matches no parameter is stale, unless it is one of the dumps' other
  // gradients or forward hooks (a budget shared with compare --grad or check).
  std::vector<HookResult> named(audit.rows.size());
  for (size_t i = 0; i < audit.rows.size(); ++i) named[i].hook = audit.rows[i].param;
  std::vector<std::string> elsewhere;
  for (const Fixture* f : {&base, target}) {
    if (!f) continue;
    for (const std::vector<std::string>& names : {gradient_names(*f), comparable_keys(*f)})
      elsewhere.insert(elsewhere.end(), names.begin(), names.end());
  }
  add_unused_budget_entries(budget, in.mode, named, audit.problems, elsewhere, &one_sided);
  if (audit.count(Status::kPass) + audit.count(Status::kFail) == 0)
    audit.problems.push_back(audit.rows.empty() ? "empty audit: neither side has a parameter gradient"
                                                : "empty audit: every parameter was skipped");
  return audit;
}

}  // namespace parity::harness
