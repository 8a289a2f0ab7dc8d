// The noise floor of a check: per hook, how far two correct implementations of the same math at
// the same cast points drift apart on these inputs when they differ only in how they accumulate.
// The gated reference accumulates in f64; its second opinion is the same reference model built
// with Accumulation::kFloat (numerics.h: sgemm, float reductions), as an engine computing in the
// run's dtype does. The distance between the two, per hook, is the error HF itself may have
// without any bug: near f32 round-off where the math is well conditioned, large where it is not
// (an RMSNorm of a row near zero amplifies its input's round-off), and for bf16 runs the one-ulp
// flips at cast points that a different summation order causes (the cast points themselves are
// shared, so they add nothing). Budgets gate on the ratio (budget.h Metric::kFloorRatio).
//
// Isolated: the second opinion replays each module right before the reference does, on the same
// HF inputs, so only one module's outputs are held. Chained: it runs the whole forward first, and
// its outputs are held until the reference's arrive (memory: every hook of one forward, in f64).
#pragma once

#include <map>
#include <memory>
#include <optional>
#include <string>

#include "gate/tensor_metrics.h"
#include "io/fixture.h"
#include "models/model.h"
#include "numerics.h"
#include "weights.h"

namespace parity::harness {

// What the second opinion emitted, by hook key.
class FloorCapture final : public HookSink {
 public:
  void emit(const std::string& key, const Array& value) override { values_[key] = value; }
  // The router scores the second opinion chose from, by the router's key (key minus "@top_k_index").
  void emit_top_k(const std::string& key, const TopK& top_k) override {
    scores_[key.substr(0, key.rfind('@'))] = top_k.scores;
  }
  const Array* find(const std::string& key) const;
  // The near-tie allowance its scores of `router` give (an empty one when it emitted none).
  FloorTie tie_for(const std::string& router, double factor) const;
  void clear() { values_.clear(), scores_.clear(); }

 private:
  std::map<std::string, Array> values_;
  std::map<std::string, Array> scores_;
};

// A dump's top-k of `router` (its @top_k_index) when it holds one of `shape`.
std::optional<IndexArray> dump_top_k_index(const Fixture& dump, const std::string& router, const Shape& shape);

// Routes a forward as `dump` did wherever it holds the router's choice (else by the model's own):
// a second opinion routed like the dump it measures the floor of.
class RouteAs final : public RoutingPolicy {
 public:
  explicit RouteAs(const Fixture& dump) : dump_(dump) {}
  IndexArray resolve(const std::string& router, const IndexArray& own, const Array&) const override {
    return dump_top_k_index(dump_, router, own.shape).value_or(own);
  }

 private:
  const Fixture& dump_;
};

// The second opinion for a fixture: the reference at the fixture's run dtype (F32 or BF16: the
// cast points HF used), accumulating in float. nullptr when the run dtype has no such precision.
std::unique_ptr<ReferenceModel> floor_model_of(const Fixture& fixture, const WeightSource& weights,
                                               const Variants& variants);

}  // namespace parity::harness
