#include "run/three_way.h"

#include <map>

#include <fmt/format.h>

#include "io/fixture_sources.h"
#include "models/model.h"
#include "run/compare.h"
#include "run/grad_sink.h"

namespace parity::harness {

namespace {

constexpr const char* kBase = "base";
constexpr const char* kTarget = "target";

// One side replayed isolated by the reference: its results by hook, or why it could not be.
struct SideReplay {
  const char* label;
  std::map<std::string, HookResult> by_hook;
  std::string note;  // non-empty: not replayed
};

SideReplay replay(const Fixture& side, const char* label, const Fixture& other, const char* other_label,
                  const CompareOptions& options, Mode mode, std::vector<std::string>& notes) {
  SideReplay out{label, {}, ""};
  try {
    const FixtureWeights other_weights(other);
    const WeightSource* weights = options.weights;
    if (!weights && side.names("weights").empty()) {
      if (other.names("weights").empty()) {
        out.note = fmt::format("neither dump has weights to replay the {} with (pass --weights CHECKPOINT_DIR)", label);
        return out;
      }
      // Weights of another run dtype would judge this side by rounding it never did.
      if (side.meta_string("dtype") != other.meta_string("dtype")) {
        out.note = fmt::format("the {} has no weights and the {}'s are {}, not {} (pass --weights CHECKPOINT_DIR)", label,
                               other_label, other.meta_string("dtype"), side.meta_string("dtype"));
        return out;
      }
      weights = &other_weights;
      notes.push_back(fmt::format("three-way: the {} has no weights; the reference replayed it with the {}'s", label,
                                  other_label));
    }
    const Budget* given = mode == Mode::kIsolated ? options.isolated_budget : options.grad_isolated_budget;
    const Budget isolated = given ? *given : builtin_budget(side.meta_string("dtype"));
    CheckOptions check;
    check.mode = mode;
    check.hooks_glob = options.hooks_glob;
    check.weights = weights;
    CheckReport report = run_check(side, isolated, check);
    for (HookResult& h : report.hooks) out.by_hook.emplace(h.hook, std::move(h));
  } catch (const Error& e) {
    out.note = fmt::format("the reference cannot replay the {}: {}", label, e.what());
  }
  return out;
}

ReferenceSide side_value(const SideReplay& s, const std::string& key) {
  ReferenceSide out;
  if (!s.note.empty()) {
    out.note = s.note;
    return out;
  }
  auto it = s.by_hook.find(key);
  if (it == s.by_hook.end()) {
    for (const auto& [hook, r] : s.by_hook)
      if (hook != key && is_module_key(hook, key) && r.status == Status::kFail && !r.measured) {
        out.note = fmt::format("the reference cannot replay {} on the {}: {}", hook, s.label, r.message);
        return out;
      }
    out.note = key == kLossRow          ? std::string("an isolated replay has no loss (grad.chained scores it)")
               : is_input_key(key) ? fmt::format("the reference does not compute {} (a module input)", key)
                                   : fmt::format("the reference does not produce {}", key);
    return out;
  }
  const HookResult& r = it->second;
  if (!r.measured || !r.limit) {
    out.note = r.message.empty() ? std::string(status_name(r.status)) : r.message;
    return out;
  }
  out.measured = r.measured;
  out.metric = metric_name(r.limit->metric);
  if (r.floats) out.rel_l2 = r.floats->rel_l2;
  out.within = r.status == Status::kPass;
  out.limit = r.limit->str();
  return out;
}

std::string verdict_sentence(const ReferenceVerdict& v) {
  auto value = [&](const ReferenceSide& s) { return fmt::format("{} {:.3g}", s.metric, *s.measured); };
  const ReferenceSide &b = v.base, &t = v.target;
  if (v.departs == "target")
    return fmt::format("the target departs from the reference ({}, budget {}), the base agrees with it ({})", value(t),
                       t.limit, value(b));
  if (v.departs == "base")
    return fmt::format("the base departs from the reference ({}, budget {}), the target agrees with it ({})", value(b),
                       b.limit, value(t));
  if (v.departs == "both")
    return fmt::format("both depart from the reference (base {}, target {}; budgets {} / {})", value(b), value(t),
                       b.limit, t.limit);
  if (v.departs == "neither")
    return fmt::format("both agree with the reference on their own inputs (base {}, target {}): the difference comes "
                       "from their inputs, upstream of this hook", value(b), value(t));
  // A side without a value (a hook it lacks, a module the reference cannot replay): each on its own.
  auto describe = [&](const char* label, const ReferenceSide& s) {
    if (!s.measured) return fmt::format("the {} cannot be judged ({})", label, s.note);
    return *s.within ? fmt::format("the {} agrees with the reference ({})", label, value(s))
                     : fmt::format("the {} departs from the reference ({}, budget {})", label, value(s), s.limit);
  };
  return describe(kBase, b) + "; " + describe(kTarget, t);
}

// A hook whose difference passed but where a side departs from the reference on its own inputs
// fails: the difference of a float32 base and a bfloat16 target is about one bf16 rounding per
// hook, so a bf16 cast-point bug (one rounding more) hides in it; the isolated replay of the bf16
// side at bf16 finds it where it lives (harness/cli/cli_compare_zoo_test.py).
void gate_departure(HookResult& h) {
  if (h.status != Status::kPass || !h.reference) return;
  const ReferenceVerdict& v = *h.reference;
  for (const auto& [label, side] : {std::pair{kBase, &v.base}, std::pair{kTarget, &v.target}})
    if (side->within == false) {
      h.status = Status::kFail;
      h.message = fmt::format("the difference is within budget, but the {} departs from the reference at its run "
                              "precision ({} {:.3g}, budget {})", label, side->metric, *side->measured, side->limit);
      return;
    }
}

}  // namespace

void add_three_way(CheckReport& report, const Fixture& base, const Fixture& target, const CompareOptions& options,
                   Mode side_mode) {
  if (!options.reference) {
    report.notes.push_back("three-way: off (--no-reference)");
    return;
  }
  // Every float and top-k hook: the replay judges each side on its own, so it gates passing hooks too.
  std::vector<HookResult*> wanted;
  for (HookResult& h : report.hooks)
    if (h.status != Status::kSkipped && (h.floats || h.top_k || h.status == Status::kFail)) wanted.push_back(&h);
  if (wanted.empty()) return;
  const SideReplay b = replay(base, kBase, target, kTarget, options, side_mode, report.notes);
  const SideReplay t = replay(target, kTarget, base, kBase, options, side_mode, report.notes);
  for (const SideReplay* s : {&b, &t})
    if (!s->note.empty()) report.notes.push_back("three-way: " + s->note);
  for (HookResult* h : wanted) {
    ReferenceVerdict v;
    v.base = side_value(b, h->hook);
    v.target = side_value(t, h->hook);
    v.metric = !v.base.metric.empty() ? v.base.metric : v.target.metric;
    v.departs = departs(v.base.within, v.target.within);
    v.verdict = verdict_sentence(v);
    h->reference = std::move(v);
    gate_departure(*h);
  }
}



std::string departs(std::optional<bool> base_within, std::optional<bool> target_within) {
  if (!base_within || !target_within) return "";
  if (*base_within && *target_within) return "neither";
  if (!*base_within && !*target_within) return "both";
  return *base_within ? kTarget : kBase;
}

}  // namespace parity::harness
