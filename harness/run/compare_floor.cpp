#include "run/compare_floor.h"

#include <fmt/format.h>

#include "io/fixture_sources.h"
#include "run/grad_check.h"
#include "run/noise_floor.h"

namespace parity::harness {

namespace {

// Keeps every float the forward emits and the routing it followed.
class ForwardCapture final : public HookSink {
 public:
  ForwardCapture(std::map<std::string, Array>& values, std::map<std::string, IndexArray>& index)
      : values_(values), index_(index) {}
  void emit(const std::string& key, const Array& value) override { values_[key] = value; }
  void emit_top_k(const std::string& key, const TopK& top_k) override {
    index_[key.substr(0, key.rfind('@'))] = top_k.routed;
  }

 private:
  std::map<std::string, Array>& values_;
  std::map<std::string, IndexArray>& index_;
};

// The weights one side is replayed with, or nullptr and why not.
const WeightSource* weights_of(const Fixture& side, const FixtureWeights& own, const Fixture& other,
                               const FixtureWeights& others, const WeightSource* given, std::string& why) {
  if (given) return given;
  if (!side.names("weights").empty()) return &own;
  if (!other.names("weights").empty() && side.meta_string("dtype") == other.meta_string("dtype")) return &others;
  why = fmt::format("{} has no weights of its run dtype (pass --weights CHECKPOINT_DIR)", side.path().string());
  return nullptr;
}

// The two models of a compare floor: the reference at the base's run precision, the second opinion
// at the target's; none (and `note` says why) where weights or a precision are missing.
struct FloorModels {
  std::unique_ptr<FixtureWeights> base_own, target_own;  // outlive the models that read them
  std::unique_ptr<ReferenceModel> base, target;
  std::string note;
};

// Throws Error where the reference cannot build the model.
FloorModels floor_models(const Fixture& base, const Fixture& target, const WeightSource* weights) {
  FloorModels m;
  m.base_own = std::make_unique<FixtureWeights>(base);
  m.target_own = std::make_unique<FixtureWeights>(target);
  std::string base_why, target_why;
  const WeightSource* base_weights = weights_of(base, *m.base_own, target, *m.target_own, weights, base_why);
  const WeightSource* target_weights = weights_of(target, *m.target_own, base, *m.base_own, weights, target_why);
  if (!base_weights || !target_weights) {
    m.note = base_why.empty() ? target_why : target_why.empty() ? base_why : base_why + "; " + target_why;
    return m;
  }
  const std::optional<Precision> precision = precision_for_run_dtype(base.meta_string("dtype"));
  if (!precision) {
    m.note = fmt::format("the base's run dtype {} has no reference precision", base.meta_string("dtype"));
    return m;
  }
  m.base = reference_model_of(base, *base_weights, *precision, {});
  m.target = floor_model_of(target, *target_weights, {});
  if (!m.target) {
    m.note = fmt::format("the target's run dtype {} has no second opinion", target.meta_string("dtype"));
    m.base.reset();
  }
  return m;
}

}  // namespace

CompareFloor compare_floor(const Fixture& base, const Fixture& target, const WeightSource* weights) {
  CompareFloor floor;
  try {
    const FloorModels models = floor_models(base, target, weights);
    if (!models.base) {
      floor.note = models.note;
      return floor;
    }
    const ForwardInputs inputs = forward_inputs(base);  // check_same_inputs: the target's are the same
    ForwardCapture base_capture(floor.base, floor.base_index), target_capture(floor.target, floor.target_index);
    const RouteAs base_routing(base), target_routing(target);
    models.base->forward(inputs, base_capture, &base_routing);
    models.target->forward(inputs, target_capture, &target_routing);
  } catch (const Error& e) {  // InputError too: a model the reference does not know still compares
    floor = CompareFloor{};
    floor.note = fmt::format("the reference cannot run this model: {}", e.what());
  }
  return floor;
}

GradCompareFloor grad_compare_floor(const Fixture& base, const Fixture& target, const WeightSource* weights) {
  GradCompareFloor floor;
  try {
    const FloorModels models = floor_models(base, target, weights);
    if (!models.base) {
      floor.note = models.note;
      return floor;
    }
    const ForwardInputs inputs = forward_inputs(base);
    const Loss loss = fixture_loss(base, inputs);  // check_same_loss: the target's is the same
    const RouteAs base_routing(base), target_routing(target);
    models.base->forward_backward(inputs, loss, floor.base, &base_routing);
    models.target->forward_backward(inputs, loss, floor.target, &target_routing);
    floor.base.commit();
    floor.target.commit();
    floor.available = true;
  } catch (const Error& e) {
    floor = GradCompareFloor{};
    floor.note = fmt::format("the reference cannot run this model's backward: {}", e.what());
  }
  return floor;
}

}  // namespace parity::harness
