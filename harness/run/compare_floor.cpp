#include "run/compare_floor.h"

#include <fmt/format.h>

#include "io/fixture_sources.h"
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

}  // namespace

CompareFloor compare_floor(const Fixture& base, const Fixture& target, const WeightSource* weights) {
  CompareFloor floor;
  const FixtureWeights base_own(base), target_own(target);
  const WeightSource* base_weights = weights_of(base, base_own, target, target_own, weights, floor.note);
  const WeightSource* target_weights = weights_of(target, target_own, base, base_own, weights, floor.note);
  if (!base_weights || !target_weights) return floor;
  const std::optional<Precision> precision = precision_for_run_dtype(base.meta_string("dtype"));
  if (!precision) {
    floor.note = fmt::format("the base's run dtype {} has no reference precision", base.meta_string("dtype"));
    return floor;
  }
  try {
    const std::unique_ptr<ReferenceModel> base_model = reference_model_of(base, *base_weights, *precision, {});
    const std::unique_ptr<ReferenceModel> target_model = floor_model_of(target, *target_weights, {});
    if (!target_model) {
      floor.note = fmt::format("the target's run dtype {} has no second opinion", target.meta_string("dtype"));
      return floor;
    }
    const ForwardInputs inputs = forward_inputs(base);  // check_same_inputs: the target's are the same
    ForwardCapture base_capture(floor.base, floor.base_index), target_capture(floor.target, floor.target_index);
    const RouteAs base_routing(base), target_routing(target);
    base_model->forward(inputs, base_capture, &base_routing);
    target_model->forward(inputs, target_capture, &target_routing);
  } catch (const Error& e) {  // InputError too: a model the reference does not know still compares
    floor = CompareFloor{};
    floor.note = fmt::format("the reference cannot run this model: {}", e.what());
  }
  return floor;
}

}  // namespace parity::harness
