#include "run/grad_compare.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <set>
#include <tuple>

#include <fmt/format.h>

#include "io/fixture_sources.h"
#include "models/model.h"
#include "run/backward_order.h"
#include "run/compare_floor.h"
#include "run/grad_check.h"
#include "run/grad_sink.h"
#include "run/hook_gate.h"

namespace parity::harness {

namespace {

// One row's name and where each dump stores it.
struct GradRow {
  std::string name;       // "loss", a hook key, or a parameter name
  std::string group;      // "loss", "grad_hooks" or "grads"
  std::string dataset;    // the name inside the group
  std::string floor_key;  // the floor sinks' activation key ("" for a parameter)
};

std::vector<GradRow> rows_of(const Fixture& base, const Fixture& target) {
  std::vector<GradRow> rows{{kLossRow, "loss", "value", "/loss/value"}};
  for (const char* group : {"grad_hooks", "grads"}) {
    std::set<std::string> names;
    for (const Fixture* f : {&base, &target})
      for (const std::string& name : f->names(group)) names.insert(name);
    for (const std::string& name : names)
      rows.push_back({name, group, name, group == std::string("grads") ? "" : name});
  }
  return rows;
}

class GradComparer {
 public:
  GradComparer(const Fixture& base, const Fixture& target, const Budget& budget, const GradCompareFloor& floor)
      : base_(base), target_(target), budget_(budget), floor_(floor), order_(base), tied_head_(ties_head(base)) {}

  // The row's place in backward order (HookResult::order, sequence), before it is compared.
  HookResult placed(const GradRow& row) {
    HookResult r;
    r.hook = row.name;
    place(r, row);
    return r;
  }

  // Fills a placed row: skips, one-side allowances, its limit, its floor, its verdict.
  void compare(const GradRow& row, HookResult& r) {
    if (apply_skip(r, budget_)) return;
    const bool in_base = base_.has(row.group, row.dataset), in_target = target_.has(row.group, row.dataset);
    if (in_base != in_target) {
      if (const Skip* s = budget_.one_side_for(row.name)) {
        r.status = Status::kSkipped;
        r.message = fmt::format("only in the {}: allowed: {} ({})", in_base ? "base" : "target", s->reason, s->where);
        return;
      }
    }
    assign_limit(r, budget_, Mode::kGradCompare);
    std::optional<Array> b, t;
    if (!read(base_, row, "base", b, r) || !read(target_, row, "target", t, r)) return;
    set_floor(r, row);
    gate_gradient_pair(r, t ? &*t : nullptr, b ? &*b : nullptr, kCompareSides);
    if (r.status == Status::kPass && !r.floats) both_dropped(r, row);
  }

  // The rows the floor does not cover (set_floor), for judge_by_three_way.
  const std::set<std::string>& floorless() const { return floorless_; }

 private:
  // Backward order: the loss first; a hook key's gradient where the backward passes its module;
  // a parameter's once it is back at its owner's start (before that module's input rows).
  void place(HookResult& r, const GradRow& row) {
    r.sequence = next_sequence_++;
    if (row.group == "loss") r.order = std::numeric_limits<int64_t>::min();
    else if (row.group == "grad_hooks") r.order = order_.of_key(row.name);
    else {
      // A tied head's gradient is the embedding's, complete only at the end of the backward.
      std::string owner = owner_of(row.name, order_.modules());
      if (row.name == "lm_head.weight" && tied_head_)
        for (const std::string& m : order_.modules())
          if (m.ends_with("embed_tokens")) owner = m;
      r.order = order_.of_module(owner);
      r.sequence -= BackwardOrder::kParamFirst;
    }
  }

  // The dump's gradient of the row (nullopt: it has none); false (the row failed) for a tensor
  // that is not floating.
  static bool read(const Fixture& dump, const GradRow& row, const char* side, std::optional<Array>& out,
                   HookResult& r) {
    if (!dump.has(row.group, row.dataset)) return true;
    const DatasetInfo info = dump.info(row.group, row.dataset);
    if (!is_floating(info.dtype)) {
      r.shape = info.shape;
      r.message = fmt::format("kind mismatch: the {}'s {} is {}", side, row.group == "loss" ? "loss value" : "gradient",
                              dtype_name(info.dtype));
      return false;
    }
    out = to_array(dump.read(row.group, row.dataset), fmt::format("/{}/{}", row.group, row.dataset));
    return true;
  }

  std::optional<Array> floor_of(const GradFloorSink& sink, const GradRow& row) const {
    if (!row.floor_key.empty()) {
      const Array* a = sink.activations().find(row.floor_key);
      return a ? std::optional<Array>(*a) : std::nullopt;
    }
    return sink.params().gradient_of(row.name, tied_head_);  // a tied head's: the embedding's
  }

  // Neither dump has a gradient, but the reference's own backward (the floor's base side) gives the
  // row one: both drop it (a router neither engine trains), which no difference between them shows.
  void both_dropped(HookResult& r, const GradRow& row) const {
    if (!floor_.available) return;
    const std::optional<Array> math = floor_of(floor_.base, row);
    if (!math || std::all_of(math->data.begin(), math->data.end(), [](double x) { return x == 0; })) return;
    double sum = 0;
    for (double x : math->data) sum += x * x;
    r.status = Status::kFail;
    r.measured.reset();
    r.message = fmt::format("{}: neither dump has a gradient, but the reference's backward gives it one (‖∇‖ = "
                            "{:.3g}): both drop it", r.hook, std::sqrt(sum));
  }

  // The reference's chained backward emits the loss, every parameter's gradient and the output
  // gradient of the modules it passes, not each module's own input VJP (an @in row) nor every inner
  // output: such a row is decided by judge_by_three_way (until then, measured against the fixed
  // limit). Without any floor (--no-reference, a model the reference cannot run) every row is.
  void set_floor(HookResult& r, const GradRow& row) {
    if (floor_.available) {
      const std::optional<Array> b = floor_of(floor_.base, row), t = floor_of(floor_.target, row);
      if (b && t && b->shape == t->shape) {
        r.floor = compare_floats(t->data, b->data);
        return;
      }
      floorless_.insert(r.hook);
    }
    use_no_floor_default(r, budget_, Mode::kGradCompare);
  }

  const Fixture& base_;
  const Fixture& target_;
  const Budget& budget_;
  const GradCompareFloor& floor_;
  BackwardOrder order_;
  bool tied_head_ = false;
  int64_t next_sequence_ = 0;
  std::set<std::string> floorless_;
};

// A floor of rel_l2 >= 1: the two correct implementations' gradients are as far apart as the
// gradient is large, so no difference can tell a bug from the noise there. Measured: float32
// against bfloat16 dumps of a 30-layer Gemma-4 MoE (ci/measure_grad_budget.py): 839 of its 850
// floored rows have floors of 1 or more, and 24 of them (per_expert_scale, norms, projections of
// layers 10-27, floors 1.0-5.0) differ by rel_l2 4-22, up to 8 x their floor. Such a row is listed
// as skipped, with its metrics and why, unless a side's own backward departs from the reference
// there (the three-way view): then it fails. The three-way view still judges every input VJP.
void ungate_where_noise_is_everything(CheckReport& report) {
  for (HookResult& r : report.hooks) {
    if (!r.floor || r.floor->rel_l2 < 1 || !r.floats || !r.floats->finite() || !r.limit ||
        r.limit->metric != Metric::kFloorRatio)
      continue;
    if (r.reference && (r.reference->base.within == false || r.reference->target.within == false)) {
      r.status = Status::kFail;
      r.message = fmt::format("its noise floor is rel_l2 {:.3g}, and {}", r.floor->rel_l2, r.reference->verdict);
      continue;
    }
    r.status = Status::kSkipped;
    r.message = fmt::format("not gated: its noise floor is rel_l2 {:.3g} (>= 1: two correct implementations at these "
                            "precisions give unrelated gradients here)", r.floor->rel_l2);
  }
}

// A row the floor does not cover, with finite numbers on both sides, is not gated by its raw
// difference: a fixed limit cannot tell two precisions' drift from a bug there (measured on the
// unseen models of harness/cli/cli_grad_compare_test.py, float32 against bfloat16 dumps: an
// RMSNorm's input VJP reading rows at rms 0.02 moves by 11 x the nearest floor, inner outputs by up
// to 4.6 x). Where both sides' own isolated backward judges it (a module's input VJP, computed by
// each side from its own output gradient and forward inputs at its precision), that decides it;
// else (an inner module's output gradient, which an isolated replay takes as its input) it is
// listed as skipped, with its metrics and why: the floored rows around it (its module's parameters,
// the outputs the chained backward passes) carry the drift it would show. A failure of another
// kind (NaN/Inf, a shape, a gradient on one side only) stands.
void judge_by_three_way(CheckReport& report, const std::set<std::string>& floorless) {
  for (HookResult& h : report.hooks) {
    // Float metrics of both sides, finite and non-empty: the row failed (if it did) only for its limit.
    if (!floorless.count(h.hook) || !h.floats || !h.floats->finite() || h.floats->count == 0) continue;
    const ReferenceVerdict* v = h.reference ? &*h.reference : nullptr;
    if (v && v->base.within && v->target.within) {
      const bool agree = *v->base.within && *v->target.within;
      h.status = agree ? Status::kPass : Status::kFail;
      h.message = agree ? "" : "no noise floor of its own, and " + v->verdict;
      h.note = "no noise floor of its own: judged by each side's own backward (three-way)";
    } else {
      h.status = Status::kSkipped;
      h.message = "not gated: no noise floor of its own (the reference's chained backward does not compute this "
                  "gradient) and no isolated backward judges it (an isolated replay takes it as its input)";
    }
  }
}

void require_gradients(const Fixture& dump, const char* side, std::string_view command) {
  if (!dump.has_gradients())
    throw InputError(fmt::format("[{}] the {} holds no gradients ({} needs two gradient dumps: parity-dump --grad "
                                 "LOSS)", dump.path().string(), side, command));
}

}  // namespace

void check_gradient_pair(const Fixture& base, const Fixture& target, std::string_view command) {
  require_gradients(base, "base", command);
  require_gradients(target, "target", command);
  check_same_model(base, target);
  check_same_inputs(base, target);
  const std::string pair = fmt::format("{} {} vs {}", command, base.path().string(), target.path().string());
  const std::string kind = base.meta_string("grad_loss"), other = target.meta_string("grad_loss");
  if (kind != other)
    throw InputError(fmt::format("{}: the losses differ: {} (base) vs {} (target)", pair, kind, other));
  // Each as the reference reads it (grad_check.h fixture_loss): malformed losses are refused there.
  const ForwardInputs inputs = forward_inputs(base);
  const Loss b = fixture_loss(base, inputs), t = fixture_loss(target, inputs);
  if (b.kind == Loss::Kind::kLogprobSum) {
    const auto [bi, ti] = std::mismatch(b.weights.data.begin(), b.weights.data.end(), t.weights.data.begin());
    if (bi != b.weights.data.end())
      throw InputError(fmt::format("{}: the losses differ: /loss/weights at flat position {}: {} (base) vs {} (target)",
                                   pair, bi - b.weights.data.begin(), *bi, *ti));
  } else if (b.labels.data != t.labels.data) {
    const auto [bi, ti] = std::mismatch(b.labels.data.begin(), b.labels.data.end(), t.labels.data.begin());
    throw InputError(fmt::format("{}: the losses differ: /loss/labels at flat position {}: {} (base) vs {} (target)",
                                 pair, bi - b.labels.data.begin(), *bi, *ti));
  }
}

CheckReport run_grad_compare(const Fixture& base, const Fixture& target, const Budget& budget,
                             const CompareOptions& options) {
  budget.section(Mode::kGradCompare);
  check_gradient_pair(base, target);
  CheckReport report;
  report.fixture = base.path().string();
  report.target = target.path().string();
  report.mode = Mode::kGradCompare;
  report.ref_side = "target";
  report.hf_side = "base";
  const std::string dtype = compare_run_dtype(base, target);
  report.precision = dtype.empty() ? Precision::F64 : precision_for_run_dtype(dtype).value_or(Precision::F64);
  report.budget_source = budget.source;
  const GradCompareFloor floor =
      options.reference ? grad_compare_floor(base, target, options.weights) : GradCompareFloor{};
  if (!options.reference) report.notes.push_back("noise floor: off (--no-reference)");
  else if (!floor.note.empty()) report.notes.push_back("noise floor: none: " + floor.note);
  GradComparer comparer(base, target, budget, floor);
  std::set<std::string> one_sided;
  std::vector<std::pair<GradRow, HookResult>> rows;
  for (const GradRow& row : rows_of(base, target)) rows.emplace_back(row, comparer.placed(row));
  std::stable_sort(rows.begin(), rows.end(), [](const auto& a, const auto& b) {
    return std::tie(a.second.order, a.second.sequence) < std::tie(b.second.order, b.second.sequence);
  });
  for (auto& [row, r] : rows) {
    if (!options.hooks_glob.empty() && !glob_match(options.hooks_glob, row.name)) continue;
    if (base.has(row.group, row.dataset) != target.has(row.group, row.dataset)) one_sided.insert(row.name);
    comparer.compare(row, r);
    report.hooks.push_back(std::move(r));
  }
  if (options.hooks_glob.empty())
    add_unused_budget_entries(budget, Mode::kGradCompare, report.hooks, report.problems, options.elsewhere, &one_sided);
  add_three_way(report, base, target, options, Mode::kGradIsolated);
  judge_by_three_way(report, comparer.floorless());
  ungate_where_noise_is_everything(report);
  // After the three-way view, which may leave rows ungated.
  if (report.count(Status::kPass) + report.count(Status::kFail) == 0)
    report.problems.push_back("empty comparison: no gradient was compared");
  return report;
}

}  // namespace parity::harness
