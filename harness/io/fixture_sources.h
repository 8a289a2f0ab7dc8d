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
