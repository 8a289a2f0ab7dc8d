#include "run/grad_check.h"

#include <algorithm>
#include <limits>
#include <map>
#include <set>
#include <tuple>

#include "io/fixture_sources.h"
#include "models/model.h"
#include "run/hook_gate.h"
#include "run/noise_floor.h"

namespace parity::harness {

namespace {

constexpr std::string_view kParamPrefix = "/grads/";
constexpr const char* kLossRow = "loss";
constexpr int64_t kParamFirst = int64_t{1} << 40;

bool all_zero(const Array& a) {
  return std::all_of(a.data.begin(), a.data.end(), [](double x) { return x == 0; });
}

// HF's gradient of each hooked tensor, as a module's backward reads it (/grad_hooks).
class FixtureGrads final : public GradInputs {
 public:
  explicit FixtureGrads(const Fixture& fixture) : fixture_(fixture) {}
  std::optional<Array> grad(const std::string& key) const override {
    if (!fixture_.has("grad_hooks", key)) return std::nullopt;
    return to_array(fixture_.read("grad_hooks", key), "gradient of " + key);
  }

 private:
  const Fixture& fixture_;
};

// Where each module's call starts and ends in the forward: the fixture positions of its first key
// (its inputs, stored when it is called) and its last (its output, stored when it returns). A
// backward runs in reverse: a module's output gradient exists when the backward reaches its end,
// its input and parameter gradients once it has gone back through the module to its start (a
// decoder layer's input gradient after every module inside it).
struct Span {
  int64_t first = -1, last = -1;
};

std::map<std::string, Span> forward_spans(const Fixture& fixture) {
  std::map<std::string, Span> spans;
  const std::vector<std::string> keys = comparable_keys(fixture);
  for (size_t i = 0; i < keys.size(); ++i) {
    Span& s = spans[parse_hook_key(keys[i]).module];
    if (s.first < 0) s.first = static_cast<int64_t>(i);
    s.last = static_cast<int64_t>(i);
  }
  return spans;
}

bool descends_from(const std::string& module, const std::string& ancestor) {
  return module.size() > ancestor.size() && module.starts_with(ancestor) && module[ancestor.size()] == '.';
}

// Receives the reference's gradients, gates each activation gradient as it arrives and each
// parameter's once every module has run (shares of several modules add up).
class GradSink final : public HookSink {
 public:
  GradSink(const Fixture& fixture, const Budget& budget, Mode mode, std::string glob, std::vector<std::string> modules)
      : fixture_(fixture), budget_(budget), mode_(mode), glob_(std::move(glob)), modules_(std::move(modules)),
        spans_(forward_spans(fixture)) {}

  // The module whose backward runs next (isolated); its parameter gradients are its shares.
  void set_module(const std::string& module) { module_ = module; }

  void emit(const std::string& key, const Array& value) override {
    if (key.starts_with(kParamPrefix)) return add_share(key.substr(kParamPrefix.size()), value);
    if (key == "/loss/value") return gate_loss(value);
    if (!wanted(key)) return;
    HookResult r = start(key, position_of_key(key));
    if (!produced_.insert(key).second) r.message = "emitted twice by the reference (a wiring bug in the model file)";
    else if (!apply_skip(r, budget_)) gate_gradient(r, &value, "grad_hooks", key, key);
    results_.push_back(std::move(r));
  }

  void emit_top_k(const std::string& key, const TopK&) override {
    HookResult r = start(key, position_of_key(key));
    r.message = "the backward emitted a top-k choice (a wiring bug in the model file)";
    results_.push_back(std::move(r));
  }

  // A module whose backward cannot run: one failure, standing for its input gradients too.
  void fail_module(const std::string& module, const std::string& message) {
    HookResult r = start(module, position_of(module));
    r.message = message;
    results_.push_back(std::move(r));
    for (const std::string& key : fixture_.names("grad_hooks"))
      if (is_input_key(key) && parse_hook_key(key).module == module) produced_.insert(key);
  }

  void set_aborted() { aborted_ = true; }
  // The second opinion's gradients (chained: run/noise_floor.h), by the key it emitted them under.
  void set_floor(const FloorCapture* floor) { floor_ = floor; }

  void finish(CheckReport& report) {
    if (!aborted_) {
      gate_parameters();
      if (mode_ == Mode::kGradIsolated) add_missing_input_gradients();
      if (mode_ == Mode::kGradChained && !loss_seen_) {
        HookResult r = start(kLossRow, std::numeric_limits<int64_t>::min());
        r.message = "the chained backward produced no loss value";
        results_.push_back(std::move(r));
      }
    }
    std::vector<std::string> known = comparable_keys(fixture_);  // skips of forward hooks belong to the forward
    if (glob_.empty()) add_unused_budget_entries(budget_, mode_, results_, report.problems, known);
    std::stable_sort(results_.begin(), results_.end(), [](const HookResult& a, const HookResult& b) {
      return std::tie(a.order, a.sequence) < std::tie(b.order, b.sequence);
    });
    report.hooks = std::move(results_);
  }

 private:
  bool wanted(const std::string& name) const { return glob_.empty() || glob_match(glob_, name); }

  // Backward order (forward_spans): an output gradient's row at the module's end, every other row
  // (input and parameter gradients, a module that failed) at its start.
  int64_t position_of(const std::string& module, bool output = false) const {
    auto it = spans_.find(module);
    if (it == spans_.end()) return std::numeric_limits<int64_t>::max();
    return -(output ? it->second.last : it->second.first) * 2 - (output ? 1 : 0);
  }
  int64_t position_of_key(const std::string& key) const {
    const HookKey k = parse_hook_key(key);
    return position_of(k.module, k.kind != HookKind::kInput);
  }

  // The module a parameter belongs to: the longest module path that prefixes its name.
  std::string owner_of(const std::string& param) const {
    std::string best;
    for (const std::string& m : modules_)
      if (descends_from(param, m) && m.size() > best.size()) best = m;
    return best;
  }

  // param: a parameter's row, listed before the input gradients of the module it belongs to.
  HookResult start(const std::string& name, int64_t order, bool param = false) {
    HookResult r;
    r.hook = name;
    r.order = order;
    r.sequence = next_sequence_++ - (param ? kParamFirst : 0);
    if (!budget_.skip_for(name)) assign_limit(r, budget_, mode_);
    return r;
  }

  // Keeps the shares of the smallest modules that use a parameter: a module inside another (an
  // attention block's projection) computes its gradient from HF's own intermediate tensors, the
  // tighter check; modules that do not nest (a tied embedding and head) each add their share.
  void add_share(const std::string& param, const Array& value) {
    std::vector<Share>& shares = shares_[param];
    const std::string& module = module_;
    if (std::any_of(shares.begin(), shares.end(), [&](const Share& s) { return descends_from(s.module, module); }))
      return;
    std::erase_if(shares, [&](const Share& s) { return descends_from(module, s.module); });
    for (Share& s : shares)
      if (s.module == module) {  // a module adding to its own parameter twice (chained: one module, "")
        for (size_t i = 0; i < s.value.data.size() && i < value.data.size(); ++i) s.value.data[i] += value.data[i];
        return;
      }
    shares.push_back({module, value});
  }

  void gate_loss(const Array& value) {
    loss_seen_ = true;
    if (!wanted(kLossRow)) return;
    HookResult r = start(kLossRow, std::numeric_limits<int64_t>::min());
    if (!apply_skip(r, budget_)) gate_gradient(r, &value, "loss", "value", "/loss/value");
    results_.push_back(std::move(r));
  }

  // The reference's gradient against the fixture's /<group>/<name> (absent: HF has none); its floor
  // is the second opinion's value under `floor_key`, where there is one.
  void gate_gradient(HookResult& r, const Array* reference, std::string_view group, const std::string& name,
                     const std::string& floor_key) {
    if (const Array* second = floor_ ? floor_->find(floor_key) : nullptr;
        second && reference && second->shape == reference->shape)
      r.floor = compare_floats(second->data, reference->data);
    const bool ref_none = !reference || all_zero(*reference);
    if (!fixture_.has(group, name)) {
      if (ref_none) {
        r.status = Status::kPass;
        r.measured = 0;
        r.note = "neither side has a gradient";
      } else {
        r.shape = reference->shape;
        r.message = fmt::format("{}: the reference has a gradient, HF has none", r.hook);
      }
      return;
    }
    const DatasetInfo info = fixture_.info(group, name);
    r.shape = info.shape;
    if (!is_floating(info.dtype)) {
      r.message = fmt::format("kind mismatch: the fixture's gradient is {}", dtype_name(info.dtype));
      return;
    }
    const Array hf = to_array(fixture_.read(group, name), std::string(group) + "/" + name);
    const bool hf_none = all_zero(hf);
    if (reference && reference->shape != info.shape) r.message = shape_mismatch(reference->shape, info.shape, kCheckSides);
    else if (ref_none && hf_none) {
      r.status = Status::kPass;
      r.measured = 0;
      r.note = "neither side has a gradient (both exactly zero)";
    } else if (ref_none) r.message = fmt::format("{}: HF has a gradient, the reference has none", r.hook);
    else if (hf_none) r.message = fmt::format("{}: the reference has a gradient, HF has none (all zero)", r.hook);
    else gate_floats(r, compare_floats(reference->data, hf.data), kCheckSides);
  }

  // Every parameter either side has a gradient for, each once; a tied head's gradient is the
  // embedding's (the reference emits it under the embedding's name).
  void gate_parameters() {
    std::set<std::string> names(fixture_.names("grads").begin(), fixture_.names("grads").end());
    for (const auto& [name, shares] : shares_) names.insert(name);
    for (const std::string& name : names) {
      if (!wanted(name)) continue;
      std::optional<Array> sum = summed(name);
      std::string tied;
      if (!sum && name == "lm_head.weight" && fixture_.config().value("tie_word_embeddings", false)) {
        for (const auto& [other, shares] : shares_)
          if (other.ends_with(".embed_tokens.weight")) tied = other, sum = summed(other);
      }
      HookResult r = start(name, parameter_position(tied.empty() ? name : tied), /*param=*/true);
      if (!tied.empty()) r.note = "tied to " + tied;
      if (!apply_skip(r, budget_))
        gate_gradient(r, sum ? &*sum : nullptr, "grads", name, "/grads/" + (tied.empty() ? name : tied));
      results_.push_back(std::move(r));
    }
  }

  // A parameter's gradient is complete once the backward is back at its first use in the forward:
  // isolated, the earliest module whose share it sums; chained (shares of no module), its owner
  // (a tied head's gradient: the embedding's, at the end of the backward).
  int64_t parameter_position(const std::string& name) const {
    int64_t position = std::numeric_limits<int64_t>::min();
    if (auto it = shares_.find(name); it != shares_.end())
      for (const Share& s : it->second)
        if (!s.module.empty()) position = std::max(position, position_of(s.module));
    return position == std::numeric_limits<int64_t>::min() ? position_of(owner_of(name)) : position;
  }

  std::optional<Array> summed(const std::string& name) const {
    auto it = shares_.find(name);
    if (it == shares_.end() || it->second.empty()) return std::nullopt;
    Array sum = it->second.front().value;
    for (size_t s = 1; s < it->second.size(); ++s) {
      const Array& add = it->second[s].value;
      if (add.shape != sum.shape) return add;  // a mis-shaped share: the gate reports its shape
      for (size_t i = 0; i < sum.data.size(); ++i) sum.data[i] += add.data[i];
    }
    return sum;
  }

  // Isolated: each module's own input gradients (the VJPs HF stored) must all be produced.
  void add_missing_input_gradients() {
    for (const std::string& key : fixture_.names("grad_hooks")) {
      if (!is_input_key(key) || produced_.count(key) || !wanted(key)) continue;
      HookResult r = start(key, position_of_key(key));
      r.shape = fixture_.info("grad_hooks", key).shape;
      if (!apply_skip(r, budget_)) r.message = "the fixture has this gradient but the reference does not produce it";
      results_.push_back(std::move(r));
    }
  }

  struct Share {
    std::string module;
    Array value;
  };

  const Fixture& fixture_;
  const Budget& budget_;
  Mode mode_;
  std::string glob_;
  std::vector<std::string> modules_;
  std::map<std::string, Span> spans_;
  std::string module_;
  std::map<std::string, std::vector<Share>> shares_;
  std::set<std::string> produced_;
  std::vector<HookResult> results_;
  int64_t next_sequence_ = 0;
  bool loss_seen_ = false;
  bool aborted_ = false;
  const FloorCapture* floor_ = nullptr;
};

// Whether the module's backward has something to start from: HF's gradient of one of its outputs.
bool has_output_gradient(const Fixture& fixture, const std::string& module) {
  for (const std::string& key : fixture.names("grad_hooks"))
    if (!is_input_key(key) && parse_hook_key(key).module == module) return true;
  return false;
}

// Under --hooks, a module runs when the glob selects one of its gradients.
bool selected(const Fixture& fixture, const std::string& module, const std::string& glob) {
  if (glob.empty()) return true;
  for (const std::string& name : gradient_names(fixture))
    if ((parse_hook_key(name).module == module || descends_from(name, module)) && glob_match(glob, name)) return true;
  return false;
}

void run_isolated(const Fixture& fixture, const ReferenceModel& model, GradSink& sink, const std::string& glob) {
  const FixtureHookInputs inputs(fixture);
  const FixtureGrads grads(fixture);
  for (const std::string& module : model.modules()) {
    // Replay units of one input ("x@in") are forward-only; a module nothing was differentiated
    // through (the rotary tables) has no backward to check.
    if (module.find('@') != std::string::npos || !has_output_gradient(fixture, module) ||
        !selected(fixture, module, glob))
      continue;
    sink.set_module(module);
    try {
      model.replay_backward(module, inputs, grads, sink);
    } catch (const InputError&) {
      throw;
    } catch (const Error& e) {
      sink.fail_module(module, fmt::format("cannot run the backward: {}", e.what()));
    }
  }
}

Loss fixture_loss(const Fixture& fixture) {
  Loss loss;
  const std::string kind = fixture.meta_string("grad_loss");
  if (kind == "logprob_sum") {
    loss.kind = Loss::Kind::kLogprobSum;
    loss.weights = to_array(fixture.read("loss", "weights"), "/loss/weights");
  } else {
    loss.kind = Loss::Kind::kCeMean;
    loss.labels = to_index_array(fixture.read("loss", "labels"), "/loss/labels");
  }
  return loss;
}

// The second opinion (run/noise_floor.h: float sums at the run's cast points) runs the same forward
// and backward first: how far its gradients lie from the reference's is how far the forward's
// round-off alone moves them on these inputs (the chained floor).
// `floor` holds the second opinion's gradients until the sink's finish() has gated every row.
void run_chained(const Fixture& fixture, const ReferenceModel& model, const ReferenceModel* floor_model,
                 FloorCapture& floor, GradSink& sink, CheckReport& report) {
  // Routed as HF routed: the forward's own chained check gates the routing; a near-tie broken the
  // other way here would move a token's experts and every gradient after it.
  const RouteAs routing(fixture);
  const ForwardInputs inputs = forward_inputs(fixture);
  const Loss loss = fixture_loss(fixture);
  if (floor_model) {
    try {
      floor_model->forward_backward(inputs, loss, floor, &routing);
      sink.set_floor(&floor);
    } catch (const Error&) {  // no floor: only a floor_ratio limit fails, naming it
    }
  }
  try {
    model.forward_backward(inputs, loss, sink, &routing);
  } catch (const InputError&) {
    throw;
  } catch (const Error& e) {
    report.problems.push_back(fmt::format("the chained backward stopped: {}", e.what()));
    sink.set_aborted();
  }
}

}  // namespace

std::vector<std::string> gradient_names(const Fixture& fixture) {
  if (!fixture.has_gradients()) return {};
  std::vector<std::string> names = fixture.names("grad_hooks");
  const std::vector<std::string>& params = fixture.names("grads");
  names.insert(names.end(), params.begin(), params.end());
  names.push_back(kLossRow);
  return names;
}

void check_gradients(const Fixture& fixture, const ReferenceModel& model, const ReferenceModel* floor_model,
                     const Budget& budget, const CheckOptions& options, CheckReport& report) {
  GradSink sink(fixture, budget, options.mode, options.hooks_glob, model.modules());
  if (options.mode == Mode::kGradIsolated) run_isolated(fixture, model, sink, options.hooks_glob);
  FloorCapture floor;
  if (options.mode == Mode::kGradChained) run_chained(fixture, model, floor_model, floor, sink, report);
  sink.finish(report);
  if (options.mode == Mode::kGradChained)
    report.notes.push_back("routed as HF routed (the chained forward check gates the routing itself)");
}

}  // namespace parity::harness
