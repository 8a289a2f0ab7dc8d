#include "run/grad_sink.h"

#include <algorithm>
#include <limits>
#include <tuple>

#include "io/fixture_sources.h"
#include "run/hook_gate.h"

namespace parity::harness {

namespace {

constexpr std::string_view kParamPrefix = "/grads/";

bool all_zero(const Array& a) {
  return std::all_of(a.data.begin(), a.data.end(), [](double x) { return x == 0; });
}

// "HF", "the reference", "the base": a side as a sentence names it.
std::string side_phrase(std::string_view side) {
  return side == "HF" ? std::string(side) : fmt::format("the {}", side);
}

}  // namespace

void ParamShares::add(const std::string& module, const std::string& param, const Array& value) {
  std::vector<Share>& shares = shares_[param];
  if (std::any_of(shares.begin(), shares.end(), [&](const Share& s) { return descends_from(s.module, module); }))
    return;
  std::erase_if(shares, [&](const Share& s) { return descends_from(module, s.module); });
  for (Share& s : shares)
    if (s.module == module && s.value.shape == value.shape) {  // one module adding to its parameter twice
      for (size_t i = 0; i < s.value.data.size(); ++i) s.value.data[i] += value.data[i];
      return;
    }
  shares.push_back({module, value});
}

std::optional<Array> ParamShares::summed(const std::string& param) const {
  auto it = shares_.find(param);
  if (it == shares_.end() || it->second.empty()) return std::nullopt;
  Array sum = it->second.front().value;
  for (size_t s = 1; s < it->second.size(); ++s) {
    const Array& add = it->second[s].value;
    if (add.shape != sum.shape) return add;  // a mis-shaped share: the gate reports its shape
    for (size_t i = 0; i < sum.data.size(); ++i) sum.data[i] += add.data[i];
  }
  return sum;
}

std::string ParamShares::source_of(const std::string& param, bool tied) const {
  if (summed(param) || param != "lm_head.weight" || !tied) return param;
  for (const std::string& other : params())
    if (other.ends_with(".embed_tokens.weight")) return other;
  return param;
}

bool ties_head(const Fixture& fixture) {
  const nlohmann::ordered_json resolved = resolved_config(fixture.config());
  const auto tie = resolved.find("tie_word_embeddings");
  return tie != resolved.end() && tie->is_boolean() && tie->get<bool>();
}

std::vector<std::string> ParamShares::modules_of(const std::string& param) const {
  std::vector<std::string> modules;
  if (auto it = shares_.find(param); it != shares_.end())
    for (const Share& s : it->second) modules.push_back(s.module);
  return modules;
}

std::vector<std::string> ParamShares::params() const {
  std::vector<std::string> names;
  for (const auto& [name, shares] : shares_) names.push_back(name);
  return names;
}

void GradFloorSink::emit(const std::string& key, const Array& value) {
  if (key.starts_with(kParamPrefix)) pending_.emplace_back(key.substr(kParamPrefix.size()), value);
  else activations_.emit(key, value);
}

void GradFloorSink::commit() {
  for (const auto& [param, value] : pending_) params_.add(module_, param, value);
  pending_.clear();
}

GradSink::GradSink(const Fixture& fixture, const Budget& budget, Mode mode, std::string glob,
                   std::vector<std::string> modules)
    : fixture_(fixture), budget_(budget), mode_(mode), glob_(std::move(glob)), modules_(std::move(modules)),
      order_(fixture), tied_head_(ties_head(fixture)) {}

bool GradSink::wanted(const std::string& name) const { return glob_.empty() || glob_match(glob_, name); }

// A parameter's gradient is complete once the backward is back at its first use in the forward:
// isolated, the earliest module whose share it sums; chained (shares of no module), its owner (a
// tied head's gradient: the embedding's, at the end of the backward).
int64_t GradSink::parameter_position(const std::string& param) const {
  int64_t position = std::numeric_limits<int64_t>::min();
  for (const std::string& module : shares_.modules_of(param))
    if (!module.empty()) position = std::max(position, order_.of_module(module));
  return position == std::numeric_limits<int64_t>::min() ? order_.of_module(owner_of(param, modules_)) : position;
}

HookResult GradSink::start(const std::string& name, int64_t order, bool param) {
  HookResult r;
  r.hook = name;
  r.order = order;
  r.sequence = next_sequence_++ - (param ? BackwardOrder::kParamFirst : 0);
  if (!budget_.skip_for(name)) assign_limit(r, budget_, mode_);
  return r;
}

void GradSink::emit(const std::string& key, const Array& value) {
  if (key.starts_with(kParamPrefix)) return shares_.add(module_, key.substr(kParamPrefix.size()), value);
  if (key == "/loss/value") return gate_loss(value);
  if (!wanted(key)) return;
  HookResult r = start(key, order_.of_key(key));
  if (!produced_.insert(key).second) r.message = "emitted twice by the reference (a wiring bug in the model file)";
  else if (!apply_skip(r, budget_))
    gate_gradient(r, &value, "grad_hooks", key, floor_ ? floor_->activations().find(key) : nullptr);
  results_.push_back(std::move(r));
}

void GradSink::emit_top_k(const std::string& key, const TopK&) {
  HookResult r = start(key, order_.of_key(key));
  r.message = "the backward emitted a top-k choice (a wiring bug in the model file)";
  results_.push_back(std::move(r));
}

void GradSink::fail_module(const std::string& module, const std::string& message) {
  HookResult r = start(module, order_.of_module(module));
  r.message = message;
  results_.push_back(std::move(r));
  for (const std::string& key : fixture_.names("grad_hooks"))
    if (is_input_key(key) && parse_hook_key(key).module == module) produced_.insert(key);
}

void GradSink::gate_loss(const Array& value) {
  loss_seen_ = true;
  if (!wanted(kLossRow)) return;
  HookResult r = start(kLossRow, std::numeric_limits<int64_t>::min());
  if (!apply_skip(r, budget_))
    gate_gradient(r, &value, "loss", "value", floor_ ? floor_->activations().find("/loss/value") : nullptr);
  results_.push_back(std::move(r));
}

void gate_gradient_pair(HookResult& r, const Array* candidate, const Array* expected, Sides sides) {
  const bool candidate_none = !candidate || all_zero(*candidate), expected_none = !expected || all_zero(*expected);
  if (candidate && expected && candidate->shape != expected->shape) {
    r.shape = expected->shape;
    r.message = shape_mismatch(candidate->shape, expected->shape, sides);
  } else if ((candidate && candidate->data.empty()) || (expected && expected->data.empty())) {
    r.message = "empty comparison: the tensor has no elements";  // not "no gradient": nothing to compare
  } else if (candidate_none && expected_none) {
    r.status = Status::kPass;
    r.measured = 0;
    r.note = candidate || expected ? "neither side has a gradient (both exactly zero)" : "neither side has a gradient";
  } else if (candidate_none) {
    r.message = fmt::format("{}: {} has a gradient, {} has none{}", r.hook, side_phrase(sides.expected),
                            side_phrase(sides.candidate), candidate ? " (all zero)" : "");
  } else if (expected_none) {
    r.message = fmt::format("{}: {} has a gradient, {} has none{}", r.hook, side_phrase(sides.candidate),
                            side_phrase(sides.expected), expected ? " (all zero)" : "");
  } else {
    gate_floats(r, compare_floats(candidate->data, expected->data), sides);
  }
  if (r.shape.empty() && (expected || candidate)) r.shape = (expected ? expected : candidate)->shape;
}

// The reference's gradient against the fixture's /<group>/<name> (absent: HF has none).
void GradSink::gate_gradient(HookResult& r, const Array* reference, std::string_view group, const std::string& name,
                             const Array* floor) {
  if (floor && reference && floor->shape == reference->shape) r.floor = compare_floats(floor->data, reference->data);
  std::optional<Array> hf;
  if (fixture_.has(group, name)) {
    const DatasetInfo info = fixture_.info(group, name);
    r.shape = info.shape;
    if (!is_floating(info.dtype)) {
      r.message = fmt::format("kind mismatch: the fixture's gradient is {}", dtype_name(info.dtype));
      return;
    }
    hf = to_array(fixture_.read(group, name), std::string(group) + "/" + name);
  }
  gate_gradient_pair(r, reference, hf ? &*hf : nullptr, kCheckSides);
}

// Every parameter either side has a gradient for, each once; a tied head's gradient is the
// embedding's (the reference emits it under the embedding's name).
void GradSink::gate_parameters() {
  std::set<std::string> names(fixture_.names("grads").begin(), fixture_.names("grads").end());
  for (const std::string& name : shares_.params()) names.insert(name);
  for (const std::string& name : names) {
    if (!wanted(name)) continue;
    const std::string source = shares_.source_of(name, tied_head_);  // whose shares hold it
    const std::optional<Array> sum = shares_.summed(source);
    HookResult r = start(name, parameter_position(source), /*param=*/true);
    if (source != name) r.note = "tied to " + source;
    const std::optional<Array> floor = floor_ ? floor_->params().summed(source) : std::nullopt;
    if (!apply_skip(r, budget_)) gate_gradient(r, sum ? &*sum : nullptr, "grads", name, floor ? &*floor : nullptr);
    results_.push_back(std::move(r));
  }
}

// Isolated: each module's own input gradients (the VJPs HF stored) must all be produced.
void GradSink::add_missing_input_gradients() {
  for (const std::string& key : fixture_.names("grad_hooks")) {
    if (!is_input_key(key) || produced_.count(key) || !wanted(key)) continue;
    HookResult r = start(key, order_.of_key(key));
    r.shape = fixture_.info("grad_hooks", key).shape;
    if (!apply_skip(r, budget_)) r.message = "the fixture has this gradient but the reference does not produce it";
    results_.push_back(std::move(r));
  }
}

void GradSink::finish(CheckReport& report) {
  if (!aborted_) {
    gate_parameters();
    if (mode_ == Mode::kGradIsolated) add_missing_input_gradients();
    if (mode_ == Mode::kGradChained && !loss_seen_) {
      HookResult r = start(kLossRow, std::numeric_limits<int64_t>::min());
      r.message = "the chained backward produced no loss value";
      results_.push_back(std::move(r));
    }
  }
  // Skips apply to every mode: one of a forward hook belongs to the forward run.
  if (glob_.empty()) add_unused_budget_entries(budget_, mode_, results_, report.problems, comparable_keys(fixture_));
  std::stable_sort(results_.begin(), results_.end(), [](const HookResult& a, const HookResult& b) {
    return std::tie(a.order, a.sequence) < std::tie(b.order, b.sequence);
  });
  report.hooks = std::move(results_);
}

}  // namespace parity::harness
