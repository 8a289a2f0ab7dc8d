// The gradient side of `parity check` (run/grad_check.h): what receives the reference's gradients
// and gates them. GradSink compares each activation gradient the moment it arrives and every
// parameter's once all modules have run; ParamShares adds up the shares several modules emit of one
// parameter; GradFloorSink collects the second opinion's gradients (run/noise_floor.h), whose
// distance from the reference's is each row's noise floor.
#pragma once

#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "gate/budget.h"
#include "io/fixture.h"
#include "models/model.h"
#include "run/backward_order.h"
#include "run/check.h"
#include "run/hook_gate.h"
#include "run/noise_floor.h"

namespace parity::harness {

// The row of the loss value in a chained gradient run.
inline constexpr const char* kLossRow = "loss";

// d loss / d parameter, as the modules' backwards emit it ("/grads/<name>", model.h). A parameter's
// gradient sums the shares of the smallest modules that use it: a module inside another (an
// attention block's projection) computes its share from HF's own intermediate tensors, the tighter
// check, and replaces its parent's; modules that do not nest (a tied embedding and head) add up.
class ParamShares {
 public:
  // module: the module whose backward emitted it ("" in a chained run: one backward, one share).
  void add(const std::string& module, const std::string& param, const Array& value);
  std::optional<Array> summed(const std::string& param) const;
  // The name whose shares hold `param`'s gradient: its own, or for a tied head (tied: the model
  // ties it, ties_head) the embedding's, under which the reference emits both.
  std::string source_of(const std::string& param, bool tied) const;
  std::optional<Array> gradient_of(const std::string& param, bool tied) const { return summed(source_of(param, tied)); }
  std::vector<std::string> modules_of(const std::string& param) const;
  std::vector<std::string> params() const;

 private:
  struct Share {
    std::string module;
    Array value;
  };
  std::map<std::string, std::vector<Share>> shares_;
};

// Whether the model ties its head to its embedding, as the reference resolves the config
// (Gemma-4's text config, its default): the head then emits no gradient of its own.
bool ties_head(const Fixture& fixture);

// The second opinion's backward: its activation gradients by key (isolated: cleared before each
// module), its parameter shares as ParamShares.
class GradFloorSink final : public HookSink {
 public:
  void set_module(const std::string& module) { module_ = module, activations_.clear(), pending_.clear(); }
  void emit(const std::string& key, const Array& value) override;
  void emit_top_k(const std::string&, const TopK&) override {}
  // The module's backward completed: its parameter shares count (a failed one's are dropped).
  void commit();
  const FloorCapture& activations() const { return activations_; }
  const ParamShares& params() const { return params_; }

 private:
  std::string module_;
  FloorCapture activations_;
  std::vector<std::pair<std::string, Array>> pending_;
  ParamShares params_;
};

// One gradient row: the candidate side's gradient against the expected side's (nullptr: that side
// has none), as the sides name them. A gradient on one side only (absent or exactly zero) always
// fails, naming the side that has it; none on either side passes, saying so.
void gate_gradient_pair(HookResult& r, const Array* candidate, const Array* expected, Sides sides);

class GradSink final : public HookSink {
 public:
  GradSink(const Fixture& fixture, const Budget& budget, Mode mode, std::string glob, std::vector<std::string> modules);

  // The module whose backward runs next (isolated); its parameter gradients are its shares.
  void set_module(const std::string& module) { module_ = module; }
  // The second opinion's gradients for the floors; nullptr: none (a floor_ratio limit then fails).
  void set_floor(const GradFloorSink* floor) { floor_ = floor; }
  void emit(const std::string& key, const Array& value) override;
  void emit_top_k(const std::string& key, const TopK&) override;
  // A module whose backward cannot run: one failure, standing for its input gradients too.
  void fail_module(const std::string& module, const std::string& message);
  void set_aborted() { aborted_ = true; }
  // Gates every parameter, adds the coverage failures, and moves the rows into the report in
  // backward order.
  void finish(CheckReport& report);

 private:
  bool wanted(const std::string& name) const;
  int64_t parameter_position(const std::string& param) const;
  HookResult start(const std::string& name, int64_t order, bool param = false);
  void gate_loss(const Array& value);
  void gate_gradient(HookResult& r, const Array* reference, std::string_view group, const std::string& name,
                     const Array* floor);
  void gate_parameters();
  void add_missing_input_gradients();

  const Fixture& fixture_;
  const Budget& budget_;
  Mode mode_;
  std::string glob_;
  std::vector<std::string> modules_;
  BackwardOrder order_;
  std::string module_;
  ParamShares shares_;
  std::set<std::string> produced_;
  std::vector<HookResult> results_;
  int64_t next_sequence_ = 0;
  bool loss_seen_ = false;
  bool aborted_ = false;
  const GradFloorSink* floor_ = nullptr;
  bool tied_head_ = false;
};

}  // namespace parity::harness
