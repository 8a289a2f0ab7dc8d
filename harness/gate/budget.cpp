#include "gate/budget.h"

#include <fnmatch.h>

#include <algorithm>
#include <cmath>
#include <fstream>
#include <sstream>

#include <toml++/toml.h>

namespace parity::harness {

namespace {

constexpr std::pair<Metric, std::string_view> kMetrics[] = {
    {Metric::kRelL2, "rel_l2"},   {Metric::kMaxAbs, "max_abs"},           {Metric::kMaxRel, "max_rel"},
    {Metric::kCosine, "cosine"}, {Metric::kTokensDiffer, "tokens_differ"}, {Metric::kFloorRatio, "floor_ratio"},
};

// Budget keys the parser knows; anything else is a typo that must not be ignored.
constexpr std::string_view kTopLevelKeys[] = {"isolated", "chained",   "skip",  "near_tie_rel", "bands",
                                              "fixture",  "modes",     "precision", "baseline", "expect",
                                              "compare", "one_side", "grad"};

[[noreturn]] void fail(const std::string& at, const std::string& what) { budget_error(at, what); }

// { rel_l2 = 1e-5 } or, in a rule, { hooks = "...", max_abs = 0.1 }: exactly one metric key;
// floor_ratio may add min_rel_l2, its bound where the floor is zero.
Limit parse_limit(const toml::table& t, const std::string& at, bool in_rule) {
  std::optional<Limit> limit;
  std::optional<double> min_rel_l2;
  for (const auto& [key, node] : t) {
    if (in_rule && key.str() == "hooks") continue;
    if (key.str() == "min_rel_l2") {
      min_rel_l2 = node.value<double>();
      if (!min_rel_l2 || !std::isfinite(*min_rel_l2) || *min_rel_l2 < 0)
        fail(at, "\"min_rel_l2\" must be a finite non-negative number");
      continue;
    }
    const std::string name(key.str());  // a named copy: clang 14 (ci/fuzz) cannot capture a structured binding
    auto it = std::find_if(std::begin(kMetrics), std::end(kMetrics), [&](auto& m) { return m.second == name; });
    if (it == std::end(kMetrics))
      fail(at, fmt::format("unknown key \"{}\" (metrics: rel_l2, max_abs, max_rel, cosine, tokens_differ, floor_ratio)",
                           key.str()));
    if (limit) fail(at, "a limit names exactly one metric, this one names several");
    std::optional<double> v = node.value<double>();
    // inf would switch the gate off without saying so.
    if (!v || !std::isfinite(*v) || *v < 0)
      fail(at, fmt::format("\"{}\" must be a finite non-negative number", key.str()));
    limit = Limit{it->first, *v};
  }
  if (!limit) fail(at, "names no metric (e.g. rel_l2 = 1e-5)");
  if (min_rel_l2) {
    if (limit->metric != Metric::kFloorRatio) fail(at, "min_rel_l2 belongs to a floor_ratio limit");
    limit->min_rel_l2 = *min_rel_l2;
  }
  if (limit->metric == Metric::kFloorRatio && limit->value == 0)
    fail(at, "floor_ratio = 0 allows nothing above a zero floor; use rel_l2 = 0 for exact");
  return *limit;
}

ModeBudget parse_mode(const toml::table& t, const std::string& source) {
  ModeBudget mb;
  for (const auto& [key, node] : t)
    if (key.str() != "default" && key.str() != "rule")
      fail(where(source, node), fmt::format("unknown key \"{}\" in a mode section (default, rule)", key.str()));
  // No default: the built-in one for the run dtype (effective_budget).
  if (const toml::node_view d = t["default"]; d) {
    const toml::table* def = d.as_table();
    if (!def) fail(where(source, *d.node()), "default must be { <metric> = <limit> }");
    mb.float_default = parse_limit(*def, where(source, *def), /*in_rule=*/false);
    if (mb.float_default->metric == Metric::kTokensDiffer)
      fail(where(source, *def), "the default gates float hooks; tokens_differ belongs in a rule for @top_k_index");
  }
  if (const toml::node_view rules = t["rule"]; rules) {
    const toml::array* arr = rules.as_array();
    if (!arr) fail(where(source, *rules.node()), "rule must be an array of tables ([[isolated.rule]])");
    for (const toml::node& n : *arr) {
      const toml::table* r = n.as_table();
      if (!r) fail(where(source, n), "each rule must be a table");
      std::optional<std::string> hooks = (*r)["hooks"].value<std::string>();
      if (!hooks || hooks->empty()) fail(where(source, n), "a rule needs hooks = \"<glob>\"");
      mb.rules.push_back({*hooks, parse_limit(*r, where(source, n), /*in_rule=*/true), where(source, n)});
    }
  }
  return mb;
}

// [[skip]], or [[one_side]] (table = "one_side"): the same shape, hooks and a reason.
std::vector<Skip> parse_skips(toml::node_view<const toml::node> node, const std::string& source,
                              std::string_view table = "skip") {
  std::vector<Skip> skips;
  if (!node) return skips;
  const toml::array* arr = node.as_array();
  if (!arr) fail(where(source, *node.node()), fmt::format("{0} must be an array of tables ([[{0}]])", table));
  for (const toml::node& n : *arr) {
    const toml::table* t = n.as_table();
    for (const auto& [key, value] : t ? *t : toml::table{})
      if (key.str() != "hooks" && key.str() != "reason")
        fail(where(source, value), table == "skip" ? fmt::format("unknown key \"{}\" in a skip (hooks, reason; skips "
                                                                 "apply to every mode)", key.str())
                                                   : fmt::format("unknown key \"{}\" in a {} (hooks, reason)", key.str(), table));
    std::optional<std::string> hooks = t ? (*t)["hooks"].value<std::string>() : std::nullopt;
    std::optional<std::string> reason = t ? (*t)["reason"].value<std::string>() : std::nullopt;
    // A reason of only spaces says nothing: a skip must tell the reader why the hook is not compared.
    if (!hooks || hooks->empty() || !reason || reason->find_first_not_of(" \t\r\n") == std::string::npos)
      fail(where(source, n), fmt::format("a {} needs hooks = \"<glob>\" and a reason", table));
    skips.push_back({*hooks, *reason, where(source, n)});
  }
  return skips;
}

// [grad.isolated], [grad.chained] and [grad.compare]: the gradient modes' sections, under one [grad] table.
void parse_grad_sections(const toml::table& root, const std::string& source, Budget& b) {
  const toml::node_view grad = root["grad"];
  if (!grad) return;
  const toml::table* t = grad.as_table();
  if (!t) fail(where(source, *grad.node()), "grad must hold the tables [grad.isolated], [grad.chained] and/or [grad.compare]");
  for (const auto& [key, node] : *t) {
    // grad.compare is no mode of `parity check`, so mode_from_name does not know it.
    const std::optional<Mode> mode =
        key.str() == "compare" ? Mode::kGradCompare : mode_from_name("grad." + std::string(key.str()));
    if (!mode)
      fail(where(source, node), fmt::format("unknown key \"grad.{}\" (sections: grad.isolated, grad.chained, "
                                            "grad.compare)", key.str()));
    if (!node.is_table()) fail(where(source, node), "a mode section must be a table");
    b.modes[*mode] = parse_mode(*node.as_table(), source);
  }
}

// Literal characters of a glob: more literal = more specific.
int specificity(const std::string& glob) {
  return static_cast<int>(std::count_if(glob.begin(), glob.end(), [](char c) { return c != '*' && c != '?'; }));
}

}  // namespace

std::string_view mode_name(Mode mode) {
  switch (mode) {
    case Mode::kIsolated: return "isolated";
    case Mode::kChained: return "chained";
    case Mode::kCompare: return "compare";
    case Mode::kGradIsolated: return "grad.isolated";
    case Mode::kGradChained: return "grad.chained";
    case Mode::kGradCompare: return "grad.compare";
  }
  return "unknown";
}

std::optional<Mode> mode_from_name(std::string_view name) {
  if (name == "isolated") return Mode::kIsolated;
  if (name == "chained") return Mode::kChained;
  if (name == "grad.isolated") return Mode::kGradIsolated;
  if (name == "grad.chained") return Mode::kGradChained;
  return std::nullopt;
}

bool is_grad_mode(Mode mode) {
  return mode == Mode::kGradIsolated || mode == Mode::kGradChained || mode == Mode::kGradCompare;
}

bool is_compare_mode(Mode mode) { return mode == Mode::kCompare || mode == Mode::kGradCompare; }

Mode grad_mode_of(Mode forward) {
  if (is_grad_mode(forward)) return forward;
  if (forward == Mode::kCompare) return Mode::kGradCompare;
  return forward == Mode::kChained ? Mode::kGradChained : Mode::kGradIsolated;
}

std::string_view metric_name(Metric metric) {
  for (const auto& [m, name] : kMetrics)
    if (m == metric) return name;
  return "unknown";
}

bool Limit::allows(double measured) const {
  if (std::isnan(measured)) return false;
  return metric == Metric::kCosine ? measured >= value : measured <= value;
}

std::string Limit::str() const {
  if (metric == Metric::kFloorRatio)
    return min_rel_l2 > 0 ? fmt::format("rel_l2 <= max({:g} x floor, {:g})", value, min_rel_l2)
                          : fmt::format("rel_l2 <= {:g} x floor", value);
  return fmt::format("{} {} {:g}", metric_name(metric), metric == Metric::kCosine ? ">=" : "<=", value);
}

bool glob_match(const std::string& pattern, const std::string& text) {
  return fnmatch(pattern.c_str(), text.c_str(), 0) == 0;
}

bool Rule::applies(const std::string& hook, bool is_top_k) const {
  return (limit.metric == Metric::kTokensDiffer) == is_top_k && glob_match(hooks, hook);
}

const Rule* Budget::rule_for(Mode mode, const std::string& hook, bool is_top_k) const {
  const Rule* best = nullptr;
  for (const Rule& r : section(mode).rules)
    if (r.applies(hook, is_top_k) && (!best || specificity(r.hooks) >= specificity(best->hooks))) best = &r;
  return best;
}

Limit Budget::limit_for(Mode mode, const std::string& hook, bool is_top_k) const {
  if (const Rule* r = rule_for(mode, hook, is_top_k)) return r->limit;
  return is_top_k ? section(mode).top_k_default : *section(mode).float_default;
}

const Skip* Budget::skip_for(const std::string& hook) const {
  for (const Skip& s : skips)
    if (glob_match(s.hooks, hook)) return &s;
  return nullptr;
}

const Skip* Budget::one_side_for(const std::string& hook) const {
  for (const Skip& s : one_side)
    if (glob_match(s.hooks, hook)) return &s;
  return nullptr;
}

const ModeBudget& Budget::section(Mode mode) const {
  auto it = modes.find(mode);
  if (it == modes.end()) throw InputError(fmt::format("[budget {}] has no [{}] section", source, mode_name(mode)));
  if (!it->second.float_default)
    throw InputError(fmt::format("[budget {}] [{}] has no default (and the run dtype has no built-in budget)", source,
                                 mode_name(mode)));
  return it->second;
}

Budget builtin_budget(const std::string& run_dtype) {
  Budget b;
  b.source = "built-in defaults for " + run_dtype;
  if (run_dtype == "float32") {
    b.modes[Mode::kIsolated].float_default = {Metric::kRelL2, 1e-5};
    // Chained drift is the reference's accumulated f32 round-off, which ill-conditioned math (an
    // RMSNorm of a near-zero row) amplifies past any fixed bound; gated against its noise floor
    // (run/noise_floor.h) instead. Measured on every golden fixture and the unseen configs of
    // ci/measure_noise_floor.py: clean chained hooks sit at up to 3.3 x their floor (docs/budgets.md
    // "Noise floor"), so 8 x leaves 2.4 x headroom (every zoo bug is 7e5 x or more); 2.4e-7 = 4 f32
    // roundings (4 x 2^-24) covers hooks whose floor is zero or at round-off (largest seen: 6.7e-8).
    b.modes[Mode::kChained].float_default = {Metric::kFloorRatio, 8, 2.4e-7};
    b.near_tie_rel = 1e-5;
    // A chained run's router scores drift with every layer before them, so a fixed near_tie_rel
    // misses real ties deep in a model: gemma4_moe_k_eq_v_30l (ci/measure_noise_floor.py) swaps two
    // experts at layer 24 whose probabilities differ by 3.3e-4 relative, after the router's input
    // drifted 1.7 x its floor. 16 = the chained floor_ratio of 8 for each of the two experts.
    b.near_tie_floor_ratio = 16;
    // parity compare: two full forwards, gated against the compare floor (run/compare_floor.h): how
    // far the reference at the base's precision and its second opinion at the target's drift apart
    // on the dumps' inputs, each routed as its dump. Limits as chained (measured: docs/budgets.md
    // "compare"); without a floor, the fixed chained limit this budget had before the floor.
    b.modes[Mode::kCompare].float_default = {Metric::kFloorRatio, 8, 2.4e-7};
    b.modes[Mode::kCompare].no_floor_default = Limit{Metric::kRelL2, 1e-4};
    // Gradients (run/grad_check.h), measured by ci/measure_grad_budget.py (docs/budgets.md
    // "Gradients") on the golden configs and six unseen ones, both losses, against the floor of the
    // second opinion's forward and backward (its composite modules recompute their forward with
    // float sums). Chained: HF fp32 against HF float64 differ by 4.3e-4 on a 12-layer Gemma-4, by
    // 0.18 on a 30-layer MoE; clean rows sit at most 4.5 x their floor, so 8 x as the forward's
    // chained limit. Where the floor is (near) zero: a leaf module's exact backward against HF's
    // fp32 one, at most 6.0e-6; a composite's, up to 3.9e-5 (a PLE decoder layer whose
    // post_per_layer_input_norm reads rows at rms 0.019: HF float64 agrees with the reference to
    // 1.6e-7 there, so it is HF's fp32 backward round-off, which the second opinion, exact in its
    // backward, does not model). 1e-4 leaves 2.6 x over it.
    b.modes[Mode::kGradIsolated].float_default = {Metric::kFloorRatio, 8, 1e-4};
    b.modes[Mode::kGradChained].float_default = {Metric::kFloorRatio, 8, 1e-4};
    // Gemma-4's per_expert_scale sums, per expert, the products of its tokens' routing weights and
    // output gradients: terms of both signs. On a 30-layer MoE (ci/measure_grad_budget.py,
    // gemma4_moe_k_eq_v_30l, both losses) the clean chained gradient of layer 19's sits at 15.8 x
    // its floor (rel_l2 2.1e-2, floor 1.3e-3), the only row of 850 over 8 x: the second opinion's
    // exact backward does not model the rounding of that cancelling sum. 32 leaves 2 x.
    for (Mode m : {Mode::kGradChained, Mode::kGradCompare})
      b.modes[m].rules.push_back({"*.router.per_expert_scale", {Metric::kFloorRatio, 32, 1e-4},
                                  "built-in (per_expert_scale: a cancelling sum, measured at 15.8 x its floor)",
                                  /*builtin=*/true});
    // parity compare --grad: two dumps' gradients against the gradient compare floor (each side's
    // forward and backward from the loss, run/compare_floor.h): the same two runs as grad.chained,
    // so its limits. Measured by ci/measure_grad_budget.py (docs/budgets.md "Gradients"): a float32
    // dump against one made on ATen's default CPU kernels uses at most 48% of this limit (3.9 x the
    // floor, a 12-layer Gemma-4's k_proj weight). Without a floor, 1e-3: 2.3 x HF fp32's distance
    // from HF float64 on a 12-layer Gemma-4 (4.3e-4, see grad.chained).
    b.modes[Mode::kGradCompare].float_default = {Metric::kFloorRatio, 8, 1e-4};
    b.modes[Mode::kGradCompare].no_floor_default = Limit{Metric::kRelL2, 1e-3};
  } else if (run_dtype == "bfloat16") {
    // Both modes gate against the bf16 noise floor: the reference's second opinion accumulates in
    // float and flips every reduction's bf16 rounding that lies within 2^-20 of a midpoint
    // (numerics.h Rounding), the one-ulp roundings a correct engine with other float sums may make.
    // Measured by ci/measure_noise_floor.py on the golden bf16 fixtures and five unseen configs
    // (docs/budgets.md "Noise floor"): with 2 x floor and min_rel_l2 1.5e-3, no clean hook uses more
    // than 60% of its limit in either mode (chained: a 30-layer OLMoE's layer-28 top_k_weights at
    // 0.98 x its floor; isolated: one flipped router logit moving a small top_k_weights by 8.9e-4
    // where the second opinion flipped none). Every bf16 cast-point bug of the zoo moves its first
    // hook by about one rounding (2.6e-3 to 3.8e-3, over 3 x its floor) and fails by 1.7 x or more;
    // the old fixed limits (1e-2 isolated, 5e-2 chained) passed every one in isolated mode.
    b.modes[Mode::kIsolated].float_default = {Metric::kFloorRatio, 2, 1.5e-3};
    b.modes[Mode::kChained].float_default = {Metric::kFloorRatio, 2, 1.5e-3};
    b.near_tie_rel = 1e-2;  // a router logit near 2 has a bf16 ulp of 2^-7
    b.modes[Mode::kCompare].float_default = {Metric::kFloorRatio, 2, 1.5e-3};  // as chained (see float32 above)
    b.modes[Mode::kCompare].no_floor_default = Limit{Metric::kRelL2, 5e-2};
    // Gradients (see float32): HF's bf16 backward rounds every op's gradient to bf16. Isolated: at
    // most 1.9e-2 (a 30-layer Gemma-4's shared K/V gradient), 5e-2 leaves 2.6 x. Chained: at most
    // 1.6 x the floor where rel_l2 exceeds 5e-2 (deep MoE routers' per_expert_scale, whose floor
    // itself is above 1: there two correct bf16 implementations disagree completely).
    b.modes[Mode::kGradIsolated].float_default = {Metric::kRelL2, 5e-2};
    b.modes[Mode::kGradChained].float_default = {Metric::kFloorRatio, 4, 5e-2};
    // parity compare --grad (see float32): a float32 against a bfloat16 dump uses at most 37% of
    // this limit (1.5 x the floor). Without a floor, bf16's isolated limit: a fixed limit cannot
    // follow a deep model's bf16 drift (a chained per_expert_scale's floor exceeds 1), so a pair
    // the reference cannot run is gated only where two bf16 roundings apart would still pass.
    b.modes[Mode::kGradCompare].float_default = {Metric::kFloorRatio, 4, 5e-2};
    b.modes[Mode::kGradCompare].no_floor_default = Limit{Metric::kRelL2, 5e-2};
    // per_expert_scale (see float32): a float32 against a bfloat16 dump of the 30-layer MoE puts
    // layer 9's at 5.0 x a floor of 0.97, where the two precisions' gradients are all but unrelated
    // (floors of 1 and more are not gated at all: run/grad_compare.cpp). 32 as float32's.
    for (Mode m : {Mode::kGradChained, Mode::kGradCompare})
      b.modes[m].rules.push_back({"*.router.per_expert_scale", {Metric::kFloorRatio, 32, 5e-2},
                                  "built-in (per_expert_scale: a cancelling sum, measured at 15.8 x its floor)",
                                  /*builtin=*/true});
  } else {
    throw InputError(fmt::format("[budget] no built-in budget for run dtype {}; pass --budget", run_dtype));
  }
  b.bands = builtin_check_bands();
  return b;
}

Budget effective_budget(const std::optional<Budget>& file, const std::string& run_dtype) {
  const std::optional<DType> dtype = dtype_from_name(run_dtype);
  if (!dtype || !is_floating(*dtype))
    throw InputError(fmt::format("[budget] run dtype \"{}\" is not a floating dtype (float32, bfloat16, float16, "
                                 "float64)", run_dtype));
  const bool has_builtin = run_dtype == "float32" || run_dtype == "bfloat16";
  if (!file) return builtin_budget(run_dtype);
  Budget b = has_builtin ? builtin_budget(run_dtype) : Budget{};
  b.source = file->source;
  b.is_case = file->is_case;
  for (const auto& [mode, section] : file->modes) {
    ModeBudget& into = b.modes[mode];
    if (section.float_default) into.float_default = section.float_default, into.no_floor_default.reset();
    into.top_k_default = section.top_k_default;
    into.rules.insert(into.rules.end(), section.rules.begin(), section.rules.end());
  }
  b.skips = file->skips;
  b.one_side = file->one_side;
  if (file->near_tie_rel_set) b.near_tie_rel = file->near_tie_rel, b.near_tie_rel_set = true;
  b.bands = file->bands;  // parsed over the built-in bands already (parse_bands)
  return b;
}

Budget parse_budget(const std::string& toml_text, const std::string& source_name) {
  return parse_budget(parse_budget_toml(toml_text, source_name), source_name);
}

Budget parse_budget(const toml::table& root, const std::string& source_name) {
  Budget b;
  b.source = source_name;
  b.is_case = root.contains("fixture") || root.contains("modes") || root.contains("baseline") ||
              root.contains("expect");
  for (const auto& [key, node] : root)
    if (std::find(std::begin(kTopLevelKeys), std::end(kTopLevelKeys), key.str()) == std::end(kTopLevelKeys))
      fail(where(source_name, node), fmt::format("unknown key \"{}\"", key.str()));
  for (Mode mode : {Mode::kIsolated, Mode::kChained, Mode::kCompare}) {
    if (const toml::node_view section = root[mode_name(mode)]; section) {
      if (!section.is_table()) fail(where(source_name, *section.node()), "a mode section must be a table");
      b.modes[mode] = parse_mode(*section.as_table(), source_name);
    }
  }
  parse_grad_sections(root, source_name, b);
  b.skips = parse_skips(root["skip"], source_name);
  b.one_side = parse_skips(root["one_side"], source_name, "one_side");
  if (const toml::node_view n = root["near_tie_rel"]; n) {
    std::optional<double> v = n.value<double>();
    // A relative gap of 1 or more would call every routing difference a tie.
    if (!v || !(*v >= 0 && *v < 1)) fail(where(source_name, *n.node()), "near_tie_rel must be in [0, 1)");
    b.near_tie_rel = *v;
    b.near_tie_rel_set = true;
  }
  b.bands = parse_bands(root, source_name, builtin_check_bands());
  return b;
}

Budget load_budget(const std::filesystem::path& path) { return parse_budget(read_budget_file(path), path.string()); }

}  // namespace parity::harness
