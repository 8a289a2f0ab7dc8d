#include "run/replay_sink.h"

#include <algorithm>
#include <tuple>

#include "io/fixture_sources.h"
#include "run/grad_check.h"
#include "run/hook_gate.h"

namespace parity::harness {

ReplaySink::ReplaySink(const Fixture& fixture, const Budget& budget, Mode mode, std::string hooks_glob,
                         std::set<int64_t> hooked_layers)
    : fixture_(fixture), budget_(budget), mode_(mode), glob_(std::move(hooks_glob)), layers_(std::move(hooked_layers)) {
  const std::vector<std::string> keys = comparable_keys(fixture);
  for (size_t i = 0; i < keys.size(); ++i) fixture_order_[keys[i]] = static_cast<int64_t>(i);
}

bool ReplaySink::layer_wanted(const std::string& key) const {
  const int64_t layer = decoder_layer_of(key);
  return layer < 0 || layers_.empty() || layers_.count(layer) > 0;
}

bool ReplaySink::wanted(const std::string& key) const {
  return (layer_wanted(key) || fixture_order_.count(key) > 0) && (glob_.empty() || glob_match(glob_, key));
}

std::optional<HookResult> ReplaySink::start(const std::string& key, bool is_top_k) {
  if (!wanted(key)) return std::nullopt;
  HookResult r;
  r.hook = key;
  r.is_top_k = is_top_k;
  place(r);
  auto it = fixture_order_.find(key);
  if (!produced_.insert(key).second) {
    r.message = "emitted twice by the reference (a wiring bug in the model file)";
    return r;
  }
  if (apply_skip(r, budget_)) return r;
  if (it == fixture_order_.end()) {
    r.message = "the reference produces this hook but the fixture has no such hook";
    return r;
  }
  assign_limit(r, budget_, mode_);
  return r;
}

void ReplaySink::emit(const std::string& key, const Array& value) {
  std::optional<HookResult> r = start(key, false);
  if (!r) return;
  if (r->limit) {
    const FixtureKey where = fixture_key(key);
    const DatasetInfo info = fixture_.info(where.group, where.name);
    r->shape = info.shape;
    if (!is_floating(info.dtype)) {
      r->message = fmt::format("kind mismatch: the reference produces floats, the fixture holds {}",
                               dtype_name(info.dtype));
    } else if (info.shape != value.shape) {
      r->message = shape_mismatch(value.shape, info.shape, kCheckSides);
    } else {
      if (const Array* second = floor_ ? floor_->find(key) : nullptr; second && second->shape == value.shape)
        r->floor = compare_floats(second->data, value.data);
      Array ref = value;
      const std::string router = key.substr(0, key.rfind('@'));
      if (key.ends_with("@top_k_weights") && routed_.count(router) && fixture_.has("hooks", router + "@top_k_index"))
        ref = align_top_k_weights(value, routed_.at(router),
                                  to_index_array(fixture_.read("hooks", router + "@top_k_index"), router));
      gate_floats(*r, compare_floats(ref.data, fixture_.read(where.group, where.name).to_f64()), kCheckSides);
    }
  }
  results_.push_back(std::move(*r));
}

void ReplaySink::emit_top_k(const std::string& key, const TopK& top_k) {
  routed_[key.substr(0, key.rfind('@'))] = top_k.routed;
  const IndexArray& index = top_k.index;
  std::optional<HookResult> r = start(key, true);
  if (!r) return;
  if (r->limit) {
    const DatasetInfo info = fixture_.info("hooks", key);
    r->shape = info.shape;
    if (is_floating(info.dtype)) {
      r->message = fmt::format("kind mismatch: the reference produces expert indices, the fixture holds {}",
                               dtype_name(info.dtype));
    } else if (info.shape != index.shape) {
      r->message = shape_mismatch(index.shape, info.shape, kCheckSides);
    } else {
      const FloorTie tie = floor_ ? floor_->tie_for(key.substr(0, key.rfind('@')), budget_.near_tie_floor_ratio)
                                  : FloorTie{};
      gate_top_k(*r, compare_top_k(index, to_index_array(fixture_.read("hooks", key), key), top_k.scores,
                                   budget_.near_tie_rel, nullptr, tie));
    }
  }
  results_.push_back(std::move(*r));
}

void ReplaySink::place(HookResult& r) {
  auto it = fixture_order_.find(r.hook);
  // A key the fixture lacks sits right after the fixture hook emitted before it.
  r.order = it != fixture_order_.end() ? it->second : last_order_;
  r.sequence = next_sequence_++;
  last_order_ = r.order;
}

void ReplaySink::fail_module(const std::string& module, const std::string& message) {
  HookResult r;
  r.hook = module;
  r.message = message;
  place(r);
  produced_.insert(module);
  results_.push_back(std::move(r));
}

void ReplaySink::add_coverage_failures() {
  if (aborted_) return;  // the stopped forward is already the failure; do not list every later hook
  for (const auto& [key, order] : fixture_order_) {
    // Only --hooks narrows this: hooked_layers must not hide a fixture hook from the gate.
    if (produced_.count(key) || is_input_key(key) || (!glob_.empty() && !glob_match(glob_, key))) continue;
    HookResult r;
    r.hook = key;
    r.order = order;
    r.sequence = next_sequence_++;
    const FixtureKey where = fixture_key(key);
    r.shape = fixture_.info(where.group, where.name).shape;
    if (!apply_skip(r, budget_)) r.message = "the fixture has this hook but the reference does not produce it";
    results_.push_back(std::move(r));
  }
}

void ReplaySink::add_unused_budget_entries(CheckReport& report) const {
  if (!glob_.empty()) return;  // under --hooks most rules legitimately match nothing
  harness::add_unused_budget_entries(budget_, mode_, results_, report.problems, gradient_names(fixture_));
}

void ReplaySink::finish(CheckReport& report) {
  add_coverage_failures();
  add_unused_budget_entries(report);
  std::stable_sort(results_.begin(), results_.end(),
                   [](const HookResult& a, const HookResult& b) {
                     return std::tie(a.order, a.sequence) < std::tie(b.order, b.sequence);
                   });
  report.hooks = std::move(results_);
}

}  // namespace parity::harness
