// Adapters that let the reference read a fixture: its /weights group as a WeightSource and its
// /hooks (plus "/inputs/<name>" and "/outputs/<name>") as HookInputs. Missing entries are parity::Error naming the key
// (a failure of the module that needed it); unreadable ones stay InputError (exit 2).
#pragma once

#include "io/fixture.h"
#include "models/model.h"
#include "weights.h"

namespace parity::harness {

// Where a compared key lives: hook keys in /hooks, "/outputs/<name>" (the model's final logits and
// logprobs) in /outputs.
struct FixtureKey {
  std::string_view group;
  std::string name;
};
FixtureKey fixture_key(const std::string& key);
// Every key the gate compares, in the fixture's order: the hooks, then "/outputs/<name>".
std::vector<std::string> comparable_keys(const Fixture& fixture);

// Float tensor -> Array / Weight; integer tensor -> IndexArray. Kind mismatches name `what`.
Array to_array(const Tensor& t, const std::string& what);
IndexArray to_index_array(const Tensor& t, const std::string& what);

// The model inputs of a fixture (/inputs/input_ids, attention_mask, position_ids), validated for a
// forward pass: InputError naming the tensor unless each is an integer tensor of one [B, S] shape,
// token ids are >= 0, the mask holds only 0 and 1 with at least one real token per sequence (a
// sequence that attends to nothing has no defined output), and positions are >= 0.
ForwardInputs forward_inputs(const Fixture& fixture);

// The reference model of a fixture's config. The config is input: a field the reference refuses is
// an InputError naming the fixture (exit 2), not a failure of the run.
std::unique_ptr<ReferenceModel> reference_model_of(const Fixture& fixture, const WeightSource& weights,
                                                   Precision precision, const Variants& variants = Variants());

class FixtureWeights final : public WeightSource {
 public:
  explicit FixtureWeights(const Fixture& fixture) : fixture_(fixture) {}
  bool has(const std::string& name) const override { return fixture_.has("weights", name); }
  Weight get(const std::string& name) const override;

 private:
  const Fixture& fixture_;
};

class FixtureHookInputs final : public HookInputs {
 public:
  explicit FixtureHookInputs(const Fixture& fixture) : fixture_(fixture) {}
  Array floats(const std::string& key) const override;
  IndexArray ints(const std::string& key) const override;

 private:
  Tensor read(const std::string& key) const;
  const Fixture& fixture_;
};

}  // namespace parity::harness
