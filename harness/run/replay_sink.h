// ReplaySink: receives the reference's outputs by hook key, compares each against the fixture
// the moment it arrives (so a large model never holds more than one layer's tensors), gates it
// on the budget and, at the end, adds the coverage failures (fixture hooks never produced,
// budget rules and skips that matched nothing).
#pragma once

#include <map>
#include <set>

#include "run/check.h"
#include "run/noise_floor.h"
#include "models/model.h"

namespace parity::harness {

class ReplaySink final : public HookSink {
 public:
  // hooked_layers empty = every layer.
  ReplaySink(const Fixture& fixture, const Budget& budget, Mode mode, std::string hooks_glob,
              std::set<int64_t> hooked_layers);

  void emit(const std::string& key, const Array& value) override;
  void emit_top_k(const std::string& key, const TopK& top_k) override;

  // Whether the key belongs to a layer /meta hooked_layers lists (or to no layer).
  bool layer_wanted(const std::string& key) const;
  void fail_module(const std::string& module, const std::string& message);
  void set_aborted() { aborted_ = true; }
  // Where each hook's noise floor comes from (the second opinion's outputs); nullptr: none.
  void set_floor(const FloorCapture* floor) { floor_ = floor; }
  // Moves the results, in forward order, and the coverage failures into the report.
  void finish(CheckReport& report);

 private:
  bool wanted(const std::string& key) const;
  // A result for `key` with its order and budget, or nullopt when `key` needs no comparison.
  std::optional<HookResult> start(const std::string& key, bool is_top_k);
  void add_coverage_failures();
  void add_unused_budget_entries(CheckReport& report) const;
  void place(HookResult& r);  // sets order and sequence for a hook the reference emitted

  const Fixture& fixture_;
  const Budget& budget_;
  Mode mode_;
  std::string glob_;
  std::set<int64_t> layers_;
  std::map<std::string, int64_t> fixture_order_;
  std::set<std::string> produced_;
  std::map<std::string, IndexArray> routed_;  // per router: the index its @top_k_weights follow
  std::vector<HookResult> results_;
  int64_t last_order_ = -1;
  int64_t next_sequence_ = 0;
  bool aborted_ = false;
  const FloorCapture* floor_ = nullptr;
};

}  // namespace parity::harness
