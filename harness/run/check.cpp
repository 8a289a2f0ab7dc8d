#include "run/check.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <set>
#include <sstream>

#include "run/grad_check.h"
#include "run/noise_floor.h"
#include "run/replay_sink.h"
#include "io/fixture_sources.h"
#include "models/model.h"

namespace parity::harness {

namespace {

// /meta hooked_layers: "all" or "0,5,29". It only narrows which reference hooks are expected;
// fixture hooks of other layers are still compared (a wrong list cannot hide them).
std::set<int64_t> hooked_layers(const Fixture& fixture) {
  std::set<int64_t> layers;
  auto it = fixture.meta().find("hooked_layers");
  if (it == fixture.meta().end() || attr_str(it->second) == "all") return layers;  // empty = all
  const std::string list = attr_str(it->second);
  const int64_t count = fixture.config().value("num_hidden_layers", int64_t{0});
  std::stringstream items(list);
  for (std::string item; std::getline(items, item, ',');) {
    int64_t layer = -1;
    const auto [end, ec] = std::from_chars(item.data(), item.data() + item.size(), layer);
    if (ec != std::errc() || end != item.data() + item.size() || layer < 0 || layer >= count)
      throw InputError(fmt::format("[{}] meta hooked_layers \"{}\": \"{}\" is not a layer index in 0..{}",
                                   fixture.path().string(), list, item, count - 1));
    layers.insert(layer);
  }
  return layers;
}

Precision resolve_precision(const Fixture& fixture, const CheckOptions& options) {
  if (options.precision) return *options.precision;
  const std::string dtype = fixture.meta_string("dtype");
  std::optional<Precision> p = precision_for_run_dtype(dtype);
  if (!p) throw InputError(fmt::format("[{}] run dtype {} has no matching precision; pass --precision",
                                       fixture.path().string(), dtype));
  return *p;
}

// Whether the fixture holds a hook of `module` (its own key, "module@...", "module.sub...") that
// the --hooks filter (if any) selects.
bool module_in_fixture(const std::string& module, const Fixture& fixture, const std::string& glob) {
  for (const std::string& key : comparable_keys(fixture))
    if (is_module_key(module, key) && (glob.empty() || glob_match(glob, key))) return true;
  // The final norm's output is also dumped as the base model's last_hidden_state.
  const std::optional<std::string> alias = last_hidden_state_alias(module);
  return alias && (glob.empty() || glob_match(glob, *alias));
}

// Replayed: every module of a hooked layer (so hooks the fixture lacks are caught) and every
// module the fixture holds hooks of, whatever /meta hooked_layers says.
bool module_selected(const std::string& module, const Fixture& fixture, const ReplaySink& sink,
                     const std::string& glob) {
  if (module_in_fixture(module, fixture, glob)) return true;
  return glob.empty() && sink.layer_wanted(module);
}

// The second opinion's outputs for the noise floor (noise_floor.h); a module it cannot run has
// no floor, which fails only the hooks a floor_ratio limit gates.
template <class Run>
void capture_floor(const ReferenceModel* floor_model, FloorCapture& capture, Run&& run) {
  capture.clear();
  if (!floor_model) return;
  try {
    run(*floor_model);
  } catch (const Error&) {
  }
}

void run_isolated(const Fixture& fixture, const ReferenceModel& model, const ReferenceModel* floor_model,
                  ReplaySink& sink, const std::string& glob) {
  FixtureHookInputs inputs(fixture);
  FloorCapture floor;
  sink.set_floor(&floor);
  for (const std::string& module : model.modules()) {
    if (!module_selected(module, fixture, sink, glob)) continue;
    capture_floor(floor_model, floor, [&](const ReferenceModel& m) { m.replay(module, inputs, floor); });
    try {
      model.replay(module, inputs, sink);
    } catch (const InputError&) {
      throw;
    } catch (const Error& e) {
      sink.fail_module(module, fmt::format("cannot replay: {}", e.what()));
    }
  }
}

// Chained runs follow HF's choice where the reference's top-k differs from it by a near-tie only:
// within near_tie_rel, or within the drift its noise-floor second opinion shows (FloorTie).
class FollowHfTies final : public RoutingPolicy {
 public:
  FollowHfTies(const Fixture& fixture, const Budget& budget, const FloorCapture* floor)
      : fixture_(fixture), budget_(budget), floor_(floor) {}
  IndexArray resolve(const std::string& router, const IndexArray& own, const Array& scores) const override {
    const std::optional<IndexArray> hf = dump_top_k_index(fixture_, router, own.shape);
    if (!hf) return own;
    const FloorTie tie = floor_ ? floor_->tie_for(router, budget_.near_tie_floor_ratio) : FloorTie{};
    return resolve_near_ties(own, *hf, scores, budget_.near_tie_rel, tie);
  }

 private:
  const Fixture& fixture_;
  const Budget& budget_;
  const FloorCapture* floor_;
};

void run_chained(const Fixture& fixture, const ReferenceModel& model, const ReferenceModel* floor_model,
                 ReplaySink& sink, CheckReport& report, const Budget& budget) {
  const ForwardInputs forward = forward_inputs(fixture);
  FloorCapture floor;
  // The second opinion routes as HF did wherever it can: its outputs are then what a correct
  // implementation routed like HF computes, the floor of every hook the reference reaches by
  // following HF (through its near-ties), and its router scores are taken before that choice.
  const RouteAs floor_routing(fixture);
  capture_floor(floor_model, floor, [&](const ReferenceModel& m) { m.forward(forward, floor, &floor_routing); });
  const FollowHfTies routing(fixture, budget, floor_model ? &floor : nullptr);
  sink.set_floor(&floor);
  try {
    model.forward(forward, sink, &routing);
  } catch (const InputError&) {
    throw;
  } catch (const Error& e) {
    report.problems.push_back(fmt::format("the chained forward stopped: {}", e.what()));
    sink.set_aborted();
  }
}

}  // namespace

double HookResult::value_of(Metric metric) const {
  if (metric == Metric::kTokensDiffer) return static_cast<double>(top_k->differ);
  switch (metric) {
    case Metric::kRelL2: return floats->rel_l2;
    case Metric::kMaxAbs: return floats->max_abs;
    case Metric::kMaxRel: return floats->max_rel;
    case Metric::kCosine: return floats->cosine;
    case Metric::kFloorRatio: {
      if (!floor) return NAN;
      const double rel = floats->rel_l2;
      const double denominator = std::max(floor->rel_l2, limit ? limit->min_rel_l2 / limit->value : 0.0);
      return rel == 0 ? 0.0 : rel / denominator;
    }
    case Metric::kTokensDiffer: break;
  }
  return NAN;
}

double HookResult::floor_ratio() const {
  if (!floats || !floor) return NAN;
  if (floats->rel_l2 == 0) return 0;
  return floats->rel_l2 / floor->rel_l2;  // inf above a zero floor
}

void HookResult::gate(double value) {
  measured = value;
  status = limit->allows(value) ? Status::kPass : Status::kFail;
  if (status == Status::kFail && limit->metric == Metric::kFloorRatio)
    message = fmt::format("rel_l2 = {:.3g}, {:.3g} x its noise floor {:.3g}: over budget {}", floats->rel_l2,
                          floor_ratio(), floor->rel_l2, limit->str());
  else if (status == Status::kFail)
    message = fmt::format("{} = {:.3g} over budget {}", metric_name(limit->metric), value, limit->str());
}

std::string_view status_name(Status status) {
  switch (status) {
    case Status::kPass: return "pass";
    case Status::kFail: return "fail";
    case Status::kSkipped: return "skipped";
  }
  return "unknown";
}

bool CheckResult::passed() const {
  const bool gate = expectation ? expectation->met()
                                : std::all_of(runs.begin(), runs.end(), [](const CheckReport& r) { return r.passed(); });
  return !runs.empty() && gate && (!baseline || baseline->passed());
}

std::vector<MetricValue> baseline_values(const std::vector<CheckReport>& runs) {
  std::vector<MetricValue> values;
  for (const CheckReport& run : runs) {
    const std::string mode(mode_name(run.mode));
    for (const HookResult& h : run.hooks) {
      if (h.floats) {
        values.push_back({mode, h.hook, "rel_l2", h.floats->rel_l2});
        values.push_back({mode, h.hook, "max_abs", h.floats->max_abs});
      }
      if (h.top_k) {
        values.push_back({mode, h.hook, "tokens_differ", static_cast<double>(h.top_k->differ)});
        values.push_back({mode, h.hook, "near_ties", static_cast<double>(h.top_k->near_ties)});
      }
    }
  }
  return values;
}

bool CheckReport::passed() const {
  return problems.empty() && count(Status::kFail) == 0 && count(Status::kPass) > 0;
}

const HookResult* CheckReport::first_failure() const {
  for (const HookResult& h : hooks)
    if (h.status == Status::kFail) return &h;
  return nullptr;
}

int64_t CheckReport::count(Status status) const {
  return std::count_if(hooks.begin(), hooks.end(), [&](const HookResult& h) { return h.status == status; });
}

CheckReport run_check(const Fixture& fixture, const Budget& budget, const CheckOptions& options) {
  CheckReport report;
  report.fixture = fixture.path().string();
  report.mode = options.mode;
  report.precision = resolve_precision(fixture, options);
  report.budget_source = budget.source;
  budget.section(options.mode);  // a budget without this mode is an input error, before any work
  if (is_grad_mode(options.mode) && !fixture.has_gradients())
    throw InputError(fmt::format("[{}] holds no gradients (format version 1): dump it with parity-dump --grad LOSS "
                                 "to check {}", fixture.path().string(), mode_name(options.mode)));
  if (is_compare_mode(options.mode))  // two dumps against each other: compare.h, not a replay
    throw InputError(fmt::format("[check] mode {} is `parity compare` of two dumps (run_compare), not a check mode",
                                 mode_name(options.mode)));
  FixtureWeights fixture_weights(fixture);
  const WeightSource& weights = options.weights ? *options.weights : fixture_weights;
  if (!options.weights && fixture.names("weights").empty())
    throw InputError(fmt::format("[{}] has no weights (dumped with --weights none); pass --weights CHECKPOINT_DIR",
                                 fixture.path().string()));
  std::unique_ptr<ReferenceModel> model = reference_model_of(fixture, weights, report.precision, options.variants);
  const std::unique_ptr<ReferenceModel> floor_model =
      options.noise_floor ? floor_model_of(fixture, weights, options.variants) : nullptr;
  if (is_grad_mode(options.mode)) {
    check_gradients(fixture, *model, floor_model.get(), budget, options, report);
    // A row of no gradient on either side passes without comparing numbers: not a comparison.
    if (std::none_of(report.hooks.begin(), report.hooks.end(), [](const HookResult& h) { return h.floats.has_value(); }))
      report.problems.push_back("empty comparison: no gradient was compared");
    return report;
  }
  ReplaySink sink(fixture, budget, options.mode, options.hooks_glob, hooked_layers(fixture));
  if (options.mode == Mode::kIsolated) run_isolated(fixture, *model, floor_model.get(), sink, options.hooks_glob);
  else run_chained(fixture, *model, floor_model.get(), sink, report, budget);
  sink.finish(report);
  if (report.count(Status::kPass) + report.count(Status::kFail) == 0)
    report.problems.push_back("empty comparison: no hook was compared");
  if (fixture.has_gradients())  // said, so that a pass is never read as a gradient verdict
    report.notes.push_back(fmt::format("gradients: the fixture holds {} module and {} parameter gradients (loss {}); "
                                       "this check gates the forward pass only (--grad checks them)",
                                       fixture.names("grad_hooks").size(), fixture.names("grads").size(),
                                       fixture.meta_string("grad_loss")));
  return report;
}

}  // namespace parity::harness
